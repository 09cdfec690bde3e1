"""The Ray backend: byte-identical to the local backend, for any number of workers; resumes after kill -9.

One local Ray (2 CPUs, small object store) is shared by every test here.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from toy import export_files

from flan_data import Catalog, FlanDataError
from flan_data.export import candidate_tasks, count_sizes, export_mixture
from flan_data.export.jobs import make_jobs
from flan_data.export.verify import verify
from flan_data.mixture import plan_mixture
from flan_data.render import RenderConfig
from flan_data.sources import open_task_source

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray")

from flan_data.export.ray import RayExecutor  # noqa: E402

DEMO = {"total": 300, "seed": 5, "shard_rows": 70}
QUIET = {"progress": False, "log": lambda s: None}


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray for this module; its GCS address lets subprocesses join it."""
    # address="local": a fresh instance, even if RAY_ADDRESS or an earlier `ray start` says otherwise
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2,
             ignore_reinit_error=True, logging_level=logging.WARNING)  # fmt: skip
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def cat():
    return Catalog.load()


def _rows(d: Path) -> list[dict]:
    m = json.loads((d / "manifest.json").read_text())
    return [
        r
        for s in m["shards"]
        for r in ipc.open_file(pa.memory_map(str(d / s["file"]))).read_all().to_pylist()
    ]


@pytest.fixture(scope="module")
def demo_local(cat, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo-local")
    export_mixture(cat, "demo", out, **DEMO, **QUIET)
    return out


def test_demo_ray_is_byte_identical_to_local(ray_address, cat, demo_local, tmp_path):
    out = tmp_path / "ray"
    m = export_mixture(cat, "demo", out, **DEMO, workers=2, backend="ray", **QUIET)
    assert m["num_rows"] == DEMO["total"]
    assert export_files(out) == export_files(demo_local)
    assert verify(out) == []
    assert not (out / ".flan-export" / "spill").exists()


# -- a multi-task catalog of our own, with few-shot formats

SIZES = {"alpha": 13, "beta": 40, "gamma": 22, "delta": 57, "eps": 9}


def _syn_catalog(root: Path) -> Catalog:
    (root / "collections").mkdir(parents=True)
    (root / "templates").mkdir()
    (root / "catalog.yaml").write_text(
        "collections:\n  flan2021: {file: collections/flan2021.yaml}\n"
        "mixtures:\n  m: {source: sample, members: [{collection: flan2021, formats: [zs_opt, fs_opt, zs_noopt, fs_noopt]}]}\n"
    )
    tasks = []
    for name, n in SIZES.items():
        tasks.append({"name": name, "source": {"kind": "jsonl", "path": "/nonexistent"},
                      "sample": {"kind": "jsonl", "path": name, "id_field": "uid"},
                      "fields": {"question": "q", "answer": "a"}, "options": ["yes", "no", "maybe"],
                      "templates": ["s"]})  # fmt: skip
        d = root / "sample_data" / name
        d.mkdir(parents=True)
        recs = [
            {"uid": f"{name}-{i}", "q": f"{name} question {i}?", "a": ("yes", "no", "maybe")[i % 3]}
            for i in range(n)
        ]
        (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (root / "collections" / "flan2021.yaml").write_text(
        json.dumps({"collection": "flan2021", "tasks": tasks})
    )
    (root / "templates" / "s.yaml").write_text(json.dumps({"sets": {"s": {"templates": [
        {"id": "s-1", "input": "Q: {{ question }}{{ options_block }}", "target": "{{ answer }}"},
        {"id": "s-2", "input": "Answer this. {{ question }}{{ options_block }}", "target": "{{ answer }}"},
        {"id": "s-3", "input": "{{ question }}\nWhat is right?{{ options_block }}", "target": "{{ answer }}"},
    ]}}}))  # fmt: skip
    return Catalog.load(root)


SYN = {"total": 420, "seed": 11, "shard_rows": 64}


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    root = tmp_path_factory.mktemp("syncat")
    cat = _syn_catalog(root / "cat")
    local = root / "local"
    export_mixture(cat, "m", local, **SYN, **QUIET)
    return cat, local


@pytest.mark.parametrize("workers", [1, 2])
def test_fewshot_mixture_identical_to_local_for_any_workers(ray_address, syn, tmp_path, workers):
    cat, local = syn
    out = tmp_path / f"ray{workers}"
    export_mixture(cat, "m", out, **SYN, workers=workers, backend="ray", **QUIET)
    assert export_files(out) == export_files(local)
    # + manifest, COMPLETED, ATTRIBUTION.md, README.md
    assert len(export_files(out)) == 4 + -(-SYN["total"] // SYN["shard_rows"])


def test_exemplars_come_from_the_examples_own_task(syn):
    cat, local = syn
    ids = {
        t: {eid for eid, _ in open_task_source(cat, cat.task(t), "sample", {}).read("train")}
        for t in SIZES
    }
    rows = _rows(local)
    assert {r["task"] for r in rows} == set(SIZES)
    fs = [r for r in rows if r["format"].startswith("fs_")]
    assert len(fs) > 50 and any(r["exemplar_ids"] for r in fs)
    for r in fs:
        assert set(r["exemplar_ids"]) <= ids[r["task"]], r
        assert r["example_id"] not in r["exemplar_ids"]
    for r in rows:
        assert r["example_id"] in ids[r["task"]]


def test_renderer_built_once_per_worker_process(ray_address, syn, tmp_path):
    cat, _ = syn
    spec = cat.mixture("m")
    ex = RayExecutor(cat, RenderConfig(), workers=2)
    try:
        sizes = count_sizes(cat, candidate_tasks(cat, spec), "sample", {}, executor=ex)
        assert sizes == SIZES
        plan = plan_mixture(cat, spec, sizes, total=SYN["total"])
        jobs, _ = make_jobs(
            plan, sizes, seed=0, shard_rows=64, source="sample", source_dirs={}, on_error="fail"
        )
        spill = tmp_path / "spill"
        spill.mkdir()
        done = [r.index for r in ex.run_jobs(jobs, spill)]
    finally:
        ex.close()
    assert sorted(done) == sorted(j.index for j in jobs)
    # the size counts above already built this export's renderer in the processes they ran in
    assert ex.renderer_builds <= len(ex.job_pids) <= 2 < len(jobs)
    assert ray.is_initialized()  # an executor does not stop a Ray it did not start


def test_record_errors_surface_cleanly(ray_address, tmp_path):
    cat = _syn_catalog(tmp_path / "cat")
    f = tmp_path / "cat" / "sample_data" / "beta" / "train.jsonl"
    recs = [json.loads(x) for x in f.read_text().splitlines()]
    recs[3]["a"] = "perhaps"
    f.write_text("".join(json.dumps(r) + "\n" for r in recs))
    with pytest.raises(FlanDataError, match="not one of the options"):
        export_mixture(cat, "m", tmp_path / "o1", **SYN, workers=2, backend="ray", **QUIET)
    assert not (tmp_path / "o1" / "COMPLETED").exists()
    m = export_mixture(
        cat, "m", tmp_path / "o2", **SYN, workers=2, backend="ray", on_error="skip", **QUIET
    )
    ref = export_mixture(cat, "m", tmp_path / "o3", **SYN, on_error="skip", **QUIET)
    assert m == ref and m["skipped"]["beta"]
    assert export_files(tmp_path / "o2") == export_files(tmp_path / "o3")


def test_ray_address_needs_ray_backend(cat, tmp_path):
    with pytest.raises(FlanDataError, match="--ray-address needs --backend ray"):
        export_mixture(cat, "demo", tmp_path / "o", total=10, ray_address="auto", **QUIET)


# -- kill -9 of the driver, then resume


@pytest.mark.parametrize("fault", ["job:2", "shard:2"])
def test_killed_ray_export_resumes_byte_identical(ray_address, cat, demo_local, tmp_path, fault):
    out = tmp_path / "crash"
    cmd = [sys.executable, "-m", "flan_data", "export", "-m", "demo", "--total", str(DEMO["total"]),
           "--seed", str(DEMO["seed"]), "--shard-rows", str(DEMO["shard_rows"]), "-q", "--out", str(out),
           "--backend", "ray", "--ray-address", ray_address, "--workers", "2"]  # fmt: skip
    env = {**os.environ, "FLAN_DATA_FAULT": fault}
    r = subprocess.run(cmd, env=env, capture_output=True, timeout=120)
    assert r.returncode == -9, r.stderr.decode()[-2000:]
    assert not (out / "COMPLETED").exists()
    kept = sorted(
        p.name for p in (out / ".flan-export" / "spill").iterdir() if not p.name.startswith(".")
    )
    assert len(kept) >= 2  # finished jobs survive the kill
    if fault.startswith("shard"):
        assert len(list((out / ".flan-export" / "shards").glob("*.json"))) >= 2
    # the rerun (same spec as the CLI's) joins this module's Ray in-process: faster than a new driver
    export_mixture(cat, "demo", out, **DEMO, workers=2, backend="ray", **QUIET)
    assert export_files(out) == export_files(demo_local)


@pytest.mark.skipif(not Path("/proc/self/cmdline").is_file(), reason="needs Linux /proc")
def test_out_not_shared_with_the_nodes_is_refused(ray_address, cat, tmp_path):
    # /proc/self/cmdline reads differently in the driver and in a Ray worker: it
    # stands for an --out that the nodes see with other content (or not at all).
    ex = RayExecutor(cat, RenderConfig(), workers=1)
    try:
        with pytest.raises(
            FlanDataError, match="do not see .* shared by the driver and every Ray node"
        ):
            ex._check_shared(Path("/proc/self/cmdline"), tmp_path)
        spec = tmp_path / "spec.json"
        spec.write_text("{}")
        ex._check_shared(spec, tmp_path)  # the local node sees it
    finally:
        ex.close()


def test_symlinked_catalog_folders_load_once_on_ray_workers(ray_address, syn, tmp_path):
    """collections/ and templates/ that are symlinks to elsewhere: workers load the
    catalog with the driver's extra files only (not every file outside the root)."""
    _, local = syn
    real = _syn_catalog(tmp_path / "real").root
    link = tmp_path / "linked"
    link.mkdir()
    (link / "catalog.yaml").write_bytes((real / "catalog.yaml").read_bytes())
    for d in ("collections", "templates", "sample_data"):
        (link / d).symlink_to(real / d, target_is_directory=True)
    cat = Catalog.load(link)
    out = tmp_path / "ray"
    export_mixture(cat, "m", out, **SYN, workers=2, backend="ray", **QUIET)
    assert _rows(out) == _rows(local)
