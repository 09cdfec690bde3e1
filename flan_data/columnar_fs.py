"""Arrow-native few-shot rendering: a record batch of source rows → composed prompts.

The few-shot half of export's hot path (issue 9), next to the zero-shot one in
:mod:`flan_data.columnar`. For a task :class:`~flan_data.columnar.TaskColumns`
can render, few-shot rows of a pool (``fs_opt`` / ``fs_noopt``) are built
without a Python object per row:

* the query is the column-wise zero-shot render of the row under its few-shot
  format (:meth:`TaskColumns.render` with ``query=True``: same seed, so the same
  template and option style as :meth:`TaskRenderer.render_batch
  <flan_data.render.TaskRenderer.render_batch>` picks);
* exemplar picks and few-shot styles come from the same hashes, for the whole
  batch (:meth:`~flan_data.fewshot.ExemplarPicker.pick_array`);
* each pool exemplar is rendered once per template, as the text around the one
  option-dependent value its input may hold (the option block or a lettered
  answer), with the facts :mod:`flan_data.compose` reads from it (does it start
  with a cue label, end with a cue line, hold a line break; is its target
  labelled) — taken from the text itself where it decides, else from the row's
  option style (each style's values and their facts are computed once);
* the query's facts are decided per template from its literal text where that
  text decides, else tested column-wise (a cheap Arrow filter, then the exact
  Python test on the few rows it cannot clear);
* the prompt column is one Arrow join over pieces taken by index: per exemplar
  input prefix, text, value, text, delimiter/target prefix, target, separator;
  then the query's prefix, text and target cue.

Every row rendered here has the bytes the per-row assembly gives it (a test
compares both over shipped tasks and edge cases). Rows it cannot decide with
certainty — a fact that depends on both the text and a value, a template with
more than one option-dependent value or a target that mixes one with text,
a whitespace-word bound over the budget (exact counts decide), a text near the
size limit, an empty query — are handed back (``fallback``) for the per-row path.

>>> import pyarrow as pa
>>> from flan_data import Catalog, Renderer
>>> from flan_data.columnar import TaskColumns
>>> tr = Renderer(Catalog.load()).task_renderer("anli_r1")
>>> recs = [{"premise": f"A cat sleeps {i}.", "hypothesis": "An animal rests.", "label": i % 3}
...         for i in range(40)]
>>> pool = [tr.exemplar(f"p{i}", r) for i, r in enumerate(recs)]
>>> b = pa.RecordBatch.from_pylist(recs)
>>> ids = [f"q{i}" for i in range(40)]
>>> res = render_fewshot(TaskColumns.of(tr), b, ids, fmt="fs_opt", seed=0, split="train", pool=pool)
>>> want = tr.render_batch(list(zip(ids, recs)), split="train", fmt="fs_opt", seed=0, pool=pool,
...                        columnar=False)
>>> got = dict(zip(res.rows.tolist(), res.inputs.to_pylist()))
>>> all(got[i] == want["inputs"][i] for i in got) and len(got) > 30
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jinja2.filters
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import columnar, lru
from .columnar import WHITESPACE, TaskColumns, _join, item_columns, items_batch, merged_columns
from .compose import _target_labelled
from .fewshot import ExemplarPicker, WhitespaceTokenizer
from .options import ALL_STYLES, PLAIN, format_options
from .render import (
    _SALT_EXEMPLARS,
    _SALT_FSSTYLE,
    _SALT_OPTIONS,
    Exemplar,
    is_fewshot_format,
)
from .seeding import SeedPrefix, choose, mix64_array
from .textcheck import ends_with_cue, starts_with_label

#: Rows rendered here and rows handed back, in this process (tests count work, never time).
STATS = {"rows": 0, "fallback_rows": 0}
#: Pools whose exemplar tables are kept (a worker renders a whole mixture's tasks).
TABLES_KEPT = 4
#: The kept pools' tables, least recently used first (:func:`flan_data.lru.touch`).
_LIVE: list[Any] = []
_STRING = pa.string()


@dataclass
class FewShotRendered:
    """One batch's few-shot rows (``rows``: indices into the batch, in output
    order) and the rows left to the per-row path (``fallback``, ascending)."""

    rows: np.ndarray
    inputs: pa.Array
    targets: pa.Array
    template: np.ndarray  # per output row: index into ``template_ids``
    template_ids: tuple[str, ...]
    seeds: np.ndarray  # uint64 per output row (the ``seed`` column)
    fewshot_style: np.ndarray  # per output row: index into ``fewshot_style_ids``
    fewshot_style_ids: tuple[str, ...]
    exemplar_ids: pa.Array  # list<string> per output row
    fallback: np.ndarray


def supports(tc: TaskColumns | None, fmt: str, pool: Sequence[Exemplar] | None, turns: bool = False) -> bool:  # fmt: skip
    """Whether rows of ``fmt`` with exemplars from ``pool`` can render here."""
    if tc is None or pool is None or turns or not columnar.ENABLED or not is_fewshot_format(fmt):
        return False
    if tc.per_row:  # per-record options: exemplars and queries each have their own
        return False
    tr = tc.tr
    cfg = tr.config
    if tr.task.exemplar_field or cfg.shots <= 0 or type(cfg.tokenizer) is not WhitespaceTokenizer:
        return False
    plan = tc._plan(fmt, None, query=True)
    return plan is not None and any(p is not None for p in plan[1])


def render_fewshot(tc: TaskColumns, batch: pa.RecordBatch, ids: Sequence[str], *, fmt: str, seed: int,
                   split: str, pool: Sequence[Exemplar], seeds: np.ndarray | None = None) -> FewShotRendered:  # fmt: skip
    """Render every row of ``batch`` (raw source rows, example ids ``ids``) in the
    few-shot format ``fmt`` with exemplars from ``pool``, as ``render_batch(...,
    fmt=fmt, seed=seed, pool=pool)`` does; rows it cannot decide are in
    ``fallback``. ``seeds``: the rows' example seeds when already derived."""
    n = batch.num_rows
    tr = tc.tr
    styles = tr._styles
    fs_ids = tuple(s.id for s in styles)
    if seeds is None:
        seeds = SeedPrefix(seed, tr.task.name, split).derive_many(ids)
    q = tc.render(batch, ids, fmt=fmt, seed=seed, split=split, seeds=seeds, query=True)
    m = len(q.rows)
    if not m:
        return _none(n, q.template_ids, fs_ids, q.fallback)
    plan = tc._plan(fmt, None, query=True)
    cands, tplans, style_on = plan
    tab = _Tables.of(tc, pool, style_on, cands, tplans)
    k = tr.config.shots
    rows = q.rows
    row_ids = pa.array(ids, _STRING) if not isinstance(ids, pa.Array) else ids
    excl = pc.index_in(row_ids.take(pa.array(rows)), value_set=tab.ids)  # first equal pool entry
    picks = tab.picker.pick_positions(
        excl.fill_null(-1).to_numpy(zero_copy_only=False), mix64_array(q.seeds, _SALT_EXEMPLARS)
    )
    if picks is None:  # a pool of at most k entries, or duplicated ids: per row
        return _none(n, q.template_ids, fs_ids, np.arange(n, dtype=np.int64))
    f = choose(q.seeds, _SALT_FSSTYLE, len(styles))
    t = q.template
    if style_on:
        nst = len(tab.style_list)
        s = (
            np.zeros(m, dtype=np.int64)
            if nst == 1
            else choose(q.seeds, _SALT_OPTIONS, len(ALL_STYLES))
        )
    else:
        s = np.zeros(m, dtype=np.int64)
    ok = np.ones(m, dtype=bool)

    # -- the query's facts
    qi, qt = q.inputs, q.targets
    qbytes = pc.binary_length(qi).to_numpy()
    ok &= qbytes > 0
    lab_q = _query_labelled(tab, qi, t)
    cue_q = _query_cued(tab, qi, t, s)
    nl_q = _query_nl(tab, qi, t) if tab.need_nl else np.zeros(m, dtype=bool)
    tl_q = _target_labelled_column(qt)
    # -- the exemplars' facts, (m, k)
    code = t[:, None] * tab.P + picks
    ok &= tab.e_ok[code].all(axis=1)
    kind = tab.e_kind[code]
    has_v = kind >= 0
    sv = s[:, None]
    vi = np.where(
        has_v,
        ((sv * tab.NV + np.maximum(kind, 0)) * tab.NF + tab.e_filt[code]) * 4 + tab.e_var[code],
        0,
    )
    lab = tab.e_lab[code]
    lab = np.where(lab >= 0, lab, np.where(has_v & (tab.v_nl0[vi] == 1), tab.e_lab_nl[code], -1))
    cue = tab.e_cue[code]
    cue = np.where(cue == 2, np.where(has_v, tab.v_cue[vi], -1), cue)
    nl = (tab.e_nl[code] == 1) | (has_v & (tab.v_hasnl[vi] == 1))
    tkind = tab.e_tkind[code]
    has_t = tkind >= 0
    tvi = np.where(
        has_t, ((sv * tab.NV + np.maximum(tkind, 0)) * tab.NF + tab.e_tfilt[code]) * 4 + 3, 0
    )
    tl = np.where(has_t, tab.v_lab[tvi], tab.e_tl[code])
    blank = has_v & (tab.v_blank[vi] != 0) | has_t & (tab.v_blank[tvi] != 0)
    ok &= (
        ~blank.any(axis=1) & (lab >= 0).all(axis=1) & (cue >= 0).all(axis=1) & (tl >= 0).all(axis=1)
    )
    ok &= (lab_q >= 0) & (cue_q >= 0) & (tl_q >= 0)
    # texts near the size limit: per row
    raw = (
        tab.e_raw[code]
        + np.where(has_v, tab.v_len[vi - tab.e_var[code]], 0)
        + np.where(has_t, tab.v_len[tvi - 3], 0)
    )
    ok &= (raw <= tc.limit).all(axis=1)
    # the whitespace-word bound of the whole prompt (as the per-row assembly's)
    st = tab.style_tokens[f]
    elen = tab.e_len[code] + np.where(has_v, tab.v_len[vi], 0) + np.where(has_t, tab.v_len[tvi], 0)
    ex_words = (elen // 2 + 1).sum(axis=1) + k * st
    qb = qbytes + pc.binary_length(qt).to_numpy()
    words = qb // 2 + 1 + st + ex_words  # bytes bound characters
    over = ok & (words > tab.budget)
    if over.any():
        ql = pc.add(pc.utf8_length(qi), pc.utf8_length(qt)).to_numpy()
        words = ql // 2 + 1 + st + ex_words
        fits = words <= tab.budget
        # over the bound: exact whitespace counts decide whether all k exemplars fit
        # (then the per-row assembly keeps them all too), where no exemplar holds an
        # option value (its text, and so its count, is one per pool entry)
        exact = np.flatnonzero(over & ~fits & ~has_v.any(axis=1) & ~has_t.any(axis=1))
        ok &= fits
        if len(exact):
            ok[exact] = _all_fit(tab, qi, qt, code, st, exact, k)
    good = np.flatnonzero(ok)
    fb = [q.fallback, rows[~ok]]
    fallback = np.sort(np.concatenate(fb))
    if not len(good):
        return _none(n, q.template_ids, fs_ids, fallback)
    # -- the pieces, by index into the string store: per exemplar its input prefix
    # (after the separator from the one before), input text, value, text, the
    # delimiter and target prefix, target; then the separator and query prefix
    fg = f[good]
    lab, cue, nl, tl = lab[good], cue[good], nl[good], tl[good]
    code, vi, tvi, has_v, has_t = code[good], vi[good], tvi[good], has_v[good], has_t[good]
    g = len(good)
    empty = tab.store.empty
    nlf = nl & tab.fs_same_line[fg][:, None]
    mid = tab.mid_idx[fg[:, None], np.where(cue == 1, 0, 1 + 2 * nlf + tl)]
    t_ix = np.where(has_t, tab.v_idx[tvi], tab.e_t[code])
    cols = []
    for e in range(k):
        cols.append((tab.lead_idx if e == 0 else tab.seplead_idx)[fg, lab[:, e]])
        cols.append(tab.e_a[code[:, e]])
        if tab.any_v:
            cols.append(np.where(has_v[:, e], tab.v_idx[vi[:, e]], empty))
        if tab.any_c:
            cols.append(tab.e_c[code[:, e]])
        cols.append(mid[:, e])
        cols.append(t_ix[:, e])
    cols.append(tab.seplead_idx[fg, lab_q[good]])
    flat = np.stack(cols, axis=1)
    nl_qg = nl_q[good] & tab.fs_same_line[fg]
    q_mid = tab.qmid_idx[fg, np.where(cue_q[good] == 1, 0, 1 + 2 * nl_qg + tl_q[good])]
    arr = tab.array
    w = flat.shape[1]
    ex_text = pc.binary_join(pa.ListArray.from_arrays(pa.array(np.arange(0, g * w + 1, w, dtype=np.int32)),
                                                      arr.take(pa.array(flat.ravel()))), "")  # fmt: skip
    every = g == m
    sel = None if every else pa.array(good)
    inputs = pc.binary_join_element_wise(ex_text, qi if every else qi.take(sel), arr.take(pa.array(q_mid)), "")  # fmt: skip
    ex_ids = pa.ListArray.from_arrays(pa.array(np.arange(0, g * k + 1, k, dtype=np.int32)),
                                      tab.ids.take(pa.array(picks[good].ravel())))  # fmt: skip
    out_rows = rows[good]
    STATS["rows"] += g
    STATS["fallback_rows"] += len(fallback)
    return FewShotRendered(
        rows=out_rows,
        inputs=inputs,
        targets=qt if every else qt.take(sel),
        template=t[good],
        template_ids=q.template_ids,
        seeds=q.seeds[good],
        fewshot_style=fg,
        fewshot_style_ids=fs_ids,
        exemplar_ids=ex_ids,
        fallback=fallback,
    )


def _all_fit(tab: _Tables, qi: pa.Array, qt: pa.Array, code: np.ndarray, st: np.ndarray,
             rows: np.ndarray, k: int) -> np.ndarray:  # fmt: skip
    """Whether the query and all ``k`` exemplars of each of ``rows`` fit the budget
    in whitespace words, counted as the per-row assembly counts them (``fit_count``
    keeps them all exactly then): query input + style tokens + query target, and
    per exemplar its input + target + style tokens."""
    take = pa.array(rows)
    qw = np.array([len(a.split()) + len(b.split())
                   for a, b in zip(qi.take(take).to_pylist(), qt.take(take).to_pylist())],
                  dtype=np.int64)  # fmt: skip
    cs = code[rows]
    cw = tab.e_words
    need = np.unique(cs[cw[cs] < 0])
    if len(need):
        arr = tab.array
        a_txt = arr.take(pa.array(tab.e_a[need])).to_pylist()
        t_txt = arr.take(pa.array(tab.e_t[need])).to_pylist()
        cw[need] = [len(a.split()) + len(b.split()) for a, b in zip(a_txt, t_txt)]
    total = qw + st[rows] * (k + 1) + cw[cs].sum(axis=1)
    return total <= tab.budget


def _none(n: int, tids, fs_ids, fallback: np.ndarray) -> FewShotRendered:
    STATS["fallback_rows"] += len(fallback)
    z = np.zeros(0, dtype=np.int64)
    empty = pa.array([], _STRING)
    return FewShotRendered(z, empty, empty, z, tids, np.zeros(0, dtype=np.uint64), z, fs_ids,
                           pa.array([], pa.list_(_STRING)), np.asarray(fallback, dtype=np.int64))  # fmt: skip


# -- facts of texts


def label_fixed(a: str) -> bool | None:
    """``starts_with_label(a + x)`` for every ``x``, or None when some ``x`` could
    change it (the test reads the first 64 characters, and for a colon label the
    text up to the character after the first colon)."""
    if len(a) >= 64:
        return starts_with_label(a)
    s = a.lstrip(" \t")
    if len(s) < 2 or s[:1] in ("[", "#") or s[:2] in ("Q.", "A."):
        return None
    c = s.find(":")
    if c < 0 or c + 2 > len(s) or "(" in s[:c]:
        return None
    return starts_with_label(a)


# candidates of starts_with_label among the first 64 characters, and of
# ends_with_cue among the last line (a colon or bracket in it, or a dot in its
# first three characters): a row that does not match gives False
_LABEL_CAND = r"^[ \t]*(?:\[|#|Q\.|A\.)|:"
_CUE_CAND = r"(?:^|\n)(?:[^\n]{0,2}\.|[^\n]*[:\]])[^\n]*$"


def labelled_column(arr: pa.Array) -> np.ndarray:
    """``starts_with_label`` of every string of ``arr`` (no nulls) as a bool array."""
    n = len(arr)
    out = np.zeros(n, dtype=bool)
    if not n:
        return out
    head = pc.utf8_slice_codeunits(arr, 0, 64)
    cand = np.flatnonzero(
        pc.match_substring_regex(head, _LABEL_CAND).to_numpy(zero_copy_only=False)
    )
    if len(cand):
        vals = head.take(pa.array(cand)).to_pylist()
        out[cand] = [starts_with_label(v) for v in vals]
    return out


def cued_column(arr: pa.Array) -> np.ndarray:
    """``ends_with_cue`` of every string of ``arr`` (no nulls) as a bool array."""
    n = len(arr)
    out = np.zeros(n, dtype=bool)
    if not n:
        return out
    # a cue line ends with ":", "]", "." or a letter of a cue noun (ASCII), then
    # maybe spaces or tabs: a text ending otherwise ("...?") is no cue
    maybe = np.flatnonzero(np.isin(_last_bytes(arr), _CUE_LAST_WS))
    if not len(maybe):
        return out
    sub = arr if len(maybe) == n else arr.take(pa.array(maybe))
    hit = pc.match_substring_regex(sub, _CUE_CAND).to_numpy(zero_copy_only=False)
    cand = maybe[hit]
    if len(cand):
        vals = sub.filter(pa.array(hit)).to_pylist()
        out[cand] = [ends_with_cue(v) for v in vals]
    return out


_CUE_LAST = np.frombuffer(b":]." + bytes(range(65, 91)) + bytes(range(97, 123)), dtype=np.uint8)
_CUE_LAST_WS = np.concatenate([_CUE_LAST, np.frombuffer(b" \t", dtype=np.uint8)])


def _last_bytes(arr: pa.Array) -> np.ndarray:
    """The last byte of every string of ``arr`` (0 for an empty one)."""
    n = len(arr)
    bufs = arr.buffers()
    large = arr.type == pa.large_string()
    offs = np.frombuffer(bufs[1], dtype=np.int64 if large else np.int32)[
        arr.offset : arr.offset + n + 1
    ]
    if bufs[2] is None or not len(bufs[2]):
        return np.zeros(n, dtype=np.uint8)
    data = np.frombuffer(bufs[2], dtype=np.uint8)
    end = offs[1:].astype(np.int64)
    out = data[np.maximum(end - 1, 0)]
    return np.where(end > offs[:-1], out, 0).astype(np.uint8)


def _query_labelled(tab: _Tables, qi: pa.Array, t: np.ndarray) -> np.ndarray:
    fixed = tab.q_lab[t]
    out = fixed.copy()
    rest = np.flatnonzero(fixed < 0)
    if len(rest):
        out[rest] = labelled_column(qi.take(pa.array(rest)))
    return out


def _query_cued(tab: _Tables, qi: pa.Array, t: np.ndarray, s: np.ndarray) -> np.ndarray:
    fixed = tab.q_cue[t]
    out = fixed.copy()
    byv = fixed == 2  # the option block ends the text: its last line decides
    if byv.any():
        vi = ((s[byv] * tab.NV) * tab.NF + tab.q_cue_filt[t[byv]]) * 4 + 2
        out[byv] = tab.v_cue[vi]  # -1 (per row below) where the block has no line break
    rest = np.flatnonzero(out < 0)
    if len(rest):
        out[rest] = cued_column(qi.take(pa.array(rest)))
    return out


def _query_nl(tab: _Tables, qi: pa.Array, t: np.ndarray) -> np.ndarray:
    out = tab.q_nl[t] == 1
    rest = np.flatnonzero(tab.q_nl[t] < 0)
    if len(rest):
        out[rest] = pc.match_substring(qi.take(pa.array(rest)), "\n").to_numpy(zero_copy_only=False)
    return out


def _target_labelled_column(arr: pa.Array) -> np.ndarray:
    # compose_query: ``targets and _target_labelled(targets)``; targets recur
    # (answers, letters): once per distinct text, else the Arrow filter first
    n = len(arr)
    out = np.zeros(n, dtype=np.int64)
    if not n:
        return out
    enc = arr.dictionary_encode()
    vals = enc.dictionary.to_pylist() if len(enc.dictionary) * 8 <= n else None
    if vals is not None:
        labs = np.array([bool(v) and _target_labelled(v) for v in vals] or [0], dtype=np.int64)
        return labs[enc.indices.to_numpy(zero_copy_only=False)]
    head = pc.utf8_slice_codeunits(arr, 0, 64)
    cand = np.flatnonzero(
        pc.match_substring_regex(head, _LABEL_CAND).to_numpy(zero_copy_only=False)
    )
    if len(cand):
        vals = arr.take(pa.array(cand)).to_pylist()
        out[cand] = [bool(v) and _target_labelled(v) for v in vals]
    return out


# -- the string store and the per-pool tables


class _Store:
    """Strings by index, as one Arrow array: short constants (distinct, added one
    by one) and whole Arrow arrays of exemplar texts (added as blocks)."""

    def __init__(self) -> None:
        self._chunks: list[pa.Array] = []
        self._pending: list[str] = []
        self._index: dict[str, int] = {}
        self.size = 0
        self._arr: pa.Array | None = None
        self.empty = self.add("")

    def add(self, s: str) -> int:
        i = self._index.get(s)
        if i is None:
            i = self._index[s] = self.size
            self._pending.append(s)
            self.size += 1
            self._arr = None
        return i

    def add_array(self, arr: pa.Array) -> int:
        """Append ``arr``'s strings; the index of its first."""
        self._flush()
        base = self.size
        self._chunks.append(arr.cast(_STRING) if arr.type != _STRING else arr)
        self.size += len(arr)
        self._arr = None
        return base

    def _flush(self) -> None:
        if self._pending:
            self._chunks.append(pa.array(self._pending, _STRING))
            self._pending = []

    def array(self) -> pa.Array:
        if self._arr is None:
            self._flush()
            self._arr = (
                self._chunks[0] if len(self._chunks) == 1 else pa.concat_arrays(self._chunks)
            )
            self._chunks = [self._arr]
        return self._arr

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self._chunks) + sum(len(x) for x in self._pending)


#: Bytes of exemplar text all kept tables may hold together; beyond it the least
#: recently used are dropped (built again when next needed: same bytes).
TABLES_BYTES = 128 << 20


class _Tables:
    """One pool's exemplars rendered for every template of a few-shot format,
    as the pieces and facts the prompt join needs (see :func:`render_fewshot`).

    Entry code ``template * P + pool index``: ``e_a``/``e_c`` the store index of
    the text before / after the option-dependent value (``e_kind``: -1 none, 0
    the block, ``1 + i`` option ``i``'s lettered answer; ``e_filt`` its filter,
    ``e_var`` which sides of it the strip reaches: 1 left, 2 right), ``e_t`` the
    target (or ``e_tkind``: the lettered answer alone), facts -1 where not
    certain (the row goes per row), 2 where the value decides. Values of option
    styles (``v_*``, index ``((style * NV + slot) * NF + filter) * 4 + variant``)
    are computed for every style, for the (slot, filter, variant) keys used."""

    @classmethod
    def of(cls, tc: TaskColumns, pool, style_on: bool, cands, tplans) -> _Tables:
        key = (style_on, tuple(ct.spec.id for ct in cands), tc.tr.config.shots)
        cache = tc.__dict__.setdefault("_fs_tables", {})
        hit = cache.get(key)
        if hit is None or hit.pool is not pool:
            if hit is not None:
                hit.drop()
            hit = cache[key] = cls(tc, pool, style_on, cands, tplans)
            hit.key = key
        lru.touch(_LIVE, hit, kept=TABLES_KEPT, max_bytes=TABLES_BYTES, size=_tables_bytes,
                  evict=cls.drop)  # fmt: skip
        return hit

    def drop(self) -> None:
        """Forget these tables (built again when next needed)."""
        cache = self.tc.__dict__.get("_fs_tables", {})
        if cache.get(self.key) is self:
            del cache[self.key]
        if self in _LIVE:
            _LIVE.remove(self)

    def __init__(self, tc: TaskColumns, pool, style_on: bool, cands, tplans):
        tr = tc.tr
        cfg = tr.config
        self.key = None
        self.tc, self.pool, self.style_on = tc, pool, style_on
        self.picker = ExemplarPicker([e.example_id for e in pool], cfg.shots)
        self.ids = pa.array([e.example_id for e in pool], _STRING)
        self.budget = cfg.budget
        styles = tr._styles
        tok = cfg.tokenizer
        self.style_tokens = np.array([tok.count(fs.input_prefix) + tok.count(fs.target_prefix) for fs in styles], dtype=np.int64)  # fmt: skip
        self.need_nl = any("\n" not in fs.x_y_delimiter for fs in styles)
        self.fs_same_line = np.array(["\n" not in fs.x_y_delimiter for fs in styles])
        S = self.store = _Store()
        # the first exemplar's input prefix; then separator + the next one's (or the query's)
        self.lead_idx = np.array(
            [[S.add(fs.input_prefix), S.empty] for fs in styles], dtype=np.int64
        )
        self.seplead_idx = np.array([[S.add(fs.example_separator + fs.input_prefix), S.add(fs.example_separator)]
                                     for fs in styles], dtype=np.int64)  # fmt: skip
        mids, qmids = [], []
        for fs in styles:
            row, qrow = [S.add(" ")], [S.empty]
            for nlf in (0, 1):
                d = "\n" if nlf and "\n" not in fs.x_y_delimiter else fs.x_y_delimiter
                for tl in (0, 1):
                    tp = "" if tl else fs.target_prefix
                    row.append(S.add(d + tp))
                    qrow.append(S.add((d + tp).rstrip()))
            mids.append(row)
            qmids.append(qrow)
        self.mid_idx = np.array(mids, dtype=np.int64)
        self.qmid_idx = np.array(qmids, dtype=np.int64)
        # option styles and the values they give
        opts = tc.opts
        self.opts = opts
        self.style_list = (
            ([PLAIN] if cfg.option_style == "plain" else list(ALL_STYLES)) if style_on else []
        )
        self.NV = 1 + (len(opts) if opts else 0)
        filts: dict[str | None, int] = {None: 0}
        for tp in tplans:
            if tp is None:
                continue
            for parts in tp:
                for p in parts:
                    if isinstance(p, tuple) and p[0] in ("block", "letter"):
                        filts.setdefault(p[1], len(filts))
        self.filters = list(filts)
        self.NF = len(filts)
        nv = max(len(self.style_list), 1) * self.NV * self.NF * 4
        self.v_idx = np.full(nv, S.empty, dtype=np.int64)
        self.v_len = np.zeros(nv, dtype=np.int64)
        self.v_blank = np.ones(nv, dtype=np.int8)
        self.v_nl0 = np.zeros(nv, dtype=np.int8)  # starts with a line break
        self.v_hasnl = np.zeros(nv, dtype=np.int8)
        self.v_cue = np.full(nv, -1, dtype=np.int64)  # ends_with_cue, -1 without a line break
        self.v_lab = np.full(nv, -1, dtype=np.int64)  # _target_labelled
        self._keys: set[tuple[int, int, int]] = set()  # (slot, filter, variant) used
        self._entries(tc, pool, cands, tplans, filts)
        self._values()
        # which piece columns can hold text (others are left out of the join)
        self.any_v = bool((self.e_kind >= 0).any())
        self.any_c = bool((self.e_c[self.e_ok] != S.empty).any())
        self.array = S.array()
        self.nbytes = S.nbytes

    # -- option styles

    def _values(self) -> None:
        """Every style's value (and its facts) for each (slot, filter, variant) used."""
        if not self.style_list or not self._keys:
            return
        S = self.store
        NV, NF = self.NV, self.NF
        keys = sorted(self._keys)
        fns = [None if f is None else jinja2.filters.FILTERS[f] for f in self.filters]
        xs: list[int] = []
        facts: list[tuple] = []
        memo: dict[tuple[str, bool, bool], tuple] = {}  # values recur across styles
        add = S.add
        for si, style in enumerate(self.style_list):
            block, letters = format_options(self.opts, style)
            vals = (block, *letters)
            for slot, fi, var in keys:
                v1 = vals[slot] if fns[fi] is None else fns[fi](vals[slot])
                if type(v1) is not str:
                    continue  # stays blank: rows go per row
                v = (
                    v1
                    if var == 0
                    else v1.lstrip()
                    if var == 1
                    else v1.rstrip()
                    if var == 2
                    else v1.strip()
                )
                mk = (v, slot == 0, var == 3)
                fact = memo.get(mk)
                if fact is None:
                    nl = "\n" in v
                    fact = memo[mk] = (add(v), len(v), not v.strip(), v[:1] == "\n", nl,
                                       ends_with_cue(v) if nl and slot == 0 else -1,
                                       bool(v) and _target_labelled(v) if var == 3 else -1)  # fmt: skip
                xs.append(((si * NV + slot) * NF + fi) * 4 + var)
                facts.append(fact)
        if not xs:
            return
        idx, lens, blank, nl0, hasnl, cue, lab = (list(c) for c in zip(*facts))
        x = np.array(xs, dtype=np.int64)
        self.v_idx[x] = idx
        self.v_len[x] = lens
        self.v_blank[x] = blank
        self.v_nl0[x] = nl0
        self.v_hasnl[x] = hasnl
        self.v_cue[x] = cue
        self.v_lab[x] = lab

    # -- pool entries

    def _entries(self, tc: TaskColumns, pool, cands, tplans, filts) -> None:
        S = self.store
        P = self.P = len(pool)
        T = len(cands)
        n = T * P
        self.e_ok = np.zeros(n, dtype=bool)
        self.e_kind = np.full(n, -1, dtype=np.int64)
        self.e_filt = np.zeros(n, dtype=np.int64)
        self.e_var = np.zeros(n, dtype=np.int64)
        self.e_lab = np.full(n, -1, dtype=np.int64)
        self.e_lab_nl = np.full(n, -1, dtype=np.int64)
        self.e_cue = np.full(n, -1, dtype=np.int64)
        self.e_nl = np.zeros(n, dtype=np.int64)
        self.e_tkind = np.full(n, -1, dtype=np.int64)
        self.e_tfilt = np.zeros(n, dtype=np.int64)
        self.e_tl = np.full(n, -1, dtype=np.int64)
        self.e_len = np.zeros(n, dtype=np.int64)  # characters of the stripped texts, values apart
        self.e_raw = np.zeros(n, dtype=np.int64)  # characters of the raw texts, values apart
        self.e_words = np.full(n, -1, dtype=np.int64)  # whitespace words (no value), -1 unknown
        self.e_a = np.full(n, S.empty, dtype=np.int64)
        self.e_c = np.full(n, S.empty, dtype=np.int64)
        self.e_t = np.full(n, S.empty, dtype=np.int64)
        # the query's facts per template: -1 per row, 2 the option block decides
        self.q_lab = np.full(T, -1, dtype=np.int64)
        self.q_cue = np.full(T, -1, dtype=np.int64)
        self.q_cue_filt = np.zeros(T, dtype=np.int64)
        self.q_nl = np.full(T, -1, dtype=np.int64)
        if not P:
            return
        cols, valid, ans = self._pool_columns(tc, pool)
        for ti, tp in enumerate(tplans):
            if tp is None:
                continue
            self._query_facts(ti, tp, filts)
            ins = _cut(tp[0])
            tgs = _cut(tp[1])
            if ins is None or tgs is None:
                continue
            (i0, im, i1), (t0, tm, t1) = ins, tgs
            if tm is not None and (t0 or t1 or tm[0] != "letter"):
                continue  # a target mixing a value with text: per row
            sl = slice(ti * P, ti * P + P)
            ok = valid.copy()
            a_raw = _join_seg(i0, cols, P)
            # a leading literal that decides the label test for every entry
            lit = i0[0] if i0 and isinstance(i0[0], str) and i0[0].strip() else None
            lit_lab = None if lit is None else label_fixed(lit.lstrip())
            if im is None:
                text = pc.utf8_trim(a_raw, WHITESPACE)
                self.e_a[sl] = S.add_array(text) + np.arange(P)
                self.e_lab[sl] = labelled_column(text) if lit_lab is None else lit_lab
                self.e_cue[sl] = cued_column(text)
                self.e_nl[sl] = pc.match_substring(text, "\n").to_numpy(zero_copy_only=False)
                self.e_len[sl] = pc.utf8_length(text).to_numpy()
                raw = pc.utf8_length(a_raw).to_numpy()
            else:
                if im[0] == "letter":
                    ok &= ans >= 0
                c_raw = _join_seg(i1, cols, P)
                aa = pc.utf8_ltrim(a_raw, WHITESPACE)
                cc = pc.utf8_rtrim(c_raw, WHITESPACE)
                la = pc.utf8_length(aa).to_numpy()
                lc = pc.utf8_length(cc).to_numpy()
                b0, b1 = la == 0, lc == 0
                self.e_kind[sl] = 0 if im[0] == "block" else 1 + ans
                fi = filts[im[1]]
                self.e_filt[sl] = fi
                var = b0 | (b1.astype(np.int64) << 1)
                self.e_var[sl] = var
                if im[0] == "block":
                    self._keys.update((0, fi, v) for v in np.unique(var).tolist())
                else:
                    self._keys.update(
                        (1 + a, fi, v) for a in range(self.NV - 1) for v in np.unique(var).tolist()
                    )
                self.e_a[sl] = S.add_array(aa) + np.arange(P)
                self.e_c[sl] = S.add_array(cc) + np.arange(P)
                # label: decided by the text alone (64 characters, or a colon label
                # within it), else by the text followed by a line break (the block's)
                lab_nl = np.zeros(P, dtype=np.int64)
                if lit_lab is not None:
                    lab = np.full(P, int(lit_lab), dtype=np.int64)
                    short = np.zeros(0, dtype=np.int64)
                else:
                    lab = labelled_column(aa).astype(np.int64)
                    short = np.flatnonzero((la < 64) & ~b0)
                if len(short):
                    vals = aa.take(pa.array(short)).to_pylist()
                    for p, a in zip(short.tolist(), vals):
                        lf = label_fixed(a)
                        lab[p] = -1 if lf is None else lf
                        lab_nl[p] = starts_with_label(a + "\n")
                lab[b0] = -1
                self.e_lab[sl] = lab
                self.e_lab_nl[sl] = np.where(b0, -1, lab_nl)
                nl_c = pc.match_substring(cc, "\n").to_numpy(zero_copy_only=False)
                self.e_cue[sl] = np.where(b1, 2, np.where(nl_c, cued_column(cc), -1))
                self.e_nl[sl] = pc.match_substring(aa, "\n").to_numpy(zero_copy_only=False) | nl_c
                self.e_len[sl] = la + lc
                raw = pc.utf8_length(a_raw).to_numpy() + pc.utf8_length(c_raw).to_numpy()
            if tm is None:
                g_raw = _join_seg(t0, cols, P)
                gs = pc.utf8_trim(g_raw, WHITESPACE)
                self.e_t[sl] = S.add_array(gs) + np.arange(P)
                self.e_tl[sl] = _target_labelled_column(gs)
                self.e_len[sl] += pc.utf8_length(gs).to_numpy()
                raw = raw + pc.utf8_length(g_raw).to_numpy()
            else:
                ok &= ans >= 0
                tf = filts[tm[1]]
                self.e_tkind[sl] = 1 + ans
                self.e_tfilt[sl] = tf
                self._keys.update((1 + a, tf, 3) for a in range(self.NV - 1))
            self.e_raw[sl] = raw
            self.e_ok[sl] = ok

    def _pool_columns(self, tc: TaskColumns, pool):
        P = len(pool)
        valid = np.ones(P, dtype=bool)
        cols: dict[str, pa.Array] = {}
        for fd in tc.fields:
            vals = []
            for p, e in enumerate(pool):
                v = e.fields.get(fd.name)
                if type(v) is not str:
                    valid[p] = False
                    v = ""
                vals.append(v)
            cols[fd.name] = pa.array(vals, _STRING)
        ans = np.full(P, -1, dtype=np.int64)
        opts = tc.opts
        if opts is not None:
            first: dict[str, int] = {}
            for i, o in enumerate(opts):
                first.setdefault(o, i)
            for p, e in enumerate(pool):
                o = e.fields.get("options")
                if o is not None and tuple(o) != opts:
                    valid[p] = False  # not the task's options: per row
                a = e.fields.get("answer")
                if type(a) is str and a in first:
                    ans[p] = first[a]
        return cols, valid, ans

    def _query_facts(self, ti: int, tp, filts) -> None:
        parts_i, parts_t = tp
        # the text starts with the template's first literal (stripped) when it is not blank
        lead = parts_i[0] if parts_i and isinstance(parts_i[0], str) else ""
        if lead.strip():
            lf = label_fixed(lead.lstrip())
            if lf is not None:
                self.q_lab[ti] = lf
        last = parts_i[-1] if parts_i else ""
        before = parts_i[-2] if len(parts_i) > 1 else None
        if isinstance(last, str):
            tail = last.rstrip()
            if tail and "\n" in tail:
                self.q_cue[ti] = ends_with_cue(tail)
            elif tail and tail[-1].encode()[-1] not in _CUE_LAST:
                self.q_cue[ti] = 0  # no cue line ends so (see cued_column)
            elif not tail and isinstance(before, tuple) and before[0] == "block" and self.style_on:
                self.q_cue[ti] = 2
                self.q_cue_filt[ti] = filts[before[1]]
        elif last[0] == "block" and self.style_on:
            self.q_cue[ti] = 2
            self.q_cue_filt[ti] = filts[last[1]]
        if self.q_cue[ti] == 2:
            self._keys.add((0, int(self.q_cue_filt[ti]), 2))
        # a line break between two non-blank literal characters survives the strip
        if "\n" in "".join(p for p in parts_i if isinstance(p, str)).strip():
            self.q_nl[ti] = 1


def _tables_bytes(t: _Tables) -> int:
    return t.nbytes


def _cut(parts) -> tuple | None:
    """``(before, marker, after)`` of a template part list around its one
    option-dependent value (marker None: there is none); None for more than one."""
    at = [k for k, p in enumerate(parts) if isinstance(p, tuple) and p[0] in ("block", "letter")]
    if not at:
        return tuple(parts), None, ()
    if len(at) > 1:
        return None
    k = at[0]
    return tuple(parts[:k]), parts[k], tuple(parts[k + 1 :])


def _join_seg(parts, cols: dict[str, pa.Array], n: int) -> pa.Array:
    """The texts of template parts (literals and fields) over the pool columns."""
    if not parts:
        return pa.array([""] * n, _STRING)
    return _join(parts, cols, {}, n)


# -- render_batch's entry point


def render_items(tr, items: Sequence[tuple[str, Any]], *, split: str, fmt: str, seed: int,
                 pool: Sequence[Exemplar] | None, errors: list | None = None,
                 turns: bool = False) -> dict[str, list[Any]] | None:  # fmt: skip
    """:meth:`TaskRenderer.render_batch` of few-shot ``(example id, raw record)``
    items through :func:`render_fewshot` (the records' field columns as Arrow
    arrays); the rows it hands back go through ``render_batch`` itself. The same
    columns, rows in item order; None when the task, the pool or the values do
    not allow it, or when a record is bad (the row-by-row path then words,
    orders or raises its errors)."""
    tc = TaskColumns.of(tr)
    if not supports(tc, fmt, pool, turns):
        return None
    batch = items_batch(tc, items)
    if batch is None:
        return None
    ids = [eid for eid, _ in items]
    res = render_fewshot(tc, batch, ids, fmt=fmt, seed=seed, split=split, pool=pool)
    if not len(res.fallback):  # every row here: whole columns in item order
        return _item_columns(tr, res, ids, fmt, split)
    rows = res.rows.tolist()
    k = tr.config.shots
    flat = res.exemplar_ids.values.to_pylist() if rows else []
    tid, fid = res.template_ids, res.fewshot_style_ids
    fast = {"inputs": res.inputs.to_pylist(), "targets": res.targets.to_pylist(),
            "template_id": [tid[t] for t in res.template.tolist()], "seed": res.seeds.tolist(),
            "fewshot_style": [fid[f] for f in res.fewshot_style.tolist()],
            "exemplar_ids": [flat[j * k : j * k + k] for j in range(len(rows))]}  # fmt: skip
    return merged_columns(tr, items, ids, rows, fast, res.fallback.tolist(), fmt=fmt, split=split,
                          seed=seed, pool=pool)  # fmt: skip


def _item_columns(tr, res: FewShotRendered, ids: Sequence[str], fmt: str, split: str) -> dict[str, list[Any]]:  # fmt: skip
    """render_batch's columns of a batch rendered here whole (rows in item order)."""
    order = np.argsort(res.rows, kind="stable")
    take = pa.array(order)
    return item_columns(
        tr,
        fmt=fmt,
        split=split,
        index=list(range(len(order))),
        inputs=res.inputs.take(take).to_pylist(),
        targets=res.targets.take(take).to_pylist(),
        template_ids=np.array(res.template_ids, dtype=object)[res.template[order]].tolist(),
        example_ids=list(ids),
        seeds=res.seeds[order].tolist(),
        fewshot_style=np.array(res.fewshot_style_ids, dtype=object)[
            res.fewshot_style[order]
        ].tolist(),
        exemplar_ids=res.exemplar_ids.take(take).to_pylist(),
    )
