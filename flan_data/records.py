"""Record rules: the declarative ``records:`` key of a task, applied by the source layer.

A task may drop records (``filter``), turn one record into several
(``explode``) and pick one dialog turn per record (``sample_turn``). The rules
are data in the collection files, evaluated in the same Jinja sandbox as field
expressions; there is no per-dataset Python. The source layer applies them
(:meth:`flan_data.sources.base.Source.read`), so counting, rendering and export
all see the records after the rules.

Order: explode, then sample_turn, then filter (the filter sees the new fields).

>>> from flan_data.specs import RecordRules
>>> rules = compile_rules(RecordRules(filter="label >= 0"))
>>> [eid for eid, _ in rules.apply([("a", {"label": 1}), ("b", {"label": -1})], task="snli", split="train")]
['a']
>>> rules = compile_rules(RecordRules(explode={"q": "questions"}))
>>> [(eid, r["q"], r["element_index"]) for eid, r in rules.apply([("d1", {"questions": ["x", "y"]})], task="quac", split="train")]
[('d1#0', 'x', 0), ('d1#1', 'y', 1)]

:func:`apply_rules` is the pure hook a batch reader calls on any iterable of
``(example id, record)`` pairs; it keeps no state between calls except the
counters in :attr:`CompiledRules.dropped`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .errors import CatalogError, RecordError
from .seeding import derive_seed
from .specs import RecordRules, SampleTurn

#: Name of the element index an ``explode`` rule adds to every record it yields.
ELEMENT_INDEX = "element_index"
PARITIES = ("any", "odd", "even")


def check_expression(source: str) -> str | None:
    """The syntax error in Jinja expression ``source``, or None when it parses."""
    import jinja2

    from .templates import make_environment

    try:
        make_environment().parse("{{ " + source + " }}")
    except jinja2.TemplateSyntaxError as e:
        return e.message or str(e)
    return None


def validate_rules(rules: RecordRules, file: str, path: str) -> None:
    """Raise :class:`CatalogError` when an expression does not parse or a value is out of range."""
    exprs = [("filter", rules.filter)] if rules.filter else []
    exprs += [(f"explode.{k}", v) for k, v in rules.explode.items()]
    if rules.sample_turn is not None:
        exprs.append(("sample_turn.field", rules.sample_turn.field))
    for key, src in exprs:
        err = check_expression(src)
        if err:
            raise CatalogError(file, f"{path}.{key}", f"invalid expression {src!r}: {err}")
    st = rules.sample_turn
    if st is not None:
        if st.parity not in PARITIES:
            raise CatalogError(
                file,
                f"{path}.sample_turn.parity",
                f"expected one of {', '.join(PARITIES)}, got {st.parity!r}",
            )
        if st.as_ in rules.explode or st.as_ == ELEMENT_INDEX:
            raise CatalogError(
                file, f"{path}.sample_turn.as", f"{st.as_!r} is already set by explode"
            )


class CompiledRules:
    """Record rules compiled once per source; :meth:`apply` streams records through them.

    ``dropped`` counts records removed, by rule (``filter``, ``sample_turn: no
    candidate turn``).
    """

    def __init__(self, rules: RecordRules, engine: Any = None):
        if engine is None:
            from .templates import TemplateEngine

            engine = TemplateEngine()
        self.rules = rules
        self._filter = engine.expression(rules.filter, "records.filter") if rules.filter else None
        self._explode = [
            (name, src, engine.expression(src, f"records.explode.{name}"))
            for name, src in rules.explode.items()
        ]
        st = rules.sample_turn
        self._turns = engine.expression(st.field, "records.sample_turn.field") if st else None
        # Plain-Python readers for the common simple expressions (a field, a
        # comparison, ``x | length``): a Jinja context per record costs ~40 us.
        # Whenever one raises, the Jinja expression decides (same result or error).
        self._fast = {
            "filter": engine.fast_expression(rules.filter) if rules.filter else None,
            "sample_turn.field": engine.fast_expression(st.field) if st else None,
            **{f"explode.{n}": engine.fast_expression(src) for n, src in rules.explode.items()},
        }
        self.dropped: dict[str, int] = {}

    def __bool__(self) -> bool:
        return bool(self.rules)

    def apply(
        self, items: Iterable[tuple[str, Mapping[str, Any]]], *, task: str, split: str
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield the records that survive the rules, in input order."""
        for eid, rec in items:
            for eid2, rec2 in self._explode_one(eid, rec, task, split):
                if self._turns is not None:
                    rec2 = self._sample_turn(eid2, rec2, task, split)
                    if rec2 is None:
                        self._drop("sample_turn: no candidate turn")
                        continue
                if self._filter is not None and not self._keep(eid2, rec2, task, split):
                    self._drop("filter")
                    continue
                yield eid2, rec2

    def _drop(self, why: str) -> None:
        self.dropped[why] = self.dropped.get(why, 0) + 1

    def _eval(self, fn: Any, rec: Mapping[str, Any], what: str, src: str, eid: str, task: str,
              split: str) -> Any:  # fmt: skip
        import jinja2

        fast = self._fast.get(what)
        if fast is not None:
            try:
                return fast(rec)
            except Exception:  # noqa: BLE001 - the Jinja expression below decides
                pass
        try:
            val = fn(**rec)
            if isinstance(val, jinja2.Undefined):
                bool(val)  # StrictUndefined raises here, naming the missing name
        except jinja2.UndefinedError as e:
            raise RecordError(task, eid, f"record rule {what} ({src}) cannot be evaluated: {e.message}",
                              rec.keys(), split=split, field=what, reason=f"record rule {what} failed") from None  # fmt: skip
        except (
            TypeError,
            ValueError,
            IndexError,
            KeyError,
            AttributeError,
            ZeroDivisionError,
        ) as e:
            raise RecordError(task, eid, f"record rule {what} ({src}) failed: {type(e).__name__}: {e}",
                              rec.keys(), split=split, field=what, reason=f"record rule {what} failed") from None  # fmt: skip
        return val

    def _keep(self, eid: str, rec: Mapping[str, Any], task: str, split: str) -> bool:
        val = self._eval(self._filter, rec, "filter", self.rules.filter, eid, task, split)
        try:
            return bool(val)
        except Exception as e:  # noqa: BLE001 - an Undefined or odd object
            raise RecordError(task, eid, f"record rule filter ({self.rules.filter}) gave {val!r}: {e}",
                              split=split, field="filter", reason="record rule filter failed") from None  # fmt: skip

    def _explode_one(
        self, eid: str, rec: Mapping[str, Any], task: str, split: str
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        if not self._explode:
            yield eid, rec if isinstance(rec, dict) else dict(rec)
            return
        lists = []
        for name, src, fn in self._explode:
            val = self._eval(fn, rec, f"explode.{name}", src, eid, task, split)
            if not isinstance(val, list | tuple):
                raise RecordError(task, eid, f"record rule explode.{name} ({src}) gave {type(val).__name__}, expected a list",
                                  rec.keys(), split=split, field=f"explode.{name}", reason="explode: not a list")  # fmt: skip
            lists.append((name, val))
        n = len(lists[0][1])
        for name, val in lists[1:]:
            if len(val) != n:
                raise RecordError(task, eid, f"record rule explode: {lists[0][0]} has {n} elements but {name} has {len(val)}",
                                  split=split, field=f"explode.{name}", reason="explode: lists of different lengths")  # fmt: skip
        for i in range(n):
            out = dict(rec)
            for name, val in lists:
                out[name] = val[i]
            out[ELEMENT_INDEX] = i
            yield f"{eid}#{i}", out

    def _sample_turn(
        self, eid: str, rec: dict[str, Any], task: str, split: str
    ) -> dict[str, Any] | None:
        st: SampleTurn = self.rules.sample_turn  # type: ignore[assignment]
        turns = self._eval(self._turns, rec, "sample_turn.field", st.field, eid, task, split)
        if not isinstance(turns, list | tuple):
            raise RecordError(task, eid, f"record rule sample_turn.field ({st.field}) gave {type(turns).__name__}, expected a list",
                              rec.keys(), split=split, field="sample_turn.field", reason="sample_turn: not a list")  # fmt: skip
        cands = candidate_turns(len(turns), st.parity, st.min_index)
        if not cands:
            return None
        k = derive_seed(st.seed, task, eid, "sample_turn") % len(cands)
        rec = dict(rec)
        rec[st.as_] = cands[k]
        return rec


def candidate_turns(n: int, parity: str = "any", min_index: int = 0) -> list[int]:
    """Indices in ``range(min_index, n)`` of the given parity.

    >>> candidate_turns(6, "odd", 2)
    [3, 5]
    """
    step = 1 if parity == "any" else 2
    start = min_index
    if parity != "any" and start % 2 != (1 if parity == "odd" else 0):
        start += 1
    return list(range(start, n, step))


def compile_rules(rules: RecordRules, engine: Any = None) -> CompiledRules:
    """Compile ``rules`` (expressions compiled once, in the sandbox)."""
    return CompiledRules(rules, engine)


def apply_rules(
    rules: CompiledRules | None,
    items: Iterable[tuple[str, Mapping[str, Any]]],
    *,
    task: str,
    split: str,
) -> Iterable[tuple[str, Mapping[str, Any]]]:
    """``items`` after the rules (``items`` itself when there are none)."""
    if not rules:
        return items
    return rules.apply(items, task=task, split=split)


def parse_rules(v: Any, raw: Any, path: str) -> RecordRules:
    """Build :class:`RecordRules` from a task's ``records:`` mapping (``v`` is the catalog validator)."""
    from .specs import frozen_mapping

    d = v.mapping(raw, path)
    v.keys(d, path, ("filter", "explode", "sample_turn"))
    flt = v.string(d.get("filter"), f"{path}.filter", optional=True)
    explode: dict[str, str] = {}
    if d.get("explode") is not None:
        em = v.mapping(d["explode"], f"{path}.explode")
        if not em:
            raise v.fail(f"{path}.explode", "expected at least one 'new field: list expression'")
        for k, e in em.items():
            if str(k) == ELEMENT_INDEX:
                raise v.fail(f"{path}.explode.{k}", f"{ELEMENT_INDEX!r} is set by explode itself")
            explode[str(k)] = v.string(e, f"{path}.explode.{k}")
    st = None
    if d.get("sample_turn") is not None:
        sp = f"{path}.sample_turn"
        sd = v.mapping(d["sample_turn"], sp)
        v.keys(sd, sp, ("field", "as", "parity", "min_index", "seed"), required=("field",))
        st = SampleTurn(
            field=v.string(sd["field"], f"{sp}.field"),
            as_=v.string(sd.get("as", "turn"), f"{sp}.as"),
            parity=v.string(sd.get("parity", "any"), f"{sp}.parity"),
            min_index=v.number(sd.get("min_index", 0), f"{sp}.min_index", integer=True),
            seed=v.number(sd.get("seed", 0), f"{sp}.seed", integer=True),
        )
    rules = RecordRules(filter=flt, explode=frozen_mapping(explode), sample_turn=st)
    if not rules:
        raise v.fail(path, "expected at least one of filter, explode, sample_turn")
    validate_rules(rules, v.file, path)
    return rules
