"""Coverage of the column-wise paths (issue 9): field expressions that are not
plain keys (``inputs_pretokenized | trim``: every P3 task; ``document |
replace(...)``, ``answers.text[0]``, ``'yes' if answer else 'no'``, ... of Flan
2021) and templates with ``{% if inputs[-1:] != ":" %}...{% endif %}`` (three of
the ten ``t0_wrap`` templates) render column-wise with exactly the bytes of
``render_batch``'s per-row path; every row they cannot decide is handed back.

Two kinds of records: the schema-faithful replica sources of
``bench/flan2022_replica.py`` (every Flan 2021 task with such a field, a sample
of P3 tasks), read as the export reads them (record batches), and hand-made
edge cases (Unicode whitespace at the ends, nulls, numbers where text is
expected, empty texts, a colon as the last character, texts over the
sandbox's sequence size). Counters say which path did the work; no timing is
asserted.
"""

from __future__ import annotations

import dataclasses
import random
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from two_paths import fast_row, same_rows

from flan_data import Catalog, RenderConfig, Renderer
from flan_data.columnar import TaskColumns, items_batch
from flan_data.columnar_fs import render_fewshot
from flan_data.columnar_fs import supports as fs_supports
from flan_data.render import direct_field
from flan_data.templates import TemplateEngine, TemplateLimits

_CAT = Catalog.load()
P3_NAMES = ("adversarial_qa_dbert_answer_the_following_q", "adversarial_qa_dbert_generate_question")
#: P3 tasks with per-record options (``answer_choices``)
P3_MC = (
    "amazon_polarity_Is_this_review",
    "quartz_answer_question_based_on",
    "wiki_hop_original_choose_best_object_affirmative_1",
)


def zs_both(tr, batch: pa.RecordBatch, ids: list[str], fmt: str, seed: int = 3) -> int:
    """Column-wise rows (+ render_batch on the rows handed back) == render_batch per row."""
    recs = batch.to_pylist()
    kw = dict(split="train", fmt=fmt, seed=seed, template_id=None)

    def fast():
        res = TaskColumns.of(tr).render(batch, ids, **kw)
        rows = [(i, fast_row(tr, fmt, "train", res.inputs[j].as_py(), res.targets[j].as_py(),
                             res.template_ids[res.template[j]], res.seeds[j], ids[i]))
                for j, i in enumerate(res.rows.tolist())]  # fmt: skip
        if res.options is not None:  # per-record options: each row's own
            opts = res.options.to_pylist()
            rows = [(i, (*r[:4], tuple(opts[j]), *r[5:])) for j, (i, r) in enumerate(rows)]
        return rows, res.fallback.tolist()

    return same_rows(tr, list(zip(ids, recs)), kw, fast)


def fs_both(tr, batch: pa.RecordBatch, ids: list[str], fmt: str, pool, seed: int = 3) -> int:
    """The few-shot rows of :func:`render_fewshot` (+ the per-row path on the rest)
    == render_batch per row."""
    recs = batch.to_pylist()
    kw = dict(split="train", fmt=fmt, seed=seed, pool=pool)

    def fast():
        res = render_fewshot(TaskColumns.of(tr), batch, ids, **kw)
        fs_ids = res.fewshot_style_ids
        ex = res.exemplar_ids.to_pylist()
        rows = [(i, fast_row(tr, fmt, "train", res.inputs[j].as_py(), res.targets[j].as_py(),
                             res.template_ids[res.template[j]], res.seeds[j], ids[i],
                             fs_ids[res.fewshot_style[j]], ex[j]))
                for j, i in enumerate(res.rows.tolist())]  # fmt: skip
        return rows, res.fallback.tolist()

    return same_rows(tr, list(zip(ids, recs)), kw, fast)


# ----------------------------------------------------------------------------- the replica

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _expr_tasks():
    """Flan 2021 tasks with a field that is not a plain key or per-record options
    (record rules aside: export reads those from their read-once copy, row by row)."""
    out = []
    for t in _CAT.tasks_in("flan2021"):
        if t.records:
            continue
        if t.options_field is not None or any(direct_field(e) is None for e in t.fields.values()):
            out.append(t.name)
    return out


@pytest.fixture(scope="module")
def replica(tmp_path_factory):
    pytest.importorskip("datasets")
    sys.path.insert(0, str(BENCH))
    import flan2022_replica as rep
    import replica_sources

    replica_sources.STREAM_WORDS = 20_000
    names = [*_expr_tasks(), *P3_NAMES, *P3_MC]
    need = {n: 80 for n in names}
    root = tmp_path_factory.mktemp("replica")
    args, made = rep.build(_CAT, need, root, log=lambda s: None)
    it = iter(args)
    dirs = dict(v.split("=", 1) for _flag in it for v in [next(it)])
    return names, dirs


def test_replica_tasks_render_column_wise_with_the_same_bytes(replica):
    from flan_data.sources import open_task_source

    names, dirs = replica
    rend = Renderer(_CAT)
    fast_tasks = []
    for name in names:
        t = _CAT.task(name)
        tr = rend.task_renderer(t)
        tc = TaskColumns.of(tr)
        assert tc is not None, name
        src = open_task_source(_CAT, t, "real", dirs)
        got = src.read_batches("train", 0, src.count("train"))
        if got is None:  # a source without record batches (raw files): its records as one
            batch = pa.RecordBatch.from_pylist([rec for _, rec in src.read("train")])
        else:
            batches = [b for _first, _ids, b in got]
            batch = pa.concat_batches(batches) if len(batches) > 1 else batches[0]
        ids = [f"{name}-{i}" for i in range(batch.num_rows)]
        recs = batch.to_pylist()
        pool = [tr.exemplar(i, r) for i, r in zip(ids[:30], recs[:30])]
        n_fast = 0
        for fmt in tr.formats():
            if fmt == "cot":
                continue
            if fmt.startswith("fs_"):
                if fs_supports(tc, fmt, pool):
                    n_fast += fs_both(tr, batch, ids, fmt, pool)
            elif tc.supports(fmt):
                n_fast += zs_both(tr, batch, ids, fmt)
        if n_fast:
            fast_tasks.append(name)
    # the replica's records are good: (nearly) every task renders rows here
    assert set(P3_NAMES) | set(P3_MC) <= set(fast_tasks)
    assert len(fast_tasks) >= len(names) - 3, sorted(set(names) - set(fast_tasks))


# ----------------------------------------------------------------------------- edge cases

ENDS = ["", "", "", " ", "\n", "\t ", "\u3000", "\u2029", "\x1c", "\x85", "\xa0", "\u200b", "\r\n"]
CORES = ["What is it?", "Question: x\nAnswer:", "ends with a colon:", "é:", "x", "日本語：",
         "a:b", ":", "emoji 😀:", "{{ braces }} {0}"]  # fmt: skip


def _text_any(r: random.Random):
    k = r.random()
    if k < 0.04:
        return None
    if k < 0.07:
        return r.choice([7, 2.5, True])
    if k < 0.11:
        return ""
    if k < 0.15:
        return r.choice(ENDS[3:]) + r.choice(ENDS[3:])
    return r.choice(ENDS) + r.choice(CORES) + r.choice(ENDS)


def _p3_records(n: int, seed: int) -> list[dict]:
    r = random.Random(seed)
    return [
        {"inputs_pretokenized": _text_any(r), "targets_pretokenized": _text_any(r)}
        for _ in range(n)
    ]


@pytest.mark.parametrize("seed", [0, 1])
def test_p3_trim_fields_and_conditional_templates(seed):
    tr = Renderer(_CAT).task_renderer(P3_NAMES[0])
    tc = TaskColumns.of(tr)
    assert [f.kind for f in tc.fields] == ["trim", "trim"]
    plan = tc._plan("zs_opt")
    assert all(p is not None for p in plan[1])  # the conditional templates too
    assert sum(any(x[0] == "cond" for x in p[0] if isinstance(x, tuple)) for p in plan[1]) == 3
    # strings only (Arrow cannot mix numbers into a string column)
    recs = [
        {k: (v if v is None or isinstance(v, str) else str(v)) for k, v in rec.items()}
        for rec in _p3_records(600, seed)
    ]
    batch = pa.RecordBatch.from_pylist(recs)
    ids = [f"id-{i}" for i in range(len(recs))]
    pool = [tr.exemplar(i, rec) for i, rec in zip(ids, recs) if _good(tr, i, rec)][:40]
    n = 0
    for fmt in ("zs_opt", "zs_noopt"):
        n += zs_both(tr, batch, ids, fmt, seed)
    for fmt in ("fs_opt", "fs_noopt"):
        n += fs_both(tr, batch, ids, fmt, pool, seed)
    assert n > 1200  # most rows here: the rest are nulls and empty targets


def _good(tr, eid, rec) -> bool:
    try:
        tr.canonical(eid, rec)
    except Exception:  # noqa: BLE001
        return False
    return True


def test_render_batch_takes_the_column_path_for_non_direct_fields():
    """render_batch(columnar=True) of dict records == columnar=False, including a
    number where text is expected (Arrow cannot type the column: whole batch per row)."""
    tr = Renderer(_CAT).task_renderer(P3_NAMES[0])
    good = [
        {k: (v if v is None or isinstance(v, str) else str(v)) for k, v in rec.items()}
        for rec in _p3_records(300, 5)
    ]
    for recs in (good, _p3_records(300, 5)):
        items = [(f"id-{i}", rec) for i, rec in enumerate(recs)]
        for fmt in ("zs_opt", "zs_noopt"):
            kw = dict(split="train", fmt=fmt, seed=1)
            e1: list = []
            e2: list = []
            a = tr.render_batch(items, errors=e1, **kw)
            b = tr.render_batch(items, errors=e2, columnar=False, **kw)
            assert a == b
            assert [(i, str(e)) for i, e in e1] == [(i, str(e)) for i, e in e2]
    assert items_batch(TaskColumns.of(tr), [("a", {"inputs_pretokenized": "x"})]) is None


def test_trimmed_value_over_the_sequence_size_is_handed_back():
    """A trimmed value over the sandbox's sequence size is the Jinja path's to decide."""
    eng = TemplateEngine(TemplateLimits(sequence_len=40, output_chars=1000))
    tr = Renderer(_CAT, engine=eng).task_renderer(P3_NAMES[0])
    recs = [
        {"inputs_pretokenized": "  " + "y" * k + "  ", "targets_pretokenized": " a "}
        for k in (5, 10, 39, 40, 41, 80)
    ] * 20
    batch = pa.RecordBatch.from_pylist(recs)
    ids = [f"id-{i}" for i in range(len(recs))]
    res = TaskColumns.of(tr).render(batch, ids, fmt="zs_noopt", seed=0, split="train")
    over = {i for i, r in enumerate(recs) if len(r["inputs_pretokenized"].strip()) > 40}
    assert over and set(res.fallback.tolist()) >= over and len(res.rows)
    # the rows within the size: both paths agree
    keep = [i for i in range(len(recs)) if i not in over]
    sub = batch.take(pa.array(keep))
    assert zs_both(tr, sub, [ids[i] for i in keep], "zs_noopt", 0) > 0


def _flan2021_edge_records(t, n: int, seed: int) -> list[dict]:
    """Records for a few Flan 2021 expression fields, with bad values mixed in."""
    r = random.Random(seed)

    def _text(r):  # one type per column, as a source's schema has
        v = _text_any(r)
        return v if v is None or isinstance(v, str) else str(v)

    out = []
    for _ in range(n):
        k = r.random()
        if t.name.startswith("squad_v2"):
            texts = [] if k < 0.3 else [_text(r) for _ in range(r.randrange(1, 3))]
            rec = {"context": _text(r), "question": _text(r), "title": "t",
                   "answers": {"text": texts, "answer_start": [0] * len(texts)}}  # fmt: skip
        elif t.name.startswith("multi_news"):
            rec = {"document": None if k < 0.05 else f"{_text(r)}|||||{_text(r)}", "summary": _text(r)}  # fmt: skip
        elif t.name.startswith("bool_q"):
            rec = {"question": _text(r), "passage": _text(r), "answer": r.choice([True, False, None])}  # fmt: skip
        else:
            raise AssertionError(t.name)
        out.append(rec)
    return out


@pytest.mark.parametrize("name", ["squad_v2", "multi_news", "bool_q"])
def test_expression_fields_with_bad_values(name):
    t = _CAT.task(name)
    tr = Renderer(_CAT).task_renderer(t)
    tc = TaskColumns.of(tr)
    assert any(f.kind == "expr" for f in tc.fields)
    recs = _flan2021_edge_records(t, 400, 2)
    batch = pa.RecordBatch.from_pylist(recs)
    ids = [f"id-{i}" for i in range(len(recs))]
    n = sum(zs_both(tr, batch, ids, fmt, 4) for fmt in ("zs_opt", "zs_noopt"))
    assert n > 200


def test_conditional_template_forms():
    """Only ``{% if name[-1:] ==/!= "c" %}literal{% endif %}`` over a task field is taken."""
    from flan_data.columnar import _cond_parts

    tr = Renderer(_CAT).task_renderer(P3_NAMES[0])
    eng = tr.engine
    ct = tr.template("t0_wrap-02")
    names = {"inputs", "answer"}
    parts = _cond_parts(eng, ct, names)
    assert parts is not None and any(not isinstance(p, str | tuple) for p in parts[0])

    def form(src: str):
        spec = dataclasses.replace(ct.spec, input=src, id=f"probe-{abs(hash(src))}")
        return _cond_parts(eng, eng.compile(spec), names)

    assert form('{{ inputs }}{% if inputs[-1:] == "?" %}Q{% endif %}') is not None
    for bad in (
        '{% if inputs[-2:] != ":" %}x{% endif %}',
        '{% if inputs[-1:] != "::" %}x{% endif %}',
        '{% if inputs[-1:] != ":" %}x{% else %}y{% endif %}',
        '{% if inputs[-1:] != ":" %}{{ inputs }}{% endif %}',
        '{% if other[-1:] != ":" %}x{% endif %}',
        "{% if inputs %}x{% endif %}",
        "{% for x in inputs %}x{% endfor %}",
    ):
        assert form(bad) is None, bad


def test_shots_config_does_not_matter_for_coverage():
    """A renderer with other knobs (plain option style) still takes these tasks."""
    tr = Renderer(_CAT, RenderConfig(option_style="plain")).task_renderer(P3_NAMES[0])
    assert TaskColumns.of(tr) is not None


@pytest.mark.parametrize("values", [[True, False], [3, 0, -1], [1.5, float("nan")], ["a", " "]])
def test_expression_values_that_are_not_text(values):
    """``answer[0]`` giving a bool, a number, NaN: the per-row path decides (error or text)."""
    tr = Renderer(_CAT).task_renderer("natural_questions")
    r = random.Random(7)
    recs = [{"question": r.choice(["q?", " why ", "x"]),
             "answer": [r.choice(values) for _ in range(r.randrange(0, 3))] if r.random() > 0.1 else None}
            for _ in range(300)]  # fmt: skip
    batch = pa.RecordBatch.from_pylist(recs)
    ids = [f"id-{i}" for i in range(len(recs))]
    n = sum(zs_both(tr, batch, ids, fmt, 1) for fmt in ("zs_opt", "zs_noopt"))
    assert n > 0 if isinstance(values[0], str) else n == 0


def _p3_mc_records(n: int, seed: int) -> list[dict]:
    """P3 rows with per-record options: bad lists, answers outside them, repeats."""
    r = random.Random(seed)
    out = []
    for _ in range(n):
        k = r.random()
        opts = r.choice([["yes", "no"], ["A cat:", " dog ", "A cat:"], ["x"], ["é", "日本", "😀"]])
        if k < 0.05:
            opts = None
        elif k < 0.08:
            opts = []
        elif k < 0.1:
            opts = ["ok", None]
        ans = r.choice(opts) if opts and r.random() > 0.1 else r.choice(["nope", "", None])
        if ans is not None and r.random() < 0.3:
            ans = r.choice(ENDS) + ans + r.choice(ENDS)  # trimmed by the field
        out.append({"inputs_pretokenized": r.choice(CORES) + r.choice(ENDS),
                    "targets_pretokenized": ans, "answer_choices": opts})  # fmt: skip
    return out


@pytest.mark.parametrize("option_style", ["random", "plain"])
def test_per_record_options_same_bytes(option_style):
    tr = Renderer(_CAT, RenderConfig(option_style=option_style)).task_renderer(P3_MC[1])
    tc = TaskColumns.of(tr)
    assert tc.per_row and not fs_supports(tc, "fs_opt", [])
    recs = _p3_mc_records(500, 3)
    batch = pa.RecordBatch.from_pylist(recs)
    ids = [f"id-{i}" for i in range(len(recs))]
    n = sum(zs_both(tr, batch, ids, fmt, 5) for fmt in ("zs_opt", "zs_noopt"))
    assert n > 500
    # render_batch over dict records takes the same path (same columns as per row)
    items = list(zip(ids, recs))
    for fmt in ("zs_opt", "zs_noopt"):
        e1: list = []
        e2: list = []
        a = tr.render_batch(items, split="train", fmt=fmt, seed=2, errors=e1)
        b = tr.render_batch(items, split="train", fmt=fmt, seed=2, errors=e2, columnar=False)
        assert a == b and [(i, str(e)) for i, e in e1] == [(i, str(e)) for i, e in e2]


def test_per_record_options_by_label_and_expression():
    """copa: options ``[choice1, choice2]`` (a Jinja list), answer ``[choice1, choice2][label]``;
    definite_pronoun_resolution: ``candidates[label]`` over a list column."""
    r = random.Random(9)
    for name in ("copa", "definite_pronoun_resolution"):
        tr = Renderer(_CAT).task_renderer(name)
        assert TaskColumns.of(tr).per_row
        if name == "copa":
            recs = [{"premise": r.choice(CORES), "choice1": r.choice(["a", "b", "", None]),
                     "choice2": r.choice(["b", "c"]), "question": r.choice(["cause", "effect"]),
                     "label": r.choice([0, 1, 1, 2, -1, None])} for _ in range(400)]  # fmt: skip
        else:
            recs = [{"sentence": r.choice(CORES), "pronoun": r.choice(["it", "", "they"]),
                     "candidates": r.choice([["a", "b"], ["a", "a"], [], None, ["x", ""]]),
                     "label": r.choice([0, 1, 2, -1, None])} for _ in range(400)]  # fmt: skip
        batch = pa.RecordBatch.from_pylist(recs)
        ids = [f"id-{i}" for i in range(len(recs))]
        assert sum(zs_both(tr, batch, ids, fmt, 6) for fmt in ("zs_opt", "zs_noopt")) > 100, name


def test_per_record_options_with_an_options_label_field():
    """``options[label]`` over each record's own options (range-checked per row)."""
    from flan_data.render import TaskRenderer

    t = _CAT.task("copa")
    spec = dataclasses.replace(t, fields={**t.fields, "answer": "options[label]"})
    base = Renderer(_CAT)
    tr = TaskRenderer(spec, _CAT, base.engine, base.config)
    tc = TaskColumns.of(tr)
    assert tc.per_row and any(f.kind == "label" for f in tc.fields)
    r = random.Random(4)
    recs = [{"premise": r.choice(CORES), "choice1": r.choice(["a", "b", " "]),
             "choice2": r.choice(["b", "c"]), "question": r.choice(["cause", "effect"]),
             "label": r.choice([0, 1, 1, 2, -1, -2, None])} for _ in range(400)]  # fmt: skip
    batch = pa.RecordBatch.from_pylist(recs)
    ids = [f"id-{i}" for i in range(len(recs))]
    assert sum(zs_both(tr, batch, ids, fmt, 6) for fmt in ("zs_opt", "zs_noopt")) > 200


@pytest.mark.parametrize("budget", [40, 70, 120])
def test_few_shot_rows_over_the_character_bound_counted_exactly(budget):
    """Long words: the character bound of a prompt exceeds the word budget while its
    whitespace words may fit; exact counts keep the rows whose k exemplars all fit
    (the per-row assembly keeps them all too), the rest go per row (fewer exemplars)."""
    tr = Renderer(_CAT, RenderConfig(budget=budget)).task_renderer(P3_NAMES[0])
    r = random.Random(budget)

    def text(n):
        return " ".join("w" * r.randrange(12, 30) for _ in range(n)) + r.choice(["", ":", "?"])

    recs = [{"inputs_pretokenized": text(r.randrange(1, 12)), "targets_pretokenized": text(r.randrange(1, 4))}
            for _ in range(400)]  # fmt: skip
    batch = pa.RecordBatch.from_pylist(recs)
    ids = [f"id-{i}" for i in range(len(recs))]
    pool = [tr.exemplar(i, rec) for i, rec in zip(ids[:50], recs[:50])]
    n = sum(fs_both(tr, batch, ids, fmt, pool, budget) for fmt in ("fs_opt", "fs_noopt"))
    # every prompt's character bound is over the budget: only exact counts keep rows here
    assert n > (0 if budget < 60 else 200), n
