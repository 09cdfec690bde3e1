"""Answer-option blocks: the plain style, the randomized family, letter/number targets."""

from __future__ import annotations

import random
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flan_data.options import (
    ALL_STYLES,
    END_PUNCT,
    MARKERS,
    PLAIN,
    START_PHRASES,
    OptionStyle,
    family_size,
    format_options,
    random_style,
)


def test_plain_block_and_targets():
    block, targets = format_options(["yes", "it is not possible to tell", "no"])
    assert block == "\n\nOPTIONS:\n- yes\n- it is not possible to tell\n- no"
    assert targets == ("yes", "it is not possible to tell", "no")
    assert PLAIN.id == "OPTIONS:|- ||lines"


@pytest.mark.parametrize(
    ("marker", "target", "lines", "targets"),
    [
        ("({L}) ", "({L})", ["(A) red", "(B) green", "(C) blue"], ("(A)", "(B)", "(C)")),
        ("{L}. ", "{L}", ["A. red", "B. green", "C. blue"], ("A", "B", "C")),
        ("({l}) ", "({l})", ["(a) red", "(b) green", "(c) blue"], ("(a)", "(b)", "(c)")),
        ("{N}. ", "{N}", ["1. red", "2. green", "3. blue"], ("1", "2", "3")),
        ("[{N}] ", "[{N}]", ["[1] red", "[2] green", "[3] blue"], ("[1]", "[2]", "[3]")),
        ("* ", None, ["* red", "* green", "* blue"], ("red", "green", "blue")),
    ],
)
def test_markers_and_letter_targets(marker, target, lines, targets):
    style = OptionStyle(start="Pick one:", marker=marker, target=target)
    block, got = format_options(["red", "green", "blue"], style)
    assert block == "\n\nPick one:\n" + "\n".join(lines)
    assert got == targets


def test_labelled_marker_without_target_keeps_option_text():
    _, targets = format_options(["x", "y"], OptionStyle(marker="({L}) ", target=None))
    assert targets == ("x", "y")


def test_end_punctuation_last_item_gets_a_period():
    block, _ = format_options(["a", "b", "c"], OptionStyle(start="Choices:", marker="- ", end=";"))
    assert block == "\n\nChoices:\n- a;\n- b;\n- c."
    block, _ = format_options(["a", "b"], OptionStyle(start="Choices:", marker="- ", end=""))
    assert block.endswith("- b")


def test_inline_layout():
    block, targets = format_options(
        ["cat", "dog"],
        OptionStyle(start="Which is it?", marker="({L}) ", target="({L})", layout="inline"),
    )
    assert block == "\n\nWhich is it? (A) cat (B) dog"
    assert targets == ("(A)", "(B)")


def test_more_than_26_options_fall_back_to_plain():
    opts = [f"o{i}" for i in range(27)]
    block, targets = format_options(
        opts, OptionStyle(start="Pick:", marker="({L}) ", target="({L})")
    )
    assert block.startswith("\n\nOPTIONS:\n- o0\n")
    assert targets == tuple(opts)
    # 26 still fit in letters
    _, t26 = format_options(opts[:26], OptionStyle(marker="({L}) ", target="({L})"))
    assert t26[-1] == "(Z)"


def test_non_string_options_are_shown_as_text():
    block, targets = format_options([1, 2.5, True])
    assert block == "\n\nOPTIONS:\n- 1\n- 2.5\n- True"
    assert targets == ("1", "2.5", "True")


def test_random_style_is_deterministic_for_an_rng_state():
    a = [random_style(random.Random(s)) for s in range(50)]
    b = [random_style(random.Random(s)) for s in range(50)]
    assert a == b
    assert len({s.id for s in a}) > 20  # actually varied


def test_random_style_draws_from_the_documented_parts():
    for s in range(300):
        st_ = random_style(random.Random(s))
        assert st_.start in START_PHRASES
        assert (st_.marker, st_.target) in MARKERS
        assert st_.end in END_PUNCT
        assert st_.layout in ("lines", "inline")
        if st_.layout == "inline":
            assert st_.marker.startswith("(")


def test_family_size_matches_what_random_style_produces():
    r = random.Random(1234)
    seen = {random_style(r).id for _ in range(40_000)}
    assert len(seen) == family_size() == 504


opt_text = st.text(alphabet=string.ascii_letters + " -'", min_size=1, max_size=15).filter(
    lambda s: s.strip() == s and s
)


@settings(max_examples=150, deadline=None)
@given(st.lists(opt_text, min_size=2, max_size=8, unique=True), st.integers(0, 2**32))
def test_every_style_shows_every_option_and_maps_targets(options, seed):
    style = random_style(random.Random(seed))
    block, targets = format_options(options, style)
    assert block.startswith("\n\n" + style.start)
    for o in options:
        assert o in block
    assert len(targets) == len(options)
    assert len(set(targets)) == len(targets)  # every option has its own target
    if style.target is None:
        assert targets == tuple(options)
    else:
        for t in targets:  # a letter/number target appears as the marker in the block
            assert t in block


@pytest.mark.parametrize("end", [".", ";"])
@pytest.mark.parametrize("layout", ["lines", "inline"])
def test_no_doubled_punctuation_after_option_text(end, layout):
    opts = ["It holds less heat.", "Twist the lid.", "Would it float?", "Stop!", "plain text"]
    style = OptionStyle(start="Choices:", marker="({L}) ", end=end, target="({L})", layout=layout)
    block, _ = format_options(opts, style)
    for bad in ("..", ".;", "?;", "?.", "!.", "!;"):
        assert bad not in block, (bad, block)
    # options without final punctuation still get the style's punctuation
    assert "plain text." in block
    if end == ";":
        assert "Stop!" in block and "(E) plain text." in block
        block2, _ = format_options(["red", "blue."], style)
        assert "red;" in block2 and "blue.;" not in block2 and "blue.." not in block2


def _format_reference(options: tuple[str, ...], style: OptionStyle) -> tuple[str, tuple[str, ...]]:
    """The block and targets as first written (one option at a time): the memoised
    labels and per-style facts of ``options._format`` must give these bytes."""

    def label(template: str, i: int) -> str:
        if "{" not in template:
            return template
        return template.format(L=string.ascii_uppercase[i], l=string.ascii_lowercase[i], N=i + 1)

    labelled = any(k in style.marker for k in ("{L}", "{l}", "{N}"))
    if labelled and len(options) > 26:
        style, labelled = PLAIN, False
    items = []
    n = len(options)
    for i, opt in enumerate(options):
        end = style.end if i < n - 1 else ("." if style.end else "")
        if end and opt.rstrip()[-1:] in frozenset(".?!…"):  # (an empty option ends in nothing)
            end = ""
        items.append(label(style.marker, i) + opt + end)
    sep = " " if style.layout == "inline" else "\n"
    body = style.start + sep + sep.join(items)
    targets = tuple(label(style.target, i) for i in range(n)) if labelled and style.target else options  # fmt: skip
    return "\n\n" + body, targets


_OPT_TEXT = st.lists(st.sampled_from(list("ab .?!…\n{}%日") + ["{L}"]), max_size=8).map("".join)


@settings(max_examples=300, deadline=None)
@given(
    opts=st.lists(_OPT_TEXT, min_size=1, max_size=30).map(tuple),
    k=st.integers(0, len(ALL_STYLES) + 2),
)
def test_format_matches_the_reference(opts, k):
    extra = (PLAIN, OptionStyle(marker="{x} ", end="!"), OptionStyle(marker="{N}) ", end=";", target="{N}"))  # fmt: skip
    style = (ALL_STYLES + extra)[k % (len(ALL_STYLES) + len(extra))]
    try:
        want = _format_reference(opts, style)
    except (KeyError, IndexError) as e:
        with pytest.raises(type(e)):
            format_options(opts, style)
        return
    assert format_options(opts, style) == want
    assert format_options(list(opts), style) == want  # the cached copy too
