"""``kdlab papers``: print the registry of reported tables.

    kdlab papers                        the registered papers
    kdlab papers dfmsd                  one paper: metadata, tables, interpretation notes
    kdlab papers dfmsd --table table6   one table as the paper prints it (derived cells marked *)
    kdlab papers --check [PAPER]        validate the files and run the consistency checks (exit 1 on failure)
    kdlab papers --compare              cross-paper findings: one pair, one method, different numbers
"""
from __future__ import annotations

import sys
import textwrap


def _print_paper(paper_id: str, root) -> None:
    from kdlab import papers
    meta = papers.load_paper(paper_id, root=root)
    print(f'{meta["id"]}: {meta["title"]}')
    print(f'  {", ".join(meta["authors"])}')
    venue = ' '.join(str(x) for x in (meta['venue'], meta['year']) if x)
    print(f'  {venue}' + (f', arXiv {meta["arxiv"]}' if meta['arxiv'] else ''))
    runs = {True: 'runs', False: 'does not run', None: 'not tried'}[meta['code']['runs']]
    print(f'  code: {meta["code"]["url"] or "none"} ({runs})')
    print(textwrap.indent(textwrap.fill(meta['code']['note'], 100), '    '))
    print('tables:')
    if not meta['tables']:
        print('  (none: metadata only)')
    for tid in meta['tables']:
        data = papers.load_table_data(paper_id, tid, root=root)
        flag = ' [incomplete]' if data.get('incomplete') else ''
        print(f'  {tid:<9} {len(data["rows"]):>3} rows  {data["title"]}{flag}')
    if meta['interpretation_notes']:
        print('interpretation notes:')
        for note in meta['interpretation_notes']:
            print(textwrap.fill(f'{note["topic"]}: {note["note"]}', 100, initial_indent='  - ',
                                subsequent_indent='    '))


def _print_table(paper_id: str, table_id: str, fmt: str, root) -> None:
    import pandas as pd

    from kdlab import papers
    out, frame = papers.display_frame(paper_id, table_id, root=root)
    if fmt == 'csv':
        sys.stdout.write(frame.drop(columns=['teachers', 'student_spec', 'switches']).to_csv(index=False))
        return
    metrics = [m for m in out.attrs['metrics'] if m in out.columns]
    shown = out.copy()
    for m in metrics:   # mark derived cells with '*', keep NaN blank
        shown[m] = [('' if pd.isna(v) else f'{v:.1f}') + ('*' if m in d else '')
                    for v, d in zip(out[m], frame['derived'])]
    print(f'{paper_id} {table_id}: {out.attrs["title"]}')
    print(f'source: {out.attrs["source"]}')
    if out.attrs.get('incomplete'):
        print(textwrap.fill(f'INCOMPLETE: {out.attrs["incomplete"]}', 110))
    print()
    with pd.option_context('display.max_colwidth', 60, 'display.width', 250):
        print(shown.to_string(index=False))
    print()
    print('* derived from the prose (see the row\'s quote in the file); blank: not reported')
    for note in out.attrs['notes']:
        print(textwrap.fill(note, 110, initial_indent='- ', subsequent_indent='  '))


def _check(paper_id, root) -> int:
    from kdlab import papers
    papers.validate(root=root)
    checks = papers.consistency.report(paper_id, root=root)
    for name, frame in checks.items():
        n_bad = int((~frame['ok'].astype(bool)).sum())
        print(f'{name:<9} {len(frame):>4} checked, {n_bad} failing')
    bad = papers.consistency.failures(checks)
    for line in bad:
        print('  ' + line)
    if not bad:
        print('registry valid; all consistency checks pass')
    return 1 if bad else 0


def run(args) -> int:
    import pandas as pd

    from kdlab import papers
    from kdlab.errors import KdlabError
    root = args.root
    try:
        if args.check:
            return _check(args.paper, root)
        if args.compare:
            with pd.option_context('display.max_colwidth', 60, 'display.width', 250):
                print(papers.findings(args.metric, root=root).to_string(index=False))
            return 0
        if args.table and not args.paper:
            print('kdlab papers: --table needs a paper, e.g. `kdlab papers dfmsd --table table6`', file=sys.stderr)
            return 2
        if args.table:
            _print_table(args.paper, args.table, args.format, root)
        elif args.paper:
            _print_paper(args.paper, root)
        else:
            with pd.option_context('display.max_colwidth', 70, 'display.width', 250):
                print(papers.summary(root=root).to_string(index=False))
            print('\n`kdlab papers PAPER` for one paper, `kdlab papers PAPER --table ID` for a table.')
        return 0
    except KdlabError as err:
        print(f'kdlab papers: {err}', file=sys.stderr)
        return 1


def register(sub) -> None:
    p = sub.add_parser('papers', help='the registry of reported tables (the papers\' numbers)',
                       description=__doc__.split('\n\n', 1)[1] if __doc__ else None)
    p.add_argument('paper', nargs='?', help='paper id (kdlab papers lists them)')
    p.add_argument('--table', help='table id, e.g. table6 (kdlab papers PAPER lists them)')
    p.add_argument('--format', choices=('text', 'csv'), default='text', help='output of --table (default: text)')
    p.add_argument('--check', action='store_true', help='validate the registry and run the consistency checks')
    p.add_argument('--compare', action='store_true', help='print cross-paper findings for --metric')
    p.add_argument('--metric', default='mAP', help='metric of --compare (default: mAP)')
    p.add_argument('--root', default=None, help='registry folder (default: $KDLAB_PAPERS or <repo>/papers)')
    p.set_defaults(func=run)
