"""Few-shot composition: a cue already in the text wins over the style's cue."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from flan_data import Catalog
from flan_data.compose import compose_example, compose_fewshot, compose_query
from flan_data.specs import FewShotStyle
from flan_data.textcheck import ends_with_cue, stacked_cues, stacked_in_example, starts_with_label

QA = FewShotStyle(id="qa", input_prefix="Q: ", target_prefix="A: ")
IO = FewShotStyle(id="io", input_prefix="Input:\n", target_prefix="Output:\n", x_y_delimiter="\n\n")
BARE = FewShotStyle(id="bare", x_y_delimiter="\n", example_separator="\n\n")


def test_plain_template_gets_the_style_cues_unchanged():
    got = compose_fewshot([("What is 2 + 2?", "4"), ("And 3 + 3?", "6")], "And 4 + 4?", QA)
    assert got == "Q: What is 2 + 2?\nA: 4\n\nQ: And 3 + 3?\nA: 6\n\nQ: And 4 + 4?\nA:"


def test_template_cues_win_no_stacking():
    ex = [("Q: Base your answer on the text below.\nHow far?\nA:", "1 cm")]
    got = compose_fewshot(ex, "Q: Base your answer on the text below.\nHow near?\nA:", QA)
    assert got == (
        "Q: Base your answer on the text below.\nHow far?\nA: 1 cm\n\n"
        "Q: Base your answer on the text below.\nHow near?\nA:"
    )
    got = compose_fewshot([("Input:\nSome text.\nOutput:", "B")], "Input:\nMore text.\nOutput:", IO)
    assert got == "Input:\nSome text.\nOutput: B\n\nInput:\nMore text.\nOutput:"
    assert stacked_cues(got) == []


def test_trailing_cue_with_reasoning_lead_in():
    ex = [
        ("Q: Is ice cold?\nA: Let's reason it out.", "Ice is frozen water. So the answer is yes.")
    ]
    got = compose_fewshot(ex, "Q: Is fire hot?\nA: Let's reason it out.", BARE)
    assert got.startswith("Q: Is ice cold?\nA: Let's reason it out. Ice is frozen water.")
    assert got.endswith("Q: Is fire hot?\nA: Let's reason it out.")


def test_target_with_its_own_cue_gets_no_target_prefix():
    got = compose_example("Solve 2 + 2.", "Reasoning: add.\nAnswer: 4", QA)
    assert got == "Q: Solve 2 + 2.\nReasoning: add.\nAnswer: 4"
    assert compose_query("Solve 3 + 3.", QA, "Reasoning: add.\nAnswer: 6") == "Q: Solve 3 + 3."
    assert compose_query("Solve 3 + 3.", QA) == "Q: Solve 3 + 3.\nA:"


def test_field_labels_are_content_not_cues():
    # "Premise:" structures the record; the style's "Q:" still frames it
    assert compose_example("Premise: a cat.\nHypothesis: an animal.", "yes", QA).startswith(
        "Q: Premise: a cat."
    )
    assert not starts_with_label("Premise: x")
    assert starts_with_label("Question: x") and starts_with_label("[Q] x")
    assert starts_with_label("### Input:\nx") and starts_with_label("Your output: x")
    assert not starts_with_label("My textbook says: x") and not starts_with_label("Sentence A: x")


@pytest.mark.parametrize(
    ("text", "cue"),
    [("x\nA:", True), ("x\nOutput:", True), ("x\nA: Let's reason it out.", True), ("x\nAnswer: 4", False),
     ("x\nHypothesis: y", False), ("x\n### Response:", True), ("x", False), ("x\nA1:", True)],
)  # fmt: skip
def test_trailing_cue_detection(text, cue):
    assert ends_with_cue(text) is cue


def test_stacked_cue_examples_from_the_issue():
    for bad in (
        "Q: Q: Base your answer on the text below.",
        "Input: Input:\nBase your answer on the text below.",
        "…\nA:\n\nA: 1 cm",
        "…\nResponse:\n\nReply:\n(A)",
        "Question: Q: …",
        "Problem: Problem: Yes / no, is the following a verifiable fact?",
    ):
        assert stacked_cues(bad), bad
    assert stacked_in_example("Q: x\nA:", "Reasoning: y") == ["A: Reasoning:"]
    assert stacked_in_example("Q: x\nA:", "y") == []


def test_every_shipped_style_and_cued_template_shape_composes_without_stacking():
    """Every few-shot style × the cue shapes shipped templates use."""
    styles = Catalog.load().fewshot_styles
    assert len(styles) >= 30
    shapes = [
        ("Q: {x}\nA:", "{y}"),
        ("Input:\n{x}\nOutput:", "{y}"),
        ("Question: {x}", "{y}"),
        ("{x}\nResponse:", "{y}"),
        ("Problem: {x}\n\nShow your work.", "Explanation: {y} Final answer: 4."),
        ("{x}", "Reasoning: {y}\nAnswer: 4"),
        ("User: {x}\nAssistant:", "{y}"),
        ("[Q] {x}", "{y}"),
        ("{x}", "{y}"),
    ]
    for st in styles:
        # the style's own cues are cues: a template repeating them must not stack
        if st.input_prefix.strip():
            assert starts_with_label(st.input_prefix + "x"), st.id
        for inp, tgt in shapes:
            exs = [(inp.format(x=f"item {k}"), tgt.format(y=f"out {k}")) for k in range(3)]
            q = inp.format(x="query")
            text = compose_fewshot(exs, q, st, tgt.format(y="out q"))
            assert stacked_cues(text) == [], (st.id, inp, text)


def test_same_line_delimiter_never_glues_the_target_cue_to_an_options_line():
    inline = FewShotStyle(
        id="inl", input_prefix="Question: ", target_prefix="Answer: ", x_y_delimiter=" "
    )
    assert compose_example("Is it?", "yes", inline) == "Question: Is it? Answer: yes"
    got = compose_example("Is it?\n\nOPTIONS:\n- yes\n- no", "yes", inline)
    assert got == "Question: Is it?\n\nOPTIONS:\n- yes\n- no\nAnswer: yes"
    assert compose_query("Is it?\n\nOPTIONS:\n- yes\n- no", inline).endswith("- no\nAnswer:")


# ----------------------------------------------------------------------------- fast paths vs the regexes

_PIECES = ["Q", "A", "Q.", "A.", "Question", "Answer", "Final", "answer", "Your", "output", "Premise",
           "Sentence", "Target", "Input", "[Q]", "[Input]", "# ", "### ", ":", ": ", " ", "  ", "\t", "\n",
           "(English)", "(a:b)", "(", ")", "1", "12", "x", "Let's reason it out.", "é", "-", "[", "]"]  # fmt: skip


def _label_reference(text):  # starts_with_label before its memo: prefilter, then the regex
    from flan_data.textcheck import _label_at_start

    head = text[:64]
    if ":" not in head:
        s = head.lstrip(" \t")
        if s[:1] not in ("[", "#") and s[:2] not in ("Q.", "A."):
            return False
    return _label_at_start().match(head) is not None


def _cue_reference(text):  # ends_with_cue before its memo
    from flan_data.textcheck import _trailing_cue

    last = text[text.rfind("\n") + 1 :]
    if len(last) > 100 or (":" not in last and "]" not in last and "." not in last[:3]):
        return False
    return _trailing_cue().fullmatch(last) is not None


@settings(max_examples=3000, deadline=None)
@given(hst.lists(hst.sampled_from(_PIECES) | hst.text(max_size=4), max_size=14))
def test_label_and_cue_fast_paths_agree_with_the_regexes(pieces):
    text = "".join(pieces)
    for t in (text, text + " tail", "Q: " + text):
        assert starts_with_label(t) is _label_reference(t), t
        assert starts_with_label(t) is _label_reference(t), t  # memoised: the same answer
        assert ends_with_cue(t) is _cue_reference(t), t
        assert ends_with_cue(t) is _cue_reference(t), t
