"""Zero-shot export profile: one 1-worker zs_opt export of N synthetic NLI records.

Usage:
    python bench/profile_zs.py N DIR                 # export, print wall/CPU rates
    FLAN_DATA_COLUMNAR=0 python bench/profile_zs.py N DIR   # the row-by-row path
    py-spy record -r 500 -f raw -o spy.txt -- python bench/profile_zs.py N DIR
    python bench/profile_zs.py --split spy.txt       # time per stage from the samples

DIR holds the synthetic catalog (bench/synth.py; built on the first run and reused).
The split files each sample under the first stage (in the order below) found on
its stack; idle threads (tqdm's monitor) are left out.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections import Counter
from pathlib import Path

STAGES = [
    ("pyarrow's pandas import (once per process)", "pandas/__init__"),
    ("assemble shards (sort, encode, sha256, fsync)", "assemble_bucket"),
    ("run writer (sort runs, IPC spill)", "_RunWriter"),
    ("Arrow columns (record_batch, messages)", "record_batch"),
    ("Arrow columns (record_batch, messages)", "_columnar_batch"),
    ("render: seeds and choices", "derive_many"),
    ("render: seeds and choices", "SeedPrefix.derive"),
    ("render: seeds and choices", "mix64"),
    ("render: text, Arrow (columnar path)", "TaskColumns.render"),
    ("render: text, column-wise (str.format)", "_render_simple"),
    ("render: text, Jinja", "_render_group"),
    ("render: other bookkeeping", "render_batch"),
    ("canonical fields", "canonical"),
    ("source read (Parquet -> record batches)", "_batches_with_ids"),
    ("source read (Parquet -> dicts)", "read_range"),
    ("run_job: selection by index arrays (columnar path)", "_FastRows"),
    ("run_job loop", "run_job"),
    ("export planning, counting, manifest", "export_mixture"),
]


def split(path: str, rate: int = 500) -> None:
    got: Counter[str] = Counter()
    for line in Path(path).read_text().splitlines():
        stack, n = line.rsplit(" ", 1)
        if "Condition.wait" in stack or "TMonitor" in stack:
            continue
        for name, key in STAGES:
            if key in stack:
                got[name] += int(n)
                break
        else:
            got["other (imports, catalog, synthetic data)"] += int(n)
    export = sum(n for k, n in got.items() if not k.startswith("other"))
    for k, n in got.most_common():
        share = "" if k.startswith("other") else f"{100 * n / export:5.1f}% of export"
        print(f"{n / rate:6.2f} s  {share:>17}  {k}")


def main() -> None:
    if sys.argv[1] == "--split":
        split(sys.argv[2])
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import synth

    from flan_data import Catalog
    from flan_data.export import export_mixture
    from flan_data.specs import MixtureMember, MixtureSpec

    n, root = int(sys.argv[1]), Path(sys.argv[2])
    if not (root / "catalog.yaml").exists():
        synth.make_catalog(root, n)
    cat = Catalog.load(root)
    only = MixtureSpec(name="nli", members=(MixtureMember(kind="task", name="syn_nli", formats=("zs_opt",)),))  # fmt: skip
    out = root / "out"
    shutil.rmtree(out, ignore_errors=True)
    t, c = time.perf_counter(), time.process_time()
    m = export_mixture(cat, only, out, workers=1, progress=False, log=lambda s: None)
    dt, cpu = time.perf_counter() - t, time.process_time() - c
    rows = m["num_rows"]
    print(
        f"{rows} rows  wall {dt:.2f} s = {rows / dt:,.0f} ex/s  CPU {cpu:.2f} s = {rows / cpu:,.0f} ex/CPU-s"
    )


if __name__ == "__main__":
    main()
