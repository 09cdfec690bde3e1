"""Catalog queries behind ``flan catalog show/templates/search`` and the web pages.

All functions are pure: a :class:`~flan_data.catalog.Catalog` in, plain
JSON-able data out (dicts, lists, strings, numbers).

>>> from flan_data import Catalog
>>> cat = Catalog.load()
>>> info = task_info(cat, cat.task("anli_r1"))
>>> info["templates"][0]["input"] != ""
True
>>> "anli_r1" in [m["name"] for m in search_tasks(cat, "anli")]
True
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..catalog import Catalog
from ..errors import UnknownNameError
from ..specs import TaskSpec, TemplateSpec

#: TaskSpec fields shown by name; any other (newer) field is shown generically.
_KNOWN_TASK_FIELDS = frozenset(
    {"name", "collection", "source", "fields", "templates", "sample", "options", "options_field",
     "exemplars", "metadata", "file", "records", "record_rules"}
)  # fmt: skip


def plain(v: Any) -> Any:
    """Frozen specs (dataclasses, mappings, tuples) as plain JSON-able data."""
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, Mapping):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, tuple | list | set | frozenset):
        return [plain(x) for x in v]
    if v is None or isinstance(v, str | int | float | bool):
        return v
    return str(v)


def _source(s: Any) -> dict[str, Any] | None:
    if s is None:
        return None
    d = {k: plain(v) for k, v in vars(s).items() if v not in (None, {}, ()) and plain(v) != {}}
    return d | {"kind": s.kind}


def _rules_obj(t: Any) -> Any:
    for name in ("records", "record_rules", "rules"):
        v = getattr(t, name, None)
        if v is not None and v not in ((), {}, []) and bool(v):
            return v
    return None


def _drop_empty(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _drop_empty(x) for k, x in v.items() if x not in (None, {}, [], "")}
    return v


def record_rules(t: Any) -> Any:
    """The task's record rules (filter/explode/sample_turn) as plain data, or None."""
    v = _rules_obj(t)
    if v is not None:
        return _drop_empty(plain(v))
    src = getattr(getattr(t, "source", None), "options", {}) or {}
    rules = {k: plain(src[k]) for k in ("filter", "explode", "sample_turn") if k in src}
    return rules or None


def record_rules_lines(t: Any) -> list[str]:
    """One readable line per record rule, in the order they apply (empty: none)."""
    v = _rules_obj(t)
    if v is not None and callable(getattr(v, "describe", None)):
        return [str(x) for x in v.describe()]
    d = record_rules(t)
    return [f"{k}: {json.dumps(x, ensure_ascii=False)}" for k, x in (d or {}).items()]


def template_info(tpl: TemplateSpec, variables: Iterable[str] = ()) -> dict[str, Any]:
    return {
        "id": tpl.id,
        "kind": tpl.kind,
        "set": tpl.set,
        "variables": sorted(variables),
        "input": tpl.input,
        "target": tpl.target,
        "file": tpl.file,
        "dialect": tpl.dialect,
        "answer_choices": tpl.answer_choices,
    }


def task_info(cat: Catalog, t: TaskSpec) -> dict[str, Any]:
    """Everything about a task, as plain JSON-able data (``flan catalog show --json``)."""
    from ..render import Renderer

    tr = Renderer(cat).task_renderer(t)
    info: dict[str, Any] = {
        "name": t.name,
        "collection": t.collection,
        "file": t.file,
        "source": _source(t.source),
        "sample": _source(t.sample),
        "record_rules": record_rules(t),
        "record_rules_text": record_rules_lines(t),
        "fields": dict(t.fields),
        "options": list(t.options)
        if t.options is not None
        else ({"field": t.options_field} if t.options_field else None),
        "exemplars": t.exemplars,
        "template_sets": list(t.templates),
        "templates": [template_info(ct.spec, ct.variables) for ct in tr.templates],
        "formats": list(tr.formats()),
        "metadata": plain(t.metadata),
    }
    other = {
        f.name: plain(getattr(t, f.name))
        for f in dataclasses.fields(t)
        if f.name not in _KNOWN_TASK_FIELDS and getattr(t, f.name) not in (None, (), {}, [])
    }
    if other:
        info["other"] = other
    return info


# ----------------------------------------------------------------------------- template sets


def template_sets(
    cat: Catalog, set_name: str | None = None, grep: str | None = None
) -> list[dict[str, Any]]:
    """Template sets with their templates and the tasks that use them.

    ``set_name`` keeps one set (an unknown name suggests the closest);
    ``grep`` keeps templates whose id, input or target contains the text
    (case-insensitive) and sets with at least one of them.
    """
    if set_name is not None and set_name not in cat.template_sets:
        raise UnknownNameError("template set", set_name, cat.template_sets)
    users: dict[str, list[str]] = {}
    for t in cat.tasks.values():
        for s in t.templates:
            users.setdefault(s, []).append(t.name)
    g = grep.lower() if grep else None
    out = []
    for name, ids in cat.template_sets.items():
        if set_name is not None and name != set_name:
            continue
        tpls = [cat.templates[i] for i in ids]
        if g is not None:
            tpls = [
                x
                for x in tpls
                if g in x.id.lower() or g in x.input.lower() or g in x.target.lower()
            ]
            if not tpls:
                continue
        kinds = sorted({x.kind for x in (cat.templates[i] for i in ids)})
        f = Path(cat.templates[ids[0]].file) if ids else None
        out.append({
            "set": name,
            "file": (f.relative_to(cat.root).as_posix() if f.is_relative_to(cat.root) else str(f)) if f else "",
            "kinds": kinds,
            "size": len(ids),
            "templates": [template_info(x) for x in tpls],
            "tasks": users.get(name, []),
        })  # fmt: skip
    return out


# ----------------------------------------------------------------------------- search


def _metadata_text(t: TaskSpec) -> dict[str, str]:
    """Searchable metadata as ``{label: lowercase text}`` (whatever the spec carries)."""
    m = plain(t.metadata)
    extra = m.pop("extra", {}) or {}
    out = {
        "name": t.name,
        "collection": t.collection,
        "category": m.get("category") or "",
        "language": " ".join(m.get("languages") or ()),
        "license": " ".join(_flatten(v) for k, v in {**m, **extra}.items() if "licen" in k),
        "source": t.source.describe(),
        "metadata": _flatten({k: v for k, v in {**m, **extra}.items()
                              if k not in ("category", "languages") and "licen" not in k}),
    }  # fmt: skip
    return {k: v.lower() for k, v in out.items()}


def _flatten(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, Mapping):
        return " ".join(f"{k} {_flatten(x)}" for k, x in v.items())
    if isinstance(v, list | tuple):
        return " ".join(_flatten(x) for x in v)
    return str(v)


def search_words(text: str, phrase: bool = False) -> list[str]:
    """Lowercase search terms: words, with ``"quoted phrases"`` kept whole.

    >>> search_words('nli "does the hypothesis"')
    ['nli', 'does the hypothesis']
    """
    if phrase:
        return [text.lower().strip()] if text.strip() else []
    try:
        parts = shlex.split(text)
    except ValueError:  # an unbalanced quote: plain words
        parts = text.split()
    return [w.lower() for w in parts if w.strip()]


def search_tasks(
    cat: Catalog, text: str, *, fields: Iterable[str] | None = None, phrase: bool = False
) -> list[dict[str, Any]]:
    """Tasks whose name, collection, category, language, license, source, other
    metadata or template wording contains ``text`` (case-insensitive; every
    word or ``"quoted phrase"`` must match somewhere; ``phrase``: all of
    ``text`` is one phrase).

    Each hit says where it matched: ``{"name", "collection", "category",
    "matched": ["name", "template:nli-03", ...]}``. Name matches sort first.
    """
    words = search_words(text, phrase)
    if not words:
        return []
    want = set(fields) if fields is not None else None
    tpl_hits: dict[str, dict[str, list[str]]] = {}  # set -> word -> template ids
    for name, ids in cat.template_sets.items():
        for i in ids:
            x = cat.templates[i]
            blob = (x.input + "\n" + x.target).lower()
            for w in words:
                if w in blob:
                    tpl_hits.setdefault(name, {}).setdefault(w, []).append(i)
    out = []
    for t in cat.tasks.values():
        meta = _metadata_text(t)
        matched: list[str] = []
        ok = True
        for w in words:
            where = [k for k, v in meta.items() if w in v and (want is None or k in want)]
            if want is None or "template" in want:
                where += [
                    f"template:{i}" for s in t.templates for i in tpl_hits.get(s, {}).get(w, [])
                ]
            if not where:
                ok = False
                break
            matched += [x for x in where if x not in matched]
        if ok:
            out.append({
                "name": t.name,
                "collection": t.collection,
                "category": t.metadata.category,
                "languages": list(t.metadata.languages),
                "license": t.metadata.license,
                "license_class": getattr(getattr(t.metadata, "licensing", None), "use", None),
                "matched": matched,
            })  # fmt: skip
    out.sort(key=lambda r: (0 if "name" in r["matched"] else 1, r["name"]))
    return out


# ----------------------------------------------------------------------------- template text

_TOKEN = re.compile(r"({{.*?}}|{%.*?%}|{#.*?#})", re.S)


def template_tokens(source: str) -> list[tuple[str, str]]:
    """Split Jinja source into ``(kind, text)`` pieces: ``text``, ``var``
    (``{{ … }}``), ``tag`` (``{% … %}``) or ``comment`` — for highlighting.

    >>> template_tokens("Q: {{ question }}?")
    [('text', 'Q: '), ('var', '{{ question }}'), ('text', '?')]
    """
    out = []
    for i, piece in enumerate(_TOKEN.split(source)):
        if not piece:
            continue
        if i % 2 == 0:
            out.append(("text", piece))
        else:
            out.append(({"{{": "var", "{%": "tag", "{#": "comment"}[piece[:2]], piece))
    return out
