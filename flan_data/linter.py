"""Lint templates and tasks: static checks, then real renders on sample rows.

A problem is an ``error`` (``flan lint`` exits non-zero) or a ``warning``.

Static checks, for every task × template: the template compiles; every variable
it reads is a canonical field of the task (or one the renderer supplies); a
task with options has no zero-shot/CoT template that never shows them.
Dynamic checks, for tasks whose records can be read (bundled sample data, or a
``--source-dir``): each template renders on a few rows in each of its formats to
non-empty input and target; ``*_noopt`` never shows the options; ``*_opt``
shows them.

Text rules (:data:`TEXT_RULES`, see :mod:`flan_data.textcheck`), errors tagged
with the rule name: on the readable rows above, and on synthetic rows for one
task of each distinct template-set list (so every shipped template is
checked, sample data or not), every template in every format must render with
no stacked cue, no doubled punctuation after an option, no choice wording in
``*_noopt``, and CoT targets that end in the answer text; and every
template × few-shot style pair must compose without a stacked cue.
:func:`rule_counts` counts problems per rule (``flan lint`` prints them).

>>> from flan_data import Catalog
>>> [p for p in lint(Catalog.load(), rows=1) if p.level == "error"]
[]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .catalog import Catalog
from .compose import compose_fewshot
from .errors import FlanDataError, RecordError, TemplateLimitError
from .options import PLAIN, format_options
from .render import (
    Exemplar,
    RenderConfig,
    Renderer,
    TaskRenderer,
    build_pool,
    is_fewshot_format,
)
from .specs import TaskSpec
from .textcheck import PATTERNS, row_findings, stacked_cues

#: The text rules ``flan lint`` applies (names as in :data:`flan_data.textcheck.PATTERNS`).
TEXT_RULES = PATTERNS

RENDERER_VARIABLES = frozenset({"options_block", "options", "answer_text", "exemplars"})


@dataclass(frozen=True)
class Problem:
    level: str  # "error" | "warning"
    where: str
    message: str
    rule: str | None = None  # a TEXT_RULES name for text-rule findings

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
    # Text rules on synthetic rows: one task per distinct template-set list.
    seen: set[tuple] = set()
    for task in catalog.tasks.values():
        if wanted is not None and task.name not in wanted:
            continue
        key = (task.templates, task.has_options, task.exemplar_field is not None)
        if key in seen:
            continue
        if files is not None and not any(
            str(Path(catalog.templates[i].file).resolve()) in files
            for s in task.templates
            for i in catalog.template_sets[s]
        ):
            continue
        seen.add(key)
        try:
            tr = renderer.task_renderer(task)
        except FlanDataError:
            continue  # reported by lint_task
        problems += text_rule_checks(tr, synthetic_rows(task), seed=seed, synthetic=True)
    return problems


def rule_counts(problems: Iterable[Problem]) -> dict[str, int]:
    """Problems per text rule, every rule listed (0 when clean)."""
    out = dict.fromkeys(TEXT_RULES, 0)
    for p in problems:
        if p.rule in out:
            out[p.rule] += 1
    return out


_SYN_OPTIONS = ("it holds less heat.", "Twist the lid.", "Would it float?", "a plain choice")


def synthetic_rows(task: TaskSpec, n: int = 3, start: int = 0) -> list[tuple[str, dict]]:
    """``n`` synthetic ``(id, canonical fields)`` rows for ``task``'s templates
    (rows ``start`` to ``start + n - 1``: another ``start`` gives other texts).

    Strings end in punctuation and options end in ``.``/``?`` so option styles
    are put to the test; a P3-style ``inputs`` field carries its own cues
    (``"Question: …\nAnswer:"``), as real P3 prompts do.
    """
    rows = []
    for i in range(start, start + n):
        out: dict = {}
        for name in task.fields:
            if name == "dialog":
                out[name] = [f"Hello number {i}.", f"Hi, how can I help with {i}?"]
            elif name == task.exemplar_field:
                out[name] = [
                    {"input": f"Sample input {k}.", "output": f"out{k}", "explanation": "Why."}
                    for k in range(2)
                ]
            elif name == "inputs":
                out[name] = (
                    f"Question: The prompt number {i}?\nAnswer:",
                    f"Q: The prompt number {i}?\nA:",
                    f"The prompt number {i} goes here.",
                )[i % 3]
            else:
                out[name] = f"The {name} text number {i} goes here."
        if task.options is not None:
            out["options"] = tuple(task.options)
        elif task.options_field is not None:
            out["options"] = _SYN_OPTIONS[: 2 + i % 3]
        if "options" in out:
            out["answer"] = out["options"][i % len(out["options"])]
        rows.append((f"synthetic-{i}", out))
    return rows


def text_rule_checks(
    tr: TaskRenderer,
    rows: list[tuple[str, Mapping]],
    *,
    seed: int = 0,
    split: str = "validation",
    pool: list[Exemplar] | None = None,
    raws: list[Mapping] | None = None,
    synthetic: bool = False,
    skip: set[str] | frozenset[str] = frozenset(),
) -> list[Problem]:
    """Text rules for every template × format of one task on ``rows`` (canonical fields).

    Every template of a composed few-shot format is also composed with every
    few-shot style of the catalog, the rows serving as exemplars and query.
    Templates in ``skip`` (over a sandbox limit already) are not rendered.
    """
    task = tr.task
    where = f"{task.file}: task {task.name}" + (" (synthetic rows)" if synthetic else "")
    canons = [c for _, c in rows]
    raws = raws if raws is not None else canons
    if pool is None:
        pool = [Exemplar(f"pool-{eid}", c) for eid, c in rows]
    by_id = {e.example_id: e.fields for e in pool}
    out: list[Problem] = []
    seen: set[tuple[str, str]] = set()

    def report(rule: str, w: str, msg: str) -> None:
        if (rule, w) not in seen:  # one problem per rule and template/format
            seen.add((rule, w))
            out.append(Problem("error", w, msg, rule))

    styles = tr.catalog.fewshot_styles
    # few-shot formats compose zero-shot templates unless the task has its own
    composes = not any(t.spec.kind == "few_shot" for t in tr.templates)
    over_limit: set[str] = set()
    for fmt in tr.formats():
        for ct in tr.eligible(fmt):
            if ct.spec.id in skip or ct.spec.id in over_limit:
                continue
            w = f"{where}, template {ct.spec.id}, format {fmt}"
            try:
                cols = tr.render_batch(rows, split=split, fmt=fmt, seed=seed, pool=pool,
                                       template_id=ct.spec.id, canonicals=canons)  # fmt: skip
            except FlanDataError as e:  # reported by the render checks
                if isinstance(e, TemplateLimitError):
                    over_limit.add(ct.spec.id)
                continue
            for j, i in enumerate(cols["index"]):
                exs = [by_id[e] for e in cols["exemplar_ids"][j] if e in by_id]
                for rule, ev in row_findings(task.name, fmt, cols["inputs"][j], cols["targets"][j],
                                             canons[i], raws[i], exs):  # fmt: skip
                    report(rule, w, f"[{rule}] {ev!r} in {cols['example_id'][j]}")
            if fmt in ("zs_opt", "zs_noopt") and composes and styles:
                pairs = list(zip(cols["inputs"], cols["targets"]))
                if len(pairs) < 2:
                    continue
                for st in styles:
                    text = compose_fewshot(pairs[1:], pairs[0][0], st, pairs[0][1])
                    bad = stacked_cues(text)
                    if bad:
                        report("stacked_cue", f"{w} as few-shot with style {st.id}",
                               f"[stacked_cue] {bad[0]!r}")  # fmt: skip
    return out


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
    # bad values (null/NaN/empty target, label outside the options, ...) one record at a time
    good = []
    for eid, rec in recs:
        try:
            tr.canonical(eid, rec, split)
            good.append((eid, rec))
        except RecordError as e:
            out.append(Problem("error", f"{where}, record {eid}", f"bad record: {e}"))
    recs = good
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
    try:
        canons = [(eid, tr.canonical(eid, rec)) for eid, rec in recs]
    except FlanDataError:
        return out  # already reported
    out += text_rule_checks(tr, canons, seed=seed, split=split, pool=pool or None,
                            raws=[rec for _, rec in recs], skip=failed)  # fmt: skip
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
