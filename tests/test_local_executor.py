"""The local executor: one pool per export, children forked by a preloaded
forkserver, the catalog shipped as a file that is never left behind, and a
clear, fast failure when worker processes cannot start."""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from flan_data import Catalog, FlanDataError
from flan_data.export import export_mixture, local
from flan_data.export.local import GUARD_HINT, START_ENV, LocalExecutor, dumps_catalog
from flan_data.render import RenderConfig

REPO = Path(__file__).resolve().parents[1]


def test_catalog_bytes_round_trip():
    cat = Catalog.load()
    back = pickle.loads(dumps_catalog(cat))
    assert back.fingerprint == cat.fingerprint
    assert back.tasks == cat.tasks and back.mixtures == cat.mixtures
    name = next(iter(cat.tasks))
    assert back.task(name) == cat.task(name)


@pytest.mark.parametrize("start", ["auto", "forkserver"])
def test_script_without_main_guard_fails_fast_with_advice(tmp_path, start):
    # auto: the children are forked from the script's process (and run the
    # script again, as a forkserver child does); forkserver: they re-import it
    script = tmp_path / "export_no_guard.py"
    script.write_text(
        textwrap.dedent(f"""
        from flan_data import Catalog
        from flan_data.export import export_mixture

        export_mixture(Catalog.load(), "demo", {str(tmp_path / "out")!r}, total=60,
                       workers=2, progress=False)
        print("FINISHED")
        """)
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), START_ENV: start}
    # The timeout only guards against the old behaviour (respawning forever).
    p = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300
    )
    assert p.returncode != 0
    assert "FINISHED" not in p.stdout
    assert 'if __name__ == "__main__":' in p.stderr
    assert "exited while starting" in p.stderr
    # never marked complete (shards it wrote meanwhile are kept for a rerun)
    assert not (tmp_path / "out" / "COMPLETED").exists()
    assert not (tmp_path / "out" / "manifest.json").exists()


@pytest.mark.parametrize("start", ["auto", "forkserver"])
def test_guarded_script_runs_with_two_workers(tmp_path, start):
    script = tmp_path / "export_guard.py"
    script.write_text(
        textwrap.dedent(f"""
        from flan_data import Catalog
        from flan_data.export import export_mixture

        if __name__ == "__main__":
            m = export_mixture(Catalog.load(), "demo", {str(tmp_path / "out")!r}, total=60,
                               workers=2, progress=False)
            print("ROWS", m["num_rows"])
        """)
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), START_ENV: start}
    p = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300
    )
    assert p.returncode == 0, p.stderr
    assert "ROWS 60" in p.stdout


def test_worker_that_cannot_load_the_catalog_reports_why(tmp_path, monkeypatch):
    monkeypatch.setenv(START_ENV, "forkserver")  # a forked child needs no catalog file
    cat = Catalog.load()
    monkeypatch.setattr(local, "dumps_catalog", lambda c: b"not a pickle")
    ex = LocalExecutor(cat, RenderConfig(), workers=2)  # the parent does not wait for its children
    try:
        with pytest.raises(FlanDataError, match="could not start: invalid load key"):
            ex.check_started()
    finally:
        ex.close()


def _slow_pid(i: int) -> tuple[int, int]:
    import time

    time.sleep(0.05)
    return i, os.getpid()


def test_parent_works_beside_its_children_and_map_keeps_input_order():
    ex = LocalExecutor(Catalog.load(), RenderConfig(), workers=2)
    try:
        out = list(ex.map(_slow_pid, range(120)))
        assert [i for i, _ in out] == list(range(120))
        pids = {p for _, p in out}
        assert os.getpid() in pids and len(pids) == 2  # the parent and its one child
        ex.check_started()
        got = sorted(i for i, _ in ex._stream(_slow_pid, range(40)))
        assert got == list(range(40))  # every item once, whoever ran it
    finally:
        ex.close()


def test_each_process_runs_a_consecutive_run_of_items():
    """The parent takes the first half of the items in order, the child the
    second: consecutive jobs read consecutive record ranges (no Parquet row
    group decoded again for every other job). At most one hand-over at the end."""
    ex = LocalExecutor(Catalog.load(), RenderConfig(), workers=2)
    try:
        ex.check_started()
        out = list(ex.map(_slow_pid, range(40)))
    finally:
        ex.close()
    assert [i for i, _ in out] == list(range(40))
    by: dict[int, list[int]] = {}
    for i, pid in out:
        by.setdefault(pid, []).append(i)
    assert len(by) == 2 and 0 in by[os.getpid()]

    def runs(ix: list[int]) -> int:
        return 1 + sum(b != a + 1 for a, b in zip(ix, ix[1:]))

    # taking turns item by item would make ~40 runs; each side's own half plus
    # what it took from the other's end at most makes 4
    assert sum(runs(sorted(v)) for v in by.values()) <= 4


def test_one_worker_runs_in_process():
    ex = LocalExecutor(Catalog.load(), RenderConfig(), workers=1)
    try:
        n, seekable = next(iter(ex.map(local.count_one, [(None, "anli_r1", "sample", {})])))
        assert n > 0 and seekable is False  # bundled JSONL samples are read in one pass
    finally:
        ex.close()


def test_guard_hint_names_the_fix():
    assert "__main__" in GUARD_HINT and "workers=1" in GUARD_HINT


# -- the catalog file handed to children: never left behind


def _payloads(d: Path) -> list[str]:
    return sorted(p.name for p in d.glob(f"{local.PAYLOAD_PREFIX}*"))


def test_catalog_file_is_deleted_once_children_started_and_at_close(tmp_path, monkeypatch):
    monkeypatch.setenv(START_ENV, "forkserver")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ex = LocalExecutor(Catalog.load(), RenderConfig(), workers=2)
    try:
        assert len(_payloads(tmp_path)) == 1 and str(os.getpid()) in _payloads(tmp_path)[0]
        ex.check_started()
        deadline = time.monotonic() + 30
        while _payloads(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.01)  # deleted by the pool thread once the child answered
        assert _payloads(tmp_path) == []
    finally:
        ex.close()
    assert _payloads(tmp_path) == []


def test_a_failed_start_leaves_no_catalog_file(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def no_pool(*a, **k):
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(local, "ProcessPoolExecutor", no_pool)
    with pytest.raises(OSError, match="Too many open files"):
        LocalExecutor(Catalog.load(), RenderConfig(), workers=2)
    assert _payloads(tmp_path) == []


def test_files_of_killed_exports_are_swept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    pid = int(dead.stdout)
    names = {
        "mine": f"{local.PAYLOAD_PREFIX}{os.getpid()}-abc123.pickle",  # a live export's: kept
        "dead": f"{local.PAYLOAD_PREFIX}{pid}-xyz_9.pickle",  # its process is gone
        "old": f"{local.PAYLOAD_PREFIX}cnyyl3do.pickle",  # an older version's, 2 h old
        "new": f"{local.PAYLOAD_PREFIX}geqd5al6.pickle",  # an older version's, just written
        "other": "flan-catalog-notes.txt",  # not ours
    }
    for n in names.values():
        (tmp_path / n).write_bytes(b"x")
    two_hours_ago = time.time() - 7200
    os.utime(tmp_path / names["old"], (two_hours_ago, two_hours_ago))
    gone = local.sweep_payloads(tmp_path)
    assert sorted(p.name for p in gone) == sorted([names["dead"], names["old"]])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [names["mine"], names["new"], names["other"]]
    )


@pytest.mark.parametrize("start", ["auto", "forkserver"])
def test_killed_two_worker_export_resumes_and_its_file_is_deleted(tmp_path, start):
    # kill -9 skips every finally: the next export with workers > 1 cleans up.
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "TMPDIR": str(tmp_path),
        "FLAN_DATA_FAULT": "job:1",
        START_ENV: start,
    }
    cmd = [sys.executable, "-m", "flan_data", "export", "-m", "demo", "--total", "60", "-w", "2",
           "-q", "--out", str(tmp_path / "out")]  # fmt: skip
    # run() returns once every process holding its pipes has exited: the
    # killed parent's child and the forkserver must not outlive it.
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == -9, r.stderr[-2000:]
    left = _payloads(tmp_path)
    assert len(left) <= 1  # the child may have started (file deleted) before the kill
    env.pop("FLAN_DATA_FAULT")
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert _payloads(tmp_path) == []
    # the resumed export is the uninterrupted one, byte for byte
    ref = [*cmd[:-1], str(tmp_path / "ref")]
    r = subprocess.run(ref, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]

    def files(d: Path) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in [*d.glob("data/*"), d / "manifest.json"]}

    assert files(tmp_path / "out") == files(tmp_path / "ref")


# -- workers come from a forkserver; a child that cannot start is reported


def test_children_are_forked_by_a_preloaded_forkserver(monkeypatch):
    if "forkserver" not in mp.get_all_start_methods():
        pytest.skip("no forkserver on this platform")
    monkeypatch.setenv(START_ENV, "forkserver")
    ctx = local.mp_context()
    assert ctx.get_start_method() == "forkserver"
    ex = LocalExecutor(Catalog.load(), RenderConfig(), workers=2)
    try:
        mods = [m for _, m in ex.map(_modules, range(2))]
        # the child already held the export modules when it was forked
        assert all("flan_data.export.jobs" in m and "pyarrow" in m for m in mods)
    finally:
        ex.close()


def _modules(i: int) -> tuple[int, frozenset[str]]:
    import sys as _sys

    return i, frozenset(_sys.modules)


def _env(_: int) -> tuple[str | None, str]:
    return os.environ.get("FLAN_TEST_MARK"), os.getcwd()


@pytest.mark.parametrize("start", ["auto", "forkserver"])
def test_children_see_the_parents_environment_and_folder(tmp_path, monkeypatch, start):
    # A forkserver child inherits the server's environment (from when it
    # started); the executor hands the parent's to each child instead.
    monkeypatch.setenv(START_ENV, start)
    local.mp_context()  # the server is running before the variable is set
    monkeypatch.setenv("FLAN_TEST_MARK", "set-after-the-server-started")
    monkeypatch.chdir(tmp_path)
    ex = LocalExecutor(Catalog.load(), RenderConfig(), workers=2)
    try:
        ex.check_started()
        got = list(ex._pool.map(_env, range(2)))
        assert got == [("set-after-the-server-started", str(tmp_path))] * 2
    finally:
        ex.close()


class _NoProcess(mp.get_context("spawn").Process):
    def start(self):
        raise OSError(11, "Resource temporarily unavailable")


class _NoProcessContext(type(mp.get_context("spawn"))):
    Process = _NoProcess


def _assert_start_failure_reported(tmp_path):
    """A 2-worker export whose child cannot start fails with the OS's reason and
    writes no shard and no COMPLETED marker."""
    with pytest.raises(
        FlanDataError, match="could not start an export worker process.*Resource temporarily"
    ):
        export_mixture(Catalog.load(), "demo", tmp_path / "o", total=60, workers=2,
                       progress=False, log=lambda s: None)  # fmt: skip
    assert not list((tmp_path / "o").glob("data/shard-*"))
    assert not (tmp_path / "o" / "COMPLETED").exists()


def test_a_child_that_cannot_be_created_is_reported_before_any_shard(tmp_path, monkeypatch):
    monkeypatch.setattr(local, "mp_context", lambda: _NoProcessContext())
    _assert_start_failure_reported(tmp_path)


def test_no_process_is_left_behind(tmp_path):
    psutil = pytest.importorskip("psutil")
    me = psutil.Process()
    before = {c.pid for c in me.children(recursive=True)}  # other tests' helpers
    export_mixture(Catalog.load(), "demo", tmp_path / "o", total=60, workers=3,
                   progress=False, log=lambda s: None)  # fmt: skip
    assert mp.active_children() == []
    # only the process-wide helpers may remain: the forkserver and the resource
    # tracker (the pool's workers are the forkserver's children: recursive)
    for c in me.children(recursive=True):
        if c.pid in before:
            continue
        try:
            cmd = " ".join(c.cmdline())
        except psutil.NoSuchProcess:  # exited meanwhile
            continue
        assert ("forkserver" in cmd and "main(" in cmd and c.ppid() == os.getpid()) or (
            "resource_tracker" in cmd
        ), cmd


def test_falls_back_to_spawn_when_the_forkserver_cannot_start(tmp_path, monkeypatch):
    from multiprocessing import forkserver

    def no_socket():
        raise PermissionError(1, "Operation not permitted (socket)")

    monkeypatch.setattr(forkserver, "ensure_running", no_socket)
    monkeypatch.setenv(START_ENV, "forkserver")
    assert local.mp_context().get_start_method() == "spawn"
    m = export_mixture(Catalog.load(), "demo", tmp_path / "o", total=60, workers=2,
                       progress=False, log=lambda s: None)  # fmt: skip
    assert m["num_rows"] == 60


# -- workers forked from the exporting process itself, where that is safe

_FORK_SCRIPT = """
import json, os, sys, time
from pathlib import Path

sys.path.insert(0, {bench!r})
import synth
from flan_data import Catalog
from flan_data.export import export_mixture, local
from flan_data.specs import MixtureMember, MixtureSpec

_run = local._run


def logged_run(args):  # inherited by a forked child: no re-import, no pickling
    with open(os.environ["RUN_LOG"], "a") as f:
        f.write(f"{{os.getpid()}}\\n")
    return _run(args)


def settle():
    # A thread that just finished (a pool's, after its last task or its
    # shutdown) is still "running" for a moment: on a loaded machine that can
    # be far longer than the export's own ~0.1 s of patience. Wait for it here
    # (up to 30 s), so the fork is tested rather than the scheduler.
    for _ in range(3000):
        why = local.fork_refusal()
        if why is None or not why.startswith("thread "):
            return why
        time.sleep(0.01)
    return why


def facts(_):
    return {{
        "ppid": os.getppid(),
        "pid": os.getpid(),
        "mark": getattr(local, "_TEST_MARK", None),
        "colorsys": "colorsys" in sys.modules,
        "templates": sorted(local.shared_engine()._templates),
    }}


if __name__ == "__main__":
    import colorsys  # noqa: F401 - imported by the parent only (under the guard)

    tmp = Path(sys.argv[1])
    cat = Catalog.load(synth.make_catalog(tmp / "cat", 20_000))
    spec = MixtureSpec(
        name="nli", members=(MixtureMember(kind="task", name="syn_nli", formats=("zs_opt",)),)
    )
    kw = dict(progress=False, shard_rows=2_000, log=lambda s: None)
    export_mixture(cat, spec, tmp / "e1", workers=1, **kw)
    why = settle()
    out = {{"refusal": why, "threads": len(os.listdir("/proc/self/task"))}}
    local._TEST_MARK = "set-in-parent"
    out["parent_templates"] = sorted(local.shared_engine()._templates)
    ex = local.LocalExecutor(cat, local.RenderConfig(), workers=2)
    try:
        out["forked"] = ex.forked
        out["payloads"] = [n for n in os.listdir(tmp) if n.startswith(local.PAYLOAD_PREFIX)]
        out["child"] = ex._pool.submit(facts, 0).result(timeout=60)
    finally:
        ex.close()
    local._run = logged_run
    out["refusal_again"] = settle()  # the closed pool's threads have exited
    export_mixture(cat, spec, tmp / "e2", workers=2, **kw)
    out["runs_by"] = sorted(set(Path(os.environ["RUN_LOG"]).read_text().split()))
    out["parent"] = str(os.getpid())

    def files(d):
        return {{p.name: p.read_bytes().hex() for p in sorted((d / "data").iterdir())}}

    out["identical"] = files(tmp / "e1") == files(tmp / "e2")
    print("RESULT " + json.dumps(out))
"""


def test_children_are_forked_from_the_exporting_process(tmp_path):
    """After a 1-worker export (Arrow has read Parquet: its pools' threads
    exist), a 2-worker export forks its child from this process: the child
    holds what the parent set and imported after it started, and every
    template the parent compiled, without a catalog file; it runs jobs, and the
    output is byte-identical. In a subprocess: a clean process, and a hang
    could never outlast the timeout."""
    if not sys.platform.startswith("linux"):
        pytest.skip("workers are forked only on Linux")
    script = tmp_path / "fork_export.py"
    script.write_text(_FORK_SCRIPT.format(bench=str(REPO / "bench")))
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp_path),
           "RUN_LOG": str(tmp_path / "runs.log")}  # fmt: skip
    env.pop(START_ENV, None)
    p = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True,
                       text=True, env=env, timeout=300)  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    import json

    out = json.loads(p.stdout.split("RESULT ", 1)[1])
    assert out["refusal"] is None and out["threads"] > 1  # Arrow's/jemalloc's threads, asleep
    assert out["refusal_again"] is None
    assert out["forked"] is True and out["payloads"] == []
    child = out["child"]
    assert child["ppid"] == int(out["parent"])  # forked by the exporting process
    assert child["mark"] == "set-in-parent" and child["colorsys"] is True  # inherited, not imported
    assert set(out["parent_templates"]) <= set(child["templates"]) and out["parent_templates"]
    assert len(out["runs_by"]) == 2 and out["parent"] in out["runs_by"]  # the child ran jobs too
    assert out["identical"] is True


_REFUSAL_SCRIPT = """
import json, os, sys, threading, time, types
from flan_data import FlanDataError
from flan_data.export import local
import pyarrow as pa, pyarrow.parquet as pq

pq.write_table(pa.table({{"a": list(range(1000))}}), sys.argv[1] + "/t.parquet")
pq.read_table(sys.argv[1] + "/t.parquet")  # starts Arrow's pools


def settled():  # a pool thread that just finished a task needs a moment to fall asleep
    for _ in range(3000):  # up to 30 s on a loaded machine
        why = local.fork_refusal()
        if why is None or not why.startswith("thread "):
            return why
        time.sleep(0.01)
    return why


out = {{"clean": settled(), "ctx": local.mp_context().get_start_method()}}
stop = threading.Event()
t = threading.Thread(target=stop.wait, name="busy-helper")
t.start()
out["python_thread"] = local.fork_refusal()
out["ctx_thread"] = local.mp_context().get_start_method()
box = []
t2 = threading.Thread(target=lambda: box.append(local.fork_refusal()))
t2.start(); t2.join()
out["not_main"] = box[0]
stop.set(); t.join()
sys.modules["torch"] = types.ModuleType("torch")
out["torch"] = local.fork_refusal()
del sys.modules["torch"]
me = threading.get_native_id()
fake = sys.argv[1] + "/task"
for tid, call in ((me, "0 1 2"), (1, "202 0x1 0x2"), (2, "running")):
    os.makedirs(f"{{fake}}/{{tid}}", exist_ok=True)
    open(f"{{fake}}/{{tid}}/syscall", "w").write(call)
out["running"] = local.fork_refusal(fake)
open(f"{{fake}}/2/syscall", "w").write("0 0x3 0x4")
out["read"] = local.fork_refusal(fake)
open(f"{{fake}}/2/syscall", "w").write("202 0x3 0x4")
out["asleep"] = local.fork_refusal(fake)
os.environ[local.START_ENV] = "forkserver"
out["env"] = local.fork_refusal()
out["ctx_env"] = local.mp_context().get_start_method()
os.environ[local.START_ENV] = "vfork"
try:
    local.fork_refusal()
except FlanDataError as e:
    out["bad_env"] = str(e)
print("RESULT " + json.dumps(out))
"""


def test_fork_is_refused_unless_every_other_thread_is_asleep(tmp_path):
    if not sys.platform.startswith("linux"):
        pytest.skip("workers are forked only on Linux")
    script = tmp_path / "refusals.py"
    script.write_text(_REFUSAL_SCRIPT.format())
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop(START_ENV, None)
    p = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True,
                       text=True, env=env, timeout=120)  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    import json

    out = json.loads(p.stdout.split("RESULT ", 1)[1])
    assert out["clean"] is None and out["ctx"] == "fork"  # Arrow's idle pools do not refuse it
    assert "other Python threads" in out["python_thread"] and "busy-helper" in out["python_thread"]
    assert out["ctx_thread"] != "fork"  # the forkserver then
    assert out["not_main"] == "not called on the main thread"
    assert "torch" in out["torch"]
    assert out["running"] == "thread 2 is running, not asleep"
    assert "thread 2 is in system call" in out["read"]
    assert out["asleep"] is None
    assert out["env"] == f"{START_ENV}=forkserver" and out["ctx_env"] == "forkserver"
    assert START_ENV in out["bad_env"] and "forkserver" in out["bad_env"]


def test_a_child_that_cannot_be_forked_is_reported_before_any_shard(tmp_path, monkeypatch):
    monkeypatch.setattr(local, "fork_refusal", lambda *a: None)  # no real fork happens below

    def no_fork():
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    _assert_start_failure_reported(tmp_path)


def test_a_later_export_compiles_no_template_again(tmp_path, monkeypatch):
    cat = Catalog.load()
    kw = dict(total=60, workers=1, progress=False, log=lambda s: None)
    first = export_mixture(cat, "demo", tmp_path / "a", **kw)
    engine = local.shared_engine()
    assert engine._templates  # the templates the first export compiled
    compiled: list[str] = []
    real = engine._compile

    def counting(source, where):
        compiled.append(where)
        return real(source, where)

    monkeypatch.setattr(engine, "_compile", counting)
    second = export_mixture(cat, "demo", tmp_path / "b", **kw)
    assert local.shared_engine() is engine and compiled == []
    assert first["shards"] == second["shards"]  # same bytes (sha256 per shard)
