"""Model registry: a name (or an HF directory) → (kind, config, module, params init).

``kind`` is ``"encdec"`` (T5) or ``"decoder"``. Importing this package does not
import jax; :func:`build` does.

    >>> kind_of("tiny-t5"), kind_of("tiny-decoder")
    ('encdec', 'decoder')
"""

from __future__ import annotations

import difflib

T5_NAMES = ("tiny-t5", "t5-small", "t5-base", "t5-large")
DECODER_NAMES = ("tiny-decoder", "decoder-small", "decoder-350m")
NAMES = T5_NAMES + DECODER_NAMES


def kind_of(name: str) -> str:
    if name in T5_NAMES:
        return "encdec"
    if name in DECODER_NAMES:
        return "decoder"
    close = difflib.get_close_matches(name, NAMES, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ValueError(f"unknown model {name!r}{hint}; known: {', '.join(NAMES)}")


def kind_of_config(cfg) -> str:
    """``encdec`` for a T5Config, ``decoder`` for a DecoderConfig."""
    return "encdec" if hasattr(cfg, "d_kv") else "decoder"


def load_hf(directory):
    """An HF directory → ``(config, fp32 params)``: T5 (``model_type`` t5/mt5/umt5) or
    Llama-style decoder (``llama``), chosen by ``config.json``."""
    import json
    from pathlib import Path

    path = Path(directory) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: --init_from needs an HF model directory")
    model_type = json.loads(path.read_text()).get("model_type")
    if model_type == "llama":
        from finetune.models import decoder

        return decoder.load_hf(directory)
    from finetune.models import t5

    return t5.load_hf(directory)


def save_hf(directory, cfg, params):
    """Write an HF directory for either kind (T5ForConditionalGeneration / LlamaForCausalLM)."""
    if kind_of_config(cfg) == "encdec":
        from finetune.models import t5

        return t5.save_hf(directory, cfg, params)
    from finetune.models import decoder

    return decoder.save_hf(directory, cfg, params)


def build(
    name: str,
    vocab_size: int | None = None,
    dropout_rate: float = 0.0,
    prefix_lm: bool = False,
    cfg=None,
):
    """Return ``(kind, cfg, module, init_fn)``; ``init_fn(rng) -> params``.

    ``vocab_size`` (the tokenizer's) enlarges the preset's vocabulary, rounded up
    to a multiple of 128, when the preset is too small.
    """
    import dataclasses

    kind = kind_of(name) if cfg is None else kind_of_config(cfg)
    if kind == "encdec":
        from finetune.models import t5

        cfg = cfg or t5.T5Config.preset(name)
        cfg = dataclasses.replace(cfg, dropout_rate=dropout_rate)
        if vocab_size and vocab_size > cfg.vocab_size:
            cfg = dataclasses.replace(cfg, vocab_size=-(-vocab_size // 128) * 128)
        module = t5.T5(cfg)
        return kind, cfg, module, lambda rng: t5.init_params(module, rng)
    from finetune.models import decoder

    cfg = cfg or decoder.DecoderConfig.preset(name)
    cfg = dataclasses.replace(cfg, dropout_rate=dropout_rate, prefix_lm=prefix_lm)
    if vocab_size and vocab_size > cfg.vocab_size:
        cfg = dataclasses.replace(cfg, vocab_size=-(-vocab_size // 128) * 128)
    module = decoder.DecoderLM(cfg)
    return kind, cfg, module, lambda rng: decoder.init_params(module, rng)
