"""Records read per record exported, and CPU per record, at a given size.

Usage:  python bench/profile_reads.py N [mixture]   (bench/synth.py mixtures: bench_zs, bench_mix)

Builds the two-task synthetic Parquet catalog of bench/synth.py with N records
in all, exports N rows with 1 worker in this process and prints one JSON line:
wall time, examples/s, CPU microseconds per record, records read from the
sources (and per record exported) and peak RSS of this process.
"""

from __future__ import annotations

import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import synth  # noqa: E402

import flan_data.sources.base as base  # noqa: E402
from flan_data import Catalog  # noqa: E402
from flan_data.export import export_mixture  # noqa: E402

try:  # jobs count their own reads since the read-once redesign
    from flan_data.export.jobs import READ_STATS
except ImportError:  # older trees: count what Source.read yields
    READ_STATS = None


def main() -> None:
    n = int(sys.argv[1])
    mix = sys.argv[2] if len(sys.argv) > 2 else "bench_zs"
    root = Path(tempfile.mkdtemp(prefix="prof"))
    synth.make_catalog(root, n // 2)
    cat = Catalog.load(root)
    read = [0]
    orig = base.Source._with_ids

    def counted(self, native, *a, **k):
        for x in orig(self, native, *a, **k):
            read[0] += 1
            yield x

    base.Source._with_ids = counted
    c0, t0 = time.process_time(), time.perf_counter()
    m = export_mixture(cat, mix, root / "out", total=n, progress=False, log=lambda s: None)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    reads = read[0] + (READ_STATS["records_read"] if READ_STATS else 0)
    rows = m["num_rows"]
    print(json.dumps({
        "n": n, "mix": mix, "rows": rows, "wall_s": round(dt, 1), "ex_s": round(rows / dt),
        "cpu_us_per_rec": round(cpu / rows * 1e6, 1), "records_read": reads,
        "read_per_row": round(reads / rows, 2),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }))  # fmt: skip
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
