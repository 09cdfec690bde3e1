"""The local executor: this process plus a pool of ``workers - 1`` children.

The pool starts once per export and serves every stage (counting, jobs, shard
assembly); the parent process works on the same queue of items. Results do not
depend on the number of workers.

**Forked from this process** where that is safe (:func:`fork_refusal`): the
children are forked from the exporting process itself, on its main thread,
at the start of the export, so they hold the parsed catalog and every
template this process compiled (the shared :class:`TemplateEngine`, kept for
later exports) from their first instruction: no import, no catalog file, a
child ready in milliseconds. Safe means: Linux; called on the main thread; no
other Python thread; every other OS thread asleep in a futex wait (idle pool
threads: Arrow's CPU and I/O pools, whose at-fork handlers lock and
re-create their state, OpenBLAS's, which it shuts down before a fork,
jemalloc's background thread, covered by jemalloc's own at-fork handlers);
and none of the libraries known to run threads that are not fork-safe
(torch, TensorFlow, JAX, Ray, gRPC, tokenizers) loaded. Before forking, the
Parquet decoders this process keeps between reads are closed (a child must
not share them), and the garbage collector's objects are frozen so that
children do not copy the parent's pages by collecting them.

**From a forkserver** otherwise (or with ``FLAN_DATA_WORKER_START=forkserver``):
a clean interpreter, started at the beginning of the export beside the
parent's own work, that imports the modules a worker needs (:data:`PRELOAD`:
numpy, pyarrow, jinja2, the export modules; ~0.5-1 s) once and then forks a
ready worker in a few milliseconds. It is a process-wide singleton, so a later
export in the same process starts its workers at once. Where there is no
forkserver (Windows), children are spawned. Such a child receives the parsed
catalog through a file (unpickling is ~10x faster than parsing 1,995 tasks'
YAML; a pipe could block the parent on a child that died while starting),
deleted as soon as every child has read it, at the end of the export
otherwise, and by a later export when the process that wrote it was killed.
Children also receive the parent's environment (a forkserver child would
otherwise inherit the forkserver's, from when it started).

Workers re-import the main module, however they start (a forked child runs
it again as ``__mp_main__``, as a spawned one would). A script that starts an
export at import time, without an ``if __name__ == "__main__":`` guard, makes
every worker die while starting; the executor notices (at the next work item,
or at :meth:`LocalExecutor.check_started`, which the export calls before it
writes the manifest: the export is never marked complete) and fails with that
advice instead of hanging.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import pickle
import platform
import queue
import re
import runpy
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from pathlib import Path
from typing import Any

from .._forkserver import PRELOAD, START_ENV, fork_possible, start_forkserver, start_method
from ..catalog import Catalog
from ..catalog_cache import dumps_catalog
from ..errors import FlanDataError
from ..render import RenderConfig, Renderer
from ..sources import open_task_source
from ..templates import TemplateEngine
from .jobs import JobResult, TaskJob, assemble_bucket, released, run_job

_STATE: dict[str, Any] = {}

GUARD_HINT = (
    "export worker processes exited while starting. Worker processes re-import your "
    "main script: if a script calls export_mixture(..., workers > 1) or "
    "runs `flan export` code at import time, put that call under "
    '`if __name__ == "__main__":`; or use workers=1.'
)

PAYLOAD_PREFIX = "flan-catalog-"
_PAYLOAD = re.compile(r"^flan-catalog-(?:(\d+)-)?[A-Za-z0-9_]+\.pickle$")


def _init(payload: str, cfg: RenderConfig, env: Mapping[str, str] | None = None) -> None:
    # An initializer that raises breaks the whole pool with a vague message;
    # keep the error and raise it from the first task instead.
    _exit_with_parent()
    try:
        if env is not None and os.environ != env:
            os.environ.clear()
            os.environ.update(env)
        cat = pickle.loads(Path(payload).read_bytes())
        _STATE.update(catalog=cat, renderer=Renderer(cat, cfg), error=None)
    except Exception as e:  # noqa: BLE001 - reported by _state()
        _STATE.update(error=e)


def _init_forked(main: tuple[str, str] | None) -> None:
    """A forked child's start: it already holds the parent's catalog and
    renderer (``_STATE``); it runs the main module again, as a spawned or
    forkserver child would (a script without a ``__main__`` guard fails here:
    the worker exits while starting and the parent reports it)."""
    _exit_with_parent()
    _rerun_main(main)


def _main_to_rerun() -> tuple[str, str] | None:
    """What a new worker must run again of this process's main module:
    ("name", module) for ``python -m module`` (never a package's
    ``__main__``), ("path", file) for a script, None when interactive. The
    same choice as multiprocessing's spawn start."""
    main = sys.modules.get("__main__")
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if name is not None:
        return None if name == "__main__" or name.endswith(".__main__") else ("name", name)
    path = getattr(main, "__file__", None)
    if path is None:
        return None
    base = getattr(mp.process, "ORIGINAL_DIR", None)
    if not os.path.isabs(path) and base is not None:
        path = os.path.join(base, path)
    return ("path", os.path.normpath(path))


def _rerun_main(main: tuple[str, str] | None) -> None:
    if main is None:
        return
    kind, what = main
    if kind == "path" and os.path.splitext(os.path.basename(what))[0] == "ipython":
        return  # as multiprocessing: IPython's launcher has no guard
    proc = mp.current_process()
    proc._inheriting = True  # type: ignore[attr-defined]  # starting a process now raises
    try:
        if kind == "name":
            runpy.run_module(what, run_name="__mp_main__")
        else:
            runpy.run_path(what, run_name="__mp_main__")
    finally:
        del proc._inheriting  # type: ignore[attr-defined]


#: The template engine of this process's exports (compiled templates, kept
#: for later exports and inherited by forked workers); dropped after an export
#: that compiled more than :data:`KEEP_TEMPLATES` templates (bounded memory).
_ENGINE: list[TemplateEngine] = []
KEEP_TEMPLATES = 2_000


def shared_engine() -> TemplateEngine:
    """The process-wide :class:`TemplateEngine` exports render with (its
    cache is keyed by the template spec: a changed template compiles again)."""
    if not _ENGINE:
        _ENGINE.append(TemplateEngine())
    return _ENGINE[0]


def _exit_with_parent() -> None:
    """End this worker when the export's process is gone (kill -9 runs no
    cleanup): an orphaned pool worker would otherwise wait for work forever,
    holding the forkserver and the terminal's pipes open."""
    parent = mp.parent_process()
    sentinel = getattr(parent, "sentinel", None)
    if sentinel is None:
        return

    def watch() -> None:
        from multiprocessing.connection import wait as wait_for

        wait_for([sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="flan-export-parent", daemon=True).start()


def _state(key: str) -> Any:
    err = _STATE.get("error")
    if err is not None:
        raise FlanDataError(f"an export worker could not start: {err}")
    return _STATE[key]


def _ping(_: int) -> bool:
    _state("catalog")
    return True


def count_one(args: tuple) -> tuple | str:
    """(train-split size, whether the source can seek) of one task, or the
    reason it cannot be read. Sizes come from metadata where the format has
    them (Parquet footer, Arrow batches, ``len`` of a save_to_disk split).

    With a fifth item, a folder, a source that must be read to be counted
    (record rules, no random access) is read once into a materialised file
    there (:mod:`~flan_data.export.materialize`; reused when already there),
    and its path comes third in the result. With a sixth item (a hash cache
    file, or ""), the sha256 of the task's source files comes fourth
    (:func:`~flan_data.export.fingerprint.hash_sources`)."""
    res = _count_one(args)
    if len(args) > 5 and args[5] is not None and not isinstance(res, str):
        from .fingerprint import hash_sources

        hashes = hash_sources(_state("catalog"), args[1], args[2], args[3], args[5] or None)
        res = (*res, None, hashes) if len(res) == 2 else (*res, hashes)
    return res


def _count_one(args: tuple) -> tuple[int, bool] | tuple[int, bool, str] | str:
    _root, name, source, dirs = args[:4]
    mat_dir = args[4] if len(args) > 4 else None
    cat: Catalog = _state("catalog")
    try:
        task = cat.task(name)
        src = open_task_source(cat, task, source, dirs)
        seekable = src.seekable("train")
        if mat_dir is not None and not seekable:
            from . import materialize as mz

            key = mz.cache_key(cat, task, source, dirs)
            if key is not None:
                path = mz.path_for(Path(mat_dir), name, key)
                n = mz.count_rows(path) if path.is_file() else None
                if n is None:
                    n = mz.materialize(src, path)
                return n, seekable, str(path)
        return src.count("train"), seekable
    except FlanDataError as e:
        return str(e)


def _run(args: tuple[TaskJob, Path]) -> JobResult:
    job, spill = args
    return run_job(job, _state("catalog"), _state("renderer"), spill)


def _assemble(args: tuple) -> list[dict[str, Any]]:
    return assemble_bucket(*args)


def mp_context() -> mp.context.BaseContext:
    """The context worker processes start from: fork (this process) where
    :func:`fork_refusal` finds it safe now; else the forkserver with
    :data:`PRELOAD` (started now, in the background, if it is not running yet);
    else (no forkserver on this platform, or it cannot start) spawn.

    Raises RuntimeError inside a worker that is still importing the main
    module (a script without a ``__main__`` guard): no process is started then.
    """
    _check_not_bootstrapping()
    if fork_possible():
        from ..sources.files import drop_cursors

        _preload()  # before the check: an import could start a thread
        drop_cursors()  # open Parquet decoders: a forked child must not share them
    # a thread that just finished (a pool's, the shard syncer's) still runs for a
    # moment after Python joined it: wait a little for it before giving up on a fork
    for pause in (0, 0.002, 0.005, 0.01, 0.02, 0.03, 0.03):  # ~0.1 s at most (a fork saves ~1 s)
        time.sleep(pause)
        why = fork_refusal()
        if why is None:
            return mp.get_context("fork")
        if not why.startswith("thread "):
            break
    ctx = start_forkserver()  # already running when `flan export` started it
    return ctx if ctx is not None else mp.get_context("spawn")


def _preload() -> None:
    """Import :data:`PRELOAD` here, as the forkserver would: a forked child then
    starts with them (pandas, which pyarrow imports at a process's first
    ``pa.array``, costs each process 0.2-0.3 s otherwise; this process imports
    the others during the export anyway)."""
    import contextlib
    import importlib

    for name in PRELOAD:
        if name not in sys.modules:
            with contextlib.suppress(ImportError):
                importlib.import_module(name)


def _check_not_bootstrapping() -> None:
    if getattr(mp.current_process(), "_inheriting", False):
        raise RuntimeError(
            "an export worker is starting another export while it imports the main "
            'module (no `if __name__ == "__main__":` guard)'
        )


#: Modules whose libraries run threads that are not fork-safe (OpenMP/intra-op
#: pools, gRPC, XLA, Rayon): while one is loaded, workers come from the forkserver.
FORK_UNSAFE_MODULES = ("torch", "tensorflow", "jax", "jaxlib", "ray", "grpc", "tokenizers")

#: The futex system call's number, by machine (an idle pool thread sleeps in it).
_FUTEX = {"x86_64": 202, "amd64": 202, "aarch64": 98, "arm64": 98}


def fork_refusal(task_dir: str | Path = "/proc/self/task") -> str | None:
    """Why this process must not fork its export workers now; None when it may.

    A fork copies only the calling thread: a lock another thread holds at that
    moment stays locked in the child forever. So this process forks only when
    (checked in this order) :data:`START_ENV` allows it, it runs Linux, the
    caller is the main thread, no other Python thread exists, no module of
    :data:`FORK_UNSAFE_MODULES` is loaded, and every other OS thread (listed in
    ``task_dir``) is asleep in a futex wait: idle pool threads, which hold no
    lock (Arrow's pools lock and re-create their state around a fork,
    OpenBLAS stops its threads before one, jemalloc takes its locks around it).
    A thread that is running, or inside any other system call (reading a
    file, a socket), or that cannot be inspected, refuses the fork.

    >>> fork_refusal("/nonexistent") is not None
    True
    """
    try:
        method = start_method()
    except ValueError as e:
        raise FlanDataError(str(e)) from None
    if method != "auto":
        return f"{START_ENV}={method}"
    if not sys.platform.startswith("linux") or "fork" not in mp.get_all_start_methods():
        return f"no fork on {sys.platform}"
    if threading.current_thread() is not threading.main_thread():
        return "not called on the main thread"
    others = [t.name for t in threading.enumerate() if t is not threading.current_thread()]
    if others or len(sys._current_frames()) > 1:
        return f"other Python threads are running ({', '.join(others) or 'unnamed'})"
    loaded = [m for m in FORK_UNSAFE_MODULES if m in sys.modules]
    if loaded:
        return f"{', '.join(loaded)} loaded (threads that are not fork-safe)"
    futex = _FUTEX.get(platform.machine().lower())
    if futex is None:
        return f"unknown machine {platform.machine()!r}"
    me = threading.get_native_id()
    try:
        tids = [int(t) for t in os.listdir(task_dir)]
    except (OSError, ValueError):
        return f"cannot list {task_dir}"
    for tid in tids:
        if tid == me:
            continue
        try:
            call = (Path(task_dir) / str(tid) / "syscall").read_text().split()
        except OSError:
            if not (Path(task_dir) / str(tid)).exists():
                continue  # exited meanwhile
            return f"cannot inspect thread {tid}"
        if not call or call[0] != str(futex):
            state = "running" if call and call[0] == "running" else f"in system call {call[:1]}"
            return f"thread {tid} is {state}, not asleep"
    return None


def sweep_payloads(folder: str | Path | None = None, *, legacy_age_s: float = 3600) -> list[Path]:
    """Delete catalog files left in ``folder`` (the temp folder) by exports whose
    process was killed (kill -9 skips every ``finally``); returns what was deleted.

    A file names the pid that wrote it and is deleted only when that process is
    gone; files of older versions (no pid in the name) only when older than
    ``legacy_age_s``.
    """
    if os.name != "posix":  # os.kill(pid, 0) is not a liveness probe on Windows
        return []
    d = Path(folder or tempfile.gettempdir())
    gone: list[Path] = []
    try:
        names = [n for n in os.listdir(d) if n.startswith(PAYLOAD_PREFIX)]
    except OSError:
        return gone
    for n in names:
        m = _PAYLOAD.match(n)
        if m is None:
            continue
        f = d / n
        try:
            if m.group(1) is None:
                if time.time() - f.stat().st_mtime < legacy_age_s:
                    continue
            elif _alive(int(m.group(1))):
                continue
            f.unlink()
            gone.append(f)
        except OSError:  # someone else's file, or already gone
            continue
    return gone


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by another user
        return True
    return True


def _write_payload(catalog: Catalog) -> str:
    fd, path = tempfile.mkstemp(prefix=f"{PAYLOAD_PREFIX}{os.getpid()}-", suffix=".pickle")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(dumps_catalog(catalog))
    except BaseException:
        Path(path).unlink(missing_ok=True)
        raise
    return path


#: A multi-worker export of at most this many tasks builds their renderers (the
#: compiled templates, options and field plans of a task: ~10-40 ms each) in the
#: parent before forking its children, who then hold them: with one task, every
#: process would otherwise build the same renderer at its first job. A bigger
#: export's tasks mostly run in one process each (consecutive runs of jobs).
WARM_TASKS = 4


def _warm(renderer: Renderer, tasks: Sequence[str]) -> None:
    if not tasks or len(tasks) > WARM_TASKS:
        return
    import contextlib

    for name in tasks:
        # an error is left to the job that renders the task: it reports it as ever
        with contextlib.suppress(Exception):
            renderer.task_renderer(name)


class LocalExecutor:
    """Runs export work units in ``workers`` processes: this process and
    ``workers - 1`` children (in-process only when 1).

    The parent is one of the workers: it renders from the first moment, with
    the catalog and compiled templates it already holds, while the children
    start. Children are created by a background thread (a forkserver that is
    still importing would otherwise block the parent), and a child gets its
    first item only once it has answered, so no item waits in a queue behind
    a child that is still starting. Work items go out in order (jobs biggest
    first); each child holds one item at a time, refilled the moment it
    finishes. Which process runs which item never changes the output.
    """

    def __init__(self, catalog: Catalog, cfg: RenderConfig, workers: int = 1,
                 warm_tasks: Sequence[str] = ()):  # fmt: skip
        """``warm_tasks``: the tasks the export may render; when there are at most
        :data:`WARM_TASKS` of them, their renderers are built before the children
        are forked, so each child holds them instead of building its own."""
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._payload: str | None = None
        self._pings: list[Any] = []
        self._ok = False  # a child has answered: it started
        self._lock = threading.Lock()
        self._ready = 0  # children that answered their ping
        self._on_ready: Callable[[], None] | None = None  # gives a newly ready child an item
        self._start_error: BaseException | None = None
        self._launcher: threading.Thread | None = None
        self._retiring: threading.Thread | None = None  # see retire()
        self._forked = False
        if workers > 1:
            _check_not_bootstrapping()
        _STATE.update(catalog=catalog, renderer=Renderer(catalog, cfg, shared_engine()), error=None)
        if workers > 1:
            _warm(_STATE["renderer"], warm_tasks)
            try:
                ctx = mp_context()
                if ctx.get_start_method() == "fork":
                    self._fork_children(ctx)
                    return
                sweep_payloads()
                # The catalog goes through a file, not the start pipe: a child that
                # dies before reading a large payload would block the parent's write.
                self._payload = _write_payload(catalog)
                self._pool = ProcessPoolExecutor(
                    workers - 1,
                    mp_context=ctx,
                    initializer=_init,
                    initargs=(self._payload, cfg, dict(os.environ)),
                )
                self._launcher = threading.Thread(
                    target=self._launch, name="flan-export-start", daemon=True
                )
                self._launcher.start()
            except BaseException:
                self.close(broken=True)
                raise

    @property
    def forked(self) -> bool:
        """Whether the children were forked from this process (see :func:`fork_refusal`)."""
        return self._forked

    def _fork_children(self, ctx: mp.context.BaseContext) -> None:
        """Fork every child now, on this thread (just checked safe: nothing may
        start a thread in between), each holding this process's catalog and
        renderer. Each answers a ping once it ran the main module again."""
        self._pool = ProcessPoolExecutor(
            self.workers - 1, mp_context=ctx, initializer=_init_forked, initargs=(_main_to_rerun(),)
        )
        # Frozen objects are left alone by the children's garbage collector (which
        # would otherwise write to, and so copy, every page of the parent's objects).
        freeze = gc.get_freeze_count() == 0
        if freeze:
            gc.freeze()
        try:
            with warnings.catch_warnings():
                # Python >= 3.12 warns of any fork in a process with threads; the
                # threads were checked above (fork_refusal)
                warnings.simplefilter("ignore", DeprecationWarning)
                # the first submit forks every child, before the pool starts its thread
                pings = [self._pool.submit(_ping, i) for i in range(self.workers - 1)]
        except OSError as e:  # no process could be created (EAGAIN, ENOMEM)
            raise FlanDataError(
                f"could not start an export worker process ({type(e).__name__}: {e}); "
                "use workers=1 to export without worker processes"
            ) from None
        finally:
            if freeze:
                gc.unfreeze()
        self._forked = True
        with self._lock:
            self._pings = pings
        for f in pings:
            f.add_done_callback(self._answered)

    def _launch(self) -> None:
        """Start the children (on the launcher thread: creating one waits for the
        forkserver's imports); each answers a ping once it holds the catalog. A
        child that dies while starting is noticed at the next work item or by
        check_started()."""
        pool = self._pool
        try:
            for i in range(self.workers - 1):
                assert pool is not None
                f = pool.submit(_ping, i)
                with self._lock:
                    self._pings.append(f)
                f.add_done_callback(self._answered)
        except BrokenProcessPool:
            pass  # reported through the pings that exist, or by check_started()
        except BaseException as e:  # noqa: BLE001 - no process could be created
            if self._pool is not None:  # not closed meanwhile
                self._start_error = e

    def _answered(self, f: Any) -> None:
        if f.cancelled() or f.exception() is not None:
            return
        with self._lock:
            self._ok = True
            self._ready += 1
            feed = self._on_ready
            all_in = self._ready == self.workers - 1
        payload = self._payload
        if all_in and payload is not None:
            Path(payload).unlink(missing_ok=True)  # every child has read it
        if feed is not None:
            feed()

    def check_started(self) -> None:
        """Wait until every child answered; raise how to fix it when one could not start."""
        if self._pool is None or (self._ok and self._ready == self.workers - 1):
            return
        if self._launcher is not None:
            self._launcher.join()
        self._raise_start_error()
        self._gather(self._pings)
        self._ok = True

    def _raise_start_error(self) -> None:
        e = self._start_error
        if e is not None:
            self.close(broken=True)
            raise FlanDataError(
                f"could not start an export worker process ({type(e).__name__}: {e}); "
                "use workers=1 to export without worker processes"
            ) from None

    def _check_pings(self) -> None:
        self._raise_start_error()
        with self._lock:
            pings = list(self._pings)
        for f in pings:
            if f.done():
                if f.exception() is None:
                    self._ok = True
                else:
                    self._gather([f])  # raises the start error (or the guard advice)

    def _gather(self, futures) -> list[Any]:
        futures = list(futures)
        try:
            wait(futures, return_when=FIRST_EXCEPTION)
            return [f.result() for f in futures]
        except BrokenProcessPool:
            self.close(broken=True)
            raise FlanDataError(self._broken_message()) from None

    def _broken_message(self) -> str:
        if not self._started:
            return GUARD_HINT
        return (
            "an export worker process died (killed by the OS, out of memory?); "
            "nothing finished is lost: rerun the same command to resume"
        )

    @property
    def _started(self) -> bool:
        return self._ok

    def map(self, fn, items) -> Iterator[Any]:
        """``fn`` over ``items``; results in input order."""
        items = list(items)
        if self._pool is None:
            return map(fn, items)
        out: list[Any] = [None] * len(items)
        for i, res in self._run_all(fn, items):
            out[i] = res
        return iter(out)

    def _stream(self, fn, args) -> Iterator[Any]:
        """``fn`` over ``args``; results as they complete. Each item (a job or an
        assembly bucket) runs through :func:`~flan_data.export.jobs.released`, in
        the parent or a child: freed memory is handed back when the process holds
        more than :data:`~flan_data.export.jobs.RELEASE_ABOVE`."""
        fn = partial(released, fn)
        if self._pool is None:
            yield from map(fn, args)
            return
        for _i, res in self._run_all(fn, list(args)):
            yield res

    def _run_all(self, fn, items: list[Any]) -> Iterator[tuple[int, Any]]:
        """(index, result) of ``fn`` over ``items``, as they complete.

        The items are cut in two runs: the parent's (the first ``1 /
        workers`` of them) and the children's (the rest); each side claims its
        own in order, so a process's consecutive jobs are consecutive record
        ranges (a Parquet decoder goes on where its last job stopped instead of
        decoding a row group again for every other job). A side that ran out
        takes the other's last item; the parent takes the children's next one
        while no child has started. Each child gets an item once it has started
        (answered its ping) and its next one the moment its last one is done (a
        done-callback, run by the pool's own thread), so children never wait
        for the parent to finish an item, and no item sits queued behind a
        busy or starting child. An item that cannot be handed to a child goes
        back to the parent."""
        assert self._pool is not None
        pool = self._pool
        lock = threading.Lock()
        n = len(items)
        mid = -(-n // self.workers)
        # [par[0], par[1]): what is left of the parent's run; [kid[0], kid[1]): of the children's
        par, kid = [0, mid], [mid, n]
        back: list[int] = []  # items a child could not take: the parent runs them
        handing = [0]  # items claimed for a child, not yet in flight or back
        inflight: dict[Any, int] = {}
        finished: queue.SimpleQueue = queue.SimpleQueue()  # done futures; None: an item came back

        def claim(for_child: bool = False) -> int | None:
            with lock:
                if back and not for_child:
                    return back.pop()
                own, other = (kid, par) if for_child else (par, kid)
                if own[0] < own[1]:
                    i = own[0]
                    own[0] += 1
                elif other[0] < other[1]:
                    if not for_child and not self._ready:
                        i = other[0]  # no child yet: go on in order
                        other[0] += 1
                    else:
                        other[1] -= 1
                        i = other[1]
                else:
                    return None
                handing[0] += for_child
                return i

        def feed(_done: Any = None) -> None:
            if _done is not None:
                finished.put(_done)
            i = claim(for_child=True)
            if i is None:
                return
            try:
                f = pool.submit(fn, items[i])
            except RuntimeError:  # the pool was shut down or broke (an error elsewhere)
                with lock:
                    back.append(i)
                    handing[0] -= 1
                finished.put(None)
                return
            with lock:
                inflight[f] = i
                handing[0] -= 1
            f.add_done_callback(feed)

        def drain(block: bool) -> Iterator[tuple[int, Any]]:
            while True:
                try:
                    f = finished.get(block=block)
                except queue.Empty:
                    return
                if f is None:
                    return
                with lock:
                    i = inflight.pop(f)
                res = f.result()  # a child's error (or a broken pool) is raised here
                self._ok = True
                yield i, res
                block = False

        try:
            with self._lock:
                self._on_ready = feed
                ready = self._ready
            for _ in range(ready):
                feed()
            while True:
                mine = claim()
                if mine is not None:
                    res = fn(items[mine])
                    yield mine, res
                    self._check_pings()
                    yield from drain(block=False)
                    continue
                with lock:
                    left = len(inflight) + handing[0] + len(back)
                if not left:
                    break
                yield from drain(block=True)
        except BrokenProcessPool:
            self.close(broken=True)
            raise FlanDataError(self._broken_message()) from None
        finally:
            with self._lock:
                self._on_ready = None
            with lock:
                par[0], kid[0] = par[1], kid[1]  # hand out nothing more
                back.clear()
                pending = list(inflight)
            for f in pending:
                f.cancel()

    def run_jobs(self, jobs: Sequence[TaskJob], spill: Path) -> Iterator[JobResult]:
        # Biggest jobs first keeps the workers busy until the end.
        order = sorted(jobs, key=lambda j: -sum(c for _, c, _ in j.formats))
        return self._stream(_run, [(j, spill) for j in order])

    def assemble(
        self,
        num_shards: int,
        spill: Path,
        out: Path,
        job_indices: list[int],
        output=None,
        bucket_shards: int = 1,
    ) -> Iterator[dict[str, Any]]:
        """Shard infos, a spill bucket (``bucket_shards`` shards) per work item.

        Shards are written without fsync (``sync=False``): the export's
        :class:`~flan_data.export.writer.ShardSyncer` syncs them in the parent,
        beside the assembly, before their spill is freed or a manifest written."""
        items = [(b, num_shards, spill, out, job_indices, output, bucket_shards, False)
                 for b in range(-(-num_shards // bucket_shards))]  # fmt: skip
        for infos in self._stream(_assemble, items):
            yield from infos

    def retire(self) -> None:
        """Let the children exit now, in the background: the export has no more
        work for them (called once the shards are assembled, so their exit
        overlaps the parent's manifest). :meth:`close` waits for them. Work
        handed to the executor afterwards runs in this process."""
        pool = self._pool
        if pool is None or self._retiring is not None:
            return
        if self._launcher is not None:
            self._launcher.join()
        self._retiring = threading.Thread(
            target=partial(pool.shutdown, wait=True, cancel_futures=True),
            name="flan-export-retire",
            daemon=True,
        )
        self._retiring.start()

    def close(self, broken: bool = False) -> None:
        """Stop the children (waiting for them unless ``broken``) and delete the
        catalog file; safe to call twice."""
        from .jobs import _RUNS

        _RUNS.close()
        if _ENGINE and len(_ENGINE[0]._templates) > KEEP_TEMPLATES:
            _ENGINE.clear()
        pool, self._pool = self._pool, None
        retiring, self._retiring = self._retiring, None
        if retiring is not None and not broken:
            retiring.join()  # the children's exit, started by retire()
        if pool is not None:
            if self._launcher is not None and not broken:
                self._launcher.join()
            pool.shutdown(wait=not broken, cancel_futures=True)
        if self._payload is not None:
            Path(self._payload).unlink(missing_ok=True)
            self._payload = None
