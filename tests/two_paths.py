"""The check the column-wise render tests share (test_columnar, test_columnar_fs):
a fast path's rows, plus ``render_batch`` over the rows it hands back, are
exactly ``render_batch``'s per-row rows and errors.

Tests import it as ``from two_paths import ...`` (pytest puts this folder on ``sys.path``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from flan_data.errors import FlanDataError

#: The columns compared, in the order of a row's tuple.
KEYS = ("inputs", "targets", "template_id", "seed", "options", "example_id", "fewshot_style",
        "exemplar_ids", "format", "task", "collection", "source_split")  # fmt: skip


def rows_of(cols: dict, index: Sequence[int]) -> dict[int, tuple]:
    """``render_batch`` columns as ``{item index: row tuple}`` (``index``: each row's item)."""
    return {i: tuple(tuple(v) if isinstance(v, list) else v for v in (cols[k][j] for k in KEYS))
            for j, i in enumerate(index)}  # fmt: skip


def fast_row(tr, fmt: str, split: str, inputs: str, targets: str, template_id: str, seed: int,
             example_id: str, fewshot_style: str | None = None, exemplar_ids=()) -> tuple:  # fmt: skip
    """One row a fast path rendered, as :func:`rows_of` gives it (options and task facts from ``tr``)."""
    opts = tuple(tr.task.options) if tr.task.options else None
    return (inputs, targets, template_id, int(seed), opts, example_id, fewshot_style,
            tuple(exemplar_ids), fmt, tr.task.name, tr.task.collection, split)  # fmt: skip


def same_rows(tr, items: list[tuple[str, Any]], kw: dict,
              fast: Callable[[], tuple[list[tuple[int, tuple]], list[int]]]) -> int:  # fmt: skip
    """``tr.render_batch(items, columnar=False, **kw)``'s rows and errors == the rows
    ``fast()`` renders (``[(item index, fast_row(...))]``) plus ``render_batch`` over
    the item indices it hands back (the second list). A whole batch failing must
    fail the same way on both. Returns the rows ``fast`` rendered."""

    def old():
        errs: list = []
        cols = tr.render_batch(items, errors=errs, columnar=False, **kw)
        return rows_of(cols, cols["index"]), sorted((i, str(e)) for i, e in errs)

    def new():
        got, fb = fast()
        rows = dict(got)
        assert len(rows) == len(got), "a row rendered twice"
        assert sorted(set(fb) | set(rows)) == list(range(len(items))) and not set(fb) & set(rows)
        errs: list = []
        cols = tr.render_batch([items[i] for i in fb], errors=errs, columnar=False, **kw)
        rows.update(rows_of(cols, [fb[i] for i in cols["index"]]))
        return rows, sorted((fb[i], str(e)) for i, e in errs), len(got)

    try:
        want = old()
    except FlanDataError as e:  # the whole batch fails (e.g. no template for the format)
        with pytest.raises(type(e)) as raised:
            new()
        assert str(raised.value) == str(e)
        return 0
    got_rows, got_errs, n_fast = new()
    assert got_rows == want[0]
    assert got_errs == want[1]
    return n_fast


def took_columns(monkeypatch, module) -> list[bool]:
    """Spy on ``module.render_items`` (what ``render_batch`` calls for a big batch):
    the list returned gets, per call, whether it gave columns (not None)."""
    took: list[bool] = []
    real = module.render_items

    def spy(*a, **kw):
        got = real(*a, **kw)
        took.append(got is not None)
        return got

    monkeypatch.setattr(module, "render_items", spy)
    return took
