"""Render one sample row of a task exactly as ``flan render`` and export do.

The preview calls :func:`flan_data.render.render_task` (the same
:class:`~flan_data.render.TaskRenderer`, sandbox, seeds and exemplar pool), so
row ``k`` of a preview is byte-identical to the ``k``-th object printed by
``flan render TASK -n k+1 --json`` with the same arguments.

>>> from flan_data import Catalog
>>> p = preview(Catalog.load(), "anli_r1", fmt="zs_noopt", seed=3)
>>> p["example"]["task"], p["example"]["format"]
('anli_r1', 'zs_noopt')
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..catalog import Catalog
from ..errors import FlanDataError
from ..render import RenderConfig, render_task
from .query import plain

#: The largest row index a preview reads (it reads rows 0..row of the split).
MAX_ROW = 999


def preview(
    cat: Catalog,
    task: str,
    *,
    fmt: str = "zs_opt",
    seed: int = 0,
    template_id: str | None = None,
    row: int = 0,
    split: str = "validation",
    source: str = "auto",
    source_dirs: Mapping[str, str | Path] | None = None,
    config: RenderConfig | None = None,
) -> dict[str, Any]:
    """Row ``row`` of ``split`` rendered in ``fmt``: ``{"example": {...}, "record": {...}}``.

    ``example`` is :meth:`RenderedExample.to_dict` (what export writes per row);
    ``record`` is the raw source record it came from.
    """
    if not 0 <= row <= MAX_ROW:
        raise FlanDataError(f"row must be between 0 and {MAX_ROW}, got {row}")
    from ..sources import open_task_source

    cat.task(task)  # unknown name: a clear error with suggestions
    examples = list(
        render_task(cat, task, fmt=fmt, n=row + 1, seed=seed, split=split, template_id=template_id,
                    source=source, source_dirs=source_dirs, config=config)
    )  # fmt: skip
    if len(examples) <= row:
        raise FlanDataError(
            f"task {task!r}: split {split!r} has only {len(examples)} record(s); row {row} does not exist"
        )
    ex = examples[row]
    src = open_task_source(cat, cat.task(task), source, source_dirs)
    record = None
    for eid, rec in itertools.islice(src.read(split), row, row + 1):
        if eid == ex.example_id:
            record = plain(dict(rec))
    return {"example": ex.to_dict(), "record": record}
