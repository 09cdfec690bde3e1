"""Job sizing: the tasks of a small export are split into finer chunk jobs, and
nothing an export writes depends on the chunking or on the number of workers
(dirty data included: skip counts add up over chunk jobs, pool skips count once).

Counts jobs and compares bytes; never times anything.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from toy import export_files, write_toy_catalog

from flan_data import Catalog
from flan_data.export import export_mixture, jobs, merge_skips
from flan_data.export.writer import STATE_DIR
from flan_data.mixture import plan_mixture

N = 400
BAD = 13  # every 13th record has a label with no option: a RecordError, skipped


def _catalog(root: Path) -> Catalog:
    (root / "data").mkdir(parents=True)
    rows = [
        {"uid": f"u{i:05d}", "text": f"row {i}", "label": 7 if i % BAD == 5 else i % 3}
        for i in range(N)
    ]
    pq.write_table(pa.Table.from_pylist(rows), root / "data" / "train.parquet", row_group_size=29)
    return Catalog.load(
        write_toy_catalog(root, {"zs": ["zs_opt", "zs_noopt"], "mix": ["zs_opt", "fs_opt"]})
    )


@pytest.fixture(scope="module")
def cat(tmp_path_factory) -> Catalog:
    return _catalog(tmp_path_factory.mktemp("cat"))


def _chunking(monkeypatch, rows: int) -> None:
    """Chunk jobs of about ``rows`` rows for every task."""
    monkeypatch.setattr(jobs, "CHUNK_ROWS", rows)
    monkeypatch.setattr(jobs, "MIN_CHUNK_ROWS", rows)


def _export(cat, mixture, out, **kw):
    seen: list[int] = []
    orig = jobs.make_jobs

    def spy(*a, **k):
        js, n = orig(*a, **k)
        seen.append(len(js))
        return js, n

    mp = pytest.MonkeyPatch()
    mp.setattr("flan_data.export.make_jobs", spy)
    try:
        m = export_mixture(cat, mixture, out, total=600, shard_rows=128, seed=5, on_error="skip",
                           progress=False, log=lambda s: None, **kw)  # fmt: skip
    finally:
        mp.undo()
    return m, seen[0]


def test_zero_shot_output_is_the_same_for_any_chunking_and_worker_count(cat, tmp_path, monkeypatch):
    results = {}
    for rows, workers in [(100_000, 1), (37, 1), (37, 2), (101, 2)]:
        _chunking(monkeypatch, rows)
        out = tmp_path / f"o{rows}-{workers}"
        m, n_jobs = _export(cat, "zs", out, workers=workers)
        results[rows, workers] = (export_files(out), n_jobs, m)
    ref, one_job, m = results[100_000, 1]
    assert one_job == 1 and results[37, 1][1] > 10 and results[101, 2][1] > 3
    # rows with a bad label are skipped, counted over every chunk job
    bad = sum(1 for i in range(N) if i % BAD == 5)
    n_skipped = sum(m["skipped"]["syn"].values())
    assert n_skipped >= bad  # 600 rows over 400 records: some read twice
    assert m["num_rows"] == 600 - n_skipped
    for key, (files, _, _) in results.items():
        assert files.keys() == ref.keys(), key
        for name in ref:
            assert files[name] == ref[name], (key, name)  # manifest included


def test_few_shot_manifest_is_the_same_for_any_chunking_and_worker_count(
    cat, tmp_path, monkeypatch
):
    # Dirty data with few-shot rows: the pool sample meets bad records, and
    # every chunk job of the task reports the same pool skips; the manifest
    # counts them once and adds up the rows' skips.
    monkeypatch.setattr(jobs, "POOL_SIZE", 64)
    results = {}
    for rows, workers in [(100_000, 1), (60, 1), (60, 2), (97, 2)]:
        _chunking(monkeypatch, rows)
        out = tmp_path / f"o{rows}-{workers}"
        m, n_jobs = _export(cat, "mix", out, workers=workers)
        results[rows, workers] = (export_files(out), n_jobs, m)
    assert results[100_000, 1][1] == 1 and results[60, 1][1] > 5 and results[97, 2][1] > 3
    skipped = results[60, 2][2]["skipped"]["syn"]
    assert any(k.startswith("pool: ") for k in skipped)
    assert any(not k.startswith("pool: ") for k in skipped)
    ref = results[100_000, 1][0]
    for key, (files, _, _) in results.items():
        assert files == ref, key  # manifest.json included


def test_merge_skips_adds_rows_and_counts_the_pool_once():
    d: dict[str, int] = {}
    for job in ({"x": 1, "pool: y": 4}, {"x": 2, "pool: y": 4}, {"z": 1}):
        merge_skips(d, job)
    assert d == {"x": 3, "pool: y": 4, "z": 1}


def _jobs_for(cat, total: int, mixture: str):
    sizes = {"syn": N}
    plan = plan_mixture(cat, cat.mixture(mixture), sizes, total=total)
    js, _ = jobs.make_jobs(plan, sizes, seed=0, shard_rows=1000, source="real", source_dirs={},
                           on_error="fail")  # fmt: skip
    return js


def test_tasks_of_a_small_export_get_about_target_jobs(cat, monkeypatch):
    monkeypatch.setattr(jobs, "MIN_CHUNK_ROWS", 10)
    monkeypatch.setattr(jobs, "TARGET_JOBS", 8)
    for mixture in ("zs", "mix"):
        js = _jobs_for(cat, 400, mixture)
        assert len(js) == 8, mixture
        # record ranges tile the split, in order, without overlap
        assert [(j.lo, j.hi) for j in js] == [(N * c // 8, N * (c + 1) // 8) for c in range(8)]
    # never below MIN_CHUNK_ROWS rows per job
    monkeypatch.setattr(jobs, "MIN_CHUNK_ROWS", 200)
    assert len(_jobs_for(cat, 400, "zs")) == 2
    # never above CHUNK_ROWS
    monkeypatch.setattr(jobs, "MIN_CHUNK_ROWS", 10)
    monkeypatch.setattr(jobs, "CHUNK_ROWS", 20)
    assert len(_jobs_for(cat, 400, "zs")) == 20


def test_chunk_target_bounds():
    assert jobs.chunk_target(100_000) == -(-100_000 // jobs.TARGET_JOBS)
    assert jobs.chunk_target(10**8) == jobs.CHUNK_ROWS
    assert jobs.chunk_target(10) == jobs.MIN_CHUNK_ROWS


def test_resume_with_another_job_layout_renders_again(cat, tmp_path, monkeypatch):
    # An interrupted run leaves finished jobs named by job number; a rerun whose
    # layout differs (another flan-data version) must not reuse them.
    _chunking(monkeypatch, 100_000)
    ref = tmp_path / "ref"
    _export(cat, "zs", ref)
    out = tmp_path / "o"
    _chunking(monkeypatch, 37)

    def boom(stage, n=0):
        if stage == "job" and n == 6:
            raise KeyboardInterrupt

    monkeypatch.setattr("flan_data.export._fault", boom)
    with pytest.raises(KeyboardInterrupt):
        _export(cat, "zs", out)
    spill = out / STATE_DIR / "spill"
    assert len([p for p in spill.iterdir() if p.is_dir() and not p.name.startswith(".")]) >= 6
    monkeypatch.undo()
    _chunking(monkeypatch, 53)
    logs: list[str] = []
    export_mixture(cat, "zs", out, total=600, shard_rows=128, seed=5, on_error="skip",
                   progress=False, log=logs.append)  # fmt: skip
    assert any("another job layout" in s for s in logs)
    assert export_files(out) == export_files(ref)


def test_resume_with_the_same_layout_keeps_finished_jobs(cat, tmp_path, monkeypatch):
    _chunking(monkeypatch, 37)

    def boom(stage, n=0):
        if stage == "job" and n == 4:
            raise KeyboardInterrupt

    out = tmp_path / "o"
    monkeypatch.setattr("flan_data.export._fault", boom)
    with pytest.raises(KeyboardInterrupt):
        _export(cat, "zs", out)
    spill = out / STATE_DIR / "spill"
    done = sorted(p.name for p in spill.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(done) >= 4
    monkeypatch.setattr("flan_data.export._fault", lambda *a: None)
    logs: list[str] = []
    kept: list[int] = []
    orig = jobs.run_job

    def spy(job, *a):
        res = orig(job, *a)
        if res.rows == -1:  # found finished in the spill: not rendered again
            kept.append(job.index)
        return res

    monkeypatch.setattr("flan_data.export.local.run_job", spy)
    export_mixture(cat, "zs", out, total=600, shard_rows=128, seed=5, on_error="skip",
                   progress=False, log=logs.append)  # fmt: skip
    assert not any("another job layout" in s for s in logs)
    assert sorted(f"{i:06d}" for i in kept) == done
    assert (out / "COMPLETED").is_file()
