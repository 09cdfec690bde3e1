"""Arrow-native zero-shot rendering: a record batch of source rows → text columns.

Export's hot path for zero-shot formats (issue 9). For a task whose fields are
plain keys or ``options[key]`` with the task's fixed options, and whose chosen
templates are :class:`~flan_data.templates.SimpleTemplate`\\ s, a whole record
batch renders with ``pyarrow.compute``: per-row seeds, template and option
style come from the same hashes as :meth:`TaskRenderer.render_batch
<flan_data.render.TaskRenderer.render_batch>`; each template's rows are joined
from literal pieces and (filtered) columns; option blocks and lettered answers
are formatted once per (options, style) and taken per row; ``str.strip`` is an
Arrow trim over exactly the characters Python strips. Every row rendered here
has the bytes ``render_batch`` gives it.

Rows this module cannot decide with certainty are handed back (``fallback``)
for ``render_batch``, which renders them or words their error exactly as
before: a null, a value that is not a string, an empty target field, a label
out of range, an answer outside the options, a template that is not simple,
a text near the template size limit.

>>> import pyarrow as pa
>>> from flan_data import Catalog, Renderer
>>> tr = Renderer(Catalog.load()).task_renderer("anli_r1")
>>> tc = TaskColumns.of(tr)
>>> b = pa.record_batch({"premise": ["A cat sleeps."], "hypothesis": ["An animal rests."], "label": [0]})
>>> res = tc.render(b, ["ex-1"], fmt="zs_opt", seed=0, split="train")
>>> res.targets.to_pylist() == tr.render_batch([("ex-1", b.to_pylist()[0])], split="train", fmt="zs_opt", seed=0)["targets"]
True
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jinja2.filters
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from jinja2 import nodes

from .options import ALL_STYLES, PLAIN, format_options
from .render import (
    _SALT_OPTIONS,
    _SALT_TEMPLATE,
    LabelOptions,
    TaskRenderer,
    direct_field,
    is_fewshot_format,
    is_opt_format,
)
from .seeding import SeedPrefix, choose
from .templates import output_part

#: Every character ``str.isspace`` accepts: what ``str.strip()`` removes (a test
#: checks this against all of Unicode).
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
#: Off switch (``FLAN_DATA_COLUMNAR=0``, or set this flag): exports then render
#: every row through ``render_batch`` (tests compare both paths byte for byte).
ENABLED = os.environ.get("FLAN_DATA_COLUMNAR", "1").strip().lower() not in (
    "0",
    "false",
    "no",
    "off",
)
#: Rows rendered here and rows handed back, in this process (tests count work, never time).
STATS = {"rows": 0, "fallback_rows": 0}

# canonical names the renderer supplies itself: a task field of that name is left to render_batch
_RESERVED = frozenset({"options", "options_block", "answer_text", "exemplars"})
_STRING_TYPES = (pa.string(), pa.large_string())


@dataclass
class Rendered:
    """One batch's rendered rows (``rows``: indices into the batch, in output
    order) and the rows left to ``render_batch`` (``fallback``, ascending)."""

    rows: np.ndarray
    inputs: pa.Array
    targets: pa.Array
    template: np.ndarray  # per output row: index into ``template_ids``
    template_ids: tuple[str, ...]
    seeds: np.ndarray  # uint64 per output row (the ``seed`` column)
    fallback: np.ndarray
    #: list<string> per output row: the row's own options (a task with per-record
    #: options, ``options: {field: ...}``); None: the task's fixed options (or none)
    options: pa.Array | None = None


@dataclass(frozen=True)
class _Field:
    name: str
    # "key" (a string column), "label" (options[integer column]), "trim" (``key | trim``
    # of a string column, trimmed by Arrow) or "expr" (any other expression: evaluated
    # per row as TaskRenderer.canonical evaluates it, from the columns it reads)
    kind: str
    key: str  # the column ("key", "label", "trim") or the expression ("expr")
    target: bool  # some template puts it in the target: must not be empty
    inputs: tuple[str, ...] = ()  # "expr": the record keys the expression can read


@dataclass(frozen=True)
class _Cond:
    """``{% if name[-1:] == lit %}text{% endif %}`` (``eq``) or ``!=`` (not ``eq``)
    in a template: ``text`` when the field's last character is (is not) ``lit``."""

    name: str
    eq: bool
    lit: str
    text: str


class TaskColumns:
    """The column-wise zero-shot renderer of one :class:`TaskRenderer`; build
    through :meth:`of` (None when the task's fields do not allow it)."""

    def __init__(self, tr: TaskRenderer, fields: tuple[_Field, ...]):
        self.tr = tr
        self.fields = fields
        # source columns read
        self.columns = tuple(
            dict.fromkeys(c for f in fields for c in (f.inputs if f.kind == "expr" else (f.key,)))
        )
        task = tr.task
        self.opts: tuple[str, ...] | None = task.options
        #: options per record (``options: {field: ...}``): read and checked per row
        self.per_row = task.options is None and task.options_field is not None
        lim = tr.engine.env.limits
        self.limit = min(lim.output_chars, lim.sequence_len) // 2
        self.cap = lim.sequence_len  # a field getter's result longer than this: Jinja decides
        self._exprs = {name: (fn, fast) for name, _, fn, fast in tr._fields}
        self._opt_key = self._opt_inputs = None
        if self.per_row:
            d = direct_field(task.options_field)
            self._opt_key = d[1] if d is not None and d[0] == "key" else None
            ex = task.options_field
            names = tr.engine.variables_of("{{ " + ex + " }}")
            self._opt_inputs = tuple(sorted(names | {ex}))
            self.columns = tuple(dict.fromkeys((*self.columns, *self._opt_inputs)))
        self._plans: dict[str, Any] = {}
        self._styles = None
        if self.opts is not None:
            opts = self.opts
            self._opts_arr = pa.array(list(opts), pa.string())
            self._opt_nonempty = np.array([bool(o.strip()) for o in opts])
            first = {}
            for i, o in enumerate(opts):
                first.setdefault(o, i)
            self._uniq = pa.array(list(first), pa.string())
            self._uniq_first = np.array(list(first.values()), dtype=np.int64)
            # options[label] -> the index ``opts.index(answer)`` picks (first equal option)
            self._label_first = np.array([first[o] for o in opts], dtype=np.int64)

    @classmethod
    def of(cls, tr: TaskRenderer) -> TaskColumns | None:
        """The task's column-wise renderer (cached on ``tr``), or None."""
        hit = tr.__dict__.get("_columnar", False)
        if hit is False:
            hit = tr.__dict__["_columnar"] = cls._build(tr)
        return hit

    @classmethod
    def _build(cls, tr: TaskRenderer) -> TaskColumns | None:
        task = tr.task
        if not tr._check_values:  # promptsource-only tasks: values are not checked there
            return None
        opts = task.options
        per_row = opts is None and task.options_field is not None
        if opts is not None and not all(type(o) is str for o in opts):
            return None
        fields = []
        for name, expr in task.fields.items():
            if name in _RESERVED:
                return None
            target = name in tr._target_fields
            d = direct_field(expr)
            if d is not None:
                if d[0] == "label" and opts is None and not per_row:
                    return None
                fields.append(_Field(name, d[0], d[1], target))
                continue
            key = _trimmed_key(tr.engine, expr)
            if key is not None:
                fields.append(_Field(name, "trim", key, target))
                continue
            # the keys the expression can read (and the expression itself, which
            # canonical reads as a key when a record has it)
            names = tr.engine.variables_of("{{ " + expr + " }}")
            inputs = tuple(sorted(names | {expr}))
            fields.append(_Field(name, "expr", expr, target, inputs))
        return cls(tr, tuple(fields))

    # -- per format

    def supports(self, fmt: str) -> bool:
        """Whether some row of ``fmt`` can render here (zero-shot, a simple template)."""
        plan = self._plan(fmt)
        return plan is not None and any(p is not None for p in plan[1])

    def _plan(self, fmt: str, template_id: str | None = None, query: bool = False):
        """(templates, their plans, option style on) of ``fmt``; ``query``: the
        queries of a few-shot format (:mod:`flan_data.columnar_fs`), which render
        as zero-shot rows with the format's templates (none when the task has
        few-shot templates of its own)."""
        key = (fmt, template_id, query)
        if key in self._plans:
            return self._plans[key]
        plan = None
        if is_fewshot_format(fmt) == query:
            try:
                cands = self.tr.eligible(
                    fmt
                )  # raises for a format the task lacks, as render_batch does
                if template_id:
                    cands = (self.tr.template(template_id),)
            except Exception:  # noqa: BLE001 - no such templates: render_batch words it
                cands = ()
            if any(ct.spec.kind == "few_shot" for ct in cands):
                cands = ()
            if cands:
                style_on = is_opt_format(fmt) and (bool(self.opts) or self.per_row)
                plan = (cands, tuple(self._template_plan(ct, style_on) for ct in cands), style_on)
        self._plans[key] = plan
        return plan

    def _template_plan(self, ct, style_on: bool):
        """(input parts, target parts) with each name resolved as ``_render_simple``
        resolves it, or None when the template cannot render here."""
        if ct.spec.dialect == "promptsource":
            return None
        names = {f.name for f in self.fields}
        st = ct.simple
        all_parts = st.parts if st is not None else _cond_parts(self.tr.engine, ct, names)
        if all_parts is None:
            return None
        out = []
        for parts in all_parts:
            res: list[Any] = []
            for p in parts:
                if isinstance(p, str):
                    res.append(p)
                    continue
                if isinstance(p, _Cond):
                    res.append(("cond", p.name, p.eq, p.lit, p.text))
                    continue
                name, filt = p
                fn = jinja2.filters.FILTERS[filt] if filt else None
                if name == "options_block":
                    res.append(("block", filt) if style_on else _apply(fn, ""))
                elif name == "answer" and ct.uses_options and style_on:
                    if "answer" not in names:
                        return None
                    res.append(("letter", filt))
                elif name == "answer_text":
                    if "answer" not in names:
                        return None
                    res.append(("field", "answer", filt))
                elif name == "options":
                    if self.per_row:
                        return None  # each row's own: render_batch
                    res.append(_apply(fn, "[]" if self.opts is None else str(self.opts)))
                elif name in names:
                    res.append(("field", name, filt))
                else:
                    return None
            # merge adjacent literals
            merged: list[Any] = []
            for x in res:
                if isinstance(x, str) and merged and isinstance(merged[-1], str):
                    merged[-1] += x
                elif not (isinstance(x, str) and not x):
                    merged.append(x)
            out.append(tuple(merged))
        return tuple(out)

    def _style_tables(self):
        """Option blocks of every style and the lettered targets, as Arrow arrays."""
        if self._styles is None:
            styles = [PLAIN] if self.tr.config.option_style == "plain" else list(ALL_STYLES)
            blocks, letters = [], []
            for s in styles:
                b, t = format_options(self.opts, s)
                blocks.append(b)
                letters.extend(t)
            self._styles = (pa.array(blocks, pa.string()), pa.array(letters, pa.string()))
        return self._styles

    # -- rendering

    def render(self, batch: pa.RecordBatch, ids: Sequence[str], *, fmt: str, seed: int,
               split: str, template_id: str | None = None, seeds: np.ndarray | None = None,
               query: bool = False) -> Rendered:  # fmt: skip
        """Render every row of ``batch`` (raw source rows, example ids ``ids``) in
        ``fmt`` as ``render_batch(..., split=split, fmt=fmt, seed=seed,
        template_id=template_id)`` does; rows it cannot decide are in ``fallback``.
        ``seeds`` (optional) are the rows' example seeds, already derived
        (``SeedPrefix(seed, task, split).derive_many(ids)``; rows of several
        seeds can then render together). ``query``: ``fmt`` is a few-shot format
        and these are its queries (see :meth:`_plan`)."""
        n = batch.num_rows
        plan = self._plan(fmt, template_id, query)
        if plan is None or n == 0:
            return self._none(n, plan)
        cands, tplans, style_on = plan
        ok = np.ones(n, dtype=bool)
        vals: dict[str, Any] = {}
        afirst = None
        optl = None  # per-record options: each row's tuple (None where bad)
        if self.per_row:
            optl, good = self._row_options(batch)
            ok &= good
        for f in self.fields:
            if f.kind == "expr":
                col, good = self._expr_column(f, batch, ids, optl)
                ok &= good
            elif f.kind == "label" and optl is not None:
                col, good = self._row_labels(f, batch, optl)
                if col is None:
                    return self._none(n, plan)
                ok &= good
            else:
                k = batch.schema.get_field_index(f.key)
                if k < 0:
                    return self._none(n, plan)
                col = batch.column(k)
            if f.kind == "key" or f.kind == "trim":
                if col.type not in _STRING_TYPES:
                    if _unread_list(f, col.type, tplans):
                        # a list no template of the plan prints (NIv2's examples): as
                        # canonical checks it, only a null is bad
                        if col.null_count:
                            ok &= col.is_valid().to_numpy(zero_copy_only=False)
                        continue
                    return self._none(n, plan)
                if col.type != pa.string():
                    try:
                        col = col.cast(pa.string())
                    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                        return self._none(n, plan)
                if col.null_count:
                    ok &= col.is_valid().to_numpy(zero_copy_only=False)
                    col = col.fill_null("")
                if f.kind == "trim":
                    col = pc.utf8_trim(col, WHITESPACE)
                    if (pc.max(pc.binary_length(col)).as_py() or 0) > self.cap:
                        ok &= pc.utf8_length(col).to_numpy() <= self.cap  # bytes bound characters
            if f.kind != "label" or optl is not None:
                if f.target:  # Python's strip leaves something
                    stripped = col if f.kind == "trim" else pc.utf8_trim(col, WHITESPACE)
                    ok &= pc.binary_length(stripped).to_numpy() > 0
                vals[f.name] = col
                if f.name == "answer" and optl is not None:
                    # one of the row's options; the letter is the first equal one's
                    afirst = np.zeros(n, dtype=np.int64)
                    for i, (a, o) in enumerate(zip(col.to_pylist(), optl)):
                        if o is not None and a in o:
                            afirst[i] = o.index(a)
                        else:
                            ok[i] = False
                elif f.name == "answer" and self.opts is not None:
                    at = pc.index_in(col, value_set=self._uniq)
                    ok &= at.is_valid().to_numpy(zero_copy_only=False)
                    afirst = self._uniq_first[at.fill_null(0).to_numpy()]
            else:
                if not pa.types.is_integer(col.type):
                    return self._none(n, plan)
                v = (
                    col.fill_null(0).to_numpy(zero_copy_only=False)
                    if col.null_count
                    else col.to_numpy()
                )
                good = v < len(self.opts)
                if pa.types.is_signed_integer(col.type):
                    good &= v >= 0
                if col.null_count:
                    good &= col.is_valid().to_numpy(zero_copy_only=False)
                lab = np.where(good, v, 0).astype(np.int64)
                if f.target:
                    good &= self._opt_nonempty[lab]
                ok &= good
                vals[f.name] = lab
                if f.name == "answer":
                    afirst = self._label_first[lab]
        if seeds is None:
            seeds = SeedPrefix(seed, self.tr.task.name, split).derive_many(ids)
        tix = choose(seeds, _SALT_TEMPLATE, len(cands))
        able = np.array([p is not None for p in tplans])
        ok &= able[tix]
        good = np.flatnonzero(ok)
        order = good[np.argsort(tix[good], kind="stable")]
        counts = np.bincount(tix[order], minlength=len(cands))
        take = pa.array(order)
        cols: dict[str, pa.Array] = {}
        for f in self.fields:
            if f.name not in vals:
                continue  # (an unread list)
            v = vals[f.name]
            cols[f.name] = (
                self._opts_arr.take(pa.array(v[order]))
                if f.kind == "label" and optl is None
                else v.take(take)
            )
        block = letter = None
        if style_on and optl is not None:
            block, letter = self._row_blocks(optl, order, seeds, afirst)
        elif style_on:
            blocks, letters = self._style_tables()
            if len(blocks) == 1:
                sidx = np.zeros(len(order), dtype=np.int64)
            else:
                sidx = choose(seeds[order], _SALT_OPTIONS, len(ALL_STYLES))
            block = blocks.take(pa.array(sidx))
            if afirst is not None:
                letter = letters.take(pa.array(sidx * len(self.opts) + afirst[order]))
        ins, tgs, rows, tmpl = [], [], [], []
        fallback = [np.flatnonzero(~ok)]
        at = 0
        for t, c in enumerate(counts.tolist()):
            if not c:
                continue
            s, e = at, at + c
            at = e
            sl = {name: a.slice(s, c) for name, a in cols.items()}
            src = {"block": block.slice(s, c) if block is not None else None,
                   "letter": letter.slice(s, c) if letter is not None else None}  # fmt: skip
            raw_i = _join(tplans[t][0], sl, src, c)
            raw_t = _join(tplans[t][1], sl, src, c)
            r = order[s:e]
            nb = pc.add(pc.binary_length(raw_i), pc.binary_length(raw_t)).to_numpy()
            if nb.max(initial=0) > self.limit:  # bytes bound characters: count only then
                nc = pc.add(pc.utf8_length(raw_i), pc.utf8_length(raw_t)).to_numpy()
                long = nc > self.limit
                if long.any():
                    keep = pa.array(~long)
                    raw_i, raw_t = raw_i.filter(keep), raw_t.filter(keep)
                    fallback.append(r[long])
                    r = r[~long]
            ins.append(pc.utf8_trim(raw_i, WHITESPACE))
            tgs.append(pc.utf8_trim(raw_t, WHITESPACE))
            rows.append(r)
            tmpl.append(np.full(len(r), t, dtype=np.int64))
        fb = np.sort(np.concatenate(fallback))
        rows_a = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        STATS["rows"] += len(rows_a)
        STATS["fallback_rows"] += len(fb)
        options = None
        if optl is not None:
            options = pa.array([list(optl[r]) for r in rows_a.tolist()], pa.list_(pa.string()))
        return Rendered(
            rows=rows_a,
            inputs=_concat(ins),
            targets=_concat(tgs),
            template=np.concatenate(tmpl) if tmpl else np.zeros(0, dtype=np.int64),
            template_ids=tuple(ct.spec.id for ct in cands),
            seeds=seeds[rows_a],
            fallback=fb,
            options=options,
        )

    def _row_options(self, batch: pa.RecordBatch) -> tuple[list, np.ndarray]:
        """Each row's options as :meth:`TaskRenderer.canonical` reads them (its
        getter, else the Jinja expression), kept only when they are a non-empty
        list of ``str`` (anything else: the row is False, render_batch decides)."""
        tr = self.tr
        n = batch.num_rows
        expr = tr.task.options_field
        inputs = self._opt_inputs
        schema = batch.schema
        names = [c for c in inputs if schema.get_field_index(c) >= 0]
        cols = [batch.column(c).to_pylist() for c in names]
        fast = tr._options_fast
        good = np.ones(n, dtype=bool)
        out: list = []
        add = out.append
        direct = self._opt_key
        rows = cols[0] if direct is not None and names == [direct] else None
        it = rows if rows is not None else (zip(*cols) if cols else itertools.repeat((), n))
        for i, row in enumerate(it):
            if rows is not None:
                v = row
            else:
                ctx = dict(zip(names, row))
                v = _row_value(tr, fast, tr._options_expr, ctx, "options", expr)
            if (type(v) is list or type(v) is tuple) and v and all(type(o) is str for o in v):
                add(tuple(v))
            else:
                good[i] = False
                add(None)
        return out, good

    def _row_labels(self, f: _Field, batch: pa.RecordBatch, optl: list) -> tuple[pa.Array | None, np.ndarray]:  # fmt: skip
        """``options[label]`` over each row's own options (None: not an integer column)."""
        n = batch.num_rows
        k = batch.schema.get_field_index(f.key)
        if k < 0:
            return None, np.zeros(n, dtype=bool)
        col = batch.column(k)
        if not pa.types.is_integer(col.type):
            return None, np.zeros(n, dtype=bool)
        good = np.ones(n, dtype=bool)
        out = []
        for i, (v, o) in enumerate(zip(col.to_pylist(), optl)):
            if o is not None and v is not None and 0 <= v < len(o):
                out.append(o[v])
            else:
                good[i] = False
                out.append("")
        return pa.array(out, pa.string()), good

    def _row_blocks(self, optl: list, order: np.ndarray, seeds: np.ndarray, afirst) -> tuple:
        """The option block and lettered answer of each output row (``order``),
        formatted once per (options, style)."""
        styles = [PLAIN] if self.tr.config.option_style == "plain" else list(ALL_STYLES)
        if len(styles) == 1:
            sidx = [0] * len(order)
        else:
            sidx = choose(seeds[order], _SALT_OPTIONS, len(ALL_STYLES)).tolist()
        blocks, letters = [], []
        memo: dict = {}
        for r, si in zip(order.tolist(), sidx):
            o = optl[r]
            key = (o, si)
            hit = memo.get(key)
            if hit is None:
                hit = memo[key] = format_options(o, styles[si])
            blocks.append(hit[0])
            if afirst is not None:
                letters.append(hit[1][afirst[r]])
        block = pa.array(blocks, pa.string())
        letter = pa.array(letters, pa.string()) if afirst is not None else None
        return block, letter

    def _expr_column(self, f: _Field, batch: pa.RecordBatch, ids: Sequence[str], optl: list | None = None) -> tuple[pa.Array, np.ndarray]:  # fmt: skip
        """The values of an ``expr`` field, per row as :meth:`TaskRenderer.canonical`
        computes them (its field getter, else the Jinja expression) from the
        columns the expression can read; rows where that fails or gives no ``str``
        are False in the mask (``render_batch`` decides them)."""
        n = batch.num_rows
        tr = self.tr
        schema = batch.schema
        names = [c for c in f.inputs if schema.get_field_index(c) >= 0]
        cols = [batch.column(c).to_pylist() for c in names]
        fn, fast = self._exprs[f.name]
        lopts = tr._fixed_opts if (self.opts is not None and tr._reads_options) else None
        expr = f.key
        good = np.ones(n, dtype=bool)
        out: list[str] = []
        add = out.append
        rows = zip(*cols) if cols else itertools.repeat((), n)
        row_opts = optl is not None and tr._reads_options
        for i, row in enumerate(rows):
            ctx = dict(zip(names, row))
            if lopts is not None:
                ctx["options"] = lopts
            elif row_opts:
                o = optl[i]
                if o is None:  # bad options: render_batch decides
                    good[i] = False
                    add("")
                    continue
                ctx["options"] = LabelOptions(o)
            v = _row_value(tr, fast, fn, ctx, f.name, expr)
            if type(v) is str:
                add(v)
            else:
                good[i] = False
                add("")
        return pa.array(out, pa.string()), good

    def _none(self, n: int, plan) -> Rendered:
        STATS["fallback_rows"] += n
        z = np.zeros(0, dtype=np.int64)
        empty = pa.array([], pa.string())
        ids = tuple(ct.spec.id for ct in plan[0]) if plan else ()
        return Rendered(
            z, empty, empty, z, ids, np.zeros(0, dtype=np.uint64), np.arange(n, dtype=np.int64)
        )


def _unread_list(f: _Field, t: pa.DataType, tplans) -> bool:
    """Whether ``f`` is a list column that no template plan reads and no target
    holds (NIv2's ``positive_examples`` under zero-shot templates)."""
    if f.kind != "key" or f.target or f.name == "answer":
        return False
    if not (pa.types.is_list(t) or pa.types.is_large_list(t)):
        return False
    return not any(
        isinstance(x, tuple) and len(x) > 1 and x[1] == f.name  # ("field"/"cond", name, ...)
        for tp in tplans
        if tp is not None
        for parts in tp
        for x in parts
    )


def _row_value(tr, fast, fn, ctx: dict, name: str, expr: str) -> Any:
    """One row's value of a field (or options) expression as
    :meth:`TaskRenderer.canonical` computes it: the field getter ``fast``, else
    the Jinja expression ``fn``; None when either fails (a bad record, which
    ``render_batch`` then words)."""
    if fast is not None:
        try:
            return fast(ctx)
        except Exception:  # noqa: BLE001 - the Jinja path decides, as in canonical
            pass
    try:
        return tr._eval(fn, ctx, name, expr, "", ctx)
    except Exception:  # noqa: BLE001 - a bad record: render_batch words it
        return None


def _trimmed_key(engine, expr: str) -> str | None:
    """``k`` for a field expression ``k | trim`` (a plain key, no arguments), else None."""
    try:
        node = engine.env.parse("{{ " + expr + " }}").body[0].nodes[0]
    except Exception:  # noqa: BLE001 - not an expression we read here
        return None
    if (
        isinstance(node, nodes.Filter)
        and node.name == "trim"
        and isinstance(node.node, nodes.Name)
        and node.node.ctx == "load"
        and not (node.args or node.kwargs or node.dyn_args or node.dyn_kwargs)
        and direct_field(node.node.name) == ("key", node.node.name)
    ):
        return node.node.name
    return None


def _cond_parts(engine, ct, names: set[str]) -> tuple[tuple, tuple] | None:
    """The parts of a template that is literal text, ``{{ name }}`` /
    ``{{ name | f }}`` outputs (as :class:`~flan_data.templates.SimpleTemplate`)
    and conditionals ``{% if name[-1:] != "c" %}text{% endif %}`` (or ``==``; one
    character ``c``, literal text only inside) over the task fields ``names``;
    None for any other template."""
    out = []
    filters = 0
    for source in (ct.spec.input, ct.spec.target):
        try:
            ast = engine.env.parse(source)
        except Exception:  # noqa: BLE001 - compiled elsewhere; not ours to decide
            return None
        parts: list[Any] = []
        for node in ast.body:
            if isinstance(node, nodes.Output):
                for c in node.nodes:
                    part = output_part(c, ct.variables)
                    if part is None:
                        return None
                    parts.append(part)
                    filters += not isinstance(part, str) and part[1] is not None
                continue
            cond = _cond_of(node, names)
            if cond is None:
                return None
            parts.append(cond)
        out.append(tuple(parts))
    if filters > engine.env.limits.ops:
        return None
    return out[0], out[1]


def _cond_of(node, names: set[str]) -> _Cond | None:
    if not (isinstance(node, nodes.If) and not node.elif_ and not node.else_):
        return None
    test = node.test
    if not (isinstance(test, nodes.Compare) and len(test.ops) == 1):
        return None
    op = test.ops[0]
    if op.op not in ("eq", "ne") or not isinstance(op.expr, nodes.Const):
        return None
    lit = op.expr.value
    g = test.expr
    if not (
        type(lit) is str
        and len(lit) == 1
        and isinstance(g, nodes.Getitem)
        and isinstance(g.node, nodes.Name)
        and g.node.ctx == "load"
        and g.node.name in names
        and isinstance(g.arg, nodes.Slice)
        and g.arg.stop is None
        and g.arg.step is None
        and _is_minus_one(g.arg.start)
    ):
        return None
    text = []
    for b in node.body:
        if not isinstance(b, nodes.Output):
            return None
        for c in b.nodes:
            if not isinstance(c, nodes.TemplateData):
                return None
            text.append(c.data)
    return _Cond(g.node.name, op.op == "eq", lit, "".join(text))


def _is_minus_one(e) -> bool:
    if isinstance(e, nodes.Const):
        return type(e.value) is int and e.value == -1
    return (
        isinstance(e, nodes.Neg)
        and isinstance(e.node, nodes.Const)
        and type(e.node.value) is int
        and e.node.value == 1
    )


def _apply(fn, text: str) -> str:
    return text if fn is None else fn(text)


def _filter(arr: pa.Array, filt: str | None) -> pa.Array:
    """Jinja's filter ``filt`` over a string array, with Python's semantics."""
    if filt is None:
        return arr
    if filt == "trim":
        return pc.utf8_trim(arr, WHITESPACE)
    if (
        filt in ("lower", "upper", "capitalize")
        and pc.all(pc.string_is_ascii(arr)).as_py() is not False
    ):
        # on ASCII text Arrow's case mapping is Python's
        return {
            "lower": pc.ascii_lower,
            "upper": pc.ascii_upper,
            "capitalize": pc.ascii_capitalize,
        }[filt](arr)
    fn = jinja2.filters.FILTERS[filt]
    return pa.array([fn(x) for x in arr.to_pylist()], pa.string())


def _join(parts, cols: dict[str, pa.Array], src: dict[str, Any], n: int) -> pa.Array:
    args: list[Any] = []
    arrays = 0
    for p in parts:
        if isinstance(p, str):
            args.append(p)
            continue
        if p[0] == "cond":  # the text when the field's last character is (not) the literal
            hit = pc.ends_with(cols[p[1]], p[3])
            args.append(pc.if_else(hit, p[4], "") if p[2] else pc.if_else(hit, "", p[4]))
        else:
            args.append(_filter(cols[p[1]], p[2]) if p[0] == "field" else _filter(src[p[0]], p[1]))
        arrays += 1
    if not arrays:
        text = "".join(args)
        return pa.array([text] * n, pa.string())
    if len(args) == 1:
        return args[0]
    return pc.binary_join_element_wise(*args, "")


def _concat(arrays: list[pa.Array]) -> pa.Array:
    if not arrays:
        return pa.array([], pa.string())
    return arrays[0] if len(arrays) == 1 else pa.concat_arrays(arrays)


def render_items(tr: TaskRenderer, items: Sequence[tuple[str, Any]], *, split: str, fmt: str, seed: int,
                 template_id: str | None = None, errors: list | None = None,
                 turns: bool = False) -> dict[str, list[Any]] | None:  # fmt: skip
    """:meth:`TaskRenderer.render_batch` of ``(example id, raw record)`` items through
    :meth:`TaskColumns.render` (the records' field columns as Arrow arrays); the
    rows it hands back go through ``render_batch`` itself. The same columns, rows
    in item order; None when the task or the values do not allow it, or when a
    record is bad (the row-by-row path then words, orders or raises its errors)."""
    if not ENABLED:
        return None
    tc = TaskColumns.of(tr)
    if tc is None or not tc.supports(fmt):
        return None
    batch = items_batch(tc, items)
    if batch is None:
        return None
    ids = [eid for eid, _ in items]
    res = tc.render(batch, ids, fmt=fmt, seed=seed, split=split, template_id=template_id)
    fast = {"inputs": res.inputs.to_pylist(), "targets": res.targets.to_pylist(),
            "template_id": [res.template_ids[t] for t in res.template.tolist()],
            "seed": res.seeds.tolist()}  # fmt: skip
    if res.options is not None:
        fast["options"] = res.options.to_pylist()
    cols = merged_columns(tr, items, ids, res.rows.tolist(), fast, res.fallback.tolist(), fmt=fmt,
                          split=split, seed=seed, template_id=template_id)  # fmt: skip
    if cols is not None and turns:
        cols["turns"] = [None] * len(cols["index"])
    return cols


def merged_columns(tr: TaskRenderer, items: Sequence[tuple[str, Any]], ids: Sequence[str],
                   rows: list[int], fast: dict[str, list[Any]], fallback: list[int], *, fmt: str,
                   split: str, **kw: Any) -> dict[str, list[Any]] | None:  # fmt: skip
    """:func:`item_columns` of ``items`` (rows in item order): the rows a column-wise
    path rendered (``rows``: their item indices; ``fast``: their values, by
    ``render_batch`` column: inputs, targets, template_id, seed, and for few-shot
    rows fewshot_style, exemplar_ids) and the items it handed back
    (``fallback``), rendered by ``render_batch(..., columnar=False, **kw)``; None
    when one of those is a bad record (the row-by-row path then words its error)."""
    sub = None
    if fallback:
        errs: list = []
        sub = tr.render_batch([items[i] for i in fallback], split=split, fmt=fmt, errors=errs,
                              columnar=False, **kw)  # fmt: skip
        if errs:  # bad records: the row-by-row path words and orders the errors
            return None
    n = len(items)
    merged: dict[str, list[Any]] = {}
    for name, vals in fast.items():
        col: list[Any] = [None] * n
        for i, v in zip(rows, vals):
            col[i] = v
        if sub is not None:
            for j, v in zip(sub["index"], sub[name]):
                col[fallback[j]] = v
        merged[name] = col
    ins = merged["inputs"]
    keep = [i for i in range(n) if ins[i] is not None]
    kept = {name: [col[i] for i in keep] for name, col in merged.items()}
    return item_columns(tr, fmt=fmt, split=split, index=keep, inputs=kept["inputs"],
                        targets=kept["targets"], template_ids=kept["template_id"],
                        example_ids=[ids[i] for i in keep], seeds=kept["seed"],
                        fewshot_style=kept.get("fewshot_style"),
                        exemplar_ids=kept.get("exemplar_ids"), options=kept.get("options"))  # fmt: skip


def items_batch(tc: TaskColumns, items: Sequence[tuple[str, Any]]) -> pa.RecordBatch | None:
    """The source columns ``tc`` reads, of ``(example id, raw record)`` items, as
    one record batch; None when a record lacks one or Arrow cannot type them
    (``render_batch`` then decides, row by row)."""
    # an expression reads its values back as Python objects: only types whose
    # to_pylist() gives back exactly what went in (str, None, lists of them); a key
    # it may read that no record has stays absent, as in the records
    read = {c for f in tc.fields if f.kind == "expr" for c in f.inputs}
    read.update(tc._opt_inputs or ())
    direct = {f.key for f in tc.fields if f.kind != "expr"}
    names, arrays = [], []
    try:
        for k in tc.columns:
            if k in read and k not in direct and not any(k in raw for _, raw in items):
                continue
            a = pa.array([raw[k] for _, raw in items])
            if k in read and not _lossless(a.type):
                return None
            names.append(k)
            arrays.append(a)
    except Exception:  # noqa: BLE001 - a missing key, mixed types: render_batch decides
        return None
    if not arrays:
        return pa.RecordBatch.from_pydict({"__rows": pa.nulls(len(items))})
    return pa.RecordBatch.from_arrays(arrays, names=names)


def _lossless(t: pa.DataType) -> bool:
    if t in _STRING_TYPES or pa.types.is_null(t):
        return True
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _lossless(t.value_type)
    return False


def item_columns(tr: TaskRenderer, *, fmt: str, split: str, index: list[int], inputs: list[Any],
                 targets: list[Any], template_ids: list[Any], example_ids: list[Any], seeds: list[Any],
                 fewshot_style: list[Any] | None = None, exemplar_ids: list[Any] | None = None,
                 options: list[Any] | None = None) -> dict[str, list[Any]]:  # fmt: skip
    """:meth:`TaskRenderer.render_batch`'s columns, in its order, of the rows given
    per row (``index``: each row's item; every list one value a row); task,
    collection, format, options and split are the task's and the call's.
    ``fewshot_style`` / ``exemplar_ids`` default to a zero-shot row's (None, []).

    >>> from flan_data import Catalog, Renderer
    >>> tr = Renderer(Catalog.load()).task_renderer("anli_r1")
    >>> c = item_columns(tr, fmt="zs_opt", split="train", index=[0], inputs=["q"], targets=["a"],
    ...                  template_ids=["t"], example_ids=["ex-1"], seeds=[7])
    >>> c["fewshot_style"], c["exemplar_ids"], c["options"] == [list(tr.task.options)]
    ([None], [[]], True)
    """
    m = len(index)
    opts = tr.task.options
    return {
        "index": index,
        "inputs": inputs,
        "targets": targets,
        "task": [tr.task.name] * m,
        "collection": [tr.task.collection] * m,
        "format": [fmt] * m,
        "template_id": template_ids,
        "fewshot_style": [None] * m if fewshot_style is None else fewshot_style,
        "options": options
        if options is not None
        else [list(opts) for _ in range(m)]
        if opts
        else [None] * m,
        "exemplar_ids": [[] for _ in range(m)] if exemplar_ids is None else exemplar_ids,
        "example_id": example_ids,
        "source_split": [split] * m,
        "seed": seeds,
    }
