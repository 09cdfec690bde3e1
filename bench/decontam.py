"""Decontamination benchmark: the n-gram index against baselines, as ratios.

Usage:  python bench/decontam.py [--rows 20000] [--export-records 20000]

Everything runs in one process on the same texts, so the ratios hold on a
noisy shared machine; absolute rates do not.

- index: build time and size for the eval sets (BIG-Bench Hard from
  ../shared/data/bbh when present, plus a synthetic MMLU-sized set of 14,042
  items with a question and four choices).
- scan: training rows shaped like few-shot export rows (three exemplars and a
  query, ~250-450 words; GSM8K train text from ../shared when present, else
  synthetic sentences). Baselines on the same rows: tokenizing only (the floor
  for any word n-gram method) and the obvious implementation (a Python set of
  eval n-gram tuples, every window looked up). Ours: ``NgramIndex.find_many``.
- export: ``flan export`` of a synthetic Parquet catalog (zs_opt + fs_opt)
  with and without ``--decontaminate`` (end-to-end overhead).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import synth  # noqa: E402

from flan_data import Catalog  # noqa: E402
from flan_data.decontam import EvalItem, EvalSet, NgramIndex, read_eval, words  # noqa: E402
from flan_data.export import export_mixture  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def synthetic_mmlu(n: int = 14_042, seed: int = 3) -> EvalSet:
    r = random.Random(seed)
    items = [
        EvalItem(f"syn/{i}", (synth._sentence(r, r.randint(12, 60)),
                              *(synth._sentence(r, r.randint(1, 12)) for _ in range(4))))
        for i in range(n)
    ]  # fmt: skip
    return EvalSet("synthetic_mmlu", items, format="synthetic")


def training_rows(n: int, seed: int = 0) -> list[str]:
    gsm = SHARED / "gsm8k" / "train.jsonl"
    if gsm.is_file():
        recs = [json.loads(x) for x in gsm.read_text(encoding="utf-8").splitlines() if x.strip()]
        texts = [f"Q: {r['question']}\nA: {r['answer']}" for r in recs]
    else:
        r = random.Random(seed)
        texts = [synth._sentence(r, r.randint(40, 110)) for _ in range(5000)]
    r = random.Random(seed)
    return ["\n\n".join(r.sample(texts, 4)) for _ in range(n)]


def brute_index(evals, n: int, min_words: int) -> tuple[set[tuple[str, ...]], set[int]]:
    grams: set[tuple[str, ...]] = set()
    for ev in evals:
        for it in ev.items:
            for seg in it.segments:
                w = words(seg)
                if len(w) < min_words:
                    continue
                L = min(n, len(w))
                grams.update(tuple(w[i : i + L]) for i in range(len(w) - L + 1))
    return grams, {len(g) for g in grams}


def brute_scan(texts, grams, lengths) -> int:
    hit = 0
    for t in texts:
        w = words(t)
        if any(tuple(w[i : i + L]) in grams for L in lengths for i in range(len(w) - L + 1)):
            hit += 1
    return hit


def rate(n: int, fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return n / (time.perf_counter() - t0), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--export-records", type=int, default=20_000)
    args = ap.parse_args()

    evals = [synthetic_mmlu()]
    if (SHARED / "bbh").is_dir():
        evals.insert(0, read_eval(str(SHARED / "bbh")))
    t0 = time.perf_counter()
    index = NgramIndex.build(evals)
    dt = time.perf_counter() - t0
    print("== index ==")
    print(f"{', '.join(f'{e.name} ({len(e.items):,} items)' for e in evals)}: {index.num_ngrams:,} n-grams, "
          f"{index.nbytes / 2**20:.1f} MiB arrays + {len(index.vocab):,} words, built in {dt:.2f}s")  # fmt: skip

    rows = training_rows(args.rows)
    # plant eval items in 1% of the rows so hits take the verify path too
    r = random.Random(1)
    flat = [s for e in evals for it in e.items for s in it.segments if len(words(s)) >= 13]
    for i in r.sample(range(len(rows)), len(rows) // 100):
        rows[i] += "\n\n" + r.choice(flat)
    n_words = sum(len(words(t)) for t in rows[:2000]) / 2000
    print(f"== scan ({len(rows):,} rows, {n_words:.0f} words per row on average) ==")
    tok, _ = rate(len(rows), lambda: [words(t) for t in rows])
    batch = 2000
    ours, found = rate(len(rows), lambda: [m for i in range(0, len(rows), batch) for m in index.find_many(rows[i : i + batch])])  # fmt: skip
    hits = sum(map(bool, found))
    grams, lengths = brute_index(evals, index.n, index.min_words)
    sub = rows[: max(1, len(rows) // 5)]
    brute, bhits = rate(len(sub), lambda: brute_scan(sub, grams, lengths))
    ours_sub = sum(map(bool, found[: len(sub)]))
    print(
        f"tokenize only {tok:,.0f} rows/s | brute-force tuple set {brute:,.0f} rows/s | ours {ours:,.0f} rows/s"
    )
    print(f"ours / tokenize = {ours / tok:.2f}x | ours / brute force = {ours / brute:.2f}x | "
          f"hits: ours {hits:,} (first {len(sub):,} rows: ours {ours_sub}, brute force {bhits}, equal: {ours_sub == bhits})")  # fmt: skip

    print(f"== export ({args.export_records:,} records per task, zs_opt + fs_opt) ==")
    tmp = Path(tempfile.mkdtemp(prefix="bench-decontam-"))
    root = synth.make_catalog(tmp / "cat", args.export_records)
    cat = Catalog.load(root)
    ev_file = tmp / "eval.jsonl"
    with open(ev_file, "w") as fh:
        for it in evals[-1].items:
            fh.write(json.dumps({"id": it.id, "text": it.segments[0]}) + "\n")
    res = {}
    for name, extra in (("plain", {}), ("decontaminate", {"decontaminate": [f"{ev_file}::text"]})):
        t0 = time.perf_counter()
        m = export_mixture(
            cat, "bench_mix", tmp / name, progress=False, log=lambda s: None, **extra
        )
        res[name] = m["planned_rows"] / (time.perf_counter() - t0)
        if name == "decontaminate":
            d = m["decontamination"]
            print(f"decontaminate: {d['rows_checked']:,} rows checked, {d['rows_dropped']} dropped, "
                  f"{d['exemplars_replaced']} exemplars replaced")  # fmt: skip
    print(f"export {res['plain']:,.0f} rows/s | with --decontaminate {res['decontaminate']:,.0f} rows/s | "
          f"ratio {res['decontaminate'] / res['plain']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
