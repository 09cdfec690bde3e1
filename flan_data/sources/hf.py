"""Hugging Face datasets: a hub id (+ config, revision) or a local ``save_to_disk`` folder.

Loading goes through ``datasets`` (the ``[hf]`` extra), imported only when a
task actually reads from the hub. A folder written by
``Dataset.save_to_disk``/``DatasetDict.save_to_disk`` is loaded with
``load_from_disk``; otherwise ``load_dataset(path, config, revision=…)`` runs
(set ``HF_DATASETS_OFFLINE=1`` to read only the local cache).

Before any hub request, :func:`check_hub` opens one connection to the hub
(``HF_ENDPOINT``) with a short timeout and remembers the answer, so an
unreachable hub stops a command in seconds with one message saying how to
supply the data (``--source-dir``, ``HF_HUB_OFFLINE=1``). A source whose
options say ``manual:`` (data behind a request form) or that names a
script-only repo without a revision is refused before any download.
Options ``data_files``/``column_names``/``encoding`` go to ``load_dataset``
(raw files by URL through the ``csv``/``json`` builders). Option
``export_config`` reads one config of the hub's Parquet export
(:func:`export_data_files`); ``path`` may also be a local folder laid out like
the hub repo (read without the hub).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import HubUnreachableError, MissingDependencyError, SourceError
from ..specs import thaw
from .base import Record, Source, parse_split


def _datasets():
    try:
        import datasets
    except ImportError:
        raise MissingDependencyError("datasets", "hf", "reading Hugging Face datasets") from None
    return datasets


#: Hub repos that ship only a Python loading script on their main branch (``datasets`` >= 4
#: cannot run it). A catalog source naming one must pin a ``revision`` (e.g. the hub's
#: ``refs/convert/parquet`` branch) or say ``manual:`` how to supply a local copy; a test
#: checks the catalog against this list.
SCRIPT_ONLY_REPOS = frozenset({
    "deepmind/math_dataset", "Harvard/gigaword", "lil-lab/newsroom", "allenai/quac",
    "stanfordnlp/sentiment140", "LSDSem/story_cloze", "GEM/gem", "ParaCrawl/para_crawl",
    "djaym7/wiki_dialog", "bigscience/P3", "GEM/common_gen", "GEM/dart", "ybisk/piqa",
    "Rowan/hellaswag", "CogComp/trec", "alexfabbri/multi_news",
})  # fmt: skip


def export_data_files(config: str, splits) -> dict[str, str]:
    """``data_files`` reading one config of the hub's Parquet export.

    The export (revision ``refs/convert/parquet``, or a commit of that branch)
    holds ``<config>/<split>/NNNN.parquet`` and no dataset card, so ``datasets``
    >= 4 sees a single ``default`` config there: ``load_dataset(repo, "<config>",
    revision="refs/convert/parquet")`` fails with "BuilderConfig not found".
    Naming the files per split reads exactly the config asked for.

    >>> export_data_files("plain_text", ["train", "validation"])
    {'train': 'plain_text/train/*.parquet', 'validation': 'plain_text/validation/*.parquet'}
    """
    return {s: f"{config}/{s}/*.parquet" for s in splits}


#: ``datasets``' packaged builders a source may name as its ``path`` (files given as ``data_files``).
PACKAGED_BUILDERS = frozenset({"parquet", "csv", "json", "text", "arrow"})

#: Seconds to wait for the hub to answer before giving up (one probe per process).
HUB_TIMEOUT = float(os.environ.get("FLAN_DATA_HUB_TIMEOUT", "10"))
_HUB_STATE: dict[str, str | None] = {}


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_offline() -> bool:
    """True when the user asked ``datasets``/``huggingface_hub`` to stay offline."""
    return any(
        os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
        for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "FLAN_DATA_OFFLINE")
    )


def check_hub(what: str) -> None:
    """Raise :class:`HubUnreachableError` at once when the hub cannot be reached.

    One TCP connection to ``HF_ENDPOINT`` (default https://huggingface.co),
    at most :data:`HUB_TIMEOUT` seconds, answered from a per-process cache
    afterwards, so an unreachable hub costs seconds, not minutes of retries
    per source. Offline mode (``HF_HUB_OFFLINE=1``) skips the probe: the
    cache answers or fails fast by itself.
    """
    if hub_offline():
        return
    ep = hub_endpoint()
    if ep not in _HUB_STATE:
        _HUB_STATE[ep] = _probe(ep)
    why = _HUB_STATE[ep]
    if why is not None:
        raise HubUnreachableError(
            f"the Hugging Face hub at {ep} cannot be reached ({why}). "
            "Supply the data locally instead: --source-dir TASK=PATH (a folder written by "
            "datasets' save_to_disk), or set HF_HUB_OFFLINE=1 to read a filled Hugging Face "
            "cache; --skip-unavailable exports the tasks that can be read."
        )


def _probe(endpoint: str) -> str | None:
    import socket
    from urllib.parse import urlsplit

    u = urlsplit(endpoint)
    host = u.hostname
    if not host:
        return f"HF_ENDPOINT {endpoint!r} is not a URL"
    port = u.port or (443 if u.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=HUB_TIMEOUT):
            return None
    except OSError as e:
        return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


#: save_to_disk folders loaded in this process, keyed by folder + split of the
#: spec + the folder's files' sizes and mtimes (a rewritten copy reloads).
_LOADED: dict[tuple, Any] = {}
#: How many loaded local copies a process keeps (least recently used dropped first),
#: and how many bytes of Arrow files they map together (the last loaded is kept
#: whatever its size): the pages a read touched count in the process's RSS while
#: the files stay mapped (700 MB in a worker of the full-size flan2022 replica).
#: 128 MiB: a worker of the full-size replica rests at ~830 MiB of RSS between
#: jobs, ~240 MiB of it file-backed; jobs run task by task, so a copy is rarely
#: mapped again once dropped.
LOADED_MAX = 8
LOADED_BYTES = 128 << 20


def _mapped_bytes(key: tuple) -> int:
    """Bytes of the Arrow files of a loaded copy (from its :data:`_LOADED` key)."""
    return sum(size for path, size, _ in key[0][1] if path.endswith(".arrow"))


def _stamp(d: Path) -> tuple:
    files = []
    for p in sorted(d.rglob("*")):
        if p.is_file():
            st = p.stat()
            files.append((str(p), st.st_size, st.st_mtime_ns))
    return (str(d.resolve()), tuple(files))


class HFSource(Source):
    _local: Any = None

    def _hub_guard(self) -> None:
        """Refuse early what cannot load from the hub: a manual source or a script-only repo."""
        manual = self.spec.options.get("manual")
        if manual:
            raise SourceError(
                f"{self.describe()}: this dataset is not downloadable from the hub as is: {manual} "
                f"Then pass --source-dir {self.task_name or self.spec.path.split('/')[-1]}=PATH."
            )
        if self.spec.path in SCRIPT_ONLY_REPOS and not self.spec.revision:
            raise SourceError(
                f"{self.describe()}: the hub repo ships only a loading script, which datasets>=4 "
                "cannot run; pin a Parquet revision (refs/convert/parquet) or pass --source-dir"
            )
        check_hub(self.describe())

    def _load_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {}
        for k in ("data_files", "column_names", "encoding"):
            v = self.spec.options.get(k)
            if v is not None:
                kw[k] = thaw(v)
        export = self.spec.options.get("export_config")
        if export and "data_files" not in kw:
            kw["data_files"] = export_data_files(export, self._native_splits())
        return kw

    def _config(self) -> str | None:
        # the parquet export has no builder configs: its config is a folder (data_files)
        return None if self.spec.options.get("export_config") else self.spec.config

    def _revision(self) -> str | None:
        # a packaged builder (parquet/csv/json) has no revision: the pinned commit is in its hf:// data_files
        return None if self.spec.path in PACKAGED_BUILDERS else self.spec.revision

    def _hub_copy(self) -> bool:
        """False when ``path`` is a local folder laid out like the hub repo."""
        return not Path(self.spec.path).expanduser().is_dir()

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
            key = (_stamp(d), tuple(self.spec.splits.values()))
            hit = _LOADED.get(key)
            if hit is not None:  # counted earlier in this process: no second load
                _LOADED[key] = _LOADED.pop(key)  # most recently used last
                self._local = hit
                return hit
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
            # Memory-mapped tables: the pages a read touched count in the process's
            # RSS while the table stays mapped, so a long export over hundreds of
            # hub datasets keeps only the few it used last.
            size = _mapped_bytes(key)
            while _LOADED and (
                len(_LOADED) >= LOADED_MAX or sum(map(_mapped_bytes, _LOADED)) + size > LOADED_BYTES
            ):
                _LOADED.pop(next(iter(_LOADED)))
            _LOADED[key] = obj
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
        if self._hub_copy():
            self._hub_guard()
        ds = _datasets()
        try:
            ds.load_dataset_builder(
                self.spec.path, self._config(), revision=self._revision(), **self._load_kwargs()
            )
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
        d = local[split]
        if _plain_arrow(d):
            return _arrow_rows(d, lo, hi)
        # select() of a contiguous range is a zero-copy slice of the Arrow table
        return ((None, dict(rec)) for rec in d.select(range(lo, hi)))

    def _read_native_batches(self, split: str, lo: int, hi: int):
        local = self._load_local()
        if local is None or split not in local or not _plain_arrow(local[split]):
            return None
        return _arrow_batches(local[split], lo, hi)

    def _read_native(self, split: str) -> Iterator[tuple[str | None, Record]]:
        local = self._load_local()
        if local is not None:
            it = local[split]
            if _plain_arrow(it):
                yield from _arrow_rows(it, 0, len(it))
                return
        else:
            if self._hub_copy():
                self._hub_guard()
            ds = _datasets()
            try:
                it = ds.load_dataset(
                    self.spec.path,
                    self._config(),
                    split=split,
                    revision=self._revision(),
                    streaming=bool(self.spec.options.get("streaming", False)),
                    **self._load_kwargs(),
                )
            except Exception as e:
                raise SourceError(
                    f"{self.describe()}: cannot load split {split!r}: {type(e).__name__}: {str(e)[:300]}"
                ) from None
        for rec in it:
            yield None, dict(rec)


#: Rows converted to Python per Arrow slice when reading a local copy.
ARROW_BATCH = 1024


def _plain_arrow(d: Any) -> bool:
    """True when rows of Dataset ``d`` are exactly its Arrow rows as Python
    objects (no indices mapping, no output format, no feature that decodes:
    images, audio, ...), so they can be read as Arrow slices, ~10x faster than
    ``datasets``' per-row formatting, with the same dicts."""
    try:
        from datasets.features.features import require_decoding
    except ImportError:  # pragma: no cover - an older datasets
        return False
    if getattr(d, "_indices", None) is not None or d.format.get("type") is not None:
        return False
    cols = d.format.get("columns")
    if cols is not None and list(cols) != list(d.column_names):
        return False
    return not any(require_decoding(f) for f in d.features.values())


def _arrow_rows(d: Any, lo: int, hi: int) -> Iterator[tuple[None, Record]]:
    table = d.data.table if hasattr(d.data, "table") else d.data
    for a in range(lo, hi, ARROW_BATCH):
        for rec in table.slice(a, min(ARROW_BATCH, hi - a)).to_pylist():
            yield None, rec


#: Rows per Arrow slice when a local copy is read as record batches.
ARROW_BATCHES = 4096


def _arrow_batches(d: Any, lo: int, hi: int) -> Iterator[tuple[int, Any]]:
    """(row index, record batch) slices of rows ``[lo, hi)`` of a plain-Arrow
    Dataset: the rows :func:`_arrow_rows` converts to dicts, zero-copy."""
    table = d.data.table if hasattr(d.data, "table") else d.data
    for a in range(lo, hi, ARROW_BATCHES):
        at = a
        for b in table.slice(a, min(ARROW_BATCHES, hi - a)).to_batches():
            if b.num_rows:
                yield at, b
                at += b.num_rows
