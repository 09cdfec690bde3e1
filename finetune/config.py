"""Typed run configuration for ``flan finetune``.

A run is described by one :class:`Config` dataclass. Values come, in order of
precedence (last wins), from the dataclass defaults, an optional YAML file and
``--key=value`` / ``--key value`` command-line overrides. Unknown keys are
rejected with a did-you-mean suggestion, and values are converted to the
field's declared type. Every field carries its group and one line of meaning
(:func:`help_text` builds ``flan finetune --help`` from them), so the help can
never drift from the config.

This module imports nothing heavy (no jax, no numpy): argument errors are
reported in milliseconds.

Example::

    >>> cfg = parse_args(["--data", "exp", "--steps=20", "--model", "tiny-t5"])
    >>> cfg.steps, cfg.model
    (20, 'tiny-t5')
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A bad config key or value; the message is meant for the user."""


GROUPS = {
    "run": "what to train and where",
    "data": "tokenizer, lengths, packing, held-out eval",
    "model": "architecture and numerics",
    "optimizer": "optimizer, schedule, loss",
    "parallelism": "device mesh",
    "checkpoints": "checkpoints, exports, logging, samples",
    "testing": "fault injection for tests",
}


def _f(default: Any, group: str, help: str, choices: tuple[str, ...] = ()) -> Any:
    # one place that ties a default to its group, meaning and allowed values
    return dataclasses.field(
        default=default, metadata={"group": group, "help": help, "choices": choices}
    )


@dataclasses.dataclass
class Config:
    """Every knob of a finetuning run; ``flan finetune --help`` lists them by group."""

    # --- run ---
    data: str = _f("", "run", "directory written by `flan export` (required)")
    out: str = _f("", "run", "run directory; rerunning with the same one resumes (required)")
    model: str = _f(
        "tiny-t5",
        "run",
        "tiny-t5 | t5-small | t5-base | t5-large (enc-dec) | tiny-decoder | decoder-small | "
        "decoder-350m (decoder-only)",
    )
    init_from: str = _f(
        "", "run", "HF directory (config.json + safetensors) to start from: T5 or Llama-style"
    )
    steps: int = _f(200, "run", "optimizer steps to run in total (a resumed run stops there too)")
    seed: int = _f(0, "run", "seed of the parameter init, dropout and (by default) the data order")

    # --- data ---
    tokenizer: str = _f(
        "byte",
        "data",
        "byte | train:N (SentencePiece with N pieces trained on the export, saved in OUT) | "
        "path to a SentencePiece .model, a tokenizer.json or an HF folder",
    )
    inputs_length: int = _f(
        0,
        "data",
        "encoder tokens (enc-dec) / prompt budget (decoder-only); 0 = from the data: "
        "95th percentile, rounded up to a multiple of 16, at most 1024",
    )
    targets_length: int = _f(
        0,
        "data",
        "decoder tokens (enc-dec) / answer budget (decoder-only); 0 = from the data: "
        "95th percentile, rounded up to a multiple of 16, at most 512",
    )
    truncate: str = _f(
        "auto",
        "data",
        "which part of a too-long input to keep: auto (keep_end for fs_* rows, whose query "
        "comes last; keep_start otherwise) | keep_start | keep_end",
        ("auto", "keep_start", "keep_end"),
    )
    chat_template: str = _f(
        "default",
        "data",
        "decoder-only: default (built-in role markers) | none (prompt + answer, no markup) | "
        "a Jinja string | a tokenizer_config.json (or its folder) holding `chat_template`",
    )
    pack: bool = _f(True, "data", "pack several examples per row (segment ids keep them apart)")
    batch_size: int = _f(16, "data", "global rows per micro-batch")
    grad_accum_steps: int = _f(1, "data", "micro-batches per optimizer step")
    epochs: int = _f(0, "data", "passes over the training rows; 0 = repeat until --steps")
    data_seed: int = _f(-1, "data", "seed of the data order; -1 = use --seed")
    eval_fraction: float = _f(
        0.05, "data", "share of source example ids held out for eval (all their renderings)"
    )
    eval_max_examples: int = _f(256, "data", "at most this many held-out rows are evaluated")
    verify_checksums: bool = _f(True, "data", "check every shard's sha256 against the manifest")

    # --- model ---
    prefix_lm: bool = _f(
        False, "model", "decoder-only: the prompt attends both ways (prefix-LM) instead of causal"
    )
    dropout_rate: float = _f(0.0, "model", "dropout on attention/MLP outputs")
    dtype: str = _f("float32", "model", "compute dtype of the matmuls", ("float32", "bfloat16"))
    param_dtype: str = _f(
        "float32", "model", "storage dtype of parameters and moments", ("float32", "bfloat16")
    )

    # --- optimizer ---
    optimizer: str = _f("adafactor", "optimizer", "optimizer", ("adafactor", "adamw"))
    learning_rate: float = _f(1e-3, "optimizer", "peak learning rate")
    lr_schedule: str = _f(
        "auto",
        "optimizer",
        "auto (adafactor: constant, adamw: cosine) | constant | cosine (warmup then decay to 10%)",
        ("auto", "constant", "cosine"),
    )
    warmup_steps: int = _f(100, "optimizer", "linear warmup steps of the cosine schedule")
    weight_decay: float = _f(0.01, "optimizer", "decoupled weight decay (adamw only)")
    grad_clip: float = _f(1.0, "optimizer", "global-norm gradient clip; 0 disables")
    z_loss: float = _f(
        0.0, "optimizer", "weight of the log(Z)^2 auxiliary loss (stabilises logits)"
    )
    nan_policy: str = _f(
        "stop",
        "optimizer",
        "on a non-finite loss: stop (naming the step) | skip (drop that update)",
        ("stop", "skip"),
    )

    # --- parallelism ---
    fsdp: int = _f(
        1,
        "parallelism",
        "devices along the parameter-sharding axis of the (data, fsdp) mesh; -1 = all devices",
    )

    # --- checkpoints, exports, logging ---
    checkpoint_every: int = _f(
        100, "checkpoints", "save a checkpoint every N steps (and at the end)"
    )
    keep_checkpoints: int = _f(3, "checkpoints", "keep the newest N checkpoints")
    export_hf: bool = _f(
        True, "checkpoints", "write OUT/hf/ (config.json + model.safetensors) at the end"
    )
    log_every: int = _f(10, "checkpoints", "append a metrics.jsonl entry every N steps")
    eval_every: int = _f(
        100, "checkpoints", "evaluate on the held-out rows every N steps (0: only at the end)"
    )
    decode_examples: int = _f(
        16, "checkpoints", "greedy-decode this many held-out rows at the end (samples.jsonl)"
    )
    max_decode_length: int = _f(64, "checkpoints", "longest greedy decode, in tokens")
    progress: bool = _f(True, "checkpoints", "show a progress bar on stderr")
    tensorboard: bool = _f(True, "checkpoints", "also write OUT/tb/ when tensorboardX is installed")

    # --- fault injection (tests) ---
    inject_nan_at_step: int = _f(-1, "testing", "make the loss of this step NaN")

    def effective_data_seed(self) -> int:
        return self.seed if self.data_seed < 0 else self.data_seed

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(Config)]


def _suggest(key: str) -> str:
    close = difflib.get_close_matches(key, field_names(), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _convert(name: str, raw: Any) -> Any:
    hints = typing.get_type_hints(Config)
    typ = hints[name]
    if isinstance(typ, types.UnionType):  # pragma: no cover - no optional fields today
        typ = next(t for t in typing.get_args(typ) if t is not type(None))
    try:
        if typ is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if typ is int:
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError(raw)
            return int(raw)
        if typ is float:
            return float(raw)
        return str(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"config key '{name}': cannot read {raw!r} as {typ.__name__}") from None


_TOKENIZER_TRAIN = re.compile(r"train:(\d+)")


def _check(cfg: Config) -> None:
    for f in dataclasses.fields(Config):
        allowed = f.metadata.get("choices")
        value = getattr(cfg, f.name)
        if allowed and value not in allowed:
            close = difflib.get_close_matches(str(value), allowed, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(
                f"config key '{f.name}': {value!r} is not one of {', '.join(allowed)}{hint}"
            )
    if cfg.steps < 0 or cfg.batch_size < 1 or cfg.grad_accum_steps < 1:
        raise ConfigError("steps must be >= 0, batch_size and grad_accum_steps >= 1")
    if not 0.0 <= cfg.eval_fraction < 1.0:
        raise ConfigError("eval_fraction must be in [0, 1)")
    for name in ("inputs_length", "targets_length"):
        value = getattr(cfg, name)
        if value != 0 and value < 2:
            raise ConfigError(
                f"config key '{name}': {value} leaves no room (use 0 = from the data, or >= 2)"
            )
    if cfg.tokenizer.startswith("train"):
        m = _TOKENIZER_TRAIN.fullmatch(cfg.tokenizer)
        if not m or not 64 <= int(m.group(1)) <= 1_000_000:
            raise ConfigError(
                f"config key 'tokenizer': {cfg.tokenizer!r} should be train:N with 64 <= N, e.g. train:2000"
            )
    from finetune.models import NAMES, kind_of  # dependency-free registry

    if not cfg.init_from:
        try:
            kind_of(cfg.model)
        except ValueError as exc:
            raise ConfigError(f"config key 'model': {exc}") from None
    elif cfg.model not in ("", "tiny-t5") and cfg.model in NAMES:
        pass  # --init-from decides the architecture; the preset name is ignored


def tokenizer_train_size(spec: str) -> int | None:
    """``train:N`` → N, anything else → None.

    >>> tokenizer_train_size("train:2000"), tokenizer_train_size("byte")
    (2000, None)
    """
    m = _TOKENIZER_TRAIN.fullmatch(spec)
    return int(m.group(1)) if m else None


def apply_overrides(cfg: Config, values: dict[str, Any], source: str = "override") -> Config:
    """Return a copy of ``cfg`` with ``values`` applied; unknown keys raise ConfigError."""
    known = set(field_names())
    changes = {}
    for key, raw in values.items():
        name = key.replace("-", "_")
        if name not in known:
            raise ConfigError(f"unknown config key '{key}' in {source}{_suggest(name)}")
        changes[name] = _convert(name, raw)
    new = dataclasses.replace(cfg, **changes)
    _check(new)
    return new


def load_yaml(path: str | Path) -> dict[str, Any]:
    import yaml  # lazy: keeps `import finetune.config` dependency-free

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must hold a mapping of key: value")
    return data


def split_argv(argv: list[str]) -> tuple[str | None, dict[str, str]]:
    """Split ``--key value`` / ``--key=value`` pairs; ``--flag`` alone means ``true``.

    Returns ``(config_file, {key: raw_value})``.
    """
    values: dict[str, str] = {}
    config_file = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or arg == "--":
            raise ConfigError(f"unexpected argument {arg!r}; options look like --key=value")
        body = arg[2:]
        if "=" in body:
            key, value = body.split("=", 1)
            i += 1
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            key, value = body, argv[i + 1]
            i += 2
        else:
            key, value = body, "true"
            i += 1
        if key == "config":
            config_file = value
        else:
            values[key] = value
    return config_file, values


def parse_args(argv: list[str]) -> Config:
    """Build a Config from CLI args (``--config file.yaml`` is applied first)."""
    config_file, values = split_argv(argv)
    cfg = Config()
    if config_file:
        cfg = apply_overrides(cfg, load_yaml(config_file), source=config_file)
    return apply_overrides(cfg, values, source="command line")


def _type_name(f: dataclasses.Field) -> str:
    if f.metadata.get("choices"):
        return "{" + ",".join(f.metadata["choices"]) + "}"
    hint = typing.get_type_hints(Config)[f.name]
    return {bool: "BOOL", int: "INT", float: "FLOAT", str: "TEXT"}.get(hint, "VALUE")


def help_text(width: int = 100) -> str:
    """The settings section of ``--help``: every field, grouped, with its default and meaning.

    >>> "--learning_rate FLOAT" in help_text() and "default 0.001" in help_text()
    True
    """
    import textwrap

    by_group: dict[str, list[dataclasses.Field]] = {g: [] for g in GROUPS}
    for f in dataclasses.fields(Config):
        by_group[f.metadata["group"]].append(f)
    lines = []
    for group, fields in by_group.items():
        lines.append(f"{group} settings ({GROUPS[group]}):")
        for f in fields:
            default = f.default
            shown = (
                "''"
                if default == ""
                else str(default).lower()
                if isinstance(default, bool)
                else default
            )
            head = f"  --{f.name} {_type_name(f)}"
            body = f"{f.metadata['help']} [default {shown}]"
            wrapped = textwrap.wrap(body, width=width - 34) or [""]
            first = (
                head.ljust(32) + "  " + wrapped[0]
                if len(head) <= 32
                else head + "\n" + " " * 34 + wrapped[0]
            )
            lines.append(first)
            lines.extend(" " * 34 + w for w in wrapped[1:])
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
