"""``kdlab train CONFIG``: run an mmengine config (official mmdet/mmrazor, kdlab's, or your own) through
kdlab — trained, evaluated and stored with provenance.

    kdlab train mmrazor::distill/mmdet/pkd/pkd_fpn_retina_x101_retina_r50_2x_coco.py --scale mini \\
        --teacher-ckpt ~/.cache/kdlab/work/<teacher-run>/epoch_12.pth
    torchrun --nproc_per_node 8 -m kdlab.cli train CONFIG --scale full --data-root data/coco --launcher pytorch
"""
from __future__ import annotations


def run(args) -> int:
    from kdlab.engine.official import adapt_official
    from kdlab.engine.runner import execute
    from kdlab.engine.store import RunStore
    from kdlab.zoo import detector_config, list_detectors, load_config

    import os
    from kdlab.errors import UnknownNameError
    if args.config not in list_detectors() and '::' not in args.config and not os.path.isfile(args.config):
        raise UnknownNameError('detector or config file', args.config, list_detectors(),
                               'give a zoo detector name (see `kdlab zoo`), a config file, or mmrazor::/mmdet:: path')
    if args.config in list_detectors():
        cfg = detector_config(args.config, args.scale, data_root=args.data_root, seed=args.seed)
    else:
        cfg = adapt_official(load_config(args.config), args.scale, data_root=args.data_root,
                             teacher_ckpt=args.teacher_ckpt, max_epochs=args.epochs)
    if args.launcher != 'none':
        cfg.launcher = args.launcher
    store = RunStore(args.store) if args.store else RunStore()
    rec = execute(cfg, name=args.name or args.config, store=store, overwrite=args.overwrite)
    print(' '.join(f'{k} {v}' for k, v in rec['metrics'].items()))
    print(f'run {rec["key"]} stored in {store.run_dir(rec["key"])}')
    return 0


def commit_weights(args) -> int:
    from kdlab.engine.store import RunStore
    store = RunStore(args.store) if args.store else RunStore()
    for key in args.keys:
        entry = store.commit_weights(key)
        print(f'{key}: {store.run_dir(key) / entry["file"]} ({entry["bytes"] / 1e6:.1f} MB, sha256 '
              f'{entry["sha256"][:16]}...); commit it with its run.json')
    return 0


def register(sub) -> None:
    c = sub.add_parser('commit-weights', help="write stored runs' weights beside their records (fp16), for other "
                       'machines: a teacher they need is not trained again')
    c.add_argument('keys', nargs='+', help='run keys (results/runs/<key>)')
    c.add_argument('--store', default=None, help='run store (default: results/runs)')
    c.set_defaults(func=commit_weights)
    p = sub.add_parser('train', help='train + evaluate + store one config (a zoo detector or an mm* config)')
    p.add_argument('config', help='zoo detector name (retinanet_r50), or a config path / mmrazor::... / mmdet::...')
    p.add_argument('--scale', default='mini', choices=('smoke', 'mini', 'full'))
    p.add_argument('--data-root', default=None)
    p.add_argument('--teacher-ckpt', default=None, help='local teacher checkpoint for a distill config')
    p.add_argument('--epochs', type=int, default=None, help='override max_epochs (a few iterations: 1)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--name', default=None)
    p.add_argument('--store', default=None)
    p.add_argument('--overwrite', action='store_true', help='replace a finished run with the same key')
    p.add_argument('--launcher', default='none', choices=('none', 'pytorch', 'slurm'),
                   help='multi-GPU: run under torchrun (pytorch) or srun (slurm)')
    p.set_defaults(func=run)
