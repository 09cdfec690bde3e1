"""The bounded least-recently-used list (flan_data.lru) behind the hot path's
per-process caches: the few-shot caches of task renderers (render.py, bounds
tested in test_memory_bounds.py and test_fewshot_cache.py) and the exemplar
tables of pools (columnar_fs.py, tested here). Counted, never timed."""

from __future__ import annotations

import pyarrow as pa
from test_columnar import _clean
from test_columnar_fs import _pool
from test_render_columnar import _CAT

from flan_data import Renderer, columnar_fs
from flan_data.columnar import TaskColumns
from flan_data.lru import touch


class Item:
    def __init__(self, name: str, size: int = 1):
        self.name, self.size = name, size

    def __eq__(self, other):  # equal to everything: the list must tell items apart by identity
        return True

    __hash__ = object.__hash__


def _run(live, item, evicted, kept=3, max_bytes=10**9):
    touch(live, item, kept=kept, max_bytes=max_bytes, size=lambda x: x.size, evict=evicted.append)


def _names(items):
    return [x.name for x in items]


def test_most_recent_last_and_count_bound_evicts_least_recent_first():
    a, b, c, d, e = (Item(n) for n in "abcde")
    live, out = [], []
    for x in (a, b, c, a, a, d):  # a used again: b is now the least recently used
        _run(live, x, out)
    assert _names(live) == ["c", "a", "d"] and _names(out) == ["b"]
    _run(live, c, out)
    _run(live, e, out)
    assert _names(live) == ["d", "c", "e"] and _names(out) == ["b", "a"]


def test_size_bound_evicts_least_recent_first_and_keeps_the_one_touched():
    a, b, c = Item("a", 4), Item("b", 4), Item("c", 4)
    live, out = [], []
    for x in (a, b, c):
        _run(live, x, out, kept=10, max_bytes=9)
    assert _names(live) == ["b", "c"] and _names(out) == ["a"]
    big = Item("big", 100)  # over the bound alone: it stays, every other one goes
    _run(live, big, out, kept=10, max_bytes=9)
    assert _names(live) == ["big"] and _names(out) == ["a", "b", "c"]
    _run(live, big, out, kept=10, max_bytes=9)  # touched again: nothing changes
    assert _names(live) == ["big"] and len(out) == 3


def test_both_bounds_and_sizes_read_at_each_touch():
    a, b, c = Item("a", 2), Item("b", 2), Item("c", 2)
    live, out = [], []
    for x in (a, b, c):
        _run(live, x, out, kept=3, max_bytes=100)
    b.size = 50  # a cache grows after its touch
    _run(live, c, out, kept=3, max_bytes=40)
    assert _names(live) == ["c"] and _names(out) == ["a", "b"]
    _run(live, a, out, kept=1, max_bytes=100)  # a lower count bound applies at once
    assert _names(live) == ["a"] and _names(out) == ["a", "b", "c"]


def _fewshot(tr):
    tc = TaskColumns.of(tr)
    recs = [_clean(tr, i) for i in range(40)]
    pool = _pool(tr, recs[:20])
    ids = [f"id-{i}" for i in range(40)]
    res = columnar_fs.render_fewshot(tc, pa.RecordBatch.from_pylist(recs), ids, fmt="fs_opt",
                                     seed=1, split="train", pool=pool)  # fmt: skip
    assert len(res.rows) > 20
    return tc, (res.inputs.to_pylist(), res.targets.to_pylist(), res.rows.tolist())


def test_fewshot_tables_are_kept_for_a_few_pools_bounded_by_count_and_bytes(monkeypatch):
    monkeypatch.setattr(columnar_fs, "_LIVE", [])
    monkeypatch.setattr(columnar_fs, "TABLES_KEPT", 2)
    trs = [Renderer(_CAT).task_renderer("anli_r1") for _ in range(3)]
    tcs, outs = zip(*(_fewshot(tr) for tr in trs))
    held = [bool(tc.__dict__.get("_fs_tables")) for tc in tcs]
    assert held == [False, True, True]  # the least recently used one was dropped
    assert [t.tc for t in columnar_fs._LIVE] == list(tcs[1:])
    one = columnar_fs._LIVE[-1].nbytes
    monkeypatch.setattr(columnar_fs, "TABLES_BYTES", one + one // 2)  # room for one only
    tc, again = _fewshot(trs[0])  # built again: the same rows
    assert again == outs[0]
    assert [t.tc for t in columnar_fs._LIVE] == [tc]
    assert [bool(t.__dict__.get("_fs_tables")) for t in tcs] == [True, False, False]
