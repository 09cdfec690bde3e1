"""The ``flan`` command line: thin click commands over the library.

Every command maps library errors (:class:`~flan_data.errors.FlanDataError`) to
a one-paragraph message and exit status 1; no traceback is the only output.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import click

from . import __version__
from .catalog import Catalog
from .clickgroup import FlanGroup
from .errors import FlanDataError, MissingDependencyError, UnknownNameError
from .importers.cli import import_group
from .lint import lint
from .render import OPTION_STYLES, RenderConfig, Renderer, render_task
from .sources import SOURCE_CHOICES
from .specs import FORMATS, TaskSpec, thaw


def _catalog(ctx: click.Context) -> Catalog:
    obj = ctx.ensure_object(dict)
    if "catalog" not in obj:
        obj["catalog"] = Catalog.load(obj.get("root"), extra_files=obj.get("extra", ()))
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
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of tasks.")
@click.pass_context
def catalog_list(ctx, collection, category, text, sample_only, as_json) -> None:
    """List tasks as a table (or JSON)."""
    cat = _catalog(ctx)
    tasks = cat.search(text, collection, category)
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
        ]
        for r in rows
    ]
    click.echo(_table(table, ["task", "collection", "category", "source", "templates", "sample"]))
    click.echo(f"\n{len(rows)} task(s)")


def task_info(cat: Catalog, t: TaskSpec) -> dict:
    """Everything about a task, as plain JSON-able data."""
    r = Renderer(cat)
    tr = r.task_renderer(t)

    def src(s):
        if s is None:
            return None
        return {k: thaw(v) for k, v in vars(s).items() if v not in (None, {}, ())} | {
            "kind": s.kind
        }

    return {
        "name": t.name,
        "collection": t.collection,
        "file": t.file,
        "source": src(t.source),
        "sample": src(t.sample),
        "fields": dict(t.fields),
        "options": list(t.options)
        if t.options is not None
        else ({"field": t.options_field} if t.options_field else None),
        "exemplars": t.exemplars,
        "template_sets": list(t.templates),
        "templates": [
            {
                "id": ct.spec.id,
                "kind": ct.spec.kind,
                "set": ct.spec.set,
                "variables": sorted(ct.variables),
            }
            for ct in tr.templates
        ],
        "formats": list(tr.formats()),
        "metadata": {k: thaw(v) for k, v in vars(t.metadata).items()},
    }


@catalog.command("show")
@click.argument("task")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@click.pass_context
def catalog_show(ctx, task, as_json) -> None:
    """Show a task: source, fields, options, templates, metadata."""
    cat = _catalog(ctx)
    info = task_info(cat, cat.task(task))
    if as_json:
        click.echo(json.dumps(info, indent=2, ensure_ascii=False))
        return
    m = info["metadata"]
    lines = [
        click.style(info["name"], bold=True) + f"  ({info['collection']})",
        f"  category:     {m['category'] or '-'}",
        f"  languages:    {', '.join(m['languages']) or '-'}",
        f"  license:      {m['license'] or '-'}",
        f"  held out:     {'yes' if m['held_out'] else 'no'}"
        + ("   (excluded from training mixtures)" if m["exclude_from_training"] else ""),
    ]
    if m["inversion_of"]:
        lines.append(f"  inversion of: {m['inversion_of']}")
    if m["task_type"]:
        lines.append(f"  task type:    {m['task_type']}")
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
    lines.append("  fields:")
    lines += [f"    {k} <- {v}" for k, v in info["fields"].items()]
    if info["options"] is not None:
        lines.append(f"  options:      {info['options']}")
    lines.append(f"  exemplars:    {info['exemplars']}")
    lines.append(f"  formats:      {', '.join(info['formats'])}")
    lines.append(
        f"  templates ({len(info['templates'])}, sets {', '.join(info['template_sets'])}):"
    )
    lines += [
        f"    {t['id']:<14} {t['kind']:<10} {', '.join(v for v in t['variables'])}"
        for t in info["templates"]
    ]
    click.echo("\n".join(lines))


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
@click.option(
    "--option-style", type=click.Choice(OPTION_STYLES), default="random", show_default=True
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
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
    option_style,
    as_json,
) -> None:
    """Render N examples of TASK in a format."""
    cat = _catalog(ctx)
    cfg = RenderConfig(shots=shots, budget=budget, option_style=option_style)
    dirs = parse_source_dirs(cat, source_dirs)
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


def _plan(ctx, name, total, exclude, source_dirs, sizes_from="count"):
    from .export import _source_choice, candidate_tasks, count_sizes
    from .export.local import _STATE
    from .mixture import metadata_sizes, parse_excludes, plan_mixture

    cat = _catalog(ctx)
    spec = cat.mixture(name)
    excludes = parse_excludes(cat, exclude)
    tasks = candidate_tasks(cat, spec, excludes)
    if sizes_from == "metadata":
        sizes = metadata_sizes(tasks)
    else:
        _STATE.update(catalog=cat)
        dirs = {k: str(v) for k, v in parse_source_dirs(cat, source_dirs).items()}
        sizes = count_sizes(cat, tasks, _source_choice(spec, None), dirs)
    return plan_mixture(cat, spec, sizes, total=total, exclude=excludes)


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
@click.option("--sizes", "sizes_from", type=click.Choice(["count", "metadata"]), default="count", show_default=True,
              help="Task sizes from counting the sources, or from the catalog's published counts (no data needed).")  # fmt: skip
@click.option(
    "--json", "as_json", is_flag=True, help="Counts per task × format and per collection as JSON."
)
@click.pass_context
def mixture_plan(ctx, name, total, exclude, source_dirs, sizes_from, as_json) -> None:
    """Print the exact number of examples each task × format contributes."""
    plan = _plan(ctx, name, total, exclude, source_dirs, sizes_from)
    data = plan.to_json()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    rows = [
        [
            e["task"],
            e["collection"],
            e["format"],
            str(e["count"]),
            str(e["size"]),
            f"{e['share']:.2%}",
        ]
        for e in data["entries"]
        if e["count"]
    ]
    click.echo(_table(rows, ["task", "collection", "format", "count", "size", "share"]))
    click.echo("")
    click.echo(
        _table(
            [[c, str(d["count"]), f"{d['share']:.2%}"] for c, d in data["collections"].items()],
            ["collection", "count", "share"],
        )
    )
    ex = plan.excluded
    more = f" (+{len(ex) - 8} more)" if len(ex) > 8 else ""
    click.echo(
        f"\ntotal {plan.total} examples from {len(plan.tasks())} tasks"
        + (f"; excluded {len(ex)}: {', '.join(ex[:8])}{more}" if ex else "")
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
@click.option(
    "--option-style", type=click.Choice(OPTION_STYLES), default="random", show_default=True
)
@click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
              help="A bad record stops the export (fail) or is counted in the manifest and left out (skip).")  # fmt: skip
@click.option("--overwrite", is_flag=True, help="Replace an export with a different spec in --out.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_context
def export(ctx, mixture_name, out, total, seed, workers, shard_rows, backend, ray_address, source, source_dirs, exclude, shots,
           budget, option_style, on_error, overwrite, quiet) -> None:  # fmt: skip
    """Render a mixture into Arrow shards with a manifest (resumable, deterministic)."""
    from .export import export_mixture

    cat = _catalog(ctx)
    export_mixture(cat, mixture_name, out, total=total, seed=seed, workers=workers, shard_rows=shard_rows, backend=backend,
                   ray_address=ray_address, source=source, source_dirs=parse_source_dirs(cat, source_dirs), exclude=exclude,
                   render_config=RenderConfig(shots=shots, budget=budget, option_style=option_style),
                   on_error=on_error, overwrite=overwrite, progress=not quiet,
                   log=lambda s: click.echo(s, err=True))  # fmt: skip


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


main.add_command(import_group)


if __name__ == "__main__":  # pragma: no cover
    main()
