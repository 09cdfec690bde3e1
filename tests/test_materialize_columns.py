"""Read-once copies as Arrow columns, and NIv2 rows on the column-wise paths.

The count pass stores a copy's records as Arrow columns when they read back as
exactly the same Python values (types, key order), else pickled as before; jobs
read column copies as record batches, so NIv2 rows render column-wise (zero-shot:
:mod:`flan_data.columnar`; few-shot, exemplars from a field:
:mod:`flan_data.columnar_own`). Each check compares bytes with the old path
(pickled copies, no column-wise rendering), and counts rows, never time.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from toy import export_files

from flan_data import Catalog, Renderer, columnar, columnar_own
from flan_data.columnar import TaskColumns
from flan_data.export import export_mixture
from flan_data.export import materialize as mz
from flan_data.seeding import SeedPrefix
from flan_data.sources import open_task_source
from flan_data.sources.base import Source
from flan_data.specs import MixtureMember, MixtureSpec

NIV2 = ("task001_quoref_question_generation", "task1388_cb_entailment", "task020_mctaco_span_based_question")  # fmt: skip


def _strict(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if type(a) is list:
        return len(a) == len(b) and all(map(_strict, a, b))
    if type(a) is dict:
        return list(a) == list(b) and all(_strict(a[k], b[k]) for k in a)
    if type(a) is float and a != a:
        return b != b
    return a == b


class _ListSource(Source):
    """Records given as a list (the train split), for the copy's round trip."""

    def __init__(self, recs):
        from flan_data.specs import SourceSpec

        super().__init__(SourceSpec(kind="jsonl", path="x"))
        self.recs = recs

    def _native_splits(self):
        return ("train",)

    def _read_native(self, split):
        yield from ((None, r) for r in self.recs)


def _round_trip(tmp_path, recs, batch=4):
    src = _ListSource(recs)
    path = tmp_path / "t.k.arrow"
    n = mz.materialize(src, path)
    ms = mz.MaterializedSource(path, src)
    assert n == len(recs) == ms.count("train")
    want = list(src.read("train"))
    got = list(ms.read("train"))
    assert len(got) == len(want) and all(
        a[0] == b[0] and _strict(a[1], b[1]) for a, b in zip(want, got)
    )
    return ms, want


SHARED = [{"input": "a", "output": "b", "explanation": "c"}]


@pytest.mark.parametrize(
    "recs, columns",
    [
        # NIv2's shape: text per row, the definition and examples shared by every row
        (
            [
                {
                    "id": f"i{i}",
                    "definition": "D",
                    "input": f"x {i}",
                    "outputs": [f"y{i}", "z"],
                    "positive_examples": SHARED,
                    "negative_examples": [],
                }
                for i in range(23)
            ],
            True,
        ),  # fmt: skip
        (
            [
                {
                    "a": i,
                    "b": float(i) / 3,
                    "c": i % 2 == 0,
                    "d": None if i % 5 else "s",
                    "e": {"k": [i], "l": "v"},
                }
                for i in range(23)
            ],
            True,
        ),  # fmt: skip
        ([{"a": float("nan"), "b": -0.0}] * 9, True),
        # would not read back the same: the pickled form
        ([{"a": 1}] * 5 + [{"a": 1.5}] * 5, False),  # an int among floats (batch 2)
        ([{"a": 1.5}, {"a": 1}], False),
        ([{"a": 1, "b": 2}] * 5 + [{"b": 2, "a": 1}], False),  # key order
        ([{"a": 1}] * 5 + [{"a": 1, "b": 2}], False),  # other keys
        ([{"a": {"x": 1}}, {"a": {"y": 1}}], False),  # struct keys differ
        ([{"a": (1, 2)}], False),  # a tuple would come back a list
        ([{"a": None}] * 5 + [{"a": "s"}], False),  # null-typed first batch
        ([{"a": True}, {"a": 1}], False),
        ([{"a": 2**70}], False),
        ([{"a": b"bytes"}], False),
        ([{"a": "\udc80"}], False),  # a lone surrogate
        ([{mz.ID: 1}], False),
        ([{"a": 1}] * 5 + ["not a dict"], False),
        # long lists per row (dialog turns): cheaper pickled, and no column path reads them
        ([{"turns": [f"t{i}"] * 9, "x": ["y"] * 4} for i in range(7)], False),  # 13 items a row
        ([{"turns": [{"a": [f"t{i}", "u", "v"]}] * 4} for i in range(7)], False),  # 4 + 12 items
        ([{"turns": [f"t{i}"] * 12, "x": "y"} for i in range(7)], True),  # 12 items: columns
    ],
)
def test_copy_reads_back_the_same_records(tmp_path, monkeypatch, recs, columns):
    monkeypatch.setattr(mz, "BATCH", 5)
    ms, want = _round_trip(tmp_path, recs)
    assert ms.columns is columns
    if not columns:
        assert ms.read_batches("train", 0, None) is None
        return
    for lo, hi in [(0, None), (3, 7), (5, 10), (4, 5), (11, 30)]:
        got = [(i, e, r) for f, ids, b in ms.read_batches("train", lo, hi)
               for i, e, r in zip(itertools.count(f), ids, b.to_pylist())]  # fmt: skip
        exp = list(itertools.islice(want, lo, hi))
        assert [g[0] for g in got] == list(range(lo, lo + len(exp)))
        assert all(g[1] == e[0] and _strict(g[2], e[1]) for g, e in zip(got, exp))
        assert all(_strict(a[1], b[1]) for a, b in zip(ms.read_range("train", lo, hi), exp))
    picks = [len(recs) - 1, 0, 6, 6, 2]
    stats: dict[str, int] = {}
    got = list(ms.take("train", picks, stats))
    assert [g[0] for g in got] == sorted(set(picks))
    assert all(g[1] == want[g[0]][0] and _strict(g[2], want[g[0]][1]) for g in got)
    assert stats["converted"] == len(set(picks))


def test_shared_values_are_stored_once_per_run_and_read_back_shared(tmp_path, monkeypatch):
    monkeypatch.setattr(mz, "BATCH", 8)
    other = [{"input": "q", "output": "r", "explanation": "s"}]
    recs = [{"t": str(i), "ex": SHARED if i < 12 else other} for i in range(20)]
    ms, _ = _round_trip(tmp_path, recs)
    assert ms.columns
    raw = ms._open().get_batch(1)  # rows 8-15: two runs
    assert pa.types.is_run_end_encoded(raw.schema.field("ex").type)
    assert raw.column(1 + 1).values.to_pylist() == [SHARED, other]
    got = [r for _, r in ms.read_range("train", 8, 16)]
    assert got[0]["ex"] is got[3]["ex"] and got[4]["ex"] is got[7]["ex"]  # one object per run


def test_a_copy_is_smaller_than_the_pickled_one(tmp_path):
    big = [{"input": "x" * 300, "output": "y" * 30, "explanation": "z" * 100}] * 3
    recs = [{"definition": "d" * 800, "input": f"in {i}", "positive_examples": big} for i in range(3000)]  # fmt: skip
    src = _ListSource(recs)
    mz.materialize(src, tmp_path / "a.k.arrow")
    mz.materialize(src, tmp_path / "b.k.arrow", columns=False)
    assert (tmp_path / "a.k.arrow").stat().st_size * 10 < (tmp_path / "b.k.arrow").stat().st_size


# -- NIv2 end to end ----------------------------------------------------------------------


def _niv2_file(path: Path, name: str, n: int, seed: int, examples: bool = True) -> None:
    rng = np.random.default_rng(seed)
    words = ["alpha", "beta", "gamma", "delta", "élan", "naïve", "x\u00a0y", "tab\there", "中文"]

    def text(k):
        return " ".join(rng.choice(words, size=k).tolist())

    pos = [{"input": text(30), "output": text(3), "explanation": text(8)} for _ in range(3)]
    inst = []
    for i in range(n):
        out: object = [text(2)]
        inp = text(int(rng.integers(2, 40)))
        if i % 17 == 3:
            out = [" \u2003 "]  # empty once stripped: skipped
        if i % 23 == 5:
            out = math.nan  # a bare NaN in the file: "" (skipped)
        if i % 29 == 7:
            inp = text(
                1380 + 15 * (i % 7)
            )  # over the 1,920-word budget with 3 exemplars: fewer are used
        if i % 31 == 9:
            inp = text(2000)  # even with none: a zero-shot row, dropped from few-shot
        if i % 13 == 2:
            inp = "\n  " + inp + " \u3000\n"  # whitespace Python strips at the ends
        inst.append({"id": f"{name}-{i}", "input": inp, "output": out})
    doc = {"Definition": [text(20), "second line"], "Positive Examples": pos if examples else [],
           "Negative Examples": [], "Instances": inst}  # fmt: skip
    path.write_text(json.dumps(doc))


@pytest.fixture(scope="module")
def niv2(tmp_path_factory):
    d = tmp_path_factory.mktemp("niv2")
    for k, name in enumerate(NIV2):
        _niv2_file(d / f"{name}.json", name, 700 + 150 * k, k, examples=k != 2)
    spec = MixtureSpec(
        name="niv2_only",
        members=tuple(MixtureMember(kind="task", name=t, rate=1.0) for t in NIV2),
    )
    return d, spec


def _export(niv2, out: Path, **kw):
    d, spec = niv2
    kw = {"total": 3000, "seed": 3, "shard_rows": 500, "progress": False, "log": lambda s: None,
          "source": "real", "source_dirs": {"niv2": str(d)}, "on_error": "skip", **kw}  # fmt: skip
    return export_mixture(Catalog.load(), spec, out, **kw)


def test_niv2_rows_render_column_wise_with_the_same_bytes(niv2, tmp_path, monkeypatch):
    for s in (columnar.STATS, columnar_own.STATS):
        s.update(rows=0, fallback_rows=0)
    m = _export(niv2, tmp_path / "cols")
    assert columnar.STATS["rows"] > 500  # zero-shot rows, column-wise
    assert columnar_own.STATS["rows"] > 500  # few-shot rows, column-wise
    assert columnar_own.STATS["fallback_rows"] > 0  # the rows no exemplar fits, and bad ones
    fs = {f for c in m["counts"].values() for f in c}
    assert {"zs_opt", "fs_opt"} <= fs or {"zs_noopt", "fs_noopt"} <= fs
    # the old path: pickled copies, every row rendered row by row
    monkeypatch.setattr(mz, "_write_columns", lambda *a: None)
    monkeypatch.setattr(columnar, "ENABLED", False)
    _export(niv2, tmp_path / "rows")
    assert export_files(tmp_path / "cols") == export_files(tmp_path / "rows")
    monkeypatch.setattr(columnar, "ENABLED", True)
    _export(niv2, tmp_path / "pickled", workers=2)  # pickled copies, column-wise where it can
    assert export_files(tmp_path / "cols") == export_files(tmp_path / "pickled")


def test_niv2_few_shot_column_wise_equals_row_by_row(niv2, tmp_path):
    d, _ = niv2
    cat = Catalog.load()
    r = Renderer(cat)
    rendered = trimmed = 0
    for name in NIV2[:2]:
        tr = r.task_renderer(name)
        tc = TaskColumns.of(tr)
        src = open_task_source(cat, cat.task(name), "real", {"niv2": str(d)})
        mz.materialize(src, tmp_path / f"{name}.k.arrow")
        ms = mz.MaterializedSource(tmp_path / f"{name}.k.arrow", src)
        for fmt in ("fs_opt", "fs_noopt"):
            assert columnar_own.supports(tc, fmt)
            for _first, ids, b in ms.read_batches("train", 0, None):
                seeds = SeedPrefix(5, name, "train").derive_many(ids)
                res = columnar_own.render_own(tc, b, ids, fmt=fmt, seeds=seeds)
                items = list(zip(ids, b.to_pylist()))
                errs: list = []
                want = tr.render_batch(items, split="train", fmt=fmt, seed=5, columnar=False, errors=errs)  # fmt: skip
                assert {i for i, _ in errs} <= set(res.fallback.tolist())
                w = {i: k for k, i in enumerate(want["index"])}
                ex = res.exemplar_ids.to_pylist()
                for j, i in enumerate(res.rows.tolist()):
                    k = w[i]
                    assert res.inputs[j].as_py() == want["inputs"][k]
                    assert res.targets[j].as_py() == want["targets"][k]
                    assert res.template_ids[res.template[j]] == want["template_id"][k]
                    assert ex[j] == want["exemplar_ids"][k] and len(ex[j]) >= 1
                    assert int(res.seeds[j]) == want["seed"][k]
                rendered += len(res.rows)
                assert set(res.rows.tolist()).isdisjoint(res.fallback.tolist())
                assert len(res.rows) + len(res.fallback) == b.num_rows
                trimmed += sum(len(e) < 3 for e in ex)  # rows the budget trimmed
    assert rendered > 1000 and trimmed > 5


def test_a_template_that_reads_a_field_otherwise_stays_row_by_row(niv2):
    from flan_data.columnar_own import _bare

    env = Renderer(Catalog.load()).task_renderer(NIV2[0]).engine.env
    assert _bare(env, "{{ definition }} {% for e in exemplars %}{{ e.input }}{% endfor %}{{ input }}", {"input", "definition"})  # fmt: skip
    assert not _bare(env, "{{ input | trim }}", {"input"})
    assert not _bare(env, "{% if input %}{{ input }}{% endif %}", {"input"})
    assert not _bare(env, "{{ input ~ '!' }}", {"input"})
    assert not _bare(env, "{% set input = 'x' %}{{ input }}", {"input"})


def test_resume_over_pickled_copies_of_an_older_version(niv2, tmp_path, monkeypatch):
    """A kill -9 of an export whose copies were written pickled (as flan-data wrote
    them before), resumed by this version: the copies are used as they are."""
    d, spec = niv2
    out = tmp_path / "o"
    code = (
        "from flan_data.export import materialize as mz\n"
        "mz._write_columns = lambda *a: None\n"
        "from flan_data import Catalog\n"
        "from flan_data.export import export_mixture\n"
        "from flan_data.specs import MixtureMember, MixtureSpec\n"
        f"spec = MixtureSpec(name='niv2_only', members=tuple(MixtureMember(kind='task', name=t, rate=1.0) for t in {NIV2!r}))\n"
        f"export_mixture(Catalog.load(), spec, {str(out)!r}, total=3000, seed=3, shard_rows=500, progress=False,"
        f" log=lambda s: None, source='real', source_dirs={{'niv2': {str(d)!r}}}, on_error='skip')\n"
    )
    env = {**os.environ, "FLAN_DATA_FAULT": "job:2"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True)
    assert r.returncode == -9, r.stderr[-2000:]
    copies = sorted((out / ".flan-export" / mz.MAT_DIR).glob("*.arrow"))
    assert len(copies) == len(NIV2)
    assert all(mz.form(p) == "pickled" for p in copies)
    seen = []
    real = mz.materialize
    monkeypatch.setattr(mz, "materialize", lambda *a, **k: seen.append(a) or real(*a, **k))
    _export(niv2, out)
    assert seen == []  # the pickled copies were read, not written again
    _export(niv2, tmp_path / "ref")
    assert export_files(out) == export_files(tmp_path / "ref")


def test_niv2_reader_fast_path_gives_the_general_helpers_values(tmp_path):
    from flan_data.sources import niv2 as nv

    odd = [["a", "b"], [], "s", ["a", 1], [None], [["x"]], None, 3, float("nan"), ["é", "\u3000"]]
    inst = [{"id": f"i{k}", "input": v, "output": w} for k, (v, w) in
            enumerate(itertools.product(["q", "", None, 7, ["l1", "l2"]], odd))]  # fmt: skip
    inst += [{"Input": "cap", "Output": ["O"]}, {"input": "only"}, {"output": ["x"]}, {}]
    (tmp_path / "t.json").write_text(json.dumps({"Definition": "d", "Instances": inst}))
    from flan_data.specs import SourceSpec

    src = nv.NIv2Source(SourceSpec(kind="niv2", path=str(tmp_path / "t.json")))
    got = [r for _, r in src._read_native("train")]
    doc = nv.parse_task((tmp_path / "t.json").read_bytes(), "t.json")
    for g, i in zip(got, doc["Instances"], strict=True):
        outs = nv._outputs(nv._get(i, "output", ""))
        assert _strict(g["outputs"], outs) and _strict(g["output"], outs[0] if outs else "")
        assert _strict(g["input"], nv._text(nv._get(i, "input", "")))


@pytest.mark.parametrize("workers", [1, 2])
def test_sources_are_hashed_beside_the_count_pass(niv2, tmp_path, monkeypatch, workers):
    """The count pass's workers hash the sources; the fingerprint (serial, in the
    parent) then reads nothing, and its values are the ones it computes alone."""
    import importlib

    import flan_data.export as export

    fp = importlib.import_module(
        "flan_data.export.fingerprint"
    )  # (the package exports the function)

    d, _ = niv2
    monkeypatch.setattr(fp, "_HASHED", {})  # (this process's memo of earlier tests' hashes)
    calls = {"n": 0}
    real_hash = fp.sha256_file

    def counted(p):
        calls["n"] += 1
        return real_hash(p)

    monkeypatch.setattr(fp, "sha256_file", counted)
    during: list[int] = []
    real_fp = export.fingerprint

    def spy(*a, **kw):
        n0 = calls["n"]
        res = real_fp(*a, **kw)
        during.append(calls["n"] - n0)
        return res

    monkeypatch.setattr(export, "fingerprint", spy)
    out = tmp_path / "o"
    _export(niv2, out, workers=workers)
    assert during == [0]  # nothing left to hash after the count pass
    if workers == 1:
        assert calls["n"] == len(NIV2)  # each source file hashed once, by the count pass
    spec = json.loads((out / ".flan-export" / "spec.json").read_text())
    cat = Catalog.load()
    alone = real_fp(cat, [cat.task(t) for t in NIV2], "real", {"niv2": str(d)})
    assert spec["sources"] == alone
    # a resume finds the hashes in the export's hash cache: nothing is read again
    calls["n"] = 0
    _export(niv2, out, workers=workers)
    assert calls["n"] == 0 or workers == 2


@pytest.mark.parametrize("kind", ["parquet", "arrow"])
def test_a_job_converts_only_its_selected_records(tmp_path, monkeypatch, kind):
    """A source much bigger than the draw: jobs take their selected rows instead
    of making every record of their range a Python object; same bytes."""
    from toy import write_toy_catalog, write_toy_source

    from flan_data.export import jobs

    n, total = 3000, 150
    write_toy_source(kind, tmp_path / "c" / "data", n, group=500)
    cat = Catalog.load(write_toy_catalog(tmp_path / "c", {"mix": ["zs_opt", "fs_opt"]}, kind))
    monkeypatch.setattr(columnar, "ENABLED", False)  # the row-by-row loop
    kw = {"total": total, "shard_rows": 50, "progress": False, "log": lambda s: None}
    jobs.READ_STATS.update(records_read=0, rows=0, converted=0)
    m = export_mixture(cat, "mix", tmp_path / "take", **kw)
    assert m["num_rows"] == jobs.READ_STATS["rows"] == total
    # the selected records plus the few-shot pool's, not the ~3,000 of the range
    assert jobs.READ_STATS["converted"] <= total + jobs.POOL_SIZE
    monkeypatch.setattr(Source, "take", lambda self, *a, **k: None)  # the old path: read the range
    jobs.READ_STATS.update(records_read=0, rows=0, converted=0)
    export_mixture(cat, "mix", tmp_path / "range", **kw)
    assert jobs.READ_STATS["converted"] > n // 2
    assert export_files(tmp_path / "take") == export_files(tmp_path / "range")
