"""Records read per record exported, CPU per record, peak RSS and peak disk at a given size.

Usage:  python bench/profile_reads.py N [mixture] [--data DIR] [--tree PATH]
        (bench/synth.py mixtures: bench_zs, bench_mix)

Builds the two-task synthetic Parquet catalog of bench/synth.py with N records
in all (or reuses the one in ``--data DIR``, built there the first time), exports
N rows with 1 worker in this process and prints one JSON line: wall time,
examples/s, CPU microseconds per record (user + system), records read from the
sources (and per record exported), peak RSS of this process, and the output's
size with the peak of spill + shards on disk during assembly (sampled after
every shard). ``--tree PATH`` imports flan_data from another checkout (a
before/after comparison on the same data, in turn, under the same load).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _du(d: Path) -> int:
    return sum(p.stat().st_size for p in d.rglob("*") if p.is_file()) if d.exists() else 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int)
    ap.add_argument("mix", nargs="?", default="bench_zs")
    ap.add_argument("--data", type=Path, help="reuse (or build once) the synthetic catalog here")
    ap.add_argument(
        "--tree", type=Path, default=HERE.parent, help="checkout to import flan_data from"
    )
    a = ap.parse_args()
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(a.tree.resolve()))
    import synth

    import flan_data.export as export
    import flan_data.sources.base as base
    from flan_data import Catalog

    try:  # jobs count their own reads since the read-once redesign
        from flan_data.export.jobs import READ_STATS
    except ImportError:  # older trees: count what Source.read yields
        READ_STATS = None

    tmp = Path(tempfile.mkdtemp(prefix="prof"))
    root = a.data or tmp / "cat"
    if not (root / "data").is_dir():
        synth.make_catalog(root, a.n // 2)
    cat = Catalog.load(root)
    read = [0]
    orig = base.Source._with_ids

    def counted(self, native, *args, **kw):
        for x in orig(self, native, *args, **kw):
            read[0] += 1
            yield x

    base.Source._with_ids = counted
    out = tmp / "out"
    peak_disk = [0]
    fault = export._fault  # called after every job and every shard written: sample the disk there

    def sampled(stage, n=0):
        if stage == "shard":
            peak_disk[0] = max(peak_disk[0], _du(out))
        fault(stage, n)

    export._fault = sampled

    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    m = export.export_mixture(cat, a.mix, out, total=a.n, progress=False, log=lambda s: None)
    dt = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    reads = read[0] + (READ_STATS["records_read"] if READ_STATS else 0)
    rows = m["num_rows"]
    output = _du(out / "data")
    print(json.dumps({
        "n": a.n, "mix": a.mix, "tree": str(a.tree), "rows": rows, "wall_s": round(dt, 1), "ex_s": round(rows / dt),
        "cpu_us_per_rec": round(cpu / rows * 1e6, 1), "records_read": reads,
        "read_per_row": round(reads / rows, 2),
        "peak_rss_mb": r1.ru_maxrss // 1024,
        "output_mb": round(output / 2**20), "peak_disk_mb": round(peak_disk[0] / 2**20) if peak_disk[0] else None,
    }))  # fmt: skip
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
