"""Run kdlab's notebooks headless (papermill), for the tests and the batch CLI.

Notebooks are committed without outputs, with one cell tagged ``parameters``; every piece of logic they show is
a call into kdlab, so the tests reach it without the notebook. :func:`execute` runs one with new parameters and
writes the executed copy where it is told - never next to the source unless asked.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Mapping, Optional

from kdlab.errors import NotebookError

#: The Jupyter kernel of kdlab's notebooks: registered in the project's environment by set-up
#: (``python -m ipykernel install --sys-prefix --name kdlab``), so JupyterLab started from it (``make lab``) and
#: papermill run kdlab's Python, and a Jupyter outside it says the kernel is missing instead of starting another.
KERNEL = 'kdlab'
KERNEL_DISPLAY_NAME = 'Python (kdlab)'


def kernelspec() -> dict:
    return {'display_name': KERNEL_DISPLAY_NAME, 'language': 'python', 'name': KERNEL}


def language_info() -> dict:
    """What the kernel reports and JupyterLab writes into a notebook it saves (ipykernel's language_info)."""
    import platform
    from ipykernel.ipkernel import IPythonKernel
    info = dict(IPythonKernel.language_info)
    info['version'] = platform.python_version()
    return info


def ensure_kernel() -> None:
    """Register the ``kdlab`` kernel in this environment if it is not (an environment made before set-up did)."""
    from jupyter_client.kernelspec import KernelSpecManager
    if KERNEL in KernelSpecManager().find_kernel_specs():
        return
    from ipykernel.kernelspec import install
    install(prefix=sys.prefix, kernel_name=KERNEL, display_name=KERNEL_DISPLAY_NAME)


def canonical(text: str) -> str:
    """``text`` (a notebook) in the form JupyterLab saves it: nbformat's normalized v4 JSON (sorted keys, one-space
    indent, a final newline), kdlab's kernel with its full metadata, no outputs or execution counts."""
    import nbformat
    nb = nbformat.reads(text, as_version=4)
    nb.metadata['kernelspec'] = kernelspec()
    nb.metadata['language_info'] = language_info()
    for cell in nb.cells:
        if cell.cell_type == 'code':
            cell.outputs, cell.execution_count = [], None
    nbformat.validator.normalize(nb)
    return nbformat.writes(nb) + '\n'


def _failing_cell(notebook_path: Path) -> str:
    """Describe the first cell of an executed notebook whose outputs hold an error."""
    try:
        import nbformat
        nb = nbformat.read(str(notebook_path), as_version=4)
    except Exception:  # the partial output may be missing or unreadable: say so rather than mask the error
        return 'the failing cell could not be read back'
    code_index = 0
    for cell in nb.cells:
        if cell.cell_type != 'code' or 'injected-parameters' in cell.get('metadata', {}).get('tags', []):
            continue   # papermill's injected cell is not in the source: number cells as the source does
        code_index += 1
        for output in cell.get('outputs', []):
            if output.get('output_type') == 'error':
                first_line = next((ln for ln in cell.source.splitlines() if ln.strip()), '')
                return (f'code cell {code_index} (`{first_line.strip()[:80]}`): '
                        f'{output.get("ename")}: {output.get("evalue")}')
    return 'no cell recorded an error'


def running_copy(output_path) -> Path:
    """Where an execution writes while it runs (``x.ipynb`` -> ``x.running.ipynb``, beside it): the executed
    copy replaces ``output_path`` when the notebook ends, so an interrupted execution (Ctrl-C, a killed
    session) leaves the previous executed copy whole and its own partial one under this name."""
    output_path = Path(output_path)
    return output_path.with_name(f'{output_path.stem}.running{output_path.suffix}')


def execute(notebook_path, parameters: Optional[Mapping[str, Any]], output_path, *, cwd=None,
            progress: bool = False) -> Path:
    """Execute ``notebook_path`` with ``parameters`` injected after its ``parameters`` cell.

    Args:
        notebook_path: the source notebook (left untouched).
        parameters: values for the names the ``parameters`` cell defines (None: the notebook's defaults).
        output_path: where the executed notebook is written (its folder is created).
        cwd: working directory of the kernel (default: the folder of ``output_path``, so relative writes land
            beside the output, not in the repository).
        progress: show papermill's progress bar.

    Returns:
        ``output_path`` as a Path. It is written when the notebook ends (finished or failed in a cell); while
        it runs the executed copy is :func:`running_copy` (left there if the execution is interrupted).

    Raises:
        NotebookError: naming the notebook and the failing cell (its number among code cells, first line,
            exception), or a missing papermill / kernel.
    """
    notebook_path = Path(notebook_path)
    output_path = Path(output_path)
    if not notebook_path.is_file():
        raise NotebookError(f'notebook {notebook_path} does not exist', 'check the path (notebooks/ in the repo)')
    try:
        import papermill
    except ImportError:
        raise NotebookError('papermill is not installed', 'install the project (pip install -e .)') from None
    output_path.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(cwd) if cwd is not None else output_path.parent
    running = running_copy(output_path)
    ensure_kernel()
    try:
        papermill.execute_notebook(str(notebook_path), str(running), parameters=dict(parameters or {}),
                                   kernel_name=KERNEL, cwd=str(workdir), progress_bar=progress,
                                   log_output=False)
        os.replace(running, output_path)
    except papermill.PapermillExecutionError as err:
        os.replace(running, output_path)           # a failed execution is a result too: it shows the traceback
        cell = _failing_cell(output_path)
        raise NotebookError(f'notebook {notebook_path.name} failed in {cell}',
                            f'open the executed copy {output_path} to see the traceback') from err
    except Exception as err:  # kernel missing, bad parameters, ...: papermill's own message is the useful part
        if type(err).__name__ == 'NoSuchKernel':
            raise NotebookError(f'no Jupyter kernel named {KERNEL!r} for {notebook_path.name}',
                                'install ipykernel in this environment: python -m ipykernel install '
                                '--sys-prefix') from err
        raise NotebookError(f'notebook {notebook_path.name} could not be executed: {err}') from err
    return output_path
