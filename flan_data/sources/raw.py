"""Raw release files: a dataset's original files, by URL or from a folder the user gives.

For datasets whose only hub copy is a loading script (``datasets`` >= 4 cannot
run it), the catalog points at the files the script itself read. The spec's
options say where they are and how to read them:

- ``url``: the download location (a folder URL the file names are joined to);
  without it the files must be supplied with ``--source-dir NAME=PATH`` and
  ``manual`` says where to get them (a request form, a licence page);
- ``archive``: a zip file under ``url`` that holds the files (read in place);
- ``files``: native split -> file name (or a list: shards read in order, or
  for ``line_pairs`` the two parallel files); ``{00000..00098}`` in a name
  expands to that zero-padded range;
- ``format``: ``jsonl`` (one object a line), ``json_list`` (one JSON array of
  objects), ``tsv`` (``csv`` module rules, tab-separated, no header), ``tabs``
  (plain tab-split lines, exactly ``len(columns)`` fields), ``csv`` (a header
  row, then rows of exactly ``len(columns)`` fields), ``line_pairs``;
- ``columns``: field names by position (``a.b`` nests: ``translation.en``);
  ``types``: field -> ``int``/``float``; ``kv_fields``: fields holding a
  ``{name: text}`` mapping, turned into ``{"key": [...], "value": [...]}`` as
  TFDS stores such sequences; ``replace``: text -> replacement in every string
  value (Gigaword's ``<unk>`` -> ``UNK``).

Files ending in ``.gz`` are decompressed on the fly. Downloads go once into
``<cache>/raw/<name>/`` (``FLAN_DATA_CACHE``); offline mode
(``FLAN_DATA_OFFLINE=1``/``HF_HUB_OFFLINE=1``) reads only the cache. A local
folder (``--source-dir``) is searched for each file by its name (or its path
inside the archive) and for the archive itself. Before a download, one
connection to the host (seconds, answered once per process) decides whether
it can be reached; files on ``huggingface.co`` follow ``HF_ENDPOINT`` and the
hub check. :meth:`RawSource.check` downloads nothing.

>>> expand_name("d-{00000..00002}-of-00003.gz")
['d-00000-of-00003.gz', 'd-00001-of-00003.gz', 'd-00002-of-00003.gz']
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ..errors import SourceError
from ..specs import thaw
from .base import Record, Source
from .niv2 import default_cache_dir

FORMATS = ("jsonl", "json_list", "tsv", "tabs", "csv", "line_pairs")
_RANGE = re.compile(r"\{(\d+)\.\.(\d+)\}")
_TYPES = {"int": int, "float": float, "str": str}
#: download hosts probed in this process: "scheme://host" -> None (answers) or why not
_HOSTS: dict[str, str | None] = {}


def expand_name(name: str) -> list[str]:
    """``{a..b}`` in ``name`` -> one name per number, zero-padded to ``a``'s width."""
    m = _RANGE.search(name)
    if not m:
        return [name]
    a, b = m.group(1), m.group(2)
    width = len(a)
    out = []
    for i in range(int(a), int(b) + 1):
        out += expand_name(name[: m.start()] + str(i).zfill(width) + name[m.end() :])
    return out


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("FLAN_DATA_OFFLINE") == "1"


class RawSource(Source):
    """Reads a dataset's original release files (see the module docstring)."""

    def _opt(self, key: str, default: Any = None) -> Any:
        # thawed once per source: _finish asks for three options per record
        memo = self.__dict__.setdefault("_opts", {})
        if key not in memo:
            v = self.spec.options.get(key)
            memo[key] = thaw(v) if v is not None else None
        v = memo[key]
        return default if v is None else v

    @property
    def _name(self) -> str:
        return self.spec.path

    def _how_to_supply(self) -> str:
        manual = self._opt("manual")
        where = f" {manual}" if manual else ""
        return f"pass --source-dir {self._name}=PATH to a folder holding the files.{where}"

    # -- locating files

    def _files(self) -> dict[str, list[str]]:
        files = self._opt("files")
        if not isinstance(files, dict) or not files:
            raise SourceError(f"{self.describe()}: option 'files' (split -> file names) is missing")
        out = {}
        for split, names in files.items():
            names = names if isinstance(names, list) else [names]
            out[str(split)] = [n for name in names for n in expand_name(str(name))]
        return out

    def _native_splits(self) -> tuple[str, ...]:
        return tuple(self._files())

    def check(self) -> None:
        """Every file is local or cached, or its host answers (nothing is downloaded here)."""
        for names in self._files().values():
            for n in names:
                if self._local(n) is None and self._cached(n) is None:
                    arch = self._opt("archive")
                    if arch and (self._local(arch) or self._cached(arch)):
                        continue
                    if self.base_dir is not None:
                        self._locate(n)  # raises, naming the missing file
                    self._reachable(_on_hub_endpoint(self._url(arch or n)))

    def _local(self, name: str) -> Path | None:
        if self.base_dir is None:
            return None
        for c in (self.base_dir / name, self.base_dir / Path(name).name):
            if c.is_file():
                return c
        return None

    def _archive(self) -> Path | None:
        arch = self._opt("archive")
        if not arch:
            return None
        local = self._local(arch)
        if local is not None:
            return local
        if self.base_dir is not None:
            return None  # a folder was given: the files must be in it, extracted or not
        return self._download(arch)

    def _locate(self, name: str) -> tuple[Path, str | None]:
        """(file on disk, member inside it or None) for one file name."""
        local = self._local(name)
        if local is not None:
            return local, None
        arch = self._archive()
        if arch is not None:
            return arch, name
        if self.base_dir is not None:
            raise SourceError(
                f"{self.describe()}: no file {name} in {self.base_dir}; {self._how_to_supply()}"
            )
        return self._download(name), None

    def _url(self, name: str) -> str:
        base = self._opt("url")
        if not base:
            raise SourceError(
                f"{self.describe()}: the files are not downloadable as is; {self._how_to_supply()}"
            )
        return base.rstrip("/") + "/" + name

    def _target(self, name: str) -> Path:
        return (self.cache_dir or default_cache_dir()) / "raw" / self._name / name

    def _cached(self, name: str) -> Path | None:
        t = self._target(name)
        return t if t.is_file() else None

    def _reachable(self, url: str) -> None:
        """Fail in seconds, not minutes, when the download host does not answer."""
        if _offline():
            raise SourceError(
                f"{self.describe()}: {url} is not in the cache and offline mode is on; "
                + self._how_to_supply()
            )
        from urllib.parse import urlsplit

        from .hf import check_hub, hub_endpoint

        if url.startswith(hub_endpoint() + "/"):
            check_hub(self.describe())  # the hub's own message, shared by every hub source
            return
        u = urlsplit(url)
        key = f"{u.scheme}://{u.netloc}"
        if key not in _HOSTS:
            _HOSTS[key] = probe_host(key)
        if _HOSTS[key] is not None:
            # no task name here: tasks on the same host share one line in a summary
            raise SourceError(
                f"the download host {key} cannot be reached ({_HOSTS[key]}); supply the files "
                "with --source-dir TASK=PATH (a folder holding them), or --skip-unavailable"
            )

    def _download(self, name: str) -> Path:
        url = _on_hub_endpoint(self._url(name))
        target = self._target(name)
        if target.is_file():
            return target
        self._reachable(url)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        try:
            import shutil
            import urllib.request  # only when downloading

            with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as fh:
                shutil.copyfileobj(r, fh, 1 << 20)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise SourceError(
                f"{self.describe()}: cannot download {url}: {e}; {self._how_to_supply()}"
            ) from None
        os.replace(tmp, target)
        return target

    def _open(self, name: str) -> IO[bytes]:
        path, member = self._locate(name)
        try:
            if member is not None:
                with zipfile.ZipFile(path) as zf:  # the member keeps the file open
                    try:
                        fh: IO[bytes] = zf.open(member)
                    except KeyError:
                        raise SourceError(
                            f"{self.describe()}: {path} has no member {member}; {self._how_to_supply()}"
                        ) from None
            else:
                fh = open(path, "rb")  # noqa: SIM115 - the caller closes it
        except zipfile.BadZipFile:
            raise SourceError(f"{self.describe()}: {path} is not a zip archive") from None
        if name.endswith(".gz"):
            return gzip.open(fh)  # type: ignore[return-value]
        return fh

    # -- reading

    def _read_native(self, split: str) -> Iterator[tuple[str | None, Record]]:
        fmt = self._opt("format", "jsonl")
        if fmt not in FORMATS:
            raise SourceError(
                f"{self.describe()}: unknown raw format {fmt!r}; expected one of {', '.join(FORMATS)}"
            )
        names = self._files()[split]
        if fmt == "line_pairs":
            if len(names) != 2:
                raise SourceError(f"{self.describe()}: line_pairs needs two files for {split!r}")
            rows: Iterator[tuple[str, Any]] = self._line_pairs(*names)
        else:
            rows = (r for n in names for r in getattr(self, "_" + fmt)(n))
        for where, rec in rows:
            yield None, self._finish(rec, where)

    def _finish(self, rec: Any, where: str) -> Record:
        if not isinstance(rec, dict):
            raise SourceError(f"{where}: expected an object, got {type(rec).__name__}")
        for f, t in (self._opt("types") or {}).items():
            if f in rec:
                try:
                    rec[f] = _TYPES[t](rec[f])
                except (ValueError, TypeError, KeyError):
                    raise SourceError(f"{where}: field {f!r} is not a {t}: {rec[f]!r}") from None
        for f in self._opt("kv_fields") or []:
            v = rec.get(f)
            if isinstance(v, dict):
                rec[f] = {"key": list(v), "value": list(v.values())}
        for old, new in (self._opt("replace") or {}).items():
            rec = _replace(rec, old, new)
        return rec

    def _text_lines(self, name: str) -> Iterator[tuple[int, str]]:
        with self._open(name) as fh:
            for i, raw in enumerate(fh, 1):
                try:
                    yield i, raw.decode(self._opt("encoding", "utf-8"))
                except UnicodeDecodeError as e:
                    raise SourceError(f"{name}:{i}: not valid text (byte {e.start})") from None

    def _jsonl(self, name: str) -> Iterator[tuple[str, Any]]:
        for i, line in self._text_lines(name):
            if not line.strip():
                continue
            try:
                yield f"{name}:{i}", json.loads(line)
            except json.JSONDecodeError as e:
                raise SourceError(f"{name}:{i}: invalid JSON: {e.msg}") from None

    def _json_list(self, name: str) -> Iterator[tuple[str, Any]]:
        with self._open(name) as fh:
            try:
                doc = json.loads(fh.read().decode(self._opt("encoding", "utf-8-sig")))
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise SourceError(f"{name}: not a JSON document ({e})") from None
        if not isinstance(doc, list):
            raise SourceError(f"{name}: expected a JSON array of objects, got {type(doc).__name__}")
        for i, rec in enumerate(doc):
            yield f"{name}[{i}]", rec

    def _columns(self) -> list[str]:
        cols = self._opt("columns")
        if not cols:
            raise SourceError(f"{self.describe()}: option 'columns' is needed for this format")
        return list(cols)

    def _row(self, cols: list[str], row: list[str], where: str) -> Record:
        if len(row) != len(cols):
            raise SourceError(
                f"{where}: expected {len(cols)} fields ({', '.join(cols)}), found {len(row)}"
            )
        rec: Record = {}
        for c, v in zip(cols, row):
            d = rec
            *parents, leaf = c.split(".")
            for p in parents:
                d = d.setdefault(p, {})
            d[leaf] = v.strip()
        return rec

    def _tsv(self, name: str) -> Iterator[tuple[str, Any]]:
        cols = self._columns()
        lines = (line for _, line in self._text_lines(name))
        for i, row in enumerate(csv.reader(lines, delimiter="\t"), 1):
            if row:
                yield f"{name}:{i}", self._row(cols, row, f"{name}:{i}")

    def _tabs(self, name: str) -> Iterator[tuple[str, Any]]:
        cols = self._columns()
        for i, line in self._text_lines(name):
            line = line.rstrip("\r\n")
            if line.strip():
                yield f"{name}:{i}", self._row(cols, line.split("\t"), f"{name}:{i}")

    def _csv(self, name: str) -> Iterator[tuple[str, Any]]:
        cols = self._columns()
        lines = (line for _, line in self._text_lines(name))
        reader = csv.reader(lines, quotechar='"', delimiter=",", skipinitialspace=True)
        next(reader, None)  # the header row
        for i, row in enumerate(reader, 2):
            if row:
                yield f"{name}:{i}", self._row(cols, row, f"{name}:{i}")

    def _line_pairs(self, a: str, b: str) -> Iterator[tuple[str, Any]]:
        cols = self._columns()
        if len(cols) != 2:
            raise SourceError(f"{self.describe()}: line_pairs needs two column names")
        left, right = self._text_lines(a), self._text_lines(b)
        n = 0
        while True:
            x, y = next(left, None), next(right, None)
            if x is None or y is None:
                if x is not None or y is not None:
                    raise SourceError(
                        f"{a} and {b} have different line counts (they differ after line {n})"
                    )
                return
            n += 1
            yield f"{a}:{n}", {cols[0]: x[1].strip(), cols[1]: y[1].strip()}


def probe_host(base: str) -> str | None:
    """None when ``base`` (``scheme://host[:port]``) accepts a connection, else why not."""
    from .hf import _probe

    return _probe(base)


def _on_hub_endpoint(url: str) -> str:
    """Files hosted on the hub follow ``HF_ENDPOINT`` (a mirror) like the hub sources."""
    from .hf import hub_endpoint

    hub = "https://huggingface.co"
    return hub_endpoint() + url[len(hub) :] if url.startswith(hub + "/") else url


def _replace(v: Any, old: str, new: str) -> Any:
    if isinstance(v, str):
        return v.replace(old, new)
    if isinstance(v, dict):
        return {k: _replace(x, old, new) for k, x in v.items()}
    if isinstance(v, list):
        return [_replace(x, old, new) for x in v]
    return v


__all__ = ["RawSource", "expand_name", "FORMATS"]
