"""The data behind each page of ``flan browse`` (pure functions, no HTTP).

Each function takes the catalog (or an export folder) and the page's query
parameters and returns the plain dict its HTML template renders. Bad
parameters raise :class:`~flan_data.errors.FlanDataError` with a message the
page shows as is.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from ..catalog import Catalog
from ..errors import FlanDataError, UnknownNameError
from ..fewshot import DEFAULT_BUDGET, DEFAULT_SHOTS
from ..render import OPTION_STYLES, RenderConfig
from ..specs import FORMATS, TaskSpec
from . import charts
from .query import search_tasks, task_info, template_tokens

PAGE_SIZE = 100


def _int(params: dict[str, str], key: str, default: int, lo: int, hi: int) -> int:
    raw = params.get(key, "")
    if raw == "":
        return default
    try:
        v = int(raw)
    except ValueError:
        raise FlanDataError(f"parameter {key!r} must be an integer, got {raw!r}") from None
    if not lo <= v <= hi:
        raise FlanDataError(f"parameter {key!r} must be between {lo} and {hi}, got {v}")
    return v


def _size(t: TaskSpec) -> int | None:
    n = t.metadata.extra.get("num_examples")
    return n if isinstance(n, int) and not isinstance(n, bool) else None


# ----------------------------------------------------------------------------- catalog


def catalog_page(cat: Catalog, params: dict[str, str]) -> dict[str, Any]:
    """Tasks filtered by ``q`` (search), ``collection`` and ``sample``; ``page`` of 100."""
    q = params.get("q", "").strip()
    coll = params.get("collection", "")
    if coll:
        coll = cat.collection(coll).name
    sample_only = params.get("sample") == "1"
    if q:
        hits = {h["name"]: h["matched"] for h in search_tasks(cat, q)}
        tasks = [cat.tasks[n] for n in hits]
    else:
        hits = {}
        tasks = list(cat.tasks.values())
    if sample_only:
        tasks = [t for t in tasks if t.sample is not None]
    lic = params.get("license_class", "")
    lang = params.get("language", "").strip()
    if lic or lang:
        keep = {t.name for t in cat.search(license_class=lic or None, language=lang or None)}
        tasks = [t for t in tasks if t.name in keep]
    counts = Counter(t.collection for t in tasks)
    if coll:
        tasks = [t for t in tasks if t.collection == coll]
    pages = max(1, -(-len(tasks) // PAGE_SIZE))
    page = _int(params, "page", 1, 1, pages)
    shown = tasks[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    rows = [
        {
            "name": t.name,
            "collection": t.collection,
            "category": t.metadata.category or "",
            "languages": ", ".join(t.metadata.languages),
            "license": t.metadata.license or "",
            "license_class": getattr(getattr(t.metadata, "licensing", None), "use", ""),
            "source": t.source.describe(),
            "size": _size(t),
            "sample": t.sample is not None,
            "templates": len(cat.templates_for(t)),
            "matched": [m for m in hits.get(t.name, []) if not m.startswith("template:")]
            + (
                ["template"] if any(m.startswith("template:") for m in hits.get(t.name, [])) else []
            ),
        }
        for t in shown
    ]
    totals = Counter(t.collection for t in cat.tasks.values())
    return {
        "q": q,
        "collection": coll,
        "sample_only": sample_only,
        "license_class": lic,
        "license_classes": _license_classes(),
        "language": lang,
        "base_query": _query(
            base := {
                "q": q,
                "sample": "1" if sample_only else "",
                "license_class": lic,
                "language": lang,
            }
        ),
        "query": _query({**base, "collection": coll}),
        "rows": rows,
        "matched": len(tasks),
        "page": page,
        "pages": pages,
        "collections": [
            {
                "name": c,
                "total": totals.get(c, 0),
                "matched": counts.get(c, 0),
                "description": cat.collections[c].description,
            }
            for c in cat.collections
        ],  # fmt: skip
        "total": len(cat.tasks),
    }


# ----------------------------------------------------------------------------- task


def _license_classes() -> tuple[str, ...]:
    try:
        from ..specs import LICENSE_CLASSES
    except ImportError:  # a catalog without license facts
        return ()
    return tuple(LICENSE_CLASSES)


def _query(params: dict[str, str]) -> str:
    """A query string of the non-empty ``params`` (for links that keep the filters)."""
    from urllib.parse import urlencode

    return urlencode({k: v for k, v in params.items() if v})


def preview_args(
    cat: Catalog, task: TaskSpec, params: dict[str, str], formats: list[str]
) -> dict[str, Any]:
    """Validated preview controls: format, seed, template (or seeded choice), row, split,
    shots, budget and option style (defaults: those of ``flan render``/``flan export``)."""
    fmt = params.get("format") or formats[0]
    if fmt not in FORMATS:
        raise UnknownNameError("format", fmt, FORMATS)
    tpl = params.get("template") or None
    ids = [t.id for t in cat.templates_for(task)]
    if tpl is not None and tpl not in ids:
        raise UnknownNameError("template", tpl, ids, hint=f"templates of task {task.name}")
    split = params.get("split") or "validation"
    if split not in task.source.canonical_splits() and split not in ("train", "validation", "test"):
        raise UnknownNameError("split", split, task.source.canonical_splits())
    style = params.get("option_style") or "random"
    if style not in OPTION_STYLES:
        raise UnknownNameError("option style", style, OPTION_STYLES)
    return {
        "format": fmt,
        "seed": _int(params, "seed", 0, -(2**63), 2**63 - 1),
        "template": tpl,
        "row": _int(params, "row", 0, 0, 999),
        "split": split,
        "shots": _int(params, "shots", DEFAULT_SHOTS, 0, 64),
        "budget": _int(params, "budget", DEFAULT_BUDGET, 1, 1_000_000),
        "option_style": style,
    }


def render_config(args: dict[str, Any]) -> RenderConfig:
    """The :class:`RenderConfig` of validated preview controls (export's defaults otherwise)."""
    return RenderConfig(
        shots=args["shots"], budget=args["budget"], option_style=args["option_style"]
    )


def task_page(cat: Catalog, name: str, params: dict[str, str]) -> dict[str, Any]:
    """A task's facts, its templates as highlighted tokens and the preview controls."""
    t = cat.task(name)
    info = task_info(cat, t)
    for tpl in info["templates"]:
        tpl["input_tokens"] = template_tokens(tpl["input"])
        tpl["target_tokens"] = template_tokens(tpl["target"])
    args = preview_args(cat, t, params, info["formats"])
    f = Path(t.file)
    file_rel = f.relative_to(cat.root).as_posix() if f.is_relative_to(cat.root) else str(f)
    return {"info": info, "args": args, "formats": info["formats"], "file_rel": file_rel,
            "option_styles": OPTION_STYLES,
            "splits": list(t.source.canonical_splits())}  # fmt: skip


# ----------------------------------------------------------------------------- mixture


def _caps(cat: Catalog, mixture: str, seen: tuple[str, ...] = ()) -> dict[str, int]:
    """The cap that applies to each task of a mixture (first member that names it)."""
    spec = cat.mixture(mixture)
    out: dict[str, int] = {}
    for m in spec.members:
        if m.kind == "mixture" and m.name not in seen:
            for k, v in _caps(cat, m.name, (*seen, mixture)).items():
                out.setdefault(k, v)
        elif m.cap is not None:
            names = [m.name] if m.kind == "task" else [x.name for x in cat.tasks_in(m.name)]
            for n in names:
                out.setdefault(n, m.cap)
    return out


def mixture_page(cat: Catalog, name: str | None, params: dict[str, str]) -> dict[str, Any]:
    """The plan of mixture ``name`` with ``total``, ``exclude`` (comma-separated) and
    ``sizes`` (``count`` the sources or use ``metadata`` counts)."""
    mixtures = [{"name": m.name, "description": m.description, "source": m.source}
                for m in cat.mixtures.values()]  # fmt: skip
    if name is None:
        return {"mixtures": mixtures, "plan": None}
    spec = cat.mixture(name)
    total = _int(params, "total", 0, 0, 10**12) or None
    exclude = [x.strip() for x in params.get("exclude", "").split(",") if x.strip()]
    sizes_from = params.get("sizes") or ("count" if spec.source == "sample" else "metadata")
    if sizes_from not in ("count", "metadata"):
        raise FlanDataError(f"parameter 'sizes' must be count or metadata, got {sizes_from!r}")
    plan = _plan(cat, name, total, tuple(exclude), sizes_from)
    data = plan.to_json()
    caps = _caps(cat, name)
    per_task: dict[str, dict[str, Any]] = {}
    for e in data["entries"]:
        d = per_task.setdefault(e["task"], {"task": e["task"], "collection": e["collection"],
                                            "size": e["size"], "count": 0, "formats": {}})  # fmt: skip
        d["count"] += e["count"]
        d["formats"][e["format"]] = e["count"]
    tasks = sorted(per_task.values(), key=lambda d: (-d["count"], d["task"]))
    capped = [
        {"task": d["task"], "size": d["size"], "cap": caps[d["task"]]}
        for d in tasks
        if d["task"] in caps and d["size"] > caps[d["task"]]
    ]
    by_format: Counter[str] = Counter()
    by_cf: dict[str, Counter[str]] = {}
    for e in data["entries"]:
        by_format[e["format"]] += e["count"]
        by_cf.setdefault(e["collection"], Counter())[e["format"]] += e["count"]
    plan_formats = [f for f in FORMATS if by_format.get(f)]
    top_n = _int(params, "top", 25, 1, 100_000)
    return {
        "mixtures": mixtures,
        "name": name,
        "spec": spec,
        "plan": data,
        "total_param": total or "",
        "exclude": ", ".join(exclude),
        "sizes": sizes_from,
        "tasks": tasks[:top_n],
        "n_tasks": sum(1 for d in tasks if d["count"]),
        "top": top_n,
        "capped": capped,
        "plan_formats": plan_formats,
        "by_collection_format": {c: dict(v) for c, v in by_cf.items()},
        "chart_collections": charts.bars(
            [(c, d["count"]) for c, d in data["collections"].items()],
            title="examples per collection",
        ),
        "chart_formats": charts.bars(
            [(f, by_format[f]) for f in plan_formats], title="examples per format"
        ),
        "chart_tasks": charts.bars(
            [(d["task"], d["count"]) for d in tasks[:15]], label_width=260, title="top tasks"
        ),  # fmt: skip
    }


_PLANS: dict[tuple, tuple[Catalog, Any]] = {}


def _plan_uncached(
    cat: Catalog, name: str, total: int | None, exclude: tuple[str, ...], sizes_from: str
):
    from ..export import _source_choice, candidate_tasks, count_sizes
    from ..mixture import metadata_sizes, parse_excludes, plan_mixture

    spec = cat.mixture(name)
    excludes = parse_excludes(cat, exclude)
    tasks = candidate_tasks(cat, spec, excludes)
    if sizes_from == "metadata":
        sizes = metadata_sizes(tasks)
    else:
        try:
            from ..export.local import _STATE

            _STATE.update(catalog=cat)
        except ImportError:  # pragma: no cover - the export internals moved
            pass
        sizes = count_sizes(cat, tasks, _source_choice(spec, None), {})
    return plan_mixture(cat, spec, sizes, total=total, exclude=excludes)


def _plan(cat: Catalog, name: str, total: int | None, exclude: tuple[str, ...], sizes_from: str):
    """The plan, cached per catalog and arguments (counting sample sources takes a moment)."""
    key = (id(cat), name, total, exclude, sizes_from)
    hit = _PLANS.get(key)
    if hit is not None and hit[0] is cat:
        return hit[1]
    plan = _plan_uncached(cat, name, total, exclude, sizes_from)
    if len(_PLANS) > 64:
        _PLANS.clear()
    _PLANS[key] = (cat, plan)
    return plan


# ----------------------------------------------------------------------------- export


class ExportView:
    """One export folder: manifest, verify status, stats and row paging (cached)."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self._verify: list[str] | None = None
        self._stats: dict[str, Any] | None = None

    def manifest(self) -> dict[str, Any]:
        from ..export.verify import load_manifest

        return load_manifest(self.out, require_completed=False)

    def verify(self, again: bool = False) -> list[str]:
        from ..export.verify import verify

        if self._verify is None or again:
            self._verify = verify(self.out)
        return self._verify

    def stats(self) -> dict[str, Any]:
        from ..export.verify import stats

        if self._stats is None:
            self._stats = stats(self.out)
        return self._stats

    def shard_names(self) -> list[str]:
        return [s["file"] for s in self.manifest()["shards"]]

    def shard_path(self, shard: str) -> Path:
        """The file of a shard the manifest lists, inside the export folder (else refused)."""
        if shard not in self.shard_names():
            raise PathRefused(f"shard {shard!r} is not listed in {self.out.name}/manifest.json")
        path = (self.out / shard).resolve()
        if not path.is_relative_to(self.out.resolve()):  # a manifest edited to point outside
            raise PathRefused(f"shard {shard!r} is outside the export folder")
        return path

    def rows(self, shard: str, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """Rows ``offset..offset+limit`` of a shard the manifest lists (any other name is refused)."""
        from ..export.writer import read_table

        t = read_table(self.shard_path(shard))
        part = t.slice(offset, limit).to_pylist()
        for i, r in enumerate(part):
            r["_where"] = f"{shard} #{offset + i}"
        return part, t.num_rows

    def matching(
        self, task: str, fmt: str, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """Rows of ``task`` (and ``fmt``, when given) across all shards, in shard order."""
        import pyarrow.compute as pc

        from ..export.writer import read_table

        out: list[dict[str, Any]] = []
        total = 0
        for shard in self.shard_names():
            t = read_table(self.shard_path(shard))
            mask = pc.equal(t["task"], task) if task else None
            if fmt:
                m2 = pc.equal(t["format"], fmt)
                mask = m2 if mask is None else pc.and_(mask, m2)
            idx = [i for i, keep in enumerate(mask.to_pylist()) if keep] if mask is not None else []
            lo, hi = max(0, offset - total), max(0, offset + limit - total)
            for i in idx[lo:hi]:
                r = t.slice(i, 1).to_pylist()[0]
                r["_where"] = f"{shard} #{i}"
                out.append(r)
            total += len(idx)
        return out, total

    def page(self, params: dict[str, str]) -> dict[str, Any]:
        m = self.manifest()
        problems = self.verify(again=params.get("verify") == "1")
        names = self.shard_names()
        shard = params.get("shard") or (names[0] if names else "")
        task, fmt = params.get("task", ""), params.get("format", "")
        counts = m.get("counts", {})
        if task and task not in counts:
            raise UnknownNameError("task in this export", task, counts)
        if fmt and fmt not in FORMATS:
            raise UnknownNameError("format", fmt, FORMATS)
        per_page = 20
        row_error = None
        try:
            if task or fmt:
                rows, n = self.matching(task, fmt, 0, 0)
            else:
                rows, n = self.rows(shard, 0, 0) if shard else ([], 0)
        except PathRefused as e:
            if params.get("shard"):
                raise
            rows, n, row_error = [], 0, str(e)  # the manifest itself points outside
        except Exception as e:  # noqa: BLE001 - a damaged shard: say so, show the rest
            rows, n, row_error = [], 0, f"{shard}: cannot read rows: {type(e).__name__}: {e}"
        pages = max(1, -(-n // per_page))
        page = _int(params, "page", 1, 1, pages)
        if n and (task or fmt):
            rows, _ = self.matching(task, fmt, (page - 1) * per_page, per_page)
        elif n:
            rows, _ = self.rows(shard, (page - 1) * per_page, per_page)
        st = self.stats() if not problems else None
        fmts = [f for f in FORMATS if any(f in d for d in counts.values())]
        return {
            "out": str(self.out),
            "manifest": {k: v for k, v in m.items() if k not in ("shards", "counts", "plan")},
            "shards": m.get("shards", []),
            "problems": problems,
            "counts": counts,
            "count_formats": fmts,
            "shard": shard,
            "task": task,
            "format": fmt,
            "matches": n,
            "page_query": _query(
                {"task": task, "format": fmt} if task or fmt else {"shard": shard}
            ),
            "row_error": row_error,
            "rows": rows,
            "first_row": (page - 1) * per_page,
            "page": page,
            "pages": pages,
            "stats": {k: v for k, v in st.items() if k != "_raw_lengths"} if st else None,
            "histograms": [
                (k, charts.histogram(st["_raw_lengths"][k], label=k.replace("_", " ")))
                for k in ("inputs_tokens", "targets_tokens")
            ]
            if st
            else [],
        }


class PathRefused(FlanDataError):
    """A file parameter pointed outside what the app may read."""
