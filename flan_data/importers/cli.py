"""``flan import ...``: thin click commands over :mod:`flan_data.importers`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..clickgroup import FlanGroup


@click.group("import", cls=FlanGroup)
def import_group() -> None:
    """Convert templates of other projects into flan-data template files."""


@import_group.command("promptsource", short_help="Convert promptsource templates.yaml files.")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write one <set>.yaml per converted file here. Without it: a dry run that only reports.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.option(
    "--truncate/--no-truncate",
    default=True,
    show_default=True,
    help="Cut each {{ ... }} value to 2,048 characters when rendering, as promptsource does by default.",
)
@click.option(
    "--verbose",
    "-v",
    is_flag=True,
    help="One line per file (default: a progress bar and a summary).",
)
@click.option(
    "--top",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="How many skip reasons to list.",
)
@click.pass_context
def promptsource_cmd(
    ctx: click.Context,
    path: Path,
    out_dir: Path | None,
    as_json: bool,
    truncate: bool,
    verbose: bool,
    top: int,
) -> None:
    """Convert promptsource templates.yaml files (PATH: a file, or a folder searched recursively).

    Each file becomes the template set ps.<dataset>[.<subset>] and a task of the
    same name (collection `promptsource`, source: the HF dataset the prompts were
    written for), plus the mixture `promptsource` over them; use the output with
    `flan --extra DIR ...`. Imported templates render exactly as promptsource
    renders them (its whitespace rules; choice/random seeded per example).
    Templates that cannot be converted are listed with the reason. Exits 1 when
    a file cannot be read or is not a promptsource template file.

    \b
    Examples:
      flan import promptsource promptsource/templates                 # dry run: report only
      flan import promptsource promptsource/templates --out imported/
      flan --extra imported/ render ps.super_glue.rte --source-dir ps.super_glue.rte=rte_copy/
      flan --extra imported/ export --mixture promptsource --out out/ps --source-dir ...
    """
    from tqdm import tqdm

    # Imported here, not at module level, so `flan` starts without the converter.
    from .promptsource import convert_tree, summarize, write_results

    files = _count_files(path)
    bar = tqdm(total=files, unit="file", disable=as_json or verbose or files < 2, file=sys.stderr)
    try:
        results = convert_tree(
            path, truncate=2048 if truncate else None, progress=lambda f: bar.update(1)
        )
    finally:
        bar.close()
    written = write_results(results, out_dir) if out_dir is not None else {}
    report = summarize(results, written)
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        _print_report(report, out_dir, top, verbose)
    if report["files_failed"]:
        ctx.exit(1)


def _count_files(path: Path) -> int:
    if path.is_dir():
        return sum(1 for p in path.rglob("templates.yaml") if p.is_file())
    return 1


def _print_report(report: dict, out_dir: Path | None, top: int, verbose: bool = True) -> None:
    for r in report["results"]:
        if r["error"] is not None:
            click.echo(f"{r['file']}: " + click.style(f"ERROR: {r['error']}", fg="red"), err=True)
            continue
        if not verbose and not r["skipped_templates"]:
            continue
        line = f"{r['file']}: {r['set']}  converted {r['converted']}, skipped {r['skipped']}"
        click.echo(line + (f"  -> {r['output']}" if r["output"] else ""))
        for s in r["skipped_templates"]:
            click.echo(f"    skipped {s['name'] or s['uuid']!r}: {s['reason']}")
    click.echo(
        f"\n{report['files']} file(s), {report['templates']} template(s): {report['converted']} converted, "
        f"{report['skipped']} skipped, {report['files_failed']} file(s) could not be read"
    )
    if report["skip_reasons"] and top:
        click.echo("top skip reasons:")
        for item in report["skip_reasons"][:top]:
            click.echo(f"  {item['count']:>5}  {item['reason']}")
    if out_dir is None:
        click.echo("dry run: nothing written (use --out DIR to write the converted files)")
    else:
        click.echo(f"wrote {report['written']} file(s) to {out_dir}")
