"""A parsed-catalog cache for fast CLI start-up.

Parsing the 1,995-task catalog (YAML + validation) takes about a second;
unpickling the parsed :class:`~flan_data.catalog.Catalog` takes a tenth of
that. :func:`load_catalog` keeps the parsed catalog in
``$FLAN_DATA_CACHE/catalog/`` (default ``~/.cache/flan-data``), valid while
the bytes of every file it was built from (its fingerprint's input) stay the
same and the folders holding them and flan_data's own code keep their size
and modification time; anything else reparses.
``FLAN_DATA_CATALOG_CACHE=0`` turns it off.

>>> cat = load_catalog()
>>> cat.task("anli_r1").collection
'flan2021'
"""

from __future__ import annotations

import copyreg
import hashlib
import io
import os
import pickle
import sys
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from . import __version__
from .catalog import Catalog, default_root

_CODE = Path(__file__).resolve().parent


def _proxy(d: dict) -> MappingProxyType:
    return MappingProxyType(d)


def dumps_catalog(catalog: Any) -> bytes:
    """Pickle a parsed catalog (or anything holding one); frozen mappings included.

    >>> pickle.loads(dumps_catalog(Catalog.load())).task("anli_r1").name
    'anli_r1'
    """
    buf = io.BytesIO()
    p = pickle.Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL)
    p.dispatch_table = copyreg.dispatch_table.copy()
    p.dispatch_table[MappingProxyType] = lambda m: (_proxy, (dict(m),))
    p.dump(catalog)
    return buf.getvalue()


def _stamp(paths: Sequence[str]) -> list[tuple[str, int, int] | None]:
    out: list[tuple[str, int, int] | None] = []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            out.append(None)
            continue
        out.append((p, st.st_size, st.st_mtime_ns))
    return out


def _digest(files: Sequence[str]) -> str | None:
    # the catalog's own files by content (a same-size rewrite within one
    # mtime tick must not be missed); code and folders by size and mtime
    h = hashlib.sha256()
    for f in files:
        try:
            h.update(f.encode() + b"\0" + Path(f).read_bytes() + b"\0")
        except OSError:
            return None
    return h.hexdigest()


def _cache_dir() -> Path:
    base = os.environ.get("FLAN_DATA_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "flan-data"
    )
    return Path(base) / "catalog"


def load_catalog(root: str | Path | None = None, extra_files: Sequence[str | Path] = ()) -> Catalog:
    """:meth:`Catalog.load`, answered from the parsed-catalog cache when valid."""
    if os.environ.get("FLAN_DATA_CATALOG_CACHE", "1") == "0":
        return Catalog.load(root, extra_files=extra_files)
    where = Path(root).resolve() if root is not None else default_root().resolve()
    extras = [str(Path(e).resolve()) for e in extra_files]
    key = hashlib.sha256(repr((str(where), extras, __version__, sys.version)).encode()).hexdigest()[
        :24
    ]
    path = _cache_dir() / f"{key}.pickle"
    try:
        entry = pickle.loads(path.read_bytes())
        if entry["stamp"] == _stamp(entry["paths"]) and entry["digest"] == _digest(entry["files"]):
            return entry["catalog"]
    except Exception:  # noqa: BLE001 - missing, stale or unreadable: parse again
        pass
    cat = Catalog.load(root, extra_files=extra_files)
    files = sorted({str(Path(f).resolve()) for f in cat.files})
    dirs = {str(Path(f).parent) for f in files} | set(extras)
    code = {str(p) for p in _CODE.rglob("*.py")}
    paths = sorted(dirs | code)
    entry = {"paths": paths, "stamp": _stamp(paths), "files": files, "digest": _digest(files)}
    _ = cat.fingerprint  # computed now, stored with the cached catalog
    try:
        data = dumps_catalog({**entry, "catalog": cat})
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:  # a read-only cache folder only costs speed
        pass
    return cat


__all__ = ["dumps_catalog", "load_catalog"]
