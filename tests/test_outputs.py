"""Outputs: file formats, the data/ layout and dataset card, the messages view,
the flan-dump columns, and every reader seeing the same rows."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner
from toy import export_files

from flan_data import Catalog, FlanDataError, UnknownNameError
from flan_data.cli import main
from flan_data.export import export_mixture, read_shard
from flan_data.export.verify import iter_shards, load_manifest, stats, verify
from flan_data.export.writer import COMPLETED, MANIFEST, SHARD_FORMATS, sha256_file
from flan_data.views import TASK_SOURCE, TEMPLATE_TYPE, OutputSpec, chat_task, messages_for

FORMATS = list(SHARD_FORMATS)  # arrow, parquet, jsonl, jsonl.gz
TOTAL = 160
KW = dict(total=TOTAL, seed=5, shard_rows=60, progress=False, log=lambda s: None)


@pytest.fixture(scope="module")
def cat():
    return Catalog.load()


@pytest.fixture(scope="module")
def exports(cat, tmp_path_factory):
    """The demo mixture exported once per file format, with the flan-dump columns."""
    root = tmp_path_factory.mktemp("formats")
    out = {}
    for f in FORMATS:
        out[f] = root / f
        export_mixture(
            cat, "demo", out[f], output=OutputSpec(file_format=f, columns=("flan-dump",)), **KW
        )
    return out


def _rows(out: Path) -> list[dict]:
    return pa.concat_tables(list(iter_shards(out))).to_pylist()


# -- formats and layout


def test_every_format_same_rows_same_manifest(exports):
    ref = _rows(exports["arrow"])
    assert len(ref) == TOTAL
    mref = load_manifest(exports["arrow"])
    for f, out in exports.items():
        assert verify(out) == [], f
        assert _rows(out) == ref, f
        m = load_manifest(out)
        assert m["file_format"] == f and m["output"]["file_format"] == f
        suffix = SHARD_FORMATS[f].suffix
        assert [s["file"] for s in m["shards"]] == [
            f"data/shard-{i:05d}-of-00003{suffix}" for i in range(3)
        ]
        for s in m["shards"]:  # a sha256 per file, as for Arrow
            assert sha256_file(out / s["file"]) == s["sha256"]
        same = {k: v for k, v in m.items() if k not in ("shards", "file_format", "output")}
        assert same == {
            k: v for k, v in mref.items() if k not in ("shards", "file_format", "output")
        }
        assert sorted(p.name for p in out.iterdir()) == [
            ".flan-export",
            "ATTRIBUTION.md",
            COMPLETED,
            "README.md",
            "data",
            MANIFEST,
        ]


def test_jsonl_is_one_utf8_object_per_line_with_exact_seeds(exports):
    raw = (exports["jsonl"] / "data" / "shard-00000-of-00003.jsonl").read_bytes()
    lines = raw.decode("utf-8").splitlines()
    assert len(lines) == 60
    first = json.loads(lines[0])
    assert isinstance(first["seed"], str) and int(first["seed"]) >= 0  # 64-bit: a decimal string
    gz = exports["jsonl.gz"] / "data" / "shard-00000-of-00003.jsonl.gz"
    assert gzip.decompress(gz.read_bytes()) == raw
    assert _rows(exports["jsonl"])[0]["seed"] == int(first["seed"])


@pytest.mark.parametrize("fmt", ["parquet", "jsonl.gz"])
def test_same_bytes_any_workers(cat, exports, tmp_path, fmt):
    out = tmp_path / "w2"
    export_mixture(cat, "demo", out, workers=2, output=OutputSpec(file_format=fmt, columns=("flan-dump",)), **KW)  # fmt: skip
    assert export_files(out) == export_files(exports[fmt])


def test_multiturn_same_bytes_any_workers(cat, tmp_path):
    spec = OutputSpec(file_format="jsonl", chat_fewshot="multiturn", system="Be exact.")
    export_mixture(cat, "demo", tmp_path / "w1", output=spec, **KW)
    export_mixture(cat, "demo", tmp_path / "w2", workers=2, output=spec, **KW)
    assert export_files(tmp_path / "w1") == export_files(tmp_path / "w2")


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "jsonl.gz"])
def test_kill_then_resume_is_byte_identical(exports, tmp_path, fmt):
    cmd = [sys.executable, "-m", "flan_data", "export", "-m", "demo", "--total", str(TOTAL), "--seed", "5",
           "--shard-rows", "60", "-q", "--format", fmt, "--columns", "flan-dump", "--out", str(tmp_path / "o")]  # fmt: skip
    env = {**os.environ, "FLAN_DATA_FAULT": "shard:1"}
    r = subprocess.run(cmd, env=env, capture_output=True)
    assert r.returncode == -9, r.stderr.decode()[-2000:]
    assert verify(tmp_path / "o")  # incomplete is reported
    env.pop("FLAN_DATA_FAULT")
    r = subprocess.run(cmd, env=env, capture_output=True)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert export_files(tmp_path / "o") == export_files(exports[fmt])


def test_changed_format_refused_then_overwrite_leaves_no_old_shards(cat, exports, tmp_path):
    out = tmp_path / "o"
    shutil.copytree(exports["arrow"], out)
    with pytest.raises(FlanDataError, match="different spec"):
        export_mixture(cat, "demo", out, output=OutputSpec(file_format="parquet", columns=("flan-dump",)), **KW)  # fmt: skip
    export_mixture(cat, "demo", out, overwrite=True, output=OutputSpec(file_format="parquet", columns=("flan-dump",)), **KW)  # fmt: skip
    assert sorted(p.suffix for p in (out / "data").iterdir()) == [".parquet"] * 3
    assert export_files(out) == export_files(exports["parquet"])


def test_verify_names_an_edited_parquet_shard(exports, tmp_path):
    out = tmp_path / "o"
    shutil.copytree(exports["parquet"], out)
    f = out / "data" / "shard-00001-of-00003.parquet"
    f.write_bytes(f.read_bytes()[:-10] + b"0123456789")
    (out / "data" / "shard-00009-of-00009.parquet").write_bytes(b"stray")
    problems = verify(out)
    assert any(f.name in p and "sha256" in p for p in problems)
    assert any("shard-00009-of-00009.parquet: not listed" in p for p in problems)


def test_old_layout_export_still_reads(exports, tmp_path):
    """Exports from before data/ (shards beside the manifest) verify, stat and train."""
    out = tmp_path / "old"
    shutil.copytree(exports["arrow"], out)
    m = json.loads((out / MANIFEST).read_text())
    for s in m["shards"]:
        name = s["file"].split("/")[-1]
        (out / s["file"]).rename(out / name)
        s["file"] = name
    (out / "data").rmdir()
    from flan_data.export.writer import write_manifest

    write_manifest(out, m)
    assert verify(out) == []
    assert stats(out)["rows"] == TOTAL
    assert _rows(out) == _rows(exports["arrow"])


def test_unknown_format_and_bad_combinations():
    with pytest.raises(UnknownNameError, match="parquet"):
        OutputSpec(file_format="parket")
    with pytest.raises(UnknownNameError, match="multiturn"):
        OutputSpec(chat_fewshot="multi-turn")
    with pytest.raises(UnknownNameError, match="flan-dump"):
        OutputSpec(columns=("flan_dump",))
    with pytest.raises(FlanDataError, match="need messages"):
        OutputSpec(messages=False, chat_fewshot="multiturn")


# -- every reader sees the same rows


def _norm(rows) -> list[tuple]:
    """Comparable rows: 64-bit seeds as ints (JSON Lines carry them as strings),
    list columns as lists (pandas gives numpy arrays)."""

    def lst(v):
        return None if v is None else [dict(x) if isinstance(x, dict) else x for x in list(v)]

    return [
        (
            r["inputs"],
            r["targets"],
            r["task"],
            r["example_id"],
            int(r["seed"]),
            lst(r["messages"]),
            lst(r["exemplar_ids"]),
            r["template_type"],
            int(r["template_idx"]),
        )  # fmt: skip
        for r in rows
    ]


def _pyarrow(out: Path, fmt: str) -> list[dict]:
    import pyarrow.ipc as ipc
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    files = sorted((out / "data").iterdir())
    if fmt == "arrow":
        ts = [ipc.open_file(pa.memory_map(str(f))).read_all() for f in files]
    elif fmt == "parquet":
        ts = [pq.read_table(f) for f in files]
    else:
        ts = [pj.read_json(f) for f in files]
    return pa.concat_tables(ts).to_pylist()


def _pandas(out: Path, fmt: str) -> list[dict]:
    pd = pytest.importorskip("pandas")
    files = sorted((out / "data").iterdir())
    if fmt == "arrow":
        df = pd.concat([pd.read_feather(f) for f in files])
    elif fmt == "parquet":
        df = pd.read_parquet(out / "data")
    else:
        df = pd.concat([pd.read_json(f, lines=True, dtype={"seed": str}) for f in files])
    return df.to_dict("records")


def _polars(out: Path, fmt: str) -> list[dict]:
    pl = pytest.importorskip("polars")
    files = sorted((out / "data").iterdir())
    if fmt == "arrow":
        df = pl.concat([pl.read_ipc(f) for f in files])
    elif fmt == "parquet":
        df = pl.read_parquet(out / "data" / "*.parquet")
    elif fmt == "jsonl":
        df = pl.concat([pl.read_ndjson(f) for f in files])
    else:
        df = pl.concat([pl.read_ndjson(gzip.decompress(f.read_bytes())) for f in files])
    return df.to_dicts()


def _datasets(out: Path, fmt: str, tmp: Path) -> list[dict]:
    datasets = pytest.importorskip("datasets")
    return datasets.load_dataset(str(out), split="train", cache_dir=str(tmp)).to_list()


@pytest.mark.parametrize("fmt", FORMATS)
def test_pyarrow_pandas_polars_datasets_finetuner_read_identical_rows(exports, tmp_path, fmt):
    out = exports[fmt]
    ref = _norm(_rows(out))
    assert ref == _norm(_rows(exports["arrow"]))
    assert _norm(_pyarrow(out, fmt)) == ref
    assert _norm(_pandas(out, fmt)) == ref
    assert _norm(_polars(out, fmt)) == ref
    ds_rows = _datasets(out, fmt, tmp_path / "cache")
    assert _norm(ds_rows) == ref
    assert isinstance(ds_rows[0]["seed"], int)  # the card's features cast JSON's seed back
    datasets = pytest.importorskip("datasets")
    builder = SHARD_FORMATS[fmt].hf_builder
    d2 = datasets.load_dataset(builder, data_dir=str(out / "data"), split="train", cache_dir=str(tmp_path / "c2"))  # fmt: skip
    assert [r["inputs"] for r in d2] == [r[0] for r in ref]
    fdata = pytest.importorskip("finetune.data")
    t = fdata.read_table(fdata.open_export(out), ("inputs", "targets", "task", "example_id"))
    assert list(zip(*(t[c].to_pylist() for c in t.column_names))) == [r[:4] for r in ref]


def test_finetuner_names_an_unreadable_shard(exports, tmp_path):
    fdata = pytest.importorskip("finetune.data")
    out = tmp_path / "o"
    shutil.copytree(exports["jsonl"], out)
    exp = fdata.open_export(out)
    exp.shard_paths[0].write_text('{"inputs": "x"}\n')  # lacks the other columns
    with pytest.raises(fdata.DataError, match="shard-00000-of-00003.jsonl lacks columns"):
        fdata.read_table(exp)


def test_read_shard_errors_name_the_file(tmp_path):
    bad = tmp_path / "shard-00000-of-00001.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(FlanDataError, match="shard-00000-of-00001.parquet"):
        read_shard(bad)
    with pytest.raises(FlanDataError, match="not a shard file"):
        read_shard(tmp_path / "notes.txt")


# -- the dataset card


def test_dataset_card_configs_counts_and_licenses(cat, exports):
    hub = pytest.importorskip("huggingface_hub")
    out = exports["parquet"]
    card = hub.DatasetCard.load(out / "README.md")
    data = card.data.to_dict()
    assert data["configs"] == [
        {
            "config_name": "default",
            "data_files": [{"split": "train", "path": "data/shard-*.parquet"}],
        }
    ]
    m = load_manifest(out)
    text = (out / "README.md").read_text()
    assert f"seed {m['seed']}" in text and m["tool_version"] in text
    assert m["mixture"]["name"] in text
    per_coll: dict[str, int] = {}
    for task, d in m["counts"].items():
        coll = cat.task(task).collection
        per_coll[coll] = per_coll.get(coll, 0) + sum(d.values())
    for coll, n in per_coll.items():
        assert f"| {coll} | " in text and f" | {n:,} |" in text
    assert data["license"] == "other" and data["license_link"] == "ATTRIBUTION.md"
    assert (out / "ATTRIBUTION.md").is_file()
    for t in m["counts"]:
        info = cat.task(t).metadata.licensing
        assert t in text and f"| {', '.join(info.licenses)} | {info.use} |" in text
    # the card is a pure function of the export: identical across formats but for the file pattern
    other = (exports["arrow"] / "README.md").read_text()
    assert (
        other.replace(".arrow", ".parquet")
        .replace(" arrow ", " parquet ")
        .replace('"arrow"', '"parquet"')
        == text
    )


# -- messages view


def test_messages_round_trip_to_inputs_targets(exports):
    rows = _rows(exports["parquet"])
    for r in rows:
        assert r["messages"] == [
            {"role": "user", "content": r["inputs"]},
            {"role": "assistant", "content": r["targets"]},
        ]


def test_multiturn_puts_exemplars_in_their_own_turns(cat, exports, tmp_path):
    out = tmp_path / "mt"
    m = export_mixture(cat, "demo", out, output=OutputSpec(chat_fewshot="multiturn", system="Answer well.",
                                                           columns=("flan-dump",)), **KW)  # fmt: skip
    assert m["output"]["chat_fewshot"] == "multiturn" and m["output"]["system"] == "Answer well."
    rows = _rows(out)
    ref = _rows(exports["arrow"])
    # the same render: only the messages column differs
    assert [{k: v for k, v in r.items() if k != "messages"} for r in rows] == [
        {k: v for k, v in r.items() if k != "messages"} for r in ref
    ]
    multi = 0
    for r in rows:
        msgs = r["messages"]
        assert msgs[0] == {"role": "system", "content": "Answer well."}
        assert msgs[-1] == {"role": "assistant", "content": r["targets"]}
        roles = [x["role"] for x in msgs[1:]]
        assert roles == ["user", "assistant"] * (len(roles) // 2)
        if r["format"].startswith("fs_") and r["fewshot_style"] is not None:
            # composed few-shot: one user/assistant pair per exemplar, then the query
            assert len(roles) // 2 == len(r["exemplar_ids"]) + 1
            for x in msgs[1:-1]:
                assert x["content"] in r["inputs"]
            multi += len(r["exemplar_ids"]) > 0
        else:
            assert msgs[1:] == [{"role": "user", "content": r["inputs"]}, msgs[-1]]
    assert multi > 0


def test_no_messages_drops_the_column(cat, tmp_path):
    m = export_mixture(cat, "demo", tmp_path / "o", output=OutputSpec(messages=False), **KW)
    names = [c["name"] for c in m["schema"]]
    assert "messages" not in names and "task_source" not in names
    assert verify(tmp_path / "o") == []
    assert "messages" not in (tmp_path / "o" / "README.md").read_text().split("---")[1]


def test_messages_for_shapes():
    assert messages_for("x", "y", system="s") == [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": "y"},
    ]
    assert messages_for("full", "y", turns=([], "q")) == [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "y"},
    ]


def test_render_chat_matches_render(cat):
    from flan_data import render_task

    exs = list(render_task(cat, "anli_r1", fmt="fs_opt", n=3, seed=2, source="sample"))
    single = list(chat_task(cat, "anli_r1", fmt="fs_opt", n=3, seed=2, source="sample"))
    assert single == [messages_for(e.inputs, e.targets) for e in exs]
    multi = list(chat_task(cat, "anli_r1", fmt="fs_opt", n=3, seed=2, source="sample", chat_fewshot="multiturn"))  # fmt: skip
    for e, msgs in zip(exs, multi):
        assert len(msgs) == 2 * (len(e.exemplar_ids) + 1) and msgs[-1]["content"] == e.targets
    r = CliRunner().invoke(main, ["render", "anli_r1", "-f", "fs_opt", "-n", "2", "--seed", "2", "--chat", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert [json.loads(line) for line in r.output.splitlines()] == single[:2]
    r = CliRunner().invoke(
        main, ["render", "anli_r1", "-n", "1", "--chat", "--system", "Be brief."]
    )
    assert r.exit_code == 0 and "SYSTEM:\nBe brief." in r.output and "ASSISTANT:" in r.output


# -- flan-dump columns


def test_flan_dump_columns_and_mapping(cat, exports):
    rows = _rows(exports["arrow"])
    for r in rows:
        assert r["task_source"] == TASK_SOURCE[r["collection"]]
        assert r["task_name"] == r["task"]
        assert r["template_type"] == TEMPLATE_TYPE[r["format"]]
        ids = [t.id for t in cat.templates_for(cat.task(r["task"]))]
        assert ids[r["template_idx"]] == r["template_id"]
    assert {r["task_source"] for r in rows} >= {"Flan2021", "T0", "NIv2", "CoT"}


def test_code_written_for_the_public_dumps_runs_unchanged(exports, tmp_path):
    """The usual recipe for the dumps: filter by template_type/task_source, subsample,
    turn (inputs, targets) into chat turns."""
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset(str(exports["jsonl.gz"]), split="train", cache_dir=str(tmp_path))
    zs = ds.filter(lambda x: x["template_type"].startswith("zs_") and x["task_source"] != "Dialog")
    assert 0 < zs.num_rows < ds.num_rows

    def to_chat(x):
        return {"conv": [{"role": "user", "content": x["inputs"]}, {"role": "assistant", "content": x["targets"]}]}  # fmt: skip

    conv = zs.map(to_chat)
    assert conv[0]["conv"] == conv[0]["messages"]
    counts = ds.to_pandas().groupby("task_source")["task_name"].nunique().to_dict()
    assert set(counts) <= set(TASK_SOURCE.values())


def test_cli_export_options(tmp_path):
    out = tmp_path / "o"
    r = CliRunner().invoke(main, ["export", "-m", "demo", "--total", "40", "-q", "--out", str(out), "--format", "jsonl",
                                  "--columns", "flan-dump", "--chat-fewshot", "multiturn"])  # fmt: skip
    assert r.exit_code == 0, r.output
    m = load_manifest(out)
    assert m["file_format"] == "jsonl" and m["output"]["chat_fewshot"] == "multiturn"
    assert m["output"]["columns"] == ["flan-dump"]
    r = CliRunner().invoke(main, ["export", "-m", "demo", "--total", "40", "-q", "--out", str(tmp_path / "p"),
                                  "--no-messages", "--chat-fewshot", "multiturn"])  # fmt: skip
    assert r.exit_code != 0 and "need messages" in r.output
    assert not (tmp_path / "p").exists()
    r = CliRunner().invoke(main, ["stats", str(out), "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["rows"] == 40
