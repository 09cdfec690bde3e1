"""The source protocol: named splits of records, each with a stable example id.

A source reads one task's raw records. ``read(split)`` yields
``(example_id, record)`` pairs in a fixed order; ids are the value of the
spec's ``id_field`` when given, else ``"<source split>-<row index>"``, so they
are stable for a fixed revision of the data.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import SourceError, UnknownNameError
from ..specs import SourceSpec

Record = dict[str, Any]


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
        out = [c for c in self.spec.canonical_splits() if self.spec.split_name(c) in native]
        if self.spec.validation_size and "train" in out and "validation" not in out:
            out.append("validation")
        if not self.spec.splits:
            out += [s for s in sorted(native) if s not in out]
        return tuple(dict.fromkeys(out))

    def read(self, split: str) -> Iterator[tuple[str, Record]]:
        """Yield ``(example_id, record)`` for canonical ``split``."""
        holdout = self.spec.validation_size
        native = self._native_splits()
        if (
            holdout
            and split in ("train", "validation")
            and self.spec.split_name("validation") not in native
        ):
            rows = list(self._with_ids(self.spec.split_name("train")))
            if len(rows) <= holdout:
                raise SourceError(
                    f"{self.describe()}: {len(rows)} records cannot give a validation split of {holdout}"
                )
            cut = len(rows) - holdout
            yield from (rows[:cut] if split == "train" else rows[cut:])
            return
        name = self.spec.split_name(split)
        if name not in native:
            raise UnknownNameError("split", split, self.splits(), hint=self.describe())
        yield from self._with_ids(name)

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
        return True

    def seekable(self, split: str) -> bool:
        """Whether :meth:`read_range` reaches ``split``'s record ``lo`` without
        reading the records before it (Parquet, Arrow, ``save_to_disk``)."""
        return self._plain() and self._range_native(split, 0, 1) is not None

    def _range_native(self, split: str, lo: int, hi: int | None):
        # (native split name, native lo, native hi, stream) or None
        holdout = self.spec.validation_size
        native = self._native_splits()
        if (
            holdout
            and split in ("train", "validation")
            and self.spec.split_name("validation") not in native
        ):
            name = self.spec.split_name("train")
            n = self._native_count(name)
            if n is None or n <= holdout:
                return None
            cut = n - holdout
            a, b = (0, cut) if split == "train" else (cut, n)
        else:
            name = self.spec.split_name(split)
            if name not in native:
                return None
            a, b = 0, self._native_count(name)
            if b is None:
                return None
        lo_n = min(a + lo, b)
        hi_n = b if hi is None else min(a + hi, b)
        if hi_n <= lo_n:
            return name, lo_n, hi_n, iter(())
        it = self._read_native_range(name, lo_n, hi_n)
        return None if it is None else (name, lo_n, hi_n, it)

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

    def count(self, split: str) -> int:
        """Number of records in canonical ``split`` (from metadata when possible)."""
        holdout = self.spec.validation_size
        native = self._native_splits()
        if (
            holdout
            and split in ("train", "validation")
            and self.spec.split_name("validation") not in native
        ):
            n = self._native_count(self.spec.split_name("train"))
            if n is not None and n > holdout:
                return n - holdout if split == "train" else holdout
        elif self.spec.split_name(split) in native:
            n = self._native_count(self.spec.split_name(split))
            if n:
                return n
        return sum(1 for _ in self.read(split))

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
