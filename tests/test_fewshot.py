"""Few-shot exemplar selection and the length budget."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flan_data.fewshot import (
    DEFAULT_BUDGET,
    DEFAULT_SHOTS,
    PICKER_VERSION,
    CallableTokenizer,
    ExemplarPicker,
    Tokenizer,
    WhitespaceTokenizer,
    fit_count,
    pick_exemplars,
)
from flan_data.seeding import mix64_array


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


def _eligible(ids, exclude):
    return [i for i, x in enumerate(ids) if x != exclude]


def test_pick_small_pool_takes_every_other_entry_in_a_seeded_order():
    got = pick_exemplars(["a", "b", "c", "d"], k=3, exclude="b", seed=0)
    assert sorted(got) == [0, 2, 3]
    assert got == pick_exemplars(["a", "b", "c", "d"], k=3, exclude="b", seed=0)
    assert sorted(pick_exemplars(["a", "b", "c"], k=5, exclude="b", seed=0)) == [0, 2]
    orders = {tuple(pick_exemplars(["a", "b", "c", "d"], 3, "b", s)) for s in range(200)}
    assert len(orders) == 6  # every order of the three shows up


def test_pick_large_pool():
    ids = [f"e{i}" for i in range(100)]
    got = pick_exemplars(ids, k=3, exclude="e5", seed=1)
    assert len(got) == 3 and len(set(got)) == 3 and 5 not in got
    assert got == pick_exemplars(ids, k=3, exclude="e5", seed=1)
    assert got != pick_exemplars(ids, k=3, exclude="e5", seed=2)


@pytest.mark.parametrize(("ids", "k"), [([], 3), (["a"], 0), (["a", "b"], -1)])
def test_pick_nothing(ids, k):
    assert pick_exemplars(ids, k=k, exclude=None, seed=0) == []
    assert ExemplarPicker(ids, k).pick(None, 0) == []
    assert ExemplarPicker(ids, k).pick_array([None], np.zeros(1, dtype=np.uint64)) is None


def test_pick_only_the_example_itself():
    assert pick_exemplars(["x"], k=3, exclude="x", seed=0) == []


def test_pick_large_pool_of_duplicate_ids():
    # A constant id column (a misconfigured id_field): 40 entries, 38 of them "the example".
    ids = ["same"] * 38 + ["x", "y"]
    assert sorted(pick_exemplars(ids, k=3, exclude="same", seed=0)) == [38, 39]
    p = ExemplarPicker(ids, 3)
    assert sorted(p.pick("same", 0)) == [38, 39]
    seeds = np.arange(3, dtype=np.uint64)
    assert p.pick_array(["same", "x", None], seeds) is None  # a duplicated id: per row
    got = p.pick_array(["x", "y", None], seeds)
    assert got.tolist() == [p.pick(x, int(s)) for x, s in zip(["x", "y", None], seeds)]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["a", "b", "c", "d", "e", "f", "g"]) | st.text(max_size=3), max_size=60
    ),
    st.integers(0, 8),
    st.none() | st.sampled_from(["a", "b", "zz"]),
    st.integers(0, 2**64 - 1),
)
def test_pick_properties(ids, k, exclude, seed):
    got = pick_exemplars(ids, k=k, exclude=exclude, seed=seed)
    eligible = _eligible(ids, exclude)
    assert len(got) == min(max(k, 0), len(eligible))
    assert len(set(got)) == len(got)
    assert all(0 <= i < len(ids) and ids[i] != exclude for i in got)
    assert got == pick_exemplars(ids, k=k, exclude=exclude, seed=seed)  # deterministic
    assert ExemplarPicker(ids, k).pick(exclude, seed) == got


@settings(max_examples=200, deadline=None)
@given(
    st.integers(2, 700),
    st.integers(1, 8),
    st.lists(st.integers(-1, 800) | st.none(), min_size=1, max_size=40),
    st.integers(0, 2**64 - 1),
    st.integers(1, 40),
)
def test_pick_array_is_pick_per_row_for_any_batch_split(n, k, who, seed0, cut):
    # rows: pool members (never their own exemplar) and outsiders, any seeds
    ids = [f"id{i}" for i in range(n)]
    excludes = [None if w is None else f"id{w}" for w in who]
    seeds = np.array([(seed0 + 7919 * i) % 2**64 for i in range(len(who))], dtype=np.uint64)
    p = ExemplarPicker(ids, k)
    whole = p.pick_array(excludes, seeds)
    if n - 1 < k:
        assert whole is None
        return
    per_row = [p.pick(x, int(s)) for x, s in zip(excludes, seeds)]
    assert whole.tolist() == per_row
    assert per_row == [pick_exemplars(ids, k, x, int(s)) for x, s in zip(excludes, seeds)]
    parts = [
        p.pick_array(excludes[i : i + cut], seeds[i : i + cut]) for i in range(0, len(who), cut)
    ]
    assert np.concatenate(parts).tolist() == per_row  # the same whatever the batch split
    for x, row in zip(excludes, per_row):
        assert len(set(row)) == k and all(ids[j] != x for j in row)


def test_picks_are_uniform_over_ordered_tuples():
    # 6 eligible entries (7 minus the example itself), k=2: 30 ordered pairs,
    # each expected 60,000 / 30 = 2,000 times; seeds fixed, so the test is exact.
    ids = [f"e{i}" for i in range(7)]
    p = ExemplarPicker(ids, 2)
    seeds = mix64_array(np.arange(60_000, dtype=np.uint64), 12345)
    got = p.pick_array(["e3"] * 60_000, seeds)
    assert not (got == 3).any()
    pairs = got[:, 0] * 7 + got[:, 1]
    _, counts = np.unique(pairs, return_counts=True)
    assert len(counts) == 30
    chi2 = float(((counts - 2000.0) ** 2 / 2000.0).sum())
    assert chi2 < 70, chi2  # 29 degrees of freedom: p < 1e-4 beyond 70
    # a 512 pool: every entry is picked, none far from its share
    ids = [f"t{i}" for i in range(512)]
    seeds = mix64_array(np.arange(200_000, dtype=np.uint64), 99)
    ex = [ids[i % 512] for i in range(200_000)]
    got = ExemplarPicker(ids, 3).pick_array(ex, seeds)
    counts = np.bincount(got.ravel(), minlength=512)
    assert counts.min() > 0.8 * 600_000 / 512 and counts.max() < 1.2 * 600_000 / 512
    assert not (got == (np.arange(200_000) % 512)[:, None]).any()


def test_picks_come_from_the_exemplar_seed_only():
    # seeds that differ give different picks; a picker of another pool of the same
    # ids gives the same ones (nothing but ids, k and the seed enter)
    ids = [f"t{i}" for i in range(512)]
    a = ExemplarPicker(ids, 3)
    b = ExemplarPicker(list(ids), 3)
    assert a.pick("t1", 5) == b.pick("t1", 5)
    assert len({tuple(a.pick("t1", s)) for s in range(100)}) == 100
    assert PICKER_VERSION == "counter-v2"


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
