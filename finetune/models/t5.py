"""T5 v1.1-style encoder-decoder in Flax Linen, plus HF safetensors import/export.

Architecture: shared embedding, pre-RMSNorm blocks without biases, bucketed
relative position bias computed once per stack (first block's table, reused by
every layer, as in T5), unscaled dot-product attention (the scale is folded
into the q initialisation), gated-GELU feed-forward, untied ``lm_head`` (tied
embeddings are supported and rescale by ``d_model ** -0.5`` as in T5).

Packing: ``*_segment_ids`` keep attention inside one example and
``*_positions`` restart at 0 per example, so relative positions (and hence the
bias) of a packed example equal those of the example alone.

Example::

    >>> cfg = T5Config.preset("tiny-t5")
    >>> model = T5(cfg)
    >>> params = init_params(model, jax.random.PRNGKey(0))            # doctest: +SKIP
    >>> logits = model.apply({"params": params}, batch)                # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from finetune.models.hf_io import params_from_tensors, read_safetensors, write_hf
from finetune.models.layers import Dense, GatedMLP, RMSNorm, attention, normal_init, segment_mask


@dataclasses.dataclass(frozen=True)
class T5Config:
    vocab_size: int = 32128
    d_model: int = 512
    d_kv: int = 64
    d_ff: int = 1024
    num_heads: int = 6
    num_layers: int = 8
    num_decoder_layers: int = 8
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    dropout_rate: float = 0.0
    layer_norm_epsilon: float = 1e-6
    feed_forward_proj: str = "gated-gelu"
    tie_word_embeddings: bool = False  # output projection reuses `shared`
    scale_decoder_outputs: bool = (
        False  # multiply the decoder output by d_model**-0.5 (original T5)
    )

    @classmethod
    def preset(cls, name: str, **overrides) -> T5Config:
        if name not in _T5_PRESETS:
            raise KeyError(name)
        return dataclasses.replace(_T5_PRESETS[name], **overrides)

    def to_hf(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        # Written so both transformers 4.x (scales iff tie_word_embeddings) and 5.x (reads
        # scale_decoder_outputs) rebuild the same function; save_hf always writes lm_head.weight.
        d["tie_word_embeddings"] = self.scale_decoder_outputs
        d.update(
            architectures=["T5ForConditionalGeneration"],
            model_type="t5",
            is_encoder_decoder=True,
            decoder_start_token_id=0,
            pad_token_id=0,
            eos_token_id=1,
            initializer_factor=1.0,
            use_cache=True,
        )
        return d

    @classmethod
    def from_hf(cls, d: dict[str, Any]) -> T5Config:
        if d.get("model_type", "t5") not in ("t5", "mt5", "umt5"):
            raise ValueError(
                f"config.json has model_type {d.get('model_type')!r}; only T5 is supported"
            )
        ff = d.get("feed_forward_proj", "relu")
        if ff not in ("gated-gelu", "gated-silu"):
            raise ValueError(
                f"config.json has feed_forward_proj {ff!r}; only T5 v1.1 / Flan-T5 gated checkpoints are supported"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw.setdefault("num_decoder_layers", d.get("num_layers", 8))
        if kw.get("num_decoder_layers") is None:
            kw["num_decoder_layers"] = d["num_layers"]
        # transformers 4.x scales the decoder output iff tie_word_embeddings (default True);
        # 5.x records the choice as scale_decoder_outputs.
        kw["scale_decoder_outputs"] = bool(
            d.get("scale_decoder_outputs", d.get("tie_word_embeddings", True))
        )
        kw["tie_word_embeddings"] = False  # load_hf decides from the tensors present
        return cls(**kw)


_T5_PRESETS = {
    # shapes of the public T5 v1.1 / Flan-T5 checkpoints
    "t5-small": T5Config(
        d_model=512, d_kv=64, d_ff=1024, num_heads=6, num_layers=8, num_decoder_layers=8
    ),
    "t5-base": T5Config(
        d_model=768, d_kv=64, d_ff=2048, num_heads=12, num_layers=12, num_decoder_layers=12
    ),
    "t5-large": T5Config(
        d_model=1024, d_kv=64, d_ff=2816, num_heads=16, num_layers=24, num_decoder_layers=24
    ),
    # for tests and the CPU demo (byte vocabulary: 259 ids, padded to 384)
    "tiny-t5": T5Config(
        vocab_size=384,
        d_model=128,
        d_kv=32,
        d_ff=256,
        num_heads=4,
        num_layers=2,
        num_decoder_layers=2,
    ),
}


def relative_position_bucket(
    relative_position, bidirectional: bool, num_buckets: int, max_distance: int
):
    """Map ``key_pos - query_pos`` to a bucket id (the T5 scheme).

    Half the buckets (per direction when bidirectional) hold exact small
    distances; the rest cover distances up to ``max_distance`` logarithmically.
    """
    bucket = jnp.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        bucket = bucket + (relative_position > 0).astype(relative_position.dtype) * num_buckets
        distance = jnp.abs(relative_position)
    else:
        distance = jnp.maximum(-relative_position, 0)
    exact = num_buckets // 2
    far = exact + (
        jnp.log(jnp.maximum(distance, 1).astype(jnp.float32) / exact)
        / math.log(max_distance / exact)
        * (num_buckets - exact)
    ).astype(relative_position.dtype)
    far = jnp.minimum(far, num_buckets - 1)
    return bucket + jnp.where(distance < exact, distance, far)


class RelativeBias(nn.Module):
    num_heads: int
    num_buckets: int
    max_distance: int
    bidirectional: bool

    @nn.compact
    def __call__(self, q_positions, k_positions):
        """q_positions [B,Q], k_positions [B,K] → bias [B,H,Q,K]."""
        table = self.param("embedding", normal_init(0.5), (self.num_buckets, self.num_heads))
        rel = k_positions[:, None, :] - q_positions[:, :, None]
        buckets = relative_position_bucket(
            rel, self.bidirectional, self.num_buckets, self.max_distance
        )
        return jnp.take(table, buckets, axis=0).transpose(0, 3, 1, 2)


class Attention(nn.Module):
    num_heads: int
    d_kv: int
    d_model: int

    def setup(self):
        inner = self.num_heads * self.d_kv
        self.q = Dense(inner, (self.d_model * self.d_kv) ** -0.5)
        self.k = Dense(inner, self.d_model**-0.5)
        self.v = Dense(inner, self.d_model**-0.5)
        self.o = Dense(self.d_model, inner**-0.5)

    def _split(self, x):
        return x.reshape(x.shape[:2] + (self.num_heads, self.d_kv))

    def kv(self, x):
        return self._split(self.k(x)), self._split(self.v(x))

    def __call__(self, x, k, v, bias=None, mask=None):
        out = attention(self._split(self.q(x)), k, v, bias, mask)
        return self.o(out.reshape(out.shape[:2] + (-1,)))


def _write_cache(cache, new, index):
    """Write ``new`` [B,1,H,D] into ``cache`` [B,L,H,D] at ``index``."""
    return jax.lax.dynamic_update_slice(cache, new.astype(cache.dtype), (0, index, 0, 0))


class EncoderBlock(nn.Module):
    cfg: T5Config

    def setup(self):
        c = self.cfg
        self.attn_norm = RMSNorm(c.layer_norm_epsilon)
        self.attn = Attention(c.num_heads, c.d_kv, c.d_model)
        self.mlp_norm = RMSNorm(c.layer_norm_epsilon)
        self.mlp = GatedMLP(c.d_ff, _act(c), c.dropout_rate, c.d_model**-0.5)
        self.drop = nn.Dropout(c.dropout_rate)

    def __call__(self, x, bias, mask, deterministic):
        h = self.attn_norm(x)
        k, v = self.attn.kv(h)
        x = x + self.drop(self.attn(h, k, v, bias, mask), deterministic=deterministic)
        return x + self.drop(self.mlp(self.mlp_norm(x), deterministic), deterministic=deterministic)


class DecoderBlock(nn.Module):
    cfg: T5Config

    def setup(self):
        c = self.cfg
        self.self_attn_norm = RMSNorm(c.layer_norm_epsilon)
        self.self_attn = Attention(c.num_heads, c.d_kv, c.d_model)
        self.cross_attn_norm = RMSNorm(c.layer_norm_epsilon)
        self.cross_attn = Attention(c.num_heads, c.d_kv, c.d_model)
        self.mlp_norm = RMSNorm(c.layer_norm_epsilon)
        self.mlp = GatedMLP(c.d_ff, _act(c), c.dropout_rate, c.d_model**-0.5)
        self.drop = nn.Dropout(c.dropout_rate)

    def cross_kv(self, enc_out):
        return self.cross_attn.kv(enc_out)

    def __call__(
        self,
        x,
        cross_k,
        cross_v,
        self_bias,
        self_mask,
        cross_mask,
        deterministic,
        cache=None,
        index=None,
    ):
        """``cache`` = (k, v) [B,L,H,D]: single-token decoding writes at ``index``."""
        h = self.self_attn_norm(x)
        k, v = self.self_attn.kv(h)
        new_cache = None
        if cache is not None:
            k = _write_cache(cache[0], k, index)
            v = _write_cache(cache[1], v, index)
            new_cache = (k, v)
        x = x + self.drop(
            self.self_attn(h, k, v, self_bias, self_mask), deterministic=deterministic
        )
        h = self.cross_attn_norm(x)
        x = x + self.drop(
            self.cross_attn(h, cross_k, cross_v, None, cross_mask), deterministic=deterministic
        )
        x = x + self.drop(self.mlp(self.mlp_norm(x), deterministic), deterministic=deterministic)
        return x, new_cache


def _act(cfg: T5Config) -> str:
    return "silu" if cfg.feed_forward_proj == "gated-silu" else "gelu"


class T5(nn.Module):
    """Encoder-decoder. ``__call__(batch)`` takes the packed batch dict of :mod:`finetune.data`."""

    cfg: T5Config

    def setup(self):
        c = self.cfg
        self.shared = self.param("shared", normal_init(1.0), (c.vocab_size, c.d_model))
        self.encoder = Encoder(c)
        self.decoder = Decoder(c)
        if not c.tie_word_embeddings:
            self.lm_head = Dense(c.vocab_size, c.d_model**-0.5)

    def embed(self, tokens):
        return jnp.take(self.shared, tokens, axis=0)

    def logits(self, x):
        if self.cfg.scale_decoder_outputs:
            x = x * self.cfg.d_model**-0.5
        if self.cfg.tie_word_embeddings:
            return jnp.dot(x, self.shared.T.astype(x.dtype)).astype(jnp.float32)
        return self.lm_head(x).astype(jnp.float32)

    def encode(self, tokens, segments, positions, deterministic=True):
        return self.encoder(self.embed(tokens), segments, positions, deterministic)

    def decode(self, enc_out, enc_segments, tokens, segments, positions, deterministic=True):
        x = self.decoder(
            self.embed(tokens), enc_out, enc_segments, segments, positions, deterministic
        )
        return self.logits(x)

    def __call__(self, batch, deterministic=True):
        enc = self.encode(
            batch["encoder_input_tokens"],
            batch["encoder_segment_ids"],
            batch["encoder_positions"],
            deterministic,
        )
        return self.decode(
            enc,
            batch["encoder_segment_ids"],
            batch["decoder_input_tokens"],
            batch["decoder_segment_ids"],
            batch["decoder_positions"],
            deterministic,
        )

    # --- cached greedy decoding -------------------------------------------------
    def init_cache(self, enc_out, max_length: int):
        """Cross-attention K/V computed once from the encoder output + empty self-attention caches."""
        return self.decoder.init_cache(enc_out, max_length)

    def decode_step(self, tokens, cache, index, enc_segments):
        """One decoder token per row at position ``index`` → (logits [B,V], cache)."""
        x, cache = self.decoder.step(self.embed(tokens), cache, index, enc_segments)
        return self.logits(x)[:, 0], cache


class Encoder(nn.Module):
    cfg: T5Config

    def setup(self):
        c = self.cfg
        self.relpos = RelativeBias(
            c.num_heads, c.relative_attention_num_buckets, c.relative_attention_max_distance, True
        )
        self.blocks = [EncoderBlock(c) for _ in range(c.num_layers)]
        self.final_norm = RMSNorm(c.layer_norm_epsilon)
        self.drop = nn.Dropout(c.dropout_rate)

    def __call__(self, x, segments, positions, deterministic):
        bias = self.relpos(positions, positions)
        mask = segment_mask(segments, segments)
        x = self.drop(x, deterministic=deterministic)
        for block in self.blocks:
            x = block(x, bias, mask, deterministic)
        return self.drop(self.final_norm(x), deterministic=deterministic)


class Decoder(nn.Module):
    cfg: T5Config

    def setup(self):
        c = self.cfg
        self.relpos = RelativeBias(
            c.num_heads, c.relative_attention_num_buckets, c.relative_attention_max_distance, False
        )
        self.blocks = [DecoderBlock(c) for _ in range(c.num_decoder_layers)]
        self.final_norm = RMSNorm(c.layer_norm_epsilon)
        self.drop = nn.Dropout(c.dropout_rate)

    def __call__(self, x, enc_out, enc_segments, segments, positions, deterministic):
        bias = self.relpos(positions, positions)
        self_mask = segment_mask(segments, segments, causal=True)
        cross_mask = segment_mask(segments, enc_segments)
        x = self.drop(x, deterministic=deterministic)
        for block in self.blocks:
            ck, cv = block.cross_kv(enc_out)
            x, _ = block(x, ck, cv, bias, self_mask, cross_mask, deterministic)
        return self.drop(self.final_norm(x), deterministic=deterministic)

    def init_cache(self, enc_out, max_length):
        c = self.cfg
        b = enc_out.shape[0]
        layers = []
        for block in self.blocks:
            ck, cv = block.cross_kv(enc_out)
            zeros = jnp.zeros((b, max_length, c.num_heads, c.d_kv), enc_out.dtype)
            layers.append({"cross_k": ck, "cross_v": cv, "k": zeros, "v": zeros})
        return layers

    def step(self, x, cache, index, enc_segments):
        b, max_length = x.shape[0], cache[0]["k"].shape[1]
        q_pos = jnp.full((b, 1), index, jnp.int32)
        k_pos = jnp.broadcast_to(jnp.arange(max_length, dtype=jnp.int32), (b, max_length))
        bias = self.relpos(q_pos, k_pos)
        self_mask = (jnp.arange(max_length) <= index)[None, None, None, :]
        cross_mask = (enc_segments > 0)[:, None, None, :]
        new = []
        for block, layer in zip(self.blocks, cache):
            x, (k, v) = block(
                x,
                layer["cross_k"],
                layer["cross_v"],
                bias,
                self_mask,
                cross_mask,
                True,
                (layer["k"], layer["v"]),
                index,
            )
            new.append({**layer, "k": k, "v": v})
        return self.final_norm(x), new


# ----------------------------------------------------------------------------
# Initialisation and HF safetensors import/export
# ----------------------------------------------------------------------------


def dummy_batch(
    rows: int = 1, inputs_length: int = 8, targets_length: int = 8
) -> dict[str, jnp.ndarray]:
    ones = jnp.ones
    return {
        "encoder_input_tokens": ones((rows, inputs_length), jnp.int32),
        "encoder_segment_ids": ones((rows, inputs_length), jnp.int32),
        "encoder_positions": jnp.broadcast_to(jnp.arange(inputs_length), (rows, inputs_length)),
        "decoder_input_tokens": ones((rows, targets_length), jnp.int32),
        "decoder_segment_ids": ones((rows, targets_length), jnp.int32),
        "decoder_positions": jnp.broadcast_to(jnp.arange(targets_length), (rows, targets_length)),
    }


def init_params(model: T5, rng) -> dict:
    return model.init(rng, dummy_batch())["params"]


def _hf_names(cfg: T5Config) -> list[tuple[str, tuple[str, ...], bool]]:
    """(HF tensor name, our param path, transpose?) for every tensor of the model."""
    out: list[tuple[str, tuple[str, ...], bool]] = [("shared.weight", ("shared",), False)]
    for stack, n_layers in (("encoder", cfg.num_layers), ("decoder", cfg.num_decoder_layers)):
        out.append(
            (
                f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                (stack, "relpos", "embedding"),
                False,
            )
        )
        for i in range(n_layers):
            hf, ours = f"{stack}.block.{i}.layer", (stack, f"blocks_{i}")
            attn = "attn" if stack == "encoder" else "self_attn"
            out.append((f"{hf}.0.layer_norm.weight", ours + (f"{attn}_norm", "scale"), False))
            for p in "qkvo":
                out.append((f"{hf}.0.SelfAttention.{p}.weight", ours + (attn, p, "kernel"), True))
            ff = 1
            if stack == "decoder":
                ff = 2
                out.append(
                    (f"{hf}.1.layer_norm.weight", ours + ("cross_attn_norm", "scale"), False)
                )
                for p in "qkvo":
                    out.append(
                        (
                            f"{hf}.1.EncDecAttention.{p}.weight",
                            ours + ("cross_attn", p, "kernel"),
                            True,
                        )
                    )
            out.append((f"{hf}.{ff}.layer_norm.weight", ours + ("mlp_norm", "scale"), False))
            for p in ("wi_0", "wi_1", "wo"):
                out.append(
                    (f"{hf}.{ff}.DenseReluDense.{p}.weight", ours + ("mlp", p, "kernel"), True)
                )
        out.append((f"{stack}.final_layer_norm.weight", (stack, "final_norm", "scale"), False))
    if not cfg.tie_word_embeddings:
        out.append(("lm_head.weight", ("lm_head", "kernel"), True))
    return out


def param_shapes(cfg: T5Config) -> dict:
    shapes = jax.eval_shape(lambda: init_params(T5(cfg), jax.random.PRNGKey(0)))
    return jax.tree.map(lambda s: s.shape, shapes)


def load_hf(directory: str | Path) -> tuple[T5Config, dict]:
    """Read an HF T5 directory (config.json + safetensors) into (config, fp32 params).

    Every tensor is shape-checked against the config; missing or mis-shaped
    tensors raise ``ValueError`` naming the tensor.
    """
    directory = Path(directory)
    cfg_path = directory / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path} is missing: --init-from needs an HF model directory")
    cfg = T5Config.from_hf(json.loads(cfg_path.read_text()))
    tensors = read_safetensors(directory)
    if "shared.weight" not in tensors and "encoder.embed_tokens.weight" in tensors:
        tensors["shared.weight"] = tensors["encoder.embed_tokens.weight"]
    # a checkpoint without lm_head.weight ties the output projection to the embedding
    cfg = dataclasses.replace(cfg, tie_word_embeddings="lm_head.weight" not in tensors)
    params = params_from_tensors(directory, tensors, _hf_names(cfg), param_shapes(cfg))
    return cfg, params


def save_hf(directory: str | Path, cfg: T5Config, params: dict) -> Path:
    """Write ``config.json`` + ``model.safetensors`` loadable by ``T5ForConditionalGeneration``."""
    # always write an explicit lm_head (see T5Config.to_hf)
    tied = {"lm_head.weight": "shared.weight"} if cfg.tie_word_embeddings else None
    return write_hf(directory, params, _hf_names(cfg), cfg.to_hf(), tied)
