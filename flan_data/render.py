"""Rendering: task spec × template × options style × exemplars × seed → text.

Everything here is pure given its inputs: the same record, split, format and
run seed give the same :class:`~flan_data.specs.RenderedExample` on every
machine. Each random choice draws from its own RNG derived from
``(run seed, task, split, example id, purpose)``, so changing one choice (say,
the number of shots) leaves the others alone.

>>> from flan_data import Catalog
>>> cat = Catalog.load()
>>> r = Renderer(cat)
>>> tr = r.task_renderer("anli_r1")
>>> ex = tr.render("ex-1", {"uid": "x", "premise": "A cat sleeps.", "hypothesis": "An animal rests.",
...                         "label": 0, "reason": ""}, split="validation", fmt="zs_opt", seed=0)
>>> ex.targets in ("yes", "(A)", "A", "A)", "(a)", "1", "(1)", "[1]")
True
"""

from __future__ import annotations

import itertools
import random
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import nodes

from . import lru
from .catalog import Catalog
from .compose import _target_labelled, compose_example_uncached, compose_query, join_parts
from .errors import (
    FlanDataError,
    RecordError,
    TemplateError,
    TemplateLimitError,
    TemplateSecurityError,
    UnknownNameError,
)
from .fewshot import (
    DEFAULT_BUDGET,
    DEFAULT_SHOTS,
    ExemplarPicker,
    Tokenizer,
    WhitespaceTokenizer,
    fit_count,
)
from .options import ALL_STYLES, PLAIN, OptionStyle, format_options
from .seeding import SeedPrefix, choose, derive_seed, mix64, mix64_array, purpose_salt
from .specs import FORMATS, OPTION_STYLES, FewShotStyle, RenderedExample, TaskSpec
from .templates import CompiledTemplate, TemplateEngine
from .textcheck import ends_with_cue, starts_with_label


@dataclass(frozen=True)
class RenderConfig:
    """Knobs of rendering that are not per-example."""

    shots: int = DEFAULT_SHOTS
    budget: int = DEFAULT_BUDGET
    option_style: str = "random"
    tokenizer: Tokenizer = field(default_factory=WhitespaceTokenizer)

    def __post_init__(self) -> None:
        if self.option_style not in OPTION_STYLES:
            raise UnknownNameError("option style", self.option_style, OPTION_STYLES)
        if self.shots < 0:
            raise FlanDataError(f"shots must be >= 0, got {self.shots}")
        if self.budget <= 0:
            raise FlanDataError(f"budget must be > 0, got {self.budget}")


@dataclass(frozen=True)
class Exemplar:
    """A pool entry: an example id and its canonical fields."""

    example_id: str
    fields: Mapping[str, Any]


def is_opt_format(fmt: str) -> bool:
    return fmt.endswith("_opt") or fmt == "cot"


def is_fewshot_format(fmt: str) -> bool:
    return fmt.startswith("fs_")


class TaskRenderer:
    """One task, compiled: field expressions, options and templates per format.

    Build through :meth:`Renderer.task_renderer` (cached per task).
    """

    def __init__(
        self, task: TaskSpec, catalog: Catalog, engine: TemplateEngine, config: RenderConfig
    ):
        self.task = task
        self.catalog = catalog
        self.engine = engine
        self.config = config
        where = f"{task.file}: task {task.name!r}"
        self._fields = [(name, expr, engine.expression(expr, f"{where} field {name!r}"), engine.field_getter(expr))
                        for name, expr in task.fields.items()]  # fmt: skip
        self._options_expr = (
            engine.expression(task.options_field, f"{where} options.field")
            if task.options_field
            else None
        )
        self._options_fast = engine.field_getter(task.options_field) if task.options_field else None
        self._reads_options = any(
            "options" in engine.variables_of("{{ " + e + " }}") for e in task.fields.values()
        )
        self.templates: tuple[CompiledTemplate, ...] = tuple(
            engine.compile(t) for t in catalog.templates_for(task)
        )
        self._by_id = {ct.spec.id: ct for ct in self.templates}
        # promptsource-dialect templates take fields as promptsource gives them
        # (bools, mappings, None are data their Jinja tests), so no value checks.
        self._check_values = not self.templates or any(
            ct.spec.dialect != "promptsource" for ct in self.templates
        )
        # canonical fields some template puts in the target: they must not be empty
        self._target_fields = frozenset(
            v
            for t in catalog.templates_for(task)
            for v in _target_variables(engine, t.target)
            if v in task.fields or v == "answer"
        )
        self._needed: dict[str, tuple[str, ...]] = {}
        self._direct = [(name, _direct_reader(expr), name in self._target_fields) for name, expr in task.fields.items()]  # fmt: skip
        self._fixed_opts = LabelOptions(task.options) if task.options is not None else None
        self._styles: tuple[FewShotStyle, ...] = catalog.fewshot_styles or (
            FewShotStyle(id="default"),
        )

    # -- templates per format

    def eligible(self, fmt: str) -> tuple[CompiledTemplate, ...]:
        """Templates that can render ``fmt`` for this task."""
        if fmt not in FORMATS:
            raise UnknownNameError("format", fmt, FORMATS)
        if fmt == "cot":
            out = tuple(t for t in self.templates if t.spec.kind == "cot")
            if not out:
                raise FlanDataError(
                    f"task {self.task.name!r} has no chain-of-thought templates; formats: {', '.join(self.formats())}"
                )
            return out
        if is_fewshot_format(fmt):
            own = tuple(t for t in self.templates if t.spec.kind == "few_shot")
            if own:
                return own
        return tuple(t for t in self.templates if t.spec.kind != "few_shot")

    def formats(self) -> tuple[str, ...]:
        kinds = {t.spec.kind for t in self.templates}
        base = (
            ("zs_opt", "zs_noopt", "fs_opt", "fs_noopt")
            if kinds - {"few_shot"}
            else ("fs_opt", "fs_noopt")
        )
        return base + (("cot",) if "cot" in kinds else ())

    def template(self, template_id: str) -> CompiledTemplate:
        try:
            return self._by_id[template_id]
        except KeyError:
            raise UnknownNameError(
                "template", template_id, self._by_id, hint=f"templates of task {self.task.name}"
            ) from None

    # -- fields

    def canonical(
        self, example_id: str, raw: Mapping[str, Any], split: str | None = None
    ) -> dict[str, Any]:
        """Map a raw source record to the canonical fields the templates use.

        Bad values never become text: a null or NaN field, an empty field that
        a template puts in the target, a bool/mapping/bytes where text is
        expected, an option list with a null, or a label outside the options
        (negative included: ``options[-1]`` is an error, not the last option)
        raise :class:`RecordError` naming task, split, record and field, with a
        short ``reason`` exports count skipped records by.
        """
        try:
            return self._canonical(example_id, raw)
        except RecordError as e:
            if split is not None and e.split is None:
                raise RecordError(e.task, e.record_id, e.problem, e.available, split=split,
                                  field=e.field, reason=e.reason) from None  # fmt: skip
            raise

    def canonical_many(
        self, items: Sequence[tuple[str, Mapping[str, Any]]], split: str | None = None
    ) -> list[dict[str, Any] | RecordError]:
        """:meth:`canonical` of many ``(example_id, raw)`` pairs, in order; a bad
        record gets its :class:`RecordError` in place of its fields.

        When every field is a plain key or ``options[key]`` and the options are
        the task's own, the fields are read column by column and checked as
        columns; any surprise (a missing key, a value that is not a non-empty
        string, an answer outside the options) sends the batch through
        :meth:`canonical` row by row, which decides and words the error.
        """
        fast = self._columns(items)
        if fast is not None:
            return fast
        out: list[dict[str, Any] | RecordError] = []
        for eid, raw in items:
            try:
                out.append(self.canonical(eid, raw, split))
            except RecordError as e:
                out.append(e)
        return out

    def _columns(
        self, items: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[dict[str, Any]] | None:
        task = self.task
        opts = task.options
        if not items or (opts is None and self._options_expr is not None):
            return None
        lopts = self._fixed_opts
        cols = []
        try:
            for _name, direct, target in self._direct:
                if direct is None:
                    return None
                col = [direct(raw, lopts) for _, raw in items]
                if self._check_values and not (
                    all(type(v) is str for v in col) and (not target or all(v.strip() for v in col))
                ):
                    return None
                cols.append(col)
        except Exception:  # noqa: BLE001 - the row-by-row path decides
            return None
        names = [name for name, _, _ in self._direct]
        if opts is not None and "answer" in names:
            allowed = frozenset(opts)
            ans = cols[names.index("answer")]
            if not all(type(a) is str and a in allowed for a in ans):
                return None
        if opts is None:
            return [dict(zip(names, vals)) for vals in zip(*cols)]
        names.append("options")
        return [dict(zip(names, (*vals, opts))) for vals in zip(*cols)]

    def _canonical(self, example_id: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        opts: tuple[str, ...] | None = self.task.options
        if opts is None and self._options_expr is not None:
            val = None
            if self._options_fast is not None:
                try:
                    val = self._options_fast(raw)
                except Exception:  # noqa: BLE001 - the Jinja path decides
                    val = None
            if val is None:
                val = self._eval(
                    self._options_expr, raw, "options", self.task.options_field, example_id, raw
                )
            if not isinstance(val, list | tuple) or not val:
                raise RecordError(
                    self.task.name,
                    example_id,
                    f"options expression {self.task.options_field!r} gave {val!r}, expected a non-empty list",
                    field="options",
                    reason="options not a non-empty list",
                )
            for o in val:
                why = bad_value(o)
                if why:
                    raise RecordError(self.task.name, example_id, f"an option is {why} ({list(val)!r})",
                                      field="options", reason=f"{why} in options")  # fmt: skip
            opts = tuple(str(o) for o in val)
        out: dict[str, Any] = {}
        # Plain keys and `options[key]` are read straight from the record (no
        # context copy); anything else, or any surprise, takes the path below.
        lopts = (self._fixed_opts if opts is self.task.options else LabelOptions(opts)) if opts is not None else None  # fmt: skip
        for name, direct, _ in self._direct:
            if direct is not None:
                try:  # noqa: SIM105 - a try is cheaper than contextlib.suppress per field
                    out[name] = direct(raw, lopts)
                except Exception:  # noqa: BLE001 - the general path decides
                    pass
        if len(out) < len(self._fields):
            # Field expressions may read `options`; copy the record only then.
            ctx: Mapping[str, Any] = raw
            if opts is not None and self._reads_options:
                ctx = {**raw, "options": lopts}
            for name, expr, fn, fast in self._fields:
                if name in out:
                    continue
                if fast is not None:
                    try:
                        out[name] = fast(ctx)
                        continue
                    except Exception:  # noqa: BLE001 - any surprise: the Jinja path decides
                        pass
                out[name] = self._eval(fn, ctx, name, expr, example_id, raw)
            out = {name: out[name] for name, _, _ in self._direct}  # the fields' order
        if self._check_values:
            for name, _, target in self._direct:
                val = out[name]
                if type(val) is str and (not target or val.strip()):
                    continue  # the common case, decided without bad_value
                why = bad_value(val, target)
                if why:
                    raise RecordError(self.task.name, example_id, f"{why} ({self.task.fields[name]} gave {val!r})",
                                      field=name, reason=f"{why} in {name}")  # fmt: skip
        if opts is not None:
            out["options"] = opts
            ans = out.get("answer")
            if ans is not None and str(ans) not in opts:
                raise RecordError(
                    self.task.name,
                    example_id,
                    f"answer {ans!r} is not one of the options {list(opts)}",
                    field="answer",
                    reason="answer not one of the options",
                )
        return out

    def _eval(
        self,
        fn: Any,
        ctx: Mapping[str, Any],
        name: str,
        expr: str,
        example_id: str,
        raw: Mapping[str, Any],
    ) -> Any:
        # Fast path: a plain key (the common case) skips Jinja entirely.
        if expr in ctx:
            return ctx[expr]
        try:
            val = fn(**ctx)
        except jinja2.sandbox.SecurityError as e:
            raise TemplateSecurityError(
                f"{self.task.file}: task {self.task.name!r} field {name!r}: expression tried to leave the sandbox: {e}"
            ) from None
        except jinja2.UndefinedError as e:
            if "unsafe" in (e.message or ""):
                raise TemplateSecurityError(
                    f"{self.task.file}: task {self.task.name!r} field {name!r}: expression tried to leave the sandbox: {e.message}"
                ) from None
            raise RecordError(
                self.task.name,
                example_id,
                f"field {name!r} ({expr}) cannot be computed: {e.message}",
                raw.keys(),
                field=name,
                reason=f"missing field for {name}",
            ) from None
        except LabelError as e:
            raise RecordError(self.task.name, example_id, f"field {name!r} ({expr}): {e}", field=name,
                              reason="label out of range for the options") from None  # fmt: skip
        except TemplateLimitError as e:  # e.g. a value longer than the sandbox's sequence size
            raise RecordError(self.task.name, example_id, f"field {name!r} ({expr}): {e}", field=name,
                              reason=f"{name} over the template {e.limit or 'size'} limit") from None  # fmt: skip
        except (TypeError, ValueError, IndexError, KeyError, AttributeError) as e:
            raise RecordError(
                self.task.name,
                example_id,
                f"field {name!r} ({expr}) failed: {type(e).__name__}: {e}",
                raw.keys(),
                field=name,
                reason=f"{type(e).__name__} in {name}",
            ) from None
        if isinstance(val, jinja2.Undefined):
            hint = getattr(val, "_undefined_hint", None) or ""
            if "unsafe" in hint:  # the sandbox answers unsafe access with an Undefined
                raise TemplateSecurityError(
                    f"{self.task.file}: task {self.task.name!r} field {name!r}: expression tried to leave the sandbox: {hint}"
                )
            raise RecordError(
                self.task.name,
                example_id,
                f"missing field for {name!r} ({expr})",
                raw.keys(),
                field=name,
                reason=f"missing field for {name}",
            )
        return val

    def exemplar(self, example_id: str, raw: Mapping[str, Any]) -> Exemplar:
        return Exemplar(example_id, self.canonical(example_id, raw))

    # -- rendering

    def _context(
        self, canon: Mapping[str, Any], ct: CompiledTemplate, style: OptionStyle | None
    ) -> dict[str, Any]:
        ctx = dict(canon)
        opts = canon.get("options")
        if opts is None:
            ctx["options"] = []
        ctx["options_block"] = ""
        if "answer" in canon:
            ctx["answer_text"] = canon["answer"]
        if style is not None and opts:
            block, targets = format_options(opts, style)
            ctx["options_block"] = block
            if ct.uses_options and "answer" in canon:
                ctx["answer"] = targets[opts.index(str(canon["answer"]))]
        return ctx

    def _needs(self, ct: CompiledTemplate, canon: Mapping[str, Any], example_id: str) -> None:
        needed = self._needed.get(ct.spec.id)
        if needed is None:
            needed = self._needed[ct.spec.id] = tuple(v for v in ct.variables if v not in _SUPPLIED)
        for v in needed:
            if v not in canon:
                missing = sorted(x for x in ct.variables - set(canon) if x not in _SUPPLIED)
                raise RecordError(
                    self.task.name,
                    example_id,
                    f"template {ct.spec.id!r} needs field(s) {', '.join(missing)}",
                    canon.keys(),
                )

    def _render(
        self,
        ct: CompiledTemplate,
        canon: Mapping[str, Any],
        style: OptionStyle | None,
        example_id: str,
    ) -> tuple[str, str]:
        self._needs(ct, canon, example_id)
        try:
            i, t = self.engine.render(ct, self._context(canon, ct, style))
        except TemplateSecurityError:
            raise
        except TemplateError as e:
            # The template failed on this record's values (e.g. an index out of
            # range): a record error, skipped and counted under --on-error skip.
            raise RecordError(self.task.name, example_id, str(e)) from None
        return i.strip(), t.strip()

    def _render_group(
        self, ct: CompiledTemplate, jobs: list[tuple[Mapping[str, Any], OptionStyle | None, str]]
    ) -> list[tuple[str, str]]:
        """Render many (canonical fields, option style, example id) with one template."""
        ctxs = []
        for canon, style, eid in jobs:
            self._needs(ct, canon, eid)
            ctxs.append(self._context(canon, ct, style))
        try:
            pairs = self.engine.render_many(ct, ctxs)
        except TemplateSecurityError:
            raise
        except TemplateError:
            # find the record that fails and raise its RecordError
            return [self._render(ct, canon, style, eid) for canon, style, eid in jobs]
        return [(i.strip(), t.strip()) for i, t in pairs]

    def _render_simple(
        self, ct: CompiledTemplate, grp: list[list[Any]]
    ) -> tuple[list[str], list[str]] | None:
        """Render rows ``[index, eid, canon, base, ct, style]`` that share a simple
        template column by column (:class:`~flan_data.templates.SimpleTemplate`),
        with the values :meth:`_context` would give Jinja. None when a row lacks a
        value or comes near a size limit: the Jinja path then renders (or raises)."""
        st = ct.simple
        n = len(grp)
        cols: dict[str, list[str]] = {}
        fos: list[Any] = []
        if "options_block" in st.names or ("answer" in st.names and ct.uses_options):
            # one options block per (options, style) in the group, not one per row
            memo: dict[tuple[int, int], tuple[str, tuple[str, ...]]] = {}
            for r in grp:
                style, opts = r[5], r[2].get("options")
                if style is None or not opts:
                    fos.append(None)
                    continue
                key = (id(opts), id(style))  # both stay alive in grp meanwhile
                hit = memo.get(key)
                if hit is None:
                    hit = memo[key] = format_options(opts, style)
                fos.append(hit)
        try:
            for name in st.names:
                if name == "options_block":
                    col = ["" if f is None else f[0] for f in fos]
                elif name == "answer" and ct.uses_options:
                    col = [r[2]["answer"] if f is None else f[1][r[2]["options"].index(str(r[2]["answer"]))]
                           for r, f in zip(grp, fos)]  # fmt: skip
                elif name == "answer_text":
                    col = [r[2]["answer"] if "answer" in r[2] else r[2]["answer_text"] for r in grp]
                elif name == "options":
                    col = [[] if r[2].get("options") is None else r[2]["options"] for r in grp]
                else:
                    col = [r[2][name] for r in grp]
                cols[name] = [v if type(v) is str else str(v) for v in col]
        except KeyError:
            return None
        ins, tgs = st.render(cols, n)
        lim = self.engine.env.limits
        if (
            n
            and max(map(len, ins)) + max(map(len, tgs))
            > min(lim.output_chars, lim.sequence_len) // 2
        ):
            return None
        RENDER_STATS["columnar_rows"] += n
        return [a.strip() for a in ins], [b.strip() for b in tgs]

    def render(
        self,
        example_id: str,
        raw: Mapping[str, Any],
        *,
        split: str,
        fmt: str,
        seed: int,
        pool: Sequence[Exemplar] | None = None,
        template_id: str | None = None,
        canonical: Mapping[str, Any] | None = None,
    ) -> RenderedExample:
        """Render one record in format ``fmt``.

        ``pool`` supplies few-shot exemplars (``fs_*`` formats, unless the task
        takes exemplars from one of its fields); the example itself is never
        chosen. ``canonical`` skips the field mapping when already done.
        Identical to one row of :meth:`render_batch`.
        """
        cols = self.render_batch([(example_id, raw)], split=split, fmt=fmt, seed=seed, pool=pool, template_id=template_id,
                                 canonicals=[canonical] if canonical is not None else None)  # fmt: skip
        return RenderedExample(**{k: (tuple(v[0]) if k in ("options", "exemplar_ids") and v[0] is not None else v[0])
                                  for k, v in cols.items() if k != "index"})  # fmt: skip

    def render_batch(
        self,
        items: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        split: str,
        fmt: str,
        seed: int,
        pool: Sequence[Exemplar] | None = None,
        template_id: str | None = None,
        canonicals: Sequence[Mapping[str, Any] | None] | None = None,
        errors: list[tuple[int, RecordError]] | None = None,
        turns: bool = False,
        columnar: bool = True,
    ) -> dict[str, list[Any]]:
        """Render many ``(example_id, raw record)`` items; return columns.

        Rows that share a template render in one call of its batch template.
        With ``errors`` given, a bad record is reported there as
        ``(item index, RecordError)`` and left out; otherwise it raises. The
        ``index`` column maps each output row to its item. ``turns=True`` adds a
        ``turns`` column: for a composed few-shot row, (exemplars as (input,
        target) texts, query input) before the few-shot style joins them; else None.
        Big batches go column-wise through Arrow where the task allows
        (:func:`flan_data.columnar.render_items`, few-shot ones from a pool
        :func:`flan_data.columnar_fs.render_items`; ``columnar=False`` never): same columns.
        """
        if columnar and canonicals is None and len(items) >= COLUMNAR_MIN:
            if not is_fewshot_format(fmt):
                from .columnar import render_items

                got = render_items(self, items, split=split, fmt=fmt, seed=seed, template_id=template_id,
                                   errors=errors, turns=turns)  # fmt: skip
            elif template_id is None and pool is not None:
                from .columnar_fs import render_items as render_fewshot_items

                got = render_fewshot_items(self, items, split=split, fmt=fmt, seed=seed, pool=pool,
                                           errors=errors, turns=turns)  # fmt: skip
            else:
                got = None
            if got is not None:
                return got
        task = self.task
        cfg = self.config
        cands = self.eligible(fmt)
        fixed = self.template(template_id) if template_id else None
        prefix = SeedPrefix(seed, task.name, split)
        opt_fmt = is_opt_format(fmt)
        good: list[tuple[int, str, Mapping[str, Any]]] = []
        if canonicals is None and len(items) >= VECTOR_MIN:
            canonicals = self.canonical_many(items, split)  # column-wise where it can
        for i, (eid, raw) in enumerate(items):
            try:
                canon = (
                    canonicals[i]
                    if canonicals is not None and canonicals[i] is not None
                    else self.canonical(eid, raw, split)
                )
                if type(canon) is not dict and isinstance(canon, RecordError):
                    raise canon
            except RecordError as e:
                if errors is None:
                    raise
                errors.append((i, e))
                continue
            good.append((i, eid, canon))
        # Per-example seeds and the choices hanging off them, for the whole batch
        # at once (numpy over the BLAKE2b seeds for big batches; the same values).
        eids = [g[1] for g in good]
        plain = cfg.option_style == "plain"
        if len(good) >= VECTOR_MIN:
            seeds = prefix.derive_many(eids)
            bases = seeds.tolist()
            tix = None if fixed else choose(seeds, _SALT_TEMPLATE, len(cands)).tolist()
            six = (
                None
                if plain or not opt_fmt
                else choose(seeds, _SALT_OPTIONS, len(ALL_STYLES)).tolist()
            )
        else:
            bases = [prefix.derive(e) for e in eids]
            tix = None if fixed else [mix64(b, _SALT_TEMPLATE) % len(cands) for b in bases]
            six = (
                None
                if plain or not opt_fmt
                else [mix64(b, _SALT_OPTIONS) % len(ALL_STYLES) for b in bases]
            )
        rows: list[list[Any]] = []  # [index, eid, canon, base, ct, style]
        for k, (i, eid, canon) in enumerate(good):
            base = bases[k]
            ct = fixed or cands[tix[k]]
            if ct.spec.dialect == "promptsource":
                # promptsource's `choice`/`random` draw from the example's seed
                canon = {**canon, "__seed": base}
            style = None
            if opt_fmt and canon.get("options"):
                style = PLAIN if plain else ALL_STYLES[six[k]]
            rows.append([i, eid, canon, base, ct, style])

        if not is_fewshot_format(fmt):
            ins, tgs = self._render_texts(rows, errors)
            if None in ins:  # rows that failed (reported in errors) are left out
                keep = [k for k, x in enumerate(ins) if x is not None]
                rows, ins, tgs = [rows[k] for k in keep], [ins[k] for k in keep], [tgs[k] for k in keep]  # fmt: skip
            n = len(rows)
            cols = {
                "index": [r[0] for r in rows],
                "inputs": ins,
                "targets": tgs,
                "task": [task.name] * n,
                "collection": [task.collection] * n,
                "format": [fmt] * n,
                "template_id": [r[4].spec.id for r in rows],
                "fewshot_style": [None] * n,
                "options": [list(r[2]["options"]) if r[2].get("options") else None for r in rows],
                "exemplar_ids": [[] for _ in range(n)],
                "example_id": [r[1] for r in rows],
                "source_split": [split] * n,
                "seed": [r[3] for r in rows],
            }
            if turns:
                cols["turns"] = [None] * n
            return cols
        if any(r[4].spec.kind == "few_shot" for r in rows):
            texts = self._render_own_fewshot(rows, pool, errors)
            got = [texts.get(r[0]) for r in rows]
            res = tuple([None if t is None else t[x] for t in got] for x in range(4))
            res += ([None] * len(rows),)
        else:
            res = self._render_composed(rows, pool, fmt, errors, turns)
        if None in res[0]:  # rows that failed (reported in errors) are left out
            keep = [k for k, x in enumerate(res[0]) if x is not None]
            rows = [rows[k] for k in keep]
            res = tuple([c[k] for k in keep] for c in res)
        n = len(rows)
        cols: dict[str, list[Any]] = {
            "index": [r[0] for r in rows],
            "inputs": res[0],
            "targets": res[1],
            "task": [task.name] * n,
            "collection": [task.collection] * n,
            "format": [fmt] * n,
            "template_id": [r[4].spec.id for r in rows],
            "fewshot_style": res[2],
            "options": [list(r[2]["options"]) if r[2].get("options") else None for r in rows],
            "exemplar_ids": res[3],
            "example_id": [r[1] for r in rows],
            "source_split": [split] * n,
            "seed": [r[3] for r in rows],
        }
        if turns:
            cols["turns"] = res[4]
        return cols

    def _render_texts(self, rows, errors) -> tuple[list[str | None], list[str | None]]:
        """(inputs, targets) of zero-shot rows, aligned with ``rows`` (None where a
        row failed; its error is in ``errors``). Rows sharing a template render
        together: column-wise when the template is simple, else one Jinja call."""
        groups: dict[str, list[int]] = {}
        for k, r in enumerate(rows):
            groups.setdefault(r[4].spec.id, []).append(k)
        if len(groups) == 1:
            return self._render_texts_group(rows, errors)
        ins: list[str | None] = [None] * len(rows)
        tgs: list[str | None] = [None] * len(rows)
        for ks in groups.values():
            gi, gt = self._render_texts_group([rows[k] for k in ks], errors)
            for k, a, b in zip(ks, gi, gt):
                ins[k] = a
                tgs[k] = b
        return ins, tgs

    def _render_texts_group(self, grp, errors) -> tuple[list[str | None], list[str | None]]:
        ct = grp[0][4]
        res = self._render_simple(ct, grp) if ct.simple is not None else None
        if res is not None:
            return res
        RENDER_STATS["jinja_rows"] += len(grp)
        try:
            texts = self._render_group(ct, [(r[2], r[5], r[1]) for r in grp])
        except RecordError:
            if errors is None:
                raise
            texts = []
            for r in grp:  # find the bad rows, keep the good ones
                try:
                    texts.append(self._render(ct, r[2], r[5], r[1]))
                except RecordError as e:
                    errors.append((r[0], e))
                    texts.append(None)
        return [t and t[0] for t in texts], [t and t[1] for t in texts]

    def _render_composed(self, rows, pool, fmt, errors, turns: bool = False) -> tuple[list, ...]:
        """Few-shot by composition: exemplars and query share template and option style.

        Returns columns aligned with ``rows``: inputs, targets, few-shot style ids,
        exemplar ids and turns (None where a row failed; its error is in ``errors``).

        Each pool exemplar is rendered once per template for this task renderer
        (across batches and chunk jobs: :class:`_FewShotCache`), with the option
        block and the lettered answer left as placeholders where the template
        only prints them (:func:`_split_form`); a row's option style then fills
        them in, which gives the bytes a render under that style gives.
        Exemplars of an exemplar field render once per batch.

        Big batches from a pool pick exemplars for all rows at once
        (:meth:`~flan_data.fewshot.ExemplarPicker.pick_array`) and assemble the
        prompts column-wise (:meth:`_assemble_columns`): each exemplar composed
        once per (template, exemplar, few-shot style, option-style class) as
        literal segments around option values, filled per row. Rows it cannot
        decide with certainty take the per-row assembly (:meth:`_assemble_rows`;
        the same bytes).
        """
        cfg = self.config
        tok = cfg.tokenizer
        field = self.task.exemplar_field
        if field is None and pool is None:
            raise FlanDataError(
                f"task {self.task.name!r}: few-shot format {fmt!r} needs an exemplar pool (the train split)"
            )
        cache = self._fewshot_cache()
        nr = len(rows)
        res: tuple[list, ...] = tuple([None] * nr for _ in range(5))
        todo: dict[tuple, tuple] = {}  # key -> (ct, exemplar, style, mode)
        plans = []  # (position, row, few-shot style, exemplars, their entries once rendered)
        styles, n_styles = self._styles, len(self._styles)
        col = None  # the rows assembled column-wise (see _columnar_plan)
        if field is None:
            meta = cache.pool
            if (
                meta is None
                or meta[0] is not pool
                or meta[1].k != cfg.shots
                or cache.n_entries > _FS_CACHE_MAX  # bounded: huge pools or many templates
                or cache.n_bytes > FS_CACHE_BYTES  # and by bytes: long documents
            ):
                cache.clear()
                has_opts = [bool(e.fields.get("options")) for e in pool]
                # per pool entry: it has options and can be split (no placeholder character)
                splittable = [h and _safe_fields(cache, e) for h, e in zip(has_opts, pool)]
                picker = ExemplarPicker([e.example_id for e in pool], cfg.shots)
                meta = cache.pool = (pool, picker, has_opts, splittable)
            _, picker, has_opts, splittable = meta
            tables = cache.tables  # (template id, mode) -> {pool index: entry}
            split_of = cache.split
            # few-shot style and exemplar picks of every row (numpy for big batches)
            picks_a = None
            if nr >= VECTOR_MIN:
                import numpy as np

                bases = np.array([r[3] for r in rows], dtype=np.uint64)
                fsix_a = choose(bases, _SALT_FSSTYLE, n_styles)
                picks_a = picker.pick_array(
                    [r[1] for r in rows], mix64_array(bases, _SALT_EXEMPLARS)
                )
                fsix = fsix_a.tolist()
            else:
                fsix = [mix64(r[3], _SALT_FSSTYLE) % n_styles for r in rows]
            if picks_a is not None:
                if FEWSHOT_COLUMNS and type(tok) is WhitespaceTokenizer and not turns:
                    col = self._columnar_plan(rows, picks_a, fsix_a, meta, cache, todo)
                per_row = range(nr) if col is None else np.flatnonzero(~col[0]).tolist()
                picks_l = picks_a[per_row].tolist()
            else:
                per_row = range(nr)
                picks_l = [picker.pick(r[1], mix64(r[3], _SALT_EXEMPLARS)) for r in rows]
            refs = []  # per plan: (picks, the table of each pick)
            for k, picks in zip(per_row, picks_l):
                r = rows[k]
                ct, style = r[4], r[5]
                ctid = ct.spec.id
                if style is None:
                    split = False
                else:
                    split = split_of.get(ctid)
                    if split is None:
                        split = split_of[ctid] = _split_form(self.engine, ct)
                tl = []
                for j in picks:
                    if style is None or not has_opts[j]:  # no option block: one render
                        tkey, mode = (ctid, None), _REAL
                    elif split and splittable[j]:
                        tkey, mode = (ctid, _SPLIT), _SPLIT
                    else:
                        tkey, mode = (ctid, id(style)), _REAL
                    tab = tables.get(tkey)
                    if tab is None:
                        tab = tables[tkey] = {}
                    if j not in tab and (tkey, j) not in todo:
                        todo[tkey, j] = (ct, pool[j], style, mode)
                    tl.append(tab)
                plans.append((k, r, styles[fsix[k]], None, None))
                refs.append((picks, tl))
            if todo:
                tindex, by_code, n_pool = self._template_index(), cache.by_code, len(pool)
                for (tkey, j), e in self._render_exemplars(todo, cache, errors).items():
                    tables.setdefault(tkey, {})[j] = e
                    if tkey[1] is None or tkey[1] is _SPLIT:
                        by_code[(tindex[tkey[0]] * 2 + (tkey[1] is _SPLIT)) * n_pool + j] = e
                    if e is not None:
                        cache.n_bytes += _text_bytes(e[1], e[2])
                cache.n_entries += len(todo)
            plans = [
                (p[0], p[1], p[2], [pool[j] for j in picks], [tab[j] for j, tab in zip(picks, tl)])
                for p, (picks, tl) in zip(plans, refs)
            ]
            qrows = rows  # the queries of all rows, in row order (errors in row order)
        else:
            batch: dict[tuple, Any] = {}  # exemplar-field entries: this batch only
            for k, r in enumerate(rows):
                idx, eid, canon, base, ct, style = r
                fs = styles[mix64(base, _SALT_FSSTYLE) % n_styles]
                val = canon.get(field)
                if not isinstance(val, list | tuple):
                    e = RecordError(
                        self.task.name, eid, f"exemplar field {field!r} is not a list", canon.keys()
                    )
                    if errors is None:
                        raise e
                    errors.append((idx, e))
                    continue
                keys, exs = [], []
                for j, x in enumerate(val[: cfg.shots]):
                    ex = Exemplar(f"{field}[{j}]", x)
                    # each row has its own field exemplars: keyed by the row
                    key = (ct.spec.id, id(style), idx, j)
                    if key not in todo:
                        todo[key] = (ct, ex, style, _REAL)
                    keys.append(key)
                    exs.append(ex)
                plans.append((k, r, fs, exs, keys))
            if todo:
                batch.update(self._render_exemplars(todo, cache, errors))
            plans = [(k, r, fs, exs, [batch[x] for x in keys]) for k, r, fs, exs, keys in plans]
            qrows = [p[1] for p in plans]
        qi_l, qt_l = self._render_texts(qrows, errors)
        if qrows is not rows:  # spread over the rows' positions
            qi_s, qt_s = qi_l, qt_l
            qi_l, qt_l = [None] * nr, [None] * nr
            for p, a, b in zip(plans, qi_s, qt_s):
                qi_l[p[0]] = a
                qt_l[p[0]] = b
        if col is not None:
            rest = self._assemble_columns(rows, col, qi_l, qt_l, cache, res)
            if rest:  # rows the columns could not decide: per row
                by_code = cache.by_code
                for k in rest:
                    picks = col[1][k].tolist()
                    ents = [by_code.get(c) for c in col[2][k].tolist()]
                    plans.append((k, rows[k], styles[fsix[k]], [pool[j] for j in picks], ents))
        self._assemble_rows(plans, qi_l, qt_l, cache, res)
        return res

    def _assemble_rows(self, plans, qi_l, qt_l, cache: _FewShotCache, res: tuple[list, ...]) -> None:  # fmt: skip
        """The per-row assembly: fill each exemplar in, check the budget, compose;
        written into the columns ``res`` at each plan's position."""
        cfg = self.config
        tok = cfg.tokenizer
        style_tokens = cache.style_tokens
        bound = type(tok) is WhitespaceTokenizer
        budget = cfg.budget
        lim = self.engine.env.limits.output_chars
        RENDER_STATS["fewshot_row_rows"] += len(plans)
        pooled = self.task.exemplar_field is None
        r_in, r_tg, r_fs, r_ids, r_turns = res
        for p, r, fs, exs, ents_ in plans:
            qi = qi_l[p]
            if qi is None:
                continue
            qt = qt_l[p]
            style = r[5]
            fsid = fs.id
            st = style_tokens.get(fsid)
            if st is None:
                st = style_tokens[fsid] = tok.count(fs.input_prefix) + tok.count(fs.target_prefix)
            ins, tgs, ents, ids, blocks = [], [], [], [], []
            words = (len(qi) + len(qt)) // 2 + 1 + st  # an upper bound of the whitespace words
            opts = block = None
            for ex, e in zip(exs, ents_):
                if e is None:
                    continue  # an exemplar the template fails on is left out of the prompts
                if e[0] is _SPLIT:
                    fields = ex.fields
                    o = fields["options"]
                    if o is not opts:
                        opts = o
                        block, targets = format_options(o, style)
                    i, t = e[1], e[2]
                    if e[6]:
                        i = i.replace(_SENT_BLOCK, block)
                    if e[7]:
                        t = t.replace(_SENT_BLOCK, block)
                    if e[5] is not None:
                        a = targets[e[5]]
                        if e[10]:
                            i = i.replace(_SENT_ANSWER, a)
                        if e[11]:
                            t = a if e[11] is _ONLY else t.replace(_SENT_ANSWER, a)
                    if len(i) + len(t) > lim:
                        continue  # the render under this style exceeds the output limit
                    i, t = i.strip(), t.strip()
                else:
                    i, t = e[1], e[2]
                ins.append(i)
                tgs.append(t)
                blocks.append(block)
                ents.append(e)
                ids.append(ex.example_id)
                words += (len(i) + len(t)) // 2 + 1 + st
            n = len(ins)
            # Whitespace words: a text of L characters holds at most (L + 1) // 2,
            # so when that bound fits the budget every exemplar fits and no
            # text needs splitting (the common case; same result as counting).
            if not bound or words > budget:
                counts = []
                for i, t, e in zip(ins, tgs, ents):
                    if e[0] is _SPLIT:
                        c = e[3].get(id(style))
                        if c is None:
                            c = e[3][id(style)] = tok.count(i) + tok.count(t)
                    else:
                        c = e[3]
                        if c is None:
                            c = e[3] = tok.count(i) + tok.count(t)
                    counts.append(c + st)
                n = fit_count(counts, tok.count(qi) + st + tok.count(qt), budget)
            parts = []
            for k in range(n):
                e = ents[k]
                if e[0] is _SPLIT:
                    cued = e[9]
                    if cued is _BLOCK_CUE:
                        cued = _block_cued(blocks[k])
                    parts.append(compose_example_uncached(ins[k], tgs[k], fs, e[8], cued))
                else:
                    text = e[4].get(fsid)
                    if text is None:
                        text = compose_example_uncached(ins[k], tgs[k], fs)
                        # a long text is composed again when used again (a copy costs what
                        # the memo saves, and one per few-shot style was gigabytes)
                        if len(text) <= MEMO_CHARS:
                            e[4][fsid] = text
                            if pooled:  # (record-field exemplars live for their batch only)
                                cache.n_bytes += sys.getsizeof(text)
                    parts.append(text)
            parts.append(compose_query(qi, fs, qt))
            r_in[p] = join_parts(parts, fs)
            r_tg[p] = qt
            r_fs[p] = fsid
            r_ids[p] = ids[:n]
            r_turns[p] = (list(zip(ins[:n], tgs[:n])), qi)

    def _columnar_plan(self, rows, picks, fsix, meta, cache: _FewShotCache, todo: dict):
        """Which rows of a batch the column-wise assembly takes, and the exemplar
        entries they need (added to ``todo`` when not rendered yet).

        A row qualifies when each of its exemplars renders once per template:
        without an option block (no style, or no options) or split with
        placeholders (:func:`_split_form`). ``codes[row, e]`` names the entry:
        ``(template index * 2 + split) * pool size + pool index``. Returns
        ``(qualifies, picks, codes, few-shot style indices, option style indices)``.
        """
        import numpy as np

        pool = meta[0]
        n = len(pool)
        cp = cache.col_pool
        if cp is None:
            oid_of: dict[tuple[str, ...], int] = {}
            oids = []
            for e in pool:
                o = e.fields.get("options")
                oids.append(oid_of.setdefault(tuple(o), len(oid_of)) if o else -1)
            n_codes = len(self.templates) * 2 * n
            cp = cache.col_pool = (
                np.array(meta[2], dtype=bool),
                np.array(meta[3], dtype=bool),
                np.array(oids, dtype=np.int64),
                list(oid_of),
                np.array([e.example_id for e in pool], dtype=object),
            )
            cache.cstat = np.full((n_codes, 4), -1, dtype=np.int64)
            nv = max(len(oid_of), 1) * _N_STYLES
            cache.vinfo = np.full(
                (nv, 3), -2, dtype=np.int64
            )  # class id, block length, longest target
            cache.vvals = [()] * (nv + 1)  # format values by option key + 1 (0: none)
            cache.fids.clear()
            cache.flist.clear()
        has_opts, splittable = cp[0], cp[1]
        tindex = self._template_index()
        nr = len(rows)
        tix = np.fromiter((tindex[r[4].spec.id] for r in rows), dtype=np.int64, count=nr)
        six = np.fromiter(
            (-1 if r[5] is None else _STYLE_INDEX.get(id(r[5]), -2) for r in rows),
            dtype=np.int64,
            count=nr,
        )
        split_of = cache.split
        split_t = np.array(
            [
                split_of[ct.spec.id]
                if ct.spec.id in split_of
                else split_of.setdefault(ct.spec.id, _split_form(self.engine, ct))
                for ct in self.templates
            ],
            dtype=bool,
        )
        need = (six >= 0)[:, None] & has_opts[picks]  # exemplars filled in under the row's style
        per_style = need & ~(split_t[tix][:, None] & splittable[picks])
        ok = ~per_style.any(axis=1) & (six != -2)
        codes = (tix[:, None] * 2 + need) * n + picks
        known = cache.cstat[codes[ok], 3] >= 0
        if not known.all():
            by_code = cache.by_code
            tables = cache.tables
            for c in np.unique(codes[ok][~known]).tolist():
                if c in by_code:
                    continue
                t2, j = divmod(c, n)
                ct = self.templates[t2 // 2]
                mode = _SPLIT if t2 % 2 else None
                tkey = (ct.spec.id, mode)
                tab = tables.get(tkey)
                if tab is not None and j in tab:
                    by_code[c] = tab[j]
                elif (tkey, j) not in todo:
                    todo[tkey, j] = (ct, pool[j], None, _SPLIT if mode else _REAL)
        return (ok, picks, codes, fsix, six, need)

    def _template_index(self) -> dict[str, int]:
        ti = self.__dict__.get("_tindex")
        if ti is None:
            ti = self.__dict__["_tindex"] = {ct.spec.id: i for i, ct in enumerate(self.templates)}
        return ti

    def _assemble_columns(self, rows, col, qi_l, qt_l, cache: _FewShotCache, res) -> list[int]:
        """Column-wise few-shot assembly of the rows ``col`` selected, written into
        the columns ``res``; returns the positions of the rows it leaves to the
        per-row assembly.

        Each exemplar's composed text (cues, delimiter, prefixes: the rules of
        :mod:`flan_data.compose`) is built once per (entry, few-shot style,
        option-style class) as literal segments around the row's
        option block and lettered answers (:func:`_column_form`); a class groups
        the option styles that agree on every fact those rules read. Lookups go
        through dense arrays indexed by entry code and option key. A row is
        left to the per-row path when a fact is not certain (a label test that
        reaches into a placeholder, a blank value), an exemplar failed, or the
        whitespace-word bound does not fit the budget (then exact counts decide).
        """
        import numpy as np

        ok, picks, codes, fsix, six, need = col
        _, _, oids, opts_by_oid, ids_arr = cache.col_pool
        styles = self._styles
        nfs = len(styles)
        cfg = self.config
        budget = cfg.budget
        tok = cfg.tokenizer
        lim = self.engine.env.limits.output_chars
        pos = np.flatnonzero(ok)
        if not len(pos):
            return []
        P, C, F, split = picks[pos], codes[pos], fsix[pos], need[pos]
        shape = C.shape
        k = shape[1]
        # option values of each filled-in exemplar, by option key (options, style)
        vkey = np.where(split, oids[P] * _N_STYLES + six[pos][:, None], -1)
        vinfo, vvals = cache.vinfo, cache.vvals
        # which values hold a line break matters only under a same-line delimiter
        need_nl = any("\n" not in fs.x_y_delimiter for fs in styles)
        if split.any():
            vk = vkey[split]
            unknown = vk[vinfo[vk, 0] == -2]
            for v in np.unique(unknown).tolist():
                o, s = divmod(v, _N_STYLES)
                cid_, vals_, bl, am = _style_values(opts_by_oid[o], _STYLES[s], cache, need_nl)
                vinfo[v] = (cid_, bl, am)
                vvals[v + 1] = vals_
        vi = vinfo[np.maximum(vkey, 0)]
        cid = np.where(split, vi[..., 0], 0)
        blen = np.where(split, vi[..., 1], 0)
        amax = np.where(split, vi[..., 2], 0)
        # entries: (raw length, option blocks, lettered answers, rendered)
        cstat = cache.cstat
        cs = cstat[C]
        if (cs[..., 3] < 0).any():
            by_code = cache.by_code
            for c in np.unique(C[cs[..., 3] < 0]).tolist():
                cstat[c] = _code_stat(by_code.get(c))
            cs = cstat[C]
        bound = cs[..., 0] + cs[..., 1] * blen + cs[..., 2] * amax  # >= the filled lengths
        # composed segments by (entry, few-shot style) per class: ids into cache.flist
        fkey = C * nfs + F[:, None]
        fid = np.full(shape, -1, dtype=np.int64)
        fids, flist = cache.fids, cache.flist
        for c in np.unique(cid[cid >= 0]).tolist():
            m = cid == c
            arr = fids.get(c)
            if arr is None:
                arr = fids[c] = np.full(len(cstat) * nfs, -1, dtype=np.int32)
            keys = fkey[m]
            sub = arr[keys]
            if (sub == -1).any():
                facts = cache.class_facts.get(c)
                by_code, cparts = cache.by_code, cache.cparts
                for key in np.unique(keys[sub == -1]).tolist():
                    code, fs_i = divmod(key, nfs)
                    if cstat[code, 0] // 2 + 1 > budget:
                        # its bound alone is over the budget: its rows always go per row,
                        # so no composed copy is kept (one per few-shot style of a long text)
                        arr[key] = -2
                        continue
                    e = by_code.get(code)
                    parts = cparts.get(code, _MISSING)
                    if parts is _MISSING:
                        parts = cparts[code] = (
                            _split_parts(e) if e is not None and e[0] is _SPLIT else None
                        )
                        if parts is not None:
                            cache.n_bytes += _text_bytes(e[1], e[2])  # its segments
                    form = _column_form(e, parts, styles[fs_i], facts)
                    if form is None:
                        arr[key] = -2
                    else:
                        arr[key] = len(flist)
                        flist.append(form)
                        # the segments, and for a real entry the composed text too
                        cache.n_bytes += _text_bytes(*form) * (1 if e[0] is _SPLIT else 2)
                sub = arr[keys]
            fid[m] = sub
        # the whitespace-word bound of the whole prompt (the query's as in _assemble_rows)
        style_tokens = cache.style_tokens
        st_fs = []
        for fs in styles:
            t = style_tokens.get(fs.id)
            if t is None:
                t = style_tokens[fs.id] = tok.count(fs.input_prefix) + tok.count(fs.target_prefix)
            st_fs.append(t)
        st = np.array(st_fs, dtype=np.int64)[F]
        pl = pos.tolist()
        qlen = np.fromiter((0 if qi_l[p] is None else len(qi_l[p]) + len(qt_l[p]) for p in pl), dtype=np.int64, count=len(pl))  # fmt: skip
        has_q = np.fromiter((qi_l[p] is not None for p in pl), dtype=bool, count=len(pl))
        words = qlen // 2 + 1 + st + (bound // 2 + 1 + st[:, None]).sum(axis=1)
        good = (fid >= 0).all(axis=1) & (cs[..., 3] == 1).all(axis=1) & (bound <= lim).all(axis=1)
        good &= (words <= cfg.budget) & has_q
        rest = pos[~good & has_q].tolist()
        g = np.flatnonzero(good)
        if not len(g):
            return rest
        RENDER_STATS["fewshot_column_rows"] += len(g)
        forms = [flist[a] for a in fid[g].ravel().tolist()]
        vals = [vvals[b] for b in (vkey[g] + 1).ravel().tolist()]
        ids = ids_arr[P[g]].tolist()
        r_in, r_tg, r_fs, r_ids, _ = res
        fs_ids = [fs.id for fs in styles]
        rows_g, fs_g = pos[g].tolist(), F[g].tolist()
        cq = compose_query
        qs = [cq(qi_l[p], styles[f], qt_l[p]) for p, f in zip(rows_g, fs_g)]
        fill = _fill_segs
        if k == 3:  # the default shots: one join per row, the usual 5-segment forms inline
            ins = [("".join((a[0], va[a[1]], a[2], va[a[3]], a[4], b[0], vb[b[1]], b[2], vb[b[3]], b[4],
                             c[0], vc[c[1]], c[2], vc[c[3]], c[4], q))
                    if len(a) == 5 and len(b) == 5 and len(c) == 5
                    else fill(a, va) + fill(b, vb) + fill(c, vc) + q).rstrip()
                   for a, va, b, vb, c, vc, q in zip(forms[0::3], vals[0::3], forms[1::3], vals[1::3],
                                                     forms[2::3], vals[2::3], qs)]  # fmt: skip
        else:
            texts = [fill(a, b) for a, b in zip(forms, vals)]
            ins = [
                ("".join(texts[j : j + k]) + q).rstrip()
                for j, q in zip(range(0, k * len(g), k), qs)
            ]
        if len(rows_g) == len(r_in):  # every row: whole columns
            r_in[:] = ins
            r_tg[:] = qt_l
            r_fs[:] = [fs_ids[f] for f in fs_g]
            r_ids[:] = ids
            return rest
        for a, p in enumerate(rows_g):
            r_in[p] = ins[a]
            r_tg[p] = qt_l[p]
            r_fs[p] = fs_ids[fs_g[a]]
            r_ids[p] = ids[a]
        return rest

    def _fewshot_cache(self) -> _FewShotCache:
        c = self.__dict__.get("_fs_cache")
        if c is None:
            c = self.__dict__["_fs_cache"] = _FewShotCache()
        # the most recently used; the caches beyond FS_CACHES_KEPT, and the least
        # recently used others while all hold over FS_LIVE_BYTES, are emptied
        lru.touch(_LIVE, c, kept=FS_CACHES_KEPT, max_bytes=FS_LIVE_BYTES, size=_cache_bytes,
                  evict=_FewShotCache.clear)  # fmt: skip
        return c

    def _render_exemplars(self, todo: dict[tuple, tuple], cache: _FewShotCache, errors) -> dict[tuple, Any]:  # fmt: skip
        """Render the exemplars of ``todo`` (grouped by template), by key:
        ``[_SPLIT, raw input, raw target, {style: tokens}, exemplar, answer's option index
        or None, block in input, block in target, input labelled, input cued, answer in
        input, answer in target]`` (labelled and cued None where the style decides) or
        ``[_REAL, input, target, tokens, {few-shot style: composed}, exemplar, style]``;
        None where the template fails on the exemplar."""
        dest: dict[tuple, Any] = {}
        groups: dict[tuple[str, int], list[tuple[tuple, tuple]]] = {}
        for key, req in todo.items():
            groups.setdefault((req[0].spec.id, req[3]), []).append((key, req))
        for (_, mode), lst in groups.items():
            ct = lst[0][1][0]
            ctxs, ok = [], []
            for key, (_, ex, style, _) in lst:
                try:
                    self._needs(ct, ex.fields, ex.example_id)
                except RecordError:
                    if errors is None:
                        raise
                    dest[key] = None
                    continue
                ctxs.append(
                    _split_context(ex.fields, ct)
                    if mode is _SPLIT
                    else self._context(ex.fields, ct, style)
                )
                ok.append((key, ex, style))
            cache.renders += len(ok)
            texts = _simple_many(self.engine, ct, ctxs) if ct.simple is not None else None
            if texts is None:
                try:
                    texts = self.engine.render_many(ct, ctxs)
                except TemplateSecurityError:
                    raise
                except TemplateError:
                    pass
            if texts is None:  # find the exemplars the template fails on, keep the others
                texts = []
                for (_key, ex, _), ctx in zip(ok, ctxs):
                    try:
                        texts.append(self.engine.render(ct, ctx))
                    except TemplateSecurityError:
                        raise
                    except TemplateError as e:
                        if errors is None:
                            raise RecordError(self.task.name, ex.example_id, str(e)) from None
                        texts.append(None)
            for (key, ex, style), t in zip(ok, texts):
                if t is None:
                    dest[key] = None
                elif mode is _SPLIT:
                    f = ex.fields
                    ans = None  # the answer's option index, when the answer is lettered
                    if ct.uses_options and "answer" in f:
                        ans = f["options"].index(str(f["answer"]))
                    i, g = t
                    # the lettered answer in the input; in the target (_ONLY: it is the target)
                    ans_i = ans is not None and _SENT_ANSWER in i
                    ans_t = ans is not None and (_ONLY if g == _SENT_ANSWER else _SENT_ANSWER in g)
                    dest[key] = [_SPLIT, i, g, {}, ex, ans, _SENT_BLOCK in i, _SENT_BLOCK in g,
                                 *_fixed_cues(i), ans_i, ans_t]  # fmt: skip
                else:
                    dest[key] = [_REAL, t[0].strip(), t[1].strip(), None, {}, ex, style]
        return dest

    def _render_own_fewshot(
        self, rows, pool, errors
    ) -> dict[int, tuple[str, str, str | None, list[str]]]:
        """Self-contained few-shot templates: they loop over `exemplars` themselves."""
        cfg = self.config
        tok = cfg.tokenizer
        out = {}
        picker = None
        if pool is not None and self.task.exemplar_field is None:
            picker = ExemplarPicker([e.example_id for e in pool], cfg.shots)
        budget = cfg.budget
        bound = type(tok) is WhitespaceTokenizer
        # Every row first renders with all its exemplars: those renders run as one
        # batch per template. A row over the budget then re-renders with fewer,
        # as before; a template group that fails renders row by row (same errors).
        picked: list[tuple[list[Any], list[str]] | None] = []
        groups: dict[str, list[int]] = {}
        for k, r in enumerate(rows):
            try:
                picked.append(self._own_exemplars(r[2], r[1], pool, r[3], picker))
            except RecordError:
                picked.append(None)  # raised again, in row order, below
                continue
            groups.setdefault(r[4].spec.id, []).append(k)
        first: dict[int, tuple[str, str]] = {}
        for ks in groups.values():
            ct = rows[ks[0]][4]
            jobs = [({**rows[k][2], "exemplars": picked[k][0]}, rows[k][5], rows[k][1]) for k in ks]
            try:
                texts = self._render_group(ct, jobs)
            except RecordError:
                continue
            for k, t in zip(ks, texts):
                first[k] = t
        for k, r in enumerate(rows):
            idx, eid, canon, base, ct, style = r
            try:
                exs, ids = picked[k] or self._own_exemplars(canon, eid, pool, base, picker)
                n = len(exs)
                while True:
                    if n == len(exs) and k in first:
                        inputs, targets = first[k]
                    else:
                        inputs, targets = self._render(
                            ct, {**canon, "exemplars": exs[:n]}, style, eid
                        )
                    if n == 0:
                        break
                    # whitespace words: at most (L + 1) // 2 in L characters
                    if bound and (len(inputs) + 1) // 2 + (len(targets) + 1) // 2 <= budget:
                        break
                    if tok.count(inputs) + tok.count(targets) <= budget:
                        break
                    n -= 1
            except RecordError as e:
                if errors is None:
                    raise
                errors.append((idx, e))
                continue
            out[idx] = (inputs, targets, None, list(ids[:n]))
        return out

    def _own_exemplars(
        self,
        canon: Mapping[str, Any],
        example_id: str,
        pool: Sequence[Exemplar] | None,
        base: int,
        picker: ExemplarPicker | None = None,
    ) -> tuple[list[Any], list[str]]:
        """Exemplars for self-contained few-shot templates: a field, or the pool."""
        f = self.task.exemplar_field
        if f is not None:
            val = canon.get(f)
            if not isinstance(val, list | tuple):
                raise RecordError(
                    self.task.name, example_id, f"exemplar field {f!r} is not a list", canon.keys()
                )
            k = min(len(val), self.config.shots)
            return list(val[:k]), [f"{f}[{i}]" for i in range(k)]
        if pool is None:
            raise FlanDataError(
                f"task {self.task.name!r}: few-shot templates need an exemplar pool (the train split)"
            )
        if picker is None:
            picker = ExemplarPicker([e.example_id for e in pool], self.config.shots)
        idx = picker.pick(example_id, mix64(base, _SALT_EXEMPLARS))
        return [dict(pool[i].fields) for i in idx], [pool[i].example_id for i in idx]


def _direct_reader(expr: str) -> Any:
    """A reader ``(record, options) -> value`` for a field expression that is a
    plain key (``premise``) or ``options[key]`` (``options[label]``); None for
    any other. ``options`` is a :class:`LabelOptions` (range-checked), or None
    when the task has none (then ``options[key]`` raises and the general path,
    which reads the record's own ``options``, decides)."""
    kind = direct_field(expr)
    if kind is None:
        return None
    e = kind[1]
    if kind[0] == "key":
        return lambda raw, opts: raw[e]
    return lambda raw, opts: opts[raw[e]]


def direct_field(expr: str) -> tuple[str, str] | None:
    """``("key", k)`` for a field expression that is a plain key, ``("label", k)``
    for ``options[k]``, None for any other (what :func:`_direct_reader` reads).

    >>> direct_field("premise"), direct_field(" options[label] "), direct_field("a + b")
    (('key', 'premise'), ('label', 'label'), None)
    """
    e = expr.strip()
    if e.isidentifier() and e not in _KEYWORDS and e != "options":
        return "key", e
    if e.startswith("options[") and e.endswith("]"):
        k = e[len("options[") : -1].strip()
        if k.isidentifier() and k not in _KEYWORDS and k != "options":
            return "label", k
    return None


# Jinja's constants and operators: never plain keys of the record.
_KEYWORDS = frozenset({"true", "false", "none", "True", "False", "None", "and", "or", "not", "in", "is", "if", "else"})  # fmt: skip


#: Few-shot prompts of big batches are assembled column-wise where certain
#: (:meth:`TaskRenderer._assemble_columns`); False assembles every row one by one
#: (the same bytes: tests compare both).
FEWSHOT_COLUMNS = True

#: Rows rendered column-wise (simple templates) and through Jinja, in this
#: process: tests check which path did the work (counters, never time).
RENDER_STATS = {
    "columnar_rows": 0,
    "jinja_rows": 0,
    "fewshot_column_rows": 0,
    "fewshot_row_rows": 0,
}


# -- few-shot exemplars, rendered once per template and assembled per row

_SPLIT = "split"  # rendered with placeholders for the option block and lettered answer
_REAL = "real"  # rendered as is (no option block, or a template that is not split)
_SENT_CHAR = "\ue000"  # private use: never in rendered text unless the data holds it
_SENT_BLOCK = "\ue000options_block\ue001"
_SENT_ANSWER = "\ue000answer\ue001"
_FS_CACHE_MAX = 40_000  # entries of one task renderer (512 exemplars x 10 templates x 2 modes: 10k)
#: Task renderers whose rendered exemplars are kept: a worker renders a whole
#: mixture's tasks (chunk jobs of one task run together), so only the few most
#: recently used keep theirs and memory stays bounded whatever the task count.
FS_CACHES_KEPT = 4
#: Bytes of text one task renderer's few-shot cache holds before it is emptied
#: (at its next batch; it renders again what it needs, same bytes), and all the
#: kept caches together before the least recently used are emptied. Bounded by
#: bytes, not entries: a pool of 512 long documents (10 KB news articles) under
#: 10 templates, composed under 38 few-shot styles, held 2 GB in one cache.
FS_CACHE_BYTES = 96 << 20
FS_LIVE_BYTES = 192 << 20
#: Composed exemplar texts (one per few-shot style) are kept up to this length.
MEMO_CHARS = 2048
#: The task renderers' few-shot caches, least recently used first (:func:`flan_data.lru.touch`).
_LIVE: list[_FewShotCache] = []


def _cache_bytes(c: _FewShotCache) -> int:
    return c.n_bytes


def _text_bytes(*texts: Any) -> int:
    """Bytes of the strings among ``texts`` (other items count nothing)."""
    return sum(sys.getsizeof(t) for t in texts if type(t) is str)


# Template nodes that can transform what a name prints (filters over a block, a
# captured {% set %}, macros, autoescape switches, includes): a template with
# one of them is rendered per option style instead.
_OPAQUE = (
    nodes.AssignBlock,
    nodes.FilterBlock,
    nodes.Macro,
    nodes.CallBlock,
    nodes.Include,
    nodes.Import,
    nodes.FromImport,
    nodes.Extends,
    nodes.Block,
    nodes.EvalContextModifier,
)


class _FewShotCache:
    """One task renderer's rendered pool exemplars, kept across batches and chunk
    jobs in this process while they use the same pool list (export jobs share the
    task's pool from ``_POOLS``): ``tables[(template id, mode)][index in the pool]``,
    mode None (no option block), ``_SPLIT`` (placeholders) or an option style's id.
    ``renders`` counts exemplar renders (tests count work with it)."""

    __slots__ = ("tables", "n_entries", "split", "fields_ok", "style_tokens", "renders", "pool",
                 "by_code", "col_pool", "cstat", "vinfo", "vvals", "fids", "flist", "classes",
                 "class_facts", "cparts", "n_bytes")  # fmt: skip

    def __init__(self) -> None:
        # (template id, mode) -> {index in the pool: entry}, for the pool in ``pool``
        self.tables: dict[tuple, dict[int, Any]] = {}
        self.n_entries = 0
        # about the bytes of the texts held (rendered exemplars, composed texts,
        # segments): the cache is emptied past FS_CACHE_BYTES, and the least recently
        # used caches past FS_LIVE_BYTES for all of them (see _fewshot_cache)
        self.n_bytes = 0
        self.split: dict[str, bool] = {}
        self.fields_ok: dict[int, tuple[Exemplar, bool]] = {}
        self.style_tokens: dict[str, int] = {}
        self.renders = 0
        # (pool list, its picker, has options, splittable) for the last pool seen:
        # chunk jobs and batches reuse one pool list
        self.pool: tuple | None = None
        # the column-wise assembly's: entries by code, per-pool arrays, option-style
        # values and classes, entry lengths, composed segments (see _assemble_columns)
        self.by_code: dict[int, Any] = {}
        self.col_pool: tuple | None = None
        self.cstat: Any = None  # int64 (entry codes, 4): _code_stat, -1 where not known yet
        self.vinfo: Any = None  # int64 (option keys, 3): class, block length, longest target
        self.vvals: list[tuple[str, ...]] = []  # format values by option key + 1
        self.fids: dict[int, Any] = {}  # class -> int64 (codes x few-shot styles): index in flist
        self.flist: list[tuple] = []  # composed segments (_column_form)
        self.classes: dict[tuple, int] = {}
        self.class_facts: dict[int, tuple] = {}
        self.cparts: dict[int, tuple | None] = {}  # per split entry code: _split_parts

    def clear(self) -> None:
        """Drop the rendered exemplars (they render again when next needed)."""
        self.tables.clear()
        self.fields_ok.clear()
        self.n_entries = 0
        self.n_bytes = 0
        self.pool = None
        self.by_code.clear()
        self.col_pool = None
        self.cstat = self.vinfo = None
        self.vvals = []
        self.fids.clear()
        self.flist.clear()
        self.classes.clear()
        self.class_facts.clear()
        self.cparts.clear()

    def entries(self) -> int:
        return sum(len(t) for t in self.tables.values())


def _split_form(engine: TemplateEngine, ct: CompiledTemplate) -> bool:
    """Whether ``ct`` prints ``options_block`` (and, when it shows options, ``answer``)
    only as bare ``{{ name }}`` outputs: then rendering with placeholders and
    replacing them gives exactly the text a render with the values gives."""
    spec = ct.spec
    if spec.dialect == "promptsource" or _SENT_CHAR in spec.input or _SENT_CHAR in spec.target:
        return False
    names = {"options_block", "answer"} if ct.uses_options else {"options_block"}
    for source in (spec.input, spec.target):
        try:
            ast = engine.env.parse(source)
        except Exception:  # noqa: BLE001 - compiled before, so unexpected: render per style
            return False
        if any(True for _ in ast.find_all(_OPAQUE)):
            return False
        bare = {
            id(n) for o in ast.find_all(nodes.Output) for n in o.nodes if isinstance(n, nodes.Name)
        }
        for n in ast.find_all(nodes.Name):
            if n.name in names and (n.ctx != "load" or id(n) not in bare):
                return False
    return True


def _split_context(fields: Mapping[str, Any], ct: CompiledTemplate) -> dict[str, Any]:
    # TaskRenderer._context under an option style, with placeholders for the
    # style's block and lettered answer
    ctx = dict(fields)
    ctx["options_block"] = _SENT_BLOCK
    if "answer" in fields:
        ctx["answer_text"] = fields["answer"]
        if ct.uses_options:
            ctx["answer"] = _SENT_ANSWER
    return ctx


def _fixed_cues(raw: str) -> tuple[bool | None, bool | None]:
    """``starts_with_label`` and ``ends_with_cue`` of every text a split raw input
    fills in to, where no placeholder can change them (None where one can).

    The label test reads the first 64 characters of the stripped text, the cue
    test its last line: fixed when the first placeholder lies beyond the first
    64 characters, and when a line break follows the last placeholder.
    """
    head = raw.lstrip()
    k = head.find(_SENT_CHAR)
    labelled = None
    if k < 0:
        labelled = starts_with_label(head.rstrip())
    elif len(head[:k].rstrip()) >= 64:  # whatever fills in, these 64 characters lead
        labelled = starts_with_label(head[:64])
    tail = raw.rstrip()
    k = tail.rfind("\ue001")
    cued = None
    if k < 0 and _SENT_CHAR not in tail:
        cued = ends_with_cue(tail.strip())
    elif k >= 0 and "\n" in tail[k:]:
        cued = ends_with_cue(tail)
    elif tail.endswith(_SENT_BLOCK):
        # The text ends with the option block, whose stripped text holds a line
        # break ("\n\n" + the block): its last line is the block's, per block.
        cued = _BLOCK_CUE
    return labelled, cued


_ONLY = "only"  # a split target that is the lettered answer and nothing else
_BLOCK_CUE = "block"  # _fixed_cues: the option block decides (see _block_cued)
_BLOCK_CUED: dict[str, bool] = {}


def _block_cued(block: str) -> bool:
    """``ends_with_cue`` of a text that ends with ``block`` (memoised per block)."""
    hit = _BLOCK_CUED.get(block)
    if hit is None:
        if len(_BLOCK_CUED) > 1 << 14:
            _BLOCK_CUED.clear()
        hit = _BLOCK_CUED[block] = ends_with_cue(block.rstrip())
    return hit


def _safe_fields(cache: _FewShotCache, ex: Exemplar) -> bool:
    hit = cache.fields_ok.get(id(ex))
    if hit is not None and hit[0] is ex:
        return hit[1]
    ok = not _has_sentinel(ex.fields)
    cache.fields_ok[id(ex)] = (ex, ok)
    return ok


def _has_sentinel(v: Any) -> bool:
    if isinstance(v, str):
        return _SENT_CHAR in v
    if isinstance(v, Mapping):
        return any(_has_sentinel(k) or _has_sentinel(x) for k, x in v.items())
    if isinstance(v, list | tuple | set | frozenset):
        return any(_has_sentinel(x) for x in v)
    return _SENT_CHAR in str(v)


# -- the column-wise few-shot assembly (TaskRenderer._assemble_columns)

_STYLES: tuple[OptionStyle, ...] = (*ALL_STYLES, PLAIN)
_N_STYLES = len(_STYLES)
_STYLE_INDEX = {id(s): i for i, s in reversed(list(enumerate(_STYLES)))}  # the first index wins
_MAX_CLASSES = 32  # option-style classes of one task renderer (a handful in practice)
_NO_VALUES = (0, (), 0, 0)  # an exemplar without an option block
_UNSURE = (-1, (), 0, 0)  # values the assembly cannot vouch for: the row goes per row
_MISSING = object()
_SENT_END = "\ue001"


def _style_values(opts: tuple[str, ...], style: OptionStyle, cache: _FewShotCache, need_nl: bool) -> tuple:  # fmt: skip
    """``(class id, values, block length, longest target)`` of an option style over
    ``opts``: values are the block and each target, each as is, left-stripped,
    right-stripped and stripped (format fields ``slot * 4 + variant``); the class
    names the facts the composition rules read from them (the block's cue, each
    target's label, which values hold a line break where ``need_nl``, how many)."""
    block, targets = format_options(opts, style)
    vs = (block, *targets)
    if any(not v.strip() for v in vs):
        return _UNSURE  # a blank value: stripping could reach into the template's text
    vals: list[str] = []
    for v in vs:
        vals += (v, v.lstrip(), v.rstrip(), v.strip())
    facts = (
        _block_cued(block),
        tuple(_target_labelled(t.strip()) for t in targets),
        tuple("\n" in x for x in vals) if need_nl else None,
        block.startswith("\n"),
        len(vals),
    )
    cid = cache.classes.get(facts)
    if cid is None:
        if len(cache.classes) + 1 >= _MAX_CLASSES:
            return _UNSURE
        cid = cache.classes[facts] = len(cache.classes) + 1
        cache.class_facts[cid] = facts
    return (cid, tuple(vals), len(block), max(len(t) for t in targets))


def _simple_many(engine: TemplateEngine, ct: CompiledTemplate, ctxs: list[dict[str, Any]]) -> list[tuple[str, str]] | None:  # fmt: skip
    """(input, target) of a simple template over render contexts, column by column
    (:class:`~flan_data.templates.SimpleTemplate`, as :meth:`TaskRenderer._render_simple`
    does for rows); None when a context lacks a value or a text comes near a size
    limit (then the Jinja path renders, or raises)."""
    st = ct.simple
    if not ctxs:
        return []
    try:
        cols = {name: [v if type(v) is str else str(v) for v in [c[name] for c in ctxs]] for name in st.names}  # fmt: skip
    except KeyError:
        return None
    ins, tgs = st.render(cols, len(ctxs))
    lim = engine.env.limits
    if max(map(len, ins)) + max(map(len, tgs)) > min(lim.output_chars, lim.sequence_len) // 2:
        return None
    return list(zip(ins, tgs))


def _code_stat(e: Any) -> tuple[int, int, int, int]:
    """(raw length, option blocks, lettered answers, rendered) of an exemplar entry."""
    if e is None:
        return (0, 0, 0, 0)
    if e[0] is _SPLIT:
        i, g = e[1], e[2]
        return (len(i) + len(g), i.count(_SENT_BLOCK) + g.count(_SENT_BLOCK),
                i.count(_SENT_ANSWER) + g.count(_SENT_ANSWER), 1)  # fmt: skip
    return (len(e[1]) + len(e[2]), 0, 0, 1)


def _fill_form(raw: str, ans: int | None) -> tuple[tuple, tuple[int, ...], bool] | None:
    """Segments giving ``fill(raw).strip()`` for every option style: literal texts
    and, between them, value indices (values are never blank, so a placeholder at
    an edge takes its value stripped on that side); the fields used and whether
    the literal text holds a line break. None when a placeholder cannot be told
    (data or template holding the placeholder characters otherwise)."""
    if len(raw) <= 64:  # short texts recur (a target that is the lettered answer)
        key = (raw, ans)
        hit = _FILL_FORMS.get(key, _MISSING)
        if hit is _MISSING:
            if len(_FILL_FORMS) > 1 << 14:
                _FILL_FORMS.clear()
            hit = _FILL_FORMS[key] = _fill_form_of(raw, ans)
        return hit
    return _fill_form_of(raw, ans)


_FILL_FORMS: dict[tuple[str, int | None], Any] = {}
_SENT_NAMES = {"options_block": 0, "answer": 1}


def _fill_form_of(raw: str, ans: int | None) -> tuple[tuple, tuple[int, ...], bool] | None:
    core = raw.strip()
    pieces = core.split(_SENT_CHAR)
    first = pieces[0]
    if _SENT_END in first:
        return None
    out: list = [first]
    fields = []
    nl = "\n" in first
    last = len(pieces) - 1
    for x in range(1, len(pieces)):
        name, sep, lit = pieces[x].partition(_SENT_END)
        kind = _SENT_NAMES.get(name)
        if not sep or kind is None or _SENT_END in lit:
            return None
        if kind == 0:
            slot = 0
        elif ans is None:
            return None
        else:
            slot = 1 + ans
        var = (1 if x == 1 and first == "" else 0) | (2 if x == last and lit == "" else 0)
        f = slot * 4 + var
        fields.append(f)
        out.append(f)
        out.append(lit)
        nl = nl or "\n" in lit
    return tuple(out), tuple(fields), nl


def _cat_segs(*pieces: str | tuple) -> tuple:
    """Segments (literal, index, literal, …, literal) of the pieces one after the
    other (a piece is a literal or segments); adjacent literals merged."""
    out: list = [""]
    for p in pieces:
        if type(p) is str:
            out[-1] += p
            continue
        out[-1] += p[0]
        out.extend(p[1:])
    return tuple(out)


def _fill_segs(form: tuple, vals: tuple[str, ...]) -> str:
    """The text of segments ``form`` with the values ``vals``."""
    n = len(form)
    if n == 1:
        return form[0]
    if n == 3:
        return form[0] + vals[form[1]] + form[2]
    if n == 5:
        return form[0] + vals[form[1]] + form[2] + vals[form[3]] + form[4]
    return "".join([x if k % 2 == 0 else vals[x] for k, x in enumerate(form)])


def _split_parts(e: Any) -> tuple | None:
    """What :func:`_column_form` needs of a split entry, independent of the few-shot
    style and the option-style class (computed once per entry)."""
    ans = e[5]
    fi = _fill_form(e[1], ans)
    ft = _fill_form(e[2], ans)
    if fi is None or ft is None:
        return None
    head = e[1].lstrip()
    k = head.find(_SENT_CHAR)
    # the first placeholder is the option block after some text: a label cannot span
    # the line break every block starts with, so the text before it decides
    before_block = None
    if k > 0 and head.startswith(_SENT_BLOCK, k):
        before_block = starts_with_label(head[:k] + "\n")
    g = e[2]
    tl = _target_labelled(g.strip()) if _SENT_CHAR not in g else None
    maxf = max((*fi[1], *ft[1]), default=-1)
    return (fi[0], fi[1], fi[2], ft[0], e[8], before_block, e[9], tl, e[11] is _ONLY, ans, maxf)


def _column_form(
    e: Any, parts: tuple | None, fs: FewShotStyle, facts: tuple | None
) -> tuple | None:
    """One exemplar composed under ``fs`` (and a class of option styles, for a split
    entry) as segments over the class's values (:func:`_fill_segs`), followed by
    the example separator; None when the composition is not certain for the class."""
    if e is None:
        return None
    if e[0] is not _SPLIT:
        key = (fs.id, "form")
        form = e[4].get(key)
        if form is None:
            text = e[4].get(fs.id)
            if text is None:
                text = e[4][fs.id] = compose_example_uncached(e[1], e[2], fs)
            form = e[4][key] = (text + fs.example_separator,)
        return form
    if parts is None or facts is None:
        return None
    fi, fields_i, nl, ft, labelled, before_block, cued, tl, only, ans, maxf = parts
    block_cued, ans_labelled, nl_vals, block_nl, n_vals = facts
    if maxf >= n_vals:
        return None  # a lettered answer beyond this class's options
    if labelled is None and block_nl:
        labelled = before_block
    if labelled is None or cued is None:
        return None  # the label or cue test reads into a placeholder: per row
    lead = "" if labelled else fs.input_prefix
    sep = fs.example_separator
    if cued is _BLOCK_CUE:
        cued = block_cued
    if cued:
        return _cat_segs(lead, fi, " ", ft, sep)
    if tl is None:
        if not only or ans is None:
            return None
        tl = ans_labelled[ans]
    # a same-line delimiter after a multi-line input becomes a line break (compose._delimiter)
    d = fs.x_y_delimiter
    if "\n" not in d and (nl or any(nl_vals[f] for f in fields_i)):
        d = "\n"
    return _cat_segs(lead, fi, d if tl else d + fs.target_prefix, ft, sep)


_TARGET_VARS: dict[str, frozenset[str]] = {}


def _target_variables(engine: TemplateEngine, source: str) -> frozenset[str]:
    # cached by text: a few hundred template targets are shared by ~2,000 tasks
    hit = _TARGET_VARS.get(source)
    if hit is None:
        hit = _TARGET_VARS[source] = engine.variables_of(source)
    return hit


#: Skip reason of a few-shot row left without exemplars (see :func:`drop_empty_fewshot`).
EMPTY_FEWSHOT = "few-shot row without exemplars (none fit the token budget)"


def drop_empty_fewshot(cols: dict[str, list[Any]], fmt: str, shots: int) -> int:
    """Remove, in place, the rows of a few-shot batch that ended with no exemplar.

    A row whose exemplars did not fit the token budget (or whose exemplar
    field is empty) is a zero-shot example, not a few-shot one; exports drop
    it and count it (as FLAN drops it) instead of labelling it few-shot.
    Returns the number of rows removed; zero-shot formats and ``shots == 0``
    are left alone.

    >>> cols = {"exemplar_ids": [["a"], [], ["b"]], "inputs": ["x", "y", "z"]}
    >>> drop_empty_fewshot(cols, "fs_opt", 3), cols["inputs"]
    (1, ['x', 'z'])
    """
    if not is_fewshot_format(fmt) or shots <= 0:
        return 0
    keep = [i for i, ids in enumerate(cols["exemplar_ids"]) if len(ids)]
    dropped = len(cols["exemplar_ids"]) - len(keep)
    if dropped:
        for k, v in cols.items():
            if isinstance(v, list) and len(v) == len(keep) + dropped:
                cols[k] = [v[i] for i in keep]
    return dropped


class LabelError(ValueError):
    """A label that does not index the options (negative or too large)."""


class LabelOptions(tuple):
    """The options as field expressions see them: ``options[label]`` refuses a
    negative or out-of-range label instead of wrapping around (-1 is "no label"
    in many datasets, e.g. SNLI, and must not become the last option)."""

    __slots__ = ()

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, bool) or not isinstance(key, int):
            return super().__getitem__(key)
        if key < 0 or key >= len(self):
            raise LabelError(f"label {key} is out of range for {len(self)} options")
        return super().__getitem__(key)


_BAD_TYPES = (bool, Mapping, bytes, bytearray, set)


def bad_value(val: Any, target: bool = False) -> str | None:
    """Why ``val`` must not be rendered as text, or None when it may.

    >>> bad_value(None), bad_value(float("nan")), bad_value("", target=True), bad_value(True)
    ('null value', 'NaN value', 'empty value', 'not a string (bool)')
    >>> bad_value("ok"), bad_value(3), bad_value(["a"])
    (None, None, None)
    """
    if val is None:
        return "null value"
    if isinstance(val, float):
        return "NaN value" if val != val else None
    if isinstance(val, str):
        return "empty value" if target and not val.strip() else None
    if isinstance(val, _BAD_TYPES):
        return f"not a string ({type(val).__name__})"
    if target and isinstance(val, list | tuple) and not val:
        return "empty value"
    return None


_SUPPLIED = frozenset({"options_block", "options", "answer_text", "exemplars"})
#: Zero-shot batches of at least this many rows try the Arrow path (:mod:`flan_data.columnar`).
COLUMNAR_MIN = 256
#: Batches of at least this many rows derive seeds and choices with numpy
#: (smaller ones, e.g. ``flan render``, stay in plain Python: same values).
VECTOR_MIN = 64
_SALT_TEMPLATE = purpose_salt("template")
_SALT_OPTIONS = purpose_salt("options")
_SALT_FSSTYLE = purpose_salt("fewshot_style")
_SALT_EXEMPLARS = purpose_salt("exemplars")


class Renderer:
    """Renders tasks of a catalog; caches compiled task renderers.

    >>> from flan_data import Catalog
    >>> r = Renderer(Catalog.load(), RenderConfig(option_style="plain"))
    >>> r.task_renderer("anli_r1").task.name
    'anli_r1'
    """

    def __init__(
        self,
        catalog: Catalog,
        config: RenderConfig | None = None,
        engine: TemplateEngine | None = None,
    ):
        self.catalog = catalog
        self.config = config or RenderConfig()
        self.engine = engine or TemplateEngine()
        self._tasks: dict[str, TaskRenderer] = {}

    #: Task renderers kept (least recently used dropped first): each holds its
    #: few-shot exemplar cache, and an export worker renders ~1,000 tasks (4.7 GB
    #: in each process of a full-size flan2022 export when all were kept).
    max_tasks = 16

    def task_renderer(self, task: str | TaskSpec) -> TaskRenderer:
        spec = task if isinstance(task, TaskSpec) else self.catalog.task(task)
        tr = self._tasks.pop(spec.name, None)
        if tr is None or tr.task is not spec:
            tr = TaskRenderer(spec, self.catalog, self.engine, self.config)
        self._tasks[spec.name] = tr  # most recently used last
        while len(self._tasks) > self.max_tasks:
            self._tasks.pop(next(iter(self._tasks)))
        return tr


def build_pool(
    tr: TaskRenderer,
    records: Iterable[tuple[str, Mapping[str, Any]]],
    limit: int | None = None,
    seed: int | None = None,
) -> list[Exemplar]:
    """Exemplars from ``(id, raw record)`` pairs.

    With ``seed``, a seeded reservoir sample of ``limit`` records over *all*
    the pairs, kept in their input order (a split sorted by label still gives
    mixed exemplars; a split of at most ``limit`` records is taken whole).
    Without it, the first ``limit`` pairs.
    """
    if seed is None or limit is None:
        out = []
        for i, (eid, rec) in enumerate(records):
            if limit is not None and i >= limit:
                break
            out.append(tr.exemplar(eid, rec))
        return out
    rng = random.Random(derive_seed(seed, tr.task.name, "pool"))
    res: list[tuple[int, str, Mapping[str, Any]]] = []
    for i, (eid, rec) in enumerate(records):
        if i < limit:
            res.append((i, eid, rec))
        else:
            j = rng.randrange(i + 1)
            if j < limit:
                res[j] = (i, eid, rec)
    res.sort(key=lambda x: x[0])
    return [tr.exemplar(eid, rec) for _, eid, rec in res]


def render_task(
    catalog: Catalog,
    task: str,
    *,
    fmt: str = "zs_opt",
    n: int = 3,
    seed: int = 0,
    split: str = "validation",
    template_id: str | None = None,
    source: str = "auto",
    source_dirs: Mapping[str, str | Path] | None = None,
    config: RenderConfig | None = None,
    pool_size: int = 1000,
    renderer: Renderer | None = None,
) -> Iterator[RenderedExample]:
    """Render the first ``n`` records of a task's split (a preview).

    Few-shot exemplars come from a seeded sample of ``pool_size`` records over
    the whole train split (never the example itself).

    >>> from flan_data import Catalog
    >>> ex = next(render_task(Catalog.load(), "anli_r1", fmt="fs_opt", n=1, source="sample"))
    >>> len(ex.exemplar_ids) > 0
    True
    """
    from .sources import open_task_source

    r = renderer or Renderer(catalog, config)
    tr = r.task_renderer(task)
    src = open_task_source(catalog, tr.task, source, source_dirs)
    pool = None
    if is_fewshot_format(fmt) and not tr.task.exemplar_field:
        pool = build_pool(tr, src.read("train"), limit=pool_size, seed=seed)
    for eid, rec in itertools.islice(src.read(split), n):
        yield tr.render(
            eid, rec, split=split, fmt=fmt, seed=seed, pool=pool, template_id=template_id
        )
