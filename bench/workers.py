"""2 workers vs 1 on the end-to-end row of bench/export.py, with where the time goes.

Usage:  python bench/workers.py [--records 100000] [--mixture nli|bench_mix] [--repeat 1] [--cli] [--pin]

Exports the synthetic NLI task of bench/synth.py (zs_opt, records from
Parquet; or the mixed zs/fs ``bench_mix`` mixture) with 1 worker and with 2,
in this process, and prints per run: wall time, ex/s, the wall time of each
stage (executor start, counting, jobs, shard assembly, the rest: planning,
fingerprint, manifest), when the child answered (``child ready``, from the
export's start) and the number of jobs; then the best run per worker count,
the 2/1 ratio of the best runs and of the first runs (the first 2-worker run
of a process: the cost a one-off ``flan export`` pays; its children are
forked from the process where that is safe, else from the forkserver it
starts then: ``forked``/``forkserver`` per run), and checks that all outputs
are byte-identical. Run it with PYTHONPATH pointing at the tree to measure.

With ``--cli`` it also times one-off commands, whole processes from interpreter
start to exit (``python -m flan_data --catalog ... export --mixture bench_zs
--exclude syn_qa -w W``: the same rows, what a user of ``flan export`` waits
for), ``--repeat`` times per worker count, and prints their 2/1 ratio.

With ``--pin`` a W-worker export (and its children, and the ``--cli``
commands) runs on CPUs 0..W-1 only, as ``taskset -c 0`` / ``taskset -c 0,1``
would: the 1-worker runs cannot use the second core, so both ratios compare
the code on the same cores.

On a shared machine a second core is often not free: before and after the
exports it prints the ``2-core capacity``, how much faster two busy processes
get through the same pure-Python work than one (2.00x: two free cores; 1.00x:
one), so a 2/1 ratio can be read against what the machine gave.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import synth  # noqa: E402

import flan_data.export as ex  # noqa: E402
import flan_data.export.local as local  # noqa: E402
from flan_data import Catalog  # noqa: E402
from flan_data.specs import MixtureMember, MixtureSpec  # noqa: E402


class Stages:
    """Wall time spent consuming each executor stage."""

    def __init__(self) -> None:
        self.t: dict[str, float] = {}
        self.t0 = time.perf_counter()
        self.ready: float | None = None  # when the first child answered
        self.start: str | None = None  # how the children started: fork or forkserver
        self.jobs = 0

    def add(self, k: str, dt: float) -> None:
        self.t[k] = self.t.get(k, 0.0) + dt

    def wrap_iter(self, name: str, it):
        t = time.perf_counter()
        try:
            yield from it
        finally:
            self.add(name, time.perf_counter() - t)


CUR = [Stages()]


def instrument() -> None:
    """Time each stage into ``CUR[0]`` (the parent's view: the wall time it waits)."""
    Exec = local.LocalExecutor
    init, mp, rj, asm = Exec.__init__, Exec.map, Exec.run_jobs, Exec.assemble
    answered = getattr(Exec, "_answered", None)

    def _init(self, *a, **k):
        t = time.perf_counter()
        init(self, *a, **k)
        CUR[0].add("start", time.perf_counter() - t)
        if self.workers > 1:
            CUR[0].start = "forked" if getattr(self, "forked", False) else "forkserver"

    def _map(self, fn, items):
        t = time.perf_counter()
        out = list(mp(self, fn, items))
        CUR[0].add("count", time.perf_counter() - t)
        return iter(out)

    def _answered(self, f):
        st = CUR[0]
        if st.ready is None:
            st.ready = time.perf_counter() - st.t0
        answered(self, f)

    def _run_jobs(self, jobs, *a, **k):
        CUR[0].jobs = len(jobs)
        return CUR[0].wrap_iter("jobs", rj(self, jobs, *a, **k))

    Exec.__init__ = _init
    Exec.map = _map
    Exec.run_jobs = _run_jobs
    if answered is not None:
        Exec._answered = _answered
    Exec.assemble = lambda self, *a, **k: CUR[0].wrap_iter("assemble", asm(self, *a, **k))


_LOOP = (
    "import time; t = time.perf_counter(); sum(range(8_000_000)); print(time.perf_counter() - t)"
)


ALL_CPUS = os.sched_getaffinity(0)


def capacity() -> float:
    """Two busy processes against one: ~2.0 with two free cores, ~1.0 with one."""
    import subprocess

    def run(n: int) -> float:
        ps = [subprocess.Popen([sys.executable, "-c", _LOOP], stdout=subprocess.PIPE, text=True)
              for _ in range(n)]  # fmt: skip
        return max(float(p.communicate()[0]) for p in ps)

    one = run(1)
    return 2 * one / run(2)


def digest(d: Path) -> str:
    h = hashlib.sha256()
    for p in sorted((d / "data").iterdir()):
        h.update(p.read_bytes())
    return h.hexdigest()


def line(w: int, dt: float, rows: int, st: Stages) -> str:
    rest = dt - sum(st.t.values())
    stages = " | ".join(f"{k} {v:.2f}s" for k, v in st.t.items())
    ready = f", child ready {st.ready:.2f}s" if st.ready is not None else ""
    ready += f", {st.start}" if st.start else ""
    return (f"{w} worker(s): {rows:,} rows in {dt:.2f}s = {rows / dt:,.0f} ex/s "
            f"({stages} | rest {rest:.2f}s; {st.jobs} jobs{ready})")  # fmt: skip


def cli_export(cat: Path, out: Path, workers: int) -> float:
    """Wall seconds of one ``python -m flan_data export`` process (the NLI rows)."""
    import subprocess

    cmd = [sys.executable, "-m", "flan_data", "--catalog", str(cat / "catalog.yaml"), "export",
           "--mixture", "bench_zs", "--exclude", "syn_qa", "-w", str(workers), "-q", "--out", str(out)]  # fmt: skip
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--mixture", default="nli", help="nli (zs_opt, one task) or bench_mix")
    ap.add_argument("--repeat", type=int, default=1, help="runs per worker count (best is kept)")
    ap.add_argument("--cli", action="store_true", help="also time one-off `flan export` processes")
    ap.add_argument("--pin", action="store_true",
                    help="run W-worker exports on CPUs 0..W-1 only (taskset -c 0 / -c 0,1)")  # fmt: skip
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="flan-workers-"))
    cat = Catalog.load(synth.make_catalog(tmp / "cat", args.records))
    spec = (
        MixtureSpec(
            name="nli", members=(MixtureMember(kind="task", name="syn_nli", formats=("zs_opt",)),)
        )
        if args.mixture == "nli"
        else cat.mixture(args.mixture)
    )
    cap0 = capacity()
    runs: dict[int, list[tuple[float, int, Stages]]] = {1: [], 2: []}
    digests = set()
    instrument()
    for r in range(args.repeat):
        for w in (1, 2):
            st = CUR[0] = Stages()
            out = tmp / f"e{w}"
            shutil.rmtree(out, ignore_errors=True)
            if args.pin:  # children inherit the affinity
                os.sched_setaffinity(0, set(range(w)))
            t = st.t0 = time.perf_counter()
            m = ex.export_mixture(cat, spec, out, workers=w, progress=False, log=lambda s: None)
            dt = time.perf_counter() - t
            runs[w].append((dt, m["num_rows"], st))
            digests.add(digest(out))
            pin = f" [CPUs {sorted(os.sched_getaffinity(0))}]" if args.pin else ""
            print(f"run {r + 1}{pin}: {line(w, dt, m['num_rows'], st)}", flush=True)
    best = {w: min(rs, key=lambda x: x[0]) for w, rs in runs.items()}
    for w, (dt, rows, st) in best.items():
        print(f"best: {line(w, dt, rows, st)}")
    print(f"2 workers / 1 = {best[1][0] / best[2][0]:.2f}x best runs, "
          f"{runs[1][0][0] / runs[2][0][0]:.2f}x first runs (target >= 1.7)")  # fmt: skip
    if args.cli:
        cli: dict[int, list[float]] = {1: [], 2: []}
        for r in range(args.repeat):
            for w in (1, 2):
                out = tmp / f"c{w}"
                shutil.rmtree(out, ignore_errors=True)
                if args.pin:  # the command inherits it (taskset -c 0 / -c 0,1)
                    os.sched_setaffinity(0, set(range(w)))
                cli[w].append(cli_export(tmp / "cat", out, w))
                digests.add(digest(out))
                print(
                    f"cli run {r + 1}: {w} worker(s) {cli[w][-1]:.2f}s (whole process)", flush=True
                )
        print(f"cli: 2 workers / 1 = {min(cli[1]) / min(cli[2]):.2f}x best runs, "
              f"{cli[1][0] / cli[2][0]:.2f}x first runs (target >= 1.7)")  # fmt: skip
    os.sched_setaffinity(0, ALL_CPUS)
    print(f"outputs byte-identical (in-process and --cli runs): {len(digests) == 1}")
    print(
        f"2-core capacity (two busy processes / one): {cap0:.2f}x before, {capacity():.2f}x after"
    )
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
