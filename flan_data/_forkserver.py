"""Start the export workers' forkserver early, without importing anything heavy.

A ``--workers N`` export forks its children from a forkserver that first
imports :data:`PRELOAD` (~0.6-1 s). ``flan export`` starts it as its very first
step, so those imports run on the second core while the command itself
imports the export modules and loads the catalog; the export then finds it
running (:func:`flan_data.export.local.mp_context`). A process-wide
singleton: a later export in the same process finds it running too.

>>> "pyarrow" in PRELOAD and "flan_data.export.local" in PRELOAD
True
"""

from __future__ import annotations

import multiprocessing as mp

#: Modules the forkserver imports before it forks workers. ``pandas`` is not
#: used by flan_data, but pyarrow imports it (when installed) on the first
#: ``pa.array`` of a process: 0.2-0.3 s that would otherwise fall on every
#: worker's first job. Names that cannot be imported are skipped.
PRELOAD = (
    "numpy",
    "pyarrow",
    "pyarrow.ipc",
    "pyarrow.parquet",
    "pyarrow.compute",
    "pandas",
    "pyarrow.pandas_compat",
    "jinja2",
    "flan_data.export.local",
    "flan_data.columnar",
)


def start_forkserver(extra: tuple[str, ...] = ()):
    """The forkserver context, its server started now (it imports :data:`PRELOAD`
    and ``extra`` in the background; this returns at once); None where there is
    no forkserver or it cannot start (no Unix socket in a sandbox).

    ``extra`` names modules a worker will import anyway, e.g. the CLI that a
    child re-imports as its main module. No effect once the server runs.

    Raises RuntimeError inside a worker that is still importing the main
    module (a script without a ``__main__`` guard): no process is started then.
    """
    if "forkserver" not in mp.get_all_start_methods():
        return None
    from multiprocessing import forkserver

    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([*PRELOAD, *extra])  # no effect once the server runs
    try:
        forkserver.ensure_running()  # returns at once; the server imports meanwhile
    except OSError:
        return None
    return ctx
