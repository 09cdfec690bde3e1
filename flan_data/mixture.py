"""Mixtures: weighted members × caps × rates → an exact plan (pure arithmetic).

A mixture is a list of weighted members (tasks, collections or other mixtures).
Inside a member, tasks are mixed example-proportionally with a cap:
``weight(task) = min(cap, size) × inversion_weight`` (optionally tempered,
``weight ** (1 / T)``); members share the total by their ``rate`` (or by their
natural size when no rate is given); each task's share is split equally among
its formats. Integer counts come from the largest-remainder method, so they
sum exactly to the requested total and never depend on dict order.

>>> from flan_data.specs import MixtureSpec, MixtureMember
>>> parts = [("a", "c1", ("zs_opt",), 1.0), ("b", "c1", ("zs_opt", "fs_opt"), 3.0)]
>>> largest_remainder([1.0, 1.5, 1.5], 7)
[2, 3, 2]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .catalog import Catalog
from .errors import FlanDataError, UnknownNameError
from .licenses import LicensePolicy, check_policy_leaves_tasks
from .specs import FORMATS, MixtureSpec, TaskSpec

DEFAULT_FORMATS = ("zs_opt", "zs_noopt", "fs_opt", "fs_noopt")


@dataclass(frozen=True)
class PlanEntry:
    """How many examples one task contributes in one format."""

    task: str
    collection: str
    format: str
    count: int
    size: int  # records available in the task's train split
    share: float  # intended fraction of the total


@dataclass(frozen=True)
class Plan:
    """The resolved mixture: exact counts per task × format, in a fixed order."""

    mixture: str
    source: str
    total: int
    entries: tuple[PlanEntry, ...]
    excluded: tuple[str, ...] = ()
    spec: Mapping[str, Any] = field(default_factory=dict)
    #: tasks a license policy removed before planning, with the reason
    removed: Mapping[str, str] = field(default_factory=dict)
    policy: Mapping[str, Any] | None = None

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for e in self.entries:
            if e.count:
                out.setdefault(e.task, {})[e.format] = e.count
        return out

    def by_collection(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.entries:
            out[e.collection] = out.get(e.collection, 0) + e.count
        return out

    def tasks(self) -> list[str]:
        return list(dict.fromkeys(e.task for e in self.entries if e.count))

    def to_json(self) -> dict[str, Any]:
        coll = self.by_collection()
        per_task: dict[str, int] = {}
        for e in self.entries:
            per_task[e.task] = per_task.get(e.task, 0) + e.count
        return {
            "mixture": self.mixture,
            "source": self.source,
            "total": self.total,
            "entries": [
                {
                    "task": e.task,
                    "collection": e.collection,
                    "format": e.format,
                    "count": e.count,
                    "size": e.size,
                    "share": round(e.count / self.total, 8) if self.total else 0.0,
                }  # fmt: skip
                for e in self.entries
            ],
            "tasks": {
                t: {"count": n, "share": round(n / self.total, 8) if self.total else 0.0}
                for t, n in per_task.items()
            },
            "collections": {
                c: {"count": n, "share": round(n / self.total, 8) if self.total else 0.0}
                for c, n in coll.items()
            },
            "excluded": list(self.excluded),
        } | (
            {"license_policy": dict(self.policy), "removed": dict(self.removed)}
            if self.policy is not None
            else {}
        )


def largest_remainder(weights: Sequence[float], total: int) -> list[int]:
    """Integers proportional to ``weights`` that sum to ``total`` exactly.

    Ties in the remainders go to the earlier index, so the result depends only
    on the order of ``weights``.
    """
    if total < 0:
        raise FlanDataError(f"total must be >= 0, got {total}")
    s = float(sum(weights))
    if s <= 0 or total == 0:
        return [0] * len(weights)
    quotas = [w * total / s for w in weights]
    base = [math.floor(q) for q in quotas]
    left = total - sum(base)
    order = sorted(range(len(weights)), key=lambda i: (-(quotas[i] - base[i]), i))
    for i in order[:left]:
        base[i] += 1
    return base


# ----------------------------------------------------------------------------- exclusion


def parse_excludes(catalog: Catalog, values: Iterable[str]) -> list[str]:
    """Validate ``--exclude`` values: a task, a collection, ``category:TEXT`` or ``held_out``."""
    out = []
    for v in values:
        v = catalog.task_aliases.get(v, v)
        if v == "held_out" or v.startswith("category:") or v in catalog.tasks:
            out.append(v)
            continue
        try:
            out.append(catalog.collection(v).name)
        except UnknownNameError:
            raise UnknownNameError(
                "exclusion", v, [*catalog.tasks, *catalog.collections, "held_out"],
                hint="expected a task, a collection, category:TEXT or held_out",
            ) from None  # fmt: skip
    return out


def is_excluded(task: TaskSpec, excludes: Sequence[str]) -> bool:
    for x in excludes:
        if x == task.name or x == task.collection:
            return True
        if x == "held_out" and task.metadata.held_out:
            return True
        if x.startswith("category:") and x[9:].lower() in (task.metadata.category or "").lower():
            return True
    return False


# ----------------------------------------------------------------------------- planning


@dataclass
class _Part:
    task: TaskSpec
    formats: tuple[str, ...]
    weight: float  # relative weight inside its member group


def _member_parts(catalog: Catalog, mixture: MixtureSpec, sizes: Mapping[str, int], excludes: Sequence[str],
                  excluded: list[str], stack: tuple[str, ...], policy: LicensePolicy | None = None,
                  removed: dict[str, str] | None = None) -> list[tuple[float | None, list[_Part]]]:  # fmt: skip
    """Each member as (rate or None, its task parts with in-group weights)."""
    if mixture.name in stack:
        raise FlanDataError(f"mixture {mixture.name!r} includes itself (via {' -> '.join(stack)})")
    groups: list[tuple[float | None, list[_Part]]] = []
    for m in mixture.members:
        if m.kind == "mixture":
            sub = catalog.mixture(m.name)
            inner = _resolve_weights(
                catalog, sub, sizes, excludes, excluded, (*stack, mixture.name), policy, removed
            )
            parts = [_Part(t, f, w) for t, f, w in inner]
            groups.append((m.rate, parts))
            continue
        tasks = [catalog.task(m.name)] if m.kind == "task" else list(catalog.tasks_in(m.name))
        parts = []
        for t in tasks:
            if mixture.source == "sample" and t.sample is None:
                continue
            if (
                t.metadata.exclude_from_training
                or is_excluded(t, excludes)
                or t.name in m.exclude
                or is_excluded(t, m.exclude)
            ):
                excluded.append(t.name)
                continue
            why = policy.reason(t) if policy is not None else None
            if why is not None:
                if removed is not None:
                    removed[t.name] = why
                continue
            if t.name not in sizes:
                raise FlanDataError(f"no size known for task {t.name!r} (count its records first)")
            size = sizes[t.name]
            cap = m.cap if m.cap is not None else size
            w = float(min(cap, size))
            if t.metadata.inversion_of is not None and m.inversion_weight is not None:
                w *= m.inversion_weight
            if w > 0 and mixture.temperature != 1.0:
                w = w ** (1.0 / mixture.temperature)
            fmts = m.formats or DEFAULT_FORMATS
            parts.append(_Part(t, tuple(f for f in fmts if f in FORMATS), w))
        groups.append((m.rate, parts))
    return groups


def _resolve_weights(catalog: Catalog, mixture: MixtureSpec, sizes: Mapping[str, int], excludes: Sequence[str],
                     excluded: list[str], stack: tuple[str, ...] = (), policy: LicensePolicy | None = None,
                     removed: dict[str, str] | None = None) -> list[tuple[TaskSpec, tuple[str, ...], float]]:  # fmt: skip
    """Flatten a mixture into (task, formats, absolute weight) with weights summing to
    the mixture's natural size (so nested mixtures compose)."""
    groups = _member_parts(catalog, mixture, sizes, excludes, excluded, stack, policy, removed)
    natural = [sum(p.weight for p in parts) for _, parts in groups]
    total_natural = sum(natural)
    rated = [(r if r is not None else None) for r, _ in groups]
    if any(r is not None for r in rated):
        # Members with a rate share the whole by rate; members without one get
        # a rate equal to their natural fraction.
        rates = [
            r if r is not None else (n / total_natural if total_natural else 0.0)
            for r, n in zip(rated, natural)
        ]
        rates = [
            r if n > 0 else 0.0 for r, n in zip(rates, natural)
        ]  # an empty member gets nothing
    else:
        rates = natural
    rs = sum(rates)
    out = []
    for rate, n, (_, parts) in zip(rates, natural, groups):
        if n <= 0 or rs <= 0:
            continue
        for p in parts:
            if p.weight > 0:
                out.append((p.task, p.formats, total_natural * (rate / rs) * (p.weight / n)))
    return out


def plan_mixture(
    catalog: Catalog,
    mixture: str | MixtureSpec,
    sizes: Mapping[str, int],
    *,
    total: int | None = None,
    exclude: Sequence[str] = (),
    license_policy: LicensePolicy | None = None,
) -> Plan:
    """Exact counts per task × format for ``mixture``.

    ``sizes`` maps task names to their number of train records. ``total``
    defaults to the mixture's ``total`` or else its natural size (the sum of the
    capped, inversion-weighted task sizes). ``license_policy`` removes the tasks
    it rejects before any weight is computed (``Plan.removed`` says why), so the
    member rates, caps and format splits hold over the tasks that remain.
    """
    spec = catalog.mixture(mixture) if isinstance(mixture, str) else mixture
    excludes = parse_excludes(catalog, exclude)
    excluded: list[str] = []
    policy = license_policy if license_policy is not None and license_policy.active else None
    removed: dict[str, str] = {}
    flat = _resolve_weights(catalog, spec, sizes, excludes, excluded, (), policy, removed)
    if not flat and removed:
        check_policy_leaves_tasks(removed, 0, spec.name)
    if not flat:
        raise FlanDataError(
            f"mixture {spec.name!r} selects no examples: every task is excluded, empty or capped to zero"
        )
    natural = sum(w for _, _, w in flat)
    n_total = (
        total
        if total is not None
        else (spec.total if spec.total is not None else int(round(natural)))
    )
    if n_total <= 0:
        raise FlanDataError(f"mixture {spec.name!r}: total must be > 0, got {n_total}")
    cells = [(t, f, w / len(fmts)) for t, fmts, w in flat for f in fmts]
    counts = largest_remainder([w for _, _, w in cells], n_total)
    entries = tuple(
        PlanEntry(
            task=t.name,
            collection=t.collection,
            format=f,
            count=c,
            size=sizes[t.name],
            share=w / natural,
        )
        for (t, f, w), c in zip(cells, counts)
    )
    return Plan(
        mixture=spec.name,
        source=spec.source,
        total=n_total,
        entries=entries,
        excluded=tuple(dict.fromkeys(excluded)),
        spec=describe_mixture(spec),
        removed=removed,
        policy=policy.to_json() if policy is not None else None,
    )


def metadata_sizes(tasks: Iterable[TaskSpec]) -> dict[str, int]:
    """Sizes from each task's ``metadata.num_examples`` (published counts), for
    planning without reading any source."""
    sizes, missing = {}, []
    for t in tasks:
        n = t.metadata.extra.get("num_examples")
        if isinstance(n, int) and not isinstance(n, bool) and n >= 0:
            sizes[t.name] = n
        else:
            missing.append(t.name)
    if missing:
        raise FlanDataError(f"{len(missing)} task(s) have no metadata.num_examples (e.g. {', '.join(missing[:5])}); "
                            "plan with --sizes count instead")  # fmt: skip
    return sizes


def describe_mixture(spec: MixtureSpec) -> dict[str, Any]:
    """The mixture spec as plain data (for manifests)."""
    return {
        "name": spec.name,
        "source": spec.source,
        "temperature": spec.temperature,
        "total": spec.total,
        "members": [
            {
                k: (list(v) if isinstance(v, tuple) else v)
                for k, v in vars(m).items()
                if v not in (None, ())
            }
            for m in spec.members
        ],
    }
