"""The ``flan`` command line: thin click commands over the library.

Every command maps library errors (:class:`~flan_data.errors.FlanDataError`) to
a one-paragraph message and exit status 1; no traceback is the only output.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from . import __version__
from .clickgroup import FlanGroup
from .errors import FlanDataError, MissingDependencyError, UnknownNameError
from .importers.cli import import_group
from .specs import FORMATS, OPTION_STYLES, SOURCE_CHOICES

# Startup stays light: the catalog, renderer and sources load inside the commands that use them
# (tests/test_cli_latency.py checks what `flan --help` and `flan catalog show` import).
if TYPE_CHECKING:
    from .catalog import Catalog
    from .specs import TaskSpec


def _catalog(ctx: click.Context) -> Catalog:
    obj = ctx.ensure_object(dict)
    if "catalog" not in obj:
        from .catalog_cache import load_catalog

        obj["catalog"] = load_catalog(obj.get("root"), extra_files=obj.get("extra", ()))
    return obj["catalog"]


def parse_source_dirs(catalog: Catalog, values: Iterable[str]) -> dict[str, Path]:
    """``NAME=PATH`` pairs; NAME is a task or a collection (or its alias)."""
    out: dict[str, Path] = {}
    for v in values:
        if "=" not in v:
            raise FlanDataError(
                f"--source-dir expects NAME=PATH (NAME a task or collection), got {v!r}"
            )
        name, path = v.split("=", 1)
        name = catalog.task_aliases.get(name, name)
        if name not in catalog.tasks:
            try:
                name = catalog.collection(name).name
            except UnknownNameError:
                raise UnknownNameError(
                    "task or collection", name, [*catalog.tasks, *catalog.collections]
                ) from None
        p = Path(path).expanduser()
        if not p.exists():
            raise FlanDataError(f"--source-dir {name}={path}: no such file or folder")
        out[name] = p
    return out


source_dir_option = click.option(
    "--source-dir",
    "source_dirs",
    multiple=True,
    metavar="NAME=PATH",
    help="Read a task or a whole collection from a local copy (repeatable). niv2: a natural-instructions "
    "checkout; cot: a folder of <dataset>_train.tsv files; HF tasks: a save_to_disk folder.",
)


@click.group(
    cls=FlanGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="flan")
@click.option("--catalog", "root", type=click.Path(exists=True, path_type=Path), default=None,
              help="A catalog.yaml (or its folder) to use instead of the bundled one.")  # fmt: skip
@click.option("--extra", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Extra template or collection YAML files/folders to load (repeatable).")  # fmt: skip
@click.pass_context
def main(ctx: click.Context, root: Path | None, extra: Sequence[Path]) -> None:
    """flan: browse the Flan Collection catalog, render instruction examples,
    export mixtures to Arrow shards and finetune on them.

    \b
    Examples:
      flan catalog list --collection niv2 --search entailment
      flan catalog show anli_r1
      flan render anli_r1 --format fs_opt -n 2 --seed 7
      flan lint
    """
    ctx.ensure_object(dict).update(root=root, extra=tuple(extra))


# ----------------------------------------------------------------------------- catalog


@main.group(cls=FlanGroup)
def catalog() -> None:
    """Browse collections and tasks."""


def _task_row(t: TaskSpec) -> dict:
    return {
        "name": t.name,
        "collection": t.collection,
        "category": t.metadata.category,
        "source": t.source.describe(),
        "templates": None,
        "sample": t.sample is not None,
        "held_out": t.metadata.held_out,
        "inversion_of": t.metadata.inversion_of,
        "languages": list(t.metadata.languages),
        "license_class": t.metadata.licensing.use,
    }


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    widths = [min(w, 48) for w in widths]

    def fmt(r: Sequence[str]) -> str:
        return "  ".join(
            (c if len(c) <= w else c[: w - 1] + "…").ljust(w) for c, w in zip(r, widths)
        ).rstrip()

    return "\n".join([fmt(headers), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)])


@catalog.command("list")
@click.option(
    "--collection", "-c", help="Only this collection (flan2021/muffin, t0sf, niv2, cot, dialog)."
)
@click.option("--category", help="Only tasks whose category contains this text.")
@click.option(
    "--search", "-s", "text", help="Only tasks whose name, category or source contains this text."
)
@click.option(
    "--sample-only", is_flag=True, help="Only tasks with bundled sample data (work offline)."
)
@click.option("--license-class", "license_classes", multiple=True, metavar="CLASS",
              help="Only tasks of these license use classes (repeatable or comma-separated; e.g. commercial).")  # fmt: skip
@click.option("--language", "languages", multiple=True, metavar="LANG",
              help="Only tasks in this language (ISO code or English name, e.g. de or German; repeatable: any).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of tasks.")
@click.pass_context
def catalog_list(
    ctx, collection, category, text, sample_only, license_classes, languages, as_json
) -> None:
    """List tasks as a table (or JSON)."""
    cat = _catalog(ctx)
    tasks = cat.search(
        text, collection, category, license_class=license_classes, language=languages
    )
    if sample_only:
        tasks = [t for t in tasks if t.sample is not None]
    rows = []
    for t in tasks:
        r = _task_row(t)
        r["templates"] = len(cat.templates_for(t))
        rows.append(r)
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    table = [
        [
            r["name"],
            r["collection"],
            r["category"] or "",
            r["source"],
            str(r["templates"]),
            "yes" if r["sample"] else "",
            r["license_class"],
        ]
        for r in rows
    ]
    click.echo(
        _table(
            table, ["task", "collection", "category", "source", "templates", "sample", "license"]
        )
    )
    click.echo(f"\n{len(rows)} task(s)")


def task_info(cat: Catalog, t: TaskSpec) -> dict:
    """Everything about a task, as plain JSON-able data (see :func:`flan_data.browse.query.task_info`)."""
    from .browse.query import task_info as _info

    return _info(cat, t)


def _emit(text: str, pager: bool) -> None:
    """Print ``text``; through a pager when it is longer than the terminal (and stdout is one)."""
    import shutil
    import sys

    if pager and sys.stdout.isatty() and text.count("\n") + 1 > shutil.get_terminal_size().lines:
        click.echo_via_pager(text + "\n")
    else:
        click.echo(text)


def _indent(text: str, pad: str = "      ") -> list[str]:
    return [pad + ln if ln else "" for ln in text.splitlines()] or [pad + "(empty)"]


def _side_by_side(left: tuple[str, str], right: tuple[str, str], width: int) -> list[str]:
    """Two titled text columns (stacked when the terminal is narrow)."""
    import textwrap

    col = (width - 3) // 2
    if col < 40:
        return [click.style(left[0], bold=True), *_indent(left[1], "  "), "",
                click.style(right[0], bold=True), *_indent(right[1], "  ")]  # fmt: skip

    def wrap(s: str) -> list[str]:
        out = []
        for ln in s.splitlines() or [""]:
            out += textwrap.wrap(ln, col, replace_whitespace=False, drop_whitespace=False) or [""]
        return out

    a, b = wrap(left[1]), wrap(right[1])
    rows = [click.style(left[0].ljust(col), bold=True) + " | " + click.style(right[0], bold=True),
            "-" * col + "-+-" + "-" * col]  # fmt: skip
    for i in range(max(len(a), len(b))):
        x = a[i] if i < len(a) else ""
        y = b[i] if i < len(b) else ""
        rows.append((x.ljust(col) + " | " + y).rstrip())
    return rows


@catalog.command("show")
@click.argument("task")
@click.option(
    "--template", "-t", "template_id", help="Show this template only, rendered on a sample row."
)
@click.option(
    "--format",
    "-f",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="Format of the rendered sample (--template; default: zs_opt, or the template's own).",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Run seed of the rendered sample."
)
@click.option(
    "--row",
    type=click.IntRange(0, 999),
    default=0,
    show_default=True,
    help="Which record of the split to render (0 = first).",
)
@click.option("--split", default="validation", show_default=True, help="Split of the sample row.")
@click.option(
    "--source",
    type=click.Choice(SOURCE_CHOICES),
    default="auto",
    show_default=True,
    help="auto: bundled sample data if any, else the real source.",
)
@source_dir_option
@click.option("--brief", is_flag=True, help="Template ids and variables only, not their text.")
@click.option("--no-pager", is_flag=True, help="Never page long output.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@click.pass_context
def catalog_show(ctx, task, template_id, fmt, seed, row, split, source, source_dirs, brief, no_pager,
                 as_json) -> None:  # fmt: skip
    """Show a task: source, record rules, fields, options, metadata and every
    template's full text; with --template, one template rendered on a sample row.

    \b
    Examples:
      flan catalog show anli_r1
      flan catalog show anli_r1 --template nli-03 --format fs_opt --seed 7
    """
    cat = _catalog(ctx)
    info = task_info(cat, cat.task(task))
    if template_id is not None:
        _show_template(
            ctx,
            cat,
            info,
            template_id,
            fmt,
            seed,
            row,
            split,
            source,
            source_dirs,
            as_json,
            no_pager,
        )
        return
    if as_json:
        click.echo(json.dumps(info, indent=2, ensure_ascii=False))
        return
    m = info["metadata"]
    lines = [
        click.style(info["name"], bold=True) + f"  ({info['collection']})",
        f"  category:     {m['category'] or '-'}",
        f"  languages:    {', '.join(m['languages']) or '-'}",
        f"  license:      {m['license'] or '-'}",
        f"  use class:    {_license_line(m['licensing'])}",
        f"  held out:     {'yes' if m['held_out'] else 'no'}"
        + ("   (excluded from training mixtures)" if m["exclude_from_training"] else ""),
    ]
    if m["inversion_of"]:
        lines.append(f"  inversion of: {m['inversion_of']}")
    if m["task_type"]:
        lines.append(f"  task type:    {m['task_type']}")
    for k, v in (m.get("extra") or {}).items():
        if k != "notes":
            lines.append(
                f"  {k.replace('_', ' ')}:".ljust(16)
                + (v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
            )
    for label, s in (("source", info["source"]), ("sample", info["sample"])):
        if s:
            lines.append(
                f"  {label}:".ljust(16)
                + " ".join(
                    f"{k}={json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v}"
                    for k, v in s.items()
                    if k != "note"
                )
            )
            if s.get("note"):
                lines.append(" " * 16 + f"note: {s['note']}")
    rules = info.get("record_rules_text") or []
    lines.append("  record rules: " + ("-" if not rules else ""))
    lines += [f"    {r}" for r in rules]
    for k, v in (info.get("other") or {}).items():
        lines.append(f"  {k}:".ljust(16) + json.dumps(v, ensure_ascii=False))
    lines.append("  fields:")
    lines += [f"    {k} <- {v}" for k, v in info["fields"].items()]
    if info["options"] is not None:
        lines.append(f"  options:      {info['options']}")
    lines.append(f"  exemplars:    {info['exemplars']}")
    lines.append(f"  formats:      {', '.join(info['formats'])}")
    lines.append(
        f"  templates ({len(info['templates'])}, sets {', '.join(info['template_sets'])}):"
    )
    for t in info["templates"]:
        lines.append(
            f"    {t['id']:<14} {t['kind']:<10} set {t['set']:<14} {', '.join(t['variables'])}"
        )
        if not brief and t.get("dialect") == "promptsource":
            lines.append("      jinja (promptsource rules: rendered once, split on '|||'):")
            lines += _indent(t["input"], "        ")
            if t.get("answer_choices") is not None:
                lines.append("      answer_choices:")
                lines += _indent(t["answer_choices"], "        ")
        elif not brief:
            lines.append("      input:")
            lines += _indent(t["input"], "        ")
            lines.append("      target:")
            lines += _indent(t["target"], "        ")
    if m.get("extra", {}).get("notes"):
        lines.append(f"  notes:        {m['extra']['notes']}")
    _emit("\n".join(lines), not no_pager)


def _show_template(
    ctx, cat, info, template_id, fmt, seed, row, split, source, source_dirs, as_json, no_pager
):
    import shutil

    from .browse.preview import preview

    by_id = {t["id"]: t for t in info["templates"]}
    if template_id not in by_id:
        raise UnknownNameError(
            "template", template_id, by_id, hint=f"templates of task {info['name']}"
        )
    t = by_id[template_id]
    if fmt is None:
        fmt = {"cot": "cot", "few_shot": "fs_opt"}.get(t["kind"], "zs_opt")
    p = preview(cat, info["name"], fmt=fmt, seed=seed, template_id=template_id, row=row, split=split,
                source=source, source_dirs=parse_source_dirs(cat, source_dirs))  # fmt: skip
    if as_json:
        click.echo(
            json.dumps({"task": info["name"], "template": t, **p}, indent=2, ensure_ascii=False)
        )
        return
    ex = p["example"]
    width = shutil.get_terminal_size((120, 40)).columns
    head = f"{info['name']} | template {t['id']} ({t['kind']}, set {t['set']}) | {fmt} | seed {seed} | {ex['source_split']}/{ex['example_id']}"
    if ex["fewshot_style"]:
        head += f" | style {ex['fewshot_style']} | exemplars {', '.join(ex['exemplar_ids']) or '-'}"
    lines = [click.style(head, bold=True), f"variables: {', '.join(t['variables'])}", ""]
    lines += _side_by_side(("template input", t["input"]), ("rendered inputs", ex["inputs"]), width)
    lines.append("")
    lines += _side_by_side(
        ("template target", t["target"]), ("rendered targets", ex["targets"]), width
    )
    if p.get("record") is not None:
        rec = json.dumps(p["record"], indent=2, ensure_ascii=False).splitlines()
        cut = 30
        lines += [
            "",
            click.style(f"source record ({ex['source_split']}/{ex['example_id']})", bold=True),
        ]
        lines += [
            "  " + (ln if len(ln) <= width - 3 else ln[: width - 4] + "…") for ln in rec[:cut]
        ]
        if len(rec) > cut:
            lines.append(f"  … ({len(rec) - cut} more lines; --json prints it whole)")
    _emit("\n".join(lines), not no_pager)


@catalog.command("templates")
@click.option("--set", "set_name", help="Only this template set.")
@click.option("--grep", "-g", help="Only templates whose id or text contains this text.")
@click.option("--text", "show_text", is_flag=True, help="Print each template's full text.")
@click.option(
    "--all", "show_all", is_flag=True, help="List every task of a set (default: the first 8)."
)
@click.option("--no-pager", is_flag=True, help="Never page long output.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of sets.")
@click.pass_context
def catalog_templates(ctx, set_name, grep, show_text, show_all, no_pager, as_json) -> None:
    """List template sets, their templates and the tasks that use them."""
    from .browse.query import template_sets

    sets = template_sets(_catalog(ctx), set_name, grep)
    if as_json:
        click.echo(json.dumps(sets, indent=2, ensure_ascii=False))
        return
    lines = []
    for s in sets:
        tasks = s["tasks"]
        shown = tasks if show_all or len(tasks) <= 8 else tasks[:8]
        more = (
            f" … (+{len(tasks) - len(shown)} more, --all lists them)"
            if len(shown) < len(tasks)
            else ""
        )
        lines.append(
            click.style(s["set"], bold=True)
            + f"  {s['size']} template(s), kinds {', '.join(s['kinds'])}, {s['file']}"
        )
        lines.append(f"  used by {len(tasks)} task(s): {', '.join(shown) or '-'}{more}")
        for t in s["templates"]:
            first = next((ln for ln in t["input"].splitlines() if ln.strip()), "")
            first = first if len(first) <= 70 else first[:69] + "…"
            lines.append(f"    {t['id']:<16} {t['kind']:<10} {first}")
            if show_text:
                lines += [
                    "      input:",
                    *_indent(t["input"], "        "),
                    "      target:",
                    *_indent(t["target"], "        "),
                ]
        lines.append("")
    n = sum(len(s["templates"]) for s in sets)
    lines.append(f"{len(sets)} set(s), {n} template(s)" + (f" matching {grep!r}" if grep else ""))
    _emit("\n".join(lines), not no_pager)


@catalog.command("search")
@click.argument("text")
@click.option(
    "--in",
    "where",
    multiple=True,
    type=click.Choice(
        ["name", "collection", "category", "language", "license", "source", "metadata", "template"]
    ),
    help="Only search these facts (repeatable; default: all).",
)
@click.option(
    "--phrase",
    is_flag=True,
    help='Match TEXT as one phrase (default: every word, or "quoted phrase").',
)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="Show at most this many (0: all).",
)
@click.option("--license-class", "license_classes", multiple=True, metavar="CLASS",
              help="Only tasks of these license use classes (repeatable or comma-separated).")  # fmt: skip
@click.option("--language", "languages", multiple=True, metavar="LANG",
              help="Only tasks in this language (ISO code or English name; repeatable: any).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of hits.")
@click.pass_context
def catalog_search(ctx, text, where, phrase, limit, license_classes, languages, as_json) -> None:
    """Find tasks by name, category, language, license, metadata or template wording.

    Every word (or "quoted phrase") of TEXT must match somewhere, case-insensitive;
    each hit says where it matched.

    \b
    Examples:
      flan catalog search entailment
      flan catalog search "non-commercial" --in license
      flan catalog search "does the hypothesis have to be" --phrase --in template
    """
    from .browse.query import search_tasks

    hits = search_tasks(_catalog(ctx), text, fields=where or None, phrase=phrase)
    if license_classes or languages:
        keep = {
            t.name for t in _catalog(ctx).search(license_class=license_classes, language=languages)
        }
        hits = [h for h in hits if h["name"] in keep]
    if as_json:
        click.echo(json.dumps(hits if not limit else hits[:limit], indent=2, ensure_ascii=False))
        return
    shown = hits if not limit else hits[:limit]

    def where_s(m):
        tpl = [x for x in m if x.startswith("template:")]
        rest = [x for x in m if not x.startswith("template:")]
        if tpl:
            rest.append(
                f"templates ({len(tpl)}: {', '.join(x[9:] for x in tpl[:3])}{', …' if len(tpl) > 3 else ''})"
            )
        return ", ".join(rest)

    rows = [[h["name"], h["collection"], h["category"] or "", where_s(h["matched"])] for h in shown]
    click.echo(_table(rows, ["task", "collection", "category", "matched in"]))
    more = f"; showing {len(shown)} (--limit 0 shows all)" if len(shown) < len(hits) else ""
    click.echo(f"\n{len(hits)} task(s){more}")


def _license_line(li: dict) -> str:
    flags = [
        k.replace("_", "-") for k in ("attribution", "share_alike", "model_generated") if li.get(k)
    ]
    out = li["use"] + (f" ({', '.join(li['licenses'])})" if li.get("licenses") else "")
    out += f"; {', '.join(flags)}" if flags else ""
    return out + (f"; from {li['source']}" if li.get("source") else "")


def catalog_stats_data(cat: Catalog) -> dict:
    per: dict[str, dict[str, int]] = {}
    for t in cat.tasks.values():
        d = per.setdefault(
            t.collection,
            {"tasks": 0, "inversions": 0, "held_out": 0, "excluded": 0, "with_sample": 0},
        )
        d["tasks"] += 1
        d["inversions"] += t.metadata.inversion_of is not None
        d["held_out"] += t.metadata.held_out
        d["excluded"] += t.metadata.exclude_from_training
        d["with_sample"] += t.sample is not None
    return {
        "collections": {c: per.get(c, {"tasks": 0}) for c in cat.collections},
        "total_tasks": len(cat.tasks),
        "templates": len(cat.templates),
        "template_sets": len(cat.template_sets),
        "fewshot_styles": len(cat.fewshot_styles),
        "mixtures": sorted(cat.mixtures),
    }


@catalog.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@click.pass_context
def catalog_stats(ctx, as_json) -> None:
    """Task counts per collection, template and style counts."""
    data = catalog_stats_data(_catalog(ctx))
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    rows = [
        [
            c,
            *(
                str(d.get(k, 0))
                for k in ("tasks", "inversions", "held_out", "excluded", "with_sample")
            ),
        ]
        for c, d in data["collections"].items()
    ]
    click.echo(
        _table(rows, ["collection", "tasks", "inversions", "held out", "excluded", "sample"])
    )
    click.echo(f"\n{data['total_tasks']} tasks, {data['templates']} templates in {data['template_sets']} sets, "
               f"{data['fewshot_styles']} few-shot styles, mixtures: {', '.join(data['mixtures']) or '-'}")  # fmt: skip


# ----------------------------------------------------------------------------- render

chat_fewshot_option = click.option(
    "--chat-fewshot", type=click.Choice(["single", "multiturn"]), default="single", show_default=True,
    help="Few-shot rows in the messages view: one user turn (single) or each exemplar in its own "
    "user/assistant turns (multiturn).")  # fmt: skip
system_option = click.option(
    "--system",
    default=None,
    metavar="TEXT",
    help="Start every messages list with this system turn.",
)


@main.command()
@click.argument("task")
@click.option(
    "--format", "-f", "fmt", type=click.Choice(FORMATS), default="zs_opt", show_default=True
)
@click.option(
    "-n", "n", type=click.IntRange(min=1), default=3, show_default=True, help="How many records."
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Run seed: same seed, same text."
)
@click.option("--template", "template_id", help="Use this template id instead of a seeded choice.")
@click.option("--split", default="validation", show_default=True, help="Canonical split to render.")
@click.option("--source", type=click.Choice(SOURCE_CHOICES), default="auto", show_default=True,
              help="auto: --source-dir if given, else bundled sample data if any, else the real source.")  # fmt: skip
@source_dir_option
@click.option(
    "--shots",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Few-shot exemplars (before the budget).",
)
@click.option(
    "--budget",
    type=click.IntRange(min=1),
    default=1920,
    show_default=True,
    help="Few-shot length budget in tokens.",
)
@click.option("--tokenizer", "tokenizer_path", default=None, metavar="PATH",
              help="Count the few-shot budget with this SentencePiece .model or HF tokenizer.json "
                   "(e.g. T5's, as FLAN does); default: whitespace words.")  # fmt: skip
@click.option(
    "--option-style", type=click.Choice(OPTION_STYLES), default="random", show_default=True
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--chat", is_flag=True, help="Print the messages view (user/assistant turns).")
@chat_fewshot_option
@system_option
@click.pass_context
def render(
    ctx,
    task,
    fmt,
    n,
    seed,
    template_id,
    split,
    source,
    source_dirs,
    shots,
    budget,
    tokenizer_path,
    option_style,
    as_json,
    chat,
    chat_fewshot,
    system,
) -> None:
    """Render N examples of TASK in a format."""
    from .render import RenderConfig, render_task

    cat = _catalog(ctx)
    from .fewshot import load_tokenizer

    cfg = RenderConfig(shots=shots, budget=budget, option_style=option_style,
                       tokenizer=load_tokenizer(tokenizer_path))  # fmt: skip
    dirs = parse_source_dirs(cat, source_dirs)
    if chat or chat_fewshot != "single" or system is not None:
        from .views import chat_task

        for i, msgs in enumerate(chat_task(cat, task, fmt=fmt, n=n, seed=seed, split=split, template_id=template_id,
                                           source=source, source_dirs=dirs, config=cfg, chat_fewshot=chat_fewshot,
                                           system=system)):  # fmt: skip
            if as_json:
                click.echo(json.dumps(msgs, ensure_ascii=False))
                continue
            click.echo(
                click.style(f"=== [{i + 1}] {task} | {fmt} | {len(msgs)} message(s) ===", bold=True)
            )
            for m in msgs:
                color = {"system": "yellow", "user": "cyan", "assistant": "green"}.get(m["role"])
                click.echo(click.style(f"{m['role'].upper()}:", fg=color))
                click.echo(m["content"])
            click.echo("")
        return
    for i, ex in enumerate(
        render_task(
            cat,
            task,
            fmt=fmt,
            n=n,
            seed=seed,
            split=split,
            template_id=template_id,
            source=source,
            source_dirs=dirs,
            config=cfg,
        )
    ):
        if as_json:
            click.echo(json.dumps(ex.to_dict(), ensure_ascii=False))
            continue
        head = f"[{i + 1}] {ex.task} | {ex.format} | template {ex.template_id}"
        if ex.fewshot_style:
            head += f" | style {ex.fewshot_style} | {len(ex.exemplar_ids)} exemplar(s)"
        head += f" | {ex.source_split}/{ex.example_id}"
        click.echo(click.style(f"=== {head} ===", bold=True))
        click.echo(click.style("INPUTS:", fg="cyan"))
        click.echo(ex.inputs)
        click.echo(click.style("TARGETS:", fg="green"))
        click.echo(ex.targets + "\n")


# ----------------------------------------------------------------------------- lint


@main.command("lint")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--task", "tasks", multiple=True, help="Only these tasks (repeatable).")
@click.option(
    "--rows",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Sample rows rendered per template.",
)
@source_dir_option
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@click.pass_context
def lint_cmd(ctx, paths, tasks, rows, source_dirs, strict) -> None:
    """Validate templates against their tasks' fields and render them on sample rows.

    With PATHs (template or collection YAML files/folders), load them on top of
    the catalog and check only what they define. Exits non-zero on any error.
    """
    obj = ctx.ensure_object(dict)
    if paths:
        obj["extra"] = tuple(obj.get("extra", ())) + tuple(
            p for p in paths if not _is_bundled(p, obj)
        )
    cat = _catalog(ctx)
    files = (
        [str(f) for p in paths for f in (sorted(p.rglob("*.yaml")) if p.is_dir() else [p])]
        if paths
        else None
    )
    from .linter import lint

    problems = lint(
        cat,
        tasks=tasks or None,
        template_files=files,
        rows=rows,
        source_dirs=parse_source_dirs(cat, source_dirs),
    )
    errors = [p for p in problems if p.level == "error" or strict]
    for p in problems:
        click.echo(str(p), err=p.level == "error")
    n_t = len(tasks) if tasks else len(cat.tasks)
    from .linter import rule_counts

    counts = rule_counts(problems)
    click.echo("text rules: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    click.echo(
        f"{len(errors)} error(s), {len(problems) - len(errors)} warning(s); checked {len(cat.templates)} templates, {n_t} tasks"
    )
    if errors:
        ctx.exit(1)


def _is_bundled(p: Path, obj: dict) -> bool:
    from .catalog import default_root

    root = Path(obj.get("root") or default_root()).resolve()
    try:
        Path(p).resolve().relative_to(root)
        return True
    except ValueError:
        return False


# ----------------------------------------------------------------------------- mixtures and export


@main.group(cls=FlanGroup)
def mixture() -> None:
    """Inspect mixtures."""


@mixture.command("list")
@click.pass_context
def mixture_list(ctx) -> None:
    """List the named mixtures."""
    for m in _catalog(ctx).mixtures.values():
        click.echo(f"{m.name:<12} source={m.source:<6} {m.description}")


SIZES_CHOICES = ("auto", "metadata", "source", "count")


def _plan(ctx, name, total, exclude, source_dirs, sizes_from="auto", license_policy=None,
          origins: dict[str, str] | None = None, progress: bool = False):  # fmt: skip
    """Plan mixture ``name``. ``sizes_from``: ``metadata`` (the catalog's published
    counts, no data read), ``source``/``count`` (count every source), or ``auto``
    (a sample mixture counts its bundled samples; a real one takes published
    counts and counts only tasks without one). ``origins`` receives, per task,
    where its size came from."""
    from .export import _source_choice, candidate_tasks, count_sizes
    from .export.local import _STATE
    from .mixture import parse_excludes, plan_mixture

    cat = _catalog(ctx)
    spec = cat.mixture(name)
    excludes = parse_excludes(cat, exclude)
    tasks = candidate_tasks(cat, spec, excludes, license_policy=license_policy)
    if sizes_from == "auto":
        sizes_from = "source" if spec.source == "sample" else "metadata+source"
    sizes: dict[str, int] = {}
    where: dict[str, str] = {}
    to_count = list(tasks)
    if sizes_from.startswith("metadata"):
        to_count = []
        for t in tasks:
            n = t.metadata.extra.get("num_examples")
            if isinstance(n, int) and not isinstance(n, bool) and n >= 0:
                sizes[t.name], where[t.name] = n, "published (metadata.num_examples)"
            else:
                to_count.append(t)
        if to_count and sizes_from == "metadata":
            raise FlanDataError(
                f"{len(to_count)} task(s) have no published size (metadata.num_examples), e.g. "
                f"{', '.join(t.name for t in to_count[:5])}; plan with --sizes source to count them"
            )
    if to_count:
        _STATE.update(catalog=cat)
        dirs = {k: str(v) for k, v in parse_source_dirs(cat, source_dirs).items()}
        choice = _source_choice(spec, None)
        counted = count_sizes(cat, to_count, choice, dirs, progress=progress)
        for n, v in counted.items():
            sizes[n], where[n] = v, f"counted ({choice} source)"
    if origins is not None:
        origins.update(where)
    return plan_mixture(
        cat, spec, sizes, total=total, exclude=excludes, license_policy=license_policy
    )


def license_options(f):
    """--license / --license-class / --allow-share-alike / --exclude-model-generated."""
    from .licenses import LICENSE_LEVELS
    from .specs import LICENSE_CLASSES

    f = click.option("--exclude-model-generated", is_flag=True,
                     help="Remove tasks whose data is marked model-generated (or not known).")(f)  # fmt: skip
    f = click.option("--allow-share-alike/--no-share-alike", default=True, show_default=True,
                     help="Keep or remove tasks under a share-alike license (unknown counts as share-alike).")(f)  # fmt: skip
    f = click.option("--license-class", "license_classes", multiple=True, metavar="CLASS",
                     help=f"Allow exactly these use classes (repeatable or comma-separated): {', '.join(LICENSE_CLASSES)}.")(f)  # fmt: skip
    f = click.option("--license", "license_level", type=click.Choice([*LICENSE_LEVELS, "any"]), default=None,
                     help="Keep only tasks usable at this level: commercial keeps commercial; unspecified adds "
                          "unspecified; non-commercial adds non-commercial; academic-only adds academic-only. "
                          "Tasks without license facts (unknown) need --license-class unknown.")(f)  # fmt: skip
    return f


def _policy(license_level, license_classes, allow_share_alike, exclude_model_generated):
    from .licenses import LicensePolicy

    p = LicensePolicy.from_options(
        license_level, license_classes, allow_share_alike, exclude_model_generated
    )
    return p if p.active else None


exclude_option = click.option("--exclude", multiple=True, metavar="NAME",
                              help="Leave out a task, a collection, category:TEXT or held_out (repeatable).")  # fmt: skip


@mixture.command("plan")
@click.argument("name")
@click.option(
    "--total",
    type=click.IntRange(min=1),
    help="Examples in total (default: the mixture's natural size).",
)
@exclude_option
@source_dir_option
@click.option("--sizes", "sizes_from", type=click.Choice(SIZES_CHOICES), default="auto", show_default=True,
              help="Where task sizes come from: metadata = the catalog's published counts (no data read); "
                   "source (or count) = count every source, with a progress bar; auto = published counts for "
                   "real mixtures (counting only tasks without one), counting for sample mixtures.")  # fmt: skip
@click.option(
    "--json", "as_json", is_flag=True, help="Counts per task × format and per collection as JSON."
)
@license_options
@click.pass_context
def mixture_plan(ctx, name, total, exclude, source_dirs, sizes_from, as_json, license_level, license_classes,
                 allow_share_alike, exclude_model_generated) -> None:  # fmt: skip
    """Print the exact number of examples each task × format contributes.

    A license policy (--license, --license-class, --no-share-alike,
    --exclude-model-generated) removes tasks first, then plans again over what
    remains; the removed tasks are listed with the reason.
    """
    policy = _policy(license_level, license_classes, allow_share_alike, exclude_model_generated)
    origins: dict[str, str] = {}
    plan = _plan(ctx, name, total, exclude, source_dirs, sizes_from, policy, origins=origins,
                 progress=not as_json)  # fmt: skip
    data = plan.to_json()
    data["size_sources"] = {t: origins[t] for t in sorted(origins)}
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    short = {"published (metadata.num_examples)": "published"}
    rows = [
        [
            e["task"],
            e["collection"],
            e["format"],
            str(e["count"]),
            str(e["size"]),
            short.get(origins.get(e["task"], ""), origins.get(e["task"], "-")),
            f"{e['share']:.2%}",
        ]
        for e in data["entries"]
        if e["count"]
    ]
    click.echo(
        _table(rows, ["task", "collection", "format", "count", "size", "size from", "share"])
    )
    kinds: dict[str, int] = {}
    for o in origins.values():
        kinds[o] = kinds.get(o, 0) + 1
    click.echo("sizes: " + "; ".join(f"{n} task(s) {o}" for o, n in sorted(kinds.items())))
    click.echo("")
    click.echo(
        _table(
            [[c, str(d["count"]), f"{d['share']:.2%}"] for c, d in data["collections"].items()],
            ["collection", "count", "share"],
        )
    )
    if plan.policy is not None:
        _echo_removed(plan)
    ex = plan.excluded
    more = f" (+{len(ex) - 8} more)" if len(ex) > 8 else ""
    click.echo(
        f"\ntotal {plan.total} examples from {len(plan.tasks())} tasks"
        + (f"; excluded {len(ex)}: {', '.join(ex[:8])}{more}" if ex else "")
    )


def _echo_removed(plan) -> None:
    import textwrap

    from .licenses import group_reasons

    p = plan.policy
    click.echo(
        f"\nlicense policy: classes {', '.join(p['license_classes'] or ['any'])}; "
        f"share-alike {'allowed' if p['allow_share_alike'] else 'removed'}; "
        f"model-generated {'allowed' if p['allow_model_generated'] else 'removed'}"
    )
    click.echo(
        f"removed {len(plan.removed)} task(s) before planning (rates re-planned over the rest):"
    )
    for why, names in group_reasons(plan.removed):
        click.echo(f"  {why} — {len(names)} task(s):")
        click.echo(
            textwrap.fill(
                ", ".join(names), width=100, initial_indent="    ", subsequent_indent="    "
            )
        )


@main.command()
@click.option(
    "--mixture", "-m", "mixture_name", required=True, help="A named mixture (flan mixture list)."
)
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(path_type=Path),
    help="Output folder for shards + manifest.",
)
@click.option(
    "--total",
    type=click.IntRange(min=1),
    help="Examples in total (default: the mixture's natural size).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", "-w", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--shard-rows", type=click.IntRange(min=1), default=10_000, show_default=True)
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--ray-address", default=None, metavar="auto|ray://HOST:PORT",
              help="Ray cluster for --backend ray (default: $RAY_ADDRESS, else a new local Ray). See docs/RAY.md.")  # fmt: skip
@click.option(
    "--source",
    type=click.Choice(["real", "sample"]),
    default=None,
    help="Override the mixture's source choice.",
)
@source_dir_option
@exclude_option
@click.option("--shots", type=click.IntRange(min=0), default=3, show_default=True)
@click.option("--budget", type=click.IntRange(min=1), default=1920, show_default=True)
@click.option("--tokenizer", "tokenizer_path", default=None, metavar="PATH",
              help="Count the few-shot budget with this SentencePiece .model or HF tokenizer.json "
                   "(e.g. T5's, as FLAN does); default: whitespace words.")  # fmt: skip
@click.option(
    "--option-style", type=click.Choice(OPTION_STYLES), default="random", show_default=True
)
@click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
              help="A bad record stops the export (fail) or is counted in the manifest and left out (skip).")  # fmt: skip
@click.option("--skip-unavailable", is_flag=True,
              help="Leave out tasks whose source cannot be read (unreachable hub, no local copy), plan the rates "
                   "again over the others, and list the left-out tasks in the manifest and the summary.")  # fmt: skip
@click.option("--overwrite", is_flag=True,
              help="Replace an export with a different spec in --out (swapped in only once complete; "
                   "files flan did not write are never deleted).")  # fmt: skip
@click.option("--verify", "verify_shards", is_flag=True,
              help="Over a complete export, check every shard's sha256 (not only its size) and repair what differs.")  # fmt: skip
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--format", "file_format", type=click.Choice(["arrow", "parquet", "jsonl", "jsonl.gz"]), default="arrow",
              show_default=True, help="Shard file format (all load with datasets.load_dataset(OUT)).")  # fmt: skip
@click.option("--messages/--no-messages", default=True, show_default=True,
              help="Add the chat view: a messages column of {role, content} turns.")  # fmt: skip
@chat_fewshot_option
@system_option
@click.option("--columns", "column_sets", multiple=True, type=click.Choice(["flan-dump"]),
              help="Extra column sets; flan-dump adds task_source, task_name, template_type, template_idx "
              "(the public Flan 2022 dumps' columns).")  # fmt: skip
@license_options
@click.option("--decontaminate", "decontaminate", multiple=True, metavar="EVAL",
              help="Drop rows that contain an n-gram of this benchmark, and replace hit few-shot exemplars by clean "
                   "ones (repeatable; EVAL as for flan decontaminate --against). Counts in the manifest, details in "
                   "decontamination.json.")  # fmt: skip
@click.option(
    "--decontam-n", type=click.IntRange(min=1), default=None, help="N-gram size (default 13)."
)
@click.option("--decontam-min-words", type=click.IntRange(min=1), default=None,
              help="Shortest eval text indexed (default 8 words; shorter than n: matched whole).")  # fmt: skip
@click.pass_context
def export(ctx, mixture_name, out, total, seed, workers, shard_rows, backend, ray_address, source, source_dirs, exclude, shots,
           budget, tokenizer_path, option_style, on_error, skip_unavailable, overwrite, verify_shards, quiet, file_format, messages,
           chat_fewshot, system, column_sets, license_level, license_classes, allow_share_alike,
           exclude_model_generated, decontaminate, decontam_n, decontam_min_words) -> None:  # fmt: skip
    """Render a mixture into shards (Arrow, Parquet or JSON Lines) under OUT/data, with a
    manifest and a dataset card (resumable, deterministic)."""
    if workers > 1 and backend == "local":
        from ._forkserver import fork_possible, start_forkserver

        # Workers are forked from this process where that is safe (they then need
        # no imports); elsewhere the workers' forkserver imports on the second core
        # while this process imports the export modules and loads the catalog.
        if not fork_possible():
            start_forkserver(extra=("flan_data.cli",))
    from .export import export_mixture
    from .fewshot import load_tokenizer
    from .render import RenderConfig
    from .views import OutputSpec

    cat = _catalog(ctx)
    output = OutputSpec(file_format=file_format, messages=messages, chat_fewshot=chat_fewshot,
                        system=system, columns=tuple(column_sets))  # fmt: skip
    export_mixture(cat, mixture_name, out, total=total, seed=seed, workers=workers, shard_rows=shard_rows, backend=backend,
                   ray_address=ray_address, source=source, source_dirs=parse_source_dirs(cat, source_dirs), exclude=exclude,
                   render_config=RenderConfig(shots=shots, budget=budget, option_style=option_style,
                                              tokenizer=load_tokenizer(tokenizer_path)),
                   on_error=on_error, overwrite=overwrite, verify=verify_shards, progress=not quiet, output=output,
                   skip_unavailable=skip_unavailable,
                   log=lambda s: click.echo(s, err=True),
                   license_policy=_policy(license_level, license_classes, allow_share_alike, exclude_model_generated),
                   decontaminate=decontaminate, decontam_n=decontam_n, decontam_min_words=decontam_min_words)  # fmt: skip


@main.command("decontaminate")
@click.argument("target", type=click.Path(exists=True, path_type=Path))
@click.option("--against", "evals", multiple=True, required=True, metavar="[NAME=]PATH[::FIELD,..]",
              help="A benchmark in its published format (repeatable): BIG-Bench Hard folder or task JSON, GSM8K "
                   "JSONL, MMLU data folder or CSV, TyDiQA GoldP JSON / primary JSONL, MGSM TSV (or a folder of "
                   "them), or an HF save_to_disk folder / JSONL with its text fields named after '::'.")  # fmt: skip
@click.option(
    "--n",
    "n",
    type=click.IntRange(min=1),
    default=13,
    show_default=True,
    help="N-gram size in words.",
)
@click.option("--min-words", type=click.IntRange(min=1), default=8, show_default=True,
              help="Eval texts shorter than n words but at least this long are matched whole; shorter ones are ignored.")  # fmt: skip
@click.option("--fields", default="inputs,targets", show_default=True,
              help="Training text columns to check (comma-separated).")  # fmt: skip
@click.option("--task-field", default="task", show_default=True,
              help="Column naming each row's task (rows without it count under the file's name).")  # fmt: skip
@click.option("--max-ngrams", type=click.IntRange(min=1), default=100_000_000, show_default=True,
              help="Refuse to build an index larger than this (16 bytes per n-gram).")  # fmt: skip
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the full report (JSON) here.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--fail-on-hit", is_flag=True, help="Exit with status 2 when any row is hit (for CI)."
)
def decontaminate_cmd(target, evals, n, min_words, fields, task_field, max_ngrams, report_path, as_json,
                      fail_on_hit) -> None:  # fmt: skip
    """Report which training rows contain n-grams of held-out benchmarks.

    TARGET is an export folder (its shards' inputs and targets; few-shot rows
    carry their exemplars in the inputs) or a .jsonl/.parquet/.arrow file of
    rows. The report gives, per task × eval set, the rows hit, their share,
    example n-grams and the eval item ids. `flan export --decontaminate` drops
    hit rows while exporting.

    \b
    Examples:
      flan decontaminate out/ --against ../shared/data/bbh --against gsm8k=test.jsonl
      flan decontaminate rows.jsonl --fields question,answer --against mmlu/data --report hits.json
    """
    import time

    from .decontam import NgramIndex, read_evals, scan

    if min_words > n:
        min_words = n
    t0 = time.perf_counter()
    index = NgramIndex.build(read_evals(evals), n=n, min_words=min_words, max_ngrams=max_ngrams)
    t1 = time.perf_counter()
    cols = tuple(f.strip() for f in fields.split(",") if f.strip())
    rep = scan(index, target, fields=cols, task_field=task_field or None)
    t2 = time.perf_counter()
    data = rep.to_json()
    data["timing"] = {"index_s": round(t1 - t0, 3), "scan_s": round(t2 - t1, 3),
                      "rows_per_s": round(data["rows_total"] / (t2 - t1), 1) if t2 > t1 else None}  # fmt: skip
    if report_path:
        report_path.write_text(
            json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        rows = [[e["task"], e["eval_set"], str(e["rows"]), str(e["rows_hit"]), f"{e['share']:.2%}",
                 str(e["eval_items"]), (e["ngrams"] or [""])[0]] for e in data["hits"]]  # fmt: skip
        click.echo(
            _table(
                rows, ["task", "eval set", "rows", "hit", "share", "eval items", "example n-gram"]
            )
        )
        sets = ", ".join(f"{s['name']} ({s['format']}, {s['items']} items)" for s in index.sets)
        click.echo(f"\nchecked {data['rows_total']:,} rows against {sets}: {data['rows_hit']:,} hit "
                   f"({index.num_ngrams:,} n-grams, n={index.n}; index {t1 - t0:.1f}s, scan {t2 - t1:.1f}s, "
                   f"{data['timing']['rows_per_s'] or 0:,.0f} rows/s)"
                   + (f"; report in {report_path}" if report_path else ""))  # fmt: skip
    if fail_on_hit and data["rows_hit"]:
        raise SystemExit(2)


@main.command()
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
def verify(out) -> None:
    """Check an export folder: COMPLETED marker, counts, sizes and sha256 of every shard."""
    from .export.verify import verify as do_verify

    problems = do_verify(out)
    for p in problems:
        click.echo(f"FAIL {p}", err=True)
    if problems:
        raise click.ClickException(f"{out}: {len(problems)} problem(s)")
    from .export.verify import load_manifest

    m = load_manifest(out)
    click.echo(f"OK {out}: {m['num_rows']} rows in {len(m['shards'])} shard(s), checksums match")


@main.command()
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a PNG histogram of lengths.",
)
def stats(out, as_json, plot) -> None:
    """Per task × format counts, length percentiles and template usage of an export."""
    from .export.verify import plot_lengths
    from .export.verify import stats as do_stats

    st = do_stats(out)
    if plot:
        plot_lengths(st, plot)
    raw = st.pop("_raw_lengths")
    del raw
    if as_json:
        click.echo(json.dumps(st, indent=2))
        return
    rows = [[t, f, str(n)] for t, d in st["tasks"].items() for f, n in d.items()]
    click.echo(_table(rows, ["task", "format", "rows"]))
    click.echo("")
    click.echo(
        _table(
            [[k, *(str(v) for v in d.values())] for k, d in st["lengths"].items()],
            ["length", "p50", "p90", "p99", "max"],
        )
    )
    top = list(st["templates"].items())[:10]
    click.echo(
        "\ntemplates used: "
        + str(len(st["templates"]))
        + "; most used: "
        + ", ".join(f"{k} ({v})" for k, v in top)
    )
    if plot:
        click.echo(f"wrote {plot}")


# ----------------------------------------------------------------------------- finetune


@main.command(
    context_settings={
        "ignore_unknown_options": True,
        "allow_extra_args": True,
        "help_option_names": [],
    }
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def finetune(args) -> None:
    """Finetune a model on an export directory (needs the [finetune] extra).

    Run `flan finetune --help` for its options.
    """
    import importlib.util
    import sys

    # find_spec, not import: argument and data errors must not wait for JAX to load
    has_jax = (
        sys.modules["jax"] is not None
        if "jax" in sys.modules
        else bool(importlib.util.find_spec("jax"))
    )
    if not has_jax and not {"-h", "--help"} & set(args):
        raise MissingDependencyError("jax", "finetune", "flan finetune")
    from finetune.cli import main as ft_main

    raise SystemExit(ft_main(list(args)))


# ----------------------------------------------------------------------------- browse


@main.command("browse")
@click.option(
    "--host",
    default=None,
    metavar="ADDR",
    help="Address to bind (default 127.0.0.1; anything else exposes the app to your network).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port to listen on (0: any free port).",
)
@click.option(
    "--catalog",
    "catalog_path",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="A catalog.yaml (or its folder) instead of the bundled one (same as flan --catalog).",
)
@click.option(
    "--export",
    "export_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="An export folder to show on the Export page.",
)
@source_dir_option
@click.option("--no-open", is_flag=True, help="Print the URL; do not open a browser.")
@click.pass_context
def browse(ctx, host, port, catalog_path, export_dir, source_dirs, no_open) -> None:
    """Browse the catalog, watch templates render, inspect mixtures and exports
    in a local read-only web app (Ctrl-C stops it).

    \b
    Examples:
      flan browse
      flan browse --export out/demo --port 0 --no-open
    """
    from .browse.server import DEFAULT_HOST, BrowseApp, is_loopback, make_server, url_of

    if catalog_path is not None:
        ctx.ensure_object(dict).update(root=catalog_path)
        ctx.obj.pop("catalog", None)
    cat = _catalog(ctx)
    app = BrowseApp(cat, export_dir, parse_source_dirs(cat, source_dirs))
    bind = host if host is not None else DEFAULT_HOST
    srv = make_server(app, bind, port)
    url = url_of(srv)
    if not is_loopback(bind):
        click.echo(f"warning: listening on {bind}, reachable from other machines", err=True)
    click.echo(f"flan browse: serving {url} (Ctrl-C to stop)", err=False)
    if not no_open:
        import contextlib
        import webbrowser

        with contextlib.suppress(Exception):  # no browser: the URL is printed above
            webbrowser.open(url)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        srv.server_close()


main.add_command(import_group)


if __name__ == "__main__":  # pragma: no cover
    main()
