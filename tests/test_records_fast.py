"""Record rules' plain-Python fast path gives exactly what the Jinja expressions give."""

from __future__ import annotations

import itertools

import pytest

from flan_data import Catalog
from flan_data.errors import RecordError
from flan_data.records import compile_rules
from flan_data.specs import RecordRules, SampleTurn
from flan_data.templates import TemplateEngine

VALUES = [0, 4, 2, -1, 7, 6, 1.5, "", "  ", "a UNK b", "x # y", "plain", [], ["q", "a"], None, True, {"text": ["a", "b", "c", "d"]}]  # fmt: skip


def _outcome(rules, recs):
    out = []
    for eid, rec in recs:
        try:
            out.append(
                [
                    (e, sorted(r.items(), key=str))
                    for e, r in rules.apply([(eid, rec)], task="t", split="train")
                ]
            )
        except RecordError as e:
            out.append(("error", e.reason, e.field))
    return out


def _records(fields):
    for i, combo in enumerate(itertools.product(VALUES, repeat=len(fields))):
        yield f"r{i}", dict(zip(fields, combo))
    yield "missing", {}


@pytest.mark.parametrize(
    "expr,fields",
    [
        ("label >= 0", ["label"]),
        ("sentiment in (0, 4)", ["sentiment"]),
        ("Turn_no > 6 and Context | length > 0", ["Turn_no", "Context"]),
        ("email_body | trim | length > 0", ["email_body"]),
        ("'UNK' not in document and '#' not in document", ["document"]),
        ("choices.text | length == 4", ["choices"]),
        ("not (a == b) or a != 0", ["a", "b"]),
    ],
)
def test_filter_fast_path_equals_jinja(expr, fields):
    engine = TemplateEngine()
    assert engine.fast_expression(expr) is not None
    fast = compile_rules(RecordRules(filter=expr), engine)
    slow = compile_rules(RecordRules(filter=expr), engine)
    slow._fast = {}
    recs = list(_records(fields))
    assert _outcome(fast, recs) == _outcome(slow, recs)
    assert fast.dropped == slow.dropped


def test_sample_turn_and_explode_fast_paths_equal_jinja():
    engine = TemplateEngine()
    rules = RecordRules(explode={"q": "questions", "a": "answers.texts"},
                        sample_turn=SampleTurn(field="utterances", parity="odd"))  # fmt: skip
    fast, slow = compile_rules(rules, engine), compile_rules(rules, engine)
    slow._fast = {}
    recs = [
        (
            "d1",
            {
                "questions": ["x", "y"],
                "answers": {"texts": ["1", "2"]},
                "utterances": ["a", "b", "c", "d"],
            },
        ),
        ("d2", {"questions": ["x"], "answers": {"texts": ["1"]}, "utterances": ["a"]}),
        ("d3", {"questions": "not a list", "answers": {"texts": ["1"]}, "utterances": ["a", "b"]}),
        ("d4", {"questions": ["x"], "answers": {"texts": ["1", "2"]}, "utterances": ["a", "b"]}),
        ("d5", {"questions": ["x"], "answers": {}, "utterances": ["a", "b"]}),
        ("d6", {"questions": ["x"], "answers": {"texts": ["1"]}}),
    ]
    assert _outcome(fast, recs) == _outcome(slow, recs)
    assert fast.dropped == slow.dropped


def test_every_catalog_rule_has_a_fast_path():
    engine = TemplateEngine()
    cat = Catalog.load()
    for t in cat.tasks.values():
        r = t.records
        exprs = ([r.filter] if r.filter else []) + list(r.explode.values())
        exprs += [r.sample_turn.field] if r.sample_turn else []
        for e in exprs:
            assert engine.fast_expression(e) is not None, (t.name, e)
