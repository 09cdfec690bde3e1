"""A flan2022 dress rehearsal on synthetic local sources, end to end through `flan export`.

Usage:
  python bench/flan2022_replica.py [--fraction 0.02] [--cap 250000] [--workers 2 1]
                                   [--keep DIR] [--no-fstring]

1. Plans the flan2022 mixture from the catalog's published sizes, scaled by
   ``--fraction`` (1.0 = the full ≈9.2M rows).
2. Writes schema-faithful synthetic sources for EVERY task the mixture draws
   from, each only as large as the plan needs (the plan's per-task count, at
   most the published size and ``--cap``; extra rows walk the records again
   with a new seed, as a real export does):
   - Flan 2021 and dialog: each hub dataset's feature schema as the catalog
     reads it (``bench/replica_sources.py``), saved with ``save_to_disk`` per
     (hub id, config) and shared by the tasks reading it; FLAN's raw JSONL
     sources (opinion_abstracts, unified_qa) as JSONL folders;
   - NIv2: natural-instructions task files (``Definition``, ``Positive
     Examples``, ``Instances`` with ``id``/``input``/``output``), one per task;
   - CoT: the FLAN TSVs (question, answer, chain of thought; newlines escaped);
   - T0-SF: P3 rows saved with ``datasets.Dataset.save_to_disk``
     (``inputs_pretokenized``, ``targets_pretokenized``, ``answer_choices``).
   A task without a generator is printed loudly (``!! NOT GENERATED``), and
   so is any planned task missing from the export's manifest.
3. Runs ``flan export --mixture flan2022 --total N --source real`` with
   ``--source-dir`` per task/collection (counts from the replica itself), once
   per worker count, in a subprocess, and prints rows, wall time, examples/s,
   the peak RSS of the whole process tree (sum over the driver and its
   workers, sampled every 0.2 s) and of its largest process, then the rate of
   an f-string pipeline over the same sources (read, format, write Arrow).

``--keep DIR`` writes the sources there and reuses them on a later run with
the same ``--fraction``/``--cap`` (generation of the full size takes minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flan_data import Catalog  # noqa: E402
from flan_data.export import candidate_tasks  # noqa: E402
from flan_data.mixture import metadata_sizes, plan_mixture  # noqa: E402
from flan_data.sources.base import parse_split  # noqa: E402
from flan_data.specs import thaw  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import replica_sources  # noqa: E402
from replica_sources import Gen, list_array, survival, write_hf, write_jsonl, write_raw  # noqa: E402

GENERATED = ("flan2021", "t0sf", "niv2", "cot", "dialog")
MIN_RECORDS = 8
OTHER_SPLIT_ROWS = 300  # rows of a native split the export does not read (dev/test)


def _g(seed: str | int, words: int | None = None) -> Gen:
    return Gen(zlib.crc32(str(seed).encode()), words and min(words, replica_sources.STREAM_WORDS))


def write_niv2(path: Path, name: str, n: int, g: Gen) -> None:
    defs, pos_in, pos_out = g.text(1, 40), g.text(3, 25), g.text(3, 4)
    inp, out = g.text(n, 60, lo=5), g.text(n, 5)
    doc = {
        "Contributors": ["synthetic"],
        "Source": ["synthetic"],
        "Categories": ["Question Answering"],
        "Definition": defs,
        "Positive Examples": [
            {"input": a, "output": b, "explanation": "x"} for a, b in zip(pos_in, pos_out)
        ],
        "Negative Examples": [],
        "Instances": [
            {"id": f"{name}-{i}", "input": a, "output": [b]}
            for i, (a, b) in enumerate(zip(inp, out))
        ],
    }
    path.write_text(json.dumps(doc))


def write_cot(path: Path, n: int, g: Gen, options=None) -> None:
    # tasks with fixed options (e.g. e-SNLI's yes / it is not possible to tell / no)
    # answer with one of them, as the real files do
    ans = [options[i] for i in g.ints(n, 0, len(options)).tolist()] if options else g.text(n, 2.5)
    with open(path, "w") as f:
        for q, a, c in zip(g.text(n, 35), ans, g.text(n, 50)):
            f.write(f"{q}\t{a}\t{c}\n")


def write_p3(path: Path, n: int, g: Gen, options: bool) -> None:
    """P3 rows as ``save_to_disk`` writes them (``inputs_pretokenized``,
    ``targets_pretokenized``, ``answer_choices`` for multiple-choice subtasks)."""
    import datasets
    import pyarrow as pa

    datasets.disable_progress_bars()
    inputs = [x + "\n" for x in g.text(n, 85)]
    cols: dict = {"inputs_pretokenized": inputs}
    if options:
        k = g.counts(n, 3, 0.3, lo=2, hi=5)
        ch = g.text(int(k.sum()), 2)
        first = np.concatenate([[0], np.cumsum(k)[:-1]])
        pick = (first + g.rng.integers(0, k)).tolist()
        cols["targets_pretokenized"] = [" " + ch[i] + "\n" for i in pick]
        cols["answer_choices"] = list_array(k, ch)
    else:
        cols["targets_pretokenized"] = [" " + t + "\n" for t in g.text(n, 6)]
    datasets.Dataset(pa.table(cols)).save_to_disk(str(path))


def native_rows(tasks: list, need: dict[str, int]) -> dict[str, int]:
    """Rows per native split of one hub source shared by ``tasks`` so that each
    task's canonical train split holds ``need[task]`` records after its record
    rules, slices (``train[:-200]``) and hold-outs (``validation_size``)."""
    rows: dict[str, int] = {}
    for t in tasks:
        s = t.source
        base, a, b = parse_split(s.split_name("train"))
        raw = int(np.ceil(need[t.name] / survival(t))) + (s.validation_size or 0)
        head = a if a is not None and a > 0 else 0  # train[30200:60200]: a window of the split
        if b is not None and b > 0:
            raw = min(raw, b - head)
        tail = 0
        for c in s.canonical_splits():
            if c == "validation" and s.validation_size and c not in s.splits:
                continue  # carved from train (validation_size), not a split of its own
            nb, na, nz = parse_split(s.split_name(c))
            if nb == base:
                tail = max(tail, -(na or 0), -(nz or 0))
            elif c != "train":
                rows[nb] = max(rows.get(nb, 0), OTHER_SPLIT_ROWS, (nz or 0) if (nz or 0) > 0 else 0)
        rows[base] = max(rows.get(base, 0), head + raw + tail)
    return rows


def plan_needs(plan, tasks, cap: int) -> dict[str, int]:
    """Records per task: the plan's row count, at most the published size and
    ``cap``, at least a few (export counts every candidate task)."""
    need: dict[str, int] = {t.name: 0 for t in tasks}
    for e in plan.entries:
        need[e.task] = need.get(e.task, 0) + e.count
    pub = metadata_sizes(tasks)
    return {n: max(min(c, cap, pub.get(n) or c), MIN_RECORDS) for n, c in need.items()}


def build(
    cat: Catalog, need: dict[str, int], root: Path, log=print
) -> tuple[list[str], dict[str, int]]:
    """Write a source for every task in ``need`` (records wanted in its train
    split); return the --source-dir arguments and records per task.

    Tasks sharing a hub dataset or release file (the GLUE configs, a task and
    its inversion, the three ParaCrawl en-da windows) share one copy, sized for
    the task that needs the most."""
    args: list[str] = []
    made: dict[str, int] = {}
    for d in ("niv2", "cot", "t0sf", "flan2021", "dialog"):
        (root / d).mkdir(parents=True, exist_ok=True)
    cot_files: dict[str, int] = {}
    hub: dict[tuple[str, str, str, str | None], list] = {}
    for name in sorted(need):
        t = cat.task(name)
        n = need[name]
        hold = t.source.validation_size or 0
        if t.collection == "niv2":
            write_niv2(root / "niv2" / f"{t.source.path}.json", name, n + hold, _g(name, 50_000))
        elif t.collection == "cot":
            f = root / "cot" / t.source.path
            if cot_files.get(t.source.path, 0) < n + hold:  # tasks share a TSV (and its inversions)
                write_cot(f, n + hold, _g(name, 100_000), t.options)
                cot_files[t.source.path] = n + hold
        elif t.source.kind in ("hf", "raw"):
            hub.setdefault(
                (t.collection, t.source.kind, t.source.path, t.source.config), []
            ).append(t)
            continue
        elif t.source.kind == "jsonl" and t.collection == "flan2021":
            d = root / "flan2021" / t.source.path
            if not d.is_dir():
                write_jsonl(d, t.source.path, n + hold, zlib.crc32(name.encode()))
        else:
            log(f"!! NOT GENERATED: {name} ({t.collection}, {t.source.kind}:{t.source.path})")
            continue
        made[name] = n
    for (coll, kind, path, config), ts in sorted(hub.items(), key=lambda kv: str(kv[0])):
        seed = zlib.crc32(f"{kind}/{path}/{config}".encode())
        rows = native_rows(ts, need)
        try:
            if coll == "t0sf":  # one P3 subtask per config
                (t,) = ts
                d = root / "t0sf" / t.name
                write_p3(d, sum(rows.values()), _g(t.name), t.options_field is not None)
            elif kind == "raw":
                d = root / coll / f"raw--{path}"
                specs = list(
                    {
                        json.dumps(thaw(t.source.options), sort_keys=True): t.source for t in ts
                    }.values()
                )
                write_raw(d, specs, rows, seed)
            else:
                d = root / coll / f"{path.replace('/', '--')}--{config}"
                write_hf(d, path, config, rows, seed)
        except KeyError as e:
            log(f"!! NOT GENERATED: {', '.join(t.name for t in ts)}: {e}")
            continue
        for t in ts:
            args += ["--source-dir", f"{t.name}={d}"]
            made[t.name] = need[t.name]
    args += ["--source-dir", f"niv2={root / 'niv2'}", "--source-dir", f"cot={root / 'cot'}",
             "--source-dir", f"flan2021={root / 'flan2021'}"]  # fmt: skip
    return args, made


class Stopped(Exception):
    """The export ran past ``--deadline``; ``done`` rows were rendered in ``wall`` s."""

    def __init__(self, wall: float, done: float, tree: int, largest: int):
        super().__init__(f"stopped after {wall:.0f}s")
        self.wall, self.done, self.tree, self.largest = wall, done, tree, largest


def _bar_rows(err: list[str]) -> float:
    """Rows done from the last tqdm line of ``flan export`` (e.g. ``export:  41%|... 3.81M/9.19M``)."""
    import re

    text = "".join(err[-5:])
    hits = re.findall(r"export:[^|\r\n]*\|[^|]*\|\s*([\d.]+)([kM]?)/", text)
    if not hits:
        return 0.0
    n, unit = hits[-1]
    return float(n) * {"": 1, "k": 1e3, "M": 1e6}[unit]


def _tree_bytes(d: Path) -> int:
    total = 0
    stack = [str(d)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for e in it:
                    with contextlib.suppress(OSError):
                        if e.is_dir(follow_symlinks=False):
                            stack.append(e.path)
                        elif e.is_file(follow_symlinks=False):
                            total += e.stat(follow_symlinks=False).st_blocks * 512
        except OSError:
            pass
    return total


#: Filled by tree_rss_cmd when given ``out``: peak bytes on disk under it, and when
#: (seconds from the start) counting ended and the first shard appeared.
DISK: dict[str, float] = {}


def tree_rss_cmd(
    cmd: list[str], env: dict[str, str], deadline: float | None = None, out: Path | None = None
) -> tuple[float, int, int, str]:
    """Run ``cmd``; return (wall s, peak RSS MB of the whole process tree (sum,
    sampled every 0.2 s), peak RSS MB of its largest process, stderr tail).
    Past ``deadline`` seconds the tree is stopped and :class:`Stopped` raised.
    With ``out``, the peak of the bytes under it (sampled every ~3 s) and the
    stage times go to :data:`DISK`."""
    import psutil

    DISK.clear()
    last_du = 0.0

    t = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err: list[str] = []
    import threading

    def drain() -> None:
        while True:
            chunk = p.stderr.read(4096)
            if not chunk:
                return
            err.append(chunk)
            del err[:-200]

    th = threading.Thread(target=drain, daemon=True)
    th.start()
    proc = psutil.Process(p.pid)
    peak = 0
    while p.poll() is None:
        try:
            procs = [proc, *proc.children(recursive=True)]
            rss = 0
            for q in procs:
                with contextlib.suppress(psutil.Error):
                    rss += q.memory_info().rss
            peak = max(peak, rss)
        except psutil.Error:
            pass
        now = time.perf_counter() - t
        if out is not None and now - last_du > 3:
            last_du = now
            DISK["peak"] = max(DISK.get("peak", 0), _tree_bytes(out))
            if "counted" not in DISK and "export:" in "".join(err[-5:]):
                DISK["counted"] = now
            if "first_shard" not in DISK and any((out / "data").glob("shard-*")):
                DISK["first_shard"] = now
        if deadline is not None and time.perf_counter() - t > deadline:
            done = _bar_rows(err)
            for q in [*proc.children(recursive=True), proc]:
                with contextlib.suppress(psutil.Error):
                    q.kill()
            p.wait()
            raise Stopped(time.perf_counter() - t, done, peak // 2**20,
                          resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)  # fmt: skip
        time.sleep(0.2)
    th.join()
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"export failed (rc {p.returncode}):\n{''.join(err)[-4000:]}")
    largest = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
    return wall, peak // 2**20, largest, "".join(err)


def _strings(v, out: list[str]) -> list[str]:
    """The string leaves of a record, in order (translation pairs, nested answers, ...)."""
    if isinstance(v, str):
        out.append(v)
    elif isinstance(v, dict):
        for x in v.values():
            _strings(x, out)
    elif isinstance(v, list):
        for x in v[:8]:
            _strings(x, out)
    return out


def fstring_pipeline(root: Path, out: Path, limit: int | None = None) -> int:
    """The baseline: read the same files, format with f-strings, write Arrow
    (at most ``limit`` records of each source file when given)."""
    import itertools

    import pyarrow as pa
    import pyarrow.ipc as ipc

    out.mkdir(parents=True, exist_ok=True)
    n = 0
    buf: list[tuple[str, str]] = []

    def add(x: str, y: str) -> None:
        nonlocal n
        buf.append((x, y))
        n += 1
        if len(buf) >= 10_000:
            flush()

    def flush() -> None:
        nonlocal buf
        t = pa.table({"inputs": [a for a, _ in buf], "targets": [b for _, b in buf]})
        with ipc.new_file(str(out / f"s{n}.arrow"), t.schema) as w:
            w.write_table(t)
        buf = []

    for f in sorted((root / "niv2").glob("*.json")):
        doc = json.loads(f.read_text())
        d = doc["Definition"][0]
        for inst in doc["Instances"][:limit]:
            add(f"{d}\n\nInput: {inst['input']}\nOutput:", inst["output"][0])
    for f in sorted((root / "cot").glob("*.tsv")):
        with open(f) as fh:
            for line in itertools.islice(fh, limit):
                q, a, c = line.rstrip("\n").split("\t")
                add(f"{q}\nLet's think step by step.", f"{c} So the answer is {a}.")
    for f in sorted((root / "flan2021").glob("*/train.jsonl")):
        with open(f) as fh:
            for line in itertools.islice(fh, limit):
                rec = json.loads(line)
                vals = [v for v in rec.values() if isinstance(v, str)]
                add("\n\n".join(vals[:-1]) + "\nAnswer:", vals[-1])
    import datasets

    for coll in ("t0sf", "flan2021", "dialog"):
        for d in sorted((root / coll).iterdir()):
            if not (d / "dataset_dict.json").is_file() and not (d / "state.json").is_file():
                continue
            obj = datasets.load_from_disk(str(d))
            if isinstance(obj, datasets.DatasetDict):
                obj = obj["train"] if "train" in obj else next(iter(obj.values()))
            for rec in itertools.islice(obj, limit):
                vals = _strings(rec, []) or [""]
                add("\n\n".join(vals[:-1]) + "\nAnswer:", vals[-1].strip())
    if buf:
        flush()
    return n


def load_avg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fraction", type=float, default=0.02, help="of the published-size plan")
    ap.add_argument("--cap", type=int, default=250_000, help="records per task at most")
    ap.add_argument("--workers", type=int, nargs="+", default=[2, 1])
    ap.add_argument("--keep", type=Path, help="write the sources here, keep and reuse them")
    ap.add_argument("--no-fstring", action="store_true", help="skip the f-string baseline")
    ap.add_argument(
        "--deadline", type=float, help="stop an export after this many seconds (report progress)"
    )
    ap.add_argument(
        "--fstring-limit", type=int, help="f-string baseline: records per source file at most"
    )
    ap.add_argument(
        "--generate-only", action="store_true", help="write the sources (--keep) and stop"
    )
    ap.add_argument("--export-fraction", type=float,
                    help="export this fraction of the published-size plan from the sources (default: --fraction)")  # fmt: skip
    ap.add_argument(
        "--extra", nargs=argparse.REMAINDER, default=[], help="more flan export options"
    )
    args = ap.parse_args()
    cat = Catalog.load()
    spec = cat.mixture("flan2022")
    tasks = candidate_tasks(cat, spec, [])
    full = plan_mixture(cat, spec, metadata_sizes(tasks))
    full_n = sum(e.count for e in full.entries)
    total = max(1, round(full_n * args.fraction))
    plan = plan_mixture(cat, spec, metadata_sizes(tasks), total=total)
    root = args.keep or Path(tempfile.mkdtemp(prefix="flan2022-replica-"))
    marker = root / "replica.json"
    # reuse the sources while every task reads the same kind of source the same way
    sig = {t.name: [t.source.kind, t.source.path, t.source.config, dict(t.source.splits),
                    t.source.validation_size, t.records.describe()] for t in tasks}  # fmt: skip
    key = {"fraction": args.fraction, "cap": args.cap, "sources": sig}
    t = time.perf_counter()
    old = json.loads(marker.read_text()) if marker.is_file() else None
    if old is not None and old.get("key") == key:
        dirs, made = old["dirs"], old["made"]
        print(f"replica: reusing {root}")
    elif old is not None and {k: v for k, v in old["key"].items() if k != "sources"} == {
        k: v for k, v in key.items() if k != "sources"
    }:
        # the catalog changed how some tasks read their source: rebuild those only
        changed = sorted(
            n for n in sig if old["key"]["sources"].get(n) != json.loads(json.dumps(sig[n]))
        )
        print(
            f"replica: {len(changed)} task(s) read their source differently now, rebuilt: {', '.join(changed[:10])}"
        )
        need = plan_needs(plan, tasks, args.cap)
        new_dirs, new_made = build(cat, {n: need[n] for n in changed}, root / "src")
        pairs = [
            (a, b)
            for a, b in zip(old["dirs"][::2], old["dirs"][1::2])
            if b.split("=", 1)[0] not in changed
        ]
        dirs = [x for p in pairs for x in p] + [x for a, b in zip(new_dirs[::2], new_dirs[1::2])
                                                 if b.split("=", 1)[0] in changed for x in (a, b)]  # fmt: skip
        made = {**{k: v for k, v in old["made"].items() if k not in changed}, **new_made}
        marker.write_text(json.dumps({"key": key, "dirs": dirs, "made": made}))
    else:
        shutil.rmtree(root / "src", ignore_errors=True)
        dirs, made = build(cat, plan_needs(plan, tasks, args.cap), root / "src")
        marker.write_text(json.dumps({"key": key, "dirs": dirs, "made": made}))
    missing = sorted(set(plan.tasks()) - set(made))
    by_coll: dict[str, int] = {}
    for name, n in made.items():
        c = cat.task(name).collection
        by_coll[c] = by_coll.get(c, 0) + n
    print(
        f"replica: {len(made)} tasks, {sum(made.values()):,} records "
        f"({', '.join(f'{c} {n:,}' for c, n in sorted(by_coll.items()))}), "
        f"ready in {time.perf_counter() - t:.0f}s; plan total {total:,} rows "
        f"(fraction {args.fraction} of {full_n:,}), nothing excluded"
    )
    if missing:
        print(f"!! {len(missing)} PLANNED TASKS HAVE NO SOURCE: {', '.join(missing[:20])}")
    if args.generate_only:
        return
    if args.export_fraction is not None:
        total = max(1, round(full_n * args.export_fraction))
        print(f"exporting {total:,} rows (fraction {args.export_fraction}) from these sources")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    rates = {}
    for w in args.workers:
        out = root / f"out{w}"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-m", "flan_data", "export", "--mixture", "flan2022",
               "--total", str(total), "--out", str(out), "--workers", str(w), "--source", "real",
               *args.extra, *dirs]  # fmt: skip
        before = load_avg()
        try:
            wall, tree, largest, err = tree_rss_cmd(cmd, env, args.deadline, out)
        except Stopped as e:
            print(
                f"!! flan export --workers {w}: STOPPED at the --deadline after {e.wall:.0f}s with "
                f"{e.done:,.0f} of {total:,} rows rendered ({e.done / e.wall:,.0f} ex/s so far; at that "
                f"rate the whole export needs ~{total / max(e.done, 1) * e.wall / 60:.0f} min), peak RSS "
                f"{e.tree} MB (tree), {e.largest} MB (largest); load {before} -> {load_avg()}; peak disk under "
                f"--out {DISK.get('peak', 0) / 2**30:.1f} GiB; counting ~{DISK.get('counted', 0):.0f}s, "
                f"first shard ~{DISK.get('first_shard', 0):.0f}s"
            )
            continue
        m = json.loads((out / "manifest.json").read_text())
        rows = m["num_rows"]
        rates[w] = rows / wall
        left_out = sorted(set(plan.tasks()) - set(m["counts"]))
        print(
            f"flan export --workers {w}: {rows:,} rows ({len(m['counts'])} tasks) in {wall:.1f}s = "
            f"{rows / wall:,.0f} ex/s, peak RSS {tree} MB (process tree, sum), {largest} MB (largest "
            f"process); load {before} -> {load_avg()}"
        )
        size = _tree_bytes(out / "data")
        print(
            f"   disk: output {size / 2**30:.1f} GiB, peak under --out {DISK.get('peak', 0) / 2**30:.1f} GiB "
            f"({DISK.get('peak', 0) / max(size, 1):.2f}x the output, sampled every ~3 s); stages: counting "
            f"~{DISK.get('counted', 0):.0f}s, jobs to ~{DISK.get('first_shard', 0):.0f}s (first shard), "
            f"assembly and manifest to {wall:.0f}s"
        )
        if m.get("skipped"):
            n_sk = sum(v for d in m["skipped"].values() for v in d.values())
            print(f"   skipped {n_sk:,} rows: {json.dumps(m['skipped'])[:300]}")
        excluded = [*m["plan"].get("excluded", []), *m.get("unavailable", {})]
        if excluded:
            print(f"!! EXCLUDED FROM THE EXPORT: {', '.join(excluded)}")
        if left_out:  # the export plans on the replica's sizes, the replica on the published ones
            print(
                f"   {len(left_out)} task(s) with rows in the published-size plan drew none in the export's plan: {', '.join(left_out[:10])}"
            )
        shutil.rmtree(out, ignore_errors=True)
    if not args.no_fstring:
        t = time.perf_counter()
        n = fstring_pipeline(root / "src", root / "fpipe", args.fstring_limit)
        f = n / (time.perf_counter() - t)
        shutil.rmtree(root / "fpipe", ignore_errors=True)
        print(f"f-string pipeline over the same sources: {n:,} records, {f:,.0f} ex/s")
        for w, r in rates.items():
            print(f"ours {w} worker(s) / f-string = {r / f:.2f}x")
    if len(rates) > 1:
        print(f"{max(rates)} workers / 1 = {rates[max(rates)] / rates[min(rates)]:.2f}x")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
