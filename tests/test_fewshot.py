"""Few-shot exemplar selection and the length budget."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flan_data.fewshot import (
    DEFAULT_BUDGET,
    DEFAULT_SHOTS,
    CallableTokenizer,
    ExemplarPicker,
    Tokenizer,
    WhitespaceTokenizer,
    fit_count,
    pick_exemplars,
)


def test_defaults():
    assert (DEFAULT_SHOTS, DEFAULT_BUDGET) == (3, 1920)


def test_whitespace_tokenizer_counts_words():
    t = WhitespaceTokenizer()
    assert t.count("") == 0
    assert t.count("  one two\nthree\tfour  ") == 4
    assert isinstance(t, Tokenizer)
    assert t.name == "whitespace"


def test_callable_tokenizer_wraps_encode():
    t = CallableTokenizer(lambda s: list(s.encode()), name="bytes")
    assert t.count("héllo") == 6
    assert t.name == "bytes"
    assert isinstance(t, Tokenizer)
    assert not isinstance(object(), Tokenizer)


def test_pick_small_pool_uses_a_shuffle_and_skips_the_example():
    got = pick_exemplars(["a", "b", "c", "d"], k=2, exclude="b", r=random.Random(0))
    assert got == [0, 3]
    assert pick_exemplars(["a", "b", "c"], k=5, exclude="b", r=random.Random(0)) in ([0, 2], [2, 0])


def test_pick_large_pool_uses_rejection_sampling():
    ids = [f"e{i}" for i in range(100)]
    got = pick_exemplars(ids, k=3, exclude="e5", r=random.Random(1))
    assert len(got) == 3 and len(set(got)) == 3 and 5 not in got
    assert got == pick_exemplars(ids, k=3, exclude="e5", r=random.Random(1))


@pytest.mark.parametrize(("ids", "k"), [([], 3), (["a"], 0), (["a", "b"], -1)])
def test_pick_nothing(ids, k):
    assert pick_exemplars(ids, k=k, exclude=None, r=random.Random(0)) == []


def test_pick_only_the_example_itself():
    assert pick_exemplars(["x"], k=3, exclude="x", r=random.Random(0)) == []


def test_pick_large_pool_of_duplicate_ids_terminates():
    # A constant id column (a misconfigured id_field) used to make the
    # rejection sampler spin forever: 40 entries, 38 of them "the example".
    ids = ["same"] * 38 + ["x", "y"]
    got = pick_exemplars(ids, k=3, exclude="same", r=random.Random(0))
    assert sorted(got) == [38, 39]


class _CountingRandom(random.Random):
    """Fails instead of hanging when a sampler loops."""

    def __init__(self, seed: int):
        super().__init__(seed)
        self.calls = 0

    def randrange(self, *a, **kw):  # type: ignore[override]
        self.calls += 1
        if self.calls > 100_000:
            raise AssertionError("pick_exemplars does not terminate")
        return super().randrange(*a, **kw)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["a", "b", "c", "d", "e", "f", "g"]) | st.text(max_size=3), max_size=60
    ),
    st.integers(0, 8),
    st.none() | st.sampled_from(["a", "b", "zz"]),
    st.integers(0, 2**32),
)
def test_pick_properties(ids, k, exclude, seed):
    got = pick_exemplars(ids, k=k, exclude=exclude, r=_CountingRandom(seed))
    eligible = [i for i, x in enumerate(ids) if x != exclude]
    assert len(got) == min(max(k, 0), len(eligible))
    assert len(set(got)) == len(got)
    assert all(ids[i] != exclude for i in got)
    assert got == pick_exemplars(
        ids, k=k, exclude=exclude, r=_CountingRandom(seed)
    )  # deterministic


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "b", "c", "d"]) | st.text(max_size=2), max_size=80),
    st.integers(0, 6),
    st.none() | st.sampled_from(["a", "b", "zz"]),
    st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=5),
)
def test_picker_picks_what_a_new_random_per_row_picks(ids, k, exclude, seeds):
    # one picker, re-seeded per row, against a fresh Random(seed) per row
    picker = ExemplarPicker(ids, k)
    for seed in seeds:
        assert picker.pick(exclude, seed) == pick_exemplars(ids, k, exclude, random.Random(seed))


def test_picker_on_a_real_sized_pool():
    ids = [f"train-{i}" for i in range(512)]
    picker = ExemplarPicker(ids, 3)
    r = random.Random(7)
    for _ in range(2000):
        seed, ex = r.getrandbits(64), ids[r.randrange(512)]
        assert picker.pick(ex, seed) == pick_exemplars(ids, 3, ex, random.Random(seed))


def test_fit_count():
    assert fit_count([10, 10, 10], query_tokens=15, budget=40) == 2
    assert fit_count([10, 10, 10], query_tokens=15, budget=45) == 3
    assert fit_count([10, 10, 10], query_tokens=50, budget=40) == 0
    assert fit_count([], query_tokens=1, budget=40) == 0
    assert (
        fit_count([5, 100, 1], query_tokens=0, budget=50) == 1
    )  # stops at the first that does not fit
    assert fit_count([10, 10], query_tokens=0, budget=22, sep_tokens=1) == 2
    assert fit_count([10, 10], query_tokens=0, budget=21, sep_tokens=1) == 1


@given(
    st.lists(st.integers(0, 50), max_size=10),
    st.integers(0, 100),
    st.integers(1, 300),
    st.integers(0, 3),
)
def test_fit_count_is_the_longest_prefix_within_budget(toks, q, budget, sep):
    n = fit_count(toks, q, budget, sep)
    assert q + sum(t + sep for t in toks[:n]) <= budget or n == 0
    if n < len(toks):
        assert q + sum(t + sep for t in toks[: n + 1]) > budget
