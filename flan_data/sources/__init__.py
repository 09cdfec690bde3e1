"""Sources: read a task's raw records, from the hub, local files or bundled samples.

>>> from flan_data import Catalog
>>> cat = Catalog.load()
>>> src = open_task_source(cat, cat.task("anli_r1"), choice="sample")
>>> eid, rec = next(iter(src.read("train")))
>>> sorted(rec)[:2]
['hypothesis', 'label']
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..errors import FlanDataError, SourceError
from ..specs import SOURCE_CHOICES, SourceSpec, TaskSpec
from .base import Record, Source
from .cot_tsv import CotTsvSource
from .files import FileSource
from .hf import HFSource
from .niv2 import NIv2Source
from .raw import RawSource

SOURCE_CLASSES: Mapping[str, type[Source]] = {
    "hf": HFSource,
    "niv2": NIv2Source,
    "cot_tsv": CotTsvSource,
    "jsonl": FileSource,
    "csv": FileSource,
    "tsv": FileSource,
    "parquet": FileSource,
    "arrow": FileSource,
    "raw": RawSource,
}


def open_source(
    spec: SourceSpec, base_dir: str | Path | None = None, cache_dir: str | Path | None = None
) -> Source:
    """A reader for ``spec``; relative paths resolve against ``base_dir``."""
    return SOURCE_CLASSES[spec.kind](spec, base_dir=base_dir, cache_dir=cache_dir)


def open_task_source(
    catalog,
    task: TaskSpec,
    choice: str = "auto",
    source_dirs: Mapping[str, str | Path] | None = None,
    cache_dir: str | Path | None = None,
) -> Source:
    """The source to read ``task`` from.

    ``source_dirs`` maps a task or collection name to a local folder (the
    ``--source-dir NAME=PATH`` option); a task entry wins over its collection.
    ``choice`` is ``real`` (the task's real source), ``sample`` (the bundled
    sample data) or ``auto``: a given source dir, else the bundled sample when
    the task has one, else the real source. The task's record rules
    (``records:``) apply to whichever source is chosen.
    """
    if choice not in SOURCE_CHOICES:
        raise FlanDataError(
            f"unknown source choice {choice!r}; expected one of {', '.join(SOURCE_CHOICES)}"
        )
    dirs = source_dirs or {}
    local = dirs.get(task.name) or dirs.get(task.collection)
    if choice == "sample" or (choice == "auto" and local is None and task.sample is not None):
        if task.sample is None:
            raise SourceError(
                f"task {task.name!r} has no bundled sample data; use the real source (--source real) with --source-dir {task.name}=PATH"
            )
        src = open_source(task.sample, base_dir=catalog.sample_dir)
    else:
        src = open_source(task.source, base_dir=local, cache_dir=cache_dir)
    return with_rules(src, task)


def with_rules(src: Source, task: TaskSpec) -> Source:
    """``src`` set up to apply ``task``'s record rules (see :mod:`flan_data.records`)."""
    src.task_name = task.name
    if task.records:
        from ..records import compile_rules

        src.rules = compile_rules(task.records)
    return src


__all__ = [
    "Record",
    "Source",
    "SourceSpec",
    "open_source",
    "open_task_source",
    "with_rules",
    "SOURCE_CLASSES",
    "SOURCE_CHOICES",
]
