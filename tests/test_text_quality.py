"""Rendered text has none of the issue-11 artefacts: every sample task, every format, several seeds.

Patterns (flan_data.textcheck): stacked cues, doubled punctuation from option
styles, choice words in *_noopt renders, CoT targets that do not end in the
answer text, CoT questions that lost their inline options.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flan_data import Catalog
from flan_data.render import RenderConfig, Renderer, build_pool
from flan_data.sources import open_task_source
from flan_data.textcheck import PATTERNS, row_findings

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SEEDS = range(4)


def _findings(tr, source: str, dirs=None, rows: int = 6):
    src = open_task_source(tr.catalog, tr.task, source, dirs)
    splits = src.splits()
    split = "validation" if "validation" in splits else splits[0]
    items = [r for _, r in zip(range(rows), src.read(split))]
    pool = build_pool(tr, src.read("train"), limit=100) if "train" in splits else None
    canons = [tr.canonical(eid, raw) for eid, raw in items]
    by_id = {e.example_id: e.fields for e in pool or ()}
    out = []
    n = 0
    for fmt in tr.formats():
        for seed in SEEDS:
            cols = tr.render_batch(
                items, split=split, fmt=fmt, seed=seed, pool=pool, canonicals=canons
            )
            for j, i in enumerate(cols["index"]):
                n += 1
                exs = [by_id[e] for e in cols["exemplar_ids"][j] if e in by_id]
                for pat, ev in row_findings(tr.task.name, fmt, cols["inputs"][j], cols["targets"][j],
                                            canons[i], items[i][1], exs):  # fmt: skip
                    out.append(f"{pat}: {tr.task.name} {fmt} seed {seed} {cols['template_id'][j]} "
                               f"{cols['fewshot_style'][j]}: {ev!r}")  # fmt: skip
    return out, n


CAT = Catalog.load()
SAMPLE_TASKS = sorted(t.name for t in CAT.tasks.values() if t.sample is not None)


@pytest.mark.parametrize("task", SAMPLE_TASKS)
def test_sample_task_renders_have_no_text_artefacts(task):
    tr = Renderer(CAT, RenderConfig()).task_renderer(task)
    found, n = _findings(tr, "sample")
    assert n >= len(tr.formats()) * len(SEEDS)
    assert found == [], "\n".join(found[:10])


def test_patterns_are_detected_on_known_bad_rows():
    """The checker itself can fail: each pattern on a hand-made bad row."""
    canon = {"options": ("It holds less heat.", "no"), "answer": "no"}
    assert [p for p, _ in row_findings("t", "fs_opt", "Q: Q: x\nA:", "no", canon, {})] == [
        "stacked_cue"
    ]
    assert [p for p, _ in row_findings("t", "zs_opt", "x\n- It holds less heat..\n- no.", "no", canon, {})] == [
        "doubled_option_punct"
    ]  # fmt: skip
    assert [p for p, _ in row_findings("t", "zs_noopt", "Pick the ending: x", "no", canon, {})] == [
        "noopt_choice_words"
    ]
    cot = {"answer": "yes"}
    assert [
        p for p, _ in row_findings("t", "cot", "x", "Because. Final answer: (1).", cot, {})
    ] == ["cot_target_no_answer"]
    assert row_findings("t", "cot", "x", "Because. So the answer is yes.", cot, {}) == []
    marker = {"answer": "(C)"}
    assert [p for p, _ in row_findings("t", "cot", "x", "So the answer is (C).", marker, {})] == [
        "cot_answer_is_marker"
    ]
    q = {"question": "Which?\nOptions:\n- (A) a\n- (B) b"}
    assert [p for p, _ in row_findings("cot_qasc", "cot", "Which?", "So the answer is a.", {"answer": "a"}, q)] == [
        "cot_inline_options_missing"
    ]  # fmt: skip
    assert set(PATTERNS) >= {"stacked_cue", "doubled_option_punct", "noopt_choice_words"}


REAL = [
    ("niv2", SHARED / "niv2" / "tasks", lambda t, d: (d / f"{t.source.path}.json").is_file()),
    ("cot", SHARED / "flan_cot", lambda t, d: (d / t.source.path).is_file()),
]


@pytest.mark.parametrize(("collection", "folder", "present"), REAL, ids=[r[0] for r in REAL])
def test_real_shared_files_render_without_text_artefacts(collection, folder, present):
    if not folder.is_dir():
        pytest.skip(f"{folder} not present (no ../shared)")
    tasks = [t for t in CAT.tasks.values() if t.collection == collection and present(t, folder)]
    assert tasks, f"no {collection} task reads a file in {folder}"
    r = Renderer(CAT, RenderConfig())
    found, n = [], 0
    for t in tasks:
        f, k = _findings(r.task_renderer(t), "auto", {collection: folder}, rows=4)
        found += f
        n += k
    assert n > 0
    assert found == [], "\n".join(found[:10])


DATASET_SETS = {
    "openbookqa": "openbookqa",
    "piqa": "piqa",
    "coqa": "coqa",
    "squad_v2_ii": "squad_v2_ii",
    "record": "record",
    "winogrande": "winogrande",
    "piqa_ii": "piqa_ii",
    "openbookqa_ii": "openbookqa_ii",
}


@pytest.mark.parametrize(("task", "set_name"), sorted(DATASET_SETS.items()))
def test_misfitting_datasets_have_their_own_template_sets(task, set_name):
    assert CAT.task(task).templates == (set_name,)
    ids = CAT.template_sets[set_name]
    assert len(ids) >= 10
    inputs = [CAT.templates[i].input for i in ids]
    assert len(set(inputs)) == len(inputs)


def test_squad_v2_ii_never_asks_for_a_question_answered_by_unanswerable():
    tr = Renderer(CAT, RenderConfig()).task_renderer("squad_v2_ii")
    for answer in ("unanswerable", "the Seine"):
        canon = {"context": "Paris lies on a river.", "question": "Which river?", "answer": answer}
        for ct in tr.templates:
            ex = tr.render("x", {}, split="validation", fmt="zs_noopt", seed=0,
                           template_id=ct.spec.id, canonical=canon)  # fmt: skip
            assert "unanswerable" not in ex.inputs, (ct.spec.id, ex.inputs)
            assert ("the Seine" in ex.inputs) is (answer == "the Seine"), (ct.spec.id, ex.inputs)
            assert "Paris lies on a river." in ex.inputs and "\n\n\n" not in ex.inputs


def test_openbookqa_never_says_the_answer_is_in_the_context():
    for i in CAT.template_sets["openbookqa"]:
        text = CAT.templates[i].input.lower()
        assert "in the context" not in text and "in the passage" not in text, i
