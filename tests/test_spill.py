"""Spill and shard assembly: linear work, about one copy of the rows on disk, resumable.

Counts work and bytes, never time: every spill batch is read exactly once, a
bucket's spill is freed as soon as its shards are written (spill + shards stay
near one copy of the rows instead of two), and a kill -9 in the middle of
assembly, even after buckets were freed, resumes to the same bytes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from toy import export_files

from flan_data import Catalog
from flan_data.export import export_mixture, jobs

TOTAL = 1200
SHARD_ROWS = 40
BUCKET_ROWS = 120  # 3 shards per bucket, 10 buckets


@pytest.fixture(scope="module")
def cat():
    return Catalog.load()


TARGET_BUCKETS = jobs.TARGET_BUCKETS  # the shipped value (the fixture below pins 10)


@pytest.fixture(autouse=True)
def _ten_buckets(monkeypatch):
    """These exports are sized for at least 10 buckets of 3 shards (BUCKET_ROWS)."""
    monkeypatch.setattr(jobs, "TARGET_BUCKETS", 10)


def _export(cat, out: Path, **kw):
    kw = {"total": TOTAL, "seed": 11, "shard_rows": SHARD_ROWS, **kw}
    return export_mixture(cat, "demo", out, progress=False, log=lambda s: None, **kw)


@pytest.fixture(scope="module")
def reference(cat, tmp_path_factory):
    """The same export with one bucket for everything (what main wrote before buckets)."""
    out = tmp_path_factory.mktemp("ref")
    mp = pytest.MonkeyPatch()
    mp.setattr(jobs, "BUCKET_ROWS", 10**9)
    try:
        _export(cat, out)
    finally:
        mp.undo()
    return export_files(out)


def test_bucket_shards():
    assert jobs.bucket_shards(10_000) == jobs.BUCKET_ROWS // 10_000
    assert jobs.bucket_shards(jobs.BUCKET_ROWS * 3) == 1
    assert jobs.bucket_shards(0) >= 1


@pytest.mark.parametrize("bucket_rows", [SHARD_ROWS, BUCKET_ROWS, 10**9])
def test_output_does_not_depend_on_the_bucket_size(
    cat, tmp_path, monkeypatch, reference, bucket_rows
):
    monkeypatch.setattr(jobs, "BUCKET_ROWS", bucket_rows)
    _export(cat, tmp_path / "o")
    assert export_files(tmp_path / "o") == reference


def test_two_workers_same_bytes(cat, tmp_path, monkeypatch, reference):
    monkeypatch.setattr(jobs, "BUCKET_ROWS", BUCKET_ROWS)  # travels to the children in each TaskJob
    _export(cat, tmp_path / "o", workers=2)
    assert export_files(tmp_path / "o") == reference


def test_every_spill_batch_is_read_once(cat, tmp_path, monkeypatch):
    """Assembly work is linear: one read per (run, bucket), not per (run, shard)."""
    monkeypatch.setattr(jobs, "BUCKET_ROWS", BUCKET_ROWS)
    written: list[tuple[str, int]] = []
    read: list[tuple[str, int]] = []
    close = jobs._RunWriter.close

    def counting_close(self):
        close(self)
        job = self.folder.name  # .tmp-<job>-<pid>, renamed to <job>
        for run in self.index:
            written.extend((job, run["file"], b) for b, _, _ in run["buckets"])

    orig_read = jobs._read_batch

    def counting_read(path, off, size, schema):
        read.append((Path(path).parent.name, Path(path).name, off))
        return orig_read(path, off, size, schema)

    monkeypatch.setattr(jobs._RunWriter, "close", counting_close)
    monkeypatch.setattr(jobs, "_read_batch", counting_read)
    m = _export(cat, tmp_path / "o")
    n_shards = len(m["shards"])
    n_buckets = -(-n_shards // (BUCKET_ROWS // SHARD_ROWS))
    assert n_buckets == 10
    assert len(read) == len(written)  # each batch once
    assert len(set(read)) == len(read)
    runs = {(j, f) for j, f, _ in written}
    assert len(read) <= len(runs) * n_buckets < len(runs) * n_shards


def test_spill_is_freed_bucket_by_bucket(cat, tmp_path, monkeypatch):
    """Peak disk of spill + shards is about one copy of the rows, not two."""
    monkeypatch.setattr(jobs, "BUCKET_ROWS", BUCKET_ROWS)
    out = tmp_path / "o"
    samples: list[tuple[int, int]] = []
    orig = jobs.SpillFreer.shard_done

    def du(d: Path, pattern: str) -> int:
        return sum(p.stat().st_size for p in d.rglob(pattern) if p.is_file())

    def sampled(self, info):
        orig(self, info)
        samples.append((du(out / ".flan-export" / "spill", "run-*"), du(out / "data", "shard-*")))

    monkeypatch.setattr(jobs.SpillFreer, "shard_done", sampled)
    _export(cat, out)
    spill0 = samples[0][0]  # after the first shard: one bucket not yet freed
    shards = samples[-1][1]
    assert samples[-1][0] == 0  # every run truncated to nothing before the manifest
    assert spill0 > 0 and shards > 0
    peak = max(a + b for a, b in samples)
    # without freeing, spill + shards reaches spill0 + shards (~2 copies); with it,
    # about one copy plus the bucket being written (10 buckets here)
    assert peak <= max(spill0, shards) + 2 * max(spill0, shards) / 10
    # (a compressed spill is smaller than the shards: freeing saves half the smaller copy)
    assert peak < max(spill0, shards) + 0.5 * min(spill0, shards)
    assert not (out / ".flan-export" / "spill").exists()  # removed once complete


SCRIPT = """
import sys
from flan_data import Catalog
from flan_data.export import export_mixture, jobs
jobs.BUCKET_ROWS = {bucket_rows}
jobs.TARGET_BUCKETS = 10
if __name__ == "__main__":
    export_mixture(Catalog.load(), "demo", sys.argv[1], total={total}, seed=11, shard_rows={shard_rows},
                   workers=int(sys.argv[2]), progress=False, log=lambda s: None)
"""


def _run(tmp_path: Path, out: Path, workers: int = 1, fault: str | None = None):
    script = tmp_path / "exp.py"
    script.write_text(SCRIPT.format(bucket_rows=BUCKET_ROWS, total=TOTAL, shard_rows=SHARD_ROWS))
    env = {k: v for k, v in os.environ.items() if k != "FLAN_DATA_FAULT"}
    if fault:
        env["FLAN_DATA_FAULT"] = fault
    log = tmp_path / "log.txt"
    with open(log, "w") as f:
        # own session: a killed parent's pool children are ended with it (by its group id)
        p = subprocess.Popen([sys.executable, str(script), str(out), str(workers)], env=env,
                             stdout=f, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        try:
            rc = p.wait(timeout=300)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(p.args, rc, log.read_text(), log.read_text())


@pytest.mark.parametrize("fault,workers", [("shard:1", 1), ("shard:7", 1), ("shard:16", 2)])
def test_kill_during_assembly_after_buckets_were_freed(tmp_path, reference, fault, workers):
    out = tmp_path / "o"
    r = _run(tmp_path, out, workers, fault)
    assert r.returncode == -9, r.stderr[-2000:]
    n = int(fault.split(":")[1])
    consumed = jobs._consumed(out / ".flan-export" / "spill")
    assert consumed == n // (BUCKET_ROWS // SHARD_ROWS) or workers > 1
    r = _run(tmp_path, out, workers)
    assert r.returncode == 0, r.stderr[-2000:]
    assert export_files(out) == reference


def test_a_lost_shard_of_a_freed_bucket_is_rendered_again(tmp_path, reference):
    out = tmp_path / "o"
    r = _run(tmp_path, out, 1, "shard:10")
    assert r.returncode == -9, r.stderr[-2000:]
    spill = out / ".flan-export" / "spill"
    assert jobs._consumed(spill) == 3
    (out / "data" / "shard-00001-of-00030.arrow").unlink()  # its bucket's spill is gone
    r = _run(tmp_path, out, 1)
    assert r.returncode == 0, r.stderr[-2000:]
    assert export_files(out) == reference


def test_reading_a_freed_batch_is_a_clear_error(tmp_path):
    f = tmp_path / "run-0000.spill"
    f.write_bytes(b"")
    with pytest.raises(Exception, match="rerun the same command to resume"):
        jobs._read_batch(str(f), 0, 100, jobs.spill_schema(jobs.OutputSpec()))


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"system": "Answer briefly."},
        {"file_format": "parquet"},
        {"chat_fewshot": "multiturn", "file_format": "jsonl"},
    ],
)
def test_messages_rebuilt_at_assembly_are_the_same_bytes(cat, tmp_path, monkeypatch, spec):
    """Single-turn ``messages`` are not spilled (assembly builds them from inputs and
    targets): the same shards as when they travel through the spill."""
    from flan_data.views import OutputSpec

    output = OutputSpec(**spec)
    assert ("messages" in jobs.spill_schema(output).names) == (output.chat_fewshot == "multiturn")
    monkeypatch.setattr(jobs, "BUCKET_ROWS", BUCKET_ROWS)
    _export(cat, tmp_path / "rebuilt", output=output, total=400)
    monkeypatch.setattr(jobs, "spilled_messages", lambda o: o.messages)
    assert "messages" in jobs.spill_schema(output).names
    _export(cat, tmp_path / "spilled", output=output, total=400)
    assert export_files(tmp_path / "rebuilt") == export_files(tmp_path / "spilled")


def test_a_job_spilled_in_an_older_layout_is_rendered_again(cat, tmp_path, reference, monkeypatch):
    """A finished job folder without a run index (an older flan-data) is not trusted."""
    monkeypatch.setattr(jobs, "BUCKET_ROWS", BUCKET_ROWS)
    out = tmp_path / "o"
    spill = _stop_before_assembly(cat, out, monkeypatch)
    for d in ("000000", "000001"):  # what an older version left: runs, no runs.json
        (spill / d / jobs.RUNS_INDEX).unlink()
        (spill / d / "run-0000.arrow").write_bytes(b"old format")
    _export(cat, out)
    assert export_files(out) == reference


def test_runs_are_cut_by_bytes_too(cat, tmp_path, monkeypatch, reference):
    """A job's buffer is bounded in bytes, not only rows: more runs, same output."""
    monkeypatch.setattr(jobs, "BUCKET_ROWS", BUCKET_ROWS)
    monkeypatch.setattr(jobs, "FLUSH_BYTES", 20_000)
    runs: list[int] = []
    close = jobs._RunWriter.close

    def counting_close(self):
        close(self)
        runs.append(self.part)

    monkeypatch.setattr(jobs._RunWriter, "close", counting_close)
    _export(cat, tmp_path / "o")
    assert max(runs) > 1  # jobs of ~100 rows cut into several runs
    assert export_files(tmp_path / "o") == reference


def test_small_exports_get_about_target_buckets(monkeypatch):
    monkeypatch.setattr(jobs, "TARGET_BUCKETS", TARGET_BUCKETS)
    assert jobs.bucket_shards(10_000, 10) == 1  # 100k rows: 10 assembly items, not 3
    assert jobs.bucket_shards(10_000, 20) == 1  # 200k rows: 20 items of one shard (tail: one shard)
    assert jobs.bucket_shards(10_000, 40) == 2
    assert jobs.bucket_shards(10_000, 400) == jobs.bucket_shards(10_000)  # big: BUCKET_ROWS
    for n in (1, 7, 10, 33, 99, 1000):
        g = jobs.bucket_shards(10_000, n)
        assert 1 <= g <= jobs.bucket_shards(10_000)
        assert -(-n // g) >= min(n, jobs.TARGET_BUCKETS)  # enough items for two workers


@pytest.mark.parametrize("workers", [1, 2])
def test_manifest_and_spill_freeing_wait_for_every_shard_to_be_durable(
    cat, tmp_path, monkeypatch, reference, workers
):
    """Shards are written without fsync by whichever process assembles them; the
    parent fsyncs each one (and its record) before it frees the bucket's spill,
    and every one, with the manifest, card and attribution file, before COMPLETED."""
    import flan_data.export as export
    from flan_data.export import writer

    monkeypatch.setattr(jobs, "BUCKET_ROWS", BUCKET_ROWS)
    out = tmp_path / "o"
    synced: list[Path] = []
    sync = writer.fsync_path

    def recording(path, directory=False):
        sync(path, directory)
        synced.append(Path(path).resolve())

    freed: list[tuple[int, set[str]]] = []
    free = jobs.SpillFreer._free

    def checked_free(self, bucket):
        freed.append((bucket, {p.name for p in synced}))
        free(self, bucket)

    at_completed: list[set[Path]] = []
    write_completed = export.write_completed

    def completed(d, digest):
        at_completed.append(set(synced))
        return write_completed(d, digest)

    monkeypatch.setattr(writer, "fsync_path", recording)
    monkeypatch.setattr(jobs.SpillFreer, "_free", checked_free)
    monkeypatch.setattr(export, "write_completed", completed)
    m = _export(cat, out, workers=workers)
    assert export_files(out) == reference
    (before,) = at_completed
    g = BUCKET_ROWS // SHARD_ROWS
    for s in m["shards"]:
        f = (out / s["file"]).resolve()
        assert f in before  # durable before COMPLETED
        assert (out / ".flan-export" / "shards" / f"{f.name}.json").resolve() in before
    for name in ("manifest.json", "README.md", "ATTRIBUTION.md", "data", "."):
        assert (out / name).resolve() in before  # the files beside it, and the renames
    assert len(freed) == len(m["shards"]) // g
    for bucket, names in freed:
        shards = [s["file"] for s in m["shards"]][bucket * g : (bucket + 1) * g]
        assert {Path(f).name for f in shards} <= names  # freed only once durable


def test_a_spill_cut_for_other_buckets_is_rendered_again(cat, tmp_path, monkeypatch, reference):
    """Bucket sizes depend on the export's size (and on the version): a spill
    whose runs were cut for other buckets is never assembled with these."""
    import flan_data.export as export

    out = tmp_path / "o"

    def stop(*a, **k):
        raise RuntimeError("stopped before assembly")

    with monkeypatch.context() as m:
        m.setattr(jobs, "BUCKET_ROWS", BUCKET_ROWS)
        m.setattr(export, "SpillFreer", stop)
        with pytest.raises(RuntimeError, match="before assembly"):
            _export(cat, out)
    logs: list[str] = []
    monkeypatch.setattr(jobs, "BUCKET_ROWS", SHARD_ROWS)  # one shard per bucket now
    export_mixture(cat, "demo", out, total=TOTAL, seed=11, shard_rows=SHARD_ROWS,
                   progress=False, log=logs.append)  # fmt: skip
    assert any("another job layout" in s for s in logs)
    assert export_files(out) == reference


def test_a_shard_record_cut_short_by_a_crash_is_not_trusted(tmp_path, reference):
    """Shard records are written without their own fsync: one torn by a power
    loss (empty, half a JSON object) means 'not done', never a crash."""
    out = tmp_path / "o"
    r = _run(tmp_path, out, 1, "shard:5")
    assert r.returncode == -9, r.stderr[-2000:]
    records = sorted((out / ".flan-export" / "shards").glob("*.json"))
    assert len(records) >= 5
    records[0].write_bytes(b"")  # a shard of a freed bucket
    records[4].write_bytes(b'{"file": ')  # a shard of the bucket being assembled
    r = _run(tmp_path, out, 1)
    assert r.returncode == 0, r.stderr[-2000:]
    assert export_files(out) == reference


def test_shard_syncer_returns_items_in_order_once_durable(tmp_path, monkeypatch):
    from flan_data.export import writer

    files = [tmp_path / f"s{i}" for i in range(6)]
    for f in files:
        f.write_bytes(b"x")
    synced: list[str] = []
    sync = writer.fsync_path

    def recording(path, directory=False):
        sync(path, directory)
        synced.append(Path(path).name)

    monkeypatch.setattr(writer, "fsync_path", recording)
    s = writer.ShardSyncer()
    try:
        for i, f in enumerate(files[:5]):
            s.add(i, [f])
        got = s.synced(max_pending=0)  # waits until none is left waiting
        assert got == [0, 1, 2, 3, 4] and synced == [f.name for f in files[:5]]
        s.add(5, [files[5]])
        assert s.finish([tmp_path]) == [5]
        assert synced[-1] == tmp_path.name  # the folder last, for the renames
    finally:
        s.close()


def test_shard_syncer_reports_a_disk_error(tmp_path):
    from flan_data import FlanDataError
    from flan_data.export import writer

    s = writer.ShardSyncer()
    try:
        s.add("gone", [tmp_path / "missing.arrow"])
        with pytest.raises(FlanDataError, match="missing.arrow"):
            s.synced(max_pending=0)
    finally:
        s.close()


def _stop_before_assembly(cat, out: Path, monkeypatch) -> Path:
    import flan_data.export as export

    def stop(*a, **k):
        raise RuntimeError("stopped before assembly")

    with monkeypatch.context() as m:
        m.setattr(export, "SpillFreer", stop)
        with pytest.raises(RuntimeError, match="before assembly"):
            _export(cat, out)
    return out / ".flan-export" / "spill"


def _spilled_batches(spill: Path) -> list:
    """Every batch of a spill, read back through its runs.json, and the run files' bytes."""
    import json

    schema = jobs.spill_schema(jobs.OutputSpec())
    batches, on_disk = [], 0
    for d in sorted(p for p in spill.iterdir() if p.is_dir()):
        meta = json.loads((d / jobs.RUNS_INDEX).read_text())
        for run in meta["runs"]:
            on_disk += (d / run["file"]).stat().st_size
            for _b, off, size in run["buckets"]:
                batches.append(jobs._read_batch(str(d / run["file"]), off, size, schema))
    return batches, on_disk


def test_the_spill_is_compressed_and_the_shards_are_not(cat, tmp_path, monkeypatch, reference):
    """Spill bytes on disk are well under the uncompressed Arrow IPC of the same
    rows; the shards are the same bytes with or without spill compression."""
    monkeypatch.setattr(jobs, "BUCKET_ROWS", 10**9)  # one batch per run: compare like for like
    assert jobs.SPILL_COMPRESSION == "lz4"
    monkeypatch.setattr(jobs, "SPILL_COMPRESS_ABOVE", 0)  # compressed however small
    batches, lz4_bytes = _spilled_batches(_stop_before_assembly(cat, tmp_path / "lz4", monkeypatch))
    monkeypatch.setattr(jobs, "SPILL_COMPRESSION", None)
    plain, plain_bytes = _spilled_batches(
        _stop_before_assembly(cat, tmp_path / "plain", monkeypatch)
    )
    assert len(batches) == len(plain) > 0
    assert [b.equals(p) for b, p in zip(batches, plain)] == [True] * len(plain)
    uncompressed = sum(b.serialize().size for b in batches)
    assert plain_bytes >= uncompressed  # the old format: the messages as they are
    assert lz4_bytes < 0.7 * uncompressed
    monkeypatch.setattr(jobs, "BUCKET_ROWS", BUCKET_ROWS)
    _export(cat, tmp_path / "o")
    assert export_files(tmp_path / "o") == reference


@pytest.mark.parametrize("old", ["all", "some"])
def test_a_resume_over_an_uncompressed_spill_gives_the_same_bytes(
    cat, tmp_path, monkeypatch, reference, old
):
    """A spill left by an older version (uncompressed batch messages, no
    ``compression`` key in runs.json) is read as it is on a resume, alone or mixed
    with compressed jobs: nothing rendered again, the same shards."""
    import json

    monkeypatch.setattr(jobs, "BUCKET_ROWS", BUCKET_ROWS)
    out = tmp_path / "o"
    monkeypatch.setattr(jobs, "SPILL_COMPRESSION", None)
    spill = _stop_before_assembly(cat, out, monkeypatch)
    dirs = sorted(p for p in spill.iterdir() if p.is_dir())
    for d in dirs:  # exactly what session-5 code wrote: no compression key
        meta = json.loads((d / jobs.RUNS_INDEX).read_text())
        assert meta.pop("compression") is None
        (d / jobs.RUNS_INDEX).write_text(json.dumps(meta))
    if old == "some":  # the other half rendered by this version
        for d in dirs[::2]:
            shutil.rmtree(d)
    monkeypatch.setattr(jobs, "SPILL_COMPRESSION", "lz4")
    monkeypatch.setattr(jobs, "SPILL_COMPRESS_ABOVE", 0)
    rendered: list[int] = []
    orig = jobs._run_job

    def counting(job, *a, **k):
        r = orig(job, *a, **k)
        if r.rows >= 0:
            rendered.append(job.index)
        return r

    monkeypatch.setattr(jobs, "_run_job", counting)
    _export(cat, out)
    assert export_files(out) == reference
    assert len(rendered) == (0 if old == "all" else len(dirs[::2]))


def test_only_a_spill_bigger_than_memory_is_compressed(cat, tmp_path, monkeypatch, reference):
    """Compressed when the estimated spill is over the bound (default: a quarter
    of memory; the full-size flan2022 replica's 9.1M rows are), plain below; the
    jobs carry the choice to the workers, and the shards are the same bytes."""
    import json

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    monkeypatch.delenv("FLAN_DATA_SPILL_COMPRESS_ABOVE", raising=False)
    assert jobs.spill_compression(TOTAL) is None
    assert jobs.spill_compression(mem // 4 // jobs.SPILL_ROW_BYTES + 1) == "lz4"
    monkeypatch.setattr(jobs, "BUCKET_ROWS", BUCKET_ROWS)
    monkeypatch.setattr(jobs, "SPILL_COMPRESS_ABOVE", TOTAL * jobs.SPILL_ROW_BYTES - 1)
    monkeypatch.setenv("FLAN_DATA_SPILL_COMPRESS_ABOVE", "0")
    assert jobs.spill_compression(1) == "lz4"
    monkeypatch.delenv("FLAN_DATA_SPILL_COMPRESS_ABOVE")
    spill = _stop_before_assembly(cat, tmp_path / "o", monkeypatch)
    kinds = {json.loads((d / jobs.RUNS_INDEX).read_text())["compression"] for d in spill.iterdir() if d.is_dir()}  # fmt: skip
    assert kinds == {"lz4"}
    _export(cat, tmp_path / "o", workers=2)
    assert export_files(tmp_path / "o") == reference
