"""The Flan CoT training files: ``question \\t answer \\t chain_of_thought``.

No header; newlines inside a field are written as a literal backslash-n, which
this reader turns back into real newlines. One split, ``train``; use
``validation_size`` to hold out the last rows. ``path`` is a file name (looked
up in the source directory), a path, or an ``https://`` URL cached on first use.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import SourceError
from .base import Record, Source
from .niv2 import default_cache_dir

FIELDS = ("question", "answer", "chain_of_thought")


class CotTsvSource(Source):
    def _file(self) -> Path:
        p = self.spec.path
        if p.startswith(("http://", "https://")):
            target = (self.cache_dir or default_cache_dir()) / "cot" / Path(p).name
            if not target.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    import urllib.request  # only when downloading: 37 ms at import

                    with urllib.request.urlopen(p, timeout=60) as r:
                        data = r.read()
                except OSError as e:
                    raise SourceError(
                        f"{self.describe()}: cannot download {p}: {e}; pass --source-dir cot=PATH"
                    ) from None
                tmp = target.with_suffix(".part")
                tmp.write_bytes(data)
                os.replace(tmp, target)
            return target
        f = self.resolve(p)
        if not f.is_file():
            raise SourceError(
                f"{self.describe()}: no such file: {f}; pass --source-dir cot=PATH (a folder holding the Flan CoT <dataset>_train.tsv files)"
            )
        return f

    def check(self) -> None:
        self._file()

    def _native_splits(self) -> tuple[str, ...]:
        return ("train",)

    def _read_native(self, split: str) -> Iterator[tuple[str | None, Record]]:
        f = self._file()
        with open(f, "rb") as fh:
            for lineno, raw in enumerate(fh, 1):
                try:
                    line = raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError as e:
                    raise SourceError(
                        f"{f}:{lineno}: not valid UTF-8 (byte {e.start} of the line)"
                    ) from None
                if not line.strip():
                    continue
                parts = line.split("\t")
                if len(parts) != 3:
                    raise SourceError(
                        f"{f}:{lineno}: expected 3 tab-separated fields (question, answer, chain_of_thought), got {len(parts)}"
                    )
                yield None, {k: v.replace("\\n", "\n").strip() for k, v in zip(FIELDS, parts)}
