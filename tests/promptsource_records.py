"""Synthetic records shaped to what a promptsource template reads.

The shape of each field is inferred from how the template's Jinja uses it:
``x["k"]`` and ``x.k`` make a mapping with key ``k``; ``x[i]``, ``for .. in
x``, ``x | length`` / ``join`` / ``choice`` ... make a list; a field used as an
index (``answer_choices[label]``) or compared with a number is an integer;
string methods (``x.split()``) make a string. Everything else is a string.

The values are varied on purpose (several words, newlines, surrounding spaces,
a ``|||`` inside one string), because whitespace and separators are where
renderers differ.
"""

from __future__ import annotations

from typing import Any

from jinja2 import nodes

_STR_METHODS = frozenset(
    [
        "split",
        "strip",
        "lstrip",
        "rstrip",
        "lower",
        "upper",
        "replace",
        "capitalize",
        "title",
        "startswith",
        "endswith",
        "format",
        "count",
        "find",
        "index",
        "rfind",
        "join",
        "splitlines",
        "isdigit",
        "isalpha",
        "partition",
        "rsplit",
        "zfill",
    ]
)
_DICT_METHODS = frozenset({"items", "keys", "values", "get"})
_LIST_FILTERS = frozenset(
    [
        "length",
        "count",
        "join",
        "first",
        "last",
        "list",
        "sort",
        "unique",
        "random",
        "choice",
        "most_frequent",
        "reverse",
        "batch",
        "slice",
        "map",
        "select",
        "reject",
        "selectattr",
        "rejectattr",
        "sum",
        "min",
        "max",
    ]
)


class _Shape:
    __slots__ = ("keys", "elem", "kind")

    def __init__(self) -> None:
        self.keys: dict[str, _Shape] = {}
        self.elem: _Shape | None = None
        self.kind: str | None = None  # "int" | "str" | "list" | "dict"

    def key(self, k: str) -> _Shape:
        self.kind = self.kind or "dict"
        return self.keys.setdefault(k, _Shape())

    def item(self) -> _Shape:
        if self.kind in (None, "str", "dict") and not self.keys:
            self.kind = "list"
        if self.elem is None:
            self.elem = _Shape()
        return self.elem


def _chain(node: nodes.Node, roots: dict[str, _Shape]) -> _Shape | None:
    """The shape a Name / Getitem / Getattr chain points at (creating it)."""
    if isinstance(node, nodes.Name) and node.ctx == "load":
        return roots.setdefault(node.name, _Shape())
    if isinstance(node, nodes.Getitem):
        base = _chain(node.node, roots)
        if base is None:
            return None
        if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            return base.key(node.arg.value)
        if isinstance(node.arg, nodes.Slice):
            base.kind = base.kind or "str"
            return None
        return base.item()
    if isinstance(node, nodes.Getattr):
        base = _chain(node.node, roots)
        if base is None:
            return None
        if node.attr in _STR_METHODS:
            base.kind = "str"
            return None
        if node.attr in _DICT_METHODS:
            base.kind = "dict"
            return None
        return base.key(node.attr)
    return None


def _walk(node: nodes.Node, roots: dict[str, _Shape]) -> None:
    if isinstance(node, nodes.For):
        s = _chain(node.iter, roots)
        if s is not None:
            s.item()
    elif isinstance(node, nodes.Getitem) and not isinstance(node.arg, nodes.Const | nodes.Slice):
        s = _chain(node.arg, roots)
        if s is not None and s.kind is None:
            s.kind = "int"
    elif isinstance(node, nodes.Filter) and node.node is not None:
        s = _chain(node.node, roots)
        if s is not None:
            if node.name in _LIST_FILTERS:
                s.item()
            elif node.name in ("int", "float", "round", "abs") and s.kind is None:
                s.kind = "int"
    elif isinstance(node, nodes.Compare):
        operands = [node.expr, *(o.expr for o in node.ops)]
        consts = [o for o in operands if isinstance(o, nodes.Const)]
        negs = [o for o in operands if isinstance(o, nodes.Neg)]
        for o in operands:
            s = _chain(o, roots)
            if s is None or s.kind is not None:
                continue
            if negs or any(
                isinstance(c.value, int) and not isinstance(c.value, bool) for c in consts
            ):
                s.kind = "int"
            elif any(isinstance(c.value, str) for c in consts):
                s.kind = "str"
    elif isinstance(node, nodes.Getattr | nodes.Getitem | nodes.Name):
        _chain(node, roots)
    for child in node.iter_child_nodes():
        _walk(child, roots)


_WORDS = (
    "the river bank was quiet",
    '  Alice said: "it rained"\nthen left.  ',
    "a ||| b",
    "Paris",
    "42 apples and 7 pears",
    "Line one\n\nLine two",
)


def _value(shape: _Shape, name: str, n: int, top: bool = True) -> Any:
    if shape.kind == "dict" or shape.keys:
        return {k: _value(v, k, n + i, False) for i, (k, v) in enumerate(shape.keys.items())}
    if shape.kind == "list":
        elem = shape.elem or _Shape()
        return [_value(elem, name, n + i, False) for i in range(3)]
    if shape.kind == "int":
        return n % 2
    words = _WORDS[n % len(_WORDS)]
    if not top:  # promptsource protects '|||' only in top-level string fields
        words = words.replace("|||", "/")
    return f"{name} {words}"


def record_for(trees: list[nodes.Template], fields: list[str], variant: int = 0) -> dict[str, Any]:
    """A record with every field in ``fields``, shaped as the templates use them.

    ``variant`` shifts the values (other words, other integers).
    """
    roots: dict[str, _Shape] = {}
    for t in trees:
        _walk(t, roots)
    return {f: _value(roots.get(f) or _Shape(), f, i + variant) for i, f in enumerate(fields)}
