"""Cost of the output options: file formats and the messages view.

Exports the demo mixture once per setting, in this process, and prints each
setting's CPU time and bytes as ratios against the baseline (Arrow, no
messages) run in the same process. With one worker the export runs in this
process, so CPU seconds (``time.process_time``) are measured rather than wall
time, which a shared, loaded machine makes meaningless.

    python bench/outputs.py --total 20000 --repeat 2
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
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    cat = Catalog.load()
    root = Path(tempfile.mkdtemp(prefix="bench-outputs-"))
    base_t = base_b = None
    print(f"demo mixture, {args.total} rows, 1 worker (in-process), best of {args.repeat}")
    print(f"{'setting':42} {'cpu s':>8} {'x time':>7} {'MB':>8} {'x bytes':>8}")

    def run(spec: OutputSpec) -> tuple[float, dict]:
        out = root / "o"
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.process_time()
        m = export_mixture(cat, "demo", out, total=args.total, seed=0, workers=1,
                           output=spec, progress=False, log=lambda s: None)  # fmt: skip
        return time.process_time() - t0, m

    try:
        run(SETTINGS[0][1])  # warm-up: catalog caches, compiled templates, imports
        for name, spec in SETTINGS:
            # best of --repeat: the machine is shared
            dt, m = min((run(spec) for _ in range(args.repeat)), key=lambda x: x[0])
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
