"""Text-quality patterns a model should not learn, found in rendered examples.

Each checker is a pure function of rendered text (and, where needed, what the
renderer knows: the format, the answer text, the options). They back the
``flan lint`` text rules and ``tools/scan_render.py``.

>>> stacked_cues("Q: Q: What is 2 + 2?\\nA:")
['Q: Q:']
>>> stacked_cues("Q: What is 2 + 2?\\nA: 4")
[]
>>> doubled_punctuation("Options:\\n- It holds less heat..\\n- no")
['t..']
>>> cot_target_ends_with_answer("So 2 + 2 = 4. So the answer is 4.", "4")
True
"""

from __future__ import annotations

import functools
import re

# A cue label: a role marker at the start of a line, the words a few-shot
# style or a template uses to say "here comes the input / the answer": "Q:",
# "Answer:", "Your output:", "[Input]", "### Output:", the dotted "Q." / "A.".
# A colon label is up to three words whose last word is a role noun (optionally
# numbered: "Q1:", "A2:"). Field labels that structure a record ("Premise:",
# "Sentence A:", "Passage:") are content, not cues: "Input: Premise: …" is how a
# structured input reads, while "Q: Question: …" says the same thing twice.
# Option headers ("Options:", "Possible answers:") are not cues either.
CUE_NOUNS: tuple[str, ...] = (
    *("Q", "A", "Question", "Answer", "Ans", "Input", "Output", "Problem", "Solution"),
    *("Response", "Reply", "Prompt", "Completion", "Example", "Result", "Label", "Query"),
    *("Instruction", "Instructions", "Task", "User", "Assistant", "Human", "AI"),
    *("Exercise", "Request", "Source", "Target", "Sample", "Given", "Text"),
    *("Reasoning", "Explanation", "Rationale"),
)


def _alt(words) -> str:
    return "(?:" + "|".join(sorted(set(words), key=len, reverse=True)) + ")"


_ALL = {*CUE_NOUNS, *(n.lower() for n in CUE_NOUNS)}
_NOUN = _alt(_ALL - {"q", "a"})
# After one or two lead words ("Your output:", "Final answer:") the role noun
# has more than one letter: "Sentence A:" is a field label, not the cue "A:".
_LONG_NOUN = _alt(n for n in _ALL if len(n) > 1)
# "Q1:", "Target (English):": a number, or a short parenthetical, before the colon
_SUFFIX = r"(?:\d{1,2})?(?: \([^()\n]{1,30}\))?"
LABEL = (
    rf"(?:\[{_NOUN}\]"
    rf"|#{{1,4}} (?:[A-Z][A-Za-z'’]{{0,15}} ){{0,2}}{_LONG_NOUN}:?"
    r"|[QA]\."
    rf"|(?:(?:[A-Z][A-Za-z'’]{{0,15}} ){{1,2}}{_LONG_NOUN}|{_NOUN}){_SUFFIX}:)"
)
# The cue regexes are big alternations: compiled on first use, not at import,
# so commands that never compose few-shot text (`flan --help`, `catalog show`) skip them.


@functools.cache
def _label_at_start() -> re.Pattern[str]:
    return re.compile(rf"[ \t]*{LABEL}(?=\s|$)")


#: A label at a line start followed, after nothing but whitespace, by another label.
# On the same line the second cue must be a bare one ("Q: Question:"), or any
# short answer before a same-line cue ("Input: Turkey Answer: Ankara") would count.
_BARE = rf"(?:\[{_NOUN}\]|[QA]\.|(?:{_NOUN}|[QA]){_SUFFIX}:)"


@functools.cache
def _stacked() -> re.Pattern[str]:
    return re.compile(
        rf"(?m)^[ \t]*({LABEL})(?:[ \t]+({_BARE})|[ \t]*(?:\n[ \t]*)+({LABEL}))(?=\s|$)"
    )


# A trailing cue: the last line is only a label, optionally with a short
# reasoning lead-in ("A: Let's reason it out.").
@functools.cache
def _trailing_cue() -> re.Pattern[str]:
    return re.compile(rf"[ \t]*{LABEL}(?:[ \t]+(?:Let's|Let us)[^\n]{{0,60}}[.:])?[ \t]*")


def starts_with_label(text: str) -> bool:
    """True when ``text`` opens with a cue label (``"Q: …"``, ``"Question: …"``)."""
    # A label is at most ~80 characters and the test reads the first 64; as this
    # runs on every few-shot part, the regex runs only on the short text that
    # can decide (memoised), found by what a label can look like:
    # "[Noun]", "# … Noun" and the dotted "Q." / "A." by their first characters,
    # else a colon label: up to two lead words and a noun, each followed by one
    # space (no tab, no line break), a number, then, when the text before the
    # first colon holds no "(", that colon (a parenthetical may hold colons).
    head = text[:64]
    s = head.lstrip(" \t")
    if s[:1] in ("[", "#") or s[:2] in ("Q.", "A."):
        return _label_at_start().match(head) is not None
    c = s.find(":")
    if c < 0:
        return False
    pre = s[:c]
    if "(" in pre:
        return _label_at_start().match(head) is not None
    if pre.count(" ") > 2 or "\n" in pre or "\t" in pre:
        return False
    key = s[: c + 2]  # the label and the character after it decide
    hit = _LABELS.get(key)
    if hit is None:
        if len(_LABELS) > 1 << 14:
            _LABELS.clear()
        hit = _LABELS[key] = _label_at_start().match(key) is not None
    return hit


_LABELS: dict[str, bool] = {}
_CUES: dict[str, bool] = {}


def ends_with_cue(text: str) -> bool:
    """True when the last line of ``text`` is a bare cue (``"…\\nA:"``, ``"…\\nOutput:"``)."""
    last = text[text.rfind("\n") + 1 :]
    # only the last line is looked at, and a cue line is short and holds a colon,
    # a bracket or a dotted Q/A: cheap on long prompts (and memoised: last lines recur)
    if len(last) > 100 or (":" not in last and "]" not in last and "." not in last[:3]):
        return False
    hit = _CUES.get(last)
    if hit is None:
        if len(_CUES) > 1 << 14:
            _CUES.clear()
        hit = _CUES[last] = _trailing_cue().fullmatch(last) is not None
    return hit


def stacked_cues(text: str) -> list[str]:
    """Each place where one cue label follows another with only whitespace between.

    ``"Q: Q: …"``, ``"Input: Input:\\n…"``, ``"…\\nA:\\n\\nA: 1 cm"``,
    ``"Response:\\n\\nReply:"``.
    """
    out = []
    for m in _stacked().finditer(text):
        out.append(f"{m.group(1)} {m.group(2) or m.group(3)}")
    return out


def stacked_in_example(inputs: str, targets: str) -> list[str]:
    """Stacked cues in ``inputs`` and at the seam where the target follows a bare cue.

    ``"…\nA:"`` + ``"Reasoning: …"`` reads ``"A: Reasoning: …"``: stacked.
    """
    out = stacked_cues(inputs)
    if targets and ends_with_cue(inputs):
        last = inputs.rsplit("\n", 1)[-1]
        out += stacked_cues(last + " " + targets.split("\n", 1)[0])
    return out


# Option text ending in . ? or ! followed by a style's . or ; ("less heat..",
# "the lid.;"); an ellipsis ("...") is not doubled punctuation.
_DOUBLED = re.compile(r"(?<![.])\w?[.!?][.;](?![.\w])")


def doubled_punctuation(text: str) -> list[str]:
    """Doubled sentence punctuation, e.g. ``"heat.."`` or ``"lid.;"``."""
    return [m.group(0) for m in _DOUBLED.finditer(text)]


#: Words that talk about a list of answer choices; a *_noopt input whose own
#: wording (not the record's text) uses one refers to choices it no longer shows.
CHOICE_WORDS = re.compile(
    r"\b(options?|choices?|choose|chosen|pick|select|alternatives?|listed|endings|"
    r"candidates?(?!\s*(?:answer|:))|(?:which|one|each|any) of (?:these|those|the following))\b",
    re.IGNORECASE,
)


def choice_words(text: str) -> list[str]:
    """Choice vocabulary in ``text`` (meant for a template's own wording)."""
    return [m.group(0) for m in CHOICE_WORDS.finditer(text)]


# "(C)", "(c)", "(3)", "[2]", "C)", "c)" or a lone capital A-H: an option
# marker. A bare number is not one: it is the answer of a math problem.
_MARKER = re.compile(r"^(?:\([A-Za-z0-9]\)|\[[0-9]{1,2}\]|[A-Za-z]\)|[A-H])$")


def cot_target_ends_with_answer(target: str, answer_text: str) -> bool:
    """True when a CoT target ends with the answer text (trailing ``.`` allowed).

    A target that ends in an option marker (``"Final answer: (1)."``) instead of
    the answer's text fails, unless the answer itself is that marker.
    """
    t = target.rstrip().rstrip(".").rstrip()
    a = str(answer_text).strip().rstrip(".").rstrip()
    return bool(a) and t.endswith(a)


def is_option_marker(text: str) -> bool:
    """``(A)``, ``B``, ``c)``, ``[2]``: a bare option marker, not answer text (``3`` is text)."""
    return _MARKER.match(text.strip()) is not None


#: The patterns :func:`row_findings` reports, in report order.
PATTERNS = (
    "stacked_cue",
    "doubled_option_punct",
    "noopt_choice_words",
    "cot_target_no_answer",
    "cot_answer_is_marker",
    "cot_inline_options_missing",
)
#: CoT tasks whose questions carry their options inline (kept as the source has them).
INLINE_OPTION_COT = ("cot_ecqa", "cot_qasc", "cot_aqua")


def _strings(v):
    if isinstance(v, str):
        yield v
    elif isinstance(v, dict):
        for x in v.values():
            yield from _strings(x)
    elif isinstance(v, list | tuple):
        for x in v:
            yield from _strings(x)
    elif v is not None:
        yield str(v)


def template_wording(text: str, canon, exemplars=()) -> str:
    """``text`` with every field value of the record (and its exemplars) cut out."""
    vals = sorted(
        {s for s in _strings([dict(canon), *[dict(e) for e in exemplars]]) if len(s) > 1},
        key=len,
        reverse=True,
    )
    for s in vals:
        text = text.replace(s, " ")
    return text


def row_findings(
    task: str, fmt: str, inputs: str, targets: str, canon, raw, exemplars=()
) -> list[tuple[str, str]]:
    """``(pattern, evidence)`` for each artefact in one rendered row.

    ``canon`` is the record's canonical fields (``options``, ``answer``), ``raw``
    the source record, ``exemplars`` the canonical fields of the few-shot
    exemplars shown (their text is cut out before looking for choice words).
    """
    found = []
    for s in stacked_in_example(inputs, targets):
        found.append(("stacked_cue", s))
    opts = canon.get("options") or ()
    if fmt.endswith("_opt") or fmt == "cot":
        for o in opts:
            o = str(o).rstrip()
            if o[-1:] in ".?!" and (o + "." in inputs or o + ";" in inputs):
                found.append(("doubled_option_punct", o[-20:] + "+"))
    if fmt.endswith("_noopt") and opts:
        words = choice_words(template_wording(inputs, canon, exemplars))
        if words:
            found.append(("noopt_choice_words", ",".join(sorted(set(words)))))
    if fmt == "cot" and "answer" in canon:
        ans = str(canon["answer"])
        if not cot_target_ends_with_answer(targets, ans):
            found.append(("cot_target_no_answer", targets[-40:]))
        elif is_option_marker(ans):
            found.append(("cot_answer_is_marker", targets[-40:]))
    if fmt == "cot" and task in INLINE_OPTION_COT:
        q = str(raw.get("question", ""))
        if "Options:" in q and "Options:" not in inputs:
            found.append(("cot_inline_options_missing", q[-40:]))
    return found
