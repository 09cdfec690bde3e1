"""Work units of an export: one job per task, pure given (plan, seed, catalog).

A job reads its task's train split twice: once to collect the few-shot pool (a
seeded sample of record indices) and once to render the selected records. Each
rendered row gets a global position from a seeded permutation of
``[0, total)``; the row goes to shard ``position // shard_rows``. Jobs write
one spill file per shard they touch; shard assembly later sorts by position.
Nothing depends on which worker runs which job, so the output is the same for
any number of workers (or executors).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..catalog import Catalog
from ..errors import FlanDataError, RecordError
from ..render import Exemplar, Renderer, is_fewshot_format
from ..seeding import derive_seed
from ..sources import open_task_source
from .permute import permute
from .writer import POS, SPILL_SCHEMA, write_table

TRAIN = "train"
POOL_SIZE = 512
POOL_WINDOW = 8
CHUNK_ROWS = 25_000  # output rows per job: big tasks split into record ranges


@dataclass(frozen=True)
class TaskJob:
    """Everything one worker needs to render one task's rows."""

    index: int  # unique job number (tasks in plan order, then record-range chunks)
    task: str
    size: int  # records in the train split
    formats: tuple[tuple[str, int, int], ...]  # (format, count, global offset of its first row)
    seed: int
    total: int
    shard_rows: int
    num_shards: int
    source: str
    source_dirs: Mapping[str, str] = field(default_factory=dict)
    on_error: str = "fail"
    pool_size: int = POOL_SIZE
    lo: int = 0  # this job renders the rows whose record index is in [lo, hi)
    hi: int | None = None


@dataclass
class JobResult:
    index: int
    task: str
    rows: int
    skipped: dict[str, int]
    shards: list[int]


SLOT_BLOCK = 1 << 18


def selected_blocks(job: TaskJob, fmt: str, count: int):
    """Record indices for ``count`` rows of ``fmt``, as (first slot, indices) blocks:
    a seeded permutation of the task's records, walked again (with a new key)
    when more rows than records are needed. Blocks keep memory bounded."""
    n = job.size
    slot = 0
    while slot < count:
        rep, off = divmod(slot, n)
        take = min(n - off, count - slot, SLOT_BLOCK)
        key = derive_seed(job.seed, job.task, fmt, "select", rep)
        yield slot, permute(np.arange(off, off + take), n, key)
        slot += take


def _pool_indices(job: TaskJob) -> set[int]:
    # A seeded sample from the first POOL_WINDOW × pool_size records: every
    # chunk job of a task builds the same pool without reading the whole split.
    window = min(job.size, job.pool_size * POOL_WINDOW)
    k = min(job.pool_size, window)
    return set(permute(np.arange(k), window, derive_seed(job.seed, job.task, "pool")).tolist())


def run_job(job: TaskJob, catalog: Catalog, renderer: Renderer, spill_dir: Path) -> JobResult:
    """Render one task's rows into per-shard spill files under ``spill_dir/<index>``."""
    final = spill_dir / f"{job.index:06d}"
    if final.is_dir():  # finished before a crash: keep it
        shards = sorted({int(p.stem.split("-")[0]) for p in final.glob("*.arrow")})
        skipped = _read_skipped(final)
        return JobResult(job.index, job.task, -1, skipped, shards)
    tr = renderer.task_renderer(job.task)
    src = open_task_source(catalog, tr.task, job.source, job.source_dirs)

    # Every output row as (record index, format number, slot, global row number),
    # sorted by record index so one sequential pass over the source feeds them.
    fmts = [f for f, _, _ in job.formats]
    hi = job.size if job.hi is None else job.hi
    # Keep only this chunk's rows while streaming slot blocks: memory is
    # O(rows of the chunk), whatever the task's size.
    rec_l, fmt_l, slot_l = [], [], []
    for k, (fmt, count, _offset) in enumerate(job.formats):
        for first, idx in selected_blocks(job, fmt, count):
            keep = (idx >= job.lo) & (idx < hi)
            rec_l.append(idx[keep])
            slot_l.append(np.arange(first, first + idx.size, dtype=np.int64)[keep])
            fmt_l.append(np.full(int(keep.sum()), k, dtype=np.int64))
    recs = np.concatenate(rec_l) if rec_l else np.zeros(0, dtype=np.int64)
    order = np.argsort(recs, kind="stable")
    recs, fmt_k, slots = recs[order], np.concatenate(fmt_l)[order], np.concatenate(slot_l)[order]
    offsets = np.array([off for _, _, off in job.formats], dtype=np.int64)
    # global position of each row in the shuffled output
    pos = permute(offsets[fmt_k] + slots, job.total, derive_seed(job.seed, "order"))
    del rec_l, fmt_l, slot_l, order

    needs_pool = (
        any(is_fewshot_format(f) for f, c, _ in job.formats if c) and not tr.task.exemplar_field
    )
    pool: list[Exemplar] | None = None
    skipped: dict[str, int] = {}
    if needs_pool:
        pidx = _pool_indices(job)
        last = max(pidx) if pidx else -1
        pool = []
        for i, (eid, rec) in enumerate(src.read(TRAIN)):
            if i > last:
                break
            if i in pidx:
                try:
                    pool.append(tr.exemplar(eid, rec))
                except RecordError as e:
                    if job.on_error == "fail":
                        raise
                    _count(skipped, f"pool: {_reason(e)}")

    tmp = spill_dir / f".tmp-{job.index:06d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    writer = _SpillWriter(tmp, job.shard_rows)
    # pending[(fmt number, repeat)] = list of (row number in the sorted arrays, eid, raw, canonical)
    pending: dict[tuple[int, int], list[tuple[int, str, Any, Any]]] = {}
    n_pending = 0
    j = 0  # pointer into the sorted rows
    n_rows = len(recs)
    seen = 0

    def flush() -> None:
        nonlocal n_pending
        for (k, rep), items in sorted(pending.items()):
            errs: list[tuple[int, RecordError]] | None = None if job.on_error == "fail" else []
            cols = tr.render_batch([(e, r) for _, e, r, _ in items], split=TRAIN, fmt=fmts[k], seed=derive_seed(job.seed, "export", fmts[k], rep),
                                   pool=pool, canonicals=[c for _, _, _, c in items], errors=errs)  # fmt: skip
            for _, e in errs or ():
                _count(skipped, _reason(e))
            rows = [items[i][0] for i in cols.pop("index")]
            cols[POS] = pos[rows].tolist()
            writer.add(cols)
        pending.clear()
        n_pending = 0

    for i, (eid, rec) in enumerate(src.read(TRAIN)):
        seen = i + 1
        if j >= n_rows:
            break
        if i < job.lo or recs[j] != i:  # records before this chunk are read and skipped
            continue
        try:
            canon = tr.canonical(eid, rec, TRAIN)
        except RecordError as e:
            canon = None
            if job.on_error == "fail":
                raise
            start = j
            while j < n_rows and recs[j] == i:
                j += 1
            _count(skipped, _reason(e), j - start)
            continue
        while j < n_rows and recs[j] == i:
            k, slot = int(fmt_k[j]), int(slots[j])
            pending.setdefault((k, slot // job.size), []).append((j, eid, rec, canon))
            n_pending += 1
            j += 1
        if n_pending >= BATCH_ROWS:
            flush()
    flush()
    if j < n_rows and seen < hi:
        raise FlanDataError(
            f"task {job.task!r}: the source has {seen} train records now but {job.size} when planned; it changed during the export"
        )
    writer.close()
    if skipped:
        from .writer import dumps

        (tmp / "skipped.json").write_bytes(dumps(skipped))
    try:
        os.replace(tmp, final)
    except OSError:
        if not final.is_dir():
            raise
        # Another copy of this job (a straggler of a killed run) published the
        # same deterministic output first: keep it.
        shutil.rmtree(tmp, ignore_errors=True)
    return JobResult(job.index, job.task, writer.rows, skipped, sorted(writer.shards))


BATCH_ROWS = 2000


class _SpillWriter:
    """Buffers rendered rows and writes them as per-shard spill parts, so a job's
    memory is bounded by the buffer, not by the task's size."""

    def __init__(self, folder: Path, shard_rows: int, flush_rows: int = 50_000):
        self.folder, self.shard_rows, self.flush_rows = folder, shard_rows, flush_rows
        self.buf: dict[str, list[Any]] = {f.name: [] for f in SPILL_SCHEMA}
        self.rows = 0
        self.part = 0
        self.shards: set[int] = set()

    def add(self, cols: dict[str, list[Any]]) -> None:
        for k, v in cols.items():
            self.buf[k].extend(v)
        if len(self.buf[POS]) >= self.flush_rows:
            self._write()

    def _write(self) -> None:
        if not self.buf[POS]:
            return
        table = pa.table(self.buf, schema=SPILL_SCHEMA)
        shard_of = pc.divide(table[POS], pa.scalar(self.shard_rows, pa.int64()))
        for s in sorted(set(shard_of.to_pylist())):
            # scratch data inside a folder renamed into place when complete: no fsync needed
            write_table(
                self.folder / f"{s:05d}-{self.part:04d}.arrow",
                table.filter(pc.equal(shard_of, s)),
                sync=False,
            )
            self.shards.add(s)
        self.rows += table.num_rows
        self.part += 1
        self.buf = {f.name: [] for f in SPILL_SCHEMA}

    def close(self) -> None:
        self._write()


def _read_skipped(d: Path) -> dict[str, int]:
    import json

    f = d / "skipped.json"
    return json.loads(f.read_text()) if f.is_file() else {}


def _reason(e: RecordError) -> str:
    if getattr(e, "reason", None):
        return e.reason
    msg = str(e)
    # Drop the record id so identical causes aggregate into one counter.
    return msg.split(": ", 1)[1] if ": " in msg else msg


def _count(d: dict[str, int], key: str, n: int = 1) -> None:
    d[key[:200]] = d.get(key[:200], 0) + n


def make_jobs(plan, sizes: Mapping[str, int], *, seed: int, shard_rows: int, source: str,
              source_dirs: Mapping[str, str], on_error: str) -> tuple[list[TaskJob], int]:  # fmt: skip
    """Jobs in plan order and the number of shards."""
    total = sum(e.count for e in plan.entries)
    num_shards = max(1, -(-total // shard_rows))
    jobs: list[TaskJob] = []
    offset = 0
    per_task: dict[str, list[tuple[str, int, int]]] = {}
    order: list[str] = []
    for e in plan.entries:
        if e.task not in per_task:
            per_task[e.task] = []
            order.append(e.task)
        per_task[e.task].append((e.format, e.count, offset))
        offset += e.count
    n_job = 0
    for t in order:
        fm = tuple(x for x in per_task[t] if x[1] > 0)
        if not fm:
            continue
        rows = sum(c for _, c, _ in fm)
        chunks = max(1, min(sizes[t], -(-rows // CHUNK_ROWS)))
        bounds = [sizes[t] * c // chunks for c in range(chunks + 1)]
        for c in range(chunks):
            jobs.append(TaskJob(index=n_job, task=t, size=sizes[t], formats=fm, seed=seed, total=total, shard_rows=shard_rows,
                                num_shards=num_shards, source=source, source_dirs=dict(source_dirs), on_error=on_error,
                                lo=bounds[c], hi=bounds[c + 1]))  # fmt: skip
            n_job += 1
    return jobs, num_shards


def assemble_shard(
    shard: int, num_shards: int, spill_dir: Path, out: Path, job_indices: Sequence[int]
) -> dict[str, Any]:
    """Merge every job's spill for ``shard``, order rows by position, write the shard."""
    import json

    from .writer import SCHEMA, atomic_write_bytes, dumps, read_table, sha256_file, shard_name

    name = shard_name(shard, num_shards)
    record = spill_dir.parent / "shards" / f"{name}.json"
    if record.is_file() and (out / name).is_file():
        info = json.loads(record.read_text())
        if sha256_file(out / name) == info["sha256"]:
            return info  # finished before a crash: keep it
    parts = []
    for j in job_indices:
        for f in sorted((spill_dir / f"{j:06d}").glob(f"{shard:05d}-*.arrow")):
            parts.append(read_table(f))
    if parts:
        table = pa.concat_tables(parts)
        table = table.sort_by(POS).drop_columns([POS])
    else:
        table = SCHEMA.empty_table()
    nbytes, digest = write_table(out / name, table.cast(SCHEMA))
    info = {"file": name, "rows": table.num_rows, "bytes": nbytes, "sha256": digest}
    record.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(record, dumps(info))
    return info
