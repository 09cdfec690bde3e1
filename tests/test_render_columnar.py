"""The column-wise render of simple templates and the vectorised per-row choices
(issue 9) give exactly the bytes of the Jinja path and of the per-row seeds.

Simple templates (literal text and ``{{ name }}`` / ``{{ name | filter }}``)
render a whole group of rows with ``str.format``; every shipped template of that
shape is rendered here through both paths on lint's synthetic rows, plus
hand-written edge cases (whitespace control, trailing newline, raw blocks,
unicode, empty strings, numbers, sandbox limits). Counters say which path did
the work; no timing is asserted.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from flan_data import Catalog, RenderConfig, Renderer
from flan_data.errors import FlanDataError
from flan_data.linter import synthetic_rows
from flan_data.options import ALL_STYLES
from flan_data.render import RENDER_STATS, VECTOR_MIN
from flan_data.seeding import SeedPrefix, choose, mix64, mix64_array, purpose_salt
from flan_data.specs import TemplateSpec
from flan_data.templates import TemplateEngine, TemplateLimits


@contextlib.contextmanager
def jinja_only(cts):
    """Render through the Jinja batch path only (the column-wise form switched off)."""
    saved = [(ct, ct.simple) for ct in cts]
    for ct in cts:
        ct.simple = None
    try:
        yield
    finally:
        for ct, s in saved:
            ct.simple = s


def outcome(fn):
    try:
        return fn()
    except FlanDataError as e:
        return (type(e).__name__, str(e))


# ----------------------------------------------------------------------------- every shipped template


def _shipped_cases():
    cat = Catalog.load()
    seen, cases = set(), []
    for task in cat.tasks.values():
        for s in task.templates:
            for tid in cat.template_sets[s]:
                t = cat.templates[tid]
                if t.dialect == "promptsource" or tid in seen:
                    continue
                seen.add(tid)
                cases.append((task.name, tid))
    return cat, cases


_CAT, _CASES = _shipped_cases()


def test_most_shipped_templates_are_simple():
    r = Renderer(_CAT)
    simple = sum(r.task_renderer(t).template(tid).simple is not None for t, tid in _CASES)
    assert len(_CASES) > 400 and simple / len(_CASES) > 0.8, (simple, len(_CASES))


@pytest.mark.parametrize("option_style", ["random", "plain"])
def test_every_shipped_template_same_bytes_both_paths(option_style):
    r = Renderer(_CAT, RenderConfig(option_style=option_style))
    checked = 0
    for task, tid in _CASES:
        tr = r.task_renderer(task)
        ct = tr.template(tid)
        if ct.simple is None:
            continue
        rows = synthetic_rows(tr.task, n=6)
        canons = [c for _, c in rows]
        for fmt in tr.formats():
            if fmt.startswith("fs_") or ct not in tr.eligible(fmt):
                continue

            def run(fmt=fmt, tr=tr, rows=rows, tid=tid, canons=canons):
                return tr.render_batch(rows, split="validation", fmt=fmt, seed=3,
                                       template_id=tid, canonicals=canons)  # fmt: skip

            before = RENDER_STATS["columnar_rows"]
            fast = outcome(run)
            took = RENDER_STATS["columnar_rows"] - before
            with jinja_only([ct]):
                before_j = RENDER_STATS["columnar_rows"]
                slow = outcome(run)
                assert RENDER_STATS["columnar_rows"] == before_j
            assert fast == slow, (task, tid, fmt)
            if isinstance(fast, dict):
                assert took == len(rows), (task, tid, fmt)
                checked += 1
    assert checked > 400


def test_fewshot_queries_and_exemplars_same_bytes(catalog):
    r = Renderer(catalog)
    tr = r.task_renderer("anli_r1")
    rows = synthetic_rows(tr.task, n=8)
    from flan_data.render import Exemplar

    pool = [Exemplar(f"p{i}", c) for i, (_, c) in enumerate(synthetic_rows(tr.task, n=8))]
    for fmt in ("fs_opt", "fs_noopt"):

        def run(fmt=fmt):
            return tr.render_batch(rows, split="train", fmt=fmt, seed=0, pool=pool,
                                   canonicals=[c for _, c in rows])  # fmt: skip

        fast = run()
        with jinja_only(tr.templates):
            assert run() == fast


# ----------------------------------------------------------------------------- edge cases


EDGE_TEMPLATES = [
    ("{{ a }}", "{{ b }}"),
    ("Q: {{ a }}\n", "{{ b }}\n"),  # the one trailing newline is dropped
    ("x  {{- a -}}  \n\n {{ b }} y", "{{- b }}"),  # whitespace control
    ("{{ a|lower }} {{ b | upper }} [{{ a|trim }}] {{ b|capitalize }} {{ a|title }}", "{{ a }}"),
    ("braces { {x} }} {{ '{' ~ '' if false else '' }}", "x"),  # not simple: falls back
    ("{% raw %}{{ a }} {0} {}{% endraw %} {{ b }}", "}{"),  # literal braces and format fields
    ("{# a comment #}{{ a }}{{ a }}{{ b }}", ""),
    ("line one\r\nline two {{ a }}\r\n", "{{ b }}"),  # newlines normalised by the lexer
    ("", "{{ a }}"),
    ("only text {0}", "more text {{ '{{' }}"),
]
EDGE_VALUES = [
    {"a": "plain", "b": "text"},
    {"a": "", "b": ""},
    {"a": "ünïcödé 日本語 🙂", "b": "Ǆemal  title case"},
    {"a": 0, "b": -3},
    {"a": 1.5, "b": 1e16},
    {"a": float("inf"), "b": 2**70},
    {"a": "  padded \t", "b": "{0} {} {{ braces }} %s"},
    {"a": ["a", "list"], "b": ("a", "tuple")},
    {"a": "line\nbreaks\r\n", "b": "\u2028sep"},
]


@pytest.mark.parametrize(("inp", "tgt"), EDGE_TEMPLATES)
def test_edge_cases_match_jinja(inp, tgt):
    eng = TemplateEngine()
    ct = eng.compile(TemplateSpec(id="e", set="e", kind="zero_shot", input=inp, target=tgt))
    expected = [eng.render(ct, ctx) for ctx in EDGE_VALUES]
    if ct.simple is None:
        assert "'" in inp + tgt  # only the templates with expressions fall back
        return
    cols = {
        k: [v if type(v) is str else str(v) for v in (c[k] for c in EDGE_VALUES)]
        for k in ct.simple.names
    }
    ins, tgs = ct.simple.render(cols, len(EDGE_VALUES))
    assert list(zip(ins, tgs)) == expected


def test_not_simple_shapes():
    eng = TemplateEngine()
    for inp in ("{{ a ~ b }}", "{{ 'x' }}", "{% if a %}{{ a }}{% endif %}", "{{ a | truncate(3) }}",
                "{{ a.b }}", "{{ a[0] }}", "{% for x in a %}{{ x }}{% endfor %}", "{{ a | length }}",
                "{% set c = 1 %}{{ c }}"):  # fmt: skip
        ct = eng.compile(
            TemplateSpec(id=f"n{hash(inp)}", set="n", kind="zero_shot", input=inp, target="t")
        )
        assert ct.simple is None, inp


def _toy_renderer(make_catalog, templates, limits=None):
    cat = make_catalog(templates={"sets": {"toy": {"kind": "zero_shot", "templates": templates}}})
    eng = TemplateEngine(limits) if limits else TemplateEngine()
    return Renderer(cat, RenderConfig(), engine=eng).task_renderer("toy")


def test_output_limit_leaves_the_row_to_jinja(make_catalog, h):
    templates = [
        {
            "id": "toy-01",
            "input": "{{ premise }}{{ premise }}{{ options_block }}",
            "target": "{{ answer }}",
        }
    ]
    tr = _toy_renderer(make_catalog, templates, TemplateLimits(output_chars=60))
    recs = [(r["uid"], r) for r in h.toy_records(3)]
    recs[1][1]["premise"] = "long " * 20
    fast = outcome(lambda: tr.render_batch(recs, split="train", fmt="zs_noopt", seed=0))
    with jinja_only(tr.templates):
        slow = outcome(lambda: tr.render_batch(recs, split="train", fmt="zs_noopt", seed=0))
    assert fast == slow and isinstance(fast, tuple) and "output size" in fast[1]
    errs_f, errs_s = [], []
    ok = tr.render_batch(recs, split="train", fmt="zs_noopt", seed=0, errors=errs_f)
    with jinja_only(tr.templates):
        assert tr.render_batch(recs, split="train", fmt="zs_noopt", seed=0, errors=errs_s) == ok
    assert ok["index"] == [0, 2] and [i for i, _ in errs_f] == [i for i, _ in errs_s] == [1]


def test_filter_count_over_ops_limit_is_not_simple(make_catalog):
    templates = [
        {
            "id": "toy-01",
            "input": "{{ premise | lower }}{{ hypothesis | upper }}",
            "target": "{{ answer }}",
        }
    ]
    assert _toy_renderer(make_catalog, templates).template("toy-01").simple is not None
    tr = _toy_renderer(make_catalog, templates, TemplateLimits(ops=1))
    assert tr.template("toy-01").simple is None


def test_missing_field_same_error_both_paths(make_catalog, h):
    templates = [
        {"id": "toy-01", "input": "{{ premise }} {{ answer_text }}", "target": "{{ answer }}"}
    ]
    tr = _toy_renderer(make_catalog, templates)
    canon = {"premise": "p", "hypothesis": "h"}  # no answer: answer_text is undefined

    def run():
        return tr.render_batch(
            [("x", {})], split="train", fmt="zs_noopt", seed=0, canonicals=[canon]
        )

    fast = outcome(run)
    with jinja_only(tr.templates):
        assert outcome(run) == fast
    assert isinstance(fast, tuple)


# ----------------------------------------------------------------------------- vectorised seeds and choices


def test_derive_many_and_choose_match_scalar():
    p = SeedPrefix(7, "task", "train")
    ids = ["a", "", "ünï", "x" * 300] + [f"id-{i}" for i in range(200)]
    seeds = p.derive_many(ids)
    assert seeds.dtype == np.uint64
    assert seeds.tolist() == [p.derive(i) for i in ids]
    for purpose in ("template", "options"):
        salt = purpose_salt(purpose)
        assert mix64_array(seeds, salt).tolist() == [mix64(s, salt) for s in seeds.tolist()]
        for n in (1, 3, 10, len(ALL_STYLES)):
            assert choose(seeds, salt, n).tolist() == [mix64(s, salt) % n for s in seeds.tolist()]


def test_big_batch_equals_row_by_row(catalog):
    """A batch past VECTOR_MIN (numpy seeds) gives each row what render() gives it alone."""
    tr = Renderer(catalog).task_renderer("anli_r1")
    base = synthetic_rows(tr.task, n=3)
    rows = [(f"e{i}", base[i % 3][1]) for i in range(VECTOR_MIN + 10)]
    canons = [c for _, c in rows]
    cols = tr.render_batch(rows, split="train", fmt="zs_opt", seed=5, canonicals=canons)
    assert len(cols["inputs"]) == len(rows)
    for k in (0, 1, VECTOR_MIN, VECTOR_MIN + 9):
        one = tr.render(rows[k][0], {}, split="train", fmt="zs_opt", seed=5, canonical=canons[k])
        assert (one.inputs, one.targets, one.template_id, one.seed) == (
            cols["inputs"][k], cols["targets"][k], cols["template_id"][k], cols["seed"][k])  # fmt: skip
    assert len(set(cols["template_id"])) > 1


# ----------------------------------------------------------------------------- canonical fields, many at once


def _canon_or_error(tr, eid, raw):
    try:
        return tr.canonical(eid, raw, "train")
    except FlanDataError as e:
        return (type(e).__name__, str(e))


def test_canonical_many_equals_row_by_row(make_catalog, h):
    tr = Renderer(make_catalog()).task_renderer("toy")
    good = [(r["uid"], r) for r in h.toy_records(40)]
    many = tr.canonical_many(good, "train")
    assert many == [tr.canonical(e, r, "train") for e, r in good]
    assert [list(c) for c in many[:1]] == [["premise", "hypothesis", "answer", "options"]]
    bad_rows = [
        {"premise": "p", "hypothesis": "h", "label": 7},  # label out of range
        {"premise": "p", "hypothesis": "h", "label": -1},  # -1 is "no label", never the last option
        {"premise": None, "hypothesis": "h", "label": 0},  # null
        {"premise": "", "hypothesis": "h", "label": 0},  # empty is fine outside the target
        {"hypothesis": "h", "label": 0},  # missing field
        {"premise": 3, "hypothesis": "h", "label": 1},  # a number prints as text
        {"premise": True, "hypothesis": "h", "label": 1},  # a bool does not
        {"premise": "p", "hypothesis": "h", "label": True},
        {"premise": "p", "hypothesis": "h", "label": 1.0},
    ]
    for k, bad in enumerate(bad_rows):
        items = good[:5] + [(f"bad{k}", bad)] + good[5:9]
        got = tr.canonical_many(items, "train")
        want = [_canon_or_error(tr, e, r) for e, r in items]
        got = [(type(x).__name__, str(x)) if isinstance(x, Exception) else x for x in got]
        assert got == want, bad


def test_big_raw_batch_with_bad_records_same_as_row_by_row(make_catalog, h):
    """render_batch canonicalises a big batch of raw records block-wise: same rows,
    same errors (in order) as rendering each record alone."""
    tr = Renderer(make_catalog()).task_renderer("toy")
    items = [(r["uid"], r) for r in h.toy_records(VECTOR_MIN + 20)]
    items[3] = ("bad-a", {"premise": "p", "hypothesis": "h", "label": 9})
    items[40] = ("bad-b", {"premise": None, "hypothesis": "h", "label": 0})
    errs: list = []
    cols = tr.render_batch(items, split="train", fmt="zs_opt", seed=1, errors=errs)
    assert [i for i, _ in errs] == [3, 40]
    one_errs = []
    for k, (eid, raw) in enumerate(items):
        try:
            one = tr.render(eid, raw, split="train", fmt="zs_opt", seed=1)
        except FlanDataError as e:
            one_errs.append(str(e))
            continue
        j = cols["index"].index(k)
        assert (one.inputs, one.targets, one.seed) == (
            cols["inputs"][j],
            cols["targets"][j],
            cols["seed"][j],
        )
    assert one_errs == [str(e) for _, e in errs]
    with pytest.raises(FlanDataError, match="bad-a"):
        tr.render_batch(items, split="train", fmt="zs_opt", seed=1)
