"""Lint templates and tasks: static checks, then real renders on sample rows.

A problem is an ``error`` (``flan lint`` exits non-zero) or a ``warning``.

Static checks, for every task × template: the template compiles; every variable
it reads is a canonical field of the task (or one the renderer supplies); a
task with options has no zero-shot/CoT template that never shows them.
Dynamic checks, for tasks whose records can be read (bundled sample data, or a
``--source-dir``): each template renders on a few rows in each of its formats to
non-empty input and target; ``*_noopt`` never shows the options; ``*_opt``
shows them.

>>> from flan_data import Catalog
>>> [p for p in lint(Catalog.load(), rows=1) if p.level == "error"]
[]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .catalog import Catalog
from .errors import FlanDataError, TemplateLimitError
from .options import PLAIN, format_options
from .render import RenderConfig, Renderer, TaskRenderer, build_pool, is_fewshot_format
from .specs import TaskSpec

RENDERER_VARIABLES = frozenset({"options_block", "options", "answer_text", "exemplars"})


@dataclass(frozen=True)
class Problem:
    level: str  # "error" | "warning"
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.where}: {self.message}"


def lint(
    catalog: Catalog,
    *,
    tasks: Iterable[str] | None = None,
    template_files: Iterable[str | Path] | None = None,
    rows: int = 3,
    seed: int = 0,
    source_dirs: Mapping[str, str | Path] | None = None,
) -> list[Problem]:
    """All problems found. ``tasks``/``template_files`` narrow what is checked."""
    problems: list[Problem] = []
    renderer = Renderer(catalog, RenderConfig())
    files = {str(Path(f).resolve()) for f in template_files} if template_files is not None else None
    wanted = set(tasks) if tasks is not None else None
    for name in sorted(wanted or ()):
        catalog.task(name)  # an unknown name is an error with suggestions, not "0 errors"

    # Every template compiles, used or not.
    used_sets = {s for t in catalog.tasks.values() for s in t.templates}
    for spec in catalog.templates.values():
        if files is not None and str(Path(spec.file).resolve()) not in files:
            continue
        try:
            renderer.engine.compile(spec)
        except FlanDataError as e:
            problems.append(Problem("error", f"{spec.file}: {spec.id}", str(e)))
    for name, ids in catalog.template_sets.items():
        f = catalog.templates[ids[0]].file
        if name not in used_sets and (files is None or str(Path(f).resolve()) in files):
            problems.append(
                Problem("warning", f"{f}: set {name}", "no task uses this template set")
            )
    if any(p.level == "error" for p in problems):
        return problems

    for task in catalog.tasks.values():
        if wanted is not None and task.name not in wanted:
            continue
        if (
            files is not None
            and not any(
                str(Path(catalog.templates[i].file).resolve()) in files
                for s in task.templates
                for i in catalog.template_sets[s]
            )
            and str(Path(task.file).resolve()) not in files
        ):
            continue
        problems += lint_task(renderer, task, rows=rows, seed=seed, source_dirs=source_dirs)
    return problems


def lint_task(
    renderer: Renderer,
    task: TaskSpec,
    *,
    rows: int = 3,
    seed: int = 0,
    source_dirs: Mapping[str, str | Path] | None = None,
) -> list[Problem]:
    """Problems of one task (static, then rendering when records are readable)."""
    out: list[Problem] = []
    where = f"{task.file}: task {task.name}"
    try:
        tr = renderer.task_renderer(task)
    except FlanDataError as e:
        return [Problem("error", where, str(e))]
    fields = set(task.fields) | RENDERER_VARIABLES
    for ct in tr.templates:
        missing = ct.variables - fields
        if missing:
            out.append(
                Problem(
                    "error",
                    f"{where}, template {ct.spec.id}",
                    f"uses {', '.join(sorted(missing))}, which the task does not provide (fields: {', '.join(sorted(task.fields))})",
                )
            )
        if task.has_options and ct.spec.kind in ("zero_shot", "cot") and not ct.uses_options:
            out.append(
                Problem(
                    "error",
                    f"{where}, template {ct.spec.id}",
                    "the task has options but the template never shows {{ options_block }}",
                )
            )
        if ct.spec.kind == "few_shot" and "exemplars" not in ct.variables:
            out.append(
                Problem(
                    "error",
                    f"{where}, template {ct.spec.id}",
                    "a few_shot template must use the `exemplars` list",
                )
            )
    if task.metadata.inversion_of is None and all(
        ct.spec.kind == "inversion" for ct in tr.templates
    ):
        out.append(
            Problem("warning", where, "only inversion templates but no metadata.inversion_of")
        )
    if out:
        return out
    readable = task.sample is not None or (
        source_dirs and (task.name in source_dirs or task.collection in source_dirs)
    )
    if not readable:
        return out
    out += _render_checks(tr, rows=rows, seed=seed, source_dirs=source_dirs)
    return out


def _render_checks(tr: TaskRenderer, *, rows: int, seed: int, source_dirs) -> list[Problem]:
    from .sources import open_task_source

    task = tr.task
    where = f"{task.file}: task {task.name}"
    try:
        src = open_task_source(tr.catalog, task, "auto", source_dirs)
        splits = src.splits()
        split = "validation" if "validation" in splits else splits[0]
        recs = []
        for i, r in enumerate(src.read(split)):
            if i >= rows:
                break
            recs.append(r)
        pool = build_pool(tr, src.read("train"), limit=200) if "train" in splits else []
    except FlanDataError as e:
        return [Problem("error", where, f"cannot read records: {e}")]
    out: list[Problem] = []
    failed: set[str] = set()  # over a limit: a hostile template is not rendered again
    for fmt in tr.formats():
        for ct in tr.eligible(fmt):
            for eid, rec in recs:
                if ct.spec.id in failed:
                    break
                w = f"{where}, template {ct.spec.id}, format {fmt}, record {eid}"
                try:
                    ex = tr.render(
                        eid,
                        rec,
                        split=split,
                        fmt=fmt,
                        seed=seed,
                        pool=pool or None,
                        template_id=ct.spec.id,
                    )
                except FlanDataError as e:
                    out.append(Problem("error", w, str(e)))
                    if isinstance(e, TemplateLimitError):
                        failed.add(ct.spec.id)
                    break
                if not ex.inputs.strip() or not ex.targets.strip():
                    out.append(
                        Problem(
                            "error",
                            w,
                            "renders an empty " + ("input" if not ex.inputs.strip() else "target"),
                        )
                    )
                if (
                    is_fewshot_format(fmt)
                    and ct.spec.kind != "few_shot"
                    and pool
                    and not ex.exemplar_ids
                    and not task.exemplar_field
                ):
                    out.append(Problem("warning", w, "no exemplar fits the length budget"))
    out += _options_checks(tr, recs, split, seed, failed)
    return out


def _options_checks(
    tr: TaskRenderer, recs, split: str, seed: int, failed=frozenset()
) -> list[Problem]:
    """One source text must give both variants: the block in *_opt, none in *_noopt."""
    out: list[Problem] = []
    plain = Renderer(
        tr.catalog, RenderConfig(option_style="plain"), engine=tr.engine
    ).task_renderer(tr.task)
    for ct in plain.eligible("zs_opt"):
        if not ct.uses_options or ct.spec.id in failed:
            continue
        for eid, rec in recs:
            w = f"{tr.task.file}: task {tr.task.name}, template {ct.spec.id}, record {eid}"
            try:
                o = plain.render(
                    eid, rec, split=split, fmt="zs_opt", seed=seed, template_id=ct.spec.id
                )
                n = plain.render(
                    eid, rec, split=split, fmt="zs_noopt", seed=seed, template_id=ct.spec.id
                )
            except FlanDataError:
                continue  # already reported by the render checks
            if not o.options:
                continue
            block = format_options(o.options, PLAIN)[0].strip()
            if block not in o.inputs:
                out.append(Problem("error", w, "the zs_opt format does not show the options block"))
            if block in n.inputs:
                out.append(Problem("error", w, "the zs_noopt format still shows the options block"))
    return out
