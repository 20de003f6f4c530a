"""``python -m benchmarks [feature_losses|train_step|registry_runs|mmcv_ops|throughput|smoke_runs|mini_width|step_format] [options]``: dispatch to a benchmark
module's ``main`` (no name: ``feature_losses``)."""
import sys

BENCHMARKS = ('feature_losses', 'train_step', 'registry_runs', 'mmcv_ops', 'throughput', 'smoke_runs', 'mini_width', 'step_format')


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    name = argv.pop(0) if argv and not argv[0].startswith('-') else 'feature_losses'
    if name not in BENCHMARKS:
        print(f'unknown benchmark {name!r}; known: {", ".join(BENCHMARKS)}', file=sys.stderr)
        return 2
    if name == 'feature_losses':
        from benchmarks import feature_losses
        return feature_losses.main(argv)
    if name == 'train_step':
        from benchmarks import train_step
        return train_step.main(argv)
    if name == 'registry_runs':
        from benchmarks import registry_runs
        return registry_runs.main(argv)
    if name == 'mmcv_ops':
        from benchmarks import mmcv_ops
        return mmcv_ops.main(argv)
    if name == 'throughput':
        from benchmarks import throughput
        return throughput.main(argv)
    if name == 'smoke_runs':
        from benchmarks import smoke_runs
        return smoke_runs.main(argv)
    if name == 'mini_width':
        from benchmarks import mini_width
        return mini_width.main(argv)
    if name == 'step_format':
        from benchmarks import step_format
        return step_format.main(argv)
    return 2  # pragma: no cover


if __name__ == '__main__':
    sys.exit(main())
