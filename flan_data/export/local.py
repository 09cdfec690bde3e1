"""The local executor: this process plus a pool of ``workers - 1`` children.

The pool starts once per export and serves every stage (counting, jobs, shard
assembly); the parent process works on the same queue of items. Workers receive the parsed catalog as pickled bytes instead of
parsing 1,995 tasks' YAML again (unpickling is ~10× faster), and keep a
renderer whose compiled templates are reused across jobs. Results do not
depend on the number of workers.

Workers are spawned (fork + pyarrow threads can deadlock), so they re-import
the main module. A script that starts an export at import time, without an
``if __name__ == "__main__":`` guard, makes every worker die while starting;
the executor notices (at the next work item, or at :meth:`LocalExecutor.check_started`,
which the export calls before writing shards) and fails with that advice instead of hanging.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import queue
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from ..catalog import Catalog
from ..catalog_cache import dumps_catalog
from ..errors import FlanDataError
from ..render import RenderConfig, Renderer
from ..sources import open_task_source
from .jobs import JobResult, TaskJob, assemble_bucket, run_job

_STATE: dict[str, Any] = {}

GUARD_HINT = (
    "export worker processes exited while starting. Worker processes are spawned and "
    "re-import your main script: if a script calls export_mixture(..., workers > 1) or "
    "runs `flan export` code at import time, put that call under "
    '`if __name__ == "__main__":`; or use workers=1.'
)


def _init(payload: str, cfg: RenderConfig) -> None:
    # An initializer that raises breaks the whole pool with a vague message;
    # keep the error and raise it from the first task instead.
    try:
        cat = pickle.loads(Path(payload).read_bytes())
        _STATE.update(catalog=cat, renderer=Renderer(cat, cfg), error=None)
    except Exception as e:  # noqa: BLE001 - reported by _state()
        _STATE.update(error=e)


def _state(key: str) -> Any:
    err = _STATE.get("error")
    if err is not None:
        raise FlanDataError(f"an export worker could not start: {err}")
    return _STATE[key]


def _ping(_: int) -> bool:
    _state("catalog")
    return True


def count_one(args: tuple[Path, str, str, Mapping[str, str]]) -> tuple[int, bool] | str:
    """(train-split size, whether the source can seek) of one task, or the
    reason it cannot be read. Sizes come from metadata where the format has
    them (Parquet footer, Arrow batches, ``len`` of a save_to_disk split)."""
    _root, name, source, dirs = args
    cat: Catalog = _state("catalog")
    try:
        src = open_task_source(cat, cat.task(name), source, dirs)
        return src.count("train"), src.seekable("train")
    except FlanDataError as e:
        return str(e)


def _run(args: tuple[TaskJob, Path]) -> JobResult:
    job, spill = args
    return run_job(job, _state("catalog"), _state("renderer"), spill)


def _assemble(args: tuple) -> list[dict[str, Any]]:
    return assemble_bucket(*args)


class LocalExecutor:
    """Runs export work units in ``workers`` processes: this process and
    ``workers - 1`` spawned children (in-process only when 1).

    The parent is one of the workers: it renders from the first moment, with
    the catalog and compiled templates it already holds, while the children
    start (spawn + imports + catalog, ~1 s); it would otherwise sit idle
    waiting for results. Work items go out in order (jobs biggest first); each child holds one
    item at a time, refilled the moment it finishes. Which process runs which
    item never changes the output.
    """

    def __init__(self, catalog: Catalog, cfg: RenderConfig, workers: int = 1):
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._payload: str | None = None
        self._pings: list[Any] = []
        self._ok = False  # a child has answered: it started
        _STATE.update(catalog=catalog, renderer=Renderer(catalog, cfg), error=None)
        if workers > 1:
            # The catalog goes through a file, not the spawn pipe: a child that
            # dies before reading a large payload would block the parent's write.
            fd, self._payload = tempfile.mkstemp(prefix="flan-catalog-", suffix=".pickle")
            with os.fdopen(fd, "wb") as f:
                f.write(dumps_catalog(catalog))
            self._pool = ProcessPoolExecutor(
                workers - 1,
                mp_context=mp.get_context("spawn"),  # fork + pyarrow threads can deadlock
                initializer=_init,
                initargs=(self._payload, cfg),
            )
            # Start the children now without waiting: a child that dies while
            # starting (a script without a __main__ guard, a catalog it cannot
            # load) is noticed at the next work item or by check_started().
            self._pings = [self._pool.submit(_ping, i) for i in range(workers - 1)]

    def check_started(self) -> None:
        """Wait until every child answered; raise how to fix it when one could not start."""
        if self._pool is None or self._ok:
            return
        self._gather(self._pings)
        self._ok = True

    def _check_pings(self) -> None:
        for f in self._pings:
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
        """``fn`` over ``args``; results as they complete."""
        if self._pool is None:
            yield from map(fn, args)
            return
        for _i, res in self._run_all(fn, list(args)):
            yield res

    def _run_all(self, fn, items: list[Any]) -> Iterator[tuple[int, Any]]:
        """(index, result) of ``fn`` over ``items``, as they complete.

        One shared queue in item order: the parent claims its next item
        first, then each idle child gets one; a child's next item is handed
        out the moment its last one is done (a done-callback, run by the
        pool's own thread), so children never wait for the parent to finish
        an item, and no item sits queued behind a busy child at the end."""
        assert self._pool is not None
        pool = self._pool
        lock = threading.Lock()
        nxt = [0]
        inflight: dict[Any, int] = {}
        finished: queue.SimpleQueue = queue.SimpleQueue()

        def claim() -> int | None:
            with lock:
                if nxt[0] >= len(items):
                    return None
                nxt[0] += 1
                return nxt[0] - 1

        def feed(_done: Any = None) -> None:
            if _done is not None:
                finished.put(_done)
            i = claim()
            if i is None:
                return
            try:
                f = pool.submit(fn, items[i])
            except RuntimeError:  # the pool was shut down (an error elsewhere)
                return
            with lock:
                inflight[f] = i
            f.add_done_callback(feed)

        def drain(block: bool) -> Iterator[tuple[int, Any]]:
            while True:
                try:
                    f = finished.get(block=block)
                except queue.Empty:
                    return
                with lock:
                    i = inflight.pop(f)
                res = f.result()  # a child's error (or a broken pool) is raised here
                self._ok = True
                yield i, res
                block = False

        try:
            mine = claim()
            for _ in range(self.workers - 1):
                feed()
            while mine is not None:
                res = fn(items[mine])
                yield mine, res
                self._check_pings()
                yield from drain(block=False)
                mine = claim()
            while True:
                with lock:
                    left = len(inflight)
                if not left:
                    break
                yield from drain(block=True)
        except BrokenProcessPool:
            self.close(broken=True)
            raise FlanDataError(self._broken_message()) from None
        finally:
            with lock:
                nxt[0] = len(items)  # hand out nothing more
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
        """Shard infos, a spill bucket (``bucket_shards`` shards) per work item."""
        items = [(b, num_shards, spill, out, job_indices, output, bucket_shards)
                 for b in range(-(-num_shards // bucket_shards))]  # fmt: skip
        for infos in self._stream(_assemble, items):
            yield from infos

    def close(self, broken: bool = False) -> None:
        from .jobs import _RUNS

        _RUNS.close()
        if self._pool is not None:
            self._pool.shutdown(wait=not broken, cancel_futures=True)
            self._pool = None
        if self._payload is not None:
            Path(self._payload).unlink(missing_ok=True)
            self._payload = None
