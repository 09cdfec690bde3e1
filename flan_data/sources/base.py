"""The source protocol: named splits of records, each with a stable example id.

A source reads one task's raw records. ``read(split)`` yields
``(example_id, record)`` pairs in a fixed order; ids are the value of the
spec's ``id_field`` when given, else ``"<source split>-<row index>"``, so they
are stable for a fixed revision of the data. A source split name may carry an
integer slice (``train[:-200]``, ``dev_r1[:200]``) on every kind of source,
local ``save_to_disk`` copies included; ids keep their row index in the whole
split. Record rules (``task.records``) apply last, in :meth:`Source.read`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..errors import SourceError, UnknownNameError
from ..specs import SourceSpec

Record = dict[str, Any]

_SLICE = re.compile(r"^(.+?)\[\s*(-?\d*)\s*:\s*(-?\d*)\s*\]$")


def parse_split(name: str) -> tuple[str, int | None, int | None]:
    """Split a source split name into (base name, start, stop); slices as in ``datasets``.

    >>> parse_split("train[:-200]")
    ('train', None, -200)
    >>> parse_split("dev_r1[:200]")
    ('dev_r1', None, 200)
    >>> parse_split("validation")
    ('validation', None, None)
    """
    m = _SLICE.match(name)
    if not m:
        if "[" in name and name.endswith("]"):
            raise SourceError(
                f"split {name!r}: only integer slices like 'train[:-200]' or 'train[100:]' are supported"
            )
        return name, None, None
    base, a, b = m.groups()
    return base, int(a) if a else None, int(b) if b else None


class Source:
    """Base class. Subclasses implement :meth:`_native_splits` and :meth:`_read_native`."""

    def __init__(
        self,
        spec: SourceSpec,
        base_dir: str | Path | None = None,
        cache_dir: str | Path | None = None,
    ):
        self.spec = spec
        self.base_dir = Path(base_dir) if base_dir is not None else None
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        #: record rules (:mod:`flan_data.records`), set by ``open_task_source``
        self.rules: Any = None
        self.task_name: str | None = None

    # -- to implement

    def _native_splits(self) -> tuple[str, ...]:
        raise NotImplementedError

    def _read_native(self, split: str) -> Iterator[tuple[str | None, Record]]:
        """Yield (id or None, record) for a native split name."""
        raise NotImplementedError

    def check(self) -> None:
        """Raise :class:`SourceError` (saying how to supply it) when unreachable."""
        self._native_splits()

    # -- shared logic

    def describe(self) -> str:
        return self.spec.describe() + (f" (in {self.base_dir})" if self.base_dir else "")

    def splits(self) -> tuple[str, ...]:
        """Canonical split names this source can read."""
        native = set(self._native_splits())
        out = [
            c
            for c in self.spec.canonical_splits()
            if parse_split(self.spec.split_name(c))[0] in native
        ]
        if self.spec.validation_size and "train" in out and "validation" not in out:
            out.append("validation")
        if not self.spec.splits:
            out += [s for s in sorted(native) if s not in out]
        return tuple(dict.fromkeys(out))

    def _holdout(self, split: str, native: tuple[str, ...]) -> bool:
        return bool(
            self.spec.validation_size
            and split in ("train", "validation")
            and parse_split(self.spec.split_name("validation"))[0] not in native
        )

    def read(self, split: str) -> Iterator[tuple[str, Record]]:
        """Yield ``(example_id, record)`` for canonical ``split``, after the record rules."""
        items = self._read_raw(split)
        if self.rules:
            items = self.rules.apply(items, task=self.task_name or self.spec.path, split=split)
        yield from items

    def _read_raw(self, split: str) -> Iterator[tuple[str, Record]]:
        """The split's records before the record rules (slices and hold-outs applied)."""
        holdout = self.spec.validation_size
        native = self._native_splits()
        if self._holdout(split, native):
            rows = list(self._sliced(self.spec.split_name("train"), native))
            if len(rows) <= holdout:
                raise SourceError(
                    f"{self.describe()}: {len(rows)} records cannot give a validation split of {holdout}"
                )
            cut = len(rows) - holdout
            yield from (rows[:cut] if split == "train" else rows[cut:])
            return
        name = self.spec.split_name(split)
        if parse_split(name)[0] not in native:
            raise UnknownNameError("split", split, self.splits(), hint=self.describe())
        yield from self._sliced(name, native)

    def _sliced(self, name: str, native: tuple[str, ...]) -> Iterator[tuple[str, Record]]:
        """Records of a source split name, which may carry a slice (``train[:-200]``)."""
        base, start, stop = parse_split(name)
        if base not in native:
            raise UnknownNameError("split", base, native, hint=self.describe())
        if start is None and stop is None:
            yield from self._with_ids(base)
            return
        if (start or 0) < 0 or (stop or 0) < 0:
            n = self._native_count(base)
            if n is None:
                n = sum(1 for _ in self._with_ids(base))
            start, stop, _ = slice(start, stop).indices(n)
        yield from itertools.islice(self._with_ids(base), start, stop)

    def _native_count(self, native: str) -> int | None:
        """Record count of a native split when known without reading it (else None)."""
        return None

    def _read_native_range(
        self, native: str, lo: int, hi: int
    ) -> Iterator[tuple[str | None, Record]] | None:
        """Records ``[lo, hi)`` of a native split without reading those before
        ``lo`` (random access), or None when the format cannot seek."""
        return None

    def _plain(self) -> bool:
        """True when records are the native rows one to one (no record rules
        that filter or explode them), so row indices can be used to seek."""
        return not self.rules

    def seekable(self, split: str) -> bool:
        """Whether :meth:`read_range` reaches ``split``'s record ``lo`` without
        reading the records before it (Parquet, Arrow, ``save_to_disk``)."""
        return self._plain() and self._range_native(split, 0, 1) is not None

    def _range_native(self, split: str, lo: int, hi: int | None):
        # (native split name, native lo, native hi, stream) or None
        span = self._native_span(split, lo, hi)
        if span is None:
            return None
        name, lo_n, hi_n = span
        if hi_n <= lo_n:
            return name, lo_n, hi_n, iter(())
        it = self._read_native_range(name, lo_n, hi_n)
        return None if it is None else (name, lo_n, hi_n, it)

    def _native_span(self, split: str, lo: int, hi: int | None) -> tuple[str, int, int] | None:
        # (native split name, native lo, native hi) of canonical records [lo, hi), or
        # None when the native bounds are unknown without reading (no count)
        holdout = self.spec.validation_size
        native = self._native_splits()
        if self._holdout(split, native):
            name, a, b = self._slice_bounds(self.spec.split_name("train"), native)
            if b is None or b - a <= holdout:
                return None
            cut = b - holdout
            a, b = (a, cut) if split == "train" else (cut, b)
        else:
            name, a, b = self._slice_bounds(self.spec.split_name(split), native)
            if b is None:
                return None
        lo_n = min(a + lo, b)
        hi_n = b if hi is None else min(a + hi, b)
        return name, lo_n, hi_n

    def _slice_bounds(self, name: str, native: tuple[str, ...]) -> tuple[str, int, int | None]:
        """(base split, first row, end row) of a possibly sliced split name; end None if unknown."""
        base, start, stop = parse_split(name)
        n = self._native_count(base) if base in native else None
        if n is None:
            return base, 0, None
        a, b, _ = slice(start, stop).indices(n)
        return base, a, max(a, b)

    def read_range(
        self, split: str, lo: int, hi: int | None = None
    ) -> Iterator[tuple[str, Record]]:
        """Records ``[lo, hi)`` of canonical ``split``: the same pairs as
        ``itertools.islice(read(split), lo, hi)``, but without reading the
        records before ``lo`` where the format allows random access.

        >>> # src.read_range("train", 1000, 2000) -> the 1000 pairs after the first 1000
        """
        got = self._range_native(split, lo, hi) if self._plain() else None
        if got is None:
            yield from itertools.islice(self.read(split), lo, hi)
            return
        name, lo_n, _hi_n, it = got
        idf = self.spec.id_field
        for i, (rid, rec) in enumerate(it, lo_n):
            if idf is not None:
                if idf not in rec:
                    raise SourceError(
                        f"{self.describe()}: record {i} of split {name!r} has no id field {idf!r}"
                    )
                rid = str(rec[idf])
            yield (rid if rid is not None else f"{name}-{i}"), rec

    def _read_native_batches(
        self, native: str, lo: int, hi: int
    ) -> Iterator[tuple[int, Any]] | None:
        """``(native index of the first row, pyarrow.RecordBatch)`` covering rows
        ``[lo, hi)`` of a native split in order, whose ``to_pylist()`` rows are
        exactly the records :meth:`_read_native_range` yields; None when the
        format is not Arrow underneath."""
        return None

    def read_batches(
        self, split: str, lo: int, hi: int | None = None
    ) -> Iterator[tuple[int, list[str], Any]] | None:
        """Records ``[lo, hi)`` of canonical ``split`` as Arrow record batches:
        ``(index of the batch's first record, its example ids, pyarrow.RecordBatch)``,
        the same records and ids as :meth:`read_range`, without a Python object
        per record. None (read nothing) where the format is not Arrow underneath
        (JSON Lines, CSV, NIv2, streamed hub data) or record rules apply.

        >>> # for first, ids, batch in src.read_batches("train", 0, 1000): ...
        """
        if not self._plain():
            return None
        span = self._native_span(split, lo, hi)
        if span is None:
            return None
        name, lo_n, hi_n = span
        if hi_n <= lo_n:
            return iter(())
        it = self._read_native_batches(name, lo_n, hi_n)
        if it is None:
            return None
        return self._batches_with_ids(it, name, lo - lo_n)

    #: Rows between two wanted ones under which :meth:`take` reads one range
    #: (a seek decodes a whole batch anyway).
    TAKE_GAP = 4096

    def take(
        self, split: str, indices: Iterable[int], stats: dict[str, int] | None = None
    ) -> Iterator[tuple[int, str, Record]] | None:
        """The records at canonical ``indices`` of ``split`` as ``(index, id, record)``
        in index order (each once): the same ids and records as :meth:`read_range`
        gives at those positions, read as Arrow record batches over the ranges
        holding them, only the wanted rows converted to Python. None (read
        nothing) where :meth:`read_batches` is not available. ``stats["read"]``
        counts the rows of the batches decoded, ``stats["converted"]`` the records.

        >>> # for i, eid, rec in src.take("train", [5, 90, 4000]): ...
        """
        want = sorted(set(indices))
        if not want:
            return iter(())
        ranges: list[list[int]] = []
        for i in want:
            if ranges and i - ranges[-1][1] < self.TAKE_GAP:
                ranges[-1][1] = i + 1
            else:
                ranges.append([i, i + 1])
        first = self.read_batches(split, ranges[0][0], ranges[0][1])
        if first is None:
            return None
        return self._take(split, want, ranges, first, stats)

    def _take(self, split, want, ranges, first, stats) -> Iterator[tuple[int, str, Record]]:
        import numpy as np
        import pyarrow as pa

        wanted = np.asarray(want, dtype=np.int64)
        for r, (lo, hi) in enumerate(ranges):
            it = first if r == 0 else self.read_batches(split, lo, hi)
            if it is None:  # (the first range had batches: the others have too)
                raise SourceError(f"{self.describe()}: split {split!r} cannot be read in batches")
            for start, ids, b in it:
                n = b.num_rows
                if stats is not None:
                    stats["read"] = stats.get("read", 0) + n
                a, z = np.searchsorted(wanted, [start, start + n]).tolist()
                if z <= a:
                    continue
                loc = wanted[a:z] - start
                recs = b.take(pa.array(loc)).to_pylist()
                if stats is not None:
                    stats["converted"] = stats.get("converted", 0) + len(recs)
                for k, rec in zip(loc.tolist(), recs):
                    yield start + k, ids[k], rec

    def _batches_with_ids(self, it, name: str, shift: int) -> Iterator[tuple[int, list[str], Any]]:
        idf = self.spec.id_field
        for start, b in it:
            if idf is None:
                ids = [f"{name}-{i}" for i in range(start, start + b.num_rows)]
            else:
                k = b.schema.get_field_index(idf)
                if k < 0:
                    raise SourceError(
                        f"{self.describe()}: record {start} of split {name!r} has no id field {idf!r}"
                    )
                col = b.column(k)
                vals = col.to_pylist()
                # str() of each value, as read_range does (a string column needs none)
                import pyarrow as pa

                if not (
                    col.null_count == 0
                    and (pa.types.is_string(col.type) or pa.types.is_large_string(col.type))
                ):
                    vals = [str(v) for v in vals]
                ids = vals
            yield start + shift, ids, b

    def count(self, split: str) -> int:
        """Number of records in canonical ``split`` (from metadata when possible).

        A source with record rules is always read: the rules decide the count.
        """
        if self.rules:
            return sum(1 for _ in self.read(split))
        holdout = self.spec.validation_size
        native = self._native_splits()
        if self._holdout(split, native):
            n = self._sliced_count(self.spec.split_name("train"))
            if n is not None and n > holdout:
                return n - holdout if split == "train" else holdout
        elif parse_split(self.spec.split_name(split))[0] in native:
            n = self._sliced_count(self.spec.split_name(split))
            if n:
                return n
        return sum(1 for _ in self.read(split))

    def _sliced_count(self, name: str) -> int | None:
        base, start, stop = parse_split(name)
        n = self._native_count(base)
        if n is None:
            return None
        if start is None and stop is None:
            return n
        return len(range(*slice(start, stop).indices(n)))

    def _with_ids(self, native: str) -> Iterator[tuple[str, Record]]:
        idf = self.spec.id_field
        n = 0
        for i, (rid, rec) in enumerate(self._read_native(native)):
            n += 1
            if idf is not None:
                if idf not in rec:
                    raise SourceError(
                        f"{self.describe()}: record {i} of split {native!r} has no id field {idf!r}"
                    )
                rid = str(rec[idf])
            yield (rid if rid is not None else f"{native}-{i}"), rec
        if n == 0:
            raise SourceError(f"{self.describe()}: split {native!r} is empty")

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        if not p.is_absolute() and self.base_dir is not None:
            p = self.base_dir / p
        return p
