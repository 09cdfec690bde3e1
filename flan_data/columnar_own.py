"""Arrow-native few-shot rows of tasks whose exemplars are one of their fields (NIv2).

A few-shot row of a task with ``exemplars: field:...`` (NIv2: each task file's
own positive examples) renders one of the task's ``few_shot`` templates over the
row's fields and the first ``shots`` exemplars of that field, dropping
exemplars from the end while the whitespace-word count is over the budget
(:meth:`TaskRenderer._render_own_fewshot <flan_data.render.TaskRenderer>`).
When the exemplar field holds the same list in every row of a batch (NIv2: one
list per task file), each (template, number of exemplars) renders once, with a
sentinel in place of each text field; the text around the sentinels is fixed,
so every row's prompt is one Arrow join of those literal pieces and its own
field columns, stripped as Python strips.

This holds only where the text fields are printed as they are: a template is
used here only when each text field appears in it as a bare ``{{ name }}``
(no filter, test, condition, loop bound or assignment reads it). Rows it cannot
decide with certainty go back to the per-row path (``fallback``): a null or
empty value, a batch whose exemplar lists differ, a row near the size limit,
a row that ends with no exemplar (dropped and counted there). Every row rendered
here has the bytes the per-row path gives it (tests compare both).

>>> # res = render_own(TaskColumns.of(tr), batch, ids, fmt="fs_opt", seeds=seeds)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import columnar
from .columnar import _STRING_TYPES, WHITESPACE, TaskColumns, _concat
from .columnar_fs import FewShotRendered
from .fewshot import WhitespaceTokenizer
from .render import _SALT_TEMPLATE, is_fewshot_format
from .seeding import choose

#: Rows rendered here and rows handed back, in this process (tests count work, never time).
STATS = {"rows": 0, "fallback_rows": 0}
_S0, _S1 = "\ue000", "\ue001"
_SENTINEL = re.compile("\ue000(\\d+)\ue001")
_STR = pa.string()


def supports(tc: TaskColumns | None, fmt: str, turns: bool = False) -> bool:
    """Whether few-shot rows of ``fmt`` of this task can render here: the task
    takes exemplars from a field, every field is a plain key, the format's
    templates are the task's own few-shot ones and the tokenizer counts
    whitespace words."""
    if tc is None or turns or not columnar.ENABLED or not is_fewshot_format(fmt):
        return False
    tr = tc.tr
    task, cfg = tr.task, tr.config
    if not task.exemplar_field or cfg.shots <= 0 or task.options is not None:
        return False
    if task.options_field is not None or type(cfg.tokenizer) is not WhitespaceTokenizer:
        return False
    if not any(f.name == task.exemplar_field for f in tc.fields):
        return False
    if any(f.kind != "key" for f in tc.fields):
        return False
    return _templates(tc, fmt) is not None


def _templates(tc: TaskColumns, fmt: str):
    """The format's candidate templates, or None when they are not all own
    few-shot templates that print the text fields bare."""
    cache = tc.__dict__.setdefault("_own_plans", {})
    key = ("templates", fmt)
    if key not in cache:
        tr = tc.tr
        try:
            cands = tr.eligible(fmt)
        except Exception:  # noqa: BLE001 - render_batch words it
            cands = ()
        text = {f.name for f in tc.fields if f.name != tr.task.exemplar_field}
        ok = bool(cands) and all(
            ct.spec.kind == "few_shot"
            and ct.spec.dialect != "promptsource"
            and _bare(tr.engine.env, ct.spec.input, text)
            and _bare(tr.engine.env, ct.spec.target, text)
            for ct in cands
        )
        cache[key] = cands if ok else None
    return cache[key]


_BARE: dict[tuple[str, frozenset[str]], bool] = {}


def _bare(env, source: str, names: set[str]) -> bool:
    """Whether every use of ``names`` in the template ``source`` is a bare
    ``{{ name }}`` (a Name node printed directly by an Output node); cached by
    text (NIv2's 1,600 tasks share ten templates)."""
    key = (source, frozenset(names))
    hit = _BARE.get(key)
    if hit is None:
        if len(_BARE) > 4096:
            _BARE.clear()
        hit = _BARE[key] = _parse_bare(env, source, names)
    return hit


def _parse_bare(env, source: str, names: set[str]) -> bool:
    from jinja2 import nodes

    try:
        tree = env.parse(source)
    except Exception:  # noqa: BLE001 - not parseable here: the per-row path decides
        return False
    printed = {
        id(x)
        for out in tree.find_all(nodes.Output)
        for x in out.nodes
        if isinstance(x, nodes.Name) and x.name in names
    }
    return all(id(x) in printed for x in tree.find_all(nodes.Name) if x.name in names)


def _pieces(tc: TaskColumns, ct, text: list[str], exf: str, value: list[Any], n: int, vkey: str):
    """(input parts, target parts) of template ``ct`` with the first ``n``
    exemplars of ``value`` (``vkey``: its repr): literal strings and field numbers
    (into ``text``); None when the template does not render so (the per-row
    path decides)."""
    cache = tc.__dict__.setdefault("_own_plans", {})
    key = (ct.spec.id, n, tuple(text), vkey)
    if key in cache:
        return cache[key]
    tr = tc.tr
    canon: dict[str, Any] = {}
    for name in tr.task.fields:
        canon[name] = value if name == exf else f"{_S0}{text.index(name)}{_S1}"
    got = None
    try:
        tr._needs(ct, canon, "<plan>")
        i, t = tr.engine.render(ct, tr._context({**canon, "exemplars": list(value[:n])}, ct, None))
        got = (_split(i, len(text)), _split(t, len(text)))
        if None in got:
            got = None
    except Exception:  # noqa: BLE001 - any error: the per-row path renders (or raises)
        got = None
    if len(cache) > 256:
        cache.clear()
    cache[key] = got
    return got


def _split(s: str, k: int) -> tuple | None:
    parts = _SENTINEL.split(s)
    out: list[Any] = []
    for j, p in enumerate(parts):
        if j % 2:
            f = int(p)
            if f >= k:
                return None
            out.append(f)
        elif p:
            if _S0 in p or _S1 in p:
                return None  # a sentinel character of the template's own
            out.append(p)
    return tuple(out)


def _join_rows(plans: list[tuple | None], tsel: np.ndarray, cols: list[pa.Array]) -> pa.Array:
    """Each row's text: the parts of its template's plan (``plans[tsel[row]]``:
    literals and field numbers into ``cols``) joined, for all templates in one
    Arrow join: each plan is laid out as literal, field, literal, ..., literal
    (padded with empty ones), and each slot taken per row."""
    m = len(tsel)
    lits: list[list[str]] = []
    flds: list[list[int]] = []
    for pl in plans:
        lt, fs, cur = [], [], ""
        for x in pl or ():
            if isinstance(x, str):
                cur += x
            else:
                lt.append(cur)
                fs.append(x)
                cur = ""
        lt.append(cur)
        lits.append(lt)
        flds.append(fs)
    width = max(len(fs) for fs in flds)
    used = np.unique(tsel).tolist()
    nf = len(cols)
    stacked = None
    args: list[Any] = []
    for j in range(width + 1):
        # literal slot j (the last slot holds each plan's last literal)
        vals = [(lits[t][-1] if j == width else (lits[t][j] if j < len(flds[t]) else "")) for t in range(len(plans))]  # fmt: skip
        if len({vals[t] for t in used}) == 1:
            if vals[used[0]]:
                args.append(vals[used[0]])
        else:
            args.append(pa.array(vals, _STR).take(pa.array(tsel)))
        if j == width:
            break
        f = np.array([flds[t][j] if j < len(flds[t]) else nf for t in range(len(plans))])
        fu = {int(f[t]) for t in used}
        if len(fu) == 1:
            x = fu.pop()
            if x < nf:
                args.append(cols[x])
            continue
        if stacked is None:
            stacked = pa.concat_arrays([*cols, pa.array([""] * m, _STR)])
        args.append(stacked.take(pa.array(f[tsel] * m + np.arange(m))))
    if not args:
        return pa.array([""] * m, _STR)
    if len(args) == 1:
        a = args[0]
        return a if isinstance(a, pa.Array) else pa.array([a] * m, _STR)
    if not any(isinstance(a, pa.Array) for a in args):
        return pa.array(["".join(args)] * m, _STR)
    return pc.binary_join_element_wise(*args, "")


def render_own(tc: TaskColumns, batch: pa.RecordBatch, ids: Sequence[str], *, fmt: str,
               seeds: np.ndarray) -> FewShotRendered:  # fmt: skip
    """Render every row of ``batch`` (raw source rows, example ids ``ids``,
    example seeds ``seeds``) in the few-shot format ``fmt`` as ``render_batch``
    does for a task whose exemplars are a field; rows it cannot decide are in
    ``fallback``. Call only where :func:`supports` is true."""
    tr = tc.tr
    cfg = tr.config
    exf = tr.task.exemplar_field
    n = batch.num_rows
    cands = _templates(tc, fmt)
    tids = tuple(ct.spec.id for ct in cands)
    if not n:
        return _none(n, tids)
    ok = np.ones(n, dtype=bool)
    text: list[str] = []
    cols: list[pa.Array] = []
    value = None
    for f in tc.fields:
        k = batch.schema.get_field_index(f.key)
        if k < 0:
            return _none(n, tids)
        col = batch.column(k)
        if f.name == exf:
            if (
                not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type))
                or col.null_count
            ):
                return _none(n, tids)
            first = col.slice(0, 1)
            if n > 1 and not first.take(pa.array(np.zeros(n, dtype=np.int64))).equals(col):
                return _none(n, tids)  # not one list for the whole batch
            value = first.to_pylist()[0]
            continue
        if col.type not in _STRING_TYPES:
            return _none(n, tids)
        if col.type != _STR:
            try:
                col = col.cast(_STR)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return _none(n, tids)
        if col.null_count:
            ok &= col.is_valid().to_numpy(zero_copy_only=False)
            col = col.fill_null("")
        if f.target:  # Python's strip leaves something
            ok &= pc.binary_length(pc.utf8_trim(col, WHITESPACE)).to_numpy() > 0
        text.append(f.name)
        cols.append(col)
    if value is None:
        return _none(n, tids)
    shots = min(len(value), cfg.shots)
    if not shots:
        return _none(n, tids)  # no exemplar: every row is dropped (and counted) per row
    lim = tr.engine.env.limits
    limit = min(lim.output_chars, lim.sequence_len) // 2
    budget = cfg.budget
    tix = choose(seeds, _SALT_TEMPLATE, len(cands))
    vkey = repr(value)
    rows_l, ins_l, tgs_l, tmpl_l, nex_l = [], [], [], [], []
    fallback = [np.flatnonzero(~ok)]
    todo = np.flatnonzero(ok)
    for k in range(
        shots, 0, -1
    ):  # every row's exemplars at once, then fewer for the rows over budget
        if not len(todo):
            break
        plans: list[Any] = [None] * len(cands)
        for t in np.unique(tix[todo]).tolist():
            plans[t] = _pieces(tc, cands[t], text, exf, value, k, vkey)
        planned = np.array([pl is not None for pl in plans])[tix[todo]]
        if not planned.all():  # a template that does not render so: per row
            fallback.append(todo[~planned])
            todo = todo[planned]
            if not len(todo):
                break
        tsel = tix[todo]
        take = pa.array(todo)
        tcols = [c.take(take) for c in cols]
        raw_i = _join_rows([pl and pl[0] for pl in plans], tsel, tcols)
        raw_t = _join_rows([pl and pl[1] for pl in plans], tsel, tcols)
        nb = pc.add(pc.binary_length(raw_i), pc.binary_length(raw_t)).to_numpy()
        long = nb > limit
        if long.any():  # near the size limit: the per-row path decides
            fallback.append(todo[long])
            keep = pa.array(~long)
            raw_i, raw_t, todo, tsel = (
                raw_i.filter(keep),
                raw_t.filter(keep),
                todo[~long],
                tsel[~long],
            )
            if not len(todo):
                break
        ins = pc.utf8_trim(raw_i, WHITESPACE)
        tgs = pc.utf8_trim(raw_t, WHITESPACE)
        # whitespace words: at most (L + 1) // 2 in L characters; else exact counts decide
        li = pc.utf8_length(ins).to_numpy()
        lt = pc.utf8_length(tgs).to_numpy()
        fits = (li + 1) // 2 + (lt + 1) // 2 <= budget
        over = np.flatnonzero(~fits)
        if len(over):
            pi = ins.take(pa.array(over)).to_pylist()
            pt = tgs.take(pa.array(over)).to_pylist()
            fits[over] = [len(a.split()) + len(b.split()) <= budget for a, b in zip(pi, pt)]
        if fits.any():
            sel = pa.array(fits)
            rows_l.append(todo[fits])
            ins_l.append(ins.filter(sel))
            tgs_l.append(tgs.filter(sel))
            tmpl_l.append(tsel[fits])
            nex_l.append(np.full(int(fits.sum()), k, dtype=np.int64))
        todo = todo[~fits]
    if len(todo):  # not even one exemplar fits: per row (dropped and counted there)
        fallback.append(todo)
    fb = np.sort(np.concatenate(fallback))
    if not rows_l:
        return _none(n, tids, fb)
    rows = np.concatenate(rows_l)
    nex = np.concatenate(nex_l)
    names = pa.array([f"{exf}[{i}]" for i in range(shots)], _STR)
    offsets = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum(nex, out=offsets[1:])
    within = np.arange(int(offsets[-1]), dtype=np.int64) - np.repeat(offsets[:-1], nex)
    exemplar_ids = pa.ListArray.from_arrays(pa.array(offsets), names.take(pa.array(within)))
    STATS["rows"] += len(rows)
    STATS["fallback_rows"] += len(fb)
    return FewShotRendered(
        rows=rows,
        inputs=_concat(ins_l),
        targets=_concat(tgs_l),
        template=np.concatenate(tmpl_l),
        template_ids=tids,
        seeds=np.asarray(seeds)[rows],
        fewshot_style=np.zeros(len(rows), dtype=np.int64),
        fewshot_style_ids=(None,),
        exemplar_ids=exemplar_ids,
        fallback=fb,
    )


def _none(n: int, tids: tuple[str, ...], fb: np.ndarray | None = None) -> FewShotRendered:
    fb = np.arange(n, dtype=np.int64) if fb is None else fb
    STATS["fallback_rows"] += len(fb)
    z = np.zeros(0, dtype=np.int64)
    empty = pa.array([], _STR)
    return FewShotRendered(
        rows=z,
        inputs=empty,
        targets=empty,
        template=z,
        template_ids=tids,
        seeds=np.zeros(0, dtype=np.uint64),
        fewshot_style=z,
        fewshot_style_ids=(None,),
        exemplar_ids=pa.array([], pa.list_(_STR)),
        fallback=fb,
    )
