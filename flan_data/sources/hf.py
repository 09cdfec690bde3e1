"""Hugging Face datasets: a hub id (+ config, revision) or a local ``save_to_disk`` folder.

Loading goes through ``datasets`` (the ``[hf]`` extra), imported only when a
task actually reads from the hub. A folder written by
``Dataset.save_to_disk``/``DatasetDict.save_to_disk`` is loaded with
``load_from_disk``; otherwise ``load_dataset(path, config, revision=…)`` runs
(set ``HF_DATASETS_OFFLINE=1`` to read only the local cache).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import MissingDependencyError, SourceError
from .base import Record, Source, parse_split


def _datasets():
    try:
        import datasets
    except ImportError:
        raise MissingDependencyError("datasets", "hf", "reading Hugging Face datasets") from None
    return datasets


class HFSource(Source):
    _local: Any = None

    def _local_dir(self) -> Path | None:
        cands = []
        if self.base_dir is not None:
            cands += [self.base_dir / self.spec.path, self.base_dir]
        cands.append(Path(self.spec.path).expanduser())
        for c in cands:
            if (
                (c / "dataset_dict.json").is_file()
                or (c / "dataset_info.json").is_file()
                or (c / "state.json").is_file()
            ):
                return c
        return None

    def _load_local(self) -> Any:
        if self._local is None:
            d = self._local_dir()
            if d is None:
                return None
            ds = _datasets()
            try:
                obj = ds.load_from_disk(str(d))
            except Exception as e:  # datasets raises several unrelated types here
                raise SourceError(
                    f"{self.describe()}: cannot load {d} with load_from_disk: {e}"
                ) from None
            if isinstance(obj, ds.Dataset):
                split = parse_split(next(iter(self.spec.splits.values()), "train"))[0]
                obj = ds.DatasetDict({split: obj})
            self._local = obj
        return self._local

    def _native_splits(self) -> tuple[str, ...]:
        local = self._load_local()
        if local is not None:
            return tuple(local.keys())
        if self.spec.splits:
            return tuple(dict.fromkeys(parse_split(s)[0] for s in self.spec.splits.values()))
        return ("train", "validation", "test")

    def check(self) -> None:
        if self._load_local() is not None:
            return
        ds = _datasets()
        try:
            ds.load_dataset_builder(self.spec.path, self.spec.config, revision=self.spec.revision)
        except Exception as e:
            raise SourceError(
                f"{self.describe()}: not reachable ({type(e).__name__}: {str(e)[:200]}); "
                f"pass --source-dir {self.spec.path.split('/')[-1]}=PATH to a save_to_disk copy, or fill the HF cache"
            ) from None

    def _native_count(self, split: str) -> int | None:
        # len() of a save_to_disk split is metadata (its Arrow files' lengths)
        local = self._load_local()
        if local is not None and split in local:
            return len(local[split])
        return None

    def _read_native_range(self, split: str, lo: int, hi: int):
        local = self._load_local()
        if local is None or split not in local:
            return None
        # select() of a contiguous range is a zero-copy slice of the Arrow table
        return ((None, dict(rec)) for rec in local[split].select(range(lo, hi)))

    def _read_native(self, split: str) -> Iterator[tuple[str | None, Record]]:
        local = self._load_local()
        if local is not None:
            it = local[split]
        else:
            ds = _datasets()
            try:
                it = ds.load_dataset(
                    self.spec.path,
                    self.spec.config,
                    split=split,
                    revision=self.spec.revision,
                    streaming=bool(self.spec.options.get("streaming", False)),
                )
            except Exception as e:
                raise SourceError(
                    f"{self.describe()}: cannot load split {split!r}: {type(e).__name__}: {str(e)[:300]}"
                ) from None
        for rec in it:
            yield None, dict(rec)
