"""Shard schema, shard file formats, atomic file writes, checksums and the manifest.

Every file format goes through one small interface, :class:`ShardFormat`
(``encode`` a table to bytes, ``read`` a file back to a table), so the export
pipeline writes Arrow, Parquet or JSON Lines the same way:

>>> t = pa.table({"inputs": ["a"], "targets": ["b"]})
>>> fmt = shard_format("jsonl")
>>> fmt.encode(t)
b'{"inputs": "a", "targets": "b"}\\n'
>>> shard_name(0, 2, "parquet")
'shard-00000-of-00002.parquet'
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import gzip
import hashlib
import io
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc

from ..errors import FlanDataError

FORMAT_NAME = "flan-data-shards"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
COMPLETED = "COMPLETED"
STATE_DIR = ".flan-export"
#: Shards live in this sub-folder of an export, so ``datasets`` can load it as-is.
DATA_DIR = "data"

SCHEMA = pa.schema(
    [
        ("inputs", pa.string()),
        ("targets", pa.string()),
        ("task", pa.string()),
        ("collection", pa.string()),
        ("format", pa.string()),
        ("template_id", pa.string()),
        ("fewshot_style", pa.string()),
        ("options", pa.list_(pa.string())),
        ("exemplar_ids", pa.list_(pa.string())),
        ("example_id", pa.string()),
        ("source_split", pa.string()),
        ("seed", pa.uint64()),
    ]
)
#: Internal column carrying each row's global position until shards are assembled.
POS = "_pos"


def shard_name(i: int, n: int, file_format: str = "arrow") -> str:
    return f"shard-{i:05d}-of-{n:05d}{shard_format(file_format).suffix}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


#: Fault injection for disk tests: FLAN_DATA_FAULT="enospc:GLOB" or "erofs:GLOB" makes
#: every atomic write of a file whose name matches GLOB fail like a full or
#: read-only disk (half the bytes written first, as a full disk does).
FAULT_ENV = "FLAN_DATA_FAULT"
_FAULTS = {"enospc": errno.ENOSPC, "erofs": errno.EROFS}


def _injected_fault(path: Path) -> int | None:
    kind, _, pattern = os.environ.get(FAULT_ENV, "").partition(":")
    if kind in _FAULTS and fnmatch.fnmatch(path.name, pattern or "*"):
        return _FAULTS[kind]
    return None


def disk_error(e: OSError, path: Path | str | None = None) -> FlanDataError:
    """A one-line message for an OSError while writing an export (no traceback)."""
    where = e.filename or path
    reason = e.strerror or str(e)
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        todo = "free some space (or choose another --out)"
    elif e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        todo = "make it writable (or choose another --out)"
    else:
        todo = "fix the problem"
    return FlanDataError(
        f"cannot write {where}: {reason}; nothing was marked complete: {todo}, then rerun the same command to resume"
    )


def atomic_write_bytes(path: Path, data: bytes, sync: bool = True) -> None:
    """Write to a temporary name, fsync, then rename: readers see all or nothing.

    A failed write (disk full, read-only folder) leaves no temporary file and
    raises :class:`FlanDataError` naming the path."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            fault = _injected_fault(path)
            if fault is not None:
                f.write(data[: len(data) // 2])
                raise OSError(fault, os.strerror(fault), str(tmp))
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise disk_error(e, path) from None


def dumps(obj: Any) -> bytes:
    """Canonical JSON bytes (sorted keys), so manifests are byte-identical."""
    return (json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def table_bytes(table: pa.Table) -> bytes:
    """Serialize a table as an Arrow IPC file with one record batch."""
    return table_buffer(table).to_pybytes()


def table_buffer(table: pa.Table) -> pa.Buffer:
    """:func:`table_bytes` as an Arrow buffer of exactly its size: the file is
    measured first (a counting stream copies nothing), then written once into
    it. A growing output stream held up to twice a shard, and a copy to
    ``bytes`` once more (~180 MB per 70 MB shard at assembly)."""
    table = table.combine_chunks()

    def write(sink) -> None:
        with ipc.new_file(sink, table.schema) as w:
            w.write_table(table, max_chunksize=max(1, table.num_rows))

    mock = pa.MockOutputStream()
    write(mock)
    buf = pa.allocate_buffer(mock.size())
    out = pa.FixedSizeBufferWriter(buf)
    write(out)
    if out.tell() != buf.size:  # never expected: the same table writes the same bytes
        raise AssertionError(f"Arrow IPC wrote {out.tell()} bytes, measured {buf.size}")
    return buf


def write_table(path: Path, table: pa.Table, sync: bool = True) -> tuple[int, str]:
    """Atomically write ``table``; return (bytes, sha256). ``sync=False`` for scratch files."""
    data = table_bytes(table)
    atomic_write_bytes(path, data, sync)
    return len(data), hashlib.sha256(data).hexdigest()


def read_table(path: Path, schema: pa.Schema | None = None) -> pa.Table:
    """Read one shard (or spill) file of any :data:`SHARD_FORMATS`, chosen by suffix."""
    return format_of(path).read(Path(path), schema)


def _read_arrow(path: Path, schema: pa.Schema | None = None) -> pa.Table:
    with pa.memory_map(str(path)) as src:
        return ipc.open_file(src).read_all()


def _encode_parquet(table: pa.Table) -> bytes:
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    # One row group per shard; zstd is read by pyarrow, pandas, polars, duckdb and datasets.
    pq.write_table(table, sink, compression="zstd", row_group_size=max(1, table.num_rows))
    return sink.getvalue().to_pybytes()


def _read_parquet(path: Path, schema: pa.Schema | None = None) -> pa.Table:
    import pyarrow.parquet as pq

    return pq.read_table(path)


def _big_ints_as_text(schema: pa.Schema) -> pa.Schema:
    # JSON readers (pyarrow's inference, pandas, JavaScript) turn integers past
    # 2**53 into doubles; 64-bit unsigned values (the per-row seed) travel as
    # decimal strings and are cast back on reading.
    return pa.schema(
        [pa.field(f.name, pa.string()) if pa.types.is_uint64(f.type) else f for f in schema]
    )


def _encode_jsonl(table: pa.Table) -> bytes:
    # One JSON object per line, keys in schema order, UTF-8 (no \\u escapes);
    # newlines inside texts are escaped by JSON, so a line is always one row.
    table = table.cast(_big_ints_as_text(table.schema))
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in table.to_pylist()).encode(
        "utf-8"
    )


def _encode_jsonl_gz(table: pa.Table) -> bytes:
    # mtime=0 and no file name in the header: the same rows give the same bytes.
    return gzip.compress(_encode_jsonl(table), compresslevel=6, mtime=0)


def _read_jsonl(path: Path, schema: pa.Schema | None = None) -> pa.Table:
    import pyarrow.json as pj

    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.decompress(raw)
    if schema is None:
        first = raw.split(b"\n", 1)[0]
        schema = column_schema(json.loads(first)) if first.strip() else SCHEMA
    if not raw.strip():
        return schema.empty_table()
    opts = pj.ParseOptions(explicit_schema=_big_ints_as_text(schema), newlines_in_values=False)
    return pj.read_json(io.BytesIO(raw), parse_options=opts).cast(schema)


@dataclass(frozen=True)
class ShardFormat:
    """One file format for shards: a suffix, an encoder and a reader.

    ``hf_builder`` is the ``datasets`` packaged builder that reads it.
    """

    name: str
    suffix: str
    hf_builder: str
    encode: Callable[[pa.Table], bytes | pa.Buffer]
    read: Callable[..., pa.Table]


SHARD_FORMATS: dict[str, ShardFormat] = {
    f.name: f
    for f in (
        ShardFormat("arrow", ".arrow", "arrow", table_buffer, _read_arrow),
        ShardFormat("parquet", ".parquet", "parquet", _encode_parquet, _read_parquet),
        ShardFormat("jsonl", ".jsonl", "json", _encode_jsonl, _read_jsonl),
        ShardFormat("jsonl.gz", ".jsonl.gz", "json", _encode_jsonl_gz, _read_jsonl),
    )
}


def shard_format(name: str) -> ShardFormat:
    """The :class:`ShardFormat` called ``name`` (arrow, parquet, jsonl, jsonl.gz)."""
    try:
        return SHARD_FORMATS[name]
    except KeyError:
        from ..errors import UnknownNameError

        raise UnknownNameError("shard format", name, SHARD_FORMATS) from None


def format_of(path: str | Path) -> ShardFormat:
    """The format of a shard file, from its suffix."""
    name = Path(path).name
    for f in sorted(SHARD_FORMATS.values(), key=lambda f: -len(f.suffix)):
        if name.endswith(f.suffix):
            return f
    from ..errors import FlanDataError

    raise FlanDataError(
        f"{path}: not a shard file (expected one of {', '.join(f.suffix for f in SHARD_FORMATS.values())})"
    )


def column_schema(names) -> pa.Schema:
    """The shard schema for these column names (core columns plus known optional ones)."""
    from ..views import EXTRA_COLUMN_TYPES

    types = {f.name: f.type for f in SCHEMA} | EXTRA_COLUMN_TYPES
    return pa.schema([(n, types.get(n, pa.string())) for n in names])


def write_shard(
    path: Path, table: pa.Table, file_format: str = "arrow", sync: bool = True
) -> tuple[int, str]:
    """Atomically write ``table`` as a shard in ``file_format``; return (bytes, sha256).

    ``sync=False`` leaves the fsync to the caller (a :class:`ShardSyncer`): the
    file is whole under its name (renamed into place) but not yet durable."""
    data = shard_format(file_format).encode(table)
    atomic_write_bytes(path, data, sync)
    return len(data), hashlib.sha256(data).hexdigest()


def fsync_path(path: Path, directory: bool = False) -> None:
    """Make ``path``'s data (or, for a folder, its entries) durable. Folders are
    synced on POSIX only (elsewhere a folder cannot be opened for it)."""
    if directory and os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY if os.name == "posix" else os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_FAILED = object()


class ShardSyncer:
    """fsyncs written shards on background threads while the caller goes on
    assembling (fsync waits for the disk, not the CPU, and releases the GIL);
    items are reported durable in the order they were added.

    :meth:`synced` returns the items made durable since the last call,
    :meth:`finish` waits for all of them and syncs the folders that got new
    names; an export writes COMPLETED only after :meth:`finish`, so a
    complete export never lists a shard that is not on disk.

    ``threads > 1`` fsyncs that many items at once: concurrent fsyncs share
    the file system's journal commits, so a backlog (the last buckets' shards,
    the manifest's files) is durable sooner than one file after another.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()); (d / "a").write_bytes(b"x")
    1
    >>> s = ShardSyncer()
    >>> s.add("a", [d / "a"])
    >>> s.finish([d])
    ['a']
    """

    def __init__(self, on_durable: Callable[[Any], None] | None = None, threads: int = 1) -> None:
        """``on_durable(item)`` runs on a syncing thread once an item's files are
        durable, in the order the items were added (e.g. freeing what they
        replace: it may wait for the disk too); never for a None item."""
        import queue
        import threading

        self._on_durable = on_durable
        self._todo: queue.SimpleQueue = queue.SimpleQueue()
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._error: OSError | None = None
        self._pending = 0  # added, not yet returned
        self._added = 0  # sequence number of the next item added
        self._next = 0  # sequence number of the next item to report
        self._ready: dict[int, tuple[Any, BaseException | None]] = {}  # synced, not yet reported
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._work, name="flan-shard-sync", daemon=True)
            for _ in range(max(1, threads))
        ]
        for t in self._threads:
            t.start()

    def _work(self) -> None:
        while True:
            got = self._todo.get()
            if got is None:
                return
            seq, item, paths = got
            err: BaseException | None = None
            if self._error is None:
                try:
                    for p in paths:
                        fsync_path(p)
                except Exception as e:  # noqa: BLE001 - raised by the caller's next synced()
                    err = e
            with self._lock:  # report in order: this item once every earlier one is
                self._ready[seq] = (item, err)
                while self._next in self._ready:
                    item, err = self._ready.pop(self._next)
                    self._next += 1
                    if err is None and self._error is None:
                        try:
                            if self._on_durable is not None and item is not None:
                                self._on_durable(item)
                        except Exception as e:  # noqa: BLE001 - as above
                            err = e
                    if err is not None and self._error is None:
                        self._error = err if isinstance(err, OSError) else OSError(str(err))
                    # after an error every item wakes the caller, who raises it
                    self._done.put(item if self._error is None else _FAILED)

    def add(self, item: Any, paths: list[Path]) -> None:
        """Queue ``paths`` for fsync; ``item`` comes back from synced()/finish() once done."""
        self._todo.put((self._added, item, list(paths)))
        self._added += 1
        self._pending += 1

    def _drain(self, max_pending: int | None = None) -> list[Any]:
        import queue

        out = []
        while True:
            block = max_pending is not None and self._pending > max_pending
            if self._error is not None:
                raise disk_error(self._error)
            try:
                got = self._done.get(block=block)
            except queue.Empty:
                break
            if got is _FAILED:
                continue
            out.append(got)
            self._pending -= 1
        return out

    def synced(self, max_pending: int | None = None) -> list[Any]:
        """Items made durable since the last call; with ``max_pending``, first
        waits until no more than that many are still waiting for their fsync
        (bounds what is written but not yet durable, and so the spill not yet
        freed). Raises the threads' disk error."""
        return self._drain(max_pending)

    def finish(self, folders: list[Path] = ()) -> list[Any]:
        """Wait until every added item is durable, then sync ``folders`` (the shards'
        renames); the items not returned by synced() yet."""
        self.close()
        out = self._drain()
        try:
            for d in folders:
                fsync_path(d, directory=True)
        except OSError as e:
            raise disk_error(e) from None
        return out

    def close(self) -> None:
        """Stop the threads once the queued items are done; safe to call twice."""
        alive = [t for t in self._threads if t.is_alive()]
        for _ in alive:
            self._todo.put(None)
        for t in alive:
            t.join()


def schema_json(schema: pa.Schema = SCHEMA) -> list[dict[str, str]]:
    return [{"name": f.name, "type": str(f.type)} for f in schema]


def write_manifest(
    out: Path, manifest: Mapping[str, Any], *, sync: bool = True, completed: bool = True
) -> str:
    """Write manifest.json then COMPLETED (holding the manifest's sha256), in that
    order; returns that sha256. With ``completed=False`` only manifest.json
    (without fsync when ``sync=False``): the caller makes it durable, then
    calls :func:`write_completed`."""
    data = dumps(manifest)
    atomic_write_bytes(out / MANIFEST, data, sync)
    digest = hashlib.sha256(data).hexdigest()
    if completed:
        write_completed(out, digest)
    return digest


def write_completed(out: Path, digest: str) -> None:
    """Mark ``out`` complete: COMPLETED holds the sha256 of its (durable) manifest."""
    atomic_write_bytes(out / COMPLETED, (digest + "\n").encode())
