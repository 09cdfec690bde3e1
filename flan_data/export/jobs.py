"""Work units of an export: one job per task, pure given (plan, seed, catalog).

A big task is split into jobs over record ranges ``[lo, hi)``; each job reads
only its range (seeking where the source allows; plus the few-shot pool window
at the start of the split) and inverts the seeded selection permutation to
find which output rows its records feed. Each rendered row gets a global
position from a seeded permutation of ``[0, total)``; the row goes to shard
``position // shard_rows``. Jobs write sorted runs holding one record batch per
bucket (``bucket_shards`` consecutive shards); assembly merges each run's
batch for a bucket and writes its shards. Runs store their buckets last-first,
so the parent frees each bucket's spill (truncating the runs) as soon as its
shards are written and fsynced: peak disk is about the output's size, not twice it.
Nothing depends on which worker runs which job, so the output is the same for
any number of workers (or executors).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from ..catalog import Catalog
from ..errors import FlanDataError, RecordError
from ..render import EMPTY_FEWSHOT, Exemplar, Renderer, drop_empty_fewshot, is_fewshot_format
from ..seeding import SeedPrefix, derive_seed
from ..sources import open_task_source
from ..views import FLAN_DUMP_FIELDS, MESSAGE_TYPE, MESSAGES_TYPE, OutputSpec, add_views
from .permute import permute, unpermute
from .writer import POS, SCHEMA

TRAIN = "train"
POOL_SIZE = 512
CHUNK_ROWS = 25_000  # output rows per job: big tasks split into record ranges
#: A task is split finer when the export is small, so that its jobs keep two
#: workers busy to the end: about ``TARGET_JOBS`` jobs per export,
#: ``MIN_CHUNK_ROWS`` to ``CHUNK_ROWS`` rows each. Not finer: a job that starts
#: inside a Parquet row group decodes the group from its start (~1 µs per
#: record skipped), so k jobs per row group cost (k - 1) / 2 groups of extra
#: decoding. The layout depends on the plan only, never on the number of
#: workers (a resume with another ``--workers`` reuses every finished job), and
#: the output never depends on it: rows, seeds and positions are per record,
#: row skip counts add up and a few-shot pool's count once per task
#: (``merge_skips`` in export/__init__.py).
TARGET_JOBS = 8
MIN_CHUNK_ROWS = 5_000


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
    decontam: str | None = None  # folder of the eval n-gram index (export --decontaminate)
    output: OutputSpec = field(default_factory=OutputSpec)  # optional columns (messages, …)
    bucket_shards: int = 1  # shards per spill bucket (see bucket_shards())
    materialized: str | None = None  # the train split's read-once copy (export/materialize.py)
    spill_compression: str | None = None  # of the spill's batches (see spill_compression())


@dataclass
class JobResult:
    index: int
    task: str
    rows: int
    skipped: dict[str, int]
    shards: list[int]


def chunk_rows(job: TaskJob, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The output rows whose record index is in ``[lo, hi)``, as arrays (record
    index, format number, slot), sorted by record index.

    Slot ``s`` of format ``fmt`` reads record ``P(s mod n)`` of the task's ``n``
    records, ``P`` a seeded permutation keyed by ``s // n`` (a new key each
    time more rows than records are needed). The job inverts ``P`` over its own
    records: O(hi - lo) work and memory, whatever the task's size.
    """
    n = job.size
    idx = np.arange(lo, hi, dtype=np.int64)
    rec_l, fmt_l, slot_l = [], [], []
    for k, (fmt, count, _offset) in enumerate(job.formats):
        for rep in range(-(-count // n)):
            take = min(n, count - rep * n)
            off = unpermute(idx, n, derive_seed(job.seed, job.task, fmt, "select", rep))
            keep = off < take
            rec_l.append(idx[keep])
            slot_l.append(off[keep] + rep * n)
            fmt_l.append(np.full(int(keep.sum()), k, dtype=np.int64))
    if not rec_l:
        z = np.zeros(0, dtype=np.int64)
        return z, z, z
    recs = np.concatenate(rec_l)
    order = np.argsort(recs, kind="stable")
    return recs[order], np.concatenate(fmt_l)[order], np.concatenate(slot_l)[order]


def _pool_indices(job: TaskJob) -> set[int]:
    # A seeded index sample over the WHOLE train split (not its first rows): a
    # source sorted by label still gives mixed exemplars. Every chunk job of a
    # task draws the same indices, so all chunks share one pool.
    k = min(job.pool_size, job.size)
    return set(permute(np.arange(k), job.size, derive_seed(job.seed, job.task, "pool")).tolist())


MERGE_GAP = 4096
#: Few-shot pools built in this process, per (task, seed, source, …).
_POOLS: dict[tuple, tuple[list[Exemplar], dict[str, int], Any]] = {}


def _read_pool(src, pidx: set[int], stats: dict[str, int]):
    """(index, id, record) of the sampled pool records, in index order: taken from
    record batches where the source is Arrow underneath (:meth:`Source.take`: only
    those records are converted), else seeking to each where the source allows
    it, else one sequential pass up to the last."""
    if not pidx:
        return
    got = src.take(TRAIN, pidx, stats)  # Arrow-backed: only the sampled rows become dicts
    if got is not None:
        yield from got
        return
    order = sorted(pidx)
    if src.seekable(TRAIN):
        run_lo = prev = order[0]
        runs = []
        for i in order[1:]:
            if i != prev + 1:
                runs.append((run_lo, prev + 1))
                run_lo = i
            prev = i
        runs.append((run_lo, prev + 1))
        # Rows close together are read as one range: a seek decodes a whole
        # batch anyway, so a gap under MERGE_GAP rows costs less than a new seek.
        merged: list[list[int]] = []
        for lo, hi in runs:
            if merged and lo - merged[-1][1] < MERGE_GAP:
                merged[-1][1] = hi
            else:
                merged.append([lo, hi])
        for lo, hi in merged:
            for i, (eid, rec) in enumerate(src.read_range(TRAIN, lo, hi), lo):
                stats["read"] += 1
                if i in pidx:
                    yield i, eid, rec
        return
    last = order[-1]
    for i, (eid, rec) in enumerate(src.read_range(TRAIN, 0, last + 1)):
        stats["read"] += 1
        if i in pidx:
            yield i, eid, rec


def run_job(job: TaskJob, catalog: Catalog, renderer: Renderer, spill_dir: Path) -> JobResult:
    """Render one job's rows into sorted runs under ``spill_dir/<index>``.

    The job reads only its records ``[lo, hi)`` (plus the few-shot pool window
    at the start of the split): :meth:`Source.read_range` seeks there where
    the format allows, so a task split into C chunks is read once, not C times.
    Zero-shot rows of sources that are Arrow underneath render column-wise
    from record batches (:mod:`flan_data.columnar`); should that attempt raise
    anything, the job runs again the row-by-row way, which raises (or words)
    exactly what it always did.
    """
    used: list[bool] = []
    try:
        return _run_job(job, catalog, renderer, spill_dir, used)
    except Exception:
        if not used:
            raise
    return _run_job(job, catalog, renderer, spill_dir, None)


#: Calls of :func:`release_memory` in this process (tests count them).
RELEASES = [0]
#: :func:`release_if_over` hands freed memory back only while the process holds
#: more than this of its own (:func:`anon_rss`): below it the pages freed by a job are simply
#: reused by the next one (handing them back after every job cost ~8% CPU on a
#: 15-task set of the full-size replica: the next job faulted them in again).
#: 384 MiB, not 512: with the column-wise paths' larger batches, two workers each
#: keeping 512 MiB took the full-size replica's process tree over 2 GB.
RELEASE_ABOVE = 384 << 20


def anon_rss() -> int | None:
    """Bytes of anonymous resident memory of this process (resident minus
    file-backed pages, ``/proc/self/statm``: ~10 µs), or None where it cannot be read.

    >>> anon_rss() is None or anon_rss() > 0
    True
    """
    try:
        with open("/proc/self/statm", "rb") as f:
            parts = f.read().split()
        return (int(parts[1]) - int(parts[2])) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def own_rss() -> int | None:
    """Bytes of memory only this process holds (``Private_Dirty`` of
    ``/proc/self/smaps_rollup``): a worker forked from the exporting process
    shares the parent's pages copy-on-write, which :func:`anon_rss` counts.
    Walks the page tables (milliseconds for a big process): asked only once
    :func:`anon_rss` is over the level. None where it cannot be read."""
    try:
        with open("/proc/self/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Private_Dirty:"):
                    return int(line.split()[1]) << 10
    except (OSError, ValueError, IndexError):
        pass
    return None


def release_if_over(level: int | None = None) -> bool:
    """:func:`release_memory` when this process holds over ``level`` bytes of its
    own (:func:`anon_rss`, then :func:`own_rss`; default :data:`RELEASE_ABOVE`), or
    when that cannot be read; whether it released. The executors call it after
    every job and every assembled bucket (:func:`released`)."""
    level = RELEASE_ABOVE if level is None else level
    rss = anon_rss()
    if rss is not None and rss <= level:
        return False
    own = None if rss is None else own_rss()
    if own is not None and own <= level:
        return False
    release_memory()
    return True


def released(fn: Callable[[Any], Any], item: Any) -> Any:
    """``fn(item)``, then :func:`release_if_over`: how an executor runs each job
    and each assembly bucket (``functools.partial(released, fn)`` pickles)."""
    try:
        return fn(item)
    finally:
        release_if_over()


def release_memory() -> None:
    """Give the memory a finished job freed back to the OS. The Arrow pool
    (mimalloc or jemalloc) keeps freed pages for reuse, and glibc's malloc keeps
    free pages inside its heap: on the full-size flan2022 replica a worker held
    300-400 MB of such pages between jobs, and up to 3 GB after jobs over long
    documents, that its next jobs did not need. Cheap (well under a millisecond
    when little was freed); a no-op where the C library has no ``malloc_trim``."""
    RELEASES[0] += 1
    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def drop_job_caches() -> None:
    """Forget what jobs keep for the next job of a task (few-shot pools, rendered
    exemplars and their tables, loaded hub copies) and hand the memory back:
    assembly needs none of it (200-300 MB in a worker of a full-size export).
    They are built again when a later export's jobs need them."""
    from .. import columnar_fs, render
    from ..sources import hf

    _POOLS.clear()
    for c in render._LIVE:
        c.clear()
    render._LIVE.clear()
    for t in columnar_fs._LIVE:
        t.drop()
    columnar_fs._LIVE.clear()
    hf._LOADED.clear()
    release_memory()


#: The spill folder this process last assembled from (its job caches were dropped then).
_ASSEMBLING: dict[str, str | None] = {"spill": None}


def _malloc_trim():
    fn = _TRIM.get("fn", False)
    if fn is False:
        fn = None
        try:
            import ctypes

            fn = getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc only
            if fn is not None:
                fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
        except (OSError, AttributeError, TypeError):  # no C library to load (Windows)
            fn = None
        _TRIM["fn"] = fn
    return fn


_TRIM: dict[str, Any] = {}


def _run_job(
    job: TaskJob, catalog: Catalog, renderer: Renderer, spill_dir: Path, columnar: list | None
) -> JobResult:
    final = spill_dir / f"{job.index:06d}"
    if final.is_dir():
        if (final / RUNS_INDEX).is_file():  # finished before a crash: keep it
            skipped = _read_skipped(final)
            return JobResult(job.index, job.task, -1, skipped, [])
        shutil.rmtree(final)  # spilled by an older flan-data (no run index): render it again
    tr = renderer.task_renderer(job.task)
    src = open_task_source(catalog, tr.task, job.source, job.source_dirs)
    if job.materialized is not None:
        from .materialize import MaterializedSource

        src = MaterializedSource(job.materialized, src)

    fmts = [f for f, _, _ in job.formats]
    hi = job.size if job.hi is None else job.hi
    recs, fmt_k, slots = chunk_rows(job, job.lo, hi)
    offsets = np.array([off for _, _, off in job.formats], dtype=np.int64)
    # global position of each row in the shuffled output
    pos = permute(offsets[fmt_k] + slots, job.total, derive_seed(job.seed, "order"))

    needs_pool = (
        any(is_fewshot_format(f) for f, c, _ in job.formats if c) and not tr.task.exemplar_field
    )
    pool: list[Exemplar] | None = None
    skipped: dict[str, int] = {}
    stats = {"read": 0}
    if needs_pool:
        # Every chunk job of a task builds the same pool: build it once per
        # process (the pool's own skip counts are replayed for each job, so
        # the manifest does not depend on which worker ran which chunk).
        # The task's spec object is part of the key, and the entry keeps it alive,
        # so its id is not reused while the entry is here (a hit is that very
        # object): two catalogs loaded in one process may share task names,
        # seeds and sizes, but never a pool.
        key = (id(tr.task), job.task, job.seed, job.size, job.pool_size, job.source, tuple(sorted(job.source_dirs.items())), job.on_error)  # fmt: skip
        hit = _POOLS.get(key)
        if hit is None:
            built: list[Exemplar] = []
            pskip: dict[str, int] = {}
            for _i, eid, rec in _read_pool(src, _pool_indices(job), stats):
                try:
                    built.append(tr.exemplar(eid, rec))
                except RecordError as e:
                    if job.on_error == "fail":
                        raise
                    _count(pskip, f"pool: {_reason(e)}")
            if len(_POOLS) >= 16:
                _POOLS.pop(next(iter(_POOLS)))
            hit = _POOLS[key] = (built, pskip, tr.task)
        pool = hit[0]  # shared, never modified: the renderer's exemplar cache keys on it
        for k_, n_ in hit[1].items():
            _count(skipped, k_, n_)

    dc = _decontam_filter(job)
    if dc is not None and pool is not None:
        pool = dc.clean_pool(job.task, pool)

    tmp = spill_dir / f".tmp-{job.index:06d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    writer = _RunWriter(tmp, job.shard_rows, spill_schema(job.output), job.bucket_shards,
                        compression=job.spill_compression)  # fmt: skip
    template_index = {ct.spec.id: i for i, ct in enumerate(tr.templates)}
    fast = None
    if columnar is not None and dc is None and len(recs):
        fast = _FastRows.start(job, tr, src, recs, fmt_k, slots, pos, writer, skipped, stats, template_index, pool)  # fmt: skip
        if fast is not None:
            columnar.append(True)
            recs, fmt_k, slots, pos = fast.slow
    # pending[(fmt number, repeat)] = list of (row number in the sorted arrays, eid, raw, canonical)
    pending: dict[tuple[int, int], list[tuple[int, str, Any, Any]]] = {}
    n_pending = 0
    j = 0  # pointer into the sorted rows
    n_rows = len(recs)
    seen = job.lo

    def flush() -> None:
        nonlocal n_pending
        for (k, rep), items in sorted(pending.items()):
            errs: list[tuple[int, RecordError]] | None = None if job.on_error == "fail" else []
            cols = tr.render_batch([(e, r) for _, e, r, _ in items], split=TRAIN, fmt=fmts[k], seed=derive_seed(job.seed, "export", fmts[k], rep),
                                   pool=pool, canonicals=[c for _, _, _, c in items], errors=errs,
                                   turns=job.output.multiturn)  # fmt: skip
            n_empty = drop_empty_fewshot(cols, fmts[k], tr.config.shots)
            if n_empty:
                _count(skipped, EMPTY_FEWSHOT, n_empty)
            if dc is not None:
                cols = dc.filter_rows(job.task, cols)
            for _, e in errs or ():
                _count(skipped, _reason(e))
            rows = [items[i][0] for i in cols.pop("index")]
            writer.add(record_batch(cols, job.output, template_index, pos[rows]))
        pending.clear()
        n_pending = 0

    # plain lists: indexing them per record is much cheaper than numpy scalars
    recs_l, fmt_l, slots_l = recs.tolist(), fmt_k.tolist(), slots.tolist()
    block: list[tuple[int, str, Any]] = []  # selected records, canonicalised together

    def drain() -> None:
        nonlocal j, n_pending
        canons = tr.canonical_many([(e, r) for _, e, r in block], TRAIN)
        for (i, eid, rec), canon in zip(block, canons):
            try:
                if isinstance(canon, RecordError):
                    raise canon
                if dc is not None and tr.task.exemplar_field:
                    canon = dc.clean_field(job.task, canon, tr.task.exemplar_field)
            except RecordError as e:
                if job.on_error == "fail":
                    raise
                start = j
                while j < n_rows and recs_l[j] == i:
                    j += 1
                _count(skipped, _reason(e), j - start)
                continue
            while j < n_rows and recs_l[j] == i:
                k, slot = fmt_l[j], slots_l[j]
                pending.setdefault((k, slot // job.size), []).append((j, eid, rec, canon))
                n_pending += 1
                j += 1
            if n_pending >= BATCH_ROWS:
                flush()
        block.clear()

    if n_rows:
        first = recs_l[0]
        jr = 0  # read-ahead pointer into the sorted rows
        if fast is not None:
            records = fast.records(recs)
        else:  # only the selected records where the source can take them
            records = _take_records(src, recs, stats) or _read_records(src, first, hi, stats)
        for i, eid, rec in records:
            seen = i + 1
            if recs_l[jr] != i:
                continue
            while jr < n_rows and recs_l[jr] == i:
                jr += 1
            block.append((i, eid, rec))
            if len(block) >= CANON_BLOCK:
                drain()
            if jr >= n_rows:
                break
        drain()
        flush()
    if fast is not None:
        seen = max(seen, fast.finish())
    if j < n_rows and seen < hi:
        raise FlanDataError(
            f"task {job.task!r}: the source has {seen} train records now but {job.size} when planned; it changed during the export"
        )
    writer.close()
    READ_STATS["records_read"] += stats["read"]
    READ_STATS["converted"] = READ_STATS.get("converted", 0) + stats.get("converted", 0)
    READ_STATS["rows"] += writer.rows
    if skipped:
        from .writer import dumps

        (tmp / "skipped.json").write_bytes(dumps(skipped))
    if dc is not None:
        dc.save(tmp)
    try:
        os.replace(tmp, final)
    except OSError:
        if not final.is_dir():
            raise
        # Another copy of this job (a straggler of a killed run) published the
        # same deterministic output first: keep it.
        shutil.rmtree(tmp, ignore_errors=True)
    return JobResult(job.index, job.task, writer.rows, skipped, sorted(writer.shards))


def _read_records(src, first: int, hi: int, stats: dict[str, int]):
    """(index, id, record) of records ``[first, hi)``, counted as read."""
    for i, (eid, rec) in enumerate(src.read_range(TRAIN, first, hi), first):
        stats["read"] += 1
        stats["converted"] = stats.get("converted", 0) + 1
        yield i, eid, rec


def _take_records(src, recs: np.ndarray, stats: dict[str, int]):
    """(index, id, record) of the selected records ``recs`` only (sorted, with
    repeats), read through :meth:`Source.take` where the source can (Arrow
    underneath, read-once copies): the records between them are not made into
    Python objects (a job of a source much bigger than the draw reads its range
    but converts only its rows). None where it cannot."""
    if not len(recs):
        return None
    return src.take(TRAIN, np.unique(recs).tolist(), stats)


#: Rows of one (format, repeat) rendered column-wise at a time, and at most this
#: many bytes of their source records: 8,192 few-shot rows over news articles
#: were ~130 MB of prompts, held a few times over while they were joined.
FAST_ROWS = 8192
FAST_BYTES = 8 << 20


class _FastRows:
    """A job's rows rendered column-wise from the source's record batches
    (:meth:`Source.read_batches`), each row selected by index arrays, never by
    a loop over records: zero-shot formats by :mod:`flan_data.columnar`,
    few-shot formats with the task's pool by :mod:`flan_data.columnar_fs`.
    The job's other rows (formats neither can take) are ``slow``: :meth:`records` yields their records
    as dicts from the same batches (the source is read once) for the row-by-row
    loop. Rows the column-wise renderer cannot decide go through
    ``render_batch`` (skips counted as before); with ``--on-error fail`` an
    error there raises and the job reruns the row-by-row way (same message)."""

    def __init__(self, job, tr, tc, batches, rows, slow, writer, skipped, stats, template_index, pool=None):  # fmt: skip
        self.job, self.tr, self.tc, self.batches = job, tr, tc, batches
        self.pool = pool
        self.recs, self.fmt_k, self.slots, self.pos = rows
        self.slow = slow
        self.writer, self.skipped, self.stats = writer, skipped, stats
        self.template_index = template_index
        self.end = int(self.recs[-1]) + 1
        self.seen = 0
        self.pending: dict[tuple[int, int], list] = {}
        self.n_pending: dict[tuple[int, int], int] = {}
        self.b_pending: dict[int, int] = {}  # bytes of the pending source rows
        self._gen = None
        self.fmts = [f for f, _, _ in job.formats]

    @classmethod
    def start(cls, job, tr, src, recs, fmt_k, slots, pos, writer, skipped, stats, template_index, pool=None):  # fmt: skip
        from .. import columnar, columnar_fs, columnar_own

        if not columnar.ENABLED:
            return None
        try:
            tc = columnar.TaskColumns.of(tr)
            multi = job.output.multiturn
            ks = [k for k, (f, _, _) in enumerate(job.formats)
                  if tc.supports(f) or columnar_fs.supports(tc, f, pool, multi)
                  or columnar_own.supports(tc, f, multi)] if tc else []  # fmt: skip
            fast = np.isin(fmt_k, ks)
            if not fast.any():
                return None
            batches = src.read_batches(TRAIN, int(recs[0]), int(recs[-1]) + 1)
        except Exception:  # noqa: BLE001 - the row-by-row path decides (and raises what it always raised)
            return None
        if batches is None:
            return None
        rows = (recs[fast], fmt_k[fast], slots[fast], pos[fast])
        slow = (recs[~fast], fmt_k[~fast], slots[~fast], pos[~fast])
        return cls(job, tr, tc, batches, rows, slow, writer, skipped, stats, template_index, pool)

    def records(self, slow: np.ndarray):
        """Read the batches: render the zero-shot rows, yield ``(index, id, record)``
        of each record the ``slow`` rows (sorted record indices) read."""
        self._gen = self._run(slow)
        return self._gen

    def finish(self) -> int:
        """Read what is left, render every pending row; the records read so far."""
        if self._gen is None:
            self._gen = self._run(None)
        for _ in self._gen:
            pass
        for key in sorted(self.pending):
            self._flush(key)
        if self.seen < self.end:
            # the source ended early: it changed since planning (the row-by-row rerun says so)
            raise FlanDataError(f"task {self.job.task!r}: the source changed during the export")
        return self.seen

    def _run(self, slow: np.ndarray | None):
        recs = self.recs
        for first, ids, b in self.batches:
            n = b.num_rows
            if not n:
                continue
            self.stats["read"] += n
            end = first + n
            self.seen = end
            a, z = np.searchsorted(recs, [first, end]).tolist()
            if z > a:
                self._add(b, ids, first, a, z)
            if slow is not None and len(slow):
                sa, sz = np.searchsorted(slow, [first, end]).tolist()
                if sz > sa:
                    loc = np.unique(slow[sa:sz]) - first
                    for k, rec in zip(loc.tolist(), b.take(pa.array(loc)).to_pylist()):
                        yield first + k, ids[k], rec
            if end >= self.end and (slow is None or not len(slow) or end > slow[-1]):
                break

    def _add(self, b: pa.RecordBatch, ids: list[str], first: int, a: int, z: int) -> None:
        size = self.job.size
        loc = self.recs[a:z] - first
        keys = self.fmt_k[a:z] * (1 << 32) + self.slots[a:z] // size
        uniq = np.unique(keys)
        for key in uniq.tolist():
            sel = np.flatnonzero(keys == key) if len(uniq) > 1 else np.arange(z - a)
            lk = loc[sel]
            k, rep = key >> 32, key & 0xFFFFFFFF
            # lk is ascending without repeats: a run of consecutive rows is a slice
            c0, n = int(lk[0]), len(lk)
            if int(lk[-1]) - c0 + 1 == n:
                part = (b.slice(c0, n), ids[c0 : c0 + n], sel + a, rep)
            else:
                part = (b.take(pa.array(lk)), [ids[i] for i in lk.tolist()], sel + a, rep)
            # one format's repeats render together (each part keeps its repeat's seeds)
            self.pending.setdefault(k, []).append(part)
            got = self.n_pending.get(k, 0) + n
            self.n_pending[k] = got
            held = self.b_pending.get(k, 0) + part[0].nbytes
            self.b_pending[k] = held
            if got >= FAST_ROWS or held >= FAST_BYTES:
                self._flush(k)

    def _flush(self, k: int) -> None:
        parts = self.pending.pop(k, [])
        self.n_pending.pop(k, None)
        self.b_pending.pop(k, None)
        if not parts:
            return
        try:
            batch = pa.concat_batches([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # batches of different schemas: one at a time
            for p in parts:
                self._render(k, p[0], [p])
            return
        self._render(k, batch, parts)

    def _render(self, k: int, batch: pa.RecordBatch, parts: list) -> None:
        job, tr = self.job, self.tr
        fmt = self.fmts[k]
        task = tr.task.name
        seed_of = {
            rep: derive_seed(job.seed, "export", fmt, rep)
            for rep in dict.fromkeys(p[3] for p in parts)
        }
        ids = parts[0][1] if len(parts) == 1 else [i for p in parts for i in p[1]]
        rows = parts[0][2] if len(parts) == 1 else np.concatenate([p[2] for p in parts])
        seeds = np.concatenate(
            [SeedPrefix(seed_of[p[3]], task, TRAIN).derive_many(p[1]) for p in parts]
        )
        fewshot = is_fewshot_format(fmt)
        if fewshot:
            from .. import columnar_own
            from ..columnar_fs import render_fewshot

            if columnar_own.supports(
                self.tc, fmt, job.output.multiturn
            ):  # exemplars: a field (NIv2)
                res = columnar_own.render_own(self.tc, batch, ids, fmt=fmt, seeds=seeds)
            else:
                res = render_fewshot(self.tc, batch, ids, fmt=fmt, seed=0, split=TRAIN, pool=self.pool, seeds=seeds)  # fmt: skip
            extra = {"fewshot_style": pa.array(list(res.fewshot_style_ids), pa.string()).take(pa.array(res.fewshot_style)),
                     "exemplar_ids": res.exemplar_ids}  # fmt: skip
        else:
            res = self.tc.render(batch, ids, fmt=fmt, seed=0, split=TRAIN, seeds=seeds)
            extra = {}
        if len(res.rows):
            self.writer.add(_columnar_batch(res, tr.task, fmt, ids, job.output, self.template_index,
                                            self.pos[rows[res.rows]], **extra))  # fmt: skip
        fb = res.fallback
        if not len(fb):
            return
        reps = np.concatenate([np.full(len(p[1]), p[3], dtype=np.int64) for p in parts])[fb]
        for rep in dict.fromkeys(reps.tolist()):
            sub = fb[reps == rep]
            items = [
                (ids[i], rec) for i, rec in zip(sub.tolist(), batch.take(pa.array(sub)).to_pylist())
            ]
            errs: list[tuple[int, RecordError]] = []
            if fewshot:
                cols = tr.render_batch(items, split=TRAIN, fmt=fmt, seed=seed_of[rep], errors=errs, pool=self.pool,
                                       turns=job.output.multiturn, columnar=False)  # fmt: skip
            else:
                cols = tr.render_batch(items, split=TRAIN, fmt=fmt, seed=seed_of[rep], errors=errs,
                                       turns=job.output.multiturn)  # fmt: skip
            if errs and job.on_error == "fail":
                raise errs[0][1]  # the row-by-row rerun raises the error it always raised
            n_empty = drop_empty_fewshot(cols, fmt, tr.config.shots)
            if n_empty:
                _count(self.skipped, EMPTY_FEWSHOT, n_empty)
            for _, e in errs:
                _count(self.skipped, _reason(e))
            idx = cols.pop("index")
            if idx:
                self.writer.add(
                    record_batch(cols, job.output, self.template_index, self.pos[rows[sub[idx]]])
                )


def _columnar_batch(res, task, fmt: str, ids: list[str], output: OutputSpec,
                    template_index: Mapping[str, int], positions: np.ndarray,
                    fewshot_style: pa.Array | None = None, exemplar_ids: pa.Array | None = None) -> pa.RecordBatch:  # fmt: skip
    """:func:`record_batch` of column-wise rendered rows (:class:`flan_data.columnar.Rendered`,
    or :class:`flan_data.columnar_fs.FewShotRendered` with its few-shot style and
    exemplar id columns), every column built as an Arrow array."""
    from ..views import TASK_SOURCE, TEMPLATE_TYPE

    n = len(res.rows)
    take = pa.array(res.template)

    def const(v: str) -> pa.Array:
        return pa.repeat(pa.scalar(v, pa.string()), n)

    opts = task.options
    str_list = pa.list_(pa.string())
    if getattr(res, "options", None) is not None:  # per-record options (columnar.Rendered)
        options = res.options
    elif opts:
        k = len(opts)
        values = pa.array(list(opts), pa.string()).take(pa.array(np.tile(np.arange(k), n)))
        options = pa.ListArray.from_arrays(pa.array(np.arange(0, k * n + 1, k, dtype=np.int32)), values, type=str_list)  # fmt: skip
    else:
        options = pa.nulls(n, str_list)
    arrays = {
        "inputs": res.inputs,
        "targets": res.targets,
        "task": const(task.name),
        "collection": const(task.collection),
        "format": const(fmt),
        "template_id": pa.array(list(res.template_ids), pa.string()).take(take),
        "fewshot_style": pa.nulls(n, pa.string()) if fewshot_style is None else fewshot_style,
        "options": options,
        "exemplar_ids": pa.ListArray.from_arrays(
            pa.array(np.zeros(n + 1, dtype=np.int32)), pa.array([], pa.string()), type=str_list
        )
        if exemplar_ids is None
        else exemplar_ids,  # fmt: skip
        "example_id": pa.array(ids, pa.string()).take(pa.array(res.rows)),
        "source_split": const(TRAIN),
        "seed": pa.array(res.seeds, pa.uint64()),
    }
    if spilled_messages(output):
        arrays["messages"] = messages_array(arrays["inputs"], arrays["targets"], output.system)
    if "flan-dump" in output.columns:
        arrays["task_source"] = const(TASK_SOURCE.get(task.collection, task.collection))
        arrays["task_name"] = const(task.name)
        arrays["template_type"] = const(TEMPLATE_TYPE[fmt])
        idx = np.array([template_index[t] for t in res.template_ids], dtype=np.int64)
        arrays["template_idx"] = pa.array(idx[res.template], pa.int64())
    arrays[POS] = pa.array(np.asarray(positions, dtype=np.int64), pa.int64())
    schema = spill_schema(output)
    return pa.RecordBatch.from_arrays([arrays[f.name] for f in schema], schema=schema)


def _decontam_filter(job: TaskJob):
    if job.decontam is None:
        return None
    from ..decontam import RowFilter, load_cached

    return RowFilter(load_cached(job.decontam))


BATCH_ROWS = 2000
CANON_BLOCK = 512  # records canonicalised in one call (column-wise where the fields allow)
#: Records read from sources and rows rendered by jobs run in this process
#: (the linear-cost test checks their ratio; counters only, no timing).
READ_STATS = {"records_read": 0, "rows": 0}


def record_batch(
    cols: dict[str, Any],
    output: OutputSpec,
    template_index: Mapping[str, int],
    positions: np.ndarray,
) -> pa.RecordBatch:
    """Rendered columns (:meth:`~flan_data.render.TaskRenderer.render_batch`) as one
    Arrow record batch of the spill schema: each column built as an Arrow array
    directly, the ``messages`` view assembled from the text arrays (no dict per
    row) unless few-shot rows are split into turns; ``positions`` is ``_pos``."""
    schema = spill_schema(output)
    arrays: dict[str, pa.Array] = {}
    for f in SCHEMA:
        vals = cols[f.name]
        if pa.types.is_list(f.type):
            arrays[f.name] = list_array(vals, f.type)
        else:
            arrays[f.name] = pa.array(vals, f.type)
    turns = cols.pop("turns", None)
    if spilled_messages(output):
        if turns is not None and any(t is not None for t in turns):
            views = add_views({"inputs": cols["inputs"], "targets": cols["targets"], "collection": [],
                               "task": [], "format": [], "template_id": [], "turns": turns},
                              OutputSpec(messages=True, chat_fewshot="multiturn", system=output.system), {})  # fmt: skip
            arrays["messages"] = pa.array(views["messages"], MESSAGES_TYPE)
        else:
            arrays["messages"] = messages_array(arrays["inputs"], arrays["targets"], output.system)
    if "flan-dump" in output.columns:
        views = add_views({k: cols[k] for k in ("inputs", "targets", "collection", "task", "format", "template_id")},
                          OutputSpec(messages=False, columns=("flan-dump",)), template_index)  # fmt: skip
        for f in FLAN_DUMP_FIELDS:
            arrays[f.name] = pa.array(views[f.name], f.type)
    arrays[POS] = pa.array(np.asarray(positions, dtype=np.int64), pa.int64())
    return pa.RecordBatch.from_arrays([arrays[f.name] for f in schema], schema=schema)


def list_array(vals: Sequence[Sequence[str] | None], type_: pa.DataType) -> pa.Array:
    """``pa.array(vals, type_)`` for a list-of-strings column, built from one flat
    value array and offsets (converting a Python list per row is ~20x slower).

    >>> list_array([["a", "b"], None, []], pa.list_(pa.string())).to_pylist()
    [['a', 'b'], None, []]
    """
    n = len(vals)
    lens = np.fromiter((0 if v is None else len(v) for v in vals), dtype=np.int64, count=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    if offsets[-1] >= 2**31:
        return pa.array(vals, type_)
    flat = pa.array([x for v in vals if v is not None for x in v], type_.value_type)
    nulls = [v is None for v in vals]
    mask = pa.array(nulls, pa.bool_()) if any(nulls) else None
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), flat, type=type_, mask=mask)


def messages_array(inputs: pa.Array, targets: pa.Array, system: str | None = None) -> pa.Array:
    """The single-turn ``messages`` column (see :func:`~flan_data.views.messages_for`)
    built from the ``inputs`` and ``targets`` arrays: [system,] user, assistant.

    >>> messages_array(pa.array(["2+2?"]), pa.array(["4"])).to_pylist()
    [[{'role': 'user', 'content': '2+2?'}, {'role': 'assistant', 'content': '4'}]]
    """
    n = len(inputs)
    parts = [inputs, targets]
    roles = ["user", "assistant"]
    if system is not None:
        parts.insert(0, pa.array([system] * n, pa.string()))
        roles.insert(0, "system")
    k = len(parts)
    # row r's turns are rows r, n + r, 2n + r of the concatenation
    idx = (
        np.arange(n, dtype=np.int64)[:, None] + np.arange(k, dtype=np.int64)[None, :] * n
    ).ravel()
    contents = pa.concat_arrays(parts).take(pa.array(idx))
    role = pa.array(roles, pa.string()).take(pa.array(np.tile(np.arange(k, dtype=np.int64), n)))
    values = pa.StructArray.from_arrays([role, contents], fields=list(MESSAGE_TYPE))
    offsets = pa.array(np.arange(0, k * n + 1, k, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, values, type=MESSAGES_TYPE)


#: Rows per spill bucket (``bucket_shards`` consecutive shards): assembly holds one
#: bucket's rows in memory, and reads one batch per run and bucket.
BUCKET_ROWS = 40_000
#: A small export gets smaller buckets, so that it has at least this many (one
#: assembly work item each: 100,000 rows in shards of 10,000 make 10 items, not
#: 3, and two workers share them evenly; 200,000 rows make 20 items of one
#: shard, not 10 of two: the process that finishes first waits at most one
#: shard's assembly for the other). Like the jobs, buckets depend on the plan
#: only, never on the number of workers.
TARGET_BUCKETS = 20
#: A job writes a run whenever its buffer holds this many bytes (or 50,000 rows).
#: Sorting a run holds about two more copies of it: 32 MiB rather than 64 MiB
#: took ~100 MB off a worker's peak on the full-size flan2022 replica, for one
#: more run per 32 MiB of a job's rows (most jobs write one run anyway).
FLUSH_BYTES = 32 << 20
#: Compression of the spill's record batch buffers (``"lz4"``, ``"zstd"`` or None):
#: internal to an export, the shards are not compressed. A message records its
#: own compression, so assembly reads a spill of either kind (one left by an
#: older version on a resume included); ``runs.json`` notes it for people.
SPILL_COMPRESSION: str | None = "lz4"
#: The spill is compressed only when it would not fit in memory: its size
#: estimated at :data:`SPILL_ROW_BYTES` a row (1.7 KB measured on the flan2022
#: replica) over this many bytes (None: a quarter of the machine's memory, where
#: the page cache can keep it). A spill held in the page cache costs nothing to
#: read back and compressing it only costs CPU (~5% of a 0.1 replica's time);
#: a bigger one (15 GB at full size, with 28 GB of shards written after it) is
#: read back from disk, and LZ4 halves that. The environment variable
#: ``FLAN_DATA_SPILL_COMPRESS_ABOVE`` (bytes) overrides it.
SPILL_COMPRESS_ABOVE: int | None = None
SPILL_ROW_BYTES = 1_700


def spill_compression(total_rows: int) -> str | None:
    """The compression of an export's spill of ``total_rows`` rows (see
    :data:`SPILL_COMPRESS_ABOVE`); the shards never depend on it.

    >>> spill_compression(0) is None
    True
    """
    above = SPILL_COMPRESS_ABOVE
    env = os.environ.get("FLAN_DATA_SPILL_COMPRESS_ABOVE", "")
    if env.strip().isdigit():  # e.g. 0: compress every spill (the test suite run with it)
        above = int(env)
    if above is None:
        try:
            above = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
        except (AttributeError, ValueError, OSError):
            above = 4 << 30
    return SPILL_COMPRESSION if total_rows * SPILL_ROW_BYTES > above else None


#: Per job folder: each run's (bucket, byte offset, byte size) of its batches.
RUNS_INDEX = "runs.json"
#: Per spill folder: how many buckets (from the first) have been assembled and freed.
CONSUMED = "consumed.json"


def bucket_shards(shard_rows: int, num_shards: int | None = None) -> int:
    """Shards per spill bucket: about :data:`BUCKET_ROWS` rows (at least one
    shard), fewer when that would leave an export of ``num_shards`` shards
    with under :data:`TARGET_BUCKETS` buckets.

    >>> bucket_shards(10_000), bucket_shards(100_000), bucket_shards(10_000, 20), bucket_shards(10_000, 40)
    (4, 1, 1, 2)
    """
    g = max(1, BUCKET_ROWS // max(1, shard_rows))
    if num_shards is not None:
        g = min(g, max(1, num_shards // TARGET_BUCKETS))
    return g


class _RunWriter:
    """Buffers rendered rows and writes them as sorted runs: one file per
    ``flush_rows`` rows, ordered by global position, holding one serialized
    record batch (an Arrow IPC message) per bucket of ``bucket_shards``
    shards, the highest bucket first; ``runs.json`` lists each run's
    (bucket, offset, size). Assembly reads one batch per run and bucket, and
    the parent frees a bucket once its shards are written by truncating each
    run at that bucket's batch (what is still needed lies before it). A job's
    memory is bounded by the buffer, and a job writes one file per run."""

    def __init__(self, folder: Path, shard_rows: int, schema: pa.Schema, bucket_shards: int = 1,
                 flush_rows: int = 50_000, flush_bytes: int | None = None, compression: str | None = None):  # fmt: skip
        self.folder, self.shard_rows, self.flush_rows = folder, shard_rows, flush_rows
        self.bucket_shards = bucket_shards
        self.bucket_rows = shard_rows * bucket_shards
        self.schema = schema
        self.flush_bytes = FLUSH_BYTES if flush_bytes is None else flush_bytes
        self.buf: list[pa.RecordBatch] = []
        self.n_buf = 0
        self.n_bytes = 0
        self.rows = 0
        self.part = 0
        self.shards: set[int] = set()
        self.index: list[dict[str, Any]] = []
        self.compression = compression
        self.schema_bytes = schema.serialize().size

    def add(self, batch: pa.RecordBatch) -> None:
        self.buf.append(batch)
        self.n_buf += batch.num_rows
        self.n_bytes += batch.nbytes
        # by bytes too: 50,000 few-shot rows of long documents are gigabytes, and
        # the sort below holds two more copies of the buffer
        if self.n_buf >= self.flush_rows or self.n_bytes >= self.flush_bytes:
            self._write()

    def _write(self) -> None:
        if not self.n_buf:
            return
        table = pa.Table.from_batches(self.buf, schema=self.schema).combine_chunks()
        self.buf, self.n_buf, self.n_bytes = [], 0, 0
        pos = table.column(POS).to_numpy()
        order = np.argsort(pos, kind="stable")
        batch = table.take(pa.array(order)).combine_chunks().to_batches()[0]
        del table
        pos = pos[order]
        bucket_of = pos // self.bucket_rows
        cuts = np.flatnonzero(np.diff(bucket_of)) + 1
        starts = [0, *cuts.tolist()]
        ends = [*cuts.tolist(), len(pos)]
        buckets = bucket_of[starts].tolist()
        name = f"run-{self.part:04d}.spill"
        entries: list[list[int]] = []
        # scratch data inside a folder renamed into place when complete: no fsync needed.
        # One IPC stream per run: the schema, then one record batch message per bucket
        # (buffers compressed with SPILL_COMPRESSION); each message is read on its own.
        opts = ipc.IpcWriteOptions(compression=self.compression, use_threads=False)
        with pa.OSFile(str(self.folder / name), "wb") as f:
            w = ipc.new_stream(f, self.schema, options=opts)
            start = self.schema_bytes  # the stream writes the schema with the first batch
            for a, z, b in reversed(list(zip(starts, ends, buckets))):
                w.write_batch(batch.slice(a, z - a))
                end = f.tell()
                entries.append([b, start, end - start])
                start = end
            w.close()
        self.index.append({"file": name, "buckets": entries[::-1]})
        self.shards.update(np.unique(pos // self.shard_rows).tolist())
        self.rows += len(pos)
        self.part += 1

    def close(self) -> None:
        from .writer import dumps

        self._write()
        meta = {
            "shard_rows": self.shard_rows,
            "bucket_shards": self.bucket_shards,
            "compression": self.compression,
            "runs": self.index,
        }
        (self.folder / RUNS_INDEX).write_bytes(dumps(meta))


class _SpillIndex:
    """Where each bucket's batches lie in a spill: ``{bucket: [(run file, offset,
    size), ...]}`` from every job's ``runs.json``, cached per process between buckets."""

    def __init__(self) -> None:
        self.key: tuple[str, tuple[int, ...]] | None = None
        self.by_bucket: dict[int, list[tuple[str, int, int]]] = {}
        #: offset of each run's first batch (what comes before it is the stream's schema)
        self.heads: dict[str, int] = {}
        self.shard_rows = 0
        self.bucket_shards = 0

    def get(self, spill_dir: Path, job_indices: Sequence[int]) -> _SpillIndex:
        import json

        key = (str(spill_dir), tuple(job_indices))
        if key == self.key:
            return self
        self.close()
        by: dict[int, list[tuple[str, int, int]]] = {}
        heads: dict[str, int] = {}
        for j in job_indices:
            d = spill_dir / f"{j:06d}"
            f = d / RUNS_INDEX
            try:
                meta = json.loads(f.read_text())
            except (OSError, ValueError) as e:
                raise FlanDataError(
                    f"{f}: the spill of job {j} is missing or unreadable ({e}); rerun the same command to resume"
                ) from None
            shape = (meta["shard_rows"], meta["bucket_shards"])
            if self.shard_rows and shape != (self.shard_rows, self.bucket_shards):
                raise FlanDataError(f"{f}: spill written for another shard layout {shape}")
            self.shard_rows, self.bucket_shards = shape
            for run in meta["runs"]:
                path = str(d / run["file"])
                for b, off, size in run["buckets"]:
                    by.setdefault(b, []).append((path, off, size))
                if run["buckets"]:
                    heads[path] = min(off for _, off, _ in run["buckets"])
        self.by_bucket, self.heads, self.key = by, heads, key
        return self

    def close(self) -> None:
        self.by_bucket, self.heads, self.key = {}, {}, None
        self.shard_rows = self.bucket_shards = 0


_RUNS = _SpillIndex()


def _read_batch(path: str, off: int, size: int, schema: pa.Schema) -> pa.RecordBatch:
    with open(path, "rb") as f:
        data = os.pread(f.fileno(), size, off)
    if len(data) != size:
        raise FlanDataError(
            f"{path}: a spill batch ({size} bytes at {off}) is missing: the run was freed or truncated; "
            "rerun the same command to resume"
        )
    return ipc.read_record_batch(pa.py_buffer(data), schema)


def _shard_record(spill_dir: Path, name: str) -> Path:
    return spill_dir.parent / "shards" / f"{Path(name).name}.json"


def _done_shard(shard: int, num_shards: int, spill_dir: Path, out: Path, output: OutputSpec) -> dict[str, Any] | None:  # fmt: skip
    """The record of a shard written before (a crash), when its file still matches it."""
    import json

    from .writer import DATA_DIR, sha256_file, shard_name

    name = f"{DATA_DIR}/{shard_name(shard, num_shards, output.file_format)}"
    record = _shard_record(spill_dir, name)
    if record.is_file() and (out / name).is_file():
        try:
            info = json.loads(record.read_text())
        except (OSError, ValueError):  # a record cut short by a crash before its fsync
            return None
        if (
            isinstance(info, dict)
            and info.get("file") == name
            and sha256_file(out / name) == info.get("sha256")
        ):
            return info
    return None


def _consumed(spill_dir: Path) -> int:
    import json

    f = spill_dir / CONSUMED
    return int(json.loads(f.read_text())["buckets"]) if f.is_file() else 0


class SpillFreer:
    """Parent side of assembly: once every shard of the lowest bucket not yet
    freed is written and durable (fsynced), record it in ``consumed.json`` and
    truncate each run at that bucket's batch. Disk then holds about one copy of the rows (spill
    shrinking as shards grow), not two.

    Resume: a bucket recorded as consumed is never read again while its shards
    stay whole; :func:`check_consumed` drops the spill (the jobs re-render,
    byte-identical) when one of them went missing before the export completed.
    """

    def __init__(
        self, spill_dir: Path, job_indices: Sequence[int], num_shards: int, bucket_shards: int
    ):
        self.spill_dir, self.job_indices = spill_dir, list(job_indices)
        self.num_shards, self.g = num_shards, bucket_shards
        self.next = _consumed(spill_dir)
        self.done: set[int] = set()
        self.index: dict[int, list[tuple[str, int, int]]] | None = None
        self.heads: dict[str, int] = {}

    def shard_done(self, info: Mapping[str, Any]) -> None:
        import re

        m = re.search(r"shard-(\d+)-of-", str(info["file"]))
        if m is None:
            return
        self.done.add(int(m.group(1)))
        while self.next * self.g < self.num_shards and all(
            s in self.done
            for s in range(self.next * self.g, min((self.next + 1) * self.g, self.num_shards))
        ):
            self._free(self.next)
            self.next += 1

    def _free(self, bucket: int) -> None:
        from .writer import atomic_write_bytes, dumps

        if self.index is None:
            idx = _SpillIndex().get(self.spill_dir, self.job_indices)
            self.index, self.heads = idx.by_bucket, idx.heads
        atomic_write_bytes(self.spill_dir / CONSUMED, dumps({"buckets": bucket + 1}), sync=False)
        for path, off, _size in self.index.pop(bucket, ()):
            # a run's last batch gone: its schema goes too
            os.truncate(path, 0 if off <= self.heads.get(path, 0) else off)


def check_consumed(spill_dir: Path, out: Path, num_shards: int, bucket_shards: int,
                   output: OutputSpec | None = None) -> bool:  # fmt: skip
    """Before the jobs run on a resume: if a shard of a bucket whose spill was
    already freed is missing or damaged, drop the whole spill so that the jobs
    render again (same bytes). Returns True when it did."""
    output = output or OutputSpec()
    n = _consumed(spill_dir)
    if not n:
        return False
    if all(
        _done_shard(s, num_shards, spill_dir, out, output) is not None
        for s in range(min(n * bucket_shards, num_shards))
    ):
        return False
    for d in spill_dir.iterdir():
        if d.is_dir():
            shutil.rmtree(d, ignore_errors=True)
    (spill_dir / CONSUMED).unlink(missing_ok=True)
    return True


def spill_schema(output: OutputSpec) -> pa.Schema:
    """Columns of a spill run: the output's shard schema plus the row position,
    less the ``messages`` column where assembly rebuilds it from the inputs and
    targets (:func:`spilled_messages`): a second copy of the texts on disk."""
    schema = output.schema()
    if output.messages and not spilled_messages(output):
        schema = schema.remove(schema.get_field_index("messages"))
    return schema.append(pa.field(POS, pa.int64()))


def spilled_messages(output: OutputSpec) -> bool:
    """Whether the ``messages`` column travels through the spill: only when few-shot
    rows may be split into turns; otherwise it is a pure function of (inputs,
    targets, system), built at assembly by :func:`messages_array` (same bytes)."""
    return output.messages and output.multiturn


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


def chunk_target(total: int) -> int:
    """Output rows per chunk job of a task in an export of ``total`` rows.

    >>> chunk_target(100_000), chunk_target(10_000_000), chunk_target(1_000)
    (12500, 25000, 5000)
    """
    return min(CHUNK_ROWS, max(MIN_CHUNK_ROWS, -(-total // TARGET_JOBS)))


def make_jobs(plan, sizes: Mapping[str, int], *, seed: int, shard_rows: int, source: str,
              source_dirs: Mapping[str, str], on_error: str,
              seekable: Mapping[str, bool] | None = None, materialized: Mapping[str, str] | None = None,
              output: OutputSpec | None = None, decontam: str | None = None) -> tuple[list[TaskJob], int]:  # fmt: skip
    """Jobs in plan order and the number of shards.

    A task whose source can seek (``seekable[task]``, the default when not
    given) is split into jobs of about ``CHUNK_ROWS`` output rows over record
    ranges (fewer rows for zero-shot tasks of a small export, see
    :func:`chunk_target`); one that cannot (JSONL, NIv2, TSV, streamed hub
    data) is one job that reads its source in one pass, unless the count pass
    materialised it (``materialized[task]``): its jobs read that copy by row
    index, so it splits like a seekable one (a 200,000-row task is no longer
    one job that a worker renders alone at the end).
    """
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
    # one mapping shared by every job (hundreds of entries: a copy per job was
    # ~60 MB in the parent of a full-size flan2022 export)
    dirs = dict(source_dirs)
    compression = spill_compression(total)
    for t in order:
        fm = tuple(x for x in per_task[t] if x[1] > 0)
        if not fm:
            continue
        rows = sum(c for _, c, _ in fm)
        per = chunk_target(total)
        chunks = max(1, min(sizes[t], -(-rows // per)))
        if seekable is not None and not seekable.get(t, True) and t not in (materialized or {}):
            chunks = 1
        bounds = [sizes[t] * c // chunks for c in range(chunks + 1)]
        for c in range(chunks):
            jobs.append(TaskJob(index=n_job, task=t, size=sizes[t], formats=fm, seed=seed, total=total, shard_rows=shard_rows,
                                num_shards=num_shards, source=source, source_dirs=dirs, on_error=on_error,
                                pool_size=POOL_SIZE, lo=bounds[c], hi=bounds[c + 1], output=output or OutputSpec(),
                                decontam=decontam, bucket_shards=bucket_shards(shard_rows, num_shards),
                                materialized=(materialized or {}).get(t), spill_compression=compression))  # fmt: skip
            n_job += 1
    return jobs, num_shards


def _one_chunk(col: pa.ChunkedArray) -> pa.Array:
    return col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()


def assemble_bucket(
    bucket: int,
    num_shards: int,
    spill_dir: Path,
    out: Path,
    job_indices: Sequence[int],
    output: OutputSpec | None = None,
    bucket_shards: int = 1,
    sync: bool = True,
) -> list[dict[str, Any]]:
    """Write the shards of spill bucket ``bucket`` (shards ``bucket * bucket_shards``
    onwards) to ``out/data/`` in the output's file format: every run's batch for the
    bucket, merged and ordered by position. One info per shard, in shard order;
    ``file`` in it is relative to ``out``. A shard written before a crash is kept.

    ``sync=False`` writes each shard and its record without fsync: the caller
    makes them durable (:class:`~flan_data.export.writer.ShardSyncer`, the local
    executor's parent) before it frees their spill or writes a manifest."""
    from .writer import DATA_DIR, atomic_write_bytes, dumps, shard_name, write_shard

    output = output or OutputSpec()
    if _ASSEMBLING["spill"] != str(spill_dir):  # the jobs are done: their caches can go
        _ASSEMBLING["spill"] = str(spill_dir)
        drop_job_caches()
    schema = output.schema()
    first = bucket * bucket_shards
    shards = range(first, min(first + bucket_shards, num_shards))
    (out / DATA_DIR).mkdir(parents=True, exist_ok=True)
    infos = {s: _done_shard(s, num_shards, spill_dir, out, output) for s in shards}
    todo = [s for s in shards if infos[s] is None]
    if not todo:
        return [infos[s] for s in shards]
    idx = _RUNS.get(spill_dir, job_indices)
    if idx.bucket_shards and idx.bucket_shards != bucket_shards:
        raise FlanDataError(
            f"{spill_dir}: spill written with {idx.bucket_shards} shards per bucket, assembled with {bucket_shards}"
        )
    sschema = spill_schema(output)
    parts = [_read_batch(p, off, size, sschema) for p, off, size in idx.by_bucket.get(bucket, ())]
    table = pa.Table.from_batches(parts, schema=sschema).combine_chunks()
    del parts
    pos = table.column(POS).to_numpy()
    order = np.argsort(pos)  # positions are unique: the order is too
    spos = pos[order]
    for s in todo:
        lo, hi = np.searchsorted(spos, [s * idx.shard_rows, (s + 1) * idx.shard_rows]).tolist()
        if hi > lo:
            shard = table.take(pa.array(order[lo:hi])).drop_columns([POS])
            if output.messages and not spilled_messages(output):
                msgs = messages_array(_one_chunk(shard["inputs"]), _one_chunk(shard["targets"]), output.system)  # fmt: skip
                shard = shard.add_column(schema.get_field_index("messages"), schema.field("messages"), msgs)  # fmt: skip
        else:
            shard = schema.empty_table()
        name = f"{DATA_DIR}/{shard_name(s, num_shards, output.file_format)}"
        nbytes, digest = write_shard(out / name, shard.cast(schema), output.file_format, sync)
        info = {"file": name, "rows": shard.num_rows, "bytes": nbytes, "sha256": digest}
        record = _shard_record(spill_dir, name)
        record.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(record, dumps(info), sync)
        infos[s] = info
        shard = msgs = None  # before the next shard's copies are made
    return [infos[s] for s in shards]
