"""Rendering: formats, options, few-shot composition, budgets, determinism, golden files.

Golden files: ``tests/golden/<task>.jsonl`` hold the rendered examples of every
sample task in every format it supports (seed 0, first records of the
validation split). Regenerate them after an intended change with::

    FLAN_UPDATE_GOLDEN=1 pytest tests/test_render.py -k golden

and review the diff like code.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flan_data import (
    Exemplar,
    FlanDataError,
    RecordError,
    RenderConfig,
    RenderedExample,
    Renderer,
    UnknownNameError,
    WhitespaceTokenizer,
    build_pool,
    render_task,
)
from flan_data.options import (
    END_PUNCT,
    MARKERS,
    START_PHRASES,
    OptionStyle,
    family_size,
    format_options,
)
from flan_data.render import is_fewshot_format, is_opt_format
from flan_data.seeding import derive_seed

GOLDEN = Path(__file__).resolve().parent / "golden"
GOLDEN_N = 2
GOLDEN_SEED = 0


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def toy(make_catalog):
    return make_catalog()


def recs_with_ids(h, n=12, prefix="t"):
    return [(f"{prefix}{i}", r) for i, r in enumerate(h.toy_records(n, prefix))]


def plain(cat, **kw):
    return Renderer(cat, RenderConfig(option_style="plain", **kw))


# ----------------------------------------------------------------------------- config and formats


def test_render_config_defaults():
    c = RenderConfig()
    assert (c.shots, c.budget, c.option_style) == (3, 1920, "random")
    assert isinstance(c.tokenizer, WhitespaceTokenizer)


@pytest.mark.parametrize(
    ("fmt", "opt", "fs"),
    [
        ("zs_opt", True, False),
        ("zs_noopt", False, False),
        ("fs_opt", True, True),
        ("fs_noopt", False, True),
        ("cot", True, False),
    ],
)
def test_format_predicates(fmt, opt, fs):
    assert is_opt_format(fmt) is opt and is_fewshot_format(fmt) is fs


def test_formats_and_eligible_templates(toy):
    tr = Renderer(toy).task_renderer("toy")
    assert tr.formats() == ("zs_opt", "zs_noopt", "fs_opt", "fs_noopt")
    assert [ct.spec.id for ct in tr.eligible("zs_opt")] == ["toy-01", "toy-02"]
    assert [ct.spec.id for ct in tr.eligible("fs_noopt")] == ["toy-01", "toy-02"]
    with pytest.raises(
        FlanDataError,
        match=r"task 'toy' has no chain-of-thought templates; formats: zs_opt, zs_noopt, fs_opt, fs_noopt",
    ):
        tr.eligible("cot")
    with pytest.raises(UnknownNameError, match="unknown format 'zs'"):
        tr.eligible("zs")
    with pytest.raises(
        UnknownNameError,
        match=r"unknown template 'toy-03'; did you mean: .*toy-01.* \(templates of task toy\)",
    ):
        tr.template("toy-03")


def test_formats_of_sample_tasks(catalog):
    r = Renderer(catalog)
    assert "cot" in r.task_renderer("cot_gsm8k").formats()
    assert "cot" not in r.task_renderer("anli_r1").formats()
    niv2 = r.task_renderer("task1388_cb_entailment")
    assert {ct.spec.kind for ct in niv2.eligible("fs_opt")} == {"few_shot"}
    assert {ct.spec.kind for ct in niv2.eligible("zs_opt")} == {"zero_shot"}


def test_few_shot_only_task_has_only_fs_formats(make_catalog, h):
    t = copy.deepcopy(h.TOY_TEMPLATES)
    t["sets"]["fsonly"] = {
        "kind": "few_shot",
        "templates": [
            {
                "id": "fso-01",
                "input": "{% for e in exemplars %}{{ e.premise }}\n{% endfor %}{{ premise }}{{ options_block }}",
                "target": "{{ answer }}",
            }
        ],
    }
    cat = make_catalog(templates=t, tasks=[dict(h.TOY_TASK, templates=["fsonly"])])
    assert Renderer(cat).task_renderer("toy").formats() == ("fs_opt", "fs_noopt")


def test_task_renderers_are_cached_per_spec(toy):
    r = Renderer(toy)
    assert r.task_renderer("toy") is r.task_renderer(toy.task("toy"))
    with pytest.raises(UnknownNameError, match="unknown task 'tyo'"):
        r.task_renderer("tyo")


# ----------------------------------------------------------------------------- canonical fields


def test_canonical_fields_and_options(toy, h):
    tr = Renderer(toy).task_renderer("toy")
    raw = h.toy_records(3)[2]
    c = tr.canonical("r2", raw)
    assert list(c.pop("options")) == ["yes", "maybe", "no"]
    assert c == {"premise": raw["premise"], "hypothesis": raw["hypothesis"], "answer": "no"}
    e = tr.exemplar("r2", raw)
    assert e.example_id == "r2" and e.fields["answer"] == "no"
    assert raw == h.toy_records(3)[2]  # the raw record is not modified


def test_options_from_a_field(make_catalog, h):
    task = dict(
        h.TOY_TASK,
        options={"field": "choices"},
        fields={"premise": "premise", "hypothesis": "hypothesis", "answer": "gold | trim"},
    )
    cat = make_catalog(tasks=[task])
    tr = Renderer(cat).task_renderer("toy")
    raw = {"premise": "p", "hypothesis": "h", "choices": ["red", 2], "gold": " 2 "}
    assert list(tr.canonical("x", raw)["options"]) == ["red", "2"]
    assert tr.canonical("x", raw)["answer"] == "2"
    with pytest.raises(
        RecordError,
        match=r"record 'x': options expression 'choices' gave \[\], expected a non-empty list",
    ):
        tr.canonical("x", dict(raw, choices=[]))
    with pytest.raises(
        RecordError, match=r"options expression 'choices' gave 'red', expected a non-empty list"
    ):
        tr.canonical("x", dict(raw, choices="red"))
    with pytest.raises(RecordError, match=r"missing field for 'options' \(choices\)"):
        tr.canonical("x", {k: v for k, v in raw.items() if k != "choices"})


def test_field_expression_failures_are_record_errors(make_catalog, h):
    task = dict(
        h.TOY_TASK,
        fields={
            "premise": "premise ~ sep",
            "hypothesis": "hypothesis.split(sep)",
            "answer": "options[label]",
        },
    )
    tr = Renderer(make_catalog(tasks=[task])).task_renderer("toy")
    with pytest.raises(
        RecordError,
        match=r"record 'x': field 'premise' \(premise ~ sep\) cannot be computed: 'sep' is undefined \(available fields: hypothesis, label, premise\)",
    ):
        tr.canonical("x", {"premise": "1", "hypothesis": "a b", "label": 0})
    with pytest.raises(
        RecordError,
        match=r"record 'x': field 'hypothesis' \(hypothesis.split\(sep\)\) failed: TypeError",
    ):
        tr.canonical("x", {"premise": "1", "hypothesis": "a b", "label": 0, "sep": 5})


def test_answer_without_options_is_free_text(make_catalog, h):
    task = {k: v for k, v in h.TOY_TASK.items() if k != "options"} | {
        "fields": {"premise": "premise", "hypothesis": "hypothesis", "answer": "'free ' ~ label"}
    }
    cat = make_catalog(tasks=[task])
    ex = (
        Renderer(cat)
        .task_renderer("toy")
        .render(
            "a", h.toy_records(1)[0], split="validation", fmt="zs_opt", seed=0, template_id="toy-02"
        )
    )
    assert ex.targets == "free 0" and ex.options is None
    assert ex.inputs == "Premise: Premise number 0 is here.\nHypothesis: Hypothesis 0."


# ----------------------------------------------------------------------------- zero-shot


def test_zs_opt_plain_exact_text(toy, h):
    tr = plain(toy).task_renderer("toy")
    raw = h.toy_records(2)[1]
    ex = tr.render("v1", raw, split="validation", fmt="zs_opt", seed=0, template_id="toy-01")
    assert (
        ex.inputs
        == "Premise number 1 is here.\nDoes it follow that Hypothesis 1.?\n\nOPTIONS:\n- yes\n- maybe\n- no"
    )
    assert ex.targets == "maybe"
    assert ex.options == ("yes", "maybe", "no")
    assert (ex.task, ex.collection, ex.format, ex.template_id, ex.example_id, ex.source_split) == (
        "toy",
        "flan2021",
        "zs_opt",
        "toy-01",
        "v1",
        "validation",
    )
    assert ex.seed == derive_seed(0, "toy", "validation", "v1")
    assert ex.fewshot_style is None and ex.exemplar_ids == ()


def test_zs_noopt_has_no_block_and_the_answer_text(toy, h):
    tr = Renderer(toy).task_renderer("toy")
    raw = h.toy_records(2)[1]
    o = tr.render("v1", raw, split="validation", fmt="zs_opt", seed=3, template_id="toy-01")
    n = tr.render("v1", raw, split="validation", fmt="zs_noopt", seed=3, template_id="toy-01")
    assert n.inputs == "Premise number 1 is here.\nDoes it follow that Hypothesis 1.?"
    assert n.targets == "maybe"
    assert o.inputs.startswith(n.inputs + "\n\n") and "maybe" in o.inputs
    assert n.options == ("yes", "maybe", "no")  # the options are recorded either way


def _family_blocks(options):
    """Every (block, targets) the randomized option family can give, built from its documented parts."""
    out = set()
    for start in START_PHRASES:
        for marker, target in MARKERS:
            for end in END_PUNCT:
                layouts = ("lines", "inline") if marker.startswith("(") else ("lines",)
                for layout in layouts:
                    out.add(
                        format_options(
                            options,
                            OptionStyle(
                                start=start, marker=marker, end=end, target=target, layout=layout
                            ),
                        )
                    )
    return out


def test_random_option_style_drives_block_and_letter_target(toy, h):
    tr = Renderer(toy).task_renderer("toy")
    raw = h.toy_records(3)[2]  # answer "no", the third option
    family = _family_blocks(("yes", "maybe", "no"))
    assert len(family) == family_size()
    seen_blocks, seen_letter = set(), False
    for i in range(60):
        ex = tr.render(f"id{i}", raw, split="train", fmt="zs_opt", seed=0, template_id="toy-02")
        head = "Premise: Premise number 2 is here.\nHypothesis: Hypothesis 2."
        assert ex.inputs.startswith(head)
        block = ex.inputs[len(head) :]
        match = [t for b, t in family if b == block]
        assert match, block  # a member of the family
        assert ex.targets in {t[2] for t in match}  # the target names the right option
        seen_blocks.add(block)
        seen_letter |= ex.targets != "no"
    assert (
        len(seen_blocks) > 20 and seen_letter
    )  # varied, and some styles answer with a marker such as (C)


def test_inversion_template_keeps_the_answer_text(make_catalog, h):
    cat = make_catalog(tasks=[dict(h.TOY_TASK, templates=["toy", "toy_ii"])])
    tr = Renderer(cat).task_renderer("toy")
    for i in range(
        30
    ):  # whatever option style is drawn, a template without the block gets the answer text
        ex = tr.render(
            f"x{i}",
            h.toy_records(1)[0],
            split="train",
            fmt="zs_opt",
            seed=0,
            template_id="toy_ii-01",
        )
        assert ex.inputs == "Premise number 0 is here.\nWrite a hypothesis; relation: yes."
        assert ex.targets == "Hypothesis 0."


def test_template_needing_a_field_the_task_lacks(make_catalog, h):
    t = copy.deepcopy(h.TOY_TEMPLATES)
    t["sets"]["toy"]["templates"][0]["input"] = "{{ premise }} {{ title }}{{ options_block }}"
    tr = Renderer(make_catalog(templates=t)).task_renderer("toy")
    with pytest.raises(
        RecordError,
        match=r"record 'a': template 'toy-01' needs field\(s\) title \(available fields: answer, hypothesis, options, premise\)",
    ):
        tr.render(
            "a", h.toy_records(1)[0], split="train", fmt="zs_opt", seed=0, template_id="toy-01"
        )


def test_precomputed_canonical_fields_skip_the_mapping(toy, h):
    tr = plain(toy).task_renderer("toy")
    canon = {"premise": "P", "hypothesis": "H", "answer": "yes", "options": ["yes", "no"]}
    ex = tr.render(
        "a", {}, split="train", fmt="zs_opt", seed=0, template_id="toy-02", canonical=canon
    )
    assert ex.inputs == "Premise: P\nHypothesis: H\n\nOPTIONS:\n- yes\n- no" and ex.targets == "yes"


def test_cot_format(catalog):
    ex = next(render_task(catalog, "cot_gsm8k", fmt="cot", n=1))
    assert ex.format == "cot" and ex.template_id.startswith("cot-")
    assert ex.options is None
    src = next(
        render_task(catalog, "cot_creak", fmt="cot", n=1, config=RenderConfig(option_style="plain"))
    )
    assert "OPTIONS:\n- yes\n- no" in src.inputs and src.options == ("yes", "no")


# ----------------------------------------------------------------------------- few-shot


def test_few_shot_composition_follows_the_documented_formula(toy, h):
    r = plain(toy)
    tr = r.task_renderer("toy")
    pool = build_pool(tr, recs_with_ids(h))
    raw = h.toy_records(5, "v")[4]
    ex = tr.render(
        "v4", raw, split="validation", fmt="fs_opt", seed=1, pool=pool, template_id="toy-01"
    )
    assert ex.fewshot_style == "st-qa" and len(ex.exemplar_ids) == 3
    by_id = dict(recs_with_ids(h))

    def zs(eid, rec):
        z = tr.render(eid, rec, split="validation", fmt="zs_opt", seed=1, template_id="toy-01")
        return z.inputs, z.targets

    parts = [
        "Q: " + zs(e, by_id[e])[0] + "\n" + "A: " + zs(e, by_id[e])[1] for e in ex.exemplar_ids
    ]
    qi, qt = zs("v4", raw)
    assert ex.inputs == "\n\n".join([*parts, "Q: " + qi + "\n" + "A:"])
    assert ex.targets == qt


def test_few_shot_never_uses_the_example_itself(toy, h):
    tr = Renderer(toy, RenderConfig(shots=5)).task_renderer("toy")
    recs = recs_with_ids(h, n=6)
    pool = build_pool(tr, recs)
    for eid, rec in recs:
        ex = tr.render(eid, rec, split="train", fmt="fs_noopt", seed=0, pool=pool)
        assert eid not in ex.exemplar_ids and len(ex.exemplar_ids) == 5
        assert "OPTIONS" not in ex.inputs


def test_shots_zero_gives_the_query_alone(toy, h):
    tr = plain(toy, shots=0).task_renderer("toy")
    pool = build_pool(tr, recs_with_ids(h))
    ex = tr.render(
        "q",
        h.toy_records(1)[0],
        split="train",
        fmt="fs_opt",
        seed=0,
        pool=pool,
        template_id="toy-02",
    )
    assert ex.exemplar_ids == ()
    assert (
        ex.inputs
        == "Q: Premise: Premise number 0 is here.\nHypothesis: Hypothesis 0.\n\nOPTIONS:\n- yes\n- maybe\n- no\nA:"
    )


@pytest.mark.parametrize("budget", [1, 25, 40, 60, 1000])
def test_few_shot_budget_drops_exemplars_from_the_end(toy, h, budget):
    tok = WhitespaceTokenizer()
    tr = plain(toy, budget=budget).task_renderer("toy")
    full = plain(toy).task_renderer("toy")
    pool = build_pool(tr, recs_with_ids(h))
    raw = h.toy_records(1, "q")[0]
    ex = tr.render("q", raw, split="train", fmt="fs_noopt", seed=2, pool=pool)
    ref = full.render("q", raw, split="train", fmt="fs_noopt", seed=2, pool=pool)
    assert (
        ex.exemplar_ids == ref.exemplar_ids[: len(ex.exemplar_ids)]
    )  # a prefix of the unbounded choice
    if ex.exemplar_ids:
        assert tok.count(ex.inputs) + tok.count(ex.targets) <= budget
    if len(ex.exemplar_ids) < len(ref.exemplar_ids):  # one more would not have fit
        more = plain(toy, budget=budget + 10_000).task_renderer("toy")
        assert (
            tok.count(
                more.render("q", raw, split="train", fmt="fs_noopt", seed=2, pool=pool).inputs
            )
            > budget
        )
    assert ex.inputs.endswith("A:") and ex.template_id == ref.template_id


def test_few_shot_without_a_pool(toy, h):
    tr = Renderer(toy).task_renderer("toy")
    with pytest.raises(
        FlanDataError,
        match=r"task 'toy': few-shot format 'fs_opt' needs an exemplar pool \(the train split\)",
    ):
        tr.render("a", h.toy_records(1)[0], split="train", fmt="fs_opt", seed=0)


FS_TEMPLATE = {
    "kind": "few_shot",
    "templates": [
        {
            "id": "own-01",
            "input": "{{ definition }}\n\n{% for ex in exemplars %}In: {{ ex.input }}\nOut: {{ ex.output }}\n\n{% endfor %}In: {{ input }}\nOut:",
            "target": "{{ output }}",
        }
    ],
}


@pytest.fixture
def own_fs(make_catalog, h):
    t = copy.deepcopy(h.TOY_TEMPLATES)
    t["sets"]["own"] = FS_TEMPLATE
    t["sets"]["own_zs"] = {
        "templates": [
            {"id": "own_zs-01", "input": "{{ definition }} {{ input }}", "target": "{{ output }}"}
        ]
    }
    task = {
        "name": "nv",
        "source": {"kind": "jsonl", "path": "/nonexistent"},
        "fields": {
            "definition": "definition",
            "input": "input",
            "output": "output",
            "positive_examples": "positive_examples",
        },
        "templates": ["own_zs", "own"],
        "exemplars": "field:positive_examples",
    }
    cat = make_catalog(templates=t, tasks=[task], samples={})
    rec = {"definition": "Add one.", "input": "4", "output": "5",
           "positive_examples": [{"input": str(i), "output": str(i + 1), "explanation": ""} for i in range(5)]}  # fmt: skip
    return cat, rec


def test_exemplars_from_a_field(own_fs):
    cat, rec = own_fs
    tr = Renderer(cat, RenderConfig(shots=2)).task_renderer("nv")
    ex = tr.render("e1", rec, split="train", fmt="fs_noopt", seed=0)
    assert ex.template_id == "own-01" and ex.fewshot_style is None
    assert ex.exemplar_ids == ("positive_examples[0]", "positive_examples[1]")
    assert ex.inputs == "Add one.\n\nIn: 0\nOut: 1\n\nIn: 1\nOut: 2\n\nIn: 4\nOut:"
    assert ex.targets == "5"


def test_exemplars_from_a_field_are_trimmed_to_the_budget(own_fs):
    cat, rec = own_fs
    tr = Renderer(cat, RenderConfig(shots=5, budget=14)).task_renderer("nv")
    ex = tr.render("e1", rec, split="train", fmt="fs_noopt", seed=0)
    assert len(ex.exemplar_ids) == 2  # 2 words + 4 per exemplar + 4 + target 1
    tiny = Renderer(cat, RenderConfig(shots=5, budget=1)).task_renderer("nv")
    assert (
        tiny.render("e1", rec, split="train", fmt="fs_noopt", seed=0).inputs
        == "Add one.\n\nIn: 4\nOut:"
    )
    zero = Renderer(cat, RenderConfig(shots=0)).task_renderer("nv")
    assert zero.render("e1", rec, split="train", fmt="fs_noopt", seed=0).exemplar_ids == ()


def test_exemplar_field_that_is_not_a_list(own_fs):
    cat, rec = own_fs
    tr = Renderer(cat).task_renderer("nv")
    with pytest.raises(
        RecordError, match=r"record 'e1': exemplar field 'positive_examples' is not a list"
    ):
        tr.render("e1", dict(rec, positive_examples="none"), split="train", fmt="fs_opt", seed=0)


def test_zero_shot_template_in_fs_format_with_exemplar_field(make_catalog, h, own_fs):
    # exemplars from a field, zero-shot templates only: the field's exemplars are
    # rendered with the query's template and joined by a few-shot style
    _, rec = own_fs
    t = copy.deepcopy(h.TOY_TEMPLATES)
    t["sets"]["io"] = {
        "templates": [{"id": "io-01", "input": "{{ input }}?", "target": "{{ output }}"}]
    }
    task = {"name": "nv", "source": {"kind": "jsonl", "path": "/x"}, "templates": ["io"], "exemplars": "field:positive_examples",
            "fields": {"input": "input", "output": "output", "positive_examples": "positive_examples"}}  # fmt: skip
    cat = make_catalog(subdir="c2", templates=t, samples={}, tasks=[task])
    tr = Renderer(cat, RenderConfig(shots=2)).task_renderer("nv")
    ex = tr.render("e1", rec, split="train", fmt="fs_noopt", seed=0)
    assert ex.fewshot_style == "st-qa" and ex.template_id == "io-01"
    assert ex.exemplar_ids == ("positive_examples[0]", "positive_examples[1]")
    assert ex.inputs == "Q: 0?\nA: 1\n\nQ: 1?\nA: 2\n\nQ: 4?\nA:"
    assert ex.targets == "5"


def test_few_shot_template_with_a_pool(make_catalog, h):
    t = copy.deepcopy(h.TOY_TEMPLATES)
    t["sets"]["fs"] = {
        "kind": "few_shot",
        "templates": [
            {
                "id": "fs-own",
                "input": "{% for e in exemplars %}{{ e.premise }} => {{ e.answer }}\n{% endfor %}{{ premise }} =>{{ options_block }}",
                "target": "{{ answer }}",
            }
        ],
    }
    cat = make_catalog(templates=t, tasks=[dict(h.TOY_TASK, templates=["toy", "fs"])])
    tr = plain(cat).task_renderer("toy")
    pool = build_pool(tr, recs_with_ids(h))
    ex = tr.render("q", h.toy_records(1, "q")[0], split="train", fmt="fs_opt", seed=0, pool=pool)
    assert ex.template_id == "fs-own" and len(ex.exemplar_ids) == 3 and ex.fewshot_style is None
    lines = ex.inputs.split("\n")
    assert len(lines) == 3 + 1 + 5  # three exemplars, the query, a blank line and the OPTIONS block
    with pytest.raises(FlanDataError, match=r"few-shot templates need an exemplar pool"):
        tr.render("q", h.toy_records(1, "q")[0], split="train", fmt="fs_opt", seed=0)


def test_build_pool_limit(toy, h):
    tr = Renderer(toy).task_renderer("toy")
    pool = build_pool(tr, recs_with_ids(h), limit=4)
    assert [e.example_id for e in pool] == ["t0", "t1", "t2", "t3"]
    assert pool[1].fields["answer"] == "maybe"


# ----------------------------------------------------------------------------- render_task


def test_render_task_reads_the_split_and_counts(toy):
    exs = list(render_task(toy, "toy", fmt="fs_opt", n=3, seed=0))
    assert [e.example_id for e in exs] == ["validation-0", "validation-1", "validation-2"]
    assert all(e.source_split == "validation" and e.exemplar_ids for e in exs)
    assert all(i.startswith("train-") for e in exs for i in e.exemplar_ids)
    tr_ex = list(render_task(toy, "toy", fmt="zs_noopt", n=100, split="train"))
    assert len(tr_ex) == 12
    small = list(
        render_task(toy, "toy", fmt="fs_noopt", n=1, pool_size=2, config=RenderConfig(shots=5))
    )
    # a pool of 2 is a seeded sample of the whole train split (not its first 2 records)
    pool_ids = set(small[0].exemplar_ids)
    assert 1 <= len(pool_ids) <= 2 and all(i.startswith("train-") for i in pool_ids)
    again = list(
        render_task(toy, "toy", fmt="fs_noopt", n=1, pool_size=2, config=RenderConfig(shots=5))
    )
    assert again[0].exemplar_ids == small[0].exemplar_ids


def test_render_task_with_a_given_renderer(toy):
    r = plain(toy)
    a = list(render_task(toy, "toy", n=2, renderer=r))
    b = list(render_task(toy, "toy", n=2, config=RenderConfig(option_style="plain")))
    assert a == b


@pytest.mark.parametrize("fmt", ["zs_opt", "zs_noopt", "fs_opt", "fs_noopt"])
def test_every_sample_task_renders(catalog, sample_task, fmt):
    exs = list(render_task(catalog, sample_task, fmt=fmt, n=3, seed=0))
    assert len(exs) == 3
    for ex in exs:
        assert isinstance(ex, RenderedExample)
        assert ex.inputs.strip() and ex.targets.strip()
        assert ex.inputs == ex.inputs.strip() and ex.targets == ex.targets.strip()
        if fmt.endswith("noopt"):
            assert "OPTIONS:" not in ex.inputs


# ----------------------------------------------------------------------------- determinism


ids_st = st.lists(
    st.text(alphabet="abcdefghij0123456789-_", min_size=1, max_size=8),
    min_size=3,
    max_size=6,
    unique=True,
)
fmt_st = st.sampled_from(["zs_opt", "zs_noopt", "fs_opt", "fs_noopt"])


@pytest.fixture(scope="module")
def arc(catalog):
    """arc_challenge's validation records, train pool and two independent renderers."""
    recs = _raw_validation(catalog, "arc_challenge")
    return (
        recs,
        _pool(catalog, "arc_challenge"),
        Renderer(catalog).task_renderer("arc_challenge"),
        Renderer(catalog).task_renderer("arc_challenge"),
    )


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**40), ids=ids_st, fmt=fmt_st)
def test_same_seed_same_text(arc, seed, ids, fmt):
    recs, pool, tr, fresh = arc
    a = [
        tr.render(i, r, split="validation", fmt=fmt, seed=seed, pool=pool)
        for i, r in zip(ids, recs)
    ]
    b = [
        fresh.render(i, r, split="validation", fmt=fmt, seed=seed, pool=pool)
        for i, r in zip(ids, recs)
    ]  # other caches
    assert a == b
    batch = tr.render_batch(list(zip(ids, recs)), split="validation", fmt=fmt, seed=seed, pool=pool)
    assert batch["inputs"] == [e.inputs for e in a] and batch["targets"] == [
        e.targets for e in a
    ]  # batch == per row
    assert batch["exemplar_ids"] == [list(e.exemplar_ids) for e in a] and batch["seed"] == [
        e.seed for e in a
    ]


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**40),
    ids=ids_st,
    which=st.integers(0, 7),
    new_id=st.text(alphabet="xyz", min_size=9, max_size=9),
    fmt=fmt_st,
)
def test_changing_one_id_leaves_the_other_examples_alone(arc, seed, ids, which, new_id, fmt):
    recs, pool, tr, _ = arc
    which %= len(ids)
    before = [
        tr.render(i, r, split="validation", fmt=fmt, seed=seed, pool=pool)
        for i, r in zip(ids, recs)
    ]
    ids2 = list(ids)
    ids2[which] = new_id
    after = [
        tr.render(i, r, split="validation", fmt=fmt, seed=seed, pool=pool)
        for i, r in zip(ids2, recs)
    ]
    for k, (x, y) in enumerate(zip(before, after)):
        if k != which:
            assert x == y


@pytest.mark.parametrize("fmt", ["zs_opt", "fs_opt"])
def test_render_batch_reports_bad_records_and_keeps_the_rest(toy, h, fmt):
    tr = Renderer(toy).task_renderer("toy")
    items = recs_with_ids(h, n=5, prefix="b")
    items[1] = ("b1", {k: v for k, v in items[1][1].items() if k != "hypothesis"})
    items[3] = ("b3", dict(items[3][1], label=9))
    pool = build_pool(tr, recs_with_ids(h))
    errors: list = []
    cols = tr.render_batch(items, split="train", fmt=fmt, seed=0, pool=pool, errors=errors)
    assert cols["index"] == [0, 2, 4] and cols["example_id"] == ["b0", "b2", "b4"]
    assert [(i, e.record_id) for i, e in errors] == [(1, "b1"), (3, "b3")]
    assert all(isinstance(e, RecordError) for _, e in errors)
    single = [
        tr.render(eid, rec, split="train", fmt=fmt, seed=0, pool=pool)
        for eid, rec in (items[0], items[2], items[4])
    ]
    assert cols["inputs"] == [e.inputs for e in single]
    with pytest.raises(RecordError, match="record 'b1'"):
        tr.render_batch(items, split="train", fmt=fmt, seed=0, pool=pool)


@pytest.mark.parametrize("fmt", ["zs_noopt", "fs_noopt"])
def test_render_batch_with_precomputed_fields_missing_one(toy, h, fmt):
    # canonical fields given by the caller skip the mapping; one lacks a field the
    # template needs, so its group falls back to per-row rendering to find it
    tr = plain(toy).task_renderer("toy")
    pool = build_pool(tr, recs_with_ids(h))
    items = recs_with_ids(h, n=4, prefix="c")
    canons = [tr.canonical(eid, rec) for eid, rec in items]
    del canons[2]["hypothesis"]
    errors: list = []
    cols = tr.render_batch(
        items,
        split="train",
        fmt=fmt,
        seed=0,
        pool=pool,
        template_id="toy-01",
        canonicals=canons,
        errors=errors,
    )
    assert cols["index"] == [0, 1, 3]
    assert [(i, e.record_id) for i, e in errors] == [(2, "c2")]
    assert "template 'toy-01' needs field(s) hypothesis" in str(errors[0][1])


def test_render_batch_exemplar_field_errors(own_fs, make_catalog, h):
    _, rec = own_fs
    t = copy.deepcopy(h.TOY_TEMPLATES)
    t["sets"]["io"] = {
        "templates": [{"id": "io-01", "input": "{{ input }}?", "target": "{{ output }}"}]
    }
    task = {"name": "nv", "source": {"kind": "jsonl", "path": "/x"}, "templates": ["io"], "exemplars": "field:positive_examples",
            "fields": {"input": "input", "output": "output", "positive_examples": "positive_examples"}}  # fmt: skip
    tr = Renderer(make_catalog(subdir="c3", templates=t, samples={}, tasks=[task])).task_renderer(
        "nv"
    )
    # a string where the exemplar list belongs (a null is refused earlier, as a null value)
    items = [("a", rec), ("b", dict(rec, positive_examples="nope")), ("c", rec)]
    errors: list = []
    cols = tr.render_batch(items, split="train", fmt="fs_opt", seed=0, errors=errors)
    assert cols["example_id"] == ["a", "c"] and [(i, e.record_id) for i, e in errors] == [(1, "b")]
    with pytest.raises(
        RecordError, match="record 'b': exemplar field 'positive_examples' is not a list"
    ):
        tr.render_batch(items, split="train", fmt="fs_opt", seed=0)


def test_render_batch_own_few_shot_errors(own_fs):
    cat, rec = own_fs
    tr = Renderer(cat).task_renderer("nv")
    items = [("a", rec), ("b", dict(rec, positive_examples="x"))]
    errors: list = []
    cols = tr.render_batch(items, split="train", fmt="fs_noopt", seed=0, errors=errors)
    assert cols["example_id"] == ["a"] and errors[0][0] == 1


def test_options_field_that_is_null(make_catalog, h):
    cat = make_catalog(tasks=[dict(h.TOY_TASK, options={"field": "choices"})])
    tr = Renderer(cat).task_renderer("toy")
    with pytest.raises(
        RecordError, match=r"options expression 'choices' gave None, expected a non-empty list"
    ):
        tr.canonical("x", dict(h.toy_records(1)[0], choices=None))


def test_changing_a_pool_id_does_not_change_the_text(catalog):
    tr = Renderer(catalog).task_renderer("bool_q")
    pool = _pool(catalog, "bool_q")
    q_id, q = "validation-0", _raw_validation(catalog, "bool_q")[0]
    ex = tr.render(q_id, q, split="validation", fmt="fs_opt", seed=4, pool=pool)
    renamed = [Exemplar(e.example_id + "-renamed", e.fields) for e in pool]
    ex2 = tr.render(q_id, q, split="validation", fmt="fs_opt", seed=4, pool=renamed)
    assert (ex2.inputs, ex2.targets, ex2.template_id) == (ex.inputs, ex.targets, ex.template_id)
    assert ex2.exemplar_ids == tuple(i + "-renamed" for i in ex.exemplar_ids)


def test_run_seed_changes_the_choices(catalog):
    a = [
        (e.template_id, e.inputs)
        for e in render_task(catalog, "anli_r1", fmt="zs_opt", n=12, seed=0)
    ]
    b = [
        (e.template_id, e.inputs)
        for e in render_task(catalog, "anli_r1", fmt="zs_opt", n=12, seed=1)
    ]
    assert a != b
    used = {
        e.template_id
        for s in range(10)
        for e in render_task(catalog, "anli_r1", fmt="zs_opt", n=12, seed=s)
    }
    assert len(used) >= 8  # the seeded choice spreads over the templates


def test_split_and_task_are_part_of_the_seed(catalog):
    tr = Renderer(catalog).task_renderer("anli_r1")
    rec = _raw_validation(catalog, "anli_r1")[0]
    a = tr.render("x", rec, split="validation", fmt="zs_opt", seed=0)
    b = tr.render("x", rec, split="train", fmt="zs_opt", seed=0)
    assert a.seed != b.seed and a.seed == derive_seed(0, "anli_r1", "validation", "x")


def test_rendering_is_the_same_in_another_process(catalog):
    code = (
        "import json; from flan_data import Catalog, render_task\n"
        "cat = Catalog.load()\n"
        "print(json.dumps([e.to_dict() for e in render_task(cat, 'anli_r1', fmt='fs_opt', n=2, seed=9)]))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "777"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    here = [e.to_dict() for e in render_task(catalog, "anli_r1", fmt="fs_opt", n=2, seed=9)]
    assert json.loads(out) == here


def _raw_validation(catalog, task):
    from flan_data import open_task_source

    return [r for _, r in open_task_source(catalog, catalog.task(task)).read("validation")]


def _pool(catalog, task):
    from flan_data import open_task_source

    tr = Renderer(catalog).task_renderer(task)
    return build_pool(tr, open_task_source(catalog, catalog.task(task)).read("train"))


# ----------------------------------------------------------------------------- golden files


def golden_rows(catalog, task: str) -> list[dict]:
    tr = Renderer(catalog).task_renderer(task)
    rows = []
    for fmt in tr.formats():
        rows += [
            e.to_dict() for e in render_task(catalog, task, fmt=fmt, n=GOLDEN_N, seed=GOLDEN_SEED)
        ]
    return rows


def test_golden(catalog, sample_task):
    path = GOLDEN / f"{sample_task}.jsonl"
    rows = golden_rows(catalog, sample_task)
    if os.environ.get("FLAN_UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(
            "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows),
            encoding="utf-8",
        )
    if not path.is_file():
        pytest.fail(
            f"no golden file {path}; create it with FLAN_UPDATE_GOLDEN=1 pytest tests/test_render.py -k golden"
        )
    expected = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [(r["format"], r["example_id"]) for r in rows] == [
        (r["format"], r["example_id"]) for r in expected
    ]
    for got, want in zip(rows, expected):
        assert got == want, (
            f"{sample_task} {want['format']} {want['example_id']} differs from {path.name}"
        )


def test_golden_files_are_all_used(h):
    if not GOLDEN.is_dir():
        pytest.skip("no golden files yet")
    stale = {p.stem for p in GOLDEN.glob("*.jsonl")} - set(h.SAMPLE_TASKS)
    assert not stale, f"golden files for tasks no test renders: {sorted(stale)}"


def test_renderer_keeps_a_bounded_number_of_task_renderers_most_recent_first():
    from flan_data import Catalog
    from flan_data.render import Renderer

    cat = Catalog.load()
    r = Renderer(cat)
    r.max_tasks = 3
    names = sorted(cat.tasks)[:5]
    first = r.task_renderer(names[0])
    for n in names[1:3]:
        r.task_renderer(n)
    assert r.task_renderer(names[0]) is first  # kept, and now the most recent
    for n in names[3:]:
        r.task_renderer(n)
    assert list(r._tasks) == [names[0], names[3], names[4]]
    r.task_renderer(names[1])  # rebuilt: it was dropped
    assert list(r._tasks) == [names[3], names[4], names[1]]


@pytest.mark.parametrize("columnar", [False, True])
def test_a_field_over_the_sandbox_size_is_a_record_error_naming_the_field(catalog, columnar):
    """A field value longer than the sandbox allows is the record's fault: a
    RecordError naming task, record, split and field, with a countable reason
    (it used to escape as an AttributeError from ``canonical``)."""
    from flan_data.errors import TemplateLimitError
    from flan_data.templates import TemplateEngine, TemplateLimits

    eng = TemplateEngine(TemplateLimits(sequence_len=40, output_chars=1000))
    tr = Renderer(catalog, engine=eng).task_renderer("adversarial_qa_dbert_generate_question")
    long = {"inputs_pretokenized": "  " + "y" * 80 + "  ", "targets_pretokenized": " a "}
    short = {"inputs_pretokenized": " y ", "targets_pretokenized": " a "}
    items = [(f"r{i}", long if i % 3 == 0 else short) for i in range(300)]
    errors: list = []
    out = tr.render_batch(items, split="train", fmt="zs_noopt", seed=0, errors=errors,
                          columnar=columnar)  # fmt: skip
    assert [i for i, _ in errors] == list(range(0, 300, 3))
    assert len(out["inputs"]) == 200
    e = errors[0][1]
    assert isinstance(e, RecordError) and not isinstance(e, TemplateLimitError)
    assert (e.task, e.record_id, e.split, e.field) == (tr.task.name, "r0", "train", "inputs")
    assert e.reason == "inputs over the template sequence size limit"
    assert "sequence size limit" in str(e) and "'inputs'" in str(e)
    with pytest.raises(RecordError, match="record 'r0'.*sequence size limit"):
        tr.canonical("r0", long, "train")
    # a limit error raised anywhere else carries a record error's attributes too
    lim = TemplateLimitError("template exceeds the output size limit", "output size")
    assert (lim.split, lim.field, lim.reason) == (
        None,
        None,
        "template exceeds the output size limit",
    )
