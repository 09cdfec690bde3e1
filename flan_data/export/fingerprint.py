"""What an export read: a fingerprint of every task's source, kept in the export spec.

A resume or rerun whose sources changed (a file edited, replaced, truncated, a
different hub revision) has a different fingerprint, so it is refused instead of
mixing rows from two versions of the data.

Local files are named by path, size, modification time and sha256 of their
content. Hashes are cached by (size, mtime, ctime, inode), so a resume does
not read unchanged files again (ctime changes on every write and cannot be
set back by copying tools).

>>> fp = {"toy": [{"file": "/d/train.jsonl", "bytes": 10, "mtime_ns": 1, "sha256": "ab"}]}
>>> describe_change(fp, {"toy": [{"file": "/d/train.jsonl", "bytes": 12, "mtime_ns": 2, "sha256": "cd"}]})
'task toy: /d/train.jsonl changed (size 10 → 12 bytes, content differs)'
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..catalog import Catalog
from ..errors import FlanDataError
from ..sources import open_task_source
from ..specs import TaskSpec
from .writer import sha256_file

TRAIN = "train"


def source_files(
    catalog: Catalog, task: TaskSpec, source: str, source_dirs: Mapping[str, str]
) -> dict[str, Any]:
    """The files (or hub revision) a task's train split is read from."""
    src = open_task_source(catalog, task, source, source_dirs)
    kind = src.spec.kind
    native = src.spec.split_name(TRAIN)
    files: list[Path] = []
    if kind == "raw":  # release files: names per split, found in --source-dir or the cache
        names = src._files().get(native) or sorted({n for ns in src._files().values() for n in ns})
        if src.base_dir is None:
            return {"raw": src.spec.path, "url": src.spec.options.get("url"), "files": names}
        files = list(dict.fromkeys(src._locate(n)[0] for n in names))
    elif hasattr(src, "_files"):  # jsonl, parquet, csv, tsv, arrow
        found = src._files()
        files = [found[native]] if native in found else sorted(found.values())
    elif kind in ("niv2", "cot_tsv"):
        files = [src._file()]
    elif kind == "hf":
        local = src._local_dir()
        if local is None:
            return {
                "hub": src.spec.path,
                "config": src.spec.config,
                "revision": src.spec.revision,
                "resolved": resolved_revision(src.spec.path, src.spec.revision),
            }
        files = sorted(p for p in local.rglob("*") if p.is_file())
    return {"files": [str(Path(f).resolve()) for f in files]}


def resolved_revision(repo: str, revision: str | None) -> str | None:
    """The commit a hub dataset ``repo`` at ``revision`` (default: main) resolves to
    in the local Hugging Face cache (what an offline or cached load reads), or None.

    >>> resolved_revision("org/name", "0123456789abcdef0123456789abcdef01234567")
    '0123456789abcdef0123456789abcdef01234567'
    """
    if revision and len(revision) == 40 and all(c in "0123456789abcdef" for c in revision):
        return revision
    try:
        from huggingface_hub import constants
    except ImportError:
        return None
    ref = (
        Path(constants.HF_HUB_CACHE)
        / f"datasets--{repo.replace('/', '--')}"
        / "refs"
        / (revision or "main")
    )
    try:
        return ref.read_text().strip() or None
    except OSError:
        return None


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def fingerprint(catalog: Catalog, tasks: Iterable[TaskSpec], source: str, source_dirs: Mapping[str, str],
                cache_file: Path | None = None, cache_out: dict[str, Any] | None = None,
                hashed: Mapping[str, Any] | None = None) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    """``{task: [{file, bytes, mtime_ns, sha256} | {hub, config, revision}]}`` for ``tasks``.

    Hashes are reused from ``cache_file`` when a file's stat is unchanged, and
    from ``hashed`` (``{file: [stat key, sha256]}``, e.g. made beside the count
    pass by :func:`hash_sources`) likewise; ``cache_out`` receives the entries
    to cache (see :func:`save_cache`)."""
    cache = _load_cache(cache_file)
    if hashed:
        cache = {**cache, **hashed}
    out: dict[str, list[dict[str, Any]]] = {}
    fresh: dict[str, Any] = {}
    for t in sorted(tasks, key=lambda t: t.name):
        try:
            where = source_files(catalog, t, source, source_dirs)
        except FlanDataError:
            raise
        if "hub" in where or "raw" in where:
            out[t.name] = [where]
            continue
        entries = []
        for f in where["files"]:
            try:
                st = os.stat(f)
            except OSError as e:
                raise FlanDataError(f"task {t.name}: cannot read {f}: {e.strerror}") from None
            key = _stat_key(st)
            hit = fresh.get(f) or cache.get(f)  # a file shared by several tasks is hashed once
            digest = hit[1] if hit and hit[0] == key else sha256_file(Path(f))
            fresh[f] = [key, digest]
            entries.append(
                {"file": f, "bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
            )
        out[t.name] = entries
    if cache_out is not None:
        cache_out.update(fresh)
    return out


def _load_cache(cache_file: Path | None) -> dict[str, Any]:
    if cache_file is not None and cache_file.is_file():
        try:
            return json.loads(cache_file.read_text())
        except (OSError, ValueError):
            pass
    return {}


#: Hashes this process made (:func:`hash_sources`): a file shared by tasks is read once.
_HASHED: dict[str, list[Any]] = {}
_CACHES: dict[str, tuple[list[int] | None, dict[str, Any]]] = {}


def hash_sources(catalog: Catalog, task: str, source: str, source_dirs: Mapping[str, str],
                 cache_file: str | None = None) -> dict[str, list[Any]]:  # fmt: skip
    """``{file: [stat key, sha256]}`` of the local files ``task``'s train split is
    read from, as :func:`fingerprint` computes them (reused from ``cache_file`` or
    from this process's earlier calls while a file's stat is unchanged). Run by
    the count pass's workers, so that the export's fingerprint (in the parent,
    after planning) finds the hashes made; ``{}`` on any problem (the fingerprint
    then reads the file itself and words the error).

    >>> # hash_sources(cat, "task001_quoref_question_generation", "real", dirs)
    """
    try:
        where = source_files(catalog, catalog.task(task), source, source_dirs)
        if "hub" in where or "raw" in where:
            return {}
        cache: dict[str, Any] = {}
        if cache_file:
            try:
                ck = _stat_key(os.stat(cache_file))
            except OSError:
                ck = None
            hit = _CACHES.get(cache_file)
            if hit is None or hit[0] != ck:
                hit = _CACHES[cache_file] = (ck, _load_cache(Path(cache_file)) if ck else {})
            cache = hit[1]
        out = {}
        for f in where["files"]:
            key = _stat_key(os.stat(f))
            old = _HASHED.get(f) or cache.get(f)
            if not (old and old[0] == key):
                old = _HASHED[f] = [key, sha256_file(Path(f))]
            out[f] = old
        return out
    except Exception:  # noqa: BLE001 - the fingerprint decides (and words the error)
        return {}


def save_cache(entries: Mapping[str, Any], cache_file: Path) -> None:
    from .writer import atomic_write_bytes, dumps

    data = dumps(dict(entries))
    if not (cache_file.is_file() and cache_file.read_bytes() == data):
        atomic_write_bytes(cache_file, data, sync=False)


def describe_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """The first difference between two fingerprints, in words; None when equal."""
    for task in sorted(set(old) & set(new)):  # tasks entering or leaving are a plan change
        a, b = old[task], new[task]
        if a == b:
            continue
        byfile_a = {e.get("file") or e.get("hub") or e.get("raw"): e for e in a}
        byfile_b = {e.get("file") or e.get("hub") or e.get("raw"): e for e in b}
        for name in sorted(set(byfile_a) | set(byfile_b), key=str):
            x, y = byfile_a.get(name), byfile_b.get(name)
            if x == y:
                continue
            if x is None or y is None:
                return (
                    f"task {task}: source file {name} {'appeared' if x is None else 'disappeared'}"
                )
            if "hub" in x:
                a_rev = x.get("resolved") or x.get("revision")
                b_rev = y.get("resolved") or y.get("revision")
                return f"task {task}: hub dataset {name} revision {a_rev!r} → {b_rev!r}"
            if "raw" in x:
                return f"task {task}: release files of {name} changed ({x.get('url')} → {y.get('url')})"
            what = []
            if x["bytes"] != y["bytes"]:
                what.append(f"size {x['bytes']} → {y['bytes']} bytes")
            if x["sha256"] != y["sha256"]:
                what.append("content differs")
            elif x["mtime_ns"] != y["mtime_ns"]:
                what.append("modification time differs, content is the same")
            return f"task {task}: {name} changed ({', '.join(what)})"
    return None
