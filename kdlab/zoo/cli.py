"""``kdlab zoo``: the detectors kdlab can build, or one detector's resolved config."""
from __future__ import annotations


def run(args) -> int:
    from kdlab.zoo import FAMILIES, detector_config, list_detectors
    if args.detector:
        cfg = detector_config(args.detector, args.scale, schedule=args.schedule, data_root=args.data_root)
        print(cfg.pretty_text)
        return 0
    for name, (family, backbone) in list_detectors().items():
        fam = FAMILIES[family]
        full = ', '.join(f'{s}: {p}' for (b, s), p in fam.full.items() if b == backbone) or '(mini only)'
        print(f'{name:<24} {fam.kind:<9} {"-".join(fam.levels[::len(fam.levels) - 1])}  full: {full}')
    return 0


def register(sub) -> None:
    p = sub.add_parser('zoo', help='list the detector zoo, or print one detector\'s resolved config')
    p.add_argument('detector', nargs='?')
    p.add_argument('--scale', default='mini', choices=('smoke', 'mini', 'full'))
    p.add_argument('--schedule', default=None)
    p.add_argument('--data-root', default=None)
    p.set_defaults(func=run)
