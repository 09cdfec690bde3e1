"""The local executor: a process pool (or the current process for one worker).

Workers load the catalog once and keep a renderer whose compiled templates are
reused across jobs. Results do not depend on the number of workers.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..catalog import Catalog
from ..errors import FlanDataError
from ..render import RenderConfig, Renderer
from ..sources import open_task_source
from .jobs import JobResult, TaskJob, assemble_shard, run_job

_STATE: dict[str, Any] = {}


def _init(root: Path, files: Sequence[Path], cfg: RenderConfig) -> None:
    # An initializer that raises makes multiprocessing respawn workers forever;
    # keep the error and raise it from the first task instead.
    try:
        cat = Catalog.load(root, extra_files=[f for f in files if not _inside(f, root)])
        _STATE.update(catalog=cat, renderer=Renderer(cat, cfg), error=None)
    except Exception as e:  # noqa: BLE001 - reported by _state()
        _STATE.update(error=e)


def _state(key: str) -> Any:
    err = _STATE.get("error")
    if err is not None:
        raise FlanDataError(f"an export worker could not start: {err}")
    return _STATE[key]


def _inside(f: Path, root: Path) -> bool:
    try:
        f.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


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


def _assemble(args: tuple) -> dict[str, Any]:
    return assemble_shard(*args)


class LocalExecutor:
    """Runs export work units in ``workers`` processes (in-process when 1)."""

    def __init__(self, catalog: Catalog, cfg: RenderConfig, workers: int = 1):
        self.workers = workers
        self._pool = None
        if workers > 1:
            ctx = mp.get_context("spawn")  # fork + pyarrow threads can deadlock
            self._pool = ctx.Pool(
                workers, initializer=_init, initargs=(catalog.root, catalog.files, cfg)
            )
        else:
            _STATE.update(catalog=catalog, renderer=Renderer(catalog, cfg))

    def map(self, fn, items) -> Iterator[Any]:
        items = list(items)
        if self._pool is None:
            return map(fn, items)
        return iter(
            self._pool.map(fn, items, chunksize=max(1, len(items) // (self.workers * 8) or 1))
        )

    def run_jobs(self, jobs: Sequence[TaskJob], spill: Path) -> Iterator[JobResult]:
        # Biggest jobs first keeps the workers busy until the end.
        order = sorted(jobs, key=lambda j: -sum(c for _, c, _ in j.formats))
        args = [(j, spill) for j in order]
        if self._pool is None:
            yield from map(_run, args)
        else:
            yield from self._pool.imap_unordered(_run, args)

    def assemble(
        self, num_shards: int, spill: Path, out: Path, job_indices: list[int], output=None
    ) -> Iterator[dict[str, Any]]:
        args = [(s, num_shards, spill, out, job_indices, output) for s in range(num_shards)]
        if self._pool is None:
            yield from map(_assemble, args)
        else:
            yield from self._pool.imap_unordered(_assemble, args)

    def close(self) -> None:
        from .jobs import _RUNS

        _RUNS.close()
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None
