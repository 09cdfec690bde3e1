"""Local files: JSONL, CSV, TSV, Parquet and Arrow, one file per split.

``path`` is a file (one split, ``train`` unless ``splits`` says otherwise) or a
folder holding ``<split>.<ext>`` files; ``data_files`` maps split names to
files explicitly.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

from ..errors import SourceError
from .base import Record, Source

_EXT = {
    "jsonl": (".jsonl", ".json"),
    "csv": (".csv",),
    "tsv": (".tsv",),
    "parquet": (".parquet",),
    "arrow": (".arrow",),
}


class FileSource(Source):
    def _files(self) -> dict[str, Path]:
        root = self.resolve(self.spec.path)
        df = self.spec.options.get("data_files")
        if df:
            anchor = root if root.is_dir() else (self.base_dir or Path("."))
            return {
                str(k): Path(str(v)) if Path(str(v)).is_absolute() else anchor / str(v)
                for k, v in df.items()
            }
        if root.is_file():
            split = next(iter(self.spec.splits.values()), "train")
            return {split: root}
        if root.is_dir():
            out: dict[str, Path] = {}
            for ext in _EXT[self.spec.kind]:
                for f in sorted(root.glob(f"*{ext}")):
                    out.setdefault(f.name[: -len(ext)], f)
            if not out:
                raise SourceError(
                    f"{self.describe()}: no {'/'.join(_EXT[self.spec.kind])} files in {root}"
                )
            return out
        raise SourceError(f"{self.describe()}: no such file or folder: {root}")

    def _native_splits(self) -> tuple[str, ...]:
        return tuple(self._files())

    def _native_count(self, split: str) -> int | None:
        f = self._files().get(split)
        if f is None or not f.is_file():
            return None
        try:
            if self.spec.kind == "parquet":
                import pyarrow.parquet as pq

                return pq.ParquetFile(f).metadata.num_rows
            if self.spec.kind == "arrow":
                import pyarrow as pa
                import pyarrow.ipc as ipc

                with pa.memory_map(str(f)) as src:
                    r = ipc.open_file(src)
                    return sum(r.get_batch(i).num_rows for i in range(r.num_record_batches))
            if self.spec.kind == "jsonl":
                return _count_jsonl(f)
        except Exception:  # noqa: BLE001 - unreadable metadata: count by reading
            return None
        return None

    def _read_native_range(self, split: str, lo: int, hi: int):
        f = self._files().get(split)
        if f is None or not f.is_file() or self.spec.kind not in ("parquet", "arrow"):
            return None
        if self.spec.kind == "arrow":
            import pyarrow as pa
            import pyarrow.ipc as ipc

            try:
                ipc.open_file(pa.memory_map(str(f)))
            except (pa.ArrowInvalid, OSError):
                return None  # the stream format has no batch index: read in order
        return _read_table(f, self.spec.kind, None, self.spec.id_field, lo, hi)

    def _read_native_batches(self, split: str, lo: int, hi: int):
        if self._read_native_range(split, lo, hi) is None:  # checks only; reads nothing
            return None
        return _table_batches(self._files()[split], self.spec.kind, lo, hi)

    def _read_native(self, split: str) -> Iterator[tuple[str | None, Record]]:
        f = self._files()[split]
        if not f.is_file():
            raise SourceError(f"{self.describe()}: missing file {f}")
        if self.spec.kind == "jsonl":
            yield from _read_jsonl(f)
        else:
            yield from _read_table(
                f, self.spec.kind, self.spec.options.get("delimiter"), self.spec.id_field
            )


def _read_jsonl(f: Path) -> Iterator[tuple[None, Record]]:
    with open(f, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise SourceError(
                    f"{f}:{lineno}: not valid UTF-8 (byte {e.start} of the line)"
                ) from None
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise SourceError(
                    f"{f}:{lineno}: invalid JSON: {e.msg} (column {e.colno})"
                ) from None
            if not isinstance(rec, dict):
                raise SourceError(
                    f"{f}:{lineno}: expected a JSON object per line, got {type(rec).__name__}"
                )
            yield None, rec


def _count_jsonl(f: Path) -> int:
    """Non-blank lines: the records :func:`_read_jsonl` yields (it raises on bad ones)."""
    n = 0
    with open(f, "rb") as fh:
        for raw in fh:
            if raw.strip():
                n += 1
    return n


BATCH = 4096


def _parquet_batches(f: Path, lo: int, hi: int | None):
    """Record batches of rows ``[lo, hi)``, read one row group at a time: memory
    stays bounded by a row group (no pre-buffering of the whole file) and row
    groups before ``lo`` are never read.

    A read that ends inside a row group leaves its decoder behind
    (:data:`_CURSORS`): the next read of the file that starts at or after that
    row in the same row group (the next chunk job of the task, in this
    process) continues from there instead of decoding the group from its
    start again. The rows are the same either way."""
    import pyarrow.parquet as pq

    key = _stat_key(f)
    cur = _CURSORS.pop(key, None)
    pf = cur.pf if cur is not None else pq.ParquetFile(f, pre_buffer=False)
    md = pf.metadata
    start = 0
    for g in range(md.num_row_groups):
        end = start + md.row_group(g).num_rows
        if end > lo and (hi is None or start < hi):
            if cur is not None and cur.group == g and cur.at <= max(lo, start):
                at, it = cur.at, itertools.chain(cur.pending, cur.it)
            else:
                at = start
                it = iter(pf.iter_batches(batch_size=BATCH, row_groups=[g], use_threads=False))
            cur = None
            for b in it:
                b_at, at = at, at + b.num_rows
                if at <= lo:
                    continue
                if hi is not None and at >= hi:
                    if at > hi or end > hi:  # stopped inside the group: keep the decoder
                        rest = [b.slice(hi - b_at)] if at > hi else []
                        _keep(key, _Cursor(pf, g, hi, rest, it))
                    yield _clip(b, b_at, lo, hi)
                    return
                yield _clip(b, b_at, lo, hi)
        start = end
        if hi is not None and start >= hi:
            break


class _Cursor:
    """A Parquet file's decoder stopped at row ``at`` of row group ``group``:
    ``pending`` batches (the rest of the last one), then ``it``."""

    __slots__ = ("pf", "group", "at", "pending", "it")

    def __init__(self, pf, group: int, at: int, pending: list, it):
        self.pf, self.group, self.at, self.pending, self.it = pf, group, at, pending, it


#: Parquet decoders left where a read stopped, by (file, size, mtime); a few files at most.
_CURSORS: dict[tuple, _Cursor] = {}
CURSORS_KEPT = 4


def drop_cursors() -> None:
    """Close the Parquet decoders kept between reads (before this process
    forks: a child must not share them)."""
    _CURSORS.clear()


def _keep(key: tuple, cur: _Cursor) -> None:
    _CURSORS[key] = cur
    while len(_CURSORS) > CURSORS_KEPT:
        _CURSORS.pop(next(iter(_CURSORS)))


def _stat_key(f: Path) -> tuple:
    st = f.stat()
    return (str(f), st.st_size, st.st_mtime_ns, st.st_ino)


def _arrow_batches(reader, lo: int, hi: int | None):
    start = 0
    for i in range(reader.num_record_batches):
        b = reader.get_batch(i)
        end = start + b.num_rows
        if end > lo and (hi is None or start < hi):
            for k in range(0, b.num_rows, BATCH):
                yield _clip(b.slice(k, BATCH), start + k, lo, hi)
        start = end
        if hi is not None and start >= hi:
            break


def _clip(b, at: int, lo: int, hi: int | None):
    # the rows of batch ``b`` (whose first row is ``at``) inside [lo, hi)
    a = max(0, lo - at)
    z = b.num_rows if hi is None else min(b.num_rows, hi - at)
    return b.slice(a, max(0, z - a)) if (a, z) != (0, b.num_rows) else b


def _table_batches(f: Path, kind: str, lo: int, hi: int):
    """(index of the first row, record batch) of rows ``[lo, hi)`` of a Parquet
    or Arrow IPC file: the batches :func:`_read_table` converts to records."""
    import pyarrow as pa

    try:
        if kind == "parquet":
            batches = _parquet_batches(f, lo, hi)
        else:
            import pyarrow.ipc as ipc

            batches = _arrow_batches(ipc.open_file(pa.memory_map(str(f))), lo, hi)
        at = lo
        for b in batches:
            yield at, b
            at += b.num_rows
    except (pa.ArrowInvalid, OSError) as e:
        raise SourceError(f"{f}: cannot read as {kind}: {e}") from None


def _read_table(
    f: Path,
    kind: str,
    delimiter: str | None,
    id_field: str | None = None,
    lo: int = 0,
    hi: int | None = None,
) -> Iterator[tuple[None, Record]]:
    import pyarrow as pa

    try:
        if kind == "parquet":
            batches = _parquet_batches(f, lo, hi)
        elif kind == "arrow":
            import pyarrow.ipc as ipc

            try:
                reader = ipc.open_file(pa.memory_map(str(f)))
                batches = _arrow_batches(reader, lo, hi)
            except pa.ArrowInvalid:
                batches = iter(ipc.open_stream(pa.memory_map(str(f))))
        else:
            import pyarrow.csv as pcsv

            delim = delimiter or ("\t" if kind == "tsv" else ",")
            batches = pcsv.open_csv(
                f,
                # TSV has no quoting convention: a field may start with a quote
                parse_options=pcsv.ParseOptions(
                    delimiter=delim,
                    newlines_in_values=kind != "tsv",
                    quote_char=False if kind == "tsv" else '"',
                ),
                # ids stay strings ("007" must not become 7)
                convert_options=pcsv.ConvertOptions(
                    strings_can_be_null=False,
                    column_types={id_field: pa.string()} if id_field else None,
                ),
            )
        for b in batches:
            for rec in b.to_pylist():
                yield None, rec
    except (pa.ArrowInvalid, OSError) as e:
        raise SourceError(f"{f}: cannot read as {kind}: {e}") from None
