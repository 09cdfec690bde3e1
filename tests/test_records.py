"""Record rules (filter / explode / sample_turn), split slices and bad values.

Fixtures are written in each dataset's real schema (HF ``save_to_disk`` folders
made in ``tmp_path``); nothing reaches the network.
"""

from __future__ import annotations

import copy
import json
import math

import pytest

from flan_data import Catalog
from flan_data.errors import CatalogError, RecordError
from flan_data.export import export_mixture
from flan_data.records import apply_rules, candidate_turns, compile_rules
from flan_data.render import Renderer, bad_value
from flan_data.sources import open_source, open_task_source
from flan_data.sources.base import parse_split
from flan_data.specs import RecordRules, SampleTurn, SourceSpec


def _ids(src, split="train"):
    return [eid for eid, _ in src.read(split)]


# ----------------------------------------------------------------------------- the rules


def test_filter_keeps_truthy_records_in_order():
    rules = compile_rules(RecordRules(filter="label >= 0 and premise"))
    recs = [("a", {"label": 0, "premise": "x"}), ("b", {"label": -1, "premise": "y"}),
            ("c", {"label": 2, "premise": ""}), ("d", {"label": 1, "premise": "z"})]  # fmt: skip
    assert [e for e, _ in rules.apply(recs, task="t", split="train")] == ["a", "d"]
    assert rules.dropped == {"filter": 2}


def test_filter_on_a_missing_field_names_task_split_record():
    rules = compile_rules(RecordRules(filter="label >= 0"))
    with pytest.raises(RecordError, match=r"task 'snli', record 'r7': record rule filter .*'label' is undefined.*split 'train'"):  # fmt: skip
        list(rules.apply([("r7", {"lbl": 1})], task="snli", split="train"))


def test_explode_zips_lists_with_stable_ids():
    rules = compile_rules(
        RecordRules(explode={"question": "questions", "answer": "orig_answers.texts"})
    )
    rec = {"questions": ["q1", "q2", "q3"], "orig_answers": {"texts": ["a1", "a2", "a3"]}, "context": "c"}  # fmt: skip
    out = list(rules.apply([("d9", rec)], task="quac", split="train"))
    assert [e for e, _ in out] == ["d9#0", "d9#1", "d9#2"]
    assert [(r["question"], r["answer"], r["element_index"]) for _, r in out] == [
        ("q1", "a1", 0), ("q2", "a2", 1), ("q3", "a3", 2)]  # fmt: skip
    assert out[1][1]["context"] == "c" and "question" not in rec  # the input is not changed
    # an empty list gives no record
    assert list(rules.apply([("e", {"questions": [], "orig_answers": {"texts": []}})], task="quac", split="train")) == []  # fmt: skip


def test_explode_errors():
    rules = compile_rules(RecordRules(explode={"q": "questions", "a": "answers"}))
    with pytest.raises(RecordError, match="q has 2 elements but a has 1"):
        list(rules.apply([("x", {"questions": [1, 2], "answers": [1]})], task="t", split="train"))
    with pytest.raises(RecordError, match="gave str, expected a list"):
        list(rules.apply([("x", {"questions": "no", "answers": [1]})], task="t", split="train"))


def test_sample_turn_is_seeded_odd_and_spread():
    st = SampleTurn(field="utterances", parity="odd", as_="turn")
    rules = compile_rules(RecordRules(sample_turn=st))
    recs = [(f"d{i}", {"utterances": [f"u{j}" for j in range(8)]}) for i in range(200)]
    a = [r["turn"] for _, r in rules.apply(recs, task="wiki_dialog", split="train")]
    b = [r["turn"] for _, r in compile_rules(RecordRules(sample_turn=st)).apply(recs, task="wiki_dialog", split="train")]  # fmt: skip
    assert a == b and set(a) == {1, 3, 5, 7}
    other = SampleTurn(field="utterances", parity="odd", as_="turn", seed=1)
    c = [r["turn"] for _, r in compile_rules(RecordRules(sample_turn=other)).apply(recs, task="wiki_dialog", split="train")]  # fmt: skip
    assert c != a
    # no odd index in a one-turn dialog: the record is dropped and counted
    rules.dropped.clear()
    assert list(rules.apply([("x", {"utterances": ["only"]})], task="w", split="train")) == []
    assert rules.dropped == {"sample_turn: no candidate turn": 1}


def test_candidate_turns():
    assert candidate_turns(5) == [0, 1, 2, 3, 4]
    assert candidate_turns(5, "even", 1) == [2, 4]
    assert candidate_turns(1, "odd") == []


def test_apply_rules_without_rules_is_identity():
    items = [("a", {})]
    assert apply_rules(None, items, task="t", split="train") is items
    assert apply_rules(compile_rules(RecordRules()), items, task="t", split="train") is items


# ----------------------------------------------------------------------------- catalog


def _rules_task(records):
    t = copy.deepcopy(_TOY)
    t["records"] = records
    return t


_TOY = {
    "name": "toy",
    "source": {"kind": "jsonl", "path": "/nonexistent/toy"},
    "sample": {"kind": "jsonl", "path": "toy"},
    "fields": {"premise": "premise", "hypothesis": "hypothesis", "answer": "options[label]"},
    "options": ["yes", "maybe", "no"],
    "templates": ["toy"],
}


@pytest.mark.parametrize(
    "records, match",
    [
        ({"filter": "label >="}, r"records.filter: invalid expression"),
        ({"fliter": "x"}, r"unknown key 'fliter'; did you mean filter"),
        ({}, "expected at least one of filter, explode, sample_turn"),
        ({"explode": {"q": "questions["}}, r"records.explode.q: invalid expression"),
        ({"explode": {"element_index": "x"}}, "set by explode itself"),
        ({"sample_turn": {"field": "u", "parity": "odd2"}}, r"sample_turn.parity: expected one of any, odd, even"),
        ({"sample_turn": {"as": "t"}}, "missing required key 'field'"),
        ({"sample_turn": {"field": "u", "min_index": -1}}, "expected a value >= 0"),
    ],
)  # fmt: skip
def test_bad_rules_fail_at_catalog_load(make_catalog, records, match):
    with pytest.raises(CatalogError, match=match):
        make_catalog(tasks=[_rules_task(records)])


def test_rules_load_and_apply_to_sample_source(make_catalog, h):
    recs = h.toy_records(9)
    for r in recs[::3]:
        r["label"] = -1
    cat = make_catalog(tasks=[_rules_task({"filter": "label >= 0"})], samples={"toy": {"train": recs, "validation": recs[:2]}})  # fmt: skip
    task = cat.task("toy")
    assert task.records.describe() == ["filter: label >= 0"]
    src = open_task_source(cat, task, "sample")
    assert len(_ids(src)) == 6 and src.count("train") == 6
    assert all(r["label"] >= 0 for _, r in src.read("train"))


def test_catalog_show_lists_record_rules(make_catalog, h, tmp_path):
    from click.testing import CliRunner

    from flan_data.cli import main

    root = h.write_catalog_dir(tmp_path / "c2", tasks=[_rules_task({"filter": "label >= 0", "explode": {"q": "premise.split()"}})])  # fmt: skip
    r = CliRunner().invoke(main, ["--catalog", str(root), "catalog", "show", "toy"])
    assert r.exit_code == 0, r.output
    assert "filter: label >= 0" in r.output and "explode: q <- premise.split()" in r.output


# ----------------------------------------------------------------------------- real schemas


def _save(tmp_path, name, splits):
    datasets = pytest.importorskip("datasets")
    d = datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in splits.items()})
    d.save_to_disk(str(tmp_path / name))
    return tmp_path / name


def test_slices_work_on_a_local_save_to_disk_copy(tmp_path):
    rows = [{"uid": f"u{i}", "premise": "p", "hypothesis": "h", "label": i % 3} for i in range(10)]
    d = _save(tmp_path, "anli", {"train_r1": rows, "dev_r1": rows[:6]})
    spec = SourceSpec(kind="hf", path="facebook/anli", splits={"train": "train_r1[:-3]", "validation": "dev_r1[:4]", "test": "dev_r1[2:]"})  # fmt: skip
    src = open_source(spec, base_dir=d)
    assert set(src.splits()) == {"train", "validation", "test"}
    assert _ids(src) == [f"train_r1-{i}" for i in range(7)]
    assert _ids(src, "validation") == [f"dev_r1-{i}" for i in range(4)]
    assert _ids(src, "test") == [f"dev_r1-{i}" for i in range(2, 6)]
    assert src.count("train") == 7 and src.count("validation") == 4


def test_parse_split_rejects_percent_slices():
    from flan_data.errors import SourceError

    with pytest.raises(SourceError, match="only integer slices"):
        parse_split("train[:10%]")


def _quac_dialog(did, n):
    return {
        "dialogue_id": did, "wikipedia_page_title": "T", "background": "b", "section_title": "s",
        "context": "Some text here. CANNOTANSWER",
        "turn_ids": [f"{did}_q#{i}" for i in range(n)],
        "questions": [f"question {i}?" for i in range(n)],
        "followups": [0] * n, "yesnos": [2] * n,
        "answers": {"texts": [[f"ans {i}"] for i in range(n)], "answer_starts": [[0] for _ in range(n)]},
        "orig_answers": {"texts": [f"answer {i}" if i else "CANNOTANSWER" for i in range(n)], "answer_starts": [0] * n},
    }  # fmt: skip


def test_quac_one_row_per_question(catalog, tmp_path):
    d = _save(tmp_path, "quac", {"train": [_quac_dialog("d1", 3), _quac_dialog("d2", 2)], "validation": [_quac_dialog("v", 2)]})  # fmt: skip
    task = catalog.task("quac")
    src = open_task_source(catalog, task, "real", {"quac": d})
    out = list(src.read("train"))
    assert len(out) == 5 and src.count("train") == 5
    tr = Renderer(catalog).task_renderer(task)
    canon = [tr.canonical(e, r, "train") for e, r in out]
    assert [c["question"] for c in canon][:3] == ["question 0?", "question 1?", "question 2?"]
    assert all(not c["context"].endswith("CANNOTANSWER") for c in canon)
    assert out[0][0] != out[1][0] and out[0][0].startswith("d1")


def test_snli_drops_unlabelled_pairs(catalog, tmp_path):
    rows = [{"premise": f"p{i}", "hypothesis": "h", "label": [0, 1, 2, -1][i % 4]} for i in range(12)]  # fmt: skip
    d = _save(tmp_path, "snli", {"train": rows, "validation": rows, "test": rows})
    src = open_task_source(catalog, catalog.task("snli"), "real", {"snli": d})
    assert src.count("train") == 9
    tr = Renderer(catalog).task_renderer("snli")
    answers = {tr.canonical(e, r)["answer"] for e, r in src.read("train")}
    assert len(answers) == 3


# ----------------------------------------------------------------------------- bad values


def test_bad_value():
    assert bad_value(math.nan) == "NaN value"
    assert bad_value("  ", target=True) == "empty value" and bad_value("  ") is None
    assert bad_value({"a": 1}) == "not a string (dict)"
    assert bad_value([], target=True) == "empty value"


@pytest.mark.parametrize(
    "change, field, reason",
    [
        ({"label": -1}, "answer", "label out of range for the options"),
        ({"label": 3}, "answer", "label out of range for the options"),
        ({"premise": None}, "premise", "null value in premise"),
        ({"premise": math.nan}, "premise", "NaN value in premise"),
        (
            {"hypothesis": ""},
            "hypothesis",
            "empty value in hypothesis",
        ),  # a target of the inversion
        ({"premise": True}, "premise", "not a string (bool) in premise"),
    ],
)
def test_bad_values_never_become_text(make_catalog, h, change, field, reason):
    task = copy.deepcopy(_TOY)
    task["templates"] = ["toy", "toy_ii"]
    tr = Renderer(make_catalog(tasks=[task])).task_renderer("toy")
    rec = dict(h.toy_records(1)[0], **change)
    with pytest.raises(RecordError) as ei:
        tr.canonical("r0", rec, "train")
    e = ei.value
    assert (e.task, e.split, e.record_id, e.field, e.reason) == (
        "toy",
        "train",
        "r0",
        field,
        reason,
    )
    assert "split 'train'" in str(e) and "record 'r0'" in str(e) and field in str(e)
    with pytest.raises(RecordError):
        tr.render("r0", rec, split="train", fmt="zs_opt", seed=0)


def test_null_target_without_options(make_catalog, h):
    t = copy.deepcopy(h.TOY_TEMPLATES)
    t["sets"]["s"] = {"templates": [{"id": "s-1", "input": "{{ premise }}", "target": "{{ hypothesis }}"}]}  # fmt: skip
    task = {"name": "g", "source": {"kind": "jsonl", "path": "/x"}, "fields": {"premise": "premise", "hypothesis": "hypothesis"}, "templates": ["s"]}  # fmt: skip
    tr = Renderer(make_catalog(templates=t, tasks=[task], samples={})).task_renderer("g")
    for bad in (None, math.nan, "", "   "):
        with pytest.raises(RecordError, match="hypothesis"):
            tr.canonical("x", {"premise": "a", "hypothesis": bad})
    assert tr.canonical("x", {"premise": "a", "hypothesis": "b"})["hypothesis"] == "b"


def test_export_skips_bad_values_and_counts_them_by_reason(tmp_path, h):
    recs = h.toy_records(30)
    recs[3]["label"] = -1
    recs[5]["premise"] = None
    recs[8]["label"] = 7
    root = h.write_catalog_dir(
        tmp_path / "c",
        samples={"toy": {"train": recs, "validation": recs[:3]}},
        mixtures={"m": {"source": "sample", "members": [{"task": "toy", "formats": ["zs_opt"]}]}},
    )
    cat = Catalog.load(root)
    with pytest.raises(RecordError, match=r"label -1 is out of range.*split 'train'"):
        export_mixture(cat, "m", tmp_path / "o1", total=60, progress=False, log=lambda s: None)
    m = export_mixture(cat, "m", tmp_path / "o2", total=60, on_error="skip", progress=False, log=lambda s: None)  # fmt: skip
    sk = m["skipped"]["toy"]
    assert set(sk) == {"label out of range for the options", "null value in premise"}
    assert sk["label out of range for the options"] == 4 and sk["null value in premise"] == 2
    assert m["num_rows"] == 60 - 6
    manifest = json.loads((tmp_path / "o2" / "manifest.json").read_text())
    assert manifest["skipped"] == m["skipped"]


def test_lint_reports_bad_values_in_sample_data(tmp_path, h):
    from flan_data.linter import lint

    recs = h.toy_records(6)
    val = h.toy_records(3, "v")
    val[0]["label"] = -1
    val[1]["premise"] = None
    root = h.write_catalog_dir(tmp_path / "c", samples={"toy": {"train": recs, "validation": val}})
    errors = [str(p) for p in lint(Catalog.load(root), rows=3) if p.level == "error"]
    assert any("label -1 is out of range for 3 options" in e for e in errors), errors
    assert any("null value" in e and "premise" in e for e in errors), errors
