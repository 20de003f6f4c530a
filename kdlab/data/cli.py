"""``kdlab data``: generate the embedded synthetic dataset, or describe a data root."""
from __future__ import annotations

import json
from pathlib import Path


def _describe(root: Path) -> None:
    from kdlab.data.synthetic import AREA_MEDIUM, AREA_SMALL
    for split in ('train', 'val'):
        ann = json.loads((root / 'annotations' / f'instances_{split}.json').read_text())
        areas = [a['area'] for a in ann['annotations']]
        n = max(len(areas), 1)
        small = sum(a < AREA_SMALL for a in areas) / n
        large = sum(a >= AREA_MEDIUM for a in areas) / n
        print(f'{split:>5}: {len(ann["images"])} images, {len(areas)} objects '
              f'(small {small:.0%}, medium {1 - small - large:.0%}, large {large:.0%}), '
              f'{len(ann["categories"])} categories')


def run(args) -> int:
    from kdlab.data.scenes import SceneSpec
    from kdlab.data.synthetic import PRESETS, ensure_dataset
    presets = {**PRESETS, 'mini-v2': SceneSpec()}       # mini-v2: the scenes of kdlab.data.scenes
    if args.action == 'generate':
        root = ensure_dataset(presets.get(args.preset, args.preset), root=args.root, progress=True)
        print(root)
        _describe(root)
    else:
        for name, spec in presets.items():
            print(f'{name}: {spec}')
    return 0


def register(sub) -> None:
    p = sub.add_parser('data', help='generate / list the embedded synthetic COCO-format dataset')
    p.add_argument('action', choices=('generate', 'list'), nargs='?', default='generate')
    p.add_argument('--preset', default='mini', help='smoke | mini | mini-v2 (default: mini)')
    p.add_argument('--root', default=None, help='cache root (default: $KDLAB_DATA or ~/.cache/kdlab/data)')
    p.set_defaults(func=run)
