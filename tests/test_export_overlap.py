"""The serial end of a multi-worker export overlaps what it waits for: the
children exit while the parent writes the manifest, and work handed to an
executor whose children were let go still runs (in the parent)."""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
from concurrent.futures import ProcessPoolExecutor

from toy import export_files

import flan_data.export as export
from flan_data import Catalog
from flan_data.export import export_mixture, local
from flan_data.export.local import LocalExecutor
from flan_data.render import RenderConfig


def _export(out, workers):
    return export_mixture(Catalog.load(), "demo", out, total=300, seed=3, shard_rows=40,
                          workers=workers, progress=False, log=lambda s: None)  # fmt: skip


def test_children_exit_beside_the_manifest(tmp_path, monkeypatch):
    """The children are let go once the shards are assembled: COMPLETED is
    written while their exit is still pending (the exit is held here until
    COMPLETED; an export that waited for it first would time out the hold)."""
    completed = threading.Event()
    held: list[bool] = []
    shutdown = ProcessPoolExecutor.shutdown

    def holding(self, *a, **k):
        if threading.current_thread().name == "flan-export-retire":
            held.append(completed.wait(timeout=20))
        return shutdown(self, *a, **k)

    write_completed = export.write_completed

    def marking(out, digest):
        write_completed(out, digest)
        completed.set()

    monkeypatch.setattr(ProcessPoolExecutor, "shutdown", holding)
    monkeypatch.setattr(export, "write_completed", marking)
    _export(tmp_path / "w2", workers=2)
    assert held == [True]  # let go once, and COMPLETED came first
    assert mp.active_children() == []  # close() still waited for them
    monkeypatch.undo()
    _export(tmp_path / "w1", workers=1)
    assert export_files(tmp_path / "w2") == export_files(tmp_path / "w1")


def _pid(i: int) -> tuple[int, int]:
    return i, os.getpid()


def test_work_after_retire_runs_in_the_parent():
    ex = LocalExecutor(Catalog.load(), RenderConfig(), workers=2)
    try:
        ex.check_started()
        assert {p for _, p in ex.map(_pid, range(40))} != {os.getpid()}  # a child helped
        ex.retire()
        ex.retire()  # twice is harmless
        out = list(ex.map(_pid, range(6)))
        assert [i for i, _ in out] == list(range(6))
        assert {p for _, p in out} == {os.getpid()}
    finally:
        ex.close()
    assert mp.active_children() == []


def test_spill_is_freed_beside_the_assembly_not_on_the_exporting_thread(tmp_path, monkeypatch):
    """Freeing a bucket's spill (truncating its runs, which may wait for the
    disk) runs on the shard syncer's thread, once per bucket, not between the
    parent's assembly items."""
    from flan_data.export import jobs

    free = jobs.SpillFreer._free
    where: list[str] = []

    def recording(self, bucket):
        where.append(threading.current_thread().name)
        free(self, bucket)

    monkeypatch.setattr(jobs.SpillFreer, "_free", recording)
    m = _export(tmp_path / "o", workers=2)
    g = jobs.bucket_shards(40, len(m["shards"]))
    assert len(where) == -(-len(m["shards"]) // g) > 1
    assert set(where) == {"flan-shard-sync"}


def test_shard_syncer_fsyncs_items_at_once_and_reports_them_in_order(tmp_path, monkeypatch):
    """With threads, items are fsynced at the same time (four fsyncs meet at a
    barrier: one thread would time it out) and still reported durable, and
    handed to ``on_durable``, in the order they were added."""
    import time
    from pathlib import Path

    from flan_data.export import writer

    files = [tmp_path / f"f{i}" for i in range(4)]
    for f in files:
        f.write_bytes(b"x")
    barrier = threading.Barrier(4, timeout=5)
    finished: list[str] = []
    lock = threading.Lock()

    def fsync(path, directory=False):
        barrier.wait()
        time.sleep(0.02 * (3 - int(Path(path).name[1:])))  # later items are done first
        with lock:
            finished.append(Path(path).name)

    monkeypatch.setattr(writer, "fsync_path", fsync)
    durable: list[int] = []
    s = writer.ShardSyncer(on_durable=durable.append, threads=4)
    try:
        for i, f in enumerate(files):
            s.add(i, [f])
        assert s.finish() == [0, 1, 2, 3]
    finally:
        s.close()
    assert finished == ["f3", "f2", "f1", "f0"]  # synced out of order...
    assert durable == [0, 1, 2, 3]  # ...reported in order


_RUN = local._run


def _logged_run(args):
    """A job, logged with the id of the process that runs it (module level: it is
    sent to the child by reference)."""
    with open(os.environ["FLAN_TEST_JOBS_LOG"], "a") as f:
        f.write(f"{os.getpid()}\n")
    return _RUN(args)


def test_a_small_exports_task_renderers_are_built_once_before_the_fork(tmp_path, monkeypatch):
    """With one task split into jobs for both processes, the parent builds the
    task's renderer before forking its child, which inherits it: one build in
    all (each process built its own before), and the same bytes as 1 worker."""
    import json

    from toy import write_toy_catalog, write_toy_source

    from flan_data import render
    from flan_data.export import jobs

    root = write_toy_catalog(tmp_path / "c", {"zs": ["zs_opt"]})
    write_toy_source("parquet", root / "data", 400, group=50)
    cat = Catalog.load(root)
    log = tmp_path / "builds.log"
    init = render.TaskRenderer.__init__

    def counting(self, *a, **k):
        init(self, *a, **k)
        with open(log, "a") as f:  # from whichever process builds it
            f.write(json.dumps([os.getpid(), self.task.name]) + "\n")

    monkeypatch.setattr(render.TaskRenderer, "__init__", counting)
    monkeypatch.setattr(jobs, "MIN_CHUNK_ROWS", 10)  # 8 jobs of 50 rows
    monkeypatch.setattr(local, "_run", _logged_run)
    monkeypatch.setenv("FLAN_TEST_JOBS_LOG", str(tmp_path / "jobs.log"))
    kw = dict(total=400, seed=1, progress=False, log=lambda s: None)
    export_mixture(cat, "zs", tmp_path / "w2", workers=2, **kw)
    ran = (tmp_path / "jobs.log").read_text().split()
    assert len(ran) == 8 and len(set(ran)) == 2  # both processes rendered jobs of the task
    builds = [json.loads(x) for x in log.read_text().splitlines()]
    assert builds == [[os.getpid(), "syn"]]  # once, in the parent
    monkeypatch.undo()
    export_mixture(cat, "zs", tmp_path / "w1", workers=1, **kw)
    assert export_files(tmp_path / "w2") == export_files(tmp_path / "w1")
