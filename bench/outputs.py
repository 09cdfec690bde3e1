"""Cost of the output options: file formats and the messages view.

Exports the demo mixture once per setting, in this process, and prints each
setting's time and bytes as ratios against the baseline (Arrow, no messages)
run in the same process. Machines are shared and noisy: read the ratios.

    python bench/outputs.py --total 20000
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from flan_data import Catalog
from flan_data.export import export_mixture
from flan_data.views import OutputSpec

SETTINGS = [
    ("arrow, no messages (baseline)", OutputSpec(messages=False)),
    ("arrow + messages (default)", OutputSpec()),
    (
        "arrow + messages multiturn + flan-dump",
        OutputSpec(chat_fewshot="multiturn", columns=("flan-dump",)),
    ),  # fmt: skip
    ("parquet + messages", OutputSpec(file_format="parquet")),
    ("jsonl + messages", OutputSpec(file_format="jsonl")),
    ("jsonl.gz + messages", OutputSpec(file_format="jsonl.gz")),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--total", type=int, default=20_000)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    cat = Catalog.load()
    root = Path(tempfile.mkdtemp(prefix="bench-outputs-"))
    base_t = base_b = None
    print(f"demo mixture, {args.total} rows, {args.workers} worker(s)")
    print(f"{'setting':42} {'seconds':>8} {'x time':>7} {'MB':>8} {'x bytes':>8}")
    try:
        for name, spec in SETTINGS:
            out = root / name.split()[0]
            shutil.rmtree(out, ignore_errors=True)
            t0 = time.perf_counter()
            m = export_mixture(cat, "demo", out, total=args.total, seed=0, workers=args.workers,
                               output=spec, progress=False, log=lambda s: None)  # fmt: skip
            dt = time.perf_counter() - t0
            nbytes = sum(s["bytes"] for s in m["shards"])
            base_t = base_t or dt
            base_b = base_b or nbytes
            print(
                f"{name:42} {dt:8.2f} {dt / base_t:7.2f} {nbytes / 1e6:8.2f} {nbytes / base_b:8.2f}"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
