"""A flan2022 dress rehearsal on synthetic local sources, end to end through `flan export`.

Usage:
  python bench/flan2022_replica.py [--fraction 0.02] [--cap 20000] [--workers 1 2] [--keep DIR]

1. Plans the flan2022 mixture from the catalog's published sizes (``--sizes
   metadata``), scaled by ``--fraction`` (1.0 = the full ≈9.3M rows).
2. Writes schema-faithful synthetic sources for every task the plan draws from
   in the collections generated here, each only as large as the plan needs
   (the plan's per-task count, at most ``--cap`` records; extra rows walk the
   records again with a new seed, as a real export does):
   - NIv2: natural-instructions task files (``Definition``, ``Positive
     Examples``, ``Instances`` with ``id``/``input``/``output``), one per task;
   - CoT: the FLAN TSVs (question, answer, chain of thought; newlines escaped);
   - T0-SF: P3 rows saved with ``datasets.Dataset.save_to_disk``
     (``inputs_pretokenized``, ``targets_pretokenized``, ``answer_choices``).
   Flan 2021 (one HF schema per dataset) and dialog tasks are not generated
   yet: they are excluded (``--exclude flan2021 --exclude dialog``) and the
   report says so.
3. Runs ``flan export --mixture flan2022 --sizes``-free (counts from the
   replica) with ``--source-dir`` for each collection/task, once per worker
   count, in a subprocess, and prints rows, wall time, examples/s and the peak
   RSS of the whole process tree (children included), then the rate of an
   f-string pipeline over the same sources (read, format, write Arrow).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flan_data import Catalog  # noqa: E402
from flan_data.export import candidate_tasks  # noqa: E402
from flan_data.mixture import metadata_sizes, parse_excludes, plan_mixture  # noqa: E402

WORDS = [
    "the",
    "a",
    "of",
    "river",
    "city",
    "model",
    "data",
    "paper",
    "small",
    "large",
    "report",
    "found",
    "said",
    "new",
    "time",
    "year",
    "people",
    "water",
    "light",
    "house",
    "school",
    "group",
    "change",
    "study",
    "music",
    "north",
    "game",
    "table",
    "field",
    "market",
    "story",
]
GENERATED = ("niv2", "cot", "t0sf")


def sentence(r: random.Random, lo: int, hi: int) -> str:
    return " ".join(r.choice(WORDS) for _ in range(r.randint(lo, hi))).capitalize() + "."


def write_niv2(path: Path, name: str, n: int, r: random.Random) -> None:
    doc = {
        "Contributors": ["synthetic"],
        "Source": ["synthetic"],
        "Categories": ["Question Answering"],
        "Definition": [sentence(r, 20, 60)],
        "Positive Examples": [
            {"input": sentence(r, 10, 40), "output": sentence(r, 1, 8), "explanation": "x"}
            for _ in range(3)
        ],
        "Negative Examples": [],
        "Instances": [
            {"id": f"{name}-{i}", "input": sentence(r, 15, 120), "output": [sentence(r, 1, 10)]}
            for i in range(n)
        ],
    }
    path.write_text(json.dumps(doc))


def write_cot(path: Path, n: int, r: random.Random, options=None) -> None:
    # tasks with fixed options (e.g. e-SNLI's yes / it is not possible to tell / no)
    # answer with one of them, as the real files do
    with open(path, "w") as f:
        for _ in range(n):
            a = r.choice(options) if options else sentence(r, 1, 4)
            f.write(f"{sentence(r, 10, 60)}\t{a}\t{sentence(r, 20, 80)}\n")


def write_p3(path: Path, n: int, r: random.Random) -> None:
    import datasets

    datasets.disable_progress_bars()
    rows = []
    for _ in range(n):
        choices = [sentence(r, 1, 4) for _ in range(r.randint(2, 4))]
        rows.append({
            "inputs_pretokenized": sentence(r, 20, 150) + "\n",
            "targets_pretokenized": " " + r.choice(choices) + "\n",
            "answer_choices": choices,
        })  # fmt: skip
    datasets.Dataset.from_list(rows).save_to_disk(str(path))


def build(cat: Catalog, plan, tasks, root: Path, cap: int) -> tuple[list[str], dict[str, int]]:
    """Write the sources; return the --source-dir arguments and records per task.
    Every candidate task gets a source (export counts them all), a tiny one when
    the plan draws nothing from it."""
    need: dict[str, int] = {t.name: 0 for t in tasks}
    for e in plan.entries:
        need[e.task] = need.get(e.task, 0) + e.count
    args: list[str] = []
    made: dict[str, int] = {}
    (root / "niv2").mkdir(parents=True, exist_ok=True)
    (root / "cot").mkdir(exist_ok=True)
    cot_files: dict[str, int] = {}
    for name, rows in sorted(need.items()):
        t = cat.task(name)
        r = random.Random(name)
        hold = t.source.validation_size or 0
        n = max(min(rows, cap), 8) + hold
        if t.collection == "niv2":
            write_niv2(root / "niv2" / f"{t.source.path}.json", name, n, r)
        elif t.collection == "cot":
            f = root / "cot" / t.source.path
            if cot_files.get(t.source.path, 0) < n:  # tasks share a TSV (and its inversions)
                write_cot(f, n, r, t.options)
                cot_files[t.source.path] = n
        elif t.collection == "t0sf":
            d = root / "t0sf" / name
            write_p3(d, n, r)
            args += ["--source-dir", f"{name}={d}"]
        else:
            continue
        made[name] = n - hold
    args += ["--source-dir", f"niv2={root / 'niv2'}", "--source-dir", f"cot={root / 'cot'}"]
    return args, made


def tree_rss_cmd(cmd: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Run ``cmd``; return (wall s, peak RSS MB of the process tree, stderr).

    RUSAGE_CHILDREN's ru_maxrss is the largest of the waited-for descendants;
    the export's worker pool and its driver are measured in one helper process
    that reports its own and its children's maxima."""
    helper = (
        "import resource, subprocess, sys, json;"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
        "s = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss;"
        "print(json.dumps({'rc': p.returncode, 'rss_kb': s, 'err': p.stderr[-3000:]}))"
    )
    t = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", helper, *cmd], capture_output=True, text=True, env=env
    )
    wall = time.perf_counter() - t
    res = json.loads(out.stdout.strip().splitlines()[-1])
    if res["rc"] != 0:
        raise SystemExit(f"export failed:\n{res['err']}")
    return wall, res["rss_kb"] // 1024, res["err"]


def fstring_pipeline(root: Path, out: Path) -> int:
    """The baseline: read the same files, format with f-strings, write Arrow."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    out.mkdir(parents=True, exist_ok=True)
    n = 0
    buf: list[tuple[str, str]] = []

    def flush() -> None:
        nonlocal buf
        t = pa.table({"inputs": [a for a, _ in buf], "targets": [b for _, b in buf]})
        with ipc.new_file(str(out / f"s{n}.arrow"), t.schema) as w:
            w.write_table(t)
        buf = []

    for f in sorted((root / "niv2").glob("*.json")):
        doc = json.loads(f.read_text())
        d = doc["Definition"][0]
        for inst in doc["Instances"]:
            buf.append((f"{d}\n\nInput: {inst['input']}\nOutput:", inst["output"][0]))
            n += 1
            if len(buf) >= 10_000:
                flush()
    for f in sorted((root / "cot").glob("*.tsv")):
        with open(f) as fh:
            for line in fh:
                q, a, c = line.rstrip("\n").split("\t")
                buf.append((f"{q}\nLet's think step by step.", f"{c} So the answer is {a}."))
                n += 1
    if (root / "t0sf").is_dir():
        import datasets

        for d in sorted((root / "t0sf").iterdir()):
            for rec in datasets.load_from_disk(str(d)):
                buf.append(
                    (rec["inputs_pretokenized"].strip(), rec["targets_pretokenized"].strip())
                )
                n += 1
                if len(buf) >= 10_000:
                    flush()
    if buf:
        flush()
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fraction", type=float, default=0.02, help="of the published-size plan")
    ap.add_argument("--cap", type=int, default=20_000, help="records per task at most")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--keep", type=Path, help="write the sources here and keep them")
    args = ap.parse_args()
    cat = Catalog.load()
    spec = cat.mixture("flan2022")
    excl = parse_excludes(cat, [c for c in ("flan2021", "dialog") if c in cat.collections])
    tasks = candidate_tasks(cat, spec, excl)
    full = plan_mixture(cat, spec, metadata_sizes(tasks), exclude=excl)
    total = max(1, round(sum(e.count for e in full.entries) * args.fraction))
    plan = plan_mixture(cat, spec, metadata_sizes(tasks), total=total, exclude=excl)
    root = args.keep or Path(tempfile.mkdtemp(prefix="flan2022-replica-"))
    t = time.perf_counter()
    dirs, made = build(cat, plan, tasks, root / "src", args.cap)
    print(
        f"replica: {len(made)} tasks ({', '.join(GENERATED)}), {sum(made.values()):,} records, "
        f"written in {time.perf_counter() - t:.0f}s; plan total {total:,} rows "
        f"(fraction {args.fraction} of {sum(e.count for e in full.entries):,}; flan2021 and dialog excluded)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    rates = {}
    for w in args.workers:
        out = root / f"out{w}"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-m", "flan_data", "export", "--mixture", "flan2022",
               "--total", str(total), "--out", str(out), "--workers", str(w), "--source", "real",
               "--exclude", "flan2021", "--exclude", "dialog", *dirs]  # fmt: skip
        wall, rss, _err = tree_rss_cmd(cmd, env)
        rows = json.loads((out / "manifest.json").read_text())["num_rows"]
        rates[w] = rows / wall
        print(
            f"flan export --workers {w}: {rows:,} rows in {wall:.1f}s = {rows / wall:,.0f} ex/s, "
            f"peak RSS (largest process of the tree) {rss} MB"
        )
    t = time.perf_counter()
    n = fstring_pipeline(root / "src", root / "fpipe")
    f = n / (time.perf_counter() - t)
    print(f"f-string pipeline over the same sources: {n:,} records, {f:,.0f} ex/s")
    for w, r in rates.items():
        print(f"ours {w} worker(s) / f-string = {r / f:.2f}x")
    if len(rates) > 1:
        print(f"{max(rates)} workers / 1 = {rates[max(rates)] / rates[min(rates)]:.2f}x")
    print(f"self peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
