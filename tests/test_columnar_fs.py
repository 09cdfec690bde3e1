"""Few-shot rows on the record-batch path (flan_data.columnar_fs, issue 9) give
exactly the bytes of the per-row few-shot path (``render_batch(...,
columnar=False)``), row by row, and hand back every row they cannot decide.

Compared over every shipped simple template (each alone, both option-style
modes, dirty records), hand-written edge templates (cues in the template and in
the data, an option block first / in the middle / filtered, a target mixing the
answer with text, a template failing on some exemplars), option lists with
edges, tight budgets, other shot counts and tokenizers, pools that are empty,
smaller than the shots, holding the example itself or a duplicated id, NIv2's
own few-shot templates, and whole exports (on and off, skip mode, 1 and 2
workers). Counters say which path did the work; no timing is asserted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random

import pyarrow as pa
import pytest
from test_columnar import _catalog as _export_catalog
from test_columnar import _clean, _export, _nli, _records, direct_task, shipped_simple_cases
from test_fewshot_columns import CONFIGS, OPTIONS, STYLES, TEMPLATES
from test_fewshot_columns import _records as _edge_records
from test_render_columnar import _CAT
from two_paths import fast_row, same_rows, took_columns

from flan_data import Catalog, RenderConfig, Renderer, columnar, columnar_fs
from flan_data.columnar import TaskColumns
from flan_data.errors import RecordError
from flan_data.export import jobs
from flan_data.fewshot import CallableTokenizer
from flan_data.render import Exemplar, TaskRenderer, direct_field
from flan_data.specs import MixtureMember, MixtureSpec
from flan_data.templates import TemplateEngine, TemplateLimits


def _pool(tr: TaskRenderer, recs: list[dict], prefix: str = "p") -> list[Exemplar]:
    pool = []
    for i, rec in enumerate(recs):
        with contextlib.suppress(RecordError):
            pool.append(tr.exemplar(f"{prefix}{i}", rec))
    return pool


def both_paths(tr: TaskRenderer, recs: list[dict], pool, fmt: str, seed: int, ids=None) -> int:
    """The per-row path's rows and errors == the record-batch path's rows plus the
    per-row path over the rows it handed back (:func:`two_paths.same_rows`);
    returns the rows it rendered."""
    ids = ids or [f"id-{i}" for i in range(len(recs))]
    kw = dict(split="train", fmt=fmt, seed=seed, pool=pool)

    def fast():
        tc = TaskColumns.of(tr)
        if not columnar_fs.supports(tc, fmt, pool):
            return [], list(range(len(recs)))
        res = columnar_fs.render_fewshot(tc, pa.RecordBatch.from_pylist(recs), ids, **kw)
        exs = res.exemplar_ids.to_pylist()
        rows = [(i, fast_row(tr, fmt, "train", res.inputs[j].as_py(), res.targets[j].as_py(),
                             res.template_ids[res.template[j]], res.seeds[j], ids[i],
                             res.fewshot_style_ids[res.fewshot_style[j]], exs[j]))
                for j, i in enumerate(res.rows.tolist())]  # fmt: skip
        return rows, res.fallback.tolist()

    return same_rows(tr, list(zip(ids, recs)), kw, fast)


def _alone(tr: TaskRenderer, tid: str) -> TaskRenderer:
    """``tr`` drawing every row's template from ``tid`` alone."""
    ct = tr.template(tid)
    tr.templates = (ct,)
    tr._by_id = {tid: ct}
    return tr


@pytest.mark.parametrize("option_style", ["random", "plain"])
def test_every_shipped_simple_template_same_bytes(option_style):
    """Each shipped simple template alone, on dirty records (bad rows go per row),
    with a pool holding some of the batch's own examples."""
    fast = checked = 0
    for k, tid, tr in shipped_simple_cases(option_style):
        if tr.template(tid).spec.kind == "few_shot":
            continue
        tr = _alone(tr, tid)
        if TaskColumns.of(tr) is None:
            continue
        recs = _records(tr, 60, seed=k)
        pool = _pool(tr, [_clean(tr, i) for i in range(12)] + recs[:20], prefix="id-")
        for fmt in ("fs_opt", "fs_noopt"):
            fast += both_paths(tr, recs, pool, fmt, seed=k)
            checked += 1
    assert checked > 700 and fast > checked * 20, (checked, fast)


def test_shipped_tasks_random_template_choice_same_bytes():
    """Eligible shipped tasks as they are (their own fields and templates), the
    template, option style, few-shot style and exemplars drawn per row."""
    r = Renderer(_CAT)
    names = [n for n in sorted(_CAT.tasks)
             if columnar_fs.supports(TaskColumns.of(r.task_renderer(n)), "fs_opt", [])
             and all(direct_field(e) is not None for e in _CAT.task(n).fields.values())]  # fmt: skip
    assert len(names) >= 50  # the Flan 2021 / T0-style tasks (NIv2 and CoT compose their own)
    fast = 0
    for k, name in enumerate(random.Random(0).sample(names, 40)):
        tr = r.task_renderer(name)
        recs = _records(tr, 150, seed=k)
        pool = _pool(tr, [_clean(tr, i) for i in range(40)] + recs[:30], prefix="id-")
        for fmt in ("fs_opt", "fs_noopt"):
            fast += both_paths(tr, recs, pool, fmt, seed=1000 + k)
    assert fast > 40 * 150, fast


# test_fewshot_columns' edge templates; the failing one fails on string fields only
# (an integer column keeps a batch off the record-batch path)
EDGE = [t for t in TEMPLATES if t[0] != "fails"] + [
    ("fails", "{{ premise }}{{ options_block }}{{ [1, 2][premise | length % 3] }}", "{{ answer }}"),
    ("cue_end", "{{ premise }}\nQuestion: {{ hypothesis }}\nA:", "{{ answer }}"),
    ("label_start", "Question: {{ hypothesis }}{{ options_block }}", "Answer: {{ answer }}"),
    ("field_end", "{{ options_block }}\n\n{{ hypothesis }} {{ premise }}", "{{ answer }}"),
]


LABELISH = [
    "Q.",
    "A.",
    "[Question]",
    "# Answer",
    "Answer:",
    "Q:",
    "(A) x",
    "Target (a:b",
    "Output",
    "Q",
    "x:y",
    "Input (long: form): text",
    "Answer\tnow:",
    "## Output:",
    "[Q] first",
]


def _edge_catalog(tmp_path, h, records, options=None):
    tpl = {
        "sets": {"toy": {"kind": "zero_shot", "templates": [
            {"id": f"toy-{i}", "input": inp, "target": tgt} for i, inp, tgt in EDGE]}},
        "styles": STYLES,
    }  # fmt: skip
    task = dict(h.TOY_TASK)
    if options:
        task["options"] = options
    root = h.write_catalog_dir(tmp_path / "c", tasks=[task], templates=tpl,
                               samples={"toy": {"train": records, "validation": records[:5]}})  # fmt: skip
    return Catalog.load(root)


@pytest.mark.parametrize("options", list(OPTIONS), ids=list(OPTIONS))
@pytest.mark.parametrize("cfg", [*CONFIGS, "shots1"])
def test_edge_templates_same_bytes(tmp_path, h, cfg, options):
    """test_fewshot_columns' templates (cues in templates and data, blocks first / in
    the middle / filtered, a mixed target, a template failing on some records and
    exemplars) and option lists with edges; then render_batch of a big batch
    without failing records takes the record-batch path with the same columns."""
    config = RenderConfig(shots=1) if cfg == "shots1" else CONFIGS[cfg]
    records = _edge_records(500)
    for i, r in enumerate(records):
        del r["label_index"]
        if i % 9 == 0:
            r["hypothesis"] = r["hypothesis"] + "\nA:"  # a cue line ends the data
        if i % 10 == 0:
            r["premise"] = "  " + r["premise"] + " \n"
        if i % 8 == 3:  # short texts whose label test reads past them
            r["premise"] = LABELISH[(i // 8) % len(LABELISH)]
    cat = _edge_catalog(tmp_path, h, records, OPTIONS[options])
    uids = [r["uid"] for r in records]
    took = 0
    for fmt in ("fs_opt", "fs_noopt"):
        tr = Renderer(cat, config).task_renderer("toy")
        pool = _pool(tr, records[:90], prefix="r")  # pool ids are the records' own
        took += both_paths(tr, records[:400], pool, fmt, seed=5, ids=uids[:400])
        items = [(r["uid"], r) for r in records[100:]]
        outs = []
        for on in (True, False):
            tr = Renderer(cat, config).task_renderer("toy")
            pool = _pool(tr, records[:90], prefix="r")
            before = columnar_fs.STATS["rows"]
            errs: list = []
            cols = tr.render_batch(
                items, split="train", fmt=fmt, seed=6, pool=pool, errors=errs, columnar=on
            )
            outs.append((cols, [(i, str(e)) for i, e in errs]))
            took += columnar_fs.STATS["rows"] - before
        assert outs[0] == outs[1], (cfg, options, fmt)
    if cfg == "tokenizer":
        assert took == 0  # exact counts by another tokenizer: per row
    else:
        assert took > 300, took


@pytest.mark.parametrize("n_pool", [0, 1, 3, 4, 7])
def test_small_and_odd_pools_same_bytes(n_pool):
    """Empty pools and pools of at most ``shots`` entries (fewer exemplars than
    asked: per row), pools holding the row's own example, duplicated ids."""
    tr = Renderer(_CAT).task_renderer("anli_r1")
    recs = [_clean(tr, i) for i in range(300)]
    ids = [f"id-{i}" for i in range(300)]
    pool = _pool(tr, recs[:n_pool], prefix="id-")
    fast = both_paths(tr, recs, pool, "fs_opt", seed=3, ids=ids)
    if n_pool <= 3:
        assert fast == 0  # a row may get fewer exemplars than asked: per row
    else:
        assert fast == 300
    if pool:
        dup = pool + [dataclasses.replace(pool[0])]  # the same id twice: exact exclusion per row
        both_paths(tr, recs, dup, "fs_noopt", seed=4, ids=ids)
        both_paths(tr, recs, dup, "fs_noopt", seed=4, ids=[f"x{i}" for i in range(300)])


def test_size_limit_and_budget_rows_fall_back():
    """Texts near the size limit, and prompts whose whitespace-word bound is over
    the budget (many then lose exemplars: exact counts per row)."""
    engine = TemplateEngine(TemplateLimits(output_chars=3000, sequence_len=10_000))
    task = direct_task(_CAT.task("anli_r1"))
    fast = trimmed = 0
    before = dict(columnar_fs.STATS)
    for budget in (300, 900):
        tr = TaskRenderer(task, _CAT, engine, RenderConfig(budget=budget))
        r = random.Random(3)
        recs = [_clean(tr, i) for i in range(300)]
        for rec in recs:
            k = r.random()
            if k < 0.5:
                rec["premise"] += " many words" * r.randrange(60)
            elif k < 0.6:
                rec["premise"] += " " + "y" * r.randrange(3000)
        pool = _pool(tr, recs[:60])
        for fmt in ("fs_opt", "fs_noopt"):
            fast += both_paths(tr, recs, pool, fmt, seed=9)
            cols = tr.render_batch(list(zip([f"id-{i}" for i in range(300)], recs)), split="train", fmt=fmt,
                                   seed=9, pool=pool, errors=[], columnar=False)  # fmt: skip
            trimmed += sum(len(x) < 3 for x in cols["exemplar_ids"])
    assert fast > 50 and trimmed > 100, (fast, trimmed)
    assert columnar_fs.STATS["fallback_rows"] - before["fallback_rows"] > 300


def test_render_batch_of_clean_records_takes_the_record_batch_path(monkeypatch):
    """``render_batch`` of a big batch with no bad record gets its columns from
    ``columnar_fs.render_items``: every row rendered there (whole columns), or
    merged with the rows it hands back (over the budget: per row); the same
    columns as the per-row path."""
    took = took_columns(monkeypatch, columnar_fs)
    task = direct_task(_CAT.task("anli_r1"))
    for budget in (None, 900):
        cfg = RenderConfig() if budget is None else RenderConfig(budget=budget)
        tr = TaskRenderer(task, _CAT, TemplateEngine(), cfg)
        recs = [_clean(tr, i) for i in range(300)]
        if budget:
            for i in range(0, 300, 3):
                # long enough that some prompts exceed the budget counted exactly too (since
                # session 7 exact counts keep the rows that fit on this path)
                recs[i]["premise"] += " many words" * (i % 60) * 4
        items = [(f"id-{i}", rec) for i, rec in enumerate(recs)]
        pool = _pool(tr, recs[:60])
        for fmt in ("fs_opt", "fs_noopt"):
            before = dict(columnar_fs.STATS)
            errs: list = []
            got = tr.render_batch(items, split="train", fmt=fmt, seed=4, pool=pool, errors=errs)
            rows = columnar_fs.STATS["rows"] - before["rows"]
            handed = columnar_fs.STATS["fallback_rows"] - before["fallback_rows"]
            want = tr.render_batch(items, split="train", fmt=fmt, seed=4, pool=pool, errors=[],
                                   columnar=False)  # fmt: skip
            assert took.pop() and not errs and got == want, (budget, fmt)
            assert rows > 50 and (handed > 0) == bool(budget), (budget, fmt, rows, handed)


def test_label_fixed_holds_for_every_continuation():
    """``label_fixed(a)``, when it answers, is ``starts_with_label(a + x)`` for any x."""
    from flan_data.textcheck import starts_with_label

    r = random.Random(0)
    heads = LABELISH + ["Premise: ", "Target (a:", "Target (a:b", "Q", "  Question: x", "Some words here: ",
                        "a b c d: ", "One two (three): x", "x" * 70, "Answer (short", "#", "[", "Q.x"]  # fmt: skip
    tails = [
        "",
        " ",
        "\n",
        ": x",
        "): y",
        "b): rest",
        ". z",
        "Answer: no",
        "(x): y",
        ":",
        "\tq",
        "] z",
    ]
    decided = 0
    for a in heads:
        for _ in range(30):
            x = "".join(r.choice(tails) for _ in range(r.randrange(4)))
            got = columnar_fs.label_fixed(a)
            if got is not None:
                decided += 1
                assert got == starts_with_label(a + x), (a, x)
    assert decided > 100


def test_own_fewshot_templates_and_exemplar_fields_are_left_alone(catalog):
    """NIv2 tasks compose their own few-shot prompts (exemplars from a field,
    few-shot templates): never on this path; render_batch's output unchanged."""
    r = Renderer(catalog)
    names = [n for n, t in sorted(catalog.tasks.items()) if t.exemplar_field][:3]
    assert names
    for name in names:
        tr = r.task_renderer(name)
        assert not columnar_fs.supports(TaskColumns.of(tr), "fs_opt", [])
        from flan_data.linter import synthetic_rows

        rows = synthetic_rows(tr.task, n=300)
        before = dict(columnar_fs.STATS)
        a = tr.render_batch(rows, split="train", fmt="fs_opt", seed=1, errors=[])
        b = tr.render_batch(rows, split="train", fmt="fs_opt", seed=1, errors=[], columnar=False)
        assert a == b and before == columnar_fs.STATS


def test_off_switch_and_other_tokenizers(catalog, monkeypatch):
    tr = Renderer(catalog).task_renderer("anli_r1")
    tc = TaskColumns.of(tr)
    assert columnar_fs.supports(tc, "fs_opt", [])
    assert not columnar_fs.supports(tc, "zs_opt", [])
    assert not columnar_fs.supports(tc, "fs_opt", None)
    assert not columnar_fs.supports(tc, "fs_opt", [], turns=True)
    monkeypatch.setattr(columnar, "ENABLED", False)
    assert not columnar_fs.supports(tc, "fs_opt", [])
    monkeypatch.setattr(columnar, "ENABLED", True)
    other = Renderer(catalog, RenderConfig(tokenizer=CallableTokenizer(str.split))).task_renderer(
        "anli_r1"
    )
    assert not columnar_fs.supports(TaskColumns.of(other), "fs_opt", [])


# ----------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("on_error", ["skip", "fail"])
def test_export_identical_with_fast_path_on_and_off(tmp_path, monkeypatch, workers, on_error):
    """A zs/fs mixture of dirty Parquet data: every file (manifest and skip counts
    included) byte-identical with the record-batch path on and off."""
    monkeypatch.setattr(jobs, "CHUNK_ROWS", 900)  # several jobs per task
    monkeypatch.setattr(jobs, "FAST_ROWS", 500)  # several column-wise batches per job
    cat = _export_catalog(tmp_path / "c", "parquet", _nli(3000, 2, dirty=on_error == "skip"))
    mix = MixtureSpec(name="m", members=(MixtureMember(kind="task", name="syn",
                                                       formats=("zs_opt", "fs_opt", "fs_noopt")),))  # fmt: skip
    before = columnar_fs.STATS["rows"]
    on, _ = _export(
        cat, mix, tmp_path / "on", True, monkeypatch, workers=workers, on_error=on_error
    )
    took = columnar_fs.STATS["rows"] - before
    off, _ = _export(
        cat, mix, tmp_path / "off", False, monkeypatch, workers=workers, on_error=on_error
    )
    assert on == off
    assert isinstance(on, dict) and len(on) > 3
    if workers == 1:
        assert took > 1000, took  # few-shot rows went through the record-batch path


def test_exemplar_tables_built_once_per_task_across_chunk_jobs(tmp_path, monkeypatch):
    """A task split into many chunk jobs renders its pool's exemplars once per
    few-shot format in the process (the pool and the tables are shared)."""
    monkeypatch.setattr(jobs, "CHUNK_ROWS", 300)
    monkeypatch.setattr(jobs, "MIN_CHUNK_ROWS", 300)
    cat = _export_catalog(tmp_path / "c", "parquet", _nli(3000, 4, dirty=False))
    mix = MixtureSpec(name="m", members=(MixtureMember(kind="task", name="syn", formats=("fs_opt", "fs_noopt")),))  # fmt: skip
    built = []
    real = columnar_fs._Tables.__init__

    def counting(self, *a, **kw):
        built.append(1)
        return real(self, *a, **kw)

    monkeypatch.setattr(columnar_fs._Tables, "__init__", counting)
    before = columnar_fs.STATS["rows"]
    out, _ = _export(cat, mix, tmp_path / "o", True, monkeypatch)
    assert isinstance(out, dict)
    assert columnar_fs.STATS["rows"] - before > 2000
    assert len(built) == 2  # fs_opt and fs_noopt, whatever the number of chunk jobs


def test_text_fact_columns_equal_the_python_tests():
    """The column-wise cue/label tests (Arrow filters, then Python on the rest)
    give ``starts_with_label`` / ``ends_with_cue`` / ``_target_labelled`` of every string."""
    from flan_data.compose import _target_labelled
    from flan_data.textcheck import ends_with_cue, starts_with_label

    r = random.Random(1)
    bits = ["Q:", "A.", "Answer:", "[Output]", "## Answer", "# Response:", "A: Let's think.", "Q. ", "x", "é",
            "日本", "?", ".", ":", "]", " ", "\t", "\n", "\n\n", "Target (en):", "words here", "(A)", "Reasoning:",
            "Question", "question:", "Ans", "\u3000", "y" * 70, "OPTIONS:\n- a\n- b"]  # fmt: skip
    texts = ["", "A:", "Q: x\nA:", "x\n## Answer", "é:", "Answer: é"]
    for _ in range(3000):
        texts.append("".join(r.choice(bits) for _ in range(r.randrange(1, 7))))
    arr = pa.array(texts)
    assert columnar_fs.labelled_column(arr).tolist() == [starts_with_label(t) for t in texts]
    assert columnar_fs.cued_column(arr).tolist() == [ends_with_cue(t) for t in texts]
    got = columnar_fs._target_labelled_column(arr).tolist()
    assert got == [bool(t) and _target_labelled(t) for t in texts]
    few = pa.array([texts[i % 5] for i in range(400)])  # few distinct texts: once each
    assert columnar_fs._target_labelled_column(few).tolist() == [
        bool(t) and _target_labelled(t) for t in few.to_pylist()
    ]
    sliced = arr.slice(7, 500)  # an offset into the buffers
    assert columnar_fs.cued_column(sliced).tolist() == [ends_with_cue(t) for t in texts[7:507]]
