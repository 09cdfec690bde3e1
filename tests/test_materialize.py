"""Read-once materialisation of sources that cannot seek (record rules, JSON Lines, NIv2...).

Counts passes over the source, never time: an export reads such a source's train
split once (the count pass, which writes the post-rule records to the state
folder), pools and jobs read that copy by row index, a resume after kill -9
does not read the source again, and the output (manifest included) is the same
bytes as without the copy.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
from toy import export_files

import flan_data.export as export
from flan_data import Catalog
from flan_data.export import export_mixture
from flan_data.export import materialize as mz
from flan_data.sources import open_task_source
from flan_data.sources.files import FileSource

N = 300


@pytest.fixture
def root(tmp_path, h):
    task = {**h.TOY_TASK, "records": {"filter": "label != 1"}}
    return h.write_catalog_dir(
        tmp_path / "cat",
        tasks=[task],
        mixtures={"m": {"source": "sample", "members": [{"task": "toy"}]}},
        samples={"toy": {"train": h.toy_records(N, "t"), "validation": h.toy_records(4, "v")}},
    )


def _export(root: Path, out: Path, **kw):
    kw = {"total": 500, "seed": 4, "shard_rows": 60, "progress": False, "log": lambda s: None, **kw}
    return export_mixture(Catalog.load(root), "m", out, **kw)


@pytest.fixture
def passes(monkeypatch):
    """Passes over the JSONL source's train split (each call reads the file from the start)."""
    n = {"train": 0}
    orig = FileSource._read_native

    def counted(self, split):
        if split == "train":
            n["train"] += 1
        return orig(self, split)

    monkeypatch.setattr(FileSource, "_read_native", counted)
    return n


def test_source_read_once_and_same_bytes(root, tmp_path, monkeypatch, passes):
    _export(root, tmp_path / "with")
    assert passes["train"] == 1  # count pass only: pool and job read the copy
    assert not (tmp_path / "with" / ".flan-export" / mz.MAT_DIR).exists()  # removed once complete
    with monkeypatch.context() as m:
        m.setattr(export, "_materialize_dir", lambda out: None)
        passes["train"] = 0
        _export(root, tmp_path / "without")
        assert passes["train"] >= 2  # count, pool, job: each a pass
    assert export_files(tmp_path / "with") == export_files(tmp_path / "without")


def test_two_workers_same_bytes(root, tmp_path):
    _export(root, tmp_path / "w1")
    _export(root, tmp_path / "w2", workers=2)
    assert export_files(tmp_path / "w1") == export_files(tmp_path / "w2")


def test_resume_after_kill_reads_the_copy_not_the_source(root, tmp_path, passes):
    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "flan_data", "--catalog", str(root), "export", "-m", "m",
           "--total", "500", "--seed", "4", "--shard-rows", "60", "-q", "--out", str(out)]  # fmt: skip
    r = subprocess.run(cmd, env={**os.environ, "FLAN_DATA_FAULT": "job:1"}, capture_output=True)
    assert r.returncode == -9, r.stderr[-2000:]
    copies = list((out / ".flan-export" / mz.MAT_DIR).glob("toy.*.arrow"))
    assert len(copies) == 1
    _export(root, out)
    assert passes["train"] == 0  # the resume counted and rendered from the copy
    _export(root, tmp_path / "ref")
    assert export_files(out) == export_files(tmp_path / "ref")


def test_a_changed_source_is_read_again(root, tmp_path, h, passes):
    cat = Catalog.load(root)
    task = cat.task("toy")
    k1 = mz.cache_key(cat, task, "sample", {})
    f = root / "sample_data" / "toy" / "train.jsonl"
    st = os.stat(f)
    f.write_text(f.read_text())  # same bytes, rewritten: ctime moves
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert mz.cache_key(cat, task, "sample", {}) != k1
    assert mz.cache_key(cat, task, "auto", {}) != k1  # another source choice


def test_materialised_source_reads_like_the_source(root, tmp_path, monkeypatch):
    monkeypatch.setattr(mz, "BATCH", 7)  # ranges across batch edges
    cat = Catalog.load(root)
    src = open_task_source(cat, cat.task("toy"), "sample")
    path = tmp_path / "m" / "toy.k.arrow"
    n = mz.materialize(src, path)
    want = list(src.read("train"))
    assert n == len(want) == mz.count_rows(path) == 200  # the filter dropped label 1
    ms = mz.MaterializedSource(path, src)
    assert ms.seekable("train") and ms.count("train") == n
    assert list(ms.read("train")) == want
    for lo, hi in [(0, 1), (6, 8), (7, 14), (13, 150), (199, None), (150, 400)]:
        assert list(ms.read_range("train", lo, hi)) == list(itertools.islice(want, lo, hi))
    assert list(ms.read("validation")) == list(src.read("validation"))
    stats: dict[str, int] = {}
    picks = [150, 3, 7, 3, 199, 0]
    got = list(ms.take("train", picks, stats))
    assert got == [(i, *want[i]) for i in sorted(set(picks))]
    assert stats["converted"] == 5
    # a newer copy replaces older ones of the same task
    (path.parent / ".toy.old.arrow.tmp-1").write_bytes(b"half")
    mz.materialize(src, path.with_name("toy.k2.arrow"))
    assert sorted(p.name for p in path.parent.iterdir()) == ["toy.k2.arrow"]


def test_not_written_into_a_folder_of_someone_elses_files(root, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    assert export._materialize_dir(out) is None
    assert (
        export._materialize_dir(tmp_path / "new")
        == (tmp_path / "new" / ".flan-export" / mz.MAT_DIR).resolve()
    )


def test_a_materialised_task_splits_into_chunk_jobs_with_the_same_bytes(
    root, tmp_path, monkeypatch
):
    # its jobs read the copy by row index, so a big one need not be one job
    from flan_data.export import jobs

    monkeypatch.setattr(jobs, "MIN_CHUNK_ROWS", 50)
    monkeypatch.setattr(jobs, "CHUNK_ROWS", 100)
    ranges = []
    real = jobs._run_job

    def spy(job, *a, **kw):
        ranges.append((job.lo, job.hi, job.materialized is not None))
        return real(job, *a, **kw)

    monkeypatch.setattr(jobs, "_run_job", spy)
    _export(root, tmp_path / "chunked")
    assert len(ranges) >= 4 and all(m for _, _, m in ranges)
    assert sorted(ranges)[0][0] == 0 and all(
        a[1] == b[0] for a, b in zip(sorted(ranges), sorted(ranges)[1:])
    )
    ranges.clear()
    monkeypatch.setattr(export, "_materialize_dir", lambda out: None)  # the source itself: one job
    _export(root, tmp_path / "whole")
    assert len(ranges) == 1
    assert export_files(tmp_path / "chunked") == export_files(tmp_path / "whole")
    _export(root, tmp_path / "two", workers=2)
    assert export_files(tmp_path / "two") == export_files(tmp_path / "whole")
