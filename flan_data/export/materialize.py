"""Read-once copies of sources that cannot seek, made by the export's count pass.

A source with record rules (filter/explode/sample_turn) or without random access
(NIv2 task JSON, JSON Lines, CSV/TSV, ``raw`` release files) has to be read in
full to be counted. The count pass writes what it reads, the post-rule
``(example id, record)`` pairs in order, to an Arrow file in the export's state
folder (``.flan-export/materialized/<task>.<key>.arrow``, batches of
:data:`BATCH` rows); few-shot pools and jobs then read that file by row index
(:class:`MaterializedSource`), so the original is read once per export, and
once in all across a kill -9 and resume (the count pass finds the file).

The file is a cache of the source, not a new source: the export's spec and
manifest fingerprint the original files as before, and the file's name carries
a key of everything that decides its content (the source spec, the record
rules, the files' paths, sizes, mtimes, inodes and ctimes, which any write
changes, or the hub revision), so a changed source is read again, never
served stale. Records are stored pickled
(exact Python values: the same rows whatever the types); the files are written
and read only by flan-data, inside its own state folder, and deleted when the
export completes.

>>> # src = MaterializedSource(path, open_task_source(...)); list(src.read_range("train", 10, 12))
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..sources.base import Record, Source

TRAIN = "train"
BATCH = 1024
VERSION = 1
SCHEMA = pa.schema([("id", pa.string()), ("record", pa.binary())])
MAT_DIR = "materialized"


def cache_key(catalog, task, source: str, source_dirs) -> str | None:
    """A key of everything that decides the post-rule train records of ``task``,
    or None when that cannot be told without reading (a hub dataset whose
    revision does not resolve locally)."""
    from .fingerprint import source_files

    src_files = source_files(catalog, task, source, source_dirs)
    if "files" in src_files and "raw" not in src_files:
        files: Any = []
        for f in src_files["files"]:
            st = os.stat(f)
            files.append([f, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino])
    elif src_files.get("resolved"):
        files = src_files
    else:
        return None
    doc = {
        "v": VERSION,
        "task": task.name,
        "source": source,
        "dirs": {k: str(v) for k, v in sorted(source_dirs.items())},
        "spec": [repr(task.source), repr(task.sample)],
        "records": repr(task.records),
        "files": files,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:20]


def path_for(mat_dir: Path, task: str, key: str) -> Path:
    return Path(mat_dir) / f"{task}.{key}.arrow"


def materialize(src: Source, path: Path) -> int:
    """Write ``src``'s post-rule train records to ``path`` (atomically); return their number.

    Older files of the same task (another key) and temporary files of
    interrupted writes are removed first."""
    import pyarrow.ipc as ipc

    path.parent.mkdir(parents=True, exist_ok=True)
    task = path.name.split(".", 1)[0]
    for old in path.parent.iterdir():
        if old != path and (old.name.startswith(f"{task}.") or old.name.startswith(f".{task}.")):
            with contextlib.suppress(OSError):
                old.unlink()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    n = 0
    try:
        with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, SCHEMA) as w:
            ids: list[str] = []
            recs: list[bytes] = []
            for eid, rec in src.read(TRAIN):
                ids.append(eid)
                recs.append(pickle.dumps(rec, protocol=5))
                if len(ids) == BATCH:
                    w.write_batch(pa.record_batch([pa.array(ids, pa.string()), pa.array(recs, pa.binary())], schema=SCHEMA))  # fmt: skip
                    n += len(ids)
                    ids, recs = [], []
            if ids or not n:
                w.write_batch(pa.record_batch([pa.array(ids, pa.string()), pa.array(recs, pa.binary())], schema=SCHEMA))  # fmt: skip
                n += len(ids)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return n


def count_rows(path: Path) -> int | None:
    """Rows of a complete materialised file, or None when it is not readable."""
    import pyarrow.ipc as ipc

    try:
        with pa.memory_map(str(path)) as f:
            r = ipc.open_file(f)
            k = r.num_record_batches
            return (k - 1) * BATCH + r.get_batch(k - 1).num_rows if k else 0
    except (OSError, pa.ArrowInvalid):
        return None


class MaterializedSource(Source):
    """``inner``'s train split read from its materialised file (by row index, so
    it can seek); every other split, and everything else, from ``inner``."""

    def __init__(self, path: str | Path, inner: Source):
        super().__init__(inner.spec, inner.base_dir, inner.cache_dir)
        self.path = Path(path)
        self.inner = inner
        self.task_name = inner.task_name
        self._reader = None
        self._n: int | None = None

    def _open(self):
        if self._reader is None:
            import pyarrow.ipc as ipc

            # read batches into memory (freed after use), not a memory map whose
            # touched pages would stay in the RSS of the process while the job runs
            self._reader = ipc.open_file(pa.OSFile(str(self.path)))
        return self._reader

    def describe(self) -> str:
        return self.inner.describe()

    def splits(self) -> tuple[str, ...]:
        return self.inner.splits()

    def check(self) -> None:
        self.inner.check()

    def _native_splits(self) -> tuple[str, ...]:
        return self.inner._native_splits()

    def count(self, split: str) -> int:
        if split != TRAIN:
            return self.inner.count(split)
        if self._n is None:
            r = self._open()
            k = r.num_record_batches
            self._n = (k - 1) * BATCH + r.get_batch(k - 1).num_rows if k else 0
        return self._n

    def seekable(self, split: str) -> bool:
        return split == TRAIN or self.inner.seekable(split)

    def read(self, split: str) -> Iterator[tuple[str, Record]]:
        if split != TRAIN:
            yield from self.inner.read(split)
            return
        yield from self.read_range(split, 0, None)

    def read_batches(self, split: str, lo: int, hi: int | None = None):
        return None  # records are stored pickled: no Arrow columns to hand out

    def take(self, split: str, indices, stats: dict[str, int] | None = None):
        """``(index, id, record)`` at ``indices`` of the train split, in index
        order (each once): only those records are unpickled."""
        if split != TRAIN:
            return self.inner.take(split, indices, stats)
        want = sorted(set(indices))
        n = self.count(TRAIN)
        if want and (want[0] < 0 or want[-1] >= n):
            return None  # out of range: let the caller's sequential path report it
        return self._take(want, stats)

    def _take(self, want: list[int], stats: dict[str, int] | None):
        r = self._open()
        b = -1
        ids = recs = None
        for i in want:
            if i // BATCH != b:
                b = i // BATCH
                batch = r.get_batch(b)
                ids, recs = batch.column(0), batch.column(1)
            if stats is not None:
                stats["read"] = stats.get("read", 0) + 1
                stats["converted"] = stats.get("converted", 0) + 1
            k = i - b * BATCH
            yield i, ids[k].as_py(), pickle.loads(recs[k].as_py())

    def read_range(self, split: str, lo: int, hi: int | None = None) -> Iterator[tuple[str, Record]]:  # fmt: skip
        if split != TRAIN:
            yield from self.inner.read_range(split, lo, hi)
            return
        n = self.count(TRAIN)
        hi = n if hi is None else min(hi, n)
        r = self._open()
        loads = pickle.loads
        b = lo // BATCH
        while lo < hi:
            batch = r.get_batch(b)
            a, z = lo - b * BATCH, min(hi - b * BATCH, batch.num_rows)
            ids = batch.column(0).slice(a, z - a).to_pylist()
            recs = batch.column(1).slice(a, z - a).to_pylist()
            for eid, rec in zip(ids, recs):
                yield eid, loads(rec)
            lo = b * BATCH + z
            b += 1
