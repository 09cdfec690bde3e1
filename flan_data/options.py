"""Answer-option blocks: the plain ``OPTIONS:`` style and a seeded randomized family.

A style is a start phrase × an item marker × an end punctuation (left off an
option that already ends in ``.``, ``?``, ``!`` or ``…``). When the
markers are letters or numbers, the target becomes the marker of the right
option, as a model would then be asked to answer.

>>> block, targets = format_options(["yes", "no"], PLAIN)
>>> print(block)
<BLANKLINE>
<BLANKLINE>
OPTIONS:
- yes
- no
>>> targets
('yes', 'no')
>>> s = OptionStyle(start="Choose one:", marker="({L}) ", target="({L})")
>>> format_options(["red", "blue"], s)[1]
('(A)', '(B)')
"""

from __future__ import annotations

import random
import string
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class OptionStyle:
    """How to show options. ``marker``/``target`` may use ``{L}`` (A, B, …),
    ``{l}`` (a, b, …) or ``{N}`` (1, 2, …); ``target`` None keeps the option text."""

    start: str = "OPTIONS:"
    marker: str = "- "
    end: str = ""
    target: str | None = None
    layout: str = "lines"  # "lines" | "inline"

    @property
    def id(self) -> str:
        return f"{self.start}|{self.marker}|{self.end}|{self.layout}"


PLAIN = OptionStyle()

# Our own phrase list: varied ways a person would introduce a list of choices.
START_PHRASES = (
    "OPTIONS:",
    "Options:",
    "Choose from:",
    "Pick one:",
    "Possible answers:",
    "Select one of the following:",
    "Choices:",
    "Available answers:",
    "Pick your answer from:",
    "Which is it?",
    "The candidates are:",
    "Answer with one of these:",
)
# (marker, target-or-None)
MARKERS: tuple[tuple[str, str | None], ...] = (
    ("- ", None),
    ("* ", None),
    ("+ ", None),
    ("• ", None),
    ("({L}) ", "({L})"),
    ("{L}. ", "{L}"),
    ("{L}) ", "{L})"),
    ("({l}) ", "({l})"),
    ("{N}. ", "{N}"),
    ("({N}) ", "({N})"),
    ("[{N}] ", "[{N}]"),
)
END_PUNCT = ("", ".", ";")
# Option text ending in one of these gets no end punctuation from the style.
_SENTENCE_END = frozenset(".?!…")


def _label(template: str, i: int) -> str:
    if "{" not in template:  # plain markers: no letter needed (and none exists past Z)
        return template
    key = (template, i)
    hit = _LABELS.get(key)
    if hit is None:
        hit = template.format(L=string.ascii_uppercase[i], l=string.ascii_lowercase[i], N=i + 1)
        if len(_LABELS) < 1 << 14:  # the styles' markers x 26 letters: a few hundred
            _LABELS[key] = hit
    return hit


_LABELS: dict[tuple[str, int], str] = {}
# per style (by identity; the stored style guards against id reuse): is it labelled
_LABELLED: dict[int, tuple[OptionStyle, bool]] = {}


def _labelled(style: OptionStyle) -> bool:
    hit = _LABELLED.get(id(style))
    if hit is None or hit[0] is not style:
        hit = (style, any(k in style.marker for k in ("{L}", "{l}", "{N}")))
        if len(_LABELLED) > 1 << 12:
            _LABELLED.clear()
        _LABELLED[id(style)] = hit
    return hit[1]


def format_options(
    options: Sequence[str], style: OptionStyle = PLAIN
) -> tuple[str, tuple[str, ...]]:
    """The block text (starting with a blank line) and the target for each option."""
    key = (id(style), options if isinstance(options, tuple) else tuple(options))
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is style:
        return hit[1]
    res = _format(tuple(map(str, options)), style)
    if len(_CACHE) > 1 << 16:
        _CACHE.clear()
    _CACHE[key] = (style, res)
    return res


# Keyed by the style's identity (styles are shared constants) to skip hashing
# the dataclass on every row; the stored style guards against id reuse.
_CACHE: dict[tuple[int, tuple[str, ...]], tuple[OptionStyle, tuple[str, tuple[str, ...]]]] = {}


def _format(options: tuple[str, ...], style: OptionStyle) -> tuple[str, tuple[str, ...]]:
    labelled = _labelled(style)
    if labelled and len(options) > 26:
        style = PLAIN  # letters run out; fall back to dashes rather than invent markers
        labelled = False
    n = len(options)
    marker, end_s = style.marker, style.end
    if not end_s:  # no end punctuation: marker + option
        if "{" in marker:
            items = [_label(marker, i) + opt for i, opt in enumerate(options)]
        else:
            items = [marker + opt for opt in options]
    else:
        items = []
        last = n - 1
        for i, opt in enumerate(options):
            end = end_s if i < last else "."
            if opt.rstrip()[-1:] in _SENTENCE_END:
                end = ""  # "holds less heat." stays as is: no "heat.." or "lid.;"
            items.append(_label(marker, i) + opt + end)
    if style.layout == "inline":
        body = style.start + " " + " ".join(items)
    else:
        body = style.start + "\n" + "\n".join(items)
    if labelled and style.target:
        targets = tuple(_label(style.target, i) for i in range(n))
    else:
        targets = options
    return "\n\n" + body, targets


def _family() -> tuple[OptionStyle, ...]:
    out = []
    for start in START_PHRASES:
        for marker, target in MARKERS:
            for end in END_PUNCT:
                out.append(OptionStyle(start=start, marker=marker, end=end, target=target))
                if marker.startswith("("):
                    out.append(
                        OptionStyle(
                            start=start, marker=marker, end=end, target=target, layout="inline"
                        )
                    )
    return tuple(out)


#: Every member of the randomized family, in a fixed order (an index picks one).
ALL_STYLES: tuple[OptionStyle, ...] = _family()


def random_style(r: random.Random) -> OptionStyle:
    """Draw a style from the randomized family with the given RNG."""
    return ALL_STYLES[r.randrange(len(ALL_STYLES))]


def style_at(i: int) -> OptionStyle:
    """The family member at index ``i`` (modulo the family size)."""
    return ALL_STYLES[i % len(ALL_STYLES)]


def family_size() -> int:
    """How many distinct styles the randomized family holds."""
    return len(ALL_STYLES)
