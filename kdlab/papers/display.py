"""Rendering registry tables for notebooks: the paper's layout, with derived and interpreted cells marked."""
from __future__ import annotations

from kdlab.papers import registry, vocab

DERIVED_STYLE = 'font-style: italic; background-color: #fff4d6'       # from a sentence of the prose
UNREADABLE_STYLE = 'background-color: #f3d6d6'                         # printed but unreadable, left empty
INTERPRETED_STYLE = 'text-decoration: underline dotted'                # teacher / switches interpreted


def display_frame(paper_id: str, table_id: str, *, root=None):
    """The human columns of a table: row, teacher, student, method, the metrics the table reports, gain."""
    frame = registry.load_table(paper_id, table_id, root=root)
    metrics = [m for m in frame.attrs['metrics'] if m in frame.columns]
    out = frame[['row', 'teacher', 'student', 'method'] + metrics].copy()
    out['method'] = out['method'].map(vocab.method_name)
    out['gain'] = [', '.join(f'{m} {g:+.1f}' for m, g in gains.items()) for gains in frame['printed_gain']]
    out.attrs = dict(frame.attrs)
    return out, frame


def show_table(paper_id: str, table_id: str, *, root=None):
    """A pandas Styler of one table: derived cells italic on yellow, unreadable cells red, interpreted
    teachers underlined; the caption names the table, its source and the legend.

    Falls back to the plain DataFrame when the Styler cannot be built (jinja2 missing).
    """
    out, frame = display_frame(paper_id, table_id, root=root)
    metrics = [m for m in out.attrs['metrics'] if m in out.columns]

    def styles(_):
        import pandas as pd

        css = pd.DataFrame('', index=out.index, columns=out.columns)
        for i, (derived, unreadable, interpreted) in enumerate(
                zip(frame['derived'], frame['unreadable'], frame['interpreted'])):
            for m in derived:
                if m in css.columns:
                    css.iloc[i, css.columns.get_loc(m)] = DERIVED_STYLE
            for m in unreadable:
                if m in css.columns:
                    css.iloc[i, css.columns.get_loc(m)] = UNREADABLE_STYLE
            if 'teachers' in interpreted:
                css.iloc[i, css.columns.get_loc('teacher')] = INTERPRETED_STYLE
        return css

    caption = (f'{paper_id} {table_id}: {out.attrs["title"]} — source: {out.attrs["source"]}. '
               f'Italic on yellow: derived from the prose; red: printed but unreadable; '
               f'dotted underline: teacher interpreted.')
    try:
        styler = out.style.apply(styles, axis=None).format({m: '{:.1f}' for m in metrics}, na_rep='')
        return styler.set_caption(caption).hide(axis='index')
    except ImportError:  # pandas' Styler needs jinja2
        return out
