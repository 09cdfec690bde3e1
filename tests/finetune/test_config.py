"""Config parsing: YAML + --key=value overrides, types, unknown keys with did-you-mean."""

import pytest

pytest.importorskip("jax")

from finetune.config import Config, ConfigError, parse_args  # noqa: E402

pytestmark = pytest.mark.finetune


def test_cli_overrides_and_types():
    cfg = parse_args(
        ["--data", "d", "--steps=7", "--learning_rate", "3e-4", "--pack=false", "--progress"]
    )
    assert (cfg.data, cfg.steps, cfg.learning_rate, cfg.pack, cfg.progress) == (
        "d",
        7,
        3e-4,
        False,
        True,
    )
    assert isinstance(cfg.steps, int)


def test_yaml_then_cli_precedence(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("steps: 50\nmodel: tiny-decoder\noptimizer: adamw\n")
    cfg = parse_args(["--config", str(path), "--steps", "9"])
    assert (cfg.steps, cfg.model, cfg.optimizer) == (9, "tiny-decoder", "adamw")


def test_unknown_key_suggests():
    with pytest.raises(ConfigError, match="did you mean 'learning_rate'"):
        parse_args(["--learning_rat=1"])


def test_unknown_yaml_key_names_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("stesp: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*did you mean 'steps'"):
        parse_args(["--config", str(path)])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--steps=abc"], "cannot read 'abc' as int"),
        (["--optimizer=sgd"], "not one of"),
        (["--pack=maybe"], "as bool"),
    ],
)
def test_bad_values_rejected(argv, message):
    with pytest.raises(ConfigError, match=message):
        parse_args(argv)


def test_dash_keys_accepted():
    assert parse_args(["--init-from", "x"]).init_from == "x"
    assert Config().effective_data_seed() == 0
    assert parse_args(["--seed=3"]).effective_data_seed() == 3


def test_help_lists_every_setting_grouped_with_default(capsys):
    import dataclasses

    from finetune.cli import main
    from finetune.config import GROUPS

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for group in ("data", "model", "optimizer", "parallelism", "checkpoints"):
        assert f"\n{group} settings (" in out and group in GROUPS
    for f in dataclasses.fields(Config):
        line = next(ln for ln in out.splitlines() if ln.startswith(f"  --{f.name} "))
        assert f.metadata["help"].split()[0] in out
        block = out[out.index(line) :].split("\n  --", 1)[0]
        if isinstance(f.default, bool):
            shown = str(f.default).lower()
        else:
            shown = "''" if f.default == "" else str(f.default)
        assert f"[default {shown}]" in " ".join(block.split()), f.name
    # the groups come in order, each setting under its own group
    assert out.index("--learning_rate") > out.index("optimizer settings")
    assert out.index("--fsdp") > out.index("parallelism settings") > out.index("--learning_rate")
    assert "{adafactor,adamw}" in out


def test_choice_typo_suggests():
    with pytest.raises(ConfigError, match="did you mean 'keep_end'"):
        parse_args(["--truncate=keep_ends"])
    with pytest.raises(ConfigError, match="did you mean 't5-base'"):
        parse_args(["--model=t5-bsae"])
    with pytest.raises(ConfigError, match="train:N"):
        parse_args(["--tokenizer=train:abc"])


def test_missing_config_file_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml does not exist"):
        parse_args(["--config", str(tmp_path / "nope.yaml")])


def _run_without_jax(code: str):
    """Run ``code`` in a fresh interpreter; it must finish without importing jax."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    script = code + "\nimport sys\nassert 'jax' not in sys.modules, 'jax was imported'\n"
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{root / 'tests' / 'finetune'}"}
    res = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert res.returncode == 0, res.stderr
    return res


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--data", "{d}", "--out", "{o}", "--stpes", "3"], "did you mean 'steps'"),
        (["--data", "{d}/nope", "--out", "{o}"], "does not exist"),
        (["--data", "{d}", "--out", "{o}", "--tokenizer", "{d}/no.model"], "no such file"),
        (["--data", "{d}", "--out", "{o}", "--chat_template", "{d}/none"], "chat template"),
        (["--data", "{d}", "--out", "{o}", "--init_from", "{d}"], "no config.json"),
        (["--data", "{d}", "--out", "{o}", "--chat_template", "{{% for %}}"], "chat template"),
    ],
)
def test_errors_reported_before_jax_is_imported(tmp_path, argv, message):
    from conftest import write_export

    d = write_export(tmp_path / "e", rows=20)
    argv = [a.format(d=d, o=tmp_path / "run") for a in argv]
    res = _run_without_jax(
        f"from finetune.cli import main\nrc = main({argv!r})\nassert rc == 2, rc\n"
    )
    assert message in res.stderr


def test_data_errors_before_jax(tmp_path):
    from conftest import write_export

    d = write_export(tmp_path / "e", rows=20, complete=False)
    res = _run_without_jax(
        "from finetune.cli import main\n"
        f"assert main(['--data', {str(d)!r}, '--out', {str(tmp_path / 'r')!r}]) == 2\n"
    )
    assert "COMPLETED is missing" in res.stderr
    shard = write_export(tmp_path / "f", rows=20) / "shard-00000-of-00002.arrow"
    shard.write_bytes(shard.read_bytes()[:-8] + b"corrupt!")
    res = _run_without_jax(
        "from finetune.cli import main\n"
        f"assert main(['--data', {str(shard.parent)!r}, '--out', {str(tmp_path / 'r')!r}]) == 2\n"
    )
    assert "shard-00000-of-00002.arrow has sha256" in res.stderr
