"""``python -m benchmarks [feature_losses] [options]``: dispatch to a benchmark module's ``main``."""
import sys

BENCHMARKS = ('feature_losses',)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    name = argv.pop(0) if argv and not argv[0].startswith('-') else 'feature_losses'
    if name not in BENCHMARKS:
        print(f'unknown benchmark {name!r}; known: {", ".join(BENCHMARKS)}', file=sys.stderr)
        return 2
    if name == 'feature_losses':
        from benchmarks import feature_losses
        return feature_losses.main(argv)
    return 2  # pragma: no cover


if __name__ == '__main__':
    sys.exit(main())
