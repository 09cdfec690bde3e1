"""Greedy decoding: cached encoder + decoder KV cache (T5), KV cache (decoder-only).

Each step function is jitted once for a fixed cache length, so decoding a few
prompts costs one compile plus one cheap call per generated token.

Example::

    >>> texts = greedy_generate("encdec", module, params, tokenizer, [tok.encode("2+3=") + [1]], 16)  # doctest: +SKIP
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def greedy_encdec(
    module, params, enc_tokens: np.ndarray, max_length: int, eos_id: int
) -> np.ndarray:
    """enc_tokens [B, Li] (0 = padding) → generated ids [B, max_length]."""
    from finetune.models.t5 import T5

    segments = (enc_tokens != 0).astype(np.int32)
    positions = np.broadcast_to(np.arange(enc_tokens.shape[1], dtype=np.int32), enc_tokens.shape)
    variables = {"params": params}
    enc_out = module.apply(variables, enc_tokens, segments, positions, method=T5.encode)
    cache = module.apply(variables, enc_out, max_length, method=T5.init_cache)

    @jax.jit
    def step(params, tokens, cache, index):
        return module.apply(
            {"params": params}, tokens, cache, index, segments, method=T5.decode_step
        )

    b = enc_tokens.shape[0]
    tokens = jnp.zeros((b, 1), jnp.int32)  # T5 starts decoding from the pad id
    out = np.zeros((b, max_length), np.int32)
    done = np.zeros(b, bool)
    for i in range(max_length):
        logits, cache = step(params, tokens, cache, jnp.int32(i))
        nxt = np.asarray(jnp.argmax(logits, axis=-1))
        out[:, i] = np.where(done, 0, nxt)
        done |= nxt == eos_id
        if done.all():
            break
        tokens = jnp.asarray(nxt[:, None], jnp.int32)
    return out


def greedy_decoder(
    module, params, prompt: list[int], max_new: int, eos_id: int, bos_id: int = 1
) -> list[int]:
    """Continue ``[bos] + prompt`` greedily; KV cache for causal models, full recompute for prefix-LM."""
    seq = [bos_id] + list(prompt)
    total = len(seq) + max_new
    if module.cfg.prefix_lm:
        return _greedy_prefix_lm(module, params, seq, max_new, eos_id)
    from finetune.models.decoder import DecoderLM

    cache = module.apply({"params": params}, 1, total, method=DecoderLM.init_cache)

    @jax.jit
    def step(params, tokens, cache, index):
        return module.apply({"params": params}, tokens, cache, index, method=DecoderLM.decode_step)

    out: list[int] = []
    logits = None
    for i, tok in enumerate(seq):  # prefill one token at a time (one compiled step)
        logits, cache = step(params, jnp.array([[tok]], jnp.int32), cache, jnp.int32(i))
    for j in range(max_new):
        nxt = int(jnp.argmax(logits[0]))
        out.append(nxt)
        if nxt == eos_id or j == max_new - 1:
            break
        logits, cache = step(params, jnp.array([[nxt]], jnp.int32), cache, jnp.int32(len(seq) + j))
    return out


def _greedy_prefix_lm(module, params, seq, max_new, eos_id):
    # the prompt attends bidirectionally, so a causal KV prefill would not match training
    total = len(seq) + max_new
    tokens = np.zeros((1, total), np.int32)
    tokens[0, : len(seq)] = seq
    prefix = np.zeros((1, total), np.int32)
    prefix[0, : len(seq)] = 1

    @jax.jit
    def forward(params, tokens, length):
        segs = (jnp.arange(total) < length).astype(jnp.int32)[None]
        batch = {
            "decoder_input_tokens": tokens,
            "decoder_segment_ids": segs,
            "decoder_positions": jnp.arange(total)[None],
            "decoder_prefix_mask": jnp.asarray(prefix),
        }
        return module.apply({"params": params}, batch)

    out: list[int] = []
    n = len(seq)
    for _ in range(max_new):
        logits = forward(params, jnp.asarray(tokens), n)
        nxt = int(jnp.argmax(logits[0, n - 1]))
        out.append(nxt)
        if nxt == eos_id or n >= total:
            break
        tokens[0, n] = nxt
        n += 1
    return out


def greedy_generate(kind, module, params, tokenizer, prompts: list[list[int]], max_length: int):
    """Decode tokenized ``prompts`` (already truncated: the encoder input with its eos for
    ``encdec``, the prompt without bos for ``decoder``) and return the generated texts."""
    if kind == "encdec":
        width = max((len(p) for p in prompts), default=1)
        enc = np.zeros((len(prompts), max(width, 1)), np.int32)
        for i, ids in enumerate(prompts):
            enc[i, : len(ids)] = ids
        ids = greedy_encdec(module, params, enc, max_length, tokenizer.eos_id)
        return [tokenizer.decode(row) for row in ids]
    return [
        tokenizer.decode(greedy_decoder(module, params, p, max_length, tokenizer.eos_id))
        for p in prompts
    ]
