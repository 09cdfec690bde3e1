#!/usr/bin/env python3
"""Scan rendered text for artefacts a model would learn (issue 11).

    PYTHONPATH=. python tools/scan_render.py --seeds 20 \\
        --source-dir niv2=../shared/data/niv2/tasks --source-dir cot=../shared/data/flan_cot

Renders, in every format the task has and for each seed:
  * every task with bundled sample data (its validation rows, exemplars from train);
  * every task readable from a ``--source-dir`` (e.g. the real NIv2/CoT files);
  * with ``--synthetic`` (default on), one task per distinct template-set list of
    the whole catalog on synthetic rows, so every template family is covered.
Counts per pattern (see flan_data/textcheck.py):
  stacked_cue            two cue labels with only whitespace between (``Q: Q:``)
  doubled_option_punct   option text ending in . ? ! given another . or ; by the style
  noopt_choice_words     a *_noopt input whose template wording talks about choices
  cot_target_no_answer   a CoT target that does not end with the answer text
  cot_answer_is_marker   a CoT target ending in an option marker ((C), B) ...) not text
  cot_inline_options_missing  ecqa/qasc/aqua CoT input without the question's inline options
Prints a table (pattern x part) and, with --examples N, N examples per pattern.
Exit status 1 when any pattern is found and --fail is given.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flan_data import Catalog  # noqa: E402
from flan_data.errors import FlanDataError  # noqa: E402
from flan_data.linter import synthetic_rows  # noqa: E402
from flan_data.render import Exemplar, RenderConfig, Renderer, build_pool  # noqa: E402
from flan_data.textcheck import PATTERNS, row_findings  # noqa: E402


class Scan:
    def __init__(self, examples: int):
        self.counts: dict[str, Counter] = defaultdict(Counter)
        self.renders: Counter = Counter()
        self.examples: dict[str, list[str]] = defaultdict(list)
        self.by_key: dict[str, Counter] = defaultdict(Counter)
        self.n_examples = examples
        self.failures: list[str] = []
        # rows (any format) with at least one stacked cue, per collection x format
        self.rows_by: Counter = Counter()
        self.stacked_rows_by: Counter = Counter()

    def add(self, part, tr, fmt, cols, canons, raws, pool_by_id):
        for j in range(len(cols["inputs"])):
            i = cols["index"][j]
            exs = [pool_by_id[e] for e in cols["exemplar_ids"][j] if e in pool_by_id]
            found = row_findings(
                tr.task.name, fmt, cols["inputs"][j], cols["targets"][j], canons[i], raws[i], exs
            )
            self.renders[part] += 1
            key = (tr.task.collection, fmt)
            self.rows_by[key] += 1
            if any(p == "stacked_cue" for p, _ in found):
                self.stacked_rows_by[key] += 1
            for pat, ev in found:
                self.counts[pat][part] += 1
                self.by_key[pat][
                    f"{tr.task.collection}/{fmt}/{cols['template_id'][j]}/{cols['fewshot_style'][j]}"
                ] += 1
                if len(self.examples[pat]) < self.n_examples:
                    self.examples[pat].append(
                        f"[{tr.task.name} {fmt} {cols['template_id'][j]} {cols['fewshot_style'][j]}] "
                        f"{ev!r}\n--- inputs:\n{cols['inputs'][j]}\n--- targets:\n{cols['targets'][j]}\n"
                    )


def scan_task(scan, part, tr, source, dirs, seeds, rows):
    from flan_data.sources import open_task_source

    try:
        src = open_task_source(tr.catalog, tr.task, source, dirs)
        splits = src.splits()
        split = "validation" if "validation" in splits else splits[0]
        items = []
        for i, r in enumerate(src.read(split)):
            if i >= rows:
                break
            items.append(r)
        pool = build_pool(tr, src.read("train"), limit=200) if "train" in splits else None
    except FlanDataError as e:
        scan.failures.append(f"{tr.task.name}: {e}")
        return
    canons, raws = [], []
    for eid, raw in items:
        canons.append(tr.canonical(eid, raw))
        raws.append(raw)
    pool_by_id = {e.example_id: e.fields for e in pool or ()}
    for fmt in tr.formats():
        for seed in range(seeds):
            try:
                cols = tr.render_batch(
                    items, split=split, fmt=fmt, seed=seed, pool=pool, canonicals=canons
                )
            except FlanDataError as e:
                scan.failures.append(f"{tr.task.name} {fmt}: {e}")
                break
            scan.add(part, tr, fmt, cols, canons, raws, pool_by_id)


def scan_synthetic(scan, renderer, seeds, rows):
    seen = set()
    for task in renderer.catalog.tasks.values():
        key = (task.templates, task.has_options, task.exemplar_field is not None)
        if key in seen:
            continue
        seen.add(key)
        tr = renderer.task_renderer(task)
        # the rows `flan lint` checks, and six more as the few-shot pool
        items = synthetic_rows(task, rows)
        canons = [c for _, c in items]
        pool = [Exemplar(f"pool-{i}", c) for i, (_, c) in enumerate(synthetic_rows(task, 6, 100))]
        pool_by_id = {e.example_id: e.fields for e in pool}
        for fmt in tr.formats():
            for seed in range(seeds):
                try:
                    cols = tr.render_batch(
                        items, split="validation", fmt=fmt, seed=seed, pool=pool, canonicals=canons
                    )
                except FlanDataError as e:
                    scan.failures.append(f"synthetic {task.name} {fmt}: {e}")
                    break
                scan.add("synthetic", tr, fmt, cols, canons, canons, pool_by_id)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--rows", type=int, default=12)
    ap.add_argument("--source-dir", action="append", default=[], metavar="NAME=PATH")
    ap.add_argument("--no-synthetic", action="store_true")
    ap.add_argument("--examples", type=int, default=0)
    ap.add_argument("--top", type=int, default=0, help="show the top N template/style keys")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--fail", action="store_true")
    a = ap.parse_args(argv)

    from flan_data.cli import parse_source_dirs

    cat = Catalog.load()
    dirs = parse_source_dirs(cat, a.source_dir)
    renderer = Renderer(cat, RenderConfig())
    scan = Scan(a.examples)
    for task in cat.tasks.values():
        if task.sample is not None:
            scan_task(scan, "sample", renderer.task_renderer(task), "sample", None, a.seeds, a.rows)
    for task in cat.tasks.values():
        d = dirs.get(task.name) or dirs.get(task.collection)
        if d is None:
            continue
        path = Path(d) / task.source.path
        if not (path.exists() or path.with_suffix(".json").exists()):
            continue
        scan_task(scan, "source_dir", renderer.task_renderer(task), "auto", dirs, a.seeds, a.rows)
    if not a.no_synthetic:
        scan_synthetic(scan, renderer, a.seeds, a.rows)

    parts = [p for p in ("sample", "source_dir", "synthetic") if scan.renders[p]]
    print(f"{'pattern':28}" + "".join(f"{p:>12}" for p in parts) + f"{'total':>10}")
    print(f"{'(renders)':28}" + "".join(f"{scan.renders[p]:>12}" for p in parts))
    for pat in PATTERNS:
        c = scan.counts[pat]
        print(f"{pat:28}" + "".join(f"{c[p]:>12}" for p in parts) + f"{sum(c.values()):>10}")
    print("rows with a stacked cue, per collection and format (all parts):")
    for coll in sorted({c for c, _ in scan.rows_by}):
        cells = []
        for fmt in ("zs_opt", "zs_noopt", "fs_opt", "fs_noopt", "cot"):
            n = scan.rows_by[(coll, fmt)]
            if n:
                k = scan.stacked_rows_by[(coll, fmt)]
                cells.append(f"{fmt} {k}/{n} ({100 * k / n:.0f}%)")
        print(f"  {coll:10} " + "; ".join(cells))
    for f in scan.failures:
        print("render failure:", f)
    if a.top:
        for pat in PATTERNS:
            for k, v in scan.by_key[pat].most_common(a.top):
                print(f"  {pat} {k}: {v}")
    for pat in PATTERNS:
        for ex in scan.examples[pat]:
            print(f"== {pat} {ex}")
    if a.json:
        a.json.write_text(
            json.dumps(
                {
                    "renders": dict(scan.renders),
                    "counts": {p: dict(scan.counts[p]) for p in PATTERNS},
                    "failures": scan.failures,
                },
                indent=2,
                sort_keys=True,
            )
        )
    return 1 if a.fail and any(sum(scan.counts[p].values()) for p in PATTERNS) else 0


if __name__ == "__main__":
    sys.exit(main())
