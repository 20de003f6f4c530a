"""What every benchmark measures the same way: peak memory and the time of one call."""
import resource
import time
from typing import Callable, Dict, List


def maxrss_mib() -> float:
    """Peak resident memory of this process so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # Linux: KiB


def timed(step):
    """(wall seconds, CPU seconds of this process: all its threads) of one call."""
    w0, c0 = time.perf_counter(), time.process_time()
    step()
    return time.perf_counter() - w0, time.process_time() - c0


def alternate(steps: Dict[str, Callable[[], object]], warmup: int, repeats: int) -> Dict[str, List[float]]:
    """The wall seconds of each step over ``repeats`` rounds, the steps taking turns within a round (so a slower
    moment of a shared machine falls on all of them), after ``warmup`` untimed calls of each."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: Dict[str, List[float]] = {k: [] for k in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            times[name].append(timed(step)[0])
    return times
