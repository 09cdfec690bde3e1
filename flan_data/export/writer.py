"""Arrow shard schema, atomic file writes, checksums and the manifest."""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import hashlib
import json
import os
from collections.abc import Mapping
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
SPILL_SCHEMA = SCHEMA.append(pa.field(POS, pa.int64()))


def shard_name(i: int, n: int) -> str:
    return f"shard-{i:05d}-of-{n:05d}.arrow"


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
    sink = pa.BufferOutputStream()
    table = table.combine_chunks()
    with ipc.new_file(sink, table.schema) as w:
        w.write_table(table, max_chunksize=max(1, table.num_rows))
    return sink.getvalue().to_pybytes()


def write_table(path: Path, table: pa.Table, sync: bool = True) -> tuple[int, str]:
    """Atomically write ``table``; return (bytes, sha256). ``sync=False`` for scratch files."""
    data = table_bytes(table)
    atomic_write_bytes(path, data, sync)
    return len(data), hashlib.sha256(data).hexdigest()


def read_table(path: Path) -> pa.Table:
    with pa.memory_map(str(path)) as src:
        return ipc.open_file(src).read_all()


def schema_json(schema: pa.Schema = SCHEMA) -> list[dict[str, str]]:
    return [{"name": f.name, "type": str(f.type)} for f in schema]


def write_manifest(out: Path, manifest: Mapping[str, Any]) -> str:
    """Write manifest.json then COMPLETED (holding the manifest's sha256), in that order."""
    data = dumps(manifest)
    atomic_write_bytes(out / MANIFEST, data)
    digest = hashlib.sha256(data).hexdigest()
    atomic_write_bytes(out / COMPLETED, (digest + "\n").encode())
    return digest
