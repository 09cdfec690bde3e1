"""Where a 1- and 2-worker export spend their time: every work item timed in the process that ran it.

Usage:  python bench/worker_timeline.py [--records 100000] [--runs 1,2,2] [--pin]

Exports the synthetic NLI task of bench/synth.py (zs_opt, records from
Parquet) once per entry of ``--runs`` (the number of workers), in this
process, and prints for each export its wall time and, per process (the
parent, each child), the start of its first item, the wall time it spent in
items (``busy``), the CPU time of those items, and the items themselves
(``job[index cpu]start-end``, ``asm[bucket cpu]start-end``, in seconds from
the export's start; ``init``: the child's start-up, ``init[forked]`` for a
child forked from the exporting process). The first 2-worker export of a
process is cold (its children are forked from it where that is safe, else it
starts the forkserver); later ones are warm.

The parent's serial stages are timed too (``stage[name]``: executor start,
count, plan, fingerprint, jobs layout, shard fsync waits, manifest, card,
executor close, ...), and each export ends with where its wall time was not
overlapped: how long both processes were busy (an item or a parent stage),
only one of them (and doing what), or none, and the uncovered stretches of
the wall time longer than 5 ms.

CPU seconds do not depend much on the machine's load, wall seconds do: on a
shared machine compare the CPU split between the processes (what two free
cores would run side by side) with the 1-worker CPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import synth  # noqa: E402

import flan_data.export as ex  # noqa: E402
import flan_data.export.card as card  # noqa: E402
import flan_data.export.jobs as jobs  # noqa: E402
import flan_data.export.local as local  # noqa: E402
import flan_data.export.writer as writer  # noqa: E402
from flan_data import Catalog  # noqa: E402
from flan_data.specs import MixtureMember, MixtureSpec  # noqa: E402

LOG = os.environ.get("FLAN_TIMELINE_LOG") or str(
    Path(tempfile.gettempdir()) / f"flan-timeline-{os.getpid()}.log"
)
_run, _assemble, _init = local._run, local._assemble, local._init
_init_forked = local._init_forked


def _record(kind: str, t0: float, c0: float, what: str = "") -> None:
    with open(os.environ.get("FLAN_TIMELINE_LOG", LOG), "a") as f:
        f.write(
            json.dumps([os.getpid(), kind, t0, time.perf_counter(), time.process_time() - c0, what])
            + "\n"
        )


def timed_run(args):
    t, c = time.perf_counter(), time.process_time()
    res = _run(args)
    _record("job", t, c, str(args[0].index))
    return res


def timed_assemble(args):
    t, c = time.perf_counter(), time.process_time()
    res = _assemble(args)
    _record("asm", t, c, str(args[0]))
    return res


def timed_init(*a, **k):
    t, c = time.perf_counter(), time.process_time()
    _init(*a, **k)
    _record("init", t, c)


def timed_init_forked(*a, **k):
    t, c = time.perf_counter(), time.process_time()
    _init_forked(*a, **k)
    _record("init", t, c, "forked")


#: Parent stages timed: (object, attribute name). Module functions of
#: flan_data.export are looked up there by the export at call time.
STAGES = [
    (local.LocalExecutor, "__init__", "start"),
    (local.LocalExecutor, "close", "close"),
    (local.LocalExecutor, "retire", "retire"),
    (ex, "candidate_tasks", "tasks"),
    (ex, "count_sizes", "count"),
    (ex, "plan_mixture", "plan"),
    (ex, "fingerprint", "fingerprint"),
    (ex, "_prepare_out", "prepare"),
    (ex, "save_cache", "hash-cache"),
    (ex, "make_jobs", "layout"),
    (ex, "_check_layout", "check-layout"),
    (ex, "check_consumed", "check-consumed"),
    (writer.ShardSyncer, "synced", "fsync-wait"),
    (jobs.SpillFreer, "_free", "free-spill"),
    (writer.ShardSyncer, "finish", "fsync-finish"),
    (ex, "_decontam_report", "decontam"),
    (ex, "_governance", "attribution"),
    (card, "write_card", "card"),
    (ex, "write_manifest", "manifest"),
    (ex, "write_completed", "completed"),
    (ex, "_write_ledger", "ledger"),
    (ex, "_clean_leftovers", "cleanup"),
]


def _item(fn, kind: str):
    """Time ``fn`` as an item of ``kind`` in whichever process runs it (over 0.5 ms)."""

    def wrapper(*a, **k):
        t, c = time.perf_counter(), time.process_time()
        try:
            return fn(*a, **k)
        finally:
            if time.perf_counter() - t > 0.0005:
                _record(kind, t, c)

    return wrapper


def _staged(fn, name: str):
    def wrapper(*a, **k):
        t, c = time.perf_counter(), time.process_time()
        try:
            return fn(*a, **k)
        finally:
            if time.perf_counter() - t > 0.0005 or name != "fsync-wait":
                _record("stage", t, c, name)

    return wrapper


def overlap(by: dict[int, list], parent: int, dt: float) -> str:
    """Both busy / only one / none over [0, dt], with the gaps named."""
    spans = {pid: sorted((max(0.0, a), min(dt, b), k, x) for a, b, _c, k, x in items)
             for pid, items in by.items()}  # fmt: skip
    cuts = sorted({0.0, dt, *(v for sp in spans.values() for a, b, *_ in sp for v in (a, b))})
    both = only_p = only_c = none = 0.0
    gaps: list[str] = []

    def what(pid: int, a: float, b: float) -> str | None:
        for x, y, k, w in spans.get(pid, ()):
            if x <= a and y >= b:
                return f"{k}[{w}]" if w else k
        return None

    run: list = []  # merge consecutive slices with the same description
    for a, b in zip(cuts, cuts[1:]):
        if b - a <= 0:
            continue
        busy = {pid: what(pid, a, b) for pid in spans}
        on = {pid: w for pid, w in busy.items() if w is not None}
        kids_on = [pid for pid in on if pid != parent]
        if parent in on and kids_on:
            both += b - a
            desc = None
        elif on:
            if parent in on:
                only_p += b - a
                desc = f"only parent: {on[parent]}"
            else:
                only_c += b - a
                desc = f"only child: {on[kids_on[0]]}"
        else:
            none += b - a
            desc = "none busy"
        if run and run[2] == desc and abs(run[1] - a) < 1e-9:
            run[1] = b
        else:
            if run and run[2] is not None and run[1] - run[0] > 0.005:
                gaps.append(f"{run[0]:.3f}-{run[1]:.3f} {run[2]}")
            run = [a, b, desc]
    if run and run[2] is not None and run[1] - run[0] > 0.005:
        gaps.append(f"{run[0]:.3f}-{run[1]:.3f} {run[2]}")
    head = (f"  overlap: both busy {both:.3f}s, only parent {only_p:.3f}s, "
            f"only a child {only_c:.3f}s, none {none:.3f}s (of {dt:.3f}s)")  # fmt: skip
    return head + "".join(f"\n    {g}" for g in gaps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--runs", default="1,2,2", help="worker counts, one export each")
    ap.add_argument("--pin", action="store_true",
                    help="run a W-worker export on CPUs 0..W-1 only (taskset -c 0 / -c 0,1)")  # fmt: skip
    args = ap.parse_args()
    os.environ["FLAN_TIMELINE_LOG"] = LOG  # the children append to the same file
    local._run, local._assemble, local._init = timed_run, timed_assemble, timed_init
    local._init_forked = timed_init_forked
    # in every process (forked children inherit it): memory handed back after an
    # item (release), job caches dropped at a process's first bucket (drop)
    jobs.release_if_over = _item(jobs.release_if_over, "release")
    jobs.drop_job_caches = _item(jobs.drop_job_caches, "drop")
    for obj, attr, name in STAGES:
        if hasattr(obj, attr):  # an older tree may lack one
            setattr(obj, attr, _staged(getattr(obj, attr), name))
    tmp = Path(tempfile.mkdtemp(prefix="flan-timeline-"))
    cat = Catalog.load(synth.make_catalog(tmp / "cat", args.records))
    spec = MixtureSpec(
        name="nli", members=(MixtureMember(kind="task", name="syn_nli", formats=("zs_opt",)),)
    )
    try:
        for w in [int(x) for x in args.runs.split(",")]:
            Path(LOG).unlink(missing_ok=True)
            out = tmp / "e"
            shutil.rmtree(out, ignore_errors=True)
            if args.pin:  # children inherit the affinity
                os.sched_setaffinity(0, set(range(w)))
            t0, c0 = time.perf_counter(), time.process_time()
            m = ex.export_mixture(cat, spec, out, workers=w, progress=False, log=lambda s: None)
            dt = time.perf_counter() - t0
            pin = f" on CPUs {sorted(os.sched_getaffinity(0))}" if args.pin else ""
            print(f"== {w} worker(s){pin}: {m['num_rows']:,} rows in {dt:.2f}s = {m['num_rows'] / dt:,.0f} ex/s "
                  f"(parent process CPU {time.process_time() - c0:.2f}s)")  # fmt: skip
            by: dict[int, list] = {}
            for line in Path(LOG).read_text().splitlines() if Path(LOG).exists() else []:
                pid, kind, a, b, cpu, what = json.loads(line)
                by.setdefault(pid, []).append((a - t0, b - t0, cpu, kind, what))
            for pid, rows in sorted(by.items(), key=lambda kv: kv[0] != os.getpid()):
                rows.sort()
                items = [r for r in rows if r[3] != "stage"]
                stages = [r for r in rows if r[3] == "stage"]
                who = "parent" if pid == os.getpid() else f"child {pid}"
                busy = sum(b - a for a, b, *_ in items)
                cpu = sum(c for _, _, c, *_ in items)
                first = items[0][0] if items else float("nan")
                seq = " ".join(
                    f"{k}[{x}{' ' if x else ''}{c:.2f}]{a:.2f}-{b:.2f}" for a, b, c, k, x in items
                )
                print(
                    f"  {who}: first item at {first:.2f}s, busy {busy:.2f}s, item CPU {cpu:.2f}s: {seq}"
                )
                if stages:
                    print(f"    stages ({sum(b - a for a, b, *_ in stages):.3f}s): " + " ".join(
                        f"{x}[{c:.3f}]{a:.3f}-{b:.3f}" for a, b, c, _k, x in stages))  # fmt: skip
            print(overlap(by, os.getpid(), dt))
    finally:
        Path(LOG).unlink(missing_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
