"""How export workers start, decided without importing anything heavy.

A ``--workers N`` export forks its children from the exporting process itself
where that is safe (:func:`flan_data.export.local.fork_refusal`: Linux, no
other Python thread, every native thread asleep, no library known for
fork-unsafe threads loaded); they then hold the parsed catalog and compiled
templates at once. Otherwise they fork from a forkserver that first imports
:data:`PRELOAD` (~0.6-1 s). ``flan export`` starts that server as its very
first step where forking is not possible at all (:func:`fork_possible`), so
those imports run on the second core while the command itself imports the
export modules and loads the catalog. A process-wide singleton: a later export
in the same process finds it running too.

>>> "pyarrow" in PRELOAD and "flan_data.export.local" in PRELOAD
True
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys

#: How export workers start: ``auto`` (the default) forks this process where
#: that is safe (see :func:`flan_data.export.local.fork_refusal`) and uses the
#: forkserver otherwise; ``forkserver`` always uses the forkserver.
START_ENV = "FLAN_DATA_WORKER_START"
START_METHODS = ("auto", "forkserver")


def start_method() -> str:
    """The value of :data:`START_ENV` (``auto`` when unset); raises ValueError
    naming the accepted values for anything else."""
    v = os.environ.get(START_ENV, "auto").strip().lower() or "auto"
    if v not in START_METHODS:
        raise ValueError(f"{START_ENV}={v!r}: expected one of {', '.join(START_METHODS)}")
    return v


def fork_possible() -> bool:
    """Whether export workers may be forked from this process at all (Linux,
    not turned off by :data:`START_ENV`); whether it is safe at the moment is
    decided when the workers start. Cheap, imports nothing.

    >>> isinstance(fork_possible(), bool)
    True
    """
    try:
        method = start_method()
    except ValueError:
        return False
    return (
        method == "auto"
        and sys.platform.startswith("linux")
        and "fork" in mp.get_all_start_methods()
    )


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
