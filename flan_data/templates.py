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
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import random
from collections import Counter
from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import SandboxedEnvironment, SecurityError
from jinja2.visitor import NodeTransformer

from .errors import TemplateError, TemplateSecurityError
from .specs import TemplateSpec


def make_environment() -> SandboxedEnvironment:
    """The one Jinja environment configuration the project uses."""
    env = SandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


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


def make_promptsource_environment() -> SandboxedEnvironment:
    """The sandbox for the ``promptsource`` dialect (promptsource's whitespace and helpers)."""
    env = SandboxedEnvironment(undefined=jinja2.Undefined, autoescape=False)
    env.globals["zip"] = zip
    env.filters["choice"] = _ps_choice
    env.filters["most_frequent"] = _most_frequent
    env.filters["random"] = _ps_random
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

    __slots__ = ("spec", "input", "target", "variables", "uses_options", "batch", "choices")

    def __init__(self, spec: TemplateSpec, input_t: jinja2.Template, target_t: jinja2.Template, variables: frozenset[str],
                 batch: jinja2.Template | None = None, choices: jinja2.Template | None = None):  # fmt: skip
        self.spec = spec
        self.input = input_t
        self.target = target_t
        self.variables = variables
        self.uses_options = "options_block" in variables
        self.batch = batch
        self.choices = choices


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

    def __init__(self) -> None:
        self.env = make_environment()
        self.ps_env = make_promptsource_environment()
        self._templates: dict[str, CompiledTemplate] = {}
        self._texts: dict[str, jinja2.Template] = {}
        self._exprs: dict[str, Any] = {}

    # -- compiling

    def _compile(self, source: str, where: str) -> tuple[jinja2.Template, frozenset[str]]:
        try:
            ast = self.env.parse(source)
            variables = frozenset(meta.find_undeclared_variables(ast))
            return self.env.from_string(ast), variables
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
        ct = CompiledTemplate(spec, it, tt, iv | tv, self._compile_batch(spec, iv | tv))
        self._templates[spec.id] = ct
        return ct

    def _compile_promptsource(self, spec: TemplateSpec, where: str) -> CompiledTemplate:
        env = self.ps_env
        text = spec.input if spec.truncate is None else truncate_values(spec.input, spec.truncate)
        supplied = frozenset(env.globals) | {"answer_choices"}
        try:
            ast = env.parse(text)
            names = required_names(ast, supplied)
            main = env.from_string(ast)
            choices = None
            if spec.answer_choices is not None:
                c_ast = env.parse(spec.answer_choices)
                names |= required_names(c_ast, supplied - {"answer_choices"})
                choices = env.from_string(c_ast)
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
                text = ct.choices.render(ctx)
                ctx["answer_choices"] = [_unprotect(c.strip()) for c in text.split(PS_SEPARATOR)]
            else:
                ctx["answer_choices"] = None
            parts = [_unprotect(p).strip() for p in ct.input.render(ctx).split(PS_SEPARATOR)]
        finally:
            _PS_RNG.reset(token)
        if len(parts) > 2:
            raise TemplateError(
                f"{ct.spec.file}: template {ct.spec.id!r} rendered {len(parts)} parts "
                f"separated by {PS_SEPARATOR!r}; expected an input and a target"
            )
        return parts[0], (parts[1] if len(parts) > 1 else "")

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
        body = [
            *(scope.visit(n) for n in a_in.body),
            nodes.Output([nodes.TemplateData(FIELD_SEP)]),
            *(scope.visit(n) for n in a_tg.body),
            nodes.Output([nodes.TemplateData(ROW_SEP)]),
        ]
        loop = nodes.For(
            nodes.Name("__row", "store"), nodes.Name("__rows", "load"), body, [], None, False
        )
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
                text = ct.batch.render(__rows=contexts)
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
        return self._compile(source, "<text>")[1]

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
        (the bulk of field mappings) without a Jinja context per record. The
        caller falls back to the Jinja expression whenever the getter raises,
        so results and error messages never differ.
        """
        try:
            expr = self.env.parse("{{ " + source + " }}").body[0].nodes[0]
        except (jinja2.TemplateSyntaxError, AttributeError, IndexError):
            return None
        return _getter(expr)

    # -- rendering

    def render(self, ct: CompiledTemplate, context: Mapping[str, Any]) -> tuple[str, str]:
        """Render input and target; sandbox violations become TemplateSecurityError."""
        try:
            if ct.choices is not None or ct.spec.dialect == "promptsource":
                return self._render_promptsource(ct, context)
            return ct.input.render(context), ct.target.render(context)
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

    def render_text(self, source: str, context: Mapping[str, Any]) -> str:
        """Render a one-off template string (cached by its text)."""
        t = self._texts.get(source)
        if t is None:
            t = self._compile(source, "<text>")[0]
            self._texts[source] = t
        try:
            return t.render(context)
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


def _item(obj: Any, key: Any) -> Any:
    if isinstance(obj, dict | list | tuple) and not (isinstance(key, str) and key.startswith("_")):
        return obj[key]
    raise TypeError("not a plain container")  # let Jinja decide


def _is_unsafe_undefined(e: jinja2.UndefinedError) -> bool:
    # The sandbox turns unsafe attribute access into an undefined whose message
    # says "unsafe"; under StrictUndefined that surfaces as UndefinedError.
    return "unsafe" in (e.message or "")
