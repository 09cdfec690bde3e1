"""The Arrow-native zero-shot path (flan_data.columnar, issue 9) gives exactly the
bytes of ``TaskRenderer.render_batch``, row by row, and hands back every row it
cannot decide; exports are byte-identical with it on and off.

Every shipped simple template is rendered through both paths on random source
records full of edge cases (empty and whitespace-only strings, Unicode
whitespace at the ends, ``\\r\\n``, non-ASCII case mappings, nulls, labels out of
range, answers outside the options, numbers where text is expected, texts near
the size limit). Counters say which path did the work; no timing is asserted.
"""

from __future__ import annotations

import dataclasses
import json
import random
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from test_render_columnar import _CASES, _CAT  # every shipped non-promptsource template, once
from toy import export_files
from two_paths import fast_row, same_rows, took_columns

from flan_data import Catalog, RenderConfig, Renderer, columnar
from flan_data.columnar import WHITESPACE, TaskColumns
from flan_data.errors import FlanDataError
from flan_data.export import export_mixture, jobs
from flan_data.render import TaskRenderer, direct_field
from flan_data.templates import TemplateEngine, TemplateLimits
from flan_data.views import OutputSpec


def test_whitespace_is_what_str_strip_removes():
    every = "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())
    assert every == WHITESPACE


# ----------------------------------------------------------------------------- random records

CORES = [
    "word",
    "A longer sentence, with punctuation.",
    "ÉCOLE straße İstanbul ǆungla ǅ",  # case mappings Arrow's ASCII kernels must not touch
    "日本語のテキスト",
    "emoji 😀 ok",
    "{{ braces }} {% raw %} {0} %s }}",
    "line1\r\nline2",
    "tab\tinside  double",
    "don't stop-me (now) [ok] <x>",
    "x",
]
ENDS = [
    "",
    "",
    "",
    "",
    " ",
    "\n",
    "\t ",
    "\u3000",
    "\u2029",
    "\x1c",
    "\x85",
    "\xa0",
    "\u200b",
    "\r\n",
]


def _text(r: random.Random) -> str | None:
    k = r.random()
    if k < 0.04:
        return None
    if k < 0.08:
        return ""
    if k < 0.12:
        return r.choice(ENDS[4:]) + r.choice(ENDS[4:])  # whitespace only (or U+200B)
    return r.choice(ENDS) + r.choice(CORES) + r.choice(ENDS)


def _records(tr: TaskRenderer, n: int, seed: int, long: int = 0) -> list[dict]:
    """Raw records for ``tr``'s direct fields (plain keys, ``options[label]``)."""
    r = random.Random(seed)
    nopt = len(tr.task.options or ())
    out = []
    for _ in range(n):
        rec = {}
        for _name, expr in tr.task.fields.items():
            kind, key = direct_field(expr)
            if kind == "label":
                rec[key] = (
                    None if r.random() < 0.03 else r.choice([-1, nopt, 99] + list(range(nopt)) * 8)
                )
            elif key == "answer" and tr.task.options:
                rec[key] = r.choice(
                    [*tr.task.options, "not an option", "", None] + list(tr.task.options) * 6
                )
            else:
                rec[key] = _text(r)
                if long and rec[key] is not None and r.random() < 0.3:
                    rec[key] = rec[key] + "y" * r.randrange(long)
        out.append(rec)
    return out


def both_paths(tr: TaskRenderer, recs: list[dict], fmt: str, seed: int, template_id=None,
               batch: pa.RecordBatch | None = None) -> int:  # fmt: skip
    """render_batch's rows and errors == the column-wise rows + render_batch on its
    fallback (:func:`two_paths.same_rows`); returns the rows rendered column-wise."""
    ids = [f"id-{i}" for i in range(len(recs))]
    kw = dict(split="train", fmt=fmt, seed=seed, template_id=template_id)

    def fast():
        b = batch if batch is not None else pa.RecordBatch.from_pylist(recs)
        res = TaskColumns.of(tr).render(b, ids, **kw)
        rows = [(i, fast_row(tr, fmt, "train", res.inputs[j].as_py(), res.targets[j].as_py(),
                             res.template_ids[res.template[j]], res.seeds[j], ids[i]))
                for j, i in enumerate(res.rows.tolist())]  # fmt: skip
        return rows, res.fallback.tolist()

    return same_rows(tr, list(zip(ids, recs)), kw, fast)


def direct_task(task, answer_label: bool = True):
    """``task`` with every field a plain key of its own name (answer: ``options[label]``)
    and fixed options, so its templates can take the column-wise path."""
    fields = {name: name for name in task.fields}
    if "answer" in fields and answer_label:
        fields["answer"] = "options[label]"
    opts = task.options or (
        "Yes.",
        "no",
        "it is not possible to tell",
        "no",
    )  # a repeated option too
    return dataclasses.replace(task, fields=fields, options=tuple(opts), options_field=None)


def shipped_simple_cases(option_style: str):
    """``(k, template id, task renderer)`` of every shipped simple template: its
    task as a :func:`direct_task` (answer a label in two cases of three)."""
    cfg = RenderConfig(option_style=option_style)
    engine = TemplateEngine()
    for k, (name, tid) in enumerate(_CASES):
        spec = direct_task(_CAT.task(name), answer_label=k % 3 != 0)
        tr = TaskRenderer(spec, _CAT, engine, cfg)
        if tr.template(tid).simple is not None:
            yield k, tid, tr


@pytest.mark.parametrize("option_style", ["random", "plain"])
def test_every_shipped_simple_template_same_bytes(option_style):
    fast = checked = 0
    for k, tid, tr in shipped_simple_cases(option_style):
        if TaskColumns.of(tr) is None:
            continue
        recs = _records(tr, 70, seed=k)
        for fmt in tr.formats():
            if fmt.startswith("fs_"):
                continue
            fast += both_paths(tr, recs, fmt, seed=k, template_id=tid)
            checked += 1
    assert checked > 700 and fast > checked * 20, (checked, fast)


def test_shipped_tasks_random_template_choice_same_bytes():
    """Eligible shipped tasks as they are (their own field expressions), the
    template and option style drawn per row as in an export."""
    r = Renderer(_CAT)
    names = [n for n in sorted(_CAT.tasks) if _direct_columns(r.task_renderer(n))]
    assert len(names) > 1000
    fast = 0
    for k, name in enumerate(random.Random(0).sample(names, 60)):
        tr = r.task_renderer(name)
        recs = _records(tr, 150, seed=k)
        for fmt in tr.formats():
            if not fmt.startswith("fs_"):
                fast += both_paths(tr, recs, fmt, seed=1000 + k)
    assert fast > 60 * 100


def _direct_columns(tr) -> bool:
    """The task takes the column-wise path with plain-key / ``options[key]`` fields
    (the records :func:`_records` makes; test_column_coverage covers the others)."""
    tc = TaskColumns.of(tr)
    return (
        tc is not None
        and not tc.per_row
        and all(direct_field(e) is not None for e in tr.task.fields.values())
    )


def _outcome(fn):
    try:
        return fn()
    except FlanDataError as e:
        return (type(e).__name__, str(e))


@pytest.mark.parametrize("dirty", [False, True])
def test_render_batch_goes_column_wise_with_the_same_columns(dirty):
    """``render_batch`` of a big zero-shot batch takes the Arrow path (rows in item
    order, the same lists); a bad record sends it back to the row-by-row path."""
    r = Renderer(_CAT)
    names = [n for n in sorted(_CAT.tasks) if _direct_columns(r.task_renderer(n))]
    took = 0
    for k, name in enumerate(random.Random(1).sample(names, 12)):
        tr = r.task_renderer(name)
        recs = _records(tr, 400, seed=k) if dirty else [_clean(tr, i) for i in range(400)]
        items = [(f"e{i}", rec) for i, rec in enumerate(recs)]
        for fmt in [f for f in tr.formats() if not f.startswith("fs_")]:
            for errs in ([], None):
                kw = dict(split="train", fmt=fmt, seed=k, turns=bool(k % 2))
                before = columnar.STATS["rows"]
                e1 = None if errs is None else []
                got = _outcome(
                    lambda kw=kw, e1=e1, tr=tr, items=items: tr.render_batch(items, errors=e1, **kw)
                )
                took += columnar.STATS["rows"] - before
                e2 = None if errs is None else []
                want = _outcome(lambda kw=kw, e2=e2, tr=tr, items=items: tr.render_batch(items, errors=e2, columnar=False, **kw))  # fmt: skip
                assert got == want, (name, fmt)
                assert [(i, str(e)) for i, e in e1 or ()] == [(i, str(e)) for i, e in e2 or ()]
    assert took > 0 if not dirty else True


def _clean(tr: TaskRenderer, i: int) -> dict:
    rec = {}
    for _name, expr in tr.task.fields.items():
        kind, key = direct_field(expr)
        rec[key] = i % len(tr.task.options) if kind == "label" else f"Value {i} of {key}."
    if "answer" in rec and tr.task.options and direct_field(tr.task.fields["answer"])[0] == "key":
        rec["answer"] = tr.task.options[i % len(tr.task.options)]
    return rec


def test_size_limit_rows_fall_back(tmp_path):
    engine = TemplateEngine(TemplateLimits(output_chars=300, sequence_len=10_000))
    task = direct_task(_CAT.task("anli_r1"))
    tr = TaskRenderer(task, _CAT, engine, RenderConfig())
    recs = _records(tr, 200, seed=5, long=400)
    before = dict(columnar.STATS)
    for fmt in ("zs_opt", "zs_noopt"):
        assert both_paths(tr, recs, fmt, seed=9) > 0
    assert columnar.STATS["fallback_rows"] - before["fallback_rows"] > 40


def test_render_batch_merges_rows_handed_back(monkeypatch):
    """``render_batch`` of a big batch whose long rows the Arrow path hands back
    (near the size limit, no bad record): its columns come from ``render_items``,
    the handed-back rows rendered per row in their places, as the per-row path."""
    took = took_columns(monkeypatch, columnar)
    engine = TemplateEngine(TemplateLimits(output_chars=600, sequence_len=10_000))
    tr = TaskRenderer(direct_task(_CAT.task("anli_r1")), _CAT, engine, RenderConfig())
    recs = [_clean(tr, i) for i in range(300)]
    for i in range(0, 300, 4):
        recs[i]["premise"] += " more" * (i % 40)
    items = [(f"e{i}", rec) for i, rec in enumerate(recs)]
    for fmt in ("zs_opt", "zs_noopt"):
        before = dict(columnar.STATS)
        got = tr.render_batch(items, split="train", fmt=fmt, seed=2, errors=[])
        handed = columnar.STATS["fallback_rows"] - before["fallback_rows"]
        want = tr.render_batch(items, split="train", fmt=fmt, seed=2, errors=[], columnar=False)
        assert took.pop() and got == want, fmt
        assert 0 < handed < 200, (fmt, handed)


def test_columns_of_other_types_fall_back_whole():
    task = direct_task(_CAT.task("anli_r1"))
    tr = TaskRenderer(task, _CAT, TemplateEngine(), RenderConfig())
    recs = _records(tr, 80, seed=1)
    text = next(k for k, e in task.fields.items() if direct_field(e)[0] == "key")
    for vals, typ in (([i for i in range(80)], pa.int64()), ([i / 3 for i in range(80)], pa.float64()),
                      ([str(i) for i in range(80)], pa.large_string())):  # fmt: skip
        rs = [{**rec, text: v} for rec, v in zip(recs, vals)]
        b = pa.RecordBatch.from_pylist(rs, schema=pa.RecordBatch.from_pylist(rs).schema.set(
            pa.RecordBatch.from_pylist(rs).schema.get_field_index(text), pa.field(text, typ)))  # fmt: skip
        n = both_paths(tr, rs, "zs_opt", seed=2, batch=b)
        assert (n > 0) == (typ == pa.large_string())
    # a label column of strings or floats: every row is the row-by-row path's to decide
    for lab in (["1"] * 80, [1.0] * 80, [True] * 80):
        rs = [{**rec, "label": v} for rec, v in zip(recs, lab)]
        assert both_paths(tr, rs, "zs_opt", seed=3) == 0


def test_ineligible_tasks_are_left_alone():
    """Since session 7 per-record options and fields that are not plain keys are read
    column-wise too (``trim`` by Arrow, others per row: test_column_coverage)."""
    r = Renderer(_CAT)
    for name, task in _CAT.tasks.items():
        tc = TaskColumns.of(r.task_renderer(name))
        if tc is not None:
            assert tc.per_row == (task.options is None and task.options_field is not None)
            kinds = {f.kind for f in tc.fields}
            direct = all(direct_field(e) is not None for e in task.fields.values())
            assert kinds <= {"key", "label"} if direct else kinds - {"key", "label"}, name


# ----------------------------------------------------------------------------- end to end

TEMPLATES = [
    {"id": "t0", "input": "Premise: {{ premise }}\nHypothesis: {{ hypothesis }}{{ options_block }}", "target": "{{ answer }}"},
    {"id": "t1", "input": "{{ premise | lower }} -> {{ hypothesis | upper }}?{{ options_block }}", "target": "{{ answer | capitalize }}"},
    {"id": "t2", "input": "  {{ premise | trim }}\n\n{{ hypothesis | title }}  ", "target": "{{ answer_text }}"},
    {"id": "t3", "input": "{% if premise %}{{ premise }}{% endif %} / {{ hypothesis }}{{ options_block }}", "target": "{{ answer }}"},
    {"id": "t4", "input": "{{ hypothesis }}", "target": "{{ answer }} ({{ premise | lower }})"},
]  # fmt: skip
OPTIONS = ["yes", "it is not possible to tell", "no"]


def _write_source(kind: str, d: Path, recs: list[dict]) -> Path:
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq

    d.mkdir(parents=True, exist_ok=True)
    t = pa.Table.from_pylist(recs)
    if kind == "parquet":
        pq.write_table(t, d / "train.parquet", row_group_size=700)
        return d
    if kind == "arrow":
        with ipc.new_file(str(d / "train.arrow"), t.schema) as w:
            w.write_table(t, max_chunksize=500)
        return d
    datasets = pytest.importorskip("datasets")
    datasets.Dataset(t).save_to_disk(str(d / "hf"))
    return d / "hf"


def _catalog(root: Path, kind: str, recs: list[dict], fields=None) -> Catalog:
    (root / "collections").mkdir(parents=True)
    (root / "templates").mkdir()
    path = _write_source(kind, root / "data", recs)
    (root / "templates" / "t.yaml").write_text(json.dumps({"sets": {"t": {"templates": TEMPLATES}},
        "styles": [{"id": "q", "input_prefix": "Q: ", "target_prefix": "A: ", "x_y_delimiter": "\n", "example_separator": "\n\n"}]}))  # fmt: skip
    src = (
        {"kind": kind, "path": str(path), "id_field": "uid"}
        if kind != "hf"
        else {"kind": "hf", "path": str(path)}
    )
    fields = fields or {
        "premise": "premise",
        "hypothesis": "hypothesis",
        "answer": "options[label]",
    }
    (root / "collections" / "c.yaml").write_text(json.dumps({"collection": "flan2021", "tasks": [
        {"name": "syn", "source": src, "fields": fields, "options": OPTIONS, "templates": ["t"]}]}))  # fmt: skip
    (root / "catalog.yaml").write_text(json.dumps({"collections": {"flan2021": {"file": "collections/c.yaml"}},
        "mixtures": {"zs": {"members": [{"task": "syn", "formats": ["zs_opt", "zs_noopt"]}]},
                     "zs1": {"members": [{"task": "syn", "formats": ["zs_opt"]}]},
                     "mix": {"members": [{"task": "syn", "formats": ["zs_opt", "fs_opt", "zs_noopt"]}]}}}))  # fmt: skip
    return Catalog.load(root)


def _nli(n: int, seed: int, dirty: bool) -> list[dict]:
    r = random.Random(seed)
    out = []
    for i in range(n):
        rec = {"uid": f"u{i:05d}", "premise": r.choice(CORES) + r.choice(ENDS), "hypothesis": r.choice(ENDS) + r.choice(CORES),
               "label": r.randrange(3)}  # fmt: skip
        if dirty:
            k = r.random()
            if k < 0.03:
                rec["label"] = r.choice([-1, 3, None])
            elif k < 0.06:
                rec["premise"] = None
            elif k < 0.08:
                rec["hypothesis"] = r.choice(["", " \u3000 "])
        out.append(rec)
    return out


def _export(cat, mix, out, fast: bool, monkeypatch, **kw):
    monkeypatch.setattr(columnar, "ENABLED", fast)
    before = dict(columnar.STATS)
    try:
        export_mixture(cat, mix, out, progress=False, log=lambda s: None, **kw)
    except FlanDataError as e:
        return ("error", type(e).__name__, str(e)), 0
    return export_files(out), columnar.STATS["rows"] - before["rows"]


@pytest.mark.parametrize("kind", ["parquet", "arrow", "hf"])
@pytest.mark.parametrize("mix", ["zs", "mix", "zs1"])  # zs1: every record once, then a second pass
def test_export_identical_with_fast_path_on_and_off(tmp_path, monkeypatch, kind, mix):
    monkeypatch.setattr(jobs, "CHUNK_ROWS", 900)  # several jobs per task
    monkeypatch.setattr(jobs, "FAST_ROWS", 500)  # several column-wise batches per job
    cat = _catalog(tmp_path / "c", kind, _nli(3000, 1, dirty=True))
    kw = dict(total=4000, seed=7, shard_rows=700, on_error="skip")
    off, _ = _export(cat, mix, tmp_path / "off", False, monkeypatch, **kw)
    on, fast = _export(cat, mix, tmp_path / "on", True, monkeypatch, **kw)
    assert fast > 1000
    assert on.keys() == off.keys() and on == off
    manifest = json.loads(on["manifest.json"])
    assert sum(n for d in manifest["skipped"].values() for n in d.values()) > 0
    if kind == "parquet":  # two workers, the fast path on, give the same bytes
        on2, _ = _export(cat, mix, tmp_path / "on2", True, monkeypatch, workers=2, **kw)
        assert on2 == off


@pytest.mark.parametrize("on_error", ["skip", "fail"])
def test_export_identical_many_repeats(tmp_path, monkeypatch, on_error):
    """A small task drawn many times over (each record in ~70 rows of one
    format): the repeats render together, each with its own seeds."""
    cat = _catalog(tmp_path / "c", "parquet", _nli(40, 9, dirty=on_error == "skip"))
    kw = dict(total=3000, seed=4, shard_rows=1000, on_error=on_error)
    off, _ = _export(cat, "zs", tmp_path / "off", False, monkeypatch, **kw)
    on, fast = _export(cat, "zs", tmp_path / "on", True, monkeypatch, **kw)
    assert fast > 2000 and on == off


@pytest.mark.parametrize(
    "output",
    [
        OutputSpec(system="Be brief."),
        OutputSpec(messages=False),
        OutputSpec(file_format="parquet", columns=("flan-dump",)),
        OutputSpec(file_format="jsonl", chat_fewshot="multiturn"),
    ],  # fmt: skip
)
def test_export_outputs_identical(tmp_path, monkeypatch, output):
    cat = _catalog(tmp_path / "c", "parquet", _nli(800, 2, dirty=False))
    kw = dict(total=1200, seed=1, shard_rows=500, output=output)
    off, _ = _export(cat, "mix", tmp_path / "off", False, monkeypatch, **kw)
    on, fast = _export(cat, "mix", tmp_path / "on", True, monkeypatch, **kw)
    assert fast > 300 and on == off


def test_on_error_fail_same_error_and_clean_data_passes(tmp_path, monkeypatch):
    cat = _catalog(tmp_path / "c", "parquet", _nli(1500, 3, dirty=True))
    kw = dict(total=1500, seed=2, shard_rows=400, on_error="fail")
    off_err, _ = _export(cat, "zs", tmp_path / "off", False, monkeypatch, **kw)
    on, _ = _export(cat, "zs", tmp_path / "on", True, monkeypatch, **kw)
    assert off_err[0] == "error" and on == off_err
    clean = _catalog(tmp_path / "k", "parquet", _nli(1500, 3, dirty=False))
    off, _ = _export(clean, "zs", tmp_path / "koff", False, monkeypatch, **kw)
    on, fast = _export(clean, "zs", tmp_path / "kon", True, monkeypatch, **kw)
    assert fast > 1000 and on == off and "manifest.json" in on
    on2, _ = _export(clean, "zs", tmp_path / "kon2", True, monkeypatch, workers=2, **kw)
    assert on2 == off
    # a bad record with 2 workers fails the export too (which job reports first may vary)
    err, _ = _export(cat, "zs", tmp_path / "on2", True, monkeypatch, workers=2, **kw)
    assert err[0] == "error" and err[1] == off_err[1]


def test_fast_path_reads_each_record_once(tmp_path, monkeypatch):
    monkeypatch.setattr(jobs, "CHUNK_ROWS", 300)
    monkeypatch.setattr(jobs, "POOL_SIZE", 8)
    cat = _catalog(tmp_path / "c", "parquet", _nli(2000, 4, dirty=False))
    for mix, bound in (("zs", 1.0), ("mix", 2.0)):
        jobs.READ_STATS.update(records_read=0, rows=0)
        m = export_mixture(cat, mix, tmp_path / mix, total=2000, progress=False, log=lambda s: None)
        assert m["num_rows"] == jobs.READ_STATS["rows"] == 2000
        assert jobs.READ_STATS["records_read"] / 2000 <= bound


def test_read_batches_match_read_range(tmp_path):
    from flan_data.sources import open_source
    from flan_data.specs import SourceSpec

    recs = _nli(1000, 5, dirty=True)
    for kind in ("parquet", "arrow", "hf"):
        path = _write_source(kind, tmp_path / kind, recs)
        for spec in (SourceSpec(kind=kind, path=str(path)), SourceSpec(kind=kind, path=str(path), id_field="uid"),
                     SourceSpec(kind=kind, path=str(path), splits={"train": "train[100:-50]"})):  # fmt: skip
            src = open_source(spec)
            for lo, hi in ((0, None), (37, 612), (840, 2000)):
                got = [(f + k, i, r) for f, ids, b in src.read_batches("train", lo, hi)
                       for k, (i, r) in enumerate(zip(ids, b.to_pylist()))]  # fmt: skip
                want = [(lo + k, i, r) for k, (i, r) in enumerate(src.read_range("train", lo, hi))]
                assert got == want, (kind, spec, lo, hi)
    jl = tmp_path / "j.jsonl"
    jl.write_text("".join(json.dumps(r) + "\n" for r in recs[:5]))
    assert open_source(SourceSpec(kind="jsonl", path=str(jl))).read_batches("train", 0) is None


def test_parquet_reads_continue_where_the_last_stopped(tmp_path, monkeypatch):
    """Consecutive ranges (chunk jobs) continue one decoder; any other order
    starts afresh; the records are those of a fresh read every time."""
    import pyarrow.parquet as pq

    from flan_data.sources import files, open_source
    from flan_data.specs import SourceSpec

    monkeypatch.setattr(files, "BATCH", 64)
    recs = _nli(3000, 6, dirty=True)
    pq.write_table(pa.Table.from_pylist(recs), tmp_path / "train.parquet", row_group_size=1000)
    src = open_source(SourceSpec(kind="parquet", path=str(tmp_path), id_field="uid"))
    want = list(src.read_range("train", 0, None))
    calls = []
    real = pq.ParquetFile.iter_batches

    def counted(self, *a, **k):
        calls.append(k.get("row_groups"))
        return real(self, *a, **k)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", counted)
    monkeypatch.setattr(pq.ParquetFile, "iter_batches", counted)

    def batches(lo, hi):
        return [
            (i, r)
            for _, ids, b in src.read_batches("train", lo, hi)
            for i, r in zip(ids, b.to_pylist())
        ]

    for lo, hi in [(0, 250), (250, 600), (600, 1100), (1100, 2000), (2000, 2999)]:
        assert batches(lo, hi) == want[lo:hi], (lo, hi)
    assert calls == [[0], [1], [2]]  # in order: each row group decoded once
    for lo, hi in [
        (10, 20),
        (20, 40),
        (1500, 1600),
        (40, 990),
        (990, 1010),
        (5, 3000),
        (2990, 3000),
    ]:
        assert batches(lo, hi) == want[lo:hi], (lo, hi)
        assert list(src.read_range("train", lo, hi)) == want[lo:hi]


def test_shipped_tasks_from_save_to_disk_copies_identical(tmp_path, monkeypatch):
    """Shipped tasks (their own fields, options and templates) read from local
    ``save_to_disk`` copies of the bundled samples, as ``--source-dir`` gives them:
    the export is byte-identical with the columnar path on and off."""
    datasets = pytest.importorskip("datasets")
    from flan_data.specs import MixtureMember, MixtureSpec

    cat = Catalog.load()
    root = Path(__file__).resolve().parents[1] / "sample_data"
    names = ["anli_r1", "anli_r1_ii", "ag_news_subset", "xsum_ii", "bool_q"]
    dirs = {}
    for name in names:
        task = cat.task(name)
        recs = {s: [json.loads(x) for x in (root / task.sample.path / f"{s}.jsonl").read_text().splitlines() if x.strip()]
                for s in ("train", "validation")}  # fmt: skip
        native = {s: task.source.split_name(s).split("[")[0] for s in ("train", "validation")}
        d = tmp_path / "src" / name
        datasets.DatasetDict(
            {native[s]: datasets.Dataset.from_list(r * 30) for s, r in recs.items()}
        ).save_to_disk(str(d))
        dirs[name] = str(d)
    mix = MixtureSpec(name="m", members=tuple(
        MixtureMember(kind="task", name=n, formats=("zs_opt", "zs_noopt", "fs_opt") if n == "anli_r1" else ("zs_opt", "zs_noopt"))
        for n in names))  # fmt: skip
    kw = dict(total=3000, seed=5, shard_rows=800, source_dirs=dirs, on_error="skip")
    off, _ = _export(cat, mix, tmp_path / "off", False, monkeypatch, **kw)
    on, fast = _export(cat, mix, tmp_path / "on", True, monkeypatch, **kw)
    assert "manifest.json" in off and fast > 1000 and on == off
