"""Few-shot composition: rendered exemplars + the rendered query → one prompt.

A few-shot style (:class:`~flan_data.specs.FewShotStyle`) frames each example
with an input cue (``"Q: "``), a delimiter and a target cue (``"A: "``). Many
templates carry cues of their own (``"Q: …\\nA:"``, ``"Input: …"``,
``"… Response:"``) and some records do too (P3 prompts that end in
``"Answer:"``). The rule, applied to each example separately, is that **a cue
already in the text wins and the style's cue for that slot is left out**:

* the input starts with a role cue (``Q:``, ``Question:``, ``Input:``, …, see
  :data:`flan_data.textcheck.CUE_NOUNS`): no ``input_prefix``;
* the input ends with a bare cue line (``"…\\nA:"``, ``"…\\nOutput:"``,
  ``"A: Let's reason it out."``): the target follows that cue after one space,
  with no ``x_y_delimiter`` and no ``target_prefix``;
* the target starts with a role cue (``"Reasoning: …"``): no ``target_prefix``;
* the input spans several lines (an options block, a passage) and the style's
  ``x_y_delimiter`` keeps the target on the same line (``" "``): a newline
  instead, so the target cue is never glued to the last option.

Otherwise the style's prefixes apply as before, so templates without cues
compose exactly as they always did. The function is pure and cheap (two
anchored regex tests per text); the export fast path calls it per prompt.

>>> from flan_data.specs import FewShotStyle
>>> qa = FewShotStyle(id="qa", input_prefix="Q: ", target_prefix="A: ")
>>> print(compose_fewshot([("2 + 2?", "4")], "3 + 3?", qa))
Q: 2 + 2?
A: 4
<BLANKLINE>
Q: 3 + 3?
A:
>>> print(compose_fewshot([("Q: 2 + 2?\\nA:", "4")], "Q: 3 + 3?\\nA:", qa))
Q: 2 + 2?
A: 4
<BLANKLINE>
Q: 3 + 3?
A:
"""

from __future__ import annotations

from collections.abc import Sequence

from .specs import FewShotStyle
from .textcheck import ends_with_cue, starts_with_label


def compose_example(inputs: str, targets: str, style: FewShotStyle) -> str:
    """One solved exemplar: its input and target joined under ``style``'s rule."""
    # Exemplars recur across the prompts of a batch (the same rendered strings):
    # memoised by the style's identity, as options.format_options does.
    key = (id(style), inputs, targets)
    hit = _EXAMPLES.get(key)
    if hit is not None and hit[0] is style:
        return hit[1]
    text = _compose_example(inputs, targets, style)
    if len(_EXAMPLES) > 1 << 15:
        _EXAMPLES.clear()
    _EXAMPLES[key] = (style, text)
    return text


_EXAMPLES: dict[tuple[int, str, str], tuple[FewShotStyle, str]] = {}


def compose_example_uncached(
    inputs: str,
    targets: str,
    style: FewShotStyle,
    labelled: bool | None = None,
    cued: bool | None = None,
) -> str:
    """:func:`compose_example` without its memo, for texts that never recur (an
    exemplar rendered under one row's option style). ``labelled`` and ``cued``,
    when given, are ``starts_with_label(inputs)`` and ``ends_with_cue(inputs)``,
    known to the caller (they depend on the text's first 64 characters and its
    last line only)."""
    return _compose_example(inputs, targets, style, labelled, cued)


def _compose_example(
    inputs: str,
    targets: str,
    style: FewShotStyle,
    labelled: bool | None = None,
    cued: bool | None = None,
) -> str:
    if labelled is None:
        labelled = starts_with_label(inputs)
    lead = "" if labelled else style.input_prefix
    if cued is None:
        cued = ends_with_cue(inputs)
    if cued:
        return lead + inputs + " " + targets
    tp = "" if _target_labelled(targets) else style.target_prefix
    return lead + inputs + _delimiter(inputs, style) + tp + targets


def _target_labelled(targets: str) -> bool:
    # targets recur (option texts, "(A)"): short ones are memoised
    if len(targets) > 64:
        return starts_with_label(targets)
    hit = _TARGET_LABEL.get(targets)
    if hit is None:
        if len(_TARGET_LABEL) > 1 << 14:
            _TARGET_LABEL.clear()
        hit = _TARGET_LABEL[targets] = starts_with_label(targets)
    return hit


_TARGET_LABEL: dict[str, bool] = {}


def compose_query(inputs: str, style: FewShotStyle, targets: str = "") -> str:
    """The query part: like :func:`compose_example` without the target.

    ``targets`` (the query's own target, never shown) decides, as for an
    exemplar, whether the style's target cue is written: a target that starts
    with a cue of its own (``"Reasoning: …"``) gets none.
    """
    lead = "" if starts_with_label(inputs) else style.input_prefix
    if ends_with_cue(inputs):
        return lead + inputs
    tp = "" if targets and _target_labelled(targets) else style.target_prefix
    return (lead + inputs + _delimiter(inputs, style) + tp).rstrip()


def _delimiter(inputs: str, style: FewShotStyle) -> str:
    # A same-line delimiter (" ") after a multi-line input would glue the target
    # cue onto its last line ("- no Answer: yes"): start a new line instead.
    d = style.x_y_delimiter
    if "\n" not in d and "\n" in inputs:
        return "\n"
    return d


def compose_fewshot(
    exemplars: Sequence[tuple[str, str]],
    query: str,
    style: FewShotStyle,
    query_target: str = "",
) -> str:
    """The few-shot input: each ``(input, target)`` exemplar, then the query.

    Parts are joined with ``style.example_separator``; the result is
    right-stripped. The model's target is the query's target, unchanged.
    """
    parts = [compose_example(i, t, style) for i, t in exemplars]
    parts.append(compose_query(query, style, query_target))
    return join_parts(parts, style)


def join_parts(parts: Sequence[str], style: FewShotStyle) -> str:
    """The last step of :func:`compose_fewshot`: composed exemplars (from
    :func:`compose_example`) and the composed query (from :func:`compose_query`)
    joined into the prompt. The export's fast path composes (and caches) the
    parts itself and calls this, so both give the same bytes.

    >>> from flan_data.specs import FewShotStyle
    >>> qa = FewShotStyle(id="qa", input_prefix="Q: ", target_prefix="A: ")
    >>> ex = [("2 + 2?", "4")]
    >>> join_parts([compose_example(*ex[0], qa), compose_query("3 + 3?", qa)], qa) == (
    ...     compose_fewshot(ex, "3 + 3?", qa))
    True
    """
    return style.example_separator.join(parts).rstrip()
