"""Integrity under faults and hostile input (issue 12): exports are never lost,
never blessed when damaged, never mixed across source versions; bad numbers in
the catalog are refused at load time."""

from __future__ import annotations

import pytest

from flan_data import Catalog
from flan_data.errors import CatalogError

# ----------------------------------------------------------------------------- catalog numbers


@pytest.mark.parametrize("key", ["rate", "cap", "inversion_weight"])
@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_non_finite_mixture_numbers_are_refused_at_load(tmp_path, h, key, value):
    root = h.write_catalog_dir(tmp_path / "c", mixtures={"m": {"members": [{"task": "toy"}]}})
    text = (
        (root / "catalog.yaml").read_text().replace("task: toy", f"task: toy\n      {key}: {value}")
    )
    assert value in text
    (root / "catalog.yaml").write_text(text)
    with pytest.raises(CatalogError) as ei:
        Catalog.load(root)
    msg = str(ei.value)
    assert "catalog.yaml" in msg and f"members[0].{key}" in msg


def test_non_finite_temperature_is_refused_at_load(tmp_path, h):
    root = h.write_catalog_dir(
        tmp_path / "c", mixtures={"m": {"members": [{"task": "toy"}], "temperature": float("nan")}}
    )
    with pytest.raises(CatalogError, match="finite"):
        Catalog.load(root)


# ----------------------------------------------------------------------------- export integrity

import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from click.testing import CliRunner  # noqa: E402

from flan_data import FlanDataError  # noqa: E402
from flan_data.cli import main  # noqa: E402
from flan_data.export import export_mixture  # noqa: E402
from flan_data.export.verify import stats, verify  # noqa: E402

QUIET = {"progress": False, "log": lambda s: None}
RUN = {"total": 12, "seed": 1, "shard_rows": 4}


def _tree(d: Path) -> dict[str, bytes]:
    """Every file under ``d`` (state folder included), by relative path."""
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _top(d: Path) -> dict[str, bytes]:
    """The export's files (data/ included), without flan's state folders."""
    return {k: v for k, v in _tree(d).items() if not k.startswith(".flan-export")}


@pytest.fixture
def toy(tmp_path, h):
    root = h.write_catalog_dir(
        tmp_path / "cat", mixtures={"m": {"source": "sample", "members": [{"task": "toy"}]}}
    )
    return root


def _export(root: Path, out: Path, **kw):
    return export_mixture(Catalog.load(root), "m", out, **{**RUN, **QUIET, **kw})


@pytest.fixture
def reference(toy, tmp_path):
    out = tmp_path / "ref"
    _export(toy, out)
    return out


def _break_template(root: Path) -> None:
    f = root / "templates" / "toy.yaml"
    f.write_text(f.read_text().replace("{{ answer }}", "{{ answer.nope }}"))


def test_overwrite_keeps_the_old_export_until_the_new_one_is_complete(toy, reference, tmp_path):
    out = tmp_path / "o"
    _export(toy, out)
    before = _tree(out)
    _break_template(toy)  # another catalog: a different spec, and every render fails
    with pytest.raises(FlanDataError, match="nope"):
        _export(toy, out, overwrite=True)
    assert {k: v for k, v in _tree(out).items() if not k.startswith(".flan-export-next")} == before
    assert verify(out) == []
    (toy / "templates" / "toy.yaml").write_text(
        (toy / "templates" / "toy.yaml").read_text().replace("answer.nope", "answer")
    )
    m = _export(toy, out, overwrite=True, seed=2)
    assert m["seed"] == 2 and verify(out) == []
    assert (
        not (out / ".flan-export-next").exists() and not (out / ".flan-export-swap.json").exists()
    )
    fresh = tmp_path / "fresh"
    _export(toy, fresh, seed=2)
    assert _top(out) == _top(fresh)


def test_overwrite_never_deletes_files_flan_did_not_write(toy, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    mine = {"manifest.json": b"{}", "COMPLETED": b"mine", "shard-00000-of-00003.arrow": b"x"}
    for n, b in mine.items():
        (out / n).write_bytes(b)
    with pytest.raises(FlanDataError, match="did not write but would replace.*COMPLETED"):
        _export(toy, out, overwrite=True)
    assert _tree(out) == mine
    # a user's file beside a flan export survives --overwrite
    out2 = tmp_path / "beside"
    _export(toy, out2)
    (out2 / "notes.txt").write_text("keep me")
    _export(toy, out2, overwrite=True, seed=9)
    assert (out2 / "notes.txt").read_text() == "keep me" and verify(out2) == []
    # and a folder of the user's with other names: written beside, never deleted
    out3 = tmp_path / "other"
    out3.mkdir()
    (out3 / "README").write_text("mine")
    _export(toy, out3, overwrite=True)
    _export(toy, out3, overwrite=True, seed=4)
    assert (out3 / "README").read_text() == "mine" and verify(out3) == []


def _flip(f: Path) -> None:
    b = bytearray(f.read_bytes())
    b[len(b) // 2] ^= 0xFF
    f.write_bytes(bytes(b))


DAMAGE = {
    "flipped byte (--verify)": lambda o: _flip(o / "data" / "shard-00001-of-00003.arrow"),
    "truncated shard": lambda o: (o / "data" / "shard-00001-of-00003.arrow").write_bytes(
        (o / "data" / "shard-00001-of-00003.arrow").read_bytes()[:100]
    ),
    "missing shard": lambda o: (o / "data" / "shard-00002-of-00003.arrow").unlink(),
    "edited manifest": lambda o: (o / "manifest.json").write_text(
        (o / "manifest.json").read_text().replace('"seed": 1', '"seed": 7')
    ),
    "bad COMPLETED": lambda o: (o / "COMPLETED").write_text("0" * 64 + "\n"),
    "missing manifest": lambda o: (o / "manifest.json").unlink(),
    "invalid manifest": lambda o: (o / "manifest.json").write_text("{not json"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_rerun_over_a_damaged_export_repairs_it_byte_identically(toy, reference, tmp_path, damage):
    out = tmp_path / "o"
    _export(toy, out)
    DAMAGE[damage](out)
    logs: list[str] = []
    _export(toy, out, verify=True, log=logs.append)
    assert any(line.startswith("repairing ") for line in logs), logs
    assert _top(out) == _top(reference)
    assert verify(out) == []


def test_rerun_checks_sizes_and_reports_complete_only_then(toy, reference, tmp_path):
    out = tmp_path / "o"
    _export(toy, out)
    logs: list[str] = []
    _export(toy, out, log=logs.append)
    assert "already complete" in logs[-1] and "size of 3 shard(s) checked" in logs[-1]
    _export(toy, out, verify=True, log=logs.append)
    assert "sha256 of 3 shard(s) checked" in logs[-1]


def test_extra_shard_is_refused_with_a_message(toy, tmp_path):
    out = tmp_path / "o"
    _export(toy, out)
    (out / "data" / "shard-00007-of-00009.arrow").write_bytes(b"someone else's")
    with pytest.raises(
        FlanDataError, match="data/shard-00007-of-00009.arrow: a shard that is not part"
    ):
        _export(toy, out)
    assert (out / "data" / "shard-00007-of-00009.arrow").read_bytes() == b"someone else's"


def test_cli_rerun_over_missing_manifest_has_no_traceback(toy, reference, tmp_path):
    out = tmp_path / "o"
    _export(toy, out)
    (out / "manifest.json").unlink()
    args = ["--catalog", str(toy), "export", "-m", "m", "--total", "12", "--seed", "1", "--shard-rows", "4", "-q", "--out", str(out)]  # fmt: skip
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "repairing" in r.output and "Traceback" not in r.output
    assert _top(out) == _top(reference)


def _source(root: Path) -> Path:
    return root / "sample_data" / "toy" / "train.jsonl"


def test_source_change_after_completion_is_refused(toy, tmp_path):
    out = tmp_path / "o"
    m = _export(toy, out)
    spec = json.loads((out / ".flan-export" / "spec.json").read_text())
    fp = spec["sources"]["toy"][0]
    assert fp["file"] == str(_source(toy).resolve()) and len(fp["sha256"]) == 64
    assert {"bytes", "mtime_ns"} <= set(fp)
    text = _source(toy).read_text()
    st = os.stat(_source(toy))
    _source(toy).write_text(text.replace("Premise number 3", "Premise NUMBER 3"))
    os.utime(_source(toy), ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime
    with pytest.raises(
        FlanDataError, match="sources changed.*train.jsonl changed \\(content differs\\)"
    ):
        _export(toy, out)
    _source(toy).write_text(text)
    assert _export(toy, out) == m  # back to the same data: complete again
    os.utime(_source(toy), ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched only
    assert _export(toy, out) == m


def test_resume_after_a_source_change_refuses_to_mix_versions(toy, tmp_path):
    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "flan_data", "--catalog", str(toy), "export", "-m", "m", "--total", "12",
           "--seed", "1", "--shard-rows", "4", "-q", "--out", str(out)]  # fmt: skip
    r = subprocess.run(cmd, env={**os.environ, "FLAN_DATA_FAULT": "shard:1"}, capture_output=True)
    assert r.returncode == -9 and not (out / "COMPLETED").exists()
    recs = _source(toy).read_text().splitlines()
    _source(toy).write_text("\n".join(recs[:-1]) + "\n")
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "sources changed" in r.stderr and "train.jsonl changed (size" in r.stderr
    assert not (out / "COMPLETED").exists()


def test_leftovers_are_cleaned(toy, reference, tmp_path):
    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "flan_data", "--catalog", str(toy), "export", "-m", "m", "--total", "12",
           "--seed", "1", "--shard-rows", "4", "-q", "--out", str(out)]  # fmt: skip
    r = subprocess.run(cmd, env={**os.environ, "FLAN_DATA_FAULT": "shard:1"}, capture_output=True)
    assert r.returncode == -9
    for n in (".shard-00001-of-00003.arrow.tmp-4242", ".COMPLETED.tmp-17", ".manifest.json.tmp-9"):
        (out / n).write_bytes(b"half")
    (out / "data").mkdir(exist_ok=True)
    (out / "data" / ".shard-00002-of-00003.arrow.tmp-77").write_bytes(b"half")
    assert (out / ".flan-export" / "spill").is_dir()
    _export(toy, out)
    assert _top(out) == _top(reference)
    assert not (out / ".flan-export" / "spill").exists()
    # left by a writer killed after completion: cleaned by the next run
    (out / ".shard-00000-of-00003.arrow.tmp-5").write_bytes(b"x")
    _export(toy, out)
    assert _top(out) == _top(reference)


@pytest.mark.parametrize("kind, workers", [("enospc", 1), ("erofs", 1), ("enospc", 2)])
def test_disk_full_or_read_only_is_one_line_and_resumes(
    toy, reference, tmp_path, monkeypatch, kind, workers
):
    out = tmp_path / "o"
    monkeypatch.setenv("FLAN_DATA_FAULT", f"{kind}:shard-00001-*")
    with pytest.raises(FlanDataError) as ei:
        _export(toy, out, workers=workers)
    msg = str(ei.value)
    assert "\n" not in msg and "shard-00001-of-00003.arrow" in msg
    assert ("No space left on device" if kind == "enospc" else "Read-only file system") in msg
    assert "rerun the same command to resume" in msg
    assert not (out / "COMPLETED").exists() and not list(out.glob(".*.tmp-*"))
    args = ["--catalog", str(toy), "export", "-m", "m", "--total", "12", "--seed", "1", "--shard-rows", "4", "-q", "--out", str(out)]  # fmt: skip
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1 and "Traceback" not in r.output and r.output.count("\n") == 1
    monkeypatch.delenv("FLAN_DATA_FAULT")
    _export(toy, out)
    assert _top(out) == _top(reference)


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True
    )
    return r.returncode == 0


@pytest.mark.skipif(sys.platform != "linux", reason="needs Linux tmpfs")
def test_real_full_and_read_only_disk(toy, reference, tmp_path):
    mnt = tmp_path / "mnt"
    if not _mount_tmpfs(mnt, "12k"):
        pytest.skip("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)")
    try:
        out = mnt / "o"
        with pytest.raises(FlanDataError, match="No space left on device.*rerun the same command"):
            _export(toy, out)
        assert not (out / "COMPLETED").exists()
        subprocess.run(["mount", "-o", "remount,size=4m", str(mnt)], check=True)
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        with pytest.raises(FlanDataError, match="Read-only file system"):
            _export(toy, out)
        subprocess.run(["mount", "-o", "remount,rw", str(mnt)], check=True)
        _export(toy, out)
        assert _top(out) == _top(reference)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


# ----------------------------------------------------------------------------- verify and stats


def test_verify_never_tracebacks_and_stats_checks_first(toy, tmp_path):
    out = tmp_path / "o"
    _export(toy, out)
    m = json.loads((out / "manifest.json").read_text())
    del m["shards"]
    from flan_data.export.writer import write_manifest

    write_manifest(out, m)  # a consistent COMPLETED over a manifest without shards
    assert verify(out) == [f"{out / 'manifest.json'}: no 'shards' list"]
    with pytest.raises(FlanDataError, match="no 'shards' list"):
        stats(out)
    r = CliRunner().invoke(main, ["verify", str(out)])
    assert r.exit_code == 1 and "Traceback" not in r.output and "no 'shards' list" in r.output
    r = CliRunner().invoke(main, ["stats", str(out)])
    assert r.exit_code == 1 and "Traceback" not in r.output and "no 'shards' list" in r.output
    for bad in ([], {"format": "flan-data-shards", "shards": [{"file": "../../etc/passwd"}]}, "x"):
        write_manifest(out, bad)
        assert verify(out) and all("\n" not in p for p in verify(out))


def test_stats_refuses_a_damaged_export(toy, tmp_path):
    out = tmp_path / "o"
    _export(toy, out)
    _flip(out / "data" / "shard-00000-of-00003.arrow")
    with pytest.raises(FlanDataError, match="shard-00000-of-00003.arrow: sha256"):
        stats(out)


def test_cli_verify_flag_repairs_a_flipped_byte(toy, reference, tmp_path):
    out = tmp_path / "o"
    _export(toy, out)
    _flip(out / "data" / "shard-00001-of-00003.arrow")
    args = ["--catalog", str(toy), "export", "-m", "m", "--total", "12", "--seed", "1", "--shard-rows", "4", "-q", "--out", str(out)]  # fmt: skip
    r = CliRunner().invoke(main, args)
    assert "already complete" in r.output  # sizes only
    r = CliRunner().invoke(main, [*args, "--verify"])
    assert r.exit_code == 0 and "repairing" in r.output and "sha256 differs" in r.output
    assert _top(out) == _top(reference)


def test_readme_python_api_snippet_runs_as_a_script(tmp_path):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = readme.split("## Python API", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert 'if __name__ == "__main__":' in code and "workers=2" in code
    script = tmp_path / "snippet.py"
    script.write_text(code)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    r = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert verify(tmp_path / "out" / "demo-api") == []


def test_hub_source_fingerprint_is_the_resolved_revision(tmp_path, h, monkeypatch):
    from huggingface_hub import constants

    from flan_data.export.fingerprint import describe_change, fingerprint

    task = {**h.TOY_TASK, "source": {"kind": "hf", "path": "someorg/toyset"}}
    cat = Catalog.load(h.write_catalog_dir(tmp_path / "c", tasks=[task]))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    ref = tmp_path / "hub" / "datasets--someorg--toyset" / "refs" / "main"
    ref.parent.mkdir(parents=True)
    ref.write_text("a" * 40)
    one = fingerprint(cat, [cat.task("toy")], "real", {})
    assert one == {
        "toy": [{"hub": "someorg/toyset", "config": None, "revision": None, "resolved": "a" * 40}]
    }
    ref.write_text("b" * 40)  # the cache now holds another commit of the dataset
    two = fingerprint(cat, [cat.task("toy")], "real", {})
    assert (
        describe_change(one, two)
        == f"task toy: hub dataset someorg/toyset revision {'a' * 40!r} → {'b' * 40!r}"
    )
