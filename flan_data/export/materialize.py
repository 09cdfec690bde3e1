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
import itertools
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
#: The columns form: its schema's metadata says so; its example ids are column ``ID``.
FORM_KEY = b"flan-data.materialized"
COLUMNS = b"columns"
ID = "\x00id"
_STR, _I64, _F64, _BOOL = pa.string(), pa.int64(), pa.float64(), pa.bool_()


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


def materialize(src: Source, path: Path, columns: bool = True) -> int:
    """Write ``src``'s post-rule train records to ``path`` (atomically); return their number.

    The records are stored as Arrow columns (:func:`_write_columns`) when they
    fit a schema exactly, else pickled (``columns=False`` asks for that form).
    Older files of the same task (another key) and temporary files of
    interrupted writes are removed first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    task = path.name.split(".", 1)[0]
    mine = (f"{task}.", f".{task}.")
    # names as strings: the folder holds a copy per task (1,600 for flan2022), listed once per task
    for name in os.listdir(path.parent):
        if name.startswith(mine) and name != path.name:
            with contextlib.suppress(OSError):
                os.unlink(path.parent / name)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    it = src.read(TRAIN)
    try:
        first = list(itertools.islice(it, BATCH))
        layout = None
        if columns and first:
            try:
                layout = _Layout.of(first)
            except _NoSchema:
                layout = None
        n = None
        if layout is not None:
            n = _write_columns(layout, first, it, tmp)
            if n is None:  # a later record that no schema holds: read again, pickled
                _close(it)
                it = src.read(TRAIN)
                first = []
        if n is None:
            n = _write_pickled(itertools.chain(first, it), tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    finally:
        _close(it)
    return n


def _close(it) -> None:
    close = getattr(it, "close", None)
    if close is not None:
        close()


def _write_pickled(items, tmp: Path) -> int:
    import pyarrow.ipc as ipc

    n = 0
    with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, SCHEMA) as w:
        ids: list[str] = []
        recs: list[bytes] = []
        for eid, rec in items:
            ids.append(eid)
            recs.append(pickle.dumps(rec, protocol=5))
            if len(ids) == BATCH:
                w.write_batch(pa.record_batch([pa.array(ids, pa.string()), pa.array(recs, pa.binary())], schema=SCHEMA))  # fmt: skip
                n += len(ids)
                ids, recs = [], []
        if ids or not n:
            w.write_batch(pa.record_batch([pa.array(ids, pa.string()), pa.array(recs, pa.binary())], schema=SCHEMA))  # fmt: skip
            n += len(ids)
    return n


class _NoSchema(Exception):
    """The records do not fit one Arrow schema exactly."""


def _write_columns(layout: _Layout, first: list, it, tmp: Path) -> int | None:
    """Write the records (``first``, the first batch, then the rest of ``it``) as
    Arrow columns of ``layout``: the example id, then one column per record key,
    in the records' key order; None (``tmp`` removed) when some record would not
    read back as exactly the same Python values (other keys or key order, a type
    Arrow would change: an int among floats, a tuple, a value of another type
    than the column's first ones, ...).

    A column whose value is one and the same object in every row of the first
    batch (NIv2's definition and examples, shared by all of a task's records)
    is stored run-end encoded: its value once per run of rows sharing an object,
    read back as one shared object per run, as the source gave it."""
    import pyarrow.ipc as ipc

    n = 0
    try:
        with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, layout.schema) as w:
            block = first
            while block:
                w.write_batch(layout.batch(block))
                n += len(block)
                block = list(itertools.islice(it, BATCH))
    except _NoSchema:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return None
    return n


def _fits(vals: list[Any], t: pa.DataType) -> bool:
    """Whether every value of ``vals`` in an Arrow column of type ``t`` reads back
    as itself (same types, same values, same key order); checked a column at a
    time, mostly in C (``map(type, ...)`` into a set)."""
    types = set(map(type, vals))
    types.discard(_NONE)
    if not types:
        return True
    exact = _EXACT.get(t)
    if exact is not None:
        return types == {exact}
    some = [v for v in vals if v is not None] if len(types) < len(set(map(type, vals))) else vals
    if pa.types.is_list(t):
        return types == {list} and _fits(list(itertools.chain.from_iterable(some)), t.value_type)
    if pa.types.is_struct(t):
        names = tuple(f.name for f in t)
        if types != {dict} or set(map(tuple, some)) != {names}:
            return False
        return all(_fits([v[k] for v in some], f.type) for k, f in zip(names, t))
    return False  # null (only None fits), and every other type


_NONE = type(None)
_EXACT = {_STR: str, _I64: int, _F64: float, _BOOL: bool}


def _column(vals: list[Any], t: pa.DataType | None) -> pa.Array:
    """``vals`` as an Arrow array of type ``t`` (inferred when None), or _NoSchema."""
    try:
        arr = pa.array(vals, t) if t is not None else pa.array(vals)
    except Exception:  # noqa: BLE001 - Arrow cannot hold them: the pickled form
        raise _NoSchema from None
    if not isinstance(arr, pa.Array):  # (a ChunkedArray: over 2 GB of text in one batch)
        raise _NoSchema
    if not _fits(vals, arr.type):
        raise _NoSchema
    return arr


class _Layout:
    """A columns file's schema: the records' keys, each column plain or run-end encoded."""

    def __init__(self, keys: tuple[str, ...], types: list[pa.DataType], runs: list[bool]):
        self.keys, self.types, self.runs = keys, types, runs
        fields = [pa.field(ID, pa.string())]
        for k, t, r in zip(keys, types, runs):
            fields.append(pa.field(k, pa.run_end_encoded(pa.int32(), t) if r else t))
        self.schema = pa.schema(fields, metadata={FORM_KEY: COLUMNS})

    @classmethod
    def of(cls, block: list[tuple[str, Any]]) -> _Layout:
        rec0 = block[0][1]
        if type(rec0) is not dict or not rec0 or ID in rec0:
            raise _NoSchema
        keys = tuple(rec0)
        for _, r in block:
            if type(r) is not dict or tuple(r) != keys:
                raise _NoSchema
        types, runs = [], []
        items = 0.0
        for k in keys:
            vals = [r[k] for _, r in block]
            v0 = vals[0]
            run = len(vals) > 1 and all(v is v0 for v in vals)
            arr = _column([v0] if run else vals, None)
            if not run:
                items += _items_per_row(arr)
            types.append(arr.type)
            runs.append(run)
        if items > LIST_ITEMS:
            # many list items a row (dialog turns): pickling them is cheaper than
            # Arrow conversion, and no column-wise path reads them
            raise _NoSchema
        return cls(keys, types, runs)

    def batch(self, block: list[tuple[str, Any]]) -> pa.RecordBatch:
        keys = self.keys
        for _, r in block:
            if type(r) is not dict or tuple(r) != keys:
                raise _NoSchema
        cols = [_column([eid for eid, _ in block], pa.string())]
        for k, t, run in zip(keys, self.types, self.runs):
            vals = [r[k] for _, r in block]
            if not run:
                cols.append(_column(vals, t))
                continue
            ends, uniq = [], []
            prev = _UNSET
            for i, v in enumerate(vals):
                if v is not prev:
                    if uniq:
                        ends.append(i)
                    uniq.append(v)
                    prev = v
            ends.append(len(vals))
            cols.append(
                pa.RunEndEncodedArray.from_arrays(pa.array(ends, pa.int32()), _column(uniq, t))
            )
        return pa.RecordBatch.from_arrays(cols, schema=self.schema)


_UNSET = object()
#: List items per row (at any depth, over the columns that are not shared) over
#: which the records stay pickled (:meth:`_Layout.of`): wiki_dialog has ~24, qrecc
#: ~18, quac ~75; arc's choices 8, NIv2's outputs 1.
LIST_ITEMS = 12


def _items_per_row(arr: pa.Array) -> float:
    """Mean number of list items per row in ``arr``, nested lists and structs included."""
    n = max(len(arr), 1)
    total = 0
    todo = [arr]
    while todo:
        a = todo.pop()
        t = a.type
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            v = a.flatten()
            total += len(v)
            todo.append(v)
        elif pa.types.is_struct(t):
            todo.extend(a.field(i) for i in range(t.num_fields))
    return total / n


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


def form(path: Path) -> str | None:
    """``"columns"`` or ``"pickled"``: how a complete copy stores its records
    (None when it is not readable).

    >>> # form(Path(".flan-export/materialized/task001.3f2a.arrow")) -> 'columns'
    """
    import pyarrow.ipc as ipc

    try:
        with pa.memory_map(str(path)) as f:
            meta = ipc.open_file(f).schema.metadata or {}
    except (OSError, pa.ArrowInvalid):
        return None
    return "columns" if meta.get(FORM_KEY) == COLUMNS else "pickled"


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
            meta = self._reader.schema.metadata or {}
            self.columns = meta.get(FORM_KEY) == COLUMNS
        return self._reader

    #: Whether the file holds Arrow columns (else pickled records); set by ``_open``.
    columns = False

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
        """Records ``[lo, hi)`` of the train split as Arrow record batches (see
        :meth:`Source.read_batches`) when the file holds columns; None when it
        holds pickled records (a file of an older flan-data, or records no
        schema holds) or for another split."""
        if split != TRAIN:
            return self.inner.read_batches(split, lo, hi)
        self._open()
        if not self.columns:
            return None
        n = self.count(TRAIN)
        hi = n if hi is None else min(hi, n)
        return self._batches(lo, hi)

    def _batches(self, lo: int, hi: int):
        for start, raw, a, z in _spans(self._reader, lo, hi):
            ids = raw.column(0).slice(a, z - a).to_pylist()
            cols = [_decoded(c) for c in raw.columns[1:]]
            batch = pa.RecordBatch.from_arrays(cols, names=raw.schema.names[1:])
            yield start, ids, batch.slice(a, z - a) if (a or z < raw.num_rows) else batch

    def _rows(self, raw: pa.RecordBatch, loc: list[int]) -> list[tuple[str, Record]]:
        """``(id, record)`` of rows ``loc`` (ascending) of a columns batch: a run-end
        encoded column's value is converted once per run and shared by its rows."""
        import numpy as np

        ix = pa.array(loc, pa.int64())
        contiguous = bool(loc) and loc[-1] - loc[0] + 1 == len(loc)

        def rows_of(col):
            return col.slice(loc[0], len(loc)) if contiguous else col.take(ix)

        ids = rows_of(raw.column(0)).to_pylist()
        cols = []
        for c in raw.columns[1:]:
            if pa.types.is_run_end_encoded(c.type):
                vals = c.values.to_pylist()
                if len(vals) == 1:
                    cols.append(itertools.repeat(vals[0], len(loc)))
                else:
                    at = np.searchsorted(c.run_ends.to_numpy(), np.asarray(loc), side="right")
                    cols.append([vals[i] for i in at.tolist()])
            else:
                cols.append(rows_of(c).to_pylist())
        names = raw.schema.names[1:]
        return [(eid, dict(zip(names, vals))) for eid, *vals in zip(ids, *cols)]

    def take(self, split: str, indices, stats: dict[str, int] | None = None):
        """``(index, id, record)`` at ``indices`` of the train split, in index
        order (each once): only those records are converted (unpickled)."""
        if split != TRAIN:
            return self.inner.take(split, indices, stats)
        want = sorted(set(indices))
        n = self.count(TRAIN)
        if want and (want[0] < 0 or want[-1] >= n):
            return None  # out of range: let the caller's sequential path report it
        return self._take(want, stats)

    def _take(self, want: list[int], stats: dict[str, int] | None):
        r = self._open()
        if self.columns:
            i = 0
            while i < len(want):
                b = want[i] // BATCH
                j = i
                while j < len(want) and want[j] // BATCH == b:
                    j += 1
                loc = [k - b * BATCH for k in want[i:j]]
                if stats is not None:
                    stats["read"] = stats.get("read", 0) + len(loc)
                    stats["converted"] = stats.get("converted", 0) + len(loc)
                for k, (eid, rec) in zip(want[i:j], self._rows(r.get_batch(b), loc)):
                    yield k, eid, rec
                i = j
            return
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
        loads = pickle.loads
        for _, batch, a, z in _spans(self._open(), lo, hi):
            if self.columns:
                yield from self._rows(batch, list(range(a, z)))
            else:
                ids = batch.column(0).slice(a, z - a).to_pylist()
                recs = batch.column(1).slice(a, z - a).to_pylist()
                for eid, rec in zip(ids, recs):
                    yield eid, loads(rec)


def _spans(reader, lo: int, hi: int):
    """``(first row, batch, a, z)`` for each stored batch overlapping rows
    ``[lo, hi)`` of a copy: rows ``a`` to ``z`` of ``batch`` are wanted."""
    b = lo // BATCH
    while lo < hi:
        batch = reader.get_batch(b)
        a, z = lo - b * BATCH, min(hi - b * BATCH, batch.num_rows)
        if z <= a:
            break
        yield lo, batch, a, z
        lo = b * BATCH + z
        b += 1


def _decoded(col: pa.Array) -> pa.Array:
    """A run-end encoded column as a plain one (what column-wise readers expect)."""
    if pa.types.is_run_end_encoded(col.type):
        import pyarrow.compute as pc

        return pc.run_end_decode(col)
    return col
