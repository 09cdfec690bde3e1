"""A decoder-only transformer in the Llama layout (RoPE, grouped-query attention,
gated-SiLU MLP, pre-RMSNorm, no biases), causal or prefix-LM, plus HF Llama
safetensors import/export (``LlamaForCausalLM`` loads what :func:`save_hf` writes,
and :func:`load_hf` reads Llama-style checkpoints).

Inputs are the packed decoder batch of :mod:`finetune.data` (``kind="decoder"``):
tokens, segment ids, per-example positions (RoPE uses them, so a packed example
sees the same rotations as alone) and, for prefix-LM, ``decoder_prefix_mask``.

Example::

    >>> cfg = DecoderConfig.preset("tiny-decoder")
    >>> model = DecoderLM(cfg)
    >>> params = init_params(model, jax.random.PRNGKey(0))            # doctest: +SKIP
    >>> logits = model.apply({"params": params}, batch)                # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from finetune.models.hf_io import params_from_tensors, read_safetensors, write_hf
from finetune.models.layers import Dense, GatedMLP, RMSNorm, attention, normal_init, segment_mask


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    vocab_size: int = 384
    d_model: int = 128
    num_heads: int = 4
    head_dim: int = 32
    d_ff: int = 384
    num_layers: int = 2
    num_kv_heads: int = 0  # grouped-query attention; 0 = num_heads (plain multi-head)
    rope_theta: float = 10000.0
    dropout_rate: float = 0.0
    layer_norm_epsilon: float = 1e-6
    tie_word_embeddings: bool = True
    prefix_lm: bool = False

    @property
    def kv_heads(self) -> int:
        return self.num_kv_heads or self.num_heads

    @classmethod
    def preset(cls, name: str, **overrides) -> DecoderConfig:
        if name not in _DECODER_PRESETS:
            raise KeyError(name)
        return dataclasses.replace(_DECODER_PRESETS[name], **overrides)


_DECODER_PRESETS = {
    "tiny-decoder": DecoderConfig(),
    "decoder-small": DecoderConfig(
        vocab_size=32128, d_model=512, num_heads=8, head_dim=64, d_ff=1536, num_layers=8
    ),
    # ~341M parameters (tied 32k embedding): the GPU benchmark's decoder
    "decoder-350m": DecoderConfig(
        vocab_size=32128, d_model=1024, num_heads=16, head_dim=64, d_ff=2816, num_layers=24
    ),
}


def rope(x, positions, theta: float):
    """Rotate pairs (first half, second half) of the head dim by position-dependent angles."""
    half = x.shape[-1] // 2
    freqs = theta ** (-jnp.arange(half, dtype=jnp.float32) / half)
    angles = positions[..., None].astype(jnp.float32) * freqs  # [B,L,half]
    sin, cos = jnp.sin(angles)[:, :, None, :], jnp.cos(angles)[:, :, None, :]
    x1, x2 = x[..., :half].astype(jnp.float32), x[..., half:].astype(jnp.float32)
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x.dtype)


class Block(nn.Module):
    cfg: DecoderConfig

    @nn.compact
    def __call__(self, x, positions, mask, deterministic, cache=None, index=None):
        c = self.cfg
        inner = c.num_heads * c.head_dim
        h = RMSNorm(c.layer_norm_epsilon, name="attn_norm")(x)

        def heads(name, n, std):
            y = Dense(n * c.head_dim, std, name=name)(h)
            return y.reshape(y.shape[:2] + (n, c.head_dim))

        q = rope(heads("q", c.num_heads, c.d_model**-0.5), positions, c.rope_theta)
        k = rope(heads("k", c.kv_heads, c.d_model**-0.5), positions, c.rope_theta)
        v = heads("v", c.kv_heads, c.d_model**-0.5)
        new_cache = None
        if cache is not None:  # single-token step: write k/v at `index`, attend to the cache
            k = jax.lax.dynamic_update_slice(cache[0], k.astype(cache[0].dtype), (0, index, 0, 0))
            v = jax.lax.dynamic_update_slice(cache[1], v.astype(cache[1].dtype), (0, index, 0, 0))
            new_cache = (k, v)
        if c.kv_heads != c.num_heads:  # each kv head serves num_heads // kv_heads query heads
            k = jnp.repeat(k, c.num_heads // c.kv_heads, axis=2)
            v = jnp.repeat(v, c.num_heads // c.kv_heads, axis=2)
        out = attention(q, k, v, None, mask, scale=c.head_dim**-0.5)
        out = Dense(c.d_model, inner**-0.5, name="o")(out.reshape(out.shape[:2] + (inner,)))
        x = x + nn.Dropout(c.dropout_rate)(out, deterministic=deterministic)
        h = RMSNorm(c.layer_norm_epsilon, name="mlp_norm")(x)
        h = GatedMLP(c.d_ff, "silu", c.dropout_rate, c.d_model**-0.5, name="mlp")(h, deterministic)
        return x + nn.Dropout(c.dropout_rate)(h, deterministic=deterministic), new_cache


class DecoderLM(nn.Module):
    cfg: DecoderConfig

    def setup(self):
        c = self.cfg
        # small init: with tied, unscaled output logits (Llama) the first logits stay O(1)
        self.embedding = self.param("embedding", normal_init(0.02), (c.vocab_size, c.d_model))
        self.blocks = [Block(c) for _ in range(c.num_layers)]
        self.final_norm = RMSNorm(c.layer_norm_epsilon)
        if not c.tie_word_embeddings:
            self.lm_head = Dense(c.vocab_size, c.d_model**-0.5)

    def _logits(self, x):
        x = self.final_norm(x)
        if self.cfg.tie_word_embeddings:
            return jnp.dot(x, self.embedding.T.astype(x.dtype)).astype(jnp.float32)
        return self.lm_head(x).astype(jnp.float32)

    def __call__(self, batch, deterministic=True):
        tokens = batch["decoder_input_tokens"]
        prefix = batch.get("decoder_prefix_mask") if self.cfg.prefix_lm else None
        mask = segment_mask(
            batch["decoder_segment_ids"], batch["decoder_segment_ids"], causal=True, prefix=prefix
        )
        x = jnp.take(self.embedding, tokens, axis=0)
        for block in self.blocks:
            x, _ = block(x, batch["decoder_positions"], mask, deterministic)
        return self._logits(x)

    def init_cache(self, batch_size: int, max_length: int, dtype=jnp.float32):
        c = self.cfg
        z = jnp.zeros((batch_size, max_length, c.kv_heads, c.head_dim), dtype)
        return [{"k": z, "v": z} for _ in range(c.num_layers)]

    def decode_step(self, tokens, cache, index):
        """One token per row at position ``index`` (causal; prompts are fed token by token)."""
        max_length = cache[0]["k"].shape[1]
        positions = jnp.full(tokens.shape, index, jnp.int32)
        mask = (jnp.arange(max_length) <= index)[None, None, None, :]
        x = jnp.take(self.embedding, tokens, axis=0)
        new = []
        for block, layer in zip(self.blocks, cache):
            x, (k, v) = block(x, positions, mask, True, (layer["k"], layer["v"]), index)
            new.append({"k": k, "v": v})
        return self._logits(x)[:, 0], new


def init_params(model: DecoderLM, rng) -> dict:
    n = 8
    batch = {
        "decoder_input_tokens": jnp.ones((1, n), jnp.int32),
        "decoder_segment_ids": jnp.ones((1, n), jnp.int32),
        "decoder_positions": jnp.arange(n)[None],
        "decoder_prefix_mask": jnp.zeros((1, n), jnp.int32),
    }
    return model.init(rng, batch)["params"]


# ----------------------------------------------------------------------------
# HF Llama safetensors import/export
# ----------------------------------------------------------------------------


def to_hf_config(cfg: DecoderConfig) -> dict[str, Any]:
    """``config.json`` for ``LlamaForCausalLM`` (transformers 4.x and 5.x read it)."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.d_ff,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.kv_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": cfg.layer_norm_epsilon,
        "rope_theta": cfg.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "rope_scaling": None,
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": cfg.tie_word_embeddings,
        "max_position_embeddings": 4096,
        "pad_token_id": 0,
        "bos_token_id": 1,  # the finetuner starts every sequence with eos-as-bos
        "eos_token_id": 1,
        "torch_dtype": "float32",
    }


def from_hf_config(d: dict[str, Any]) -> DecoderConfig:
    """A Llama-style ``config.json`` → :class:`DecoderConfig`; unsupported variants raise ValueError."""
    if d.get("model_type") != "llama":
        raise ValueError(
            f"config.json has model_type {d.get('model_type')!r}; decoder checkpoints must be "
            "Llama-style (model_type 'llama')"
        )
    rope = d.get("rope_parameters") or d.get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        raise ValueError(
            f"config.json uses RoPE scaling {rope.get('rope_type') or rope.get('type')!r}; "
            "only plain RoPE is supported"
        )
    for flag in ("attention_bias", "mlp_bias"):
        if d.get(flag):
            raise ValueError(f"config.json sets {flag}: biases are not supported")
    if d.get("hidden_act", "silu") != "silu":
        raise ValueError(
            f"config.json has hidden_act {d.get('hidden_act')!r}; only silu is supported"
        )
    heads = int(d["num_attention_heads"])
    return DecoderConfig(
        vocab_size=int(d["vocab_size"]),
        d_model=int(d["hidden_size"]),
        num_heads=heads,
        head_dim=int(d.get("head_dim") or d["hidden_size"] // heads),
        d_ff=int(d["intermediate_size"]),
        num_layers=int(d["num_hidden_layers"]),
        num_kv_heads=int(d.get("num_key_value_heads") or heads),
        rope_theta=float(rope.get("rope_theta", d.get("rope_theta", 10000.0))),
        layer_norm_epsilon=float(d.get("rms_norm_eps", 1e-6)),
        tie_word_embeddings=bool(d.get("tie_word_embeddings", False)),
    )


def _hf_names(cfg: DecoderConfig) -> list[tuple[str, tuple[str, ...], bool]]:
    """(HF tensor name, our param path, transpose?) for every tensor."""
    out = [("model.embed_tokens.weight", ("embedding",), False)]
    for i in range(cfg.num_layers):
        hf, ours = f"model.layers.{i}", (f"blocks_{i}",)
        out.append((f"{hf}.input_layernorm.weight", ours + ("attn_norm", "scale"), False))
        for p in "qkvo":
            out.append((f"{hf}.self_attn.{p}_proj.weight", ours + (p, "kernel"), True))
        out.append((f"{hf}.post_attention_layernorm.weight", ours + ("mlp_norm", "scale"), False))
        for hf_p, p in (("gate_proj", "wi_0"), ("up_proj", "wi_1"), ("down_proj", "wo")):
            out.append((f"{hf}.mlp.{hf_p}.weight", ours + ("mlp", p, "kernel"), True))
    out.append(("model.norm.weight", ("final_norm", "scale"), False))
    if not cfg.tie_word_embeddings:
        out.append(("lm_head.weight", ("lm_head", "kernel"), True))
    return out


def load_hf(directory: str | Path) -> tuple[DecoderConfig, dict]:
    """Read a Llama-style HF directory (config.json + safetensors) into (config, fp32 params);
    every tensor is shape-checked, a missing or mis-shaped one raises ValueError naming it."""
    directory = Path(directory)
    cfg = from_hf_config(json.loads((directory / "config.json").read_text()))
    tensors = read_safetensors(directory)
    if not cfg.tie_word_embeddings and "lm_head.weight" not in tensors:
        cfg = dataclasses.replace(cfg, tie_word_embeddings=True)
    shapes = jax.tree.map(
        lambda s: s.shape,
        jax.eval_shape(lambda: init_params(DecoderLM(cfg), jax.random.PRNGKey(0))),
    )
    return cfg, params_from_tensors(directory, tensors, _hf_names(cfg), shapes)


def save_hf(directory: str | Path, cfg: DecoderConfig, params: dict) -> Path:
    """Write ``config.json`` + ``model.safetensors`` loadable by ``LlamaForCausalLM``."""
    return write_hf(directory, params, _hf_names(cfg), to_hf_config(cfg))
