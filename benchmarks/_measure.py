"""What every benchmark measures the same way: peak memory and the time of one call."""
import resource
import time


def maxrss_mib() -> float:
    """Peak resident memory of this process so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # Linux: KiB


def timed(step):
    """(wall seconds, CPU seconds of this process: all its threads) of one call."""
    w0, c0 = time.perf_counter(), time.process_time()
    step()
    return time.perf_counter() - w0, time.process_time() - c0
