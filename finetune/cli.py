"""Command line: ``python -m finetune`` / ``flan finetune``.

``main(argv)`` parses ``--key value`` / ``--key=value`` options (every field of
:class:`finetune.config.Config`, plus ``--config file.yaml``), checks the
arguments, the export directory (manifest, ``COMPLETED``, checksums) and the
tokenizer / ``--init_from`` paths *before* importing JAX, so mistakes are
reported in well under two seconds, then runs training. Exit codes: 0 success,
2 bad config or data, 1 training failure.

    >>> main(["--data", "exp", "--model", "tiny-t5", "--steps", "50", "--out", "runs/a"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

import sys
from pathlib import Path

USAGE = """usage: flan finetune --data DIR --out RUN_DIR [--model tiny-t5] [--steps N]
                     [--tokenizer train:N] [--config run.yaml] [--key=value ...]
       (also: python -m finetune ...)

Finetune a model on a `flan export` directory. Every setting below can be given
as --key=value or --key value (a bare --flag means true), or in a YAML file of
key: value passed with --config (command-line values win). Rerunning with the
same --out resumes from its latest checkpoint.
"""


def _precheck(cfg) -> None:
    """Cheap checks of everything a run needs, before JAX is imported (DataError / ConfigError)."""
    from finetune.config import ConfigError, tokenizer_train_size
    from finetune.data import DataError, load_chat_template

    if cfg.tokenizer not in ("", "byte") and tokenizer_train_size(cfg.tokenizer) is None:
        path = Path(cfg.tokenizer)
        if not path.exists():
            raise DataError(
                f"tokenizer {cfg.tokenizer!r}: no such file (use 'byte', 'train:N', a .model, "
                "a tokenizer.json or a folder holding one)"
            )
    if cfg.init_from and not (Path(cfg.init_from) / "config.json").is_file():
        raise ConfigError(
            f"--init_from {cfg.init_from}: no config.json there (an HF model directory is expected)"
        )
    load_chat_template(cfg.chat_template)  # a bad template or file fails now


def main(argv: list[str] | None = None) -> int:
    from finetune.config import ConfigError, help_text, parse_args

    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE + "\n" + help_text())
        return 0
    try:
        cfg = parse_args(argv)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not cfg.data or not cfg.out:
        print("error: --data and --out are required (see --help)", file=sys.stderr)
        return 2

    from finetune.data import DataError, open_export

    try:
        export = open_export(cfg.data, verify_checksums=cfg.verify_checksums)
        _precheck(cfg)
    except (DataError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    try:
        from finetune.checkpoint import CheckpointMismatch
        from finetune.train import TrainingError, train
    except ImportError as exc:  # the [finetune] extra is missing
        print(
            f"error: flan finetune needs the '{exc.name or 'jax'}' package: "
            "pip install 'flan-data[finetune]'",
            file=sys.stderr,
        )
        return 2

    try:
        train(cfg, export=export)
    except (DataError, CheckpointMismatch, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TrainingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
