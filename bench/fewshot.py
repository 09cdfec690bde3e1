"""Few-shot benchmark: the few-shot and mixed zs/fs rows of issue 9, as ratios.

Usage:  python bench/fewshot.py [--records 100000] [--render-records 30000]

One process, same records, so the ratios hold on a noisy shared machine:
- few-shot k=3 render in memory (the stage of ``bench/export.py``): f-string
  few-shot vs per-row Jinja with k+1 renders vs ``render_batch`` fs_opt/fs_noopt
  (first pass: the task's exemplars are rendered and composed during it; then
  fs_opt again, cached), plus exemplar renders and rows assembled column-wise
  (work, not time);
- self-contained few-shot templates (NIv2 ``niv2_fs``, exemplars from the task's
  positive examples): ``render_batch`` vs one sandboxed render per row;
- mixed zs/fs export of Parquet records (1 worker) vs the f-string mixed pipeline.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import export as bx  # noqa: E402
import synth  # noqa: E402

from flan_data import Catalog, Renderer  # noqa: E402
from flan_data.export import export_mixture  # noqa: E402
from flan_data.export import jobs as export_jobs  # noqa: E402
from flan_data.render import RENDER_STATS  # noqa: E402
from flan_data.specs import MixtureMember, MixtureSpec  # noqa: E402
from flan_data.templates import TemplateEngine  # noqa: E402

WORDS = [
    "the",
    "a",
    "river",
    "stone",
    "light",
    "city",
    "small",
    "green",
    "quickly",
    "under",
    "over",
    "music",
    "paper",
    "old",
    "new",
]


def _text(r: random.Random, lo: int, hi: int) -> str:
    return " ".join(r.choice(WORDS) for _ in range(r.randint(lo, hi))).capitalize() + "."


def niv2_stage(n: int) -> dict[str, float]:
    """The bundled catalog's first NIv2 task over a synthetic task file of ``n`` instances."""
    from flan_data.render import is_fewshot_format
    from flan_data.sources import open_task_source

    cat = Catalog.load()
    task = cat.tasks_in("niv2")[0]
    r = random.Random(0)
    tmp = Path(tempfile.mkdtemp(prefix="flan-bench-niv2-"))
    doc = {
        "Definition": [_text(r, 20, 60)],
        "Positive Examples": [
            {"input": _text(r, 10, 40), "output": _text(r, 1, 8), "explanation": "x"}
            for _ in range(3)
        ],
        "Negative Examples": [],
        "Instances": [
            {"id": f"i{i}", "input": _text(r, 15, 120), "output": [_text(r, 1, 10)]}
            for i in range(n)
        ],
    }
    (tmp / f"{task.source.path}.json").write_text(json.dumps(doc))
    src = open_task_source(cat, task, "auto", {"niv2": str(tmp)})
    items = list(src.read("train"))[:n]
    tr = Renderer(cat).task_renderer(task.name)
    assert is_fewshot_format("fs_opt")

    def ours():
        for s in range(0, len(items), 1000):
            tr.render_batch(items[s : s + 1000], split="train", fmt="fs_opt", seed=0)

    tok = tr.config.tokenizer

    def per_row():  # what the renderer did before: a sandboxed render and a token count per row
        ct = tr.eligible("fs_opt")[0]
        for eid, rec in items:
            canon = tr.canonical(eid, rec)
            k = min(len(canon["positive_examples"]), tr.config.shots)
            i, t = tr.engine.render(ct, {**canon, "exemplars": canon["positive_examples"][:k]})
            tok.count(i.strip()) + tok.count(t.strip())

    try:
        return {"ours": bx.timed(ours, len(items)), "per_row": bx.timed(per_row, len(items))}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=100_000, help="records of the Parquet source")
    ap.add_argument("--render-records", type=int, default=30_000, help="records in memory")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--rounds", type=int, default=1,
                    help="then repeat the few-shot and mixed rows this many times, interleaved, "
                         "and print medians (a shared machine's load moves single runs)")  # fmt: skip
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="flan-bench-fs-"))
    try:
        run(args, tmp)
    finally:  # the Parquet source and both exports: ~1 GB per 100k records
        shutil.rmtree(tmp, ignore_errors=True)


def run(args, tmp: Path) -> None:
    res: dict = {}
    root = synth.make_catalog(tmp / "cat", args.records)
    cat = Catalog.load(root)
    engine = TemplateEngine()
    tr = Renderer(cat, engine=engine).task_renderer("syn_nli")
    recs = list(synth.nli_records(args.render_records))
    items = [(r["uid"], r) for r in recs]
    half = recs[: len(recs) // 2]
    pool = [tr.exemplar(r["uid"], r) for r in recs[:512]]

    print(f"== few-shot k=3 ({len(half):,} records in memory) ==")
    f = bx.timed(lambda: bx.fstring_render(half, fewshot=3), len(half))
    j = bx.timed(lambda: bx.jinja_per_row(half, engine, tr.templates, fewshot=3), len(half))
    stats0 = dict(RENDER_STATS)
    o = bx.timed(lambda: bx.ours(tr, items[: len(half)], "fs_opt", pool), len(half))
    renders = tr._fewshot_cache().renders
    o2 = bx.timed(lambda: bx.ours(tr, items[: len(half)], "fs_noopt", pool), len(half))
    renders2 = tr._fewshot_cache().renders - renders
    col = RENDER_STATS.get("fewshot_column_rows", 0) - stats0.get("fewshot_column_rows", 0)
    per_row = RENDER_STATS.get("fewshot_row_rows", 0) - stats0.get("fewshot_row_rows", 0)
    # the same rows again: the task's exemplars are rendered and composed by now
    # (what every batch after the first few of a task sees in an export)
    ow = bx.timed(lambda: bx.ours(tr, items[: len(half)], "fs_opt", pool), len(half))
    res["fewshot"] = {"fstring": f, "jinja_per_row": j, "ours_fs_opt": o, "ours_fs_noopt": o2,
                      "ours_fs_opt_warm": ow, "exemplar_renders_fs_opt": renders,
                      "exemplar_renders_fs_noopt": renders2, "column_rows": col, "per_row_rows": per_row}  # fmt: skip
    print(
        f"f-string {f:,.0f}/s | per-row Jinja (k+1 renders) {j:,.0f}/s | ours fs_opt {o:,.0f}/s "
        f"| fs_noopt {o2:,.0f}/s\nours fs_opt / per-row Jinja = {o / j:.2f}x (target >= 2) "
        f"| / f-string = {o / f:.2f}x (target >= 0.5)\nexemplar renders: fs_opt {renders:,}, "
        f"fs_noopt {renders2:,} for {len(half):,} rows each ({3 * len(half):,} exemplars shown)\n"
        f"assembled column-wise {col:,} rows, per row {per_row:,} | fs_opt again (exemplars "
        f"cached) {ow:,.0f}/s = {ow / f:.2f}x f-string"
    )

    print("\n== self-contained few-shot templates (NIv2 niv2_fs, 6,000 rows in memory) ==")
    nv = niv2_stage(6000)
    res["niv2_fs"] = nv
    print(
        f"per-row sandboxed render {nv['per_row']:,.0f}/s | ours {nv['ours']:,.0f}/s "
        f"= {nv['ours'] / nv['per_row']:.2f}x"
    )

    print(f"\n== mixed zs/fs mixture ({args.records:,} NLI records from Parquet, 1 worker) ==")
    t = time.perf_counter()
    nm = bx.fstring_mixed_pipeline(root / "data" / "nli.parquet", tmp / "fmix")
    fm = nm / (time.perf_counter() - t)
    mixed = MixtureSpec(name="nli_mix", members=(MixtureMember(kind="task", name="syn_nli", formats=("zs_opt", "zs_noopt", "fs_opt", "fs_noopt")),))  # fmt: skip
    export_jobs.READ_STATS.update(records_read=0, rows=0)
    t = time.perf_counter()
    m = export_mixture(cat, mixed, tmp / "emix", workers=1, progress=False, log=lambda s: None)
    om = m["num_rows"] / (time.perf_counter() - t)
    read = export_jobs.READ_STATS["records_read"]
    res["mixed"] = {"fstring": fm, "ours": om, "records_read": read, "rows": m["num_rows"]}
    print(f"f-string mixed {fm:,.0f}/s | flan export {om:,.0f}/s = {om / fm:.3f}x (target >= 0.4)"
          f"\nrecords read {read:,} for {m['num_rows']:,} rows")  # fmt: skip
    if args.rounds > 1:
        res["rounds"] = rounds(args.rounds, cat, recs, items, tmp)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


def rounds(n: int, cat, recs, items, tmp: Path) -> dict:
    """The few-shot rows ``n`` times, interleaved: in memory by CPU time (f-string,
    per-row Jinja, ours fs_opt on a fresh renderer, then again with its exemplars
    cached), the mixed export by wall time; medians of rates and of each round's ratio."""
    import statistics

    half = recs[: len(recs) // 2]
    m = len(half)
    mixed = MixtureSpec(name="nli_mix", members=(MixtureMember(kind="task", name="syn_nli", formats=("zs_opt", "zs_noopt", "fs_opt", "fs_noopt")),))  # fmt: skip

    def cpu(fn) -> float:
        t = time.process_time()
        fn()
        return m / (time.process_time() - t)

    got: dict[str, list[float]] = {}
    for r in range(n):
        engine = TemplateEngine()
        tr = Renderer(cat, engine=engine).task_renderer("syn_nli")
        pool = [tr.exemplar(x["uid"], x) for x in recs[:512]]
        row = {
            "fstring": cpu(lambda: bx.fstring_render(half, fewshot=3)),
            "jinja_per_row": cpu(
                lambda e=engine, c=tr.templates: bx.jinja_per_row(half, e, c, fewshot=3)
            ),
            "ours_fs_opt": cpu(lambda tr=tr, pool=pool: bx.ours(tr, items[:m], "fs_opt", pool)),
            "ours_fs_opt_cached": cpu(
                lambda tr=tr, pool=pool: bx.ours(tr, items[:m], "fs_opt", pool)
            ),
        }
        t = time.perf_counter()
        nm = bx.fstring_mixed_pipeline(cat.task("syn_nli").source.path, tmp / f"rf{r}")
        row["mixed_fstring"] = nm / (time.perf_counter() - t)
        t = time.perf_counter()
        e = export_mixture(
            cat, mixed, tmp / f"re{r}", workers=1, progress=False, log=lambda s: None
        )
        row["mixed_ours"] = e["num_rows"] / (time.perf_counter() - t)
        shutil.rmtree(tmp / f"rf{r}", ignore_errors=True)
        shutil.rmtree(tmp / f"re{r}", ignore_errors=True)
        for k, v in row.items():
            got.setdefault(k, []).append(v)
    ratios = {
        "fs_opt / per-row Jinja": [a / b for a, b in zip(got["ours_fs_opt"], got["jinja_per_row"])],
        "fs_opt / f-string": [a / b for a, b in zip(got["ours_fs_opt"], got["fstring"])],
        "fs_opt cached / f-string": [
            a / b for a, b in zip(got["ours_fs_opt_cached"], got["fstring"])
        ],
        "mixed / f-string": [a / b for a, b in zip(got["mixed_ours"], got["mixed_fstring"])],
    }
    print(f"\n== {n} interleaved rounds (in memory: CPU time; mixed: wall time), medians ==")
    print(" | ".join(f"{k} {statistics.median(v):,.0f}/s" for k, v in got.items()))
    for k, v in ratios.items():
        print(
            f"{k}: median {statistics.median(v):.3f}x (rounds: {', '.join(f'{x:.3f}' for x in v)})"
        )
    return {"rates": got, "ratios": ratios}


if __name__ == "__main__":
    main()
