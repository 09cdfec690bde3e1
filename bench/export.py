"""Export benchmark: our renderer and `flan export` against baselines, as ratios.

Usage:  python bench/export.py [--records 200000] [--workers 2] [--rss]

Everything is measured in one process run on the same synthetic records
(NLI + multiple-choice QA, 10 templates each, options lists), so the ratios
hold even on a noisy shared machine; absolute rates do not.

Stages:
- render: records in memory → strings. Baselines: a plain f-string renderer of
  the same texts, and per-row ``template.render()`` of the compiled sandboxed
  Jinja templates. Ours: ``TaskRenderer.render_batch`` (seeded template and
  option style per row, batch templates).
- few-shot k=3: f-string few-shot renderer vs per-row Jinja with k+1 renders
  vs ours (exemplars rendered once per template/style and assembled).
- end to end: ``flan export`` of Parquet sources (read → render → shards +
  manifest) vs an f-string pipeline doing the same reading and Arrow writing;
  and 2 workers vs 1.
- mixed zs/fs: a 4-format mixture (zs/fs, with/without options) vs an f-string
  pipeline writing half zero-shot, half 3-shot rows with `flan export`'s
  columns (and, for reference, one writing only inputs/targets).
- memory (--rss): peak RSS of exports of N and 10×N records in subprocesses.
"""

from __future__ import annotations

import argparse
import atexit
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import synth  # noqa: E402

import flan_data.columnar  # noqa: E402, F401  - its one-time import (pyarrow.compute) stays out of the timed render stage
from flan_data import Catalog, Renderer  # noqa: E402
from flan_data.columnar import TaskColumns  # noqa: E402
from flan_data.columnar_fs import render_fewshot  # noqa: E402
from flan_data.export import export_mixture, local  # noqa: E402
from flan_data.export.jobs import FAST_ROWS  # noqa: E402
from flan_data.options import PLAIN, format_options  # noqa: E402
from flan_data.specs import MixtureMember, MixtureSpec  # noqa: E402
from flan_data.templates import TemplateEngine  # noqa: E402

NLI_F = [
    lambda p, h, o: f'{p}\n\nDoes it follow that "{h}"?{o}',
    lambda p, h, o: f"Premise: {p}\nHypothesis: {h}\nIs the hypothesis entailed?{o}",
    lambda p, h, o: f"Read this: {p}\nCan we conclude {h}?{o}",
    lambda p, h, o: f'{p}\nBased on that, is "{h}" true?{o}',
    lambda p, h, o: f'Given the text "{p}", is it the case that {h}?{o}',
    lambda p, h, o: f"Statement one: {p}\nStatement two: {h}\nDoes one imply two?{o}",
    lambda p, h, o: f"{h}\nIs that supported by: {p}{o}",
    lambda p, h, o: f"Consider: {p}\nQuestion: {h}? Yes, no, or unclear?{o}",
    lambda p, h, o: f"Text: {p}\nClaim: {h}\nVerdict?{o}",
    lambda p, h, o: f"If {p.lower()}, then is it true that {h.lower()}?{o}",
]


#: How each multi-worker export of this process started its children ("fork": from
#: this process; "forkserver"), in order.
STARTS: list[str] = []
_exec_init = local.LocalExecutor.__init__


def _recording_init(self, *a, **k) -> None:
    _exec_init(self, *a, **k)
    if self.workers > 1:
        STARTS.append("fork" if self.forked else "forkserver")


local.LocalExecutor.__init__ = _recording_init


def timed(fn, n: int) -> float:
    t = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t)


def fstring_render(recs, fewshot: int = 0):
    out = []
    opts = synth.NLI_OPTIONS
    block = format_options(opts, PLAIN)[0]
    r = random.Random(0)
    for i, rec in enumerate(recs):
        f = NLI_F[i % 10]
        if fewshot:
            parts = []
            for _ in range(fewshot):
                e = recs[r.randrange(len(recs))]
                parts.append(
                    "Q: " + f(e["premise"], e["hypothesis"], block) + "\nA: " + opts[e["label"]]
                )
            parts.append("Q: " + f(rec["premise"], rec["hypothesis"], block) + "\nA:")
            out.append(("\n\n".join(parts), opts[rec["label"]]))
        else:
            out.append((f(rec["premise"], rec["hypothesis"], block).strip(), opts[rec["label"]]))
    return out


def jinja_per_row(recs, engine, cts, fewshot: int = 0):
    out = []
    opts = synth.NLI_OPTIONS
    block = format_options(opts, PLAIN)[0]
    r = random.Random(0)
    for i, rec in enumerate(recs):
        ct = cts[i % 10]
        ctx = {
            "premise": rec["premise"],
            "hypothesis": rec["hypothesis"],
            "options_block": block,
            "answer": opts[rec["label"]],
        }
        if fewshot:
            parts = []
            for _ in range(fewshot):
                e = recs[r.randrange(len(recs))]
                ei, et = (
                    ct.input.render(
                        premise=e["premise"], hypothesis=e["hypothesis"], options_block=block
                    ),
                    ct.target.render(answer=opts[e["label"]]),
                )
                parts.append("Q: " + ei + "\nA: " + et)
            parts.append("Q: " + ct.input.render(ctx) + "\nA:")
            out.append(("\n\n".join(parts), ct.target.render(ctx)))
        else:
            out.append((ct.input.render(ctx), ct.target.render(ctx)))
    return out


def jinja_chunked(recs, engine, cts):
    """One render per 1,000-row chunk, the loop inside the compiled template."""
    out = []
    opts = synth.NLI_OPTIONS
    block = format_options(opts, PLAIN)[0]
    for start in range(0, len(recs), 1000):
        chunk = recs[start : start + 1000]
        by = {}
        for i, rec in enumerate(chunk):
            by.setdefault((start + i) % 10, []).append({"premise": rec["premise"], "hypothesis": rec["hypothesis"],
                                                         "options_block": block, "answer": opts[rec["label"]]})  # fmt: skip
        for k, ctxs in by.items():
            out.extend(engine.render_many(cts[k], ctxs))
    return out


def ours(tr, items, fmt, pool=None):
    for start in range(0, len(items), 1000):
        tr.render_batch(items[start : start + 1000], split="train", fmt=fmt, seed=0, pool=pool)


def ours_arrow(tr, table: pa.RecordBatch, ids: list[str], fmt: str, pool) -> None:
    """The few-shot rows through the record-batch path (as export renders them)."""
    tc = TaskColumns.of(tr)
    for start in range(0, table.num_rows, FAST_ROWS):
        res = render_fewshot(tc, table.slice(start, FAST_ROWS), ids[start : start + FAST_ROWS],
                             fmt=fmt, seed=0, split="train", pool=pool)  # fmt: skip
        assert not len(res.fallback)  # every row rendered here (none left to the per-row path)


def fstring_pipeline(src: Path, out: Path, shard_rows: int = 10_000) -> int:
    """Read Parquet → f-string render → Arrow IPC shards with the same columns as
    `flan export` (the end-to-end baseline; no seeded choices, no sandbox)."""
    from flan_data.export.writer import SCHEMA

    out.mkdir(parents=True, exist_ok=True)
    opts = synth.NLI_OPTIONS
    block = format_options(opts, PLAIN)[0]
    n = 0
    buf: dict[str, list] = {f.name: [] for f in SCHEMA}
    shard = 0

    def flush():
        nonlocal buf, shard
        t = pa.table(buf, schema=SCHEMA)
        with ipc.new_file(str(out / f"s{shard}.arrow"), t.schema) as w:
            w.write_table(t)
        shard += 1
        buf = {f.name: [] for f in SCHEMA}

    for batch in pq.ParquetFile(src).iter_batches(batch_size=4096):
        for rec in batch.to_pylist():
            k = n % 10
            buf["inputs"].append(NLI_F[k](rec["premise"], rec["hypothesis"], block))
            buf["targets"].append(opts[rec["label"]])
            buf["task"].append("syn_nli")
            buf["collection"].append("flan2021")
            buf["format"].append("zs_opt")
            buf["template_id"].append(f"nli-{k:02d}")
            buf["fewshot_style"].append(None)
            buf["options"].append(opts)
            buf["exemplar_ids"].append([])
            buf["example_id"].append(rec["uid"])
            buf["source_split"].append("train")
            buf["seed"].append(n)
            n += 1
            if len(buf["inputs"]) == shard_rows:
                flush()
    if buf["inputs"]:
        flush()
    return n


def hf_map_pipeline(src: Path, out: Path, engine, cts) -> int:
    """HF ``datasets``: load the Parquet file, ``map(batched=True)`` with the
    compiled Jinja templates (one render per row), then ``save_to_disk``."""
    import datasets

    datasets.disable_progress_bars()
    ds = datasets.load_dataset("parquet", data_files=str(src), split="train", keep_in_memory=False)
    opts = synth.NLI_OPTIONS
    block = format_options(opts, PLAIN)[0]

    def fn(batch, idx):
        ins, tgts = [], []
        for i, p, h, lab in zip(idx, batch["premise"], batch["hypothesis"], batch["label"]):
            ct = cts[i % 10]
            ctx = {"premise": p, "hypothesis": h, "options_block": block, "answer": opts[lab]}
            ins.append(ct.input.render(ctx))
            tgts.append(ct.target.render(ctx))
        return {"inputs": ins, "targets": tgts}

    ds = ds.map(fn, batched=True, with_indices=True, remove_columns=ds.column_names)
    ds.save_to_disk(str(out))
    return len(ds)


def fstring_mixed_pipeline(
    src: Path, out: Path, shard_rows: int = 10_000, all_columns: bool = True
) -> int:
    """Half zero-shot, half 3-shot rows with f-strings, written as Arrow shards.

    With ``all_columns`` (the baseline of the mixed row) it writes the columns of
    `flan export`'s schema, as :func:`fstring_pipeline` does for the zero-shot row
    (format, template id, few-shot style, exemplar ids, ...); without, only
    ``inputs``/``targets`` (the narrower baseline this row used until session 5).
    """
    from flan_data.export.writer import SCHEMA

    opts = synth.NLI_OPTIONS
    block = format_options(opts, PLAIN)[0]
    out.mkdir(parents=True, exist_ok=True)
    recs = []
    n = 0
    names = [f.name for f in SCHEMA] if all_columns else ["inputs", "targets"]
    schema = SCHEMA if all_columns else None
    buf: dict[str, list] = {k: [] for k in names}
    shard = 0
    r = random.Random(0)

    def flush():
        nonlocal buf, shard
        t = pa.table(buf, schema=schema)
        with ipc.new_file(str(out / f"s{shard}.arrow"), t.schema) as w:
            w.write_table(t)
        shard += 1
        buf = {k: [] for k in names}

    for batch in pq.ParquetFile(src).iter_batches(batch_size=4096):
        for rec in batch.to_pylist():
            k = n % 10
            f = NLI_F[k]
            if len(recs) < 512:
                recs.append(rec)
            if n % 2:
                parts = []
                ids = []
                for _ in range(3):
                    e = recs[r.randrange(len(recs))]
                    ids.append(e["uid"])
                    parts.append(
                        "Q: " + f(e["premise"], e["hypothesis"], block) + "\nA: " + opts[e["label"]]
                    )
                parts.append("Q: " + f(rec["premise"], rec["hypothesis"], block) + "\nA:")
                buf["inputs"].append("\n\n".join(parts))
            else:
                ids = []
                buf["inputs"].append(f(rec["premise"], rec["hypothesis"], block))
            buf["targets"].append(opts[rec["label"]])
            if all_columns:
                buf["task"].append("syn_nli")
                buf["collection"].append("flan2021")
                buf["format"].append("fs_opt" if n % 2 else "zs_opt")
                buf["template_id"].append(f"nli-{k:02d}")
                buf["fewshot_style"].append("q" if n % 2 else None)
                buf["options"].append(opts)
                buf["exemplar_ids"].append(ids)
                buf["example_id"].append(rec["uid"])
                buf["source_split"].append("train")
                buf["seed"].append(n)
            n += 1
            if len(buf["inputs"]) == shard_rows:
                flush()
    if buf["inputs"]:
        flush()
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=200_000, help="records per synthetic dataset")
    ap.add_argument(
        "--render-records",
        type=int,
        default=100_000,
        help="records for the in-memory render stages",
    )
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="best of N passes for the f-string pipeline and the 1-worker export (end to end)",
    )
    ap.add_argument(
        "--rss", action="store_true", help="also measure peak RSS for N and 10N records (slow)"
    )
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument(
        "--scale",
        type=int,
        nargs="*",
        default=[],
        help="sizes for the CPU-per-record / peak-RSS rows (bench/profile_reads.py per size)",
    )
    args = ap.parse_args()
    res: dict = {}
    tmp = Path(tempfile.mkdtemp(prefix="flan-bench-"))
    # ~0.5 GB per 100k records (sources, exports, HF copy): removed however the run ends
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    root = synth.make_catalog(tmp / "cat", args.records)
    cat = Catalog.load(root)
    engine = TemplateEngine()
    renderer = Renderer(cat, engine=engine)
    tr = renderer.task_renderer("syn_nli")
    cts = tr.templates
    recs = list(synth.nli_records(args.render_records))
    items = [(r["uid"], r) for r in recs]
    n = len(recs)

    print(f"== render stage ({n:,} NLI records in memory, one core) ==")
    f = timed(lambda: fstring_render(recs), n)
    j = timed(lambda: jinja_per_row(recs, engine, cts), n)
    c = timed(lambda: jinja_chunked(recs, engine, cts), n)
    o = timed(lambda: ours(tr, items, "zs_opt"), n)
    res["render"] = {"fstring": f, "jinja_per_row": j, "jinja_chunked": c, "ours": o}
    print(
        f"f-string {f:,.0f}/s | per-row Jinja {j:,.0f}/s | chunked Jinja {c:,.0f}/s | ours (zs_opt) {o:,.0f}/s"
    )
    print(
        f"ours / f-string = {o / f:.2f}x (target >= 0.3) | ours / per-row Jinja = {o / j:.2f}x (target >= 2.5)"
    )

    print(f"\n== few-shot k=3 ({n // 2:,} records) ==")
    half = recs[: n // 2]
    pool = [tr.exemplar(r["uid"], r) for r in recs[:512]]
    f = timed(lambda: fstring_render(half, fewshot=3), len(half))
    j = timed(lambda: jinja_per_row(half, engine, cts, fewshot=3), len(half))
    o = timed(lambda: ours(tr, items[: n // 2], "fs_opt", pool), len(half))
    o2 = timed(lambda: ours(tr, items[: n // 2], "fs_noopt", pool), len(half))
    # The record-batch API (what export runs on, flan_data.columnar_fs) on an Arrow
    # table of the same records, built outside the timing as the f-string's list is;
    # a fresh task renderer (its exemplar tables are built inside the timing).
    tr_a = Renderer(cat, engine=TemplateEngine()).task_renderer("syn_nli")
    tr_a.render_batch(items[:300], split="train", fmt="zs_opt", seed=0)  # as tr's render stage
    pool_a = [tr_a.exemplar(r["uid"], r) for r in recs[:512]]
    table = pa.Table.from_pylist(half).combine_chunks().to_batches(max_chunksize=len(half))[0]
    half_ids = [r["uid"] for r in half]
    oa = timed(lambda: ours_arrow(tr_a, table, half_ids, "fs_opt", pool_a), len(half))
    res["fewshot"] = {"fstring": f, "jinja_per_row": j, "ours_fs_opt": o, "ours_fs_noopt": o2,
                      "ours_fs_opt_arrow": oa}  # fmt: skip
    print(
        f"f-string {f:,.0f}/s | per-row Jinja (k+1 renders) {j:,.0f}/s | ours fs_opt {o:,.0f}/s | ours fs_noopt {o2:,.0f}/s"
    )
    print(
        f"ours fs_opt / f-string = {o / f:.2f}x (target >= 0.5) | / per-row Jinja = {o / j:.2f}x (target >= 2)"
        "   [render_batch: lists of dicts in, lists out, 1,000-row batches]"
    )
    print(
        f"ours fs_opt on an Arrow table {oa:,.0f}/s: / f-string = {oa / f:.2f}x (target >= 0.5) | "
        f"/ per-row Jinja = {oa / j:.2f}x   [columnar_fs.render_fewshot: record batch in, Arrow "
        f"columns out, {FAST_ROWS:,}-row batches as export]"
    )

    print(f"\n== end to end ({args.records:,} NLI records from Parquet) ==")
    f = f_cpu = 0.0
    for r in range(args.repeat):  # the best of --repeat passes (each ~0.5-1 s, noisy)
        t, c = time.perf_counter(), time.process_time()
        nf = fstring_pipeline(root / "data" / "nli.parquet", tmp / f"fpipe{r}")
        f = max(f, nf / (time.perf_counter() - t))
        f_cpu = max(f_cpu, nf / (time.process_time() - c))
    spec = cat.mixture("bench_zs")
    only_nli = MixtureSpec(
        name="nli", members=(MixtureMember(kind="task", name="syn_nli", formats=("zs_opt",)),)
    )
    del spec
    rates = {}
    o_cpu = 0.0
    for w in (1, args.workers):
        for r in range(args.repeat if w == 1 else 1):
            out = tmp / (f"e{w}" if r == 0 else f"e{w}-{r}")
            t, c = time.perf_counter(), time.process_time()
            m = export_mixture(cat, only_nli, out, workers=w, progress=False, log=lambda s: None)
            rates[w] = max(rates.get(w, 0.0), m["num_rows"] / (time.perf_counter() - t))
            if w == 1:  # one worker runs in this process: its CPU time is all of it
                o_cpu = max(o_cpu, m["num_rows"] / (time.process_time() - c))
    # The 2-worker export above is the process's first (cold: what a one-off
    # `flan export -w 2` pays: its children are forked from this process where
    # that is safe, else it starts the forkserver). A second one is warm.
    t = time.perf_counter()
    m = export_mixture(cat, only_nli, tmp / "ew", workers=args.workers, progress=False, log=lambda s: None)  # fmt: skip
    warm = m["num_rows"] / (time.perf_counter() - t)
    res["end_to_end"] = {
        "fstring_pipeline": f,
        **{f"ours_{w}_workers": r for w, r in rates.items()},
        f"ours_{args.workers}_workers_warm": warm,
        "fstring_per_cpu_s": f_cpu,
        "ours_1_worker_per_cpu_s": o_cpu,
    }
    print(
        f"f-string pipeline {f:,.0f}/s | flan export 1 worker {rates[1]:,.0f}/s | {args.workers} workers {rates[args.workers]:,.0f}/s"
    )
    print(
        f"per CPU second (less sensitive to load): f-string {f_cpu:,.0f} | flan export 1 worker {o_cpu:,.0f} | ratio {o_cpu / f_cpu:.2f}x"
    )
    print(
        f"ours(1) / f-string = {rates[1] / f:.2f}x (target >= 0.6) | {args.workers} workers / 1 = {rates[args.workers] / rates[1]:.2f}x (target >= 1.7)"
    )
    print(
        f"{args.workers} workers, a later export of the process: {warm:,.0f}/s = {warm / rates[1]:.2f}x of 1 worker"
        f" | children started by: {', '.join(STARTS) or '-'} (first, later)"
    )
    res["worker_starts"] = list(STARTS)
    same = all(
        (tmp / "e1" / p.name).read_bytes() == p.read_bytes()
        for p in (tmp / f"e{args.workers}").iterdir()
        if p.is_file()
    )
    print(f"1-worker and {args.workers}-worker outputs byte-identical: {same}")
    res["identical_across_workers"] = same

    t = time.perf_counter()
    nh = hf_map_pipeline(root / "data" / "nli.parquet", tmp / "hfmap", engine, cts)
    hf = nh / (time.perf_counter() - t)
    print(f"HF datasets.map(batched=True) + compiled Jinja + save_to_disk: {hf:,.0f}/s")
    res["end_to_end"]["hf_map"] = hf

    print(f"\n== mixed zs/fs mixture ({args.records:,} NLI records from Parquet) ==")
    t = time.perf_counter()
    nm = fstring_mixed_pipeline(root / "data" / "nli.parquet", tmp / "fmix")
    fm = nm / (time.perf_counter() - t)
    t = time.perf_counter()
    nm = fstring_mixed_pipeline(root / "data" / "nli.parquet", tmp / "fmix2", all_columns=False)
    fm_narrow = nm / (time.perf_counter() - t)
    mixed = MixtureSpec(name="nli_mix", members=(MixtureMember(kind="task", name="syn_nli", formats=("zs_opt", "zs_noopt", "fs_opt", "fs_noopt")),))  # fmt: skip
    t = time.perf_counter()
    m = export_mixture(cat, mixed, tmp / "emix", workers=1, progress=False, log=lambda s: None)
    om = m["num_rows"] / (time.perf_counter() - t)
    res["mixed"] = {"fstring": fm, "fstring_inputs_targets_only": fm_narrow, "ours": om}
    print(
        f"f-string mixed, flan export's columns {fm:,.0f}/s | only inputs/targets {fm_narrow:,.0f}/s"
        f" | flan export 1 worker {om:,.0f}/s"
    )
    print(
        f"ours / f-string = {om / fm:.2f}x (target >= 0.4) | / inputs+targets only = {om / fm_narrow:.2f}x"
    )

    scale = {}
    for size in args.scale:
        out = subprocess.run(
            [sys.executable, str(Path(__file__).resolve().parent / "profile_reads.py"), str(size)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        scale[size] = json.loads(out.stdout.strip().splitlines()[-1])
    res["scale"] = scale

    def k(x: float) -> str:
        return f"{x / 1000:.1f}k ex/s"

    e = res["end_to_end"]
    rows = [
        ("`flan export` 1 worker, NLI records from Parquet, zs_opt", k(e["ours_1_workers"]),
         f"f-string pipeline: {k(e['fstring_pipeline'])}", e["ours_1_workers"] / e["fstring_pipeline"], ">= 0.6x"),
        ("same", k(e["ours_1_workers"]), f"HF datasets.map(batched=True) + Jinja + save: {k(hf)}",
         e["ours_1_workers"] / hf, ">= 1.5x"),
        ("mixed zs/fs mixture", k(om), f"f-string, flan export's columns: {k(fm)}", om / fm, ">= 0.4x"),
        ("same", k(om), f"f-string, inputs/targets only: {k(fm_narrow)}", om / fm_narrow, "(narrower baseline)"),
        ("few-shot k=3 render, in memory (render_batch, lists)", k(res["fewshot"]["ours_fs_opt"]),
         f"per-row Jinja k+1 renders: {k(res['fewshot']['jinja_per_row'])}; f-string {k(res['fewshot']['fstring'])}",
         None, ">= 2x / >= 0.5x"),
        ("few-shot k=3 render, in memory (record batch, Arrow table)", k(res["fewshot"]["ours_fs_opt_arrow"]),
         f"per-row Jinja k+1 renders: {k(res['fewshot']['jinja_per_row'])}; f-string {k(res['fewshot']['fstring'])}",
         "arrow", ">= 2x / >= 0.5x"),
        (f"{args.workers} workers / 1 worker", k(e[f"ours_{args.workers}_workers"]), k(e["ours_1_workers"]),
         e[f"ours_{args.workers}_workers"] / e["ours_1_workers"], ">= 1.7x"),
        (f"same, a later {args.workers}-worker export of the process (warm)", k(e[f"ours_{args.workers}_workers_warm"]),
         k(e["ours_1_workers"]), e[f"ours_{args.workers}_workers_warm"] / e["ours_1_workers"], ">= 1.7x"),
    ]  # fmt: skip
    if scale:
        sizes = sorted(scale)
        us = [scale[z]["cpu_us_per_rec"] for z in sizes]
        rows.append((f"CPU us per record, 1 worker, {' -> '.join(f'{z:,}' for z in sizes)}",
                     " -> ".join(f"{u:.0f}" for u in us), "", max(us) / min(us), "flat within 1.2x"))  # fmt: skip
        rss = [scale[z]["peak_rss_mb"] for z in sizes]
        rows.append((f"peak RSS, {' -> '.join(f'{z:,}' for z in sizes)}",
                     " -> ".join(f"{r} MB" for r in rss), "", max(rss) / min(rss), "< 1 GB"))  # fmt: skip
    print("\n| measurement | ours | baseline | ratio | target |\n| --- | --- | --- | --- | --- |")
    fsr = res["fewshot"]
    for name, ours_, base, ratio, target in rows:
        if ratio is None or ratio == "arrow":
            o_ = fsr["ours_fs_opt"] if ratio is None else fsr["ours_fs_opt_arrow"]
            rs = f"{o_ / fsr['jinja_per_row']:.2f}x / {o_ / fsr['fstring']:.2f}x"
        else:
            rs = f"{ratio:.2f}x"
        print(f"| {name} | {ours_} | {base} | {rs} | {target} |")

    if args.rss:
        print("\n== peak RSS (subprocess per size) ==")
        res["rss_mb"] = {}
        for size in (args.records, args.records * 10):
            code = (
                f"import sys, resource, tempfile; from pathlib import Path; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); import synth;"
                "from flan_data import Catalog; from flan_data.export import export_mixture;"
                "from flan_data.specs import MixtureMember, MixtureSpec;"
                f"root = synth.make_catalog(Path(tempfile.mkdtemp()), {size}); cat = Catalog.load(root);"
                "m = MixtureSpec(name='n', members=(MixtureMember(kind='task', name='syn_nli', formats=('zs_opt','fs_opt')),));"
                "import resource as r; before = r.getrusage(r.RUSAGE_SELF).ru_maxrss;"
                "export_mixture(cat, m, Path(tempfile.mkdtemp()) / 'o', progress=False, log=lambda s: None);"
                "print(r.getrusage(r.RUSAGE_SELF).ru_maxrss // 1024)"
            )
            out = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            )
            mb = int(out.stdout.strip().splitlines()[-1])
            res["rss_mb"][size] = mb
            print(f"{size:,} records: peak RSS {mb} MB")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
