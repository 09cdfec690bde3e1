"""Sandboxed, strict Jinja: compile templates once, list their variables, render.

Templates are data written by people we do not control (imported files, users'
own tasks), so they run in :class:`jinja2.sandbox.SandboxedEnvironment`; a
missing variable is an error (:class:`jinja2.StrictUndefined`), never silently
empty text.

>>> eng = TemplateEngine()
>>> eng.render_text("{{ a }} and {{ b }}", {"a": 1, "b": 2})
'1 and 2'
>>> sorted(eng.variables_of("{{ premise }}{% for x in options %}{{ x }}{% endfor %}"))
['options', 'premise']

The work one render may do is bounded too (:class:`TemplateLimits`): output
size, the size of strings, lists and integers the template builds, call depth
(recursive macros), loop iterations and calls, and wall-clock time. A
violation raises :class:`~flan_data.errors.TemplateLimitError` naming the
file, the template id and the limit:

>>> eng.render_text("{{ 9 ** (9 ** 9) }}", {})
Traceback (most recent call last):
...
flan_data.errors.TemplateLimitError: template exceeds the integer size limit (10000 bits): 9 ** 387420489
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import json
import math
import random
import re
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import SandboxedEnvironment, SecurityError
from jinja2.utils import generate_lorem_ipsum
from jinja2.visitor import NodeTransformer

from .errors import TemplateError, TemplateLimitError, TemplateSecurityError
from .specs import TemplateSpec


@dataclass(frozen=True)
class TemplateLimits:
    """How much work one render of an (untrusted) template may do.

    Real templates stay far below every limit (a few calls, a few hundred
    characters); the limits only stop hostile or broken ones. All but
    ``seconds`` are counted deterministically, so whether a render passes does
    not depend on the machine.
    """

    output_chars: int = 1_000_000  # text one render produces (input and target together)
    sequence_len: int = 1_000_000  # longest string, list or mapping a template may build
    int_bits: int = 10_000  # largest integer a template may build
    depth: int = 64  # nested calls (recursive macros)
    ops: int = 100_000  # loop iterations, calls and arithmetic per render
    seconds: float = 5.0  # wall-clock budget per render (a backstop for slow builtins)

    def __post_init__(self) -> None:
        for k in ("output_chars", "sequence_len", "int_bits", "depth", "ops"):
            if not isinstance(getattr(self, k), int) or getattr(self, k) < 1:
                raise ValueError(f"TemplateLimits.{k} must be a positive integer")
        if not (self.seconds > 0 and math.isfinite(self.seconds)):
            raise ValueError("TemplateLimits.seconds must be a positive finite number")


DEFAULT_LIMITS = TemplateLimits()
_LOOP = "__flan_loop"
_ROWS = "__flan_rows"
_SIZED = (str, bytes, list, tuple, dict, set, frozenset)
#: Filters whose arguments can ask for a huge result: checked before they run.
_SIZE_ARG_FILTERS = frozenset({"center", "indent", "format", "replace", "slice", "batch", "join"})
# str.format / %-format / |format widths and precisions (``{:9999999}``, ``%*d``)
_PCT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d*)(?:\.(\*|\d*))?")
_BRACE_SPEC = re.compile(r"\{[^{}]*?:((?:[^{}]|\{[^{}]*\})*)\}")


class BoundedSandbox(SandboxedEnvironment):
    """The sandbox plus :class:`TemplateLimits`: every call, loop iteration and
    operator that can build a big value is metered while a render is armed
    (:meth:`arm`); value sizes and call depth are checked always."""

    # Intercepted operators are also never constant-folded at compile time, so
    # ``{{ 9 ** (9 ** 9) }}`` cannot hang the compiler either.
    intercepted_binops = frozenset({"*", "**", "+", "%", "//"})

    def __init__(self, limits: TemplateLimits = DEFAULT_LIMITS, **kw: Any):
        super().__init__(**kw)
        self.limits = limits
        self.armed = False
        self.ops = 0
        self.out = 0
        self.depth = 0
        self.deadline = math.inf
        self.globals["lipsum"] = self._lipsum
        self.globals[_LOOP] = self._loop
        self.globals[_ROWS] = self._rows
        self.filters = {k: self._bounded_filter(k, f) for k, f in self.filters.items()}

    # -- budget

    def arm(self) -> None:
        """Start a fresh budget (one render)."""
        self.armed = True
        self.ops = 0
        self.out = 0
        self.deadline = time.perf_counter() + self.limits.seconds

    def disarm(self) -> None:
        self.armed = False

    def fail(self, limit: str, detail: str) -> TemplateLimitError:
        return TemplateLimitError(f"template exceeds the {limit} limit{detail}", limit)

    def tick(self) -> None:
        if not self.armed:
            return
        self.ops += 1
        if self.ops > self.limits.ops:
            raise self.fail(
                "work", f" ({self.limits.ops:,} loop iterations, calls and operations per render)"
            )
        if not self.ops & 255 and time.perf_counter() > self.deadline:
            raise self.fail("time", f" ({self.limits.seconds:g} s per render)")

    def emit(self, n: int) -> None:
        self.out += n
        if self.out > self.limits.output_chars:
            raise self.fail("output size", f" ({self.limits.output_chars:,} characters per render)")

    def check_size(self, value: Any, what: str = "value") -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            if value.bit_length() > self.limits.int_bits:
                raise self.fail("integer size", f" ({self.limits.int_bits} bits)")
        elif isinstance(value, _SIZED) and len(value) > self.limits.sequence_len:
            raise self.fail(
                "sequence size",
                f" ({self.limits.sequence_len:,} items or characters): a {type(value).__name__} of {len(value):,}",
            )
        return value

    def _need(self, n: int, what: str) -> None:
        """Refuse before building something of ``n`` items or characters."""
        if n > self.limits.sequence_len:
            raise self.fail(
                "sequence size", f" ({self.limits.sequence_len:,} items or characters): {what}"
            )

    def _check_format(self, fmt: Any, args: Any) -> None:
        if not isinstance(fmt, str):
            return
        cap = self.limits.sequence_len
        star = False
        for w, p in _PCT_SPEC.findall(fmt) if "%" in fmt else ():
            for x in (w, p):
                star |= x == "*"
                if x.isdigit() and int(x) > cap:
                    self._need(int(x), f"format width {x}")
        for spec in _BRACE_SPEC.findall(fmt) if "{" in fmt else ():
            star |= "{" in spec
            for x in re.findall(r"\d+", spec):
                if int(x) > cap:
                    self._need(int(x), f"format width {x}")
        if star:  # widths taken from the arguments
            vals = (
                list(args.values())
                if isinstance(args, Mapping)
                else list(args)
                if isinstance(args, list | tuple)
                else [args]
            )
            for v in vals:
                if isinstance(v, int) and v > cap:
                    self._need(v, f"format width {v}")

    # -- hooks the compiled templates call

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        self.tick()
        ints = isinstance(left, int) and isinstance(right, int)
        if operator == "**" and ints:
            if (
                right > 0
                and abs(left) > 1
                and (abs(left).bit_length() - 1) * right > self.limits.int_bits
            ):
                raise self.fail(
                    "integer size", f" ({self.limits.int_bits} bits): {left} ** {right}"
                )
        elif operator == "*":
            if ints:
                if left.bit_length() + right.bit_length() > self.limits.int_bits + 1:
                    raise self.fail("integer size", f" ({self.limits.int_bits} bits)")
            elif isinstance(left, _SIZED) and isinstance(right, int):
                self._need(
                    len(left) * max(right, 0), f"{type(left).__name__} of {len(left):,} * {right:,}"
                )
            elif isinstance(right, _SIZED) and isinstance(left, int):
                self._need(
                    len(right) * max(left, 0),
                    f"{left:,} * {type(right).__name__} of {len(right):,}",
                )
        elif operator == "+" and isinstance(left, _SIZED) and isinstance(right, _SIZED):
            self._need(len(left) + len(right), "concatenation")
        elif operator == "%" and isinstance(left, str):
            self._check_format(left, right)
        return self.check_size(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        __self.tick()
        __self._precheck_method(__obj, args, kwargs)
        __self.depth += 1
        try:
            if __self.depth > __self.limits.depth:
                raise __self.fail(
                    "call depth", f" ({__self.limits.depth} nested calls, e.g. a recursive macro)"
                )
            rv = super().call(__context, __obj, *args, **kwargs)
        finally:
            __self.depth -= 1
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, list | dict | set):  # xs.extend(xs) grows the receiver
            __self.check_size(owner)
        return __self.check_size(rv)

    def _precheck_method(self, obj: Any, args: tuple, kwargs: dict) -> None:
        owner = getattr(obj, "__self__", None)
        if not isinstance(owner, str):
            return
        name = getattr(obj, "__name__", "")
        if name in ("ljust", "rjust", "center", "zfill") and args and isinstance(args[0], int):
            self._need(args[0], f"str.{name}({args[0]:,})")
        elif name == "expandtabs":
            size = args[0] if args else kwargs.get("tabsize", 8)
            if isinstance(size, int):
                self._need(len(owner) + owner.count("\t") * size, f"str.expandtabs({size:,})")
        elif (
            name == "replace"
            and len(args) >= 2
            and isinstance(args[0], str)
            and isinstance(args[1], str)
        ):
            n = owner.count(args[0]) if args[0] else len(owner) + 1
            if len(args) > 2 and isinstance(args[2], int) and args[2] >= 0:
                n = min(n, args[2])
            self._need(len(owner) + n * len(args[1]), "str.replace")
        elif name == "join" and args and isinstance(args[0], list | tuple):
            self._need(
                sum(len(x) for x in args[0] if isinstance(x, str)) + len(owner) * len(args[0]),
                "str.join",
            )

    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt = value.__self__

        @functools.wraps(wrapped)
        def bounded(*args: Any, **kwargs: Any) -> str:
            self._check_format(fmt, [*args, *kwargs.values()])
            if value.__name__ == "format_map" and args and isinstance(args[0], Mapping):
                self._check_format(fmt, args[0])
            return self.check_size(wrapped(*args, **kwargs))

        return bounded

    def _loop(self, iterable: Any) -> Any:
        for item in iterable:
            self.tick()
            yield item

    def _rows(self, rows: Any) -> Any:
        for row in rows:  # batch rendering: each row gets the budget of one render
            self.arm()
            yield row

    def _lipsum(self, n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002
        for k, v in (("n", n), ("min", min), ("max", max)):
            if not isinstance(v, int) or isinstance(v, bool):
                raise TypeError(f"lipsum() {k} must be an integer")
        self._need(n * max * 12, f"lipsum({n:,}, max={max:,})")
        return generate_lorem_ipsum(n=n, html=html, min=min, max=max)

    def _bounded_filter(self, name: str, f: Any) -> Any:
        check, tick, size = self._check_filter_args, self.tick, self.check_size
        if name not in _SIZE_ARG_FILTERS:  # the common case: count it, check what it built

            @functools.wraps(f)
            def bounded(*args: Any, **kwargs: Any) -> Any:
                tick()
                return size(f(*args, **kwargs))

            return bounded

        @functools.wraps(f)
        def bounded_args(*args: Any, **kwargs: Any) -> Any:
            tick()
            check(name, args, kwargs)
            return size(f(*args, **kwargs))

        return bounded_args

    def _check_filter_args(self, name: str, args: tuple, kwargs: dict) -> None:
        # Filters with a pass_* decorator get the context/environment first.
        vals = [
            a
            for a in args
            if not isinstance(
                a, jinja2.runtime.Context | jinja2.Environment | jinja2.nodes.EvalContext
            )
        ]
        if not vals:
            return
        value, rest = vals[0], vals[1:]
        if name == "center":
            width = rest[0] if rest else kwargs.get("width", 80)
            if isinstance(width, int):
                self._need(width, f"center({width:,})")
        elif name == "indent":
            width = rest[0] if rest else kwargs.get("width", 4)
            if isinstance(width, int) and isinstance(value, str):
                self._need(len(value) + (value.count("\n") + 1) * width, f"indent({width:,})")
            elif isinstance(width, str) and isinstance(value, str):
                self._need(len(value) + (value.count("\n") + 1) * len(width), "indent")
        elif name == "format":
            self._check_format(value, [*rest, *kwargs.values()])
        elif (
            name == "replace"
            and len(rest) >= 2
            and isinstance(value, str)
            and isinstance(rest[0], str)
        ):
            n = value.count(rest[0]) if rest[0] else len(value) + 1
            self._need(len(value) + n * len(str(rest[1])), "replace")
        elif name in ("slice", "batch"):
            k = rest[0] if rest else kwargs.get("slices", kwargs.get("linecount"))
            if isinstance(k, int):
                self._need(k, f"{name}({k:,})")
        elif name == "join" and isinstance(value, list | tuple):
            sep = rest[0] if rest and isinstance(rest[0], str) else ""
            self._need(
                sum(len(x) for x in value if isinstance(x, str)) + len(sep) * len(value), "join"
            )


def make_environment(limits: TemplateLimits = DEFAULT_LIMITS) -> BoundedSandbox:
    """The one Jinja environment configuration the project uses."""
    env = BoundedSandbox(
        limits,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


class _MeterLoops(NodeTransformer):
    """Route every ``{% for %}`` through the environment's loop meter."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Call(
            nodes.Name(_LOOP, "load"), [node.iter], [], None, None, lineno=node.lineno
        )
        return node


# --------------------------------------------------------------------------- promptsource dialect
#
# Imported promptsource templates render by promptsource's rules so that their
# text is byte-identical to what promptsource's own ``Template.apply`` makes:
# no block trimming, lenient undefined names, ``zip``/``most_frequent``/
# ``choice`` available, the whole text rendered once and split on ``|||``,
# string fields protected so a ``|||`` inside data never splits, and (by
# default) every ``{{ ... }}`` value cut to a length. The one difference is on
# purpose: ``choice`` and ``random`` draw from a per-example seed instead of
# the global RNG, so a render is reproducible and still one that promptsource
# could have produced.

PS_SEPARATOR = "|||"
# The stand-in for "|||" inside field values while a text renders. It is the
# same string promptsource uses, so even templates that transform field values
# give the same bytes.
_PS_PROTECT = "3ed2dface8203c4c9dfb1a5dc58e41e0"
_PS_RNG: contextvars.ContextVar[random.Random] = contextvars.ContextVar("ps_rng")


def _ps_rng() -> random.Random:
    rng = _PS_RNG.get(None)
    if rng is None:  # rendered outside TemplateEngine.render: still deterministic
        rng = random.Random(0)
        _PS_RNG.set(rng)
    return rng


def _draw(values: Any) -> Any:
    return _ps_rng().choice(values)


# Both filters take the context only so that Jinja never folds them into a
# constant at compile time: ``["a", "b"] | choice`` must draw per render, not
# once per compiled template.
@jinja2.pass_context
def _ps_choice(context: Any, values: Any) -> Any:
    """promptsource's ``choice`` filter, drawing from the render's seeded RNG."""
    return _draw(values)


@jinja2.pass_context
def _ps_random(context: Any, values: Any) -> Any:
    """Jinja's ``random`` filter, seeded per render."""
    try:
        return _draw(values)
    except IndexError:
        return context.environment.undefined("No random item, sequence was empty.")


def _most_frequent(items: Any) -> list[Any] | None:
    """The items that occur most often, in first-seen order (None for no items).

    >>> _most_frequent(["a", "b", "b", "a", "c"])
    ['a', 'b']
    """
    counts = Counter(items)
    if not counts:
        return None
    top = max(counts.values())
    return [x for x, c in counts.items() if c == top]


def make_promptsource_environment(limits: TemplateLimits = DEFAULT_LIMITS) -> BoundedSandbox:
    """The sandbox for the ``promptsource`` dialect: promptsource's whitespace,
    lenient undefined names and helpers, under the same :class:`TemplateLimits`."""
    env = BoundedSandbox(limits, undefined=jinja2.Undefined, autoescape=False)
    env.globals["zip"] = zip
    for name, f in (
        ("choice", _ps_choice),
        ("most_frequent", _most_frequent),
        ("random", _ps_random),
    ):
        env.filters[name] = env._bounded_filter(name, f)
    return env


def truncate_values(source: str, length: int) -> str:
    """Cut every ``{{ ... }}`` value to ``length`` characters, as promptsource's
    ``apply(truncate=True)`` does (it rewrites each ``}}``)."""
    return source.replace("}}", f" | string | truncate({length}) }}}}")


def _protect(context: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: (v.replace(PS_SEPARATOR, _PS_PROTECT) if isinstance(v, str) else v)
        for k, v in context.items()
    }


def _unprotect(text: str) -> str:
    return text.replace(_PS_PROTECT, PS_SEPARATOR)


def _context_seed(context: Mapping[str, Any]) -> int:
    seed = context.get("__seed")
    if isinstance(seed, int):
        return seed
    blob = json.dumps(
        {k: v for k, v in context.items() if not k.startswith("__")},
        sort_keys=True,
        default=repr,
        ensure_ascii=False,
    )
    return int.from_bytes(hashlib.blake2b(blob.encode(), digest_size=8).digest(), "big")


# Names Jinja itself provides inside templates.
_JINJA_LOCALS = frozenset({"loop", "caller", "varargs", "kwargs", "self", "super"})


def required_names(ast: nodes.Template, supplied: frozenset[str] = frozenset()) -> frozenset[str]:
    """Names a template reads before it assigns them (in document order).

    Jinja's ``find_undeclared_variables`` also lists a name that is only read
    after a ``{% set %}`` inside an ``{% if %}``; such a name is the template's
    own, not a field the record must have.

    >>> env = make_promptsource_environment()
    >>> sorted(required_names(env.parse("{% if a %}{% set n = 1 %}{% endif %}{{ n }}{{ b }}")))
    ['a', 'b']
    """
    first: dict[str, str] = {}
    for n in ast.find_all(nodes.Name):
        first.setdefault(n.name, n.ctx)
    return frozenset(
        n
        for n, ctx in first.items()
        if ctx == "load" and n not in supplied and n not in _JINJA_LOCALS
    )


class CompiledTemplate:
    """A template's input and target, compiled once, with the variables they need.

    For the ``promptsource`` dialect ``input`` is the whole text (``target`` is
    the same object) and ``choices`` the compiled answer-choices text.
    """

    __slots__ = (
        "spec",
        "input",
        "target",
        "variables",
        "uses_options",
        "_batch",
        "choices",
        "simple",
    )

    def __init__(self, spec: TemplateSpec, input_t: jinja2.Template, target_t: jinja2.Template, variables: frozenset[str],
                 batch: jinja2.Template | None = None, choices: jinja2.Template | None = None,
                 simple: SimpleTemplate | None = None):  # fmt: skip
        self.spec = spec
        self.input = input_t
        self.target = target_t
        self.variables = variables
        self.uses_options = "options_block" in variables
        self._batch = batch
        self.choices = choices
        #: the column-wise form when the template is only text and ``{{ name }}`` outputs
        self.simple = simple

    @property
    def batch(self) -> jinja2.Template | None:
        """The many-rows form (:meth:`TemplateEngine.render_many`), compiled on first
        use: rows of simple templates never need it (the column-wise paths)."""
        b = self._batch
        if type(b) is _Lazy:
            b = self._batch = b.fn()
        return b

    @batch.setter
    def batch(self, value: jinja2.Template | None) -> None:
        self._batch = value


class _Lazy:
    """A value computed on first use (see :attr:`CompiledTemplate.batch`)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Any):
        self.fn = fn


#: Filters a :class:`SimpleTemplate` may apply (no arguments): Jinja's own functions.
SIMPLE_FILTERS = ("lower", "upper", "trim", "capitalize", "title")


def output_part(c: nodes.Node, names: frozenset[str] | set[str]) -> str | tuple[str, str | None] | None:  # fmt: skip
    """One node of an ``{{ ... }}`` output as a simple template's part: literal
    text, ``(name, None)`` for ``{{ name }}``, ``(name, filter)`` for
    ``{{ name | f }}`` (``f`` in :data:`SIMPLE_FILTERS`, no arguments) over
    ``names``; None for anything else."""
    if isinstance(c, nodes.TemplateData):
        return c.data
    if isinstance(c, nodes.Name) and c.ctx == "load" and c.name in names:
        return (c.name, None)
    if (
        isinstance(c, nodes.Filter)
        and c.name in SIMPLE_FILTERS
        and isinstance(c.node, nodes.Name)
        and c.node.ctx == "load"
        and c.node.name in names
        and not (c.args or c.kwargs or c.dyn_args or c.dyn_kwargs)
    ):
        return (c.node.name, c.name)
    return None


class SimpleTemplate:
    """A template that is only literal text and ``{{ name }}`` / ``{{ name | f }}``
    outputs (``f`` one of :data:`SIMPLE_FILTERS`, no arguments), rendered a
    whole column of rows at a time with ``str.format`` instead of Jinja.

    Detected from the parsed Jinja AST, so whitespace control, the dropped
    trailing newline and raw blocks are already applied to the literal text;
    a value prints as Jinja prints it (``str(value)``, autoescape off). The
    output is byte-identical to the sandboxed render; rows that would come
    near a :class:`TemplateLimits` bound are left to Jinja (see :meth:`render`).

    >>> eng = TemplateEngine()
    >>> ast = lambda s: eng.env.parse(s)
    >>> st = SimpleTemplate.from_ast(ast("Q: {{ q }}{{ opts }}"), ast("{{ a | upper }}"), {"q", "opts", "a"})
    >>> st.names
    ('q', 'opts', 'a')
    >>> st.render({"q": ["one?", "two?"], "opts": ["", " (x)"], "a": ["y", "n"]}, 2)
    (['Q: one?', 'Q: two? (x)'], ['Y', 'N'])
    >>> SimpleTemplate.from_ast(ast("{% if q %}{{ q }}{% endif %}"), ast("x"), {"q"}) is None
    True
    """

    __slots__ = ("names", "filters", "parts", "_in", "_tg")

    def __init__(self, in_parts: tuple, tg_parts: tuple):
        #: (input parts, target parts): literal text, or (name, filter name or None)
        self.parts = (in_parts, tg_parts)
        self.names = tuple(
            dict.fromkeys(p[0] for p in in_parts + tg_parts if not isinstance(p, str))
        )
        self.filters = sum(1 for p in in_parts + tg_parts if not isinstance(p, str) and p[1])
        self._in = self._plan(in_parts)
        self._tg = self._plan(tg_parts)

    @classmethod
    def from_ast(cls, a_in: nodes.Template, a_tg: nodes.Template, names: frozenset[str] | set[str]) -> SimpleTemplate | None:  # fmt: skip
        """The simple form of a template's input and target ASTs, or None."""
        parts = []
        for ast in (a_in, a_tg):
            out: list[Any] = []
            for n in ast.body:
                if not isinstance(n, nodes.Output):
                    return None
                for c in n.nodes:
                    part = output_part(c, names)
                    if part is None:
                        return None
                    out.append(part)
            parts.append(tuple(out))
        return cls(parts[0], parts[1])

    def _plan(self, parts: tuple) -> tuple[str, tuple[tuple[int, Any], ...]]:
        fmt, args = [], []
        for p in parts:
            if isinstance(p, str):
                fmt.append(p.replace("{", "{{").replace("}", "}}"))
            else:
                fmt.append(f"{{{len(args)}}}")
                args.append(
                    (self.names.index(p[0]), jinja2.filters.FILTERS[p[1]] if p[1] else None)
                )
        return "".join(fmt), tuple(args)

    def render(self, columns: Mapping[str, list[str]], n: int) -> tuple[list[str], list[str]]:
        """(inputs, targets) of ``n`` rows, unstripped. ``columns[name]`` holds
        each row's value of ``name`` already as text (``str(value)``)."""
        cols = [columns[k] for k in self.names]
        res = []
        for fmt, args in (self._in, self._tg):
            if not args:
                res.append([fmt.format()] * n)
                continue
            seqs = [cols[i] if f is None else list(map(f, cols[i])) for i, f in args]
            res.append(list(map(fmt.format, *seqs)))
        return res[0], res[1]


# Row and field separators of batch output; a chunk whose text contains them
# falls back to per-row rendering, so data can never be split wrongly.
ROW_SEP = "\x1e\x1d"
FIELD_SEP = "\x1f\x1d"


class _RowScope(NodeTransformer):
    """Rewrite reads of the template's free variables into ``__row[...]``."""

    def __init__(self, names: frozenset[str]):
        self.names = names

    def visit_Name(self, node: nodes.Name) -> nodes.Node:
        if node.ctx == "load" and node.name in self.names:
            return nodes.Getitem(
                nodes.Name("__row", "load"), nodes.Const(node.name), "load", lineno=node.lineno
            )
        return node


def _stores(ast: nodes.Node) -> set[str]:
    return {n.name for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param")}


class TemplateEngine:
    """Compiles and caches templates and field expressions in one sandbox."""

    def __init__(self, limits: TemplateLimits = DEFAULT_LIMITS) -> None:
        self.env = make_environment(limits)
        self.ps_env = make_promptsource_environment(limits)
        self._templates: dict[str, CompiledTemplate] = {}
        self._texts: dict[str, jinja2.Template] = {}
        self._exprs: dict[str, Any] = {}
        self._vars: dict[str, frozenset[str]] = {}

    # -- compiling

    def _compile(self, source: str, where: str) -> tuple[jinja2.Template, frozenset[str]]:
        try:
            ast = self.env.parse(source)
            variables = frozenset(meta.find_undeclared_variables(ast))
            return self.env.from_string(_MeterLoops().visit(ast)), variables
        except jinja2.TemplateSyntaxError as e:
            raise TemplateError(f"{where}, line {e.lineno}: {e.message}") from None
        except SecurityError as e:  # constant folding evaluates unsafe access while compiling
            raise TemplateSecurityError(f"{where} tried to leave the sandbox: {e}") from None

    def compile(self, spec: TemplateSpec) -> CompiledTemplate:
        """Compile ``spec`` (cached by id); a syntax error names file, id and line."""
        hit = self._templates.get(spec.id)
        if hit is not None and hit.spec == spec:
            return hit
        where = f"{spec.file or '<template>'}: template {spec.id!r}"
        if spec.dialect == "promptsource":
            ct = self._compile_promptsource(spec, where)
            self._templates[spec.id] = ct
            return ct
        it, iv = self._compile(spec.input, f"{where} (input)")
        tt, tv = self._compile(spec.target, f"{where} (target)")
        batch = _Lazy(functools.partial(self._compile_batch, spec, iv | tv))
        ct = CompiledTemplate(spec, it, tt, iv | tv, batch, simple=self._compile_simple(spec, iv | tv))  # fmt: skip
        self._templates[spec.id] = ct
        return ct

    def _compile_promptsource(self, spec: TemplateSpec, where: str) -> CompiledTemplate:
        env = self.ps_env
        text = spec.input if spec.truncate is None else truncate_values(spec.input, spec.truncate)
        supplied = frozenset(env.globals) | {"answer_choices"}
        try:
            ast = env.parse(text)
            names = required_names(ast, supplied)
            main = env.from_string(_MeterLoops().visit(ast))
            choices = None
            if spec.answer_choices is not None:
                c_ast = env.parse(spec.answer_choices)
                names |= required_names(c_ast, supplied - {"answer_choices"})
                choices = env.from_string(_MeterLoops().visit(c_ast))
        except jinja2.TemplateSyntaxError as e:
            raise TemplateError(f"{where}, line {e.lineno}: {e.message}") from None
        except SecurityError as e:
            raise TemplateSecurityError(f"{where} tried to leave the sandbox: {e}") from None
        return CompiledTemplate(spec, main, main, names, None, choices)

    def _render_promptsource(
        self, ct: CompiledTemplate, context: Mapping[str, Any]
    ) -> tuple[str, str]:
        """Render once, split on ``|||``: (part 0, part 1 or "")."""
        token = _PS_RNG.set(random.Random(_context_seed(context)))
        try:
            ctx = _protect(context)
            if ct.choices is not None:
                text = self._run(ct.choices, ctx, False)
                ctx["answer_choices"] = [_unprotect(c.strip()) for c in text.split(PS_SEPARATOR)]
            else:
                ctx["answer_choices"] = None
            text = self._run(ct.input, ctx, False)
            parts = [_unprotect(p).strip() for p in text.split(PS_SEPARATOR)]
        finally:
            _PS_RNG.reset(token)
        if len(parts) > 2:
            raise TemplateError(
                f"{ct.spec.file}: template {ct.spec.id!r} rendered {len(parts)} parts "
                f"separated by {PS_SEPARATOR!r}; expected an input and a target"
            )
        return parts[0], (parts[1] if len(parts) > 1 else "")

    def _compile_simple(self, spec: TemplateSpec, names: frozenset[str]) -> SimpleTemplate | None:
        """The column-wise form of a text-and-names template (None for any other)."""
        try:
            st = SimpleTemplate.from_ast(
                self.env.parse(spec.input), self.env.parse(spec.target), names
            )
        except (jinja2.TemplateSyntaxError, SecurityError):
            return None
        # each filter counts one operation per render in the sandbox's budget
        if st is None or st.filters > self.env.limits.ops:
            return None
        return st

    def _compile_batch(self, spec: TemplateSpec, names: frozenset[str]) -> jinja2.Template | None:
        """One template that renders many rows: ``{% for __row in __rows %}input␞target␟{% endfor %}``.

        Rendering N rows in one call avoids N context setups, the dominant cost
        of small templates. Same AST, same sandbox, same output per row.
        """
        try:
            a_in = self.env.parse(spec.input)
            a_tg = self.env.parse(spec.target)
        except jinja2.TemplateSyntaxError:
            return None
        if (_stores(a_in) | _stores(a_tg)) & names or any(
            True for _ in a_in.find_all((nodes.Extends, nodes.Block, nodes.Macro))
        ):
            return None  # a free variable is also assigned: scoping would differ
        scope = _RowScope(names)
        a_in, a_tg = _MeterLoops().visit(a_in), _MeterLoops().visit(a_tg)
        body = [
            *(scope.visit(n) for n in a_in.body),
            nodes.Output([nodes.TemplateData(FIELD_SEP)]),
            *(scope.visit(n) for n in a_tg.body),
            nodes.Output([nodes.TemplateData(ROW_SEP)]),
        ]
        rows = nodes.Call(nodes.Name(_ROWS, "load"), [nodes.Name("__rows", "load")], [], None, None)
        loop = nodes.For(nodes.Name("__row", "store"), rows, body, [], None, False)
        tree = nodes.Template([loop])
        tree.set_lineno(1, override=True)
        tree.set_environment(self.env)
        try:
            return self.env.from_string(tree)
        except (
            Exception
        ):  # pragma: no cover - an AST we cannot compile: per-row rendering still works
            return None

    def render_many(
        self, ct: CompiledTemplate, contexts: list[Mapping[str, Any]]
    ) -> list[tuple[str, str]]:
        """Render many rows; identical to :meth:`render` on each row, much faster."""
        if ct.batch is not None and contexts:
            try:
                text = self._run(ct.batch, {"__rows": contexts})
            except Exception:
                text = None  # find the failing row (and its precise error) below
            if text is not None:
                rows = text.split(ROW_SEP)
                if len(rows) == len(contexts) + 1 and not rows[-1]:
                    out = []
                    for r in rows[:-1]:
                        parts = r.split(FIELD_SEP)
                        if len(parts) != 2:
                            break
                        out.append((parts[0], parts[1]))
                    else:
                        return out
        return [self.render(ct, c) for c in contexts]

    def variables(self, spec: TemplateSpec) -> frozenset[str]:
        """The variables a template reads (input and target together)."""
        return self.compile(spec).variables

    def variables_of(self, source: str) -> frozenset[str]:
        """The variables ``source`` reads; cached by text (every task of a
        collection asks about the same few field expressions)."""
        hit = self._vars.get(source)
        if hit is None:
            try:
                hit = frozenset(meta.find_undeclared_variables(self.env.parse(source)))
            except (jinja2.TemplateSyntaxError, SecurityError):
                hit = self._compile(source, "<text>")[1]  # raises the precise error
            self._vars[source] = hit
        return hit

    def expression(self, source: str, where: str = "<expression>") -> Any:
        """Compile a Jinja expression (field mappings); cached by source text."""
        hit = self._exprs.get(source)
        if hit is None:
            try:
                hit = self.env.compile_expression(source, undefined_to_none=False)
            except jinja2.TemplateSyntaxError as e:
                raise TemplateError(
                    f"{where}: invalid expression {source!r}: {e.message}"
                ) from None
            except SecurityError as e:  # constant folding evaluates unsafe access while compiling
                raise TemplateSecurityError(
                    f"{where}: expression {source!r} tried to leave the sandbox: {e}"
                ) from None
            self._exprs[source] = hit
        return hit

    def field_getter(self, source: str) -> Any:
        """A plain-Python reader for simple field expressions, or None.

        Handles names, constants, ``a.b`` and ``a[b]`` over dicts and lists
        (the bulk of field mappings), and ``| trim``, ``| lower``, ``| upper``
        of a string (``inputs_pretokenized | trim``: every P3 task), ``| replace('a',
        'b')`` of a string and ``| join(', ')`` of a list of strings, without a
        Jinja context per record. The caller falls back to the Jinja expression
        whenever the getter raises (a value that is not a ``str``, a result over
        the sandbox's sequence size), so results and error messages never differ.

        >>> g = TemplateEngine().field_getter("inputs_pretokenized | trim")
        >>> g({"inputs_pretokenized": "  Is it? "})
        'Is it?'
        """
        try:
            expr = self.env.parse("{{ " + source + " }}").body[0].nodes[0]
        except (jinja2.TemplateSyntaxError, AttributeError, IndexError):
            return None
        return _field_getter(expr, self.env.limits.sequence_len)

    def fast_expression(self, source: str | None) -> Any:
        """A plain-Python evaluator of a simple record-rule expression, or None.

        Extends :meth:`field_getter` with constants, tuples/lists, comparisons
        (``==``, ``>``, ``in``, ``not in``, ...), ``and``/``or``/``not`` and the
        ``length``/``trim``/``lower``/``upper`` filters. It raises on anything
        unusual (a missing field, a non-string for ``trim``); the caller then
        evaluates the Jinja expression, so results and errors never differ.

        >>> f = TemplateEngine().fast_expression("Turn_no > 6 and Context | length > 0")
        >>> f({"Turn_no": 7, "Context": ["q", "a"]}), f({"Turn_no": 7, "Context": []})
        (True, False)
        """
        if not source:
            return None
        try:
            expr = self.env.parse("{{ " + source + " }}").body[0].nodes[0]
        except (jinja2.TemplateSyntaxError, AttributeError, IndexError):
            return None
        return _evaluator(expr)

    # -- rendering

    def _run(self, t: jinja2.Template, context: Mapping[str, Any], arm: bool = True) -> str:
        """Render ``t`` under a budget, counting output as it is produced."""
        env = t.environment
        if arm:
            env.arm()
        parts = []
        try:
            lim = env.limits.output_chars
            add = parts.append
            for chunk in t.generate(context):
                env.out += len(chunk)  # inline emit(): this loop is the hot path
                if env.out > lim:
                    env.emit(0)  # raises the limit error
                add(chunk)
        except RecursionError:
            raise env.fail("call depth", " (Python's recursion limit)") from None
        except MemoryError:
            raise env.fail("memory", "") from None
        except OverflowError as e:
            raise env.fail("number size", f": {e}") from None
        finally:
            if arm:
                env.disarm()
        return "".join(parts)

    def render(self, ct: CompiledTemplate, context: Mapping[str, Any]) -> tuple[str, str]:
        """Render input and target; sandbox violations become TemplateSecurityError,
        exceeded :class:`TemplateLimits` a TemplateLimitError naming file, id and limit."""
        env = ct.input.environment
        env.arm()
        try:
            if ct.spec.dialect == "promptsource":
                return self._render_promptsource(ct, context)
            return self._run(ct.input, context, False), self._run(ct.target, context, False)
        except TemplateLimitError as e:
            raise TemplateLimitError(
                f"{ct.spec.file}: template {ct.spec.id!r}: {e.args[0]}", e.limit
            ) from None
        except SecurityError as e:
            raise TemplateSecurityError(
                f"{ct.spec.file}: template {ct.spec.id!r} tried to leave the sandbox: {e}"
            ) from None
        except jinja2.UndefinedError as e:
            if _is_unsafe_undefined(e):
                raise TemplateSecurityError(
                    f"{ct.spec.file}: template {ct.spec.id!r} tried to leave the sandbox: {e}"
                ) from None
            raise TemplateError(f"{ct.spec.file}: template {ct.spec.id!r}: {e.message}") from None
        except (
            TypeError,
            ValueError,
            IndexError,
            KeyError,
            AttributeError,
            ZeroDivisionError,
        ) as e:
            raise TemplateError(
                f"{ct.spec.file}: template {ct.spec.id!r} failed: {type(e).__name__}: {e}"
            ) from None
        finally:
            env.disarm()

    def render_text(self, source: str, context: Mapping[str, Any]) -> str:
        """Render a one-off template string (cached by its text)."""
        t = self._texts.get(source)
        if t is None:
            t = self._compile(source, "<text>")[0]
            self._texts[source] = t
        try:
            return self._run(t, context)
        except SecurityError as e:
            raise TemplateSecurityError(f"template tried to leave the sandbox: {e}") from None
        except jinja2.UndefinedError as e:
            if _is_unsafe_undefined(e):
                raise TemplateSecurityError(f"template tried to leave the sandbox: {e}") from None
            raise TemplateError(f"template {source!r}: {e.message}") from None


_DICT_ATTRS = frozenset(dir(dict)) | frozenset(dir(list))


def _getter(node: nodes.Node) -> Any:
    """Compile a tiny expression AST into a closure over the record; None if unsupported."""
    if isinstance(node, nodes.Name):
        name = node.name
        return lambda ctx: ctx[name]
    if isinstance(node, nodes.Const):
        value = node.value
        return lambda ctx: value
    if (
        isinstance(node, nodes.Getattr)
        and node.attr not in _DICT_ATTRS
        and not node.attr.startswith("_")
    ):
        inner, attr = _getter(node.node), node.attr
        if inner is None:
            return None
        return lambda ctx: _item(inner(ctx), attr)
    if isinstance(node, nodes.Getitem) and not isinstance(node.arg, nodes.Slice):
        inner, key = _getter(node.node), _getter(node.arg)
        if inner is None or key is None:
            return None
        return lambda ctx: _item(inner(ctx), key(ctx))
    return None


#: String filters a field getter evaluates itself, on a ``str`` (exactly) only:
#: Jinja's ``do_trim``/``do_lower``/``do_upper`` are ``soft_str(v).strip()`` etc.
_FIELD_FILTERS = {"trim": str.strip, "lower": str.lower, "upper": str.upper}
#: ... and these, with constant string arguments (their number): ``replace(old, new)``
#: of a str (Jinja: ``str(s).replace(old, new, -1)``), ``join(sep)`` of a list of
#: str (``sep.join(map(str, v))``); the sandbox's size checks refuse first.
_ARG_FILTERS = {"replace": 2, "join": 1}


def _field_getter(node: nodes.Node, cap: int) -> Any:
    """:func:`_getter` plus :data:`_FIELD_FILTERS` and :data:`_ARG_FILTERS` over
    one; a result longer than ``cap`` raises (the sandbox refuses it: Jinja decides)."""
    if (
        isinstance(node, nodes.Filter)
        and node.name in _ARG_FILTERS
        and node.node is not None
        and not node.kwargs
        and node.dyn_args is None
        and node.dyn_kwargs is None
        and len(node.args) == _ARG_FILTERS[node.name]
        and all(isinstance(a, nodes.Const) and type(a.value) is str for a in node.args)
    ):
        inner = _field_getter(node.node, cap)
        if inner is None:
            return None
        args = [a.value for a in node.args]
        if node.name == "replace":
            old, new = args
            if not old:
                return None

            def replaced(ctx: Any) -> str:
                v = inner(ctx)
                if type(v) is not str or len(v) + v.count(old) * len(new) > cap:
                    raise TypeError("not a str, or over the sequence size")  # let Jinja decide
                return v.replace(old, new)

            return replaced
        (sep,) = args

        def joined(ctx: Any) -> str:
            v = inner(ctx)
            if type(v) is not list and type(v) is not tuple:
                raise TypeError("not a list")  # let Jinja decide
            if not all(type(x) is str for x in v):
                raise TypeError("not strings")
            if sum(len(x) for x in v) + len(sep) * len(v) > cap:
                raise ValueError("over the sequence size")
            return sep.join(v)

        return joined
    if (
        isinstance(node, nodes.Filter)
        and node.name in _FIELD_FILTERS
        and node.node is not None
        and not node.args
        and not node.kwargs
        and node.dyn_args is None
        and node.dyn_kwargs is None
    ):
        inner, f = _field_getter(node.node, cap), _FIELD_FILTERS[node.name]
        if inner is None:
            return None

        def filtered(ctx: Any) -> str:
            v = inner(ctx)
            if type(v) is not str:
                raise TypeError("not a str")  # let Jinja decide
            v = f(v)
            if len(v) > cap:
                raise ValueError("over the sequence size")  # the sandbox words it
            return v

        return filtered
    return _getter(node)


#: Filters the fast path evaluates itself (Jinja's own definitions: ``length`` is ``len``).
_FAST_FILTERS = {
    "length": len,
    "count": len,
    "trim": lambda v: _str_only(v).strip(),
    "lower": lambda v: _str_only(v).lower(),
    "upper": lambda v: _str_only(v).upper(),
}
_COMPARE = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "gteq": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lteq": lambda a, b: a <= b,
    "in": lambda a, b: a in b,
    "notin": lambda a, b: a not in b,
}


def _str_only(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError("not a string")  # let Jinja decide
    return v


def _evaluator(n: nodes.Node) -> Any:
    """:func:`_getter` plus the compound nodes of record rules; None if unsupported."""
    if isinstance(n, nodes.Name | nodes.Const | nodes.Getattr | nodes.Getitem):
        return _getter(n)
    if isinstance(n, nodes.Tuple | nodes.List):
        items = [_evaluator(x) for x in n.items]
        if any(i is None for i in items):
            return None
        mk = tuple if isinstance(n, nodes.Tuple) else list
        return lambda r: mk(i(r) for i in items)
    if isinstance(n, nodes.And | nodes.Or):
        a, b = _evaluator(n.left), _evaluator(n.right)
        if a is None or b is None:
            return None
        if isinstance(n, nodes.And):
            return lambda r: a(r) and b(r)
        return lambda r: a(r) or b(r)
    if isinstance(n, nodes.Not):
        a = _evaluator(n.node)
        return None if a is None else (lambda r: not a(r))
    if isinstance(n, nodes.Filter) and not n.args and not n.kwargs and n.name in _FAST_FILTERS:
        a, f = _evaluator(n.node), _FAST_FILTERS[n.name]
        return None if a is None else (lambda r: f(a(r)))
    if isinstance(n, nodes.Compare) and len(n.ops) == 1 and n.ops[0].op in _COMPARE:
        a, b, op = _evaluator(n.expr), _evaluator(n.ops[0].expr), _COMPARE[n.ops[0].op]
        if a is None or b is None:
            return None
        return lambda r: op(a(r), b(r))
    return None


def _item(obj: Any, key: Any) -> Any:
    if isinstance(obj, dict | list | tuple) and not (isinstance(key, str) and key.startswith("_")):
        return obj[key]
    raise TypeError("not a plain container")  # let Jinja decide


def _is_unsafe_undefined(e: jinja2.UndefinedError) -> bool:
    # The sandbox turns unsafe attribute access into an undefined whose message
    # says "unsafe"; under StrictUndefined that surfaces as UndefinedError.
    return "unsafe" in (e.message or "")
