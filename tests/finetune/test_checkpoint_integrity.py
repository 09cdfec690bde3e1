"""Checkpoint integrity: checksums recorded at save and verified at restore; a
damaged latest checkpoint falls back to the newest valid one with a warning
naming it; none valid is a one-line error; data errors come before the run
folder exists."""

import json
import shutil

import pytest

jax = pytest.importorskip("jax")

from finetune.checkpoint import CheckpointError  # noqa: E402
from finetune.cli import main  # noqa: E402
from finetune.config import Config  # noqa: E402
from finetune.train import train  # noqa: E402

pytestmark = pytest.mark.finetune

SMALL = dict(
    batch_size=8,
    inputs_length=32,
    targets_length=16,
    log_every=1,
    eval_every=0,
    checkpoint_every=2,
    keep_checkpoints=3,
    progress=False,
    decode_examples=0,
    eval_max_examples=32,
    eval_fraction=0.1,
    export_hf=False,
)


def _cfg(data, out, **kw):
    return Config(data=str(data), out=str(out), **{**SMALL, **kw})


def _losses(out):
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return {m["step"]: m["loss"] for m in map(json.loads, lines) if "loss" in m}


@pytest.fixture(scope="module")
def base(export_dir, tmp_path_factory):
    """A run stopped at step 6 (checkpoints 2, 4, 6) and the same run straight to 8."""
    root = tmp_path_factory.mktemp("ckpt")
    train(_cfg(export_dir, root / "run", steps=6), log=lambda *_: None)
    train(_cfg(export_dir, root / "straight", steps=8), log=lambda *_: None)
    return root


@pytest.fixture
def run(base, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(base / "run", out)
    if (base / "checkpoints-sha256").exists():  # pragma: no cover - layout guard
        raise AssertionError("checksums must live in the run folder")
    return out


def _state_file(out, step):
    files = [p for p in (out / "checkpoints" / str(step) / "state").rglob("*") if p.is_file()]
    return max(files, key=lambda p: p.stat().st_size)


def test_checksums_are_recorded_at_save(run):
    sums = sorted(p.name for p in (run / "checkpoints-sha256").iterdir())
    assert sums == ["2.json", "4.json", "6.json"]
    rec = json.loads((run / "checkpoints-sha256" / "6.json").read_text())
    assert any(k.startswith("state/") for k in rec["files"]) and "meta/metadata" in rec["files"]


def _flip(f):
    b = bytearray(f.read_bytes())
    b[len(b) // 2] ^= 0x01
    f.write_bytes(bytes(b))


DAMAGE = {
    "flipped byte": (lambda o: _flip(_state_file(o, 6)), "differs from its sha256"),
    "truncated state file": (
        lambda o: _state_file(o, 6).write_bytes(_state_file(o, 6).read_bytes()[:50]),
        "truncated",
    ),
    "missing meta": (lambda o: shutil.rmtree(o / "checkpoints" / "6" / "meta"), "no 'meta' item"),
    "non-JSON meta": (
        lambda o: (
            (o / "checkpoints" / "6" / "meta" / "metadata").write_text("{not json"),
            (o / "checkpoints-sha256" / "6.json").unlink(),
        ),
        "'meta' is not readable JSON",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_latest_checkpoint_falls_back_with_a_warning(export_dir, base, run, damage):
    hurt, why = DAMAGE[damage]
    hurt(run)
    messages = []
    train(_cfg(export_dir, run, steps=8), log=messages.append)
    warn = [m for m in messages if m.startswith("warning: checkpoint")]
    assert len(warn) == 1 and f"{run / 'checkpoints' / '6'}" in warn[0] and why in warn[0], messages
    assert any("resumed" in m and "step 4" in m for m in messages)
    assert list((run / "checkpoints-damaged").iterdir())[0].name.startswith("6-")
    straight = _losses(base / "straight")
    assert _losses(run)[8] == pytest.approx(straight[8], rel=1e-6)  # same weights as a clean run


def test_empty_step_folder_is_skipped(export_dir, run):
    (run / "checkpoints" / "8").mkdir()
    messages = []
    train(_cfg(export_dir, run, steps=8), log=messages.append)
    assert any("checkpoints/8 is damaged (empty step folder)" in m for m in messages), messages
    assert any("resumed" in m and "step 6" in m for m in messages)


def test_no_valid_checkpoint_is_a_one_line_error(export_dir, run, capsys):
    for step in (2, 4, 6):
        _flip(_state_file(run, step))
    with pytest.raises(CheckpointError) as ei:
        train(_cfg(export_dir, run, steps=8), log=lambda *_: None)
    msg = str(ei.value)
    assert "\n" not in msg and f"no valid checkpoint in {run / 'checkpoints'}" in msg
    assert all(f"step {s}:" in msg for s in (2, 4, 6))
    rc = main(
        ["--data", str(export_dir), "--out", str(run), "--steps", "8", "--checkpoint_every", "2"]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "error: no valid checkpoint" in err and "Traceback" not in err


def test_data_errors_come_before_the_run_folder(export_dir, tmp_path, capsys):
    bad = tmp_path / "exp"
    shutil.copytree(export_dir, bad)
    m = json.loads((bad / "manifest.json").read_text())
    (bad / m["shards"][0]["file"]).unlink()
    out = tmp_path / "run"
    with pytest.raises(Exception, match="shard") as ei:
        train(_cfg(bad, out, steps=2), log=lambda *_: None)
    assert "Traceback" not in str(ei.value)
    assert not out.exists()
    rc = main(["--data", str(bad), "--out", str(out), "--steps", "2"])
    assert rc == 2 and not out.exists()
