"""Super-NaturalInstructions raw task files (``tasks/<task>.json``).

The real files have quirks this reader smooths over: ``Definition`` is a string
or a list of strings; an instance's ``output`` is a string or a list; some files
hold bare ``NaN`` tokens; some have CRLF line endings; keys may be capitalised
(``Input``/``Output``) and instances may lack an ``id``.

Each instance becomes a record with the canonical raw keys ``definition``,
``input``, ``output`` (the first output), ``outputs`` (all of them) and
``positive_examples`` / ``negative_examples`` (lists of
``{input, output, explanation}``). The file has one split, ``train``; use
``validation_size`` in the spec to hold out the last instances.

``path`` is the task name (looked up as ``<dir>/tasks/<name>.json`` or
``<dir>/<name>.json``), a JSON file, or an ``https://`` URL downloaded once into
the cache. Without a local directory, the task is fetched from the
natural-instructions repository's raw file URL into the cache on first use.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import SourceError
from .base import Record, Source

RAW_URL = "https://raw.githubusercontent.com/allenai/natural-instructions/master/tasks/{name}.json"


def default_cache_dir() -> Path:
    base = os.environ.get("FLAN_DATA_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "flan-data"
    )
    return Path(base)


def _text(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, list):
        return "\n".join(_text(x) for x in v)
    return str(v)


def _outputs(v: Any) -> list[str]:
    if isinstance(v, list):
        return [_text(x) for x in v]
    return [_text(v)]


def _get(d: dict[str, Any], key: str, default: Any = None) -> Any:
    if key in d:
        return d[key]
    cap = key[:1].upper() + key[1:]
    return d.get(cap, default)


def _examples(raw: Any) -> list[dict[str, str]]:
    out = []
    for ex in raw or []:
        if isinstance(ex, dict):
            out.append(
                {
                    "input": _text(_get(ex, "input")),
                    "output": _text(_get(ex, "output")),
                    "explanation": _text(_get(ex, "explanation")),
                }
            )
    return out


def parse_task(data: bytes, where: str) -> dict[str, Any]:
    """Parse a task file's bytes (UTF-8, optional BOM/CRLF, bare NaN allowed)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SourceError(f"{where}: not valid UTF-8 (byte offset {e.start})") from None
    try:
        doc = json.loads(text)  # json accepts bare NaN/Infinity as floats
    except json.JSONDecodeError as e:
        raise SourceError(
            f"{where}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}"
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("Instances"), list):
        raise SourceError(f"{where}: not a natural-instructions task file (no 'Instances' list)")
    return doc


class NIv2Source(Source):
    _doc: dict[str, Any] | None = None

    def _file(self) -> Path:
        p = self.spec.path
        if p.startswith(("http://", "https://")):
            return self._download(p, Path(p).name)
        name = p[:-5] if p.endswith(".json") else p
        candidates = []
        if self.base_dir is not None:
            candidates += [self.base_dir / "tasks" / f"{name}.json", self.base_dir / f"{name}.json"]
        candidates.append(Path(p).expanduser())
        for c in candidates:
            if c.is_file():
                return c
        if self.base_dir is not None:
            raise SourceError(
                f"{self.describe()}: no task file {name}.json under {self.base_dir} (looked in tasks/ and the folder itself)"
            )
        return self._download(RAW_URL.format(name=name), f"{name}.json")

    def _download(self, url: str, fname: str) -> Path:
        cache = (self.cache_dir or default_cache_dir()) / "niv2"
        target = cache / fname
        if target.is_file():
            return target
        if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("FLAN_DATA_OFFLINE") == "1":
            raise SourceError(
                f"{self.describe()}: not in the cache ({target}) and offline mode is on; pass --source-dir niv2=PATH to a natural-instructions checkout"
            )
        cache.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".part")
        try:
            import urllib.request  # only when downloading: ~40 ms at import

            with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as fh:
                fh.write(r.read())
        except OSError as e:
            raise SourceError(
                f"{self.describe()}: cannot download {url}: {e}; pass --source-dir niv2=PATH to a natural-instructions checkout"
            ) from None
        parse_task(tmp.read_bytes(), url)  # refuse to cache something that is not a task file
        os.replace(tmp, target)
        return target

    def load(self) -> dict[str, Any]:
        if self._doc is None:
            f = self._file()
            self._doc = parse_task(f.read_bytes(), str(f))
            self._where = str(f)
        return self._doc

    def check(self) -> None:
        self.load()

    def _native_splits(self) -> tuple[str, ...]:
        return ("train",)

    def _read_native(self, split: str) -> Iterator[tuple[str | None, Record]]:
        doc = self.load()
        definition = _text(_get(doc, "Definition", ""))
        pos = _examples(doc.get("Positive Examples"))
        neg = _examples(doc.get("Negative Examples"))
        for i, inst in enumerate(doc["Instances"]):
            if not isinstance(inst, dict):
                raise SourceError(f"{self._where}: instance {i} is not an object")
            # the common case (a str input, a list of str outputs) without the general helpers
            out = inst.get("output")
            if type(out) is list and all(type(x) is str for x in out):
                outs = list(out)
            else:
                outs = _outputs(_get(inst, "output", ""))
            inp = inst.get("input")
            if type(inp) is not str:
                inp = _text(_get(inst, "input", ""))
            rid = inst.get("id")
            yield (
                (str(rid) if rid is not None else None),
                {
                    "id": rid,
                    "definition": definition,
                    "input": inp,
                    "output": outs[0] if outs else "",
                    "outputs": outs,
                    "positive_examples": pos,
                    "negative_examples": neg,
                },
            )
