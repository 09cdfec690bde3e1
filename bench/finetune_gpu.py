"""GPU benchmark of the finetuner's train step: T5-base (enc-dec) and a ~350M decoder.

Runs ``finetune.train.make_train_step`` (the step ``flan finetune`` jits) on
synthetic *packed* batches built by the finetuner's own first-fit packer (so
segment ids, per-segment positions and the padding at row ends are real), in
bf16 compute with fp32 parameters, and prints per model: step time, tokens/s on
real (non-padding) tokens, packing fill, and MFU on real tokens against the dense
bf16 peak of an H100/H200 (989 TFLOP/s).

Model FLOPs per step (forward + backward = 3 × forward):
``6 · N · tokens`` for every matmul parameter N of the stack a token goes through
(the embedding lookup excluded, the output projection included), plus attention
``12 · layers · heads · head_dim · ctx`` per token, where ``ctx`` is the mean
number of keys a real token attends to (its segment; half of it when causal;
the encoder length for cross-attention). Padding tokens count for nothing.

On a machine without a GPU (CI) ``--smoke`` (the default there) runs tiny
configs in fp32 for a few steps so the script stays tested; MFU is then not
reported (there is no GPU peak to divide by).

Example::

    python bench/finetune_gpu.py                        # on a GPU: t5-base, decoder-350m
    python bench/finetune_gpu.py --smoke                # anywhere: tiny-t5, tiny-decoder
    python bench/finetune_gpu.py --models t5-base --batch 64 --inputs 512 --targets 128
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PEAK_BF16 = 989e12  # H100 / H200 SXM dense bf16 FLOP/s


def synthetic_batch(kind, rows, inputs_length, targets_length, vocab, seed=0):
    """A packed batch of random examples with realistic length spread (numpy)."""
    import numpy as np

    from finetune import data as fdata

    rng = np.random.default_rng(seed)
    packer = fdata.Packer(kind, rows, inputs_length, targets_length, pack=True)
    while True:
        if kind == "encdec":
            li = int(rng.integers(inputs_length // 8, inputs_length + 1))
            lt = int(rng.integers(max(2, targets_length // 16), targets_length // 2 + 1))
        else:  # prompt + answer inside one decoder row
            li = int(rng.integers(32, max(33, inputs_length // 2)))
            lt = int(rng.integers(8, max(9, targets_length)))
        ex = fdata.Example(
            list(rng.integers(3, vocab, li - 1)) + [1],
            list(rng.integers(3, vocab, lt - 1)) + [1],
            0,
        )
        if not packer.add(ex):
            return packer.batch, packer.fill()


def _segment_ctx(segments, causal: bool) -> float:
    """Mean number of keys a real token attends to within its segment."""
    import numpy as np

    total = count = 0.0
    for row in segments:
        ids, lengths = np.unique(row[row > 0], return_counts=True)
        del ids
        s = lengths.astype(np.float64)
        total += float((s * ((s + 1) / 2 if causal else s)).sum())
        count += float(s.sum())
    return total / max(count, 1.0)


def model_flops(kind, cfg, params, batch) -> tuple[float, int]:
    """(model FLOPs of one train step on the real tokens of ``batch``, real tokens)."""
    from finetune.train import count_params

    if kind == "encdec":
        enc_real = int((batch["encoder_segment_ids"] > 0).sum())
        dec_real = int((batch["decoder_segment_ids"] > 0).sum())
        enc_n = count_params(params["encoder"])
        head = params["lm_head"] if "lm_head" in params else params["shared"]
        dec_n = count_params(params["decoder"]) + count_params(head)
        d_attn = cfg.num_heads * cfg.d_kv
        enc_ctx = _segment_ctx(batch["encoder_segment_ids"], causal=False)
        dec_ctx = _segment_ctx(batch["decoder_segment_ids"], causal=True)
        attn = (
            12
            * d_attn
            * (
                cfg.num_layers * enc_ctx * enc_real
                + cfg.num_decoder_layers * (dec_ctx + enc_ctx) * dec_real
            )
        )
        return 6.0 * (enc_n * enc_real + dec_n * dec_real) + attn, enc_real + dec_real
    real = int((batch["decoder_segment_ids"] > 0).sum())
    n = count_params({k: v for k, v in params.items() if k != "embedding"})
    if cfg.tie_word_embeddings:
        n += count_params(params["embedding"])  # the tied output projection is a matmul
    ctx = _segment_ctx(batch["decoder_segment_ids"], causal=True)
    attn = 12 * cfg.num_layers * cfg.num_heads * cfg.head_dim * ctx * real
    return 6.0 * n * real + attn, real


def bench_model(name, rows, inputs_length, targets_length, steps, warmup, dtype, optimizer):
    import jax
    import jax.numpy as jnp

    from finetune import models
    from finetune.config import Config
    from finetune.train import count_params, make_optimizer, make_train_step

    kind, mcfg, module, init = models.build(name)
    cfg = Config(model=name, optimizer=optimizer, dtype=dtype, steps=1000, grad_clip=1.0)
    tx, _ = make_optimizer(cfg)
    params = jax.jit(init)(jax.random.PRNGKey(0))
    state = {
        "params": params,
        "opt_state": jax.jit(tx.init)(params),
        "step": jnp.int32(0),
        "rng": jax.random.PRNGKey(0),
    }
    host, fill = synthetic_batch(kind, rows, inputs_length, targets_length, mcfg.vocab_size)
    flops, real = model_flops(kind, mcfg, params, host)
    batch = {k: jnp.asarray(v[None]) for k, v in host.items() if k != "task_ids"}
    step = jax.jit(make_train_step(module, tx, cfg), donate_argnums=0)
    t0 = time.perf_counter()
    state, m = step(state, batch)
    jax.block_until_ready(m["loss"])
    compile_s = time.perf_counter() - t0
    for _ in range(warmup):
        state, m = step(state, batch)
    jax.block_until_ready(m["loss"])
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        state, m = step(state, batch)
        jax.block_until_ready(m["loss"])
        times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    device = jax.devices()[0]
    on_gpu = device.platform == "gpu"
    return {
        "model": name,
        "kind": kind,
        "params_M": round(count_params(params) / 1e6, 1),
        "device": device.device_kind,
        "rows": rows,
        "lengths": [inputs_length, targets_length],
        "packing_fill": round(fill, 3),
        "real_tokens_per_step": real,
        "compile_s": round(compile_s, 2),
        "step_s": step_s,
        "tokens_per_s": real / step_s,
        "model_tflops_per_step": flops / 1e12,
        "achieved_tflops": flops / step_s / 1e12,
        "mfu": flops / step_s / PEAK_BF16 if on_gpu and dtype == "bfloat16" else None,
        "loss": float(m["loss"]),
    }


# name → (rows, inputs_length, targets_length, optimizer) on a GPU / in the smoke test
GPU_SHAPES = {
    "t5-base": (64, 512, 128, "adafactor"),
    "decoder-350m": (16, 1536, 512, "adamw"),  # 2,048-token rows
}
SMOKE_SHAPES = {"tiny-t5": (4, 64, 32, "adafactor"), "tiny-decoder": (4, 48, 16, "adamw")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=None, help="comma-separated; default by device")
    ap.add_argument("--smoke", action="store_true", help="tiny configs, a few steps (CPU/CI)")
    ap.add_argument("--batch", type=int, default=0, help="rows per step (0: per-model default)")
    ap.add_argument("--inputs", type=int, default=0, help="encoder length / decoder prompt part")
    ap.add_argument("--targets", type=int, default=0, help="decoder length / answer part")
    ap.add_argument("--steps", type=int, default=0, help="timed steps (default 20, smoke 3)")
    ap.add_argument("--warmup", type=int, default=-1, help="untimed steps after compile")
    ap.add_argument(
        "--dtype", default=None, choices=("bfloat16", "float32"), help="default: bf16 (smoke: fp32)"
    )
    ap.add_argument("--json", action="store_true", help="one JSON object per model")
    args = ap.parse_args(argv)

    import jax

    on_gpu = jax.devices()[0].platform == "gpu"
    smoke = args.smoke or not on_gpu
    shapes = SMOKE_SHAPES if smoke else GPU_SHAPES
    names = args.models.split(",") if args.models else list(shapes)
    steps = args.steps or (3 if smoke else 20)
    dtype = args.dtype or ("float32" if smoke else "bfloat16")  # bf16 compiles slowly on CPU
    warmup = args.warmup if args.warmup >= 0 else (1 if smoke else 3)
    print(
        f"device: {jax.devices()[0].device_kind} × {jax.device_count()} | "
        f"{'smoke test (no GPU: tiny configs)' if smoke else 'full configs'} | dtype {dtype}"
    )
    for name in names:
        rows, li, lt, opt = shapes.get(name, GPU_SHAPES.get(name, SMOKE_SHAPES["tiny-t5"]))
        res = bench_model(
            name,
            args.batch or rows,
            args.inputs or li,
            args.targets or lt,
            steps,
            warmup,
            dtype,
            opt,
        )
        if args.json:
            print(json.dumps(res, sort_keys=True))
            continue
        mfu = f"{100 * res['mfu']:.1f}%" if res["mfu"] is not None else "n/a (no GPU peak)"
        print(
            f"{name:>13} ({res['params_M']}M, {res['rows']}×{res['lengths']}, fill "
            f"{res['packing_fill']:.2f}): step {1000 * res['step_s']:.1f} ms | "
            f"{res['tokens_per_s']:,.0f} real tokens/s | {res['achieved_tflops']:.2f} TFLOP/s | "
            f"MFU {mfu} vs 989 TFLOP/s | compile {res['compile_s']:.1f}s | loss {res['loss']:.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
