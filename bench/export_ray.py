"""Ray backend benchmark: the same export with the local and the Ray backend, in one run.

Usage:  python bench/export_ray.py [--total 20000] [--mixture demo] [--repeat 3]
        python bench/export_ray.py --synthetic 50000 --total 100000   # bench/synth.py tasks

Two views, each configuration run ``--repeat`` times round-robin (so a noisy
neighbour slows all of them alike) into a fresh folder; the best run counts:

A. library, one driver: ``export_mixture`` in this process, local and Ray with 1
   and 2 workers, Ray started once beforehand. Ray's worker processes stay warm
   between runs (catalog loaded, templates compiled), as in a notebook; the
   first Ray run (cold workers) is shown on its own.
B. command line, a new driver per export, as a user runs it: ``flan export`` in a
   subprocess (interpreter start included) with ``--workers 2``: local, Ray
   joining the already running Ray (like ``ray start --head`` once and then
   ``--ray-address auto``: cold worker processes every time), and once Ray
   starting its own local instance.

examples/s = rows / wall time. Every output is checked byte-identical to the
first local one. The catalog is a snapshot taken at start.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flan_data import Catalog  # noqa: E402
from flan_data.catalog import default_root  # noqa: E402
from flan_data.export import export_mixture  # noqa: E402


def _files(d: Path) -> dict[str, bytes]:
    # every file of the export, shards under data/ included (not the work-in-progress state)
    return {
        str(p.relative_to(d)): p.read_bytes()
        for p in sorted(d.rglob("*"))
        if p.is_file() and ".flan-export" not in p.parts
    }


def _snapshot(work: Path) -> Path:
    """A copy of the bundled catalog: edits to the working tree during the run cannot
    change it under the workers (they reload it; a changed fingerprint stops an export)."""
    root, snap = default_root(), work / "catalog"
    snap.mkdir()
    shutil.copy2(root / "catalog.yaml", snap / "catalog.yaml")
    for d in ("collections", "templates", "sample_data"):
        shutil.copytree(root / d, snap / d)
    return snap


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mixture", default="demo")
    ap.add_argument("--total", type=int, default=20_000)
    ap.add_argument("--shard-rows", type=int, default=2_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--synthetic", type=int, default=0, metavar="N",
                    help="Use bench/synth.py's two Parquet tasks of N records each (mixture bench_mix).")  # fmt: skip
    args = ap.parse_args()

    import ray

    work = Path(tempfile.mkdtemp(prefix="flan-bench-ray-"))
    try:
        if args.synthetic:
            import synth

            root, mixture = synth.make_catalog(work / "cat", args.synthetic), "bench_mix"
        else:
            root, mixture = _snapshot(work), args.mixture
        cat = Catalog.load(root)
        rows, runs, ref = args.total, [0], {}

        def check(out: Path, what: str) -> None:
            if not ref:
                ref.update(_files(out))
            assert _files(out) == ref, f"{what}: output differs from the first local export"
            shutil.rmtree(out)

        def lib(backend: str, workers: int) -> float:
            runs[0] += 1
            out = work / f"out-{runs[0]}"
            t = time.perf_counter()
            export_mixture(cat, mixture, out, total=rows, shard_rows=args.shard_rows, seed=args.seed,
                           workers=workers, backend=backend, progress=False, log=lambda s: None)  # fmt: skip
            rate = rows / (time.perf_counter() - t)
            check(out, f"{backend} x{workers}")
            return rate

        def cli(extra: list[str]) -> float:
            runs[0] += 1
            out = work / f"out-{runs[0]}"
            cmd = [sys.executable, "-m", "flan_data", "--catalog", str(root), "export", "-m", mixture,
                   "--total", str(rows), "--shard-rows", str(args.shard_rows), "--seed", str(args.seed),
                   "-q", "--out", str(out), "--workers", "2", *extra]  # fmt: skip
            t = time.perf_counter()
            r = subprocess.run(cmd, capture_output=True, text=True)
            rate = rows / (time.perf_counter() - t)
            assert r.returncode == 0, r.stderr[-2000:]
            check(out, " ".join(extra) or "local")
            return rate

        load0 = os.getloadavg()[0]
        t = time.perf_counter()
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False,
                 object_store_memory=256 * 1024**2, logging_level=logging.WARNING)  # fmt: skip
        ray_start = time.perf_counter() - t
        address = ray.get_runtime_context().gcs_address
        a_cfg = [("local", 1), ("ray", 1), ("local", 2), ("ray", 2)]
        b_cfg = {
            "local": [],
            "ray, joins running Ray": ["--backend", "ray", "--ray-address", address],
        }
        a = {c: [] for c in a_cfg}
        b = {c: [] for c in b_cfg}
        try:
            for _ in range(args.repeat):
                for c in a_cfg:
                    a[c].append(lib(*c))
            for _ in range(args.repeat):
                for name, extra in b_cfg.items():
                    b[name].append(cli(extra))
        finally:
            ray.shutdown()
        own = cli(["--backend", "ray"])
        load1 = os.getloadavg()[0]

        best = {c: max(r) for c, r in a.items()}
        bb = {c: max(r) for c, r in b.items()}
        src = (
            f"synthetic, {args.synthetic} records/task" if args.synthetic else "bundled sample data"
        )
        print(f"mixture {mixture} ({src}), {rows} rows, shard_rows {args.shard_rows}, {os.cpu_count()} CPUs, "
              f"best of {args.repeat}; ray {ray.__version__}")  # fmt: skip
        print("A. library, one driver (examples/s)")
        for (bk, w), r in best.items():
            each = ", ".join(f"{x:,.0f}" for x in a[bk, w])
            print(f"  {bk:<5} workers={w}: {r:8,.0f}   (runs: {each})")
        print(
            f"  first Ray run, cold workers: {a['ray', 1][0]:,.0f}; ray.init (local): {ray_start:.1f} s"
        )
        print(f"  ray / local, 1 worker:  {best['ray', 1] / best['local', 1]:.2f}x")
        print(f"  ray / local, 2 workers: {best['ray', 2] / best['local', 2]:.2f}x")
        print(f"  ray 2 workers / 1 worker: {best['ray', 2] / best['ray', 1]:.2f}x   "
              f"(local: {best['local', 2] / best['local', 1]:.2f}x)")  # fmt: skip
        print("B. flan export, new driver per run, --workers 2 (examples/s)")
        for name, r in bb.items():
            each = ", ".join(f"{x:,.0f}" for x in b[name])
            print(f"  {name:<22}: {r:8,.0f}   (runs: {each})")
        print(f"  {'ray, starts its own':<22}: {own:8,.0f}   (one run)")
        print(f"  ray joining / local: {bb['ray, joins running Ray'] / bb['local']:.2f}x; "
              f"ray starting its own / local: {own / bb['local']:.2f}x")  # fmt: skip
        print("all outputs byte-identical: yes")
        print(f"load average (1 min) before / after: {load0:.1f} / {load1:.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
