"""Export: determinism across workers, resume after kill -9, verify, error policies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from click.testing import CliRunner
from toy import export_files

from flan_data import Catalog, FlanDataError, SourceError
from flan_data.cli import main
from flan_data.export import export_mixture
from flan_data.export.verify import load_manifest, stats, verify

TOTAL = 240


@pytest.fixture(scope="module")
def cat():
    return Catalog.load()


@pytest.fixture(scope="module")
def reference(cat, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    export_mixture(
        cat, "demo", out, total=TOTAL, seed=3, shard_rows=70, progress=False, log=lambda s: None
    )
    return out


def test_layout_schema_and_counts(reference):
    assert sorted(export_files(reference)) == [
        "ATTRIBUTION.md",
        "COMPLETED",
        "README.md",
        *[f"data/shard-{i:05d}-of-00004.arrow" for i in range(4)],
        "manifest.json",
    ]
    m = load_manifest(reference)
    assert m["num_rows"] == TOTAL == sum(s["rows"] for s in m["shards"])
    assert sum(n for d in m["counts"].values() for n in d.values()) == TOTAL
    t = ipc.open_file(pa.memory_map(str(reference / m["shards"][0]["file"]))).read_all()
    for col in (
        "inputs",
        "targets",
        "task",
        "collection",
        "format",
        "template_id",
        "options",
        "exemplar_ids",
        "example_id",
        "source_split",
    ):
        assert col in t.column_names
    rows = t.to_pylist()
    fs = [r for r in rows if r["format"].startswith("fs_")]
    assert fs and all(r["example_id"] not in r["exemplar_ids"] for r in fs)
    # globally shuffled: the first shard mixes tasks and collections
    assert len({r["task"] for r in rows}) > 5
    assert verify(reference) == []


def test_same_seed_same_bytes_any_workers(cat, reference, tmp_path):
    out = tmp_path / "w2"
    export_mixture(
        cat,
        "demo",
        out,
        total=TOTAL,
        seed=3,
        shard_rows=70,
        workers=2,
        progress=False,
        log=lambda s: None,
    )
    assert export_files(out) == export_files(reference)


def test_different_seed_different_rows(cat, reference, tmp_path):
    out = tmp_path / "s4"
    export_mixture(
        cat, "demo", out, total=TOTAL, seed=4, shard_rows=70, progress=False, log=lambda s: None
    )
    assert (
        export_files(out)["data/shard-00000-of-00004.arrow"]
        != export_files(reference)["data/shard-00000-of-00004.arrow"]
    )


def test_readable_by_pandas_and_datasets(reference):
    m = load_manifest(reference)
    files = [str(reference / s["file"]) for s in m["shards"]]
    pd = pytest.importorskip("pandas")
    df = pd.concat([ipc.open_file(pa.memory_map(f)).read_pandas() for f in files])
    assert len(df) == TOTAL
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("arrow", data_files=files, split="train")
    assert ds.num_rows == TOTAL and ds[0]["inputs"]


CMD = [
    sys.executable,
    "-m",
    "flan_data",
    "export",
    "-m",
    "demo",
    "--total",
    str(TOTAL),
    "--seed",
    "3",
    "--shard-rows",
    "70",
    "-q",
]


@pytest.mark.parametrize("fault", ["job:2", "job:9", "shard:1", "shard:3", "manifest"])
def test_kill_then_resume_is_byte_identical(reference, tmp_path, fault):
    out = tmp_path / "crash"
    env = {**os.environ, "FLAN_DATA_FAULT": fault}
    r = subprocess.run([*CMD, "--out", str(out)], env=env, capture_output=True)
    assert r.returncode == -9, r.stderr.decode()[-2000:]
    assert not (out / "COMPLETED").exists()
    assert verify(out)  # incomplete is reported
    env.pop("FLAN_DATA_FAULT")
    r = subprocess.run([*CMD, "--out", str(out)], env=env, capture_output=True)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert export_files(out) == export_files(reference)


def test_changed_spec_refused_unless_overwrite(cat, tmp_path):
    out = tmp_path / "x"
    export_mixture(cat, "demo", out, total=50, progress=False, log=lambda s: None)
    with pytest.raises(FlanDataError, match="different spec"):
        export_mixture(cat, "demo", out, total=60, progress=False, log=lambda s: None)
    m = export_mixture(
        cat, "demo", out, total=60, overwrite=True, progress=False, log=lambda s: None
    )
    assert m["num_rows"] == 60 and verify(out) == []


def test_refuses_foreign_nonempty_folder(cat, tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(FlanDataError, match="not empty"):
        export_mixture(cat, "demo", tmp_path, total=10, progress=False, log=lambda s: None)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_verify_names_truncated_and_edited_shards(cat, tmp_path):
    out = tmp_path / "v"
    export_mixture(cat, "demo", out, total=100, shard_rows=40, progress=False, log=lambda s: None)
    s0, s1 = sorted(out.glob("data/shard-*.arrow"))[:2]
    s0.write_bytes(s0.read_bytes()[:-100])
    data = bytearray(s1.read_bytes())
    data[len(data) // 2] ^= 0xFF
    s1.write_bytes(bytes(data))
    problems = verify(out)
    assert any(s0.name in p and "truncated" in p for p in problems)
    assert any(s1.name in p and "sha256" in p for p in problems)
    r = CliRunner().invoke(main, ["verify", str(out)])
    assert r.exit_code != 0 and s0.name in r.output


def test_stats_and_cli(reference, tmp_path):
    st = stats(reference)
    assert st["rows"] == TOTAL and st["lengths"]["inputs_tokens"]["p50"] > 0
    r = CliRunner().invoke(main, ["stats", str(reference), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["rows"] == TOTAL
    r = CliRunner().invoke(main, ["verify", str(reference)])
    assert r.exit_code == 0 and "OK" in r.output


# -- a small catalog of our own with broken records


def _mini_catalog(root: Path, records: list[dict], options=("yes", "no")) -> Catalog:
    (root / "collections").mkdir(parents=True)
    (root / "templates").mkdir()
    (root / "sample_data" / "t").mkdir(parents=True)
    (root / "catalog.yaml").write_text(
        "collections:\n  flan2021: {file: collections/flan2021.yaml}\n"
        "mixtures:\n  m: {source: sample, members: [{collection: flan2021, formats: [zs_opt, fs_opt]}]}\n"
    )
    (root / "collections" / "flan2021.yaml").write_text(
        "collection: flan2021\ntasks:\n  - name: t\n    source: {kind: jsonl, path: /nonexistent}\n"
        "    sample: {kind: jsonl, path: t}\n    fields: {question: q, answer: a}\n"
        f"    options: {json.dumps(list(options))}\n    templates: [s]\n"
    )
    (root / "templates" / "s.yaml").write_text(
        "sets:\n  s:\n    templates:\n      - id: s-1\n        input: 'Q: {{ question }}{{ options_block }}'\n        target: '{{ answer }}'\n"
    )
    lines = "\n".join(json.dumps(r) for r in records) + "\n"
    (root / "sample_data" / "t" / "train.jsonl").write_text(lines)
    return Catalog.load(root)


def test_out_of_range_answer_fails_or_is_counted(tmp_path):
    recs = [{"q": f"question {i}", "a": "yes" if i % 2 else "no"} for i in range(20)]
    recs[5]["a"] = "maybe"  # not an option
    del recs[7]["q"]  # missing field
    cat = _mini_catalog(tmp_path / "c", recs)
    with pytest.raises(FlanDataError, match="not one of the options"):
        export_mixture(cat, "m", tmp_path / "o1", total=40, progress=False, log=lambda s: None)
    assert not (tmp_path / "o1" / "COMPLETED").exists()
    m = export_mixture(
        cat, "m", tmp_path / "o2", total=40, on_error="skip", progress=False, log=lambda s: None
    )
    skipped = m["skipped"]["t"]
    assert sum(skipped.values()) >= 2
    assert any("not one of the options" in k for k in skipped)
    assert m["num_rows"] == 40 - sum(v for k, v in skipped.items() if not k.startswith("pool"))
    assert verify(tmp_path / "o2") == []


def test_empty_source_is_reported_before_writing(tmp_path):
    cat = _mini_catalog(tmp_path / "c", [])
    (tmp_path / "c" / "sample_data" / "t" / "train.jsonl").write_text("")
    with pytest.raises(SourceError, match="empty"):
        export_mixture(cat, "m", tmp_path / "o", total=10, progress=False, log=lambda s: None)
    assert not (tmp_path / "o").exists()


def test_unreachable_sources_listed_with_hint(cat, tmp_path):
    with pytest.raises(SourceError) as ei:
        # only local-file sources here (no hub access in tests)
        export_mixture(cat, "demo", tmp_path / "o", total=10, source="real", exclude=["flan2021", "t0sf", "dialog"],
                       source_dirs={"cot": tmp_path, "niv2": tmp_path}, progress=False, log=lambda s: None)  # fmt: skip
    msg = str(ei.value)
    assert "cot_gsm8k" in msg and "task1388_cb_entailment" in msg and "--source-dir" in msg
    assert not (tmp_path / "o").exists()
