"""The training loop, readable top to bottom: data → model → mesh → optimizer →
state (fresh, resumed or --init-from) → one jitted train step → loop with
logging, eval and checkpoints → final eval, HF export and a few greedy decodes.

Example::

    >>> from finetune.config import Config
    >>> summary = train(Config(data="exp", out="runs/a", steps=100))  # doctest: +SKIP
    >>> summary["final_loss"] < summary["first_loss"]                  # doctest: +SKIP
    True
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from finetune import data as fdata
from finetune import models
from finetune.checkpoint import Checkpoints
from finetune.config import Config, tokenizer_train_size

# Dense peak FLOP/s (bf16, fp32/tf32) by device-kind substring; MFU is reported only for these.
PEAK_FLOPS = {
    "H200": (989e12, 494e12),
    "H100": (989e12, 494e12),
    "A100": (312e12, 156e12),
    "TPU v4": (275e12, 275e12),
    "TPU v5 lite": (197e12, 197e12),
    "TPU v5p": (459e12, 459e12),
}


AUTO_CAP = {"inputs": 1024, "targets": 512}  # longest automatic lengths, in tokens
TRUNCATION_WARN_SHARE = 0.05
SHORT_ANSWER_TOKENS = 16  # greedy decodes are shown for held-out rows with answers this short


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. a non-finite loss); the message names the step."""


# ----------------------------------------------------------------------------
# Loss
# ----------------------------------------------------------------------------


def token_losses(logits, targets, weights, z_loss: float = 0.0):
    """Per-token cross entropy (+ optional z-loss) in fp32, zero where ``weights`` is 0.

    Returns ``(ce [B,L], z [B,L], correct [B,L])``.
    """
    logits = logits.astype(jnp.float32)
    log_z = jax.nn.logsumexp(logits, axis=-1)
    target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    ce = (log_z - target_logit) * weights
    z = z_loss * jnp.square(log_z) * weights
    correct = (jnp.argmax(logits, axis=-1) == targets) * weights
    return ce, z, correct


def per_token_loss(module, params, batch):
    """Forward pass → per-token cross entropy [B,L] (used by eval and the packing test)."""
    logits = module.apply({"params": params}, batch)
    ce, _, correct = token_losses(
        logits, batch["decoder_target_tokens"], batch["decoder_loss_weights"]
    )
    return ce, correct


# ----------------------------------------------------------------------------
# Sharding: data parallel over ("data", "fsdp"), parameters split over "fsdp"
# ----------------------------------------------------------------------------


def make_mesh(fsdp: int) -> Mesh:
    devices = np.array(jax.devices())
    n = devices.size
    fsdp = n if fsdp in (-1, 0) else fsdp
    if n % fsdp:
        raise ValueError(f"fsdp={fsdp} does not divide the {n} devices")
    return Mesh(devices.reshape(n // fsdp, fsdp), ("data", "fsdp"))


def fsdp_spec(shape: tuple[int, ...], fsdp: int, min_size: int = 2**12) -> P:
    """Split the largest dimension divisible by ``fsdp``; small leaves stay replicated.

    A rule of the shape alone, so parameters and same-shaped optimizer moments
    get the same layout, and Adafactor's factored row/column statistics get theirs.
    """
    if fsdp == 1 or math.prod(shape) < min_size:
        return P()
    for dim in sorted(range(len(shape)), key=lambda d: -shape[d]):
        if shape[dim] % fsdp == 0:
            spec = [None] * len(shape)
            spec[dim] = "fsdp"
            return P(*spec)
    return P()


def state_shardings(mesh: Mesh, abstract_state):
    fsdp = mesh.shape["fsdp"]
    return jax.tree.map(lambda s: NamedSharding(mesh, fsdp_spec(s.shape, fsdp)), abstract_state)


# ----------------------------------------------------------------------------
# Optimizer
# ----------------------------------------------------------------------------


def make_optimizer(cfg: Config):
    """Adafactor with constant LR (default) or AdamW with warmup + cosine; global-norm clip first."""
    schedule_kind = cfg.lr_schedule
    if schedule_kind == "auto":
        schedule_kind = "constant" if cfg.optimizer == "adafactor" else "cosine"
    if schedule_kind == "constant":
        schedule = optax.constant_schedule(cfg.learning_rate)
    else:
        warmup = min(cfg.warmup_steps, max(cfg.steps - 1, 0))
        schedule = optax.warmup_cosine_decay_schedule(
            0.0,
            cfg.learning_rate,
            warmup,
            max(cfg.steps, warmup + 1),
            end_value=cfg.learning_rate * 0.1,
        )
    if cfg.optimizer == "adafactor":
        opt = optax.adafactor(learning_rate=schedule)
    else:
        opt = optax.adamw(schedule, b1=0.9, b2=0.95, weight_decay=cfg.weight_decay)
    parts = [optax.clip_by_global_norm(cfg.grad_clip)] if cfg.grad_clip > 0 else []
    return optax.chain(*parts, opt), schedule


def make_train_step(module, tx, cfg: Config):
    """The un-jitted train step ``(state, batch) -> (state, metrics)``.

    ``batch`` arrays are ``[accum, rows, length]``; gradients of the summed token
    losses are accumulated over ``accum`` micro-batches with ``lax.scan`` and
    divided by the number of real target tokens, so the update does not depend
    on how a batch is split or packed.
    """
    compute_dtype = _dtype(cfg.dtype)

    def loss_fn(params, batch, rng, denom):
        p = jax.tree.map(lambda x: x.astype(compute_dtype), params)
        logits = module.apply(
            {"params": p}, batch, deterministic=cfg.dropout_rate == 0.0, rngs={"dropout": rng}
        )
        ce, z, _ = token_losses(
            logits, batch["decoder_target_tokens"], batch["decoder_loss_weights"], cfg.z_loss
        )
        # dividing by the whole step's token count here yields normalised gradients
        # directly (no extra pass over the gradient tree)
        return (ce.sum() + z.sum()) / denom, (ce.sum(), z.sum())

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def train_step(state, batch):
        rng = jax.random.fold_in(state["rng"], state["step"])
        w = batch["decoder_loss_weights"].sum()
        denom = jnp.maximum(w, 1.0)
        accum = batch["decoder_target_tokens"].shape[0]
        if accum == 1:  # the common case: no accumulator tree to zero and add
            mb = jax.tree.map(lambda x: x[0], batch)
            (_, (ce, z)), grads = grad_fn(state["params"], mb, jax.random.fold_in(rng, 0), denom)
        else:

            def micro(acc, xs):
                mb, i = xs
                (_, (ce, z)), g = grad_fn(state["params"], mb, jax.random.fold_in(rng, i), denom)
                return jax.tree.map(jnp.add, acc, (g, ce, z)), None

            zeros = (jax.tree.map(jnp.zeros_like, state["params"]), 0.0, 0.0)
            (grads, ce, z), _ = jax.lax.scan(micro, zeros, (batch, jnp.arange(accum)))
        loss = ce / denom
        if cfg.inject_nan_at_step >= 0:  # fault injection for tests
            poison = jnp.where(state["step"] + 1 == cfg.inject_nan_at_step, jnp.nan, 1.0)
            loss, grads = loss * poison, jax.tree.map(lambda g: g * poison, grads)
        grad_norm = optax.tree.norm(grads)
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        if cfg.nan_policy == "skip":  # keep the old params/moments for a non-finite step
            params = jax.tree.map(lambda n, o: jnp.where(finite, n, o), params, state["params"])
            opt_state = jax.tree.map(
                lambda n, o: jnp.where(finite, n, o), opt_state, state["opt_state"]
            )
        new_state = {
            "params": params,
            "opt_state": opt_state,
            "step": state["step"] + 1,
            "rng": state["rng"],
        }
        metrics = {
            "loss": loss,
            "z_loss": z / denom,
            "grad_norm": grad_norm,
            "target_tokens": w,
            "finite": finite,
        }
        return new_state, metrics

    return train_step


# ----------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------


def _dtype(name: str):
    return {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[name]


def count_params(tree) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


def _flops_per_step(kind, params, batch_shapes) -> float:
    """6·N·tokens per stack (forward + backward matmuls), attention scores ignored;
    the loop passes the real (non-padding) token counts, so MFU counts no padding."""
    if kind == "encdec":
        enc = count_params(params["encoder"])
        dec = count_params(params["decoder"]) + count_params(
            params.get("lm_head", params["shared"])
        )
        return 6.0 * (
            enc * batch_shapes["encoder_input_tokens"] + dec * batch_shapes["decoder_input_tokens"]
        )
    body = count_params({k: v for k, v in params.items() if k != "embedding"}) + count_params(
        params["embedding"]
    )
    return 6.0 * body * batch_shapes["decoder_input_tokens"]


def _peak_flops(dtype: str) -> float | None:
    kind = jax.devices()[0].device_kind
    for name, (bf16, fp32) in PEAK_FLOPS.items():
        if name.lower() in kind.lower():
            return (bf16 if dtype == "bfloat16" else fp32) * jax.device_count()
    return None


class MetricsLog:
    """Append-only ``metrics.jsonl``; on resume, entries after the restored step are dropped."""

    def __init__(self, path: Path, resume_step: int | None, use_tensorboard: bool):
        self.path = path
        kept = []
        if resume_step is not None and path.exists():
            for line in path.read_text().splitlines():
                if line.strip() and json.loads(line).get("step", 0) <= resume_step:
                    kept.append(line)
            path.write_text("".join(k + "\n" for k in kept))
        elif path.exists():
            path.unlink()
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.tb = None
        if use_tensorboard:
            try:
                from tensorboardX import SummaryWriter  # optional

                self.tb = SummaryWriter(str(path.parent / "tb"))
            except ImportError:
                pass

    def write(self, entry: dict[str, Any]) -> None:
        self.file.write(json.dumps(entry, sort_keys=True) + "\n")
        self.file.flush()
        if self.tb is not None:
            for k, v in entry.items():
                if isinstance(v, (int, float)) and k != "step":
                    self.tb.add_scalar(k, v, entry["step"])

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()


# ----------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------


def resolve_lengths(source: fdata.ExampleSource, cfg: Config, log=print) -> dict[str, Any]:
    """Measure token lengths of the training rows, print their percentiles, fill in
    lengths left at 0 (:func:`finetune.data.auto_length`) and warn, in one line with
    the numbers, when more than 5% of inputs (or targets) will be truncated."""
    li, lt = source.measure(source.train_indices, seed=cfg.seed)
    pi, pt = fdata.percentiles(li), fdata.percentiles(lt)
    if not source.inputs_length:
        source.inputs_length = fdata.auto_length(li, AUTO_CAP["inputs"])
    if not source.targets_length:
        source.targets_length = fdata.auto_length(lt, AUTO_CAP["targets"])
    what = "prompt" if source.kind == "decoder" else "inputs"
    fmt = lambda p: " ".join(f"{k} {v}" for k, v in p.items())  # noqa: E731
    log(
        f"token lengths of {len(li)} training rows ({source.tokenizer.name}): "
        f"{what} {fmt(pi)} | targets {fmt(pt)} → inputs_length {source.inputs_length}"
        f"{' (auto)' if not cfg.inputs_length else ''}, targets_length {source.targets_length}"
        f"{' (auto)' if not cfg.targets_length else ''}"
    )
    if source.kind == "decoder":
        cut_in = int(((li + lt) > source.inputs_length + source.targets_length).sum())
    else:
        cut_in = int((li > source.inputs_length).sum())
    cut_tgt = int((lt > source.targets_length).sum())
    n = max(len(li), 1)
    report = {
        "inputs_percentiles": pi,
        "targets_percentiles": pt,
        "inputs_length": source.inputs_length,
        "targets_length": source.targets_length,
        "inputs_truncated_share": cut_in / n,
        "targets_truncated_share": cut_tgt / n,
    }
    side = {
        "auto": "keeping the end of fs_* rows and the start of the others",
        "keep_end": "keeping the end",
        "keep_start": "keeping the start",
    }[source.truncate]
    if cut_in / n > TRUNCATION_WARN_SHARE:
        log(
            f"warning: {cut_in} of {n} inputs ({100 * cut_in / n:.1f}%) are longer than "
            f"{source.inputs_length} tokens (p95 {pi['p95']}, max {pi['max']}) and will be cut, "
            f"{side}; raise --inputs_length to keep them whole"
        )
    if cut_tgt / n > TRUNCATION_WARN_SHARE:
        log(
            f"warning: {cut_tgt} of {n} targets ({100 * cut_tgt / n:.1f}%) are longer than "
            f"{source.targets_length} tokens (p95 {pt['p95']}, max {pt['max']}) and will be cut; "
            "raise --targets_length to keep them whole"
        )
    return report


def pick_decode_rows(source: fdata.ExampleSource, n: int, max_new: int) -> list[int]:
    """Up to ``n`` held-out rows whose whole answer fits ``max_new`` and
    :data:`SHORT_ANSWER_TOKENS` tokens (short-answer
    rows, where an exact match means something), in eval order; training rows when no
    row is held out."""
    pool = source.eval_indices if len(source.eval_indices) else source.train_indices[:n]
    rows = source.table.take(np.asarray(pool, dtype=np.int64)).column("targets").to_pylist()
    limit = min(SHORT_ANSWER_TOKENS, max_new)
    picked = [
        int(i) for i, t in zip(pool, rows) if len(source.tokenizer.encode(t or "")) + 1 <= limit
    ]
    return picked[:n]


def train(cfg: Config, log=print, on_step=None, export=None) -> dict[str, Any]:
    """Run (or resume) a finetuning run described by ``cfg``; returns a summary dict.

    ``log`` receives human-readable lines; ``on_step(step, metrics)`` (optional) is
    called after every step, e.g. to stop a run from outside (tests simulate a kill).
    ``export`` (an already validated :class:`finetune.data.ExportDir`) skips a second
    checksum pass when the CLI has checked the directory.
    """
    if not cfg.data:
        raise ValueError("--data is required (a directory written by `flan export`)")
    if not cfg.out:
        raise ValueError("--out is required (the run directory)")
    out = Path(cfg.out)

    # 1. Data: verified export → tokenizer → lengths → train / held-out eval streams.
    # Data errors surface before the run folder exists (no empty run folder left behind).
    if export is None:
        export = fdata.open_export(cfg.data, verify_checksums=cfg.verify_checksums)
    init_cfg = init_params = None
    if cfg.init_from:
        init_cfg, init_params = models.load_hf(cfg.init_from)  # T5 or Llama-style
    kind = models.kind_of_config(init_cfg) if init_cfg is not None else models.kind_of(cfg.model)
    source = fdata.ExampleSource(
        export,
        fdata.ByteTokenizer(),  # replaced below, once the split is known (train:N needs it)
        kind,
        cfg.inputs_length,
        cfg.targets_length,
        cfg.eval_fraction,
        cfg.eval_max_examples,
        truncate=cfg.truncate,
        chat_template=fdata.load_chat_template(cfg.chat_template) if kind == "decoder" else None,
    )
    out.mkdir(parents=True, exist_ok=True)
    n_train = tokenizer_train_size(cfg.tokenizer)
    if n_train is not None:
        t0 = time.perf_counter()
        spm_path = out / "tokenizer" / "spm.model"
        reused = spm_path.is_file()
        tokenizer = fdata.train_tokenizer(
            source.table, source.train_indices, n_train, cfg.seed, out / "tokenizer"
        )
        how = (
            "reused"
            if reused
            else f"trained on the {len(source.train_indices)} training rows in "
            f"{time.perf_counter() - t0:.1f}s"
        )
        log(f"tokenizer: SentencePiece, {tokenizer.vocab_size} pieces, {how}: {spm_path}")
    else:
        tokenizer = fdata.load_tokenizer(cfg.tokenizer)
    source.tokenizer = tokenizer
    if init_cfg is not None and tokenizer.vocab_size > init_cfg.vocab_size:
        raise ValueError(
            f"tokenizer {tokenizer.name} has {tokenizer.vocab_size} ids but {cfg.init_from} only "
            f"{init_cfg.vocab_size}; pass the checkpoint's tokenizer with --tokenizer"
        )
    lengths_report = resolve_lengths(source, cfg, log)
    rows = cfg.batch_size * cfg.grad_accum_steps
    batches = fdata.PackedBatches(
        source,
        source.train_indices,
        rows,
        seed=cfg.effective_data_seed(),
        epochs=cfg.epochs,
        pack=cfg.pack,
    )
    eval_examples = source.get(source.eval_indices, count=False)
    eval_batches = fdata.pack_examples(
        eval_examples,
        kind,
        cfg.batch_size,
        source.inputs_length,
        source.targets_length,
        cfg.pack,
    )
    copy_baseline = fdata.copy_baseline_accuracy(eval_examples, kind)

    # 2. Model.
    kind, model_cfg, module, init_fn = models.build(
        cfg.model, tokenizer.vocab_size, cfg.dropout_rate, cfg.prefix_lm, cfg=init_cfg
    )
    model_name = f"hf:{cfg.init_from}" if init_cfg is not None else cfg.model

    # 3. Mesh: batch split over every device, parameters over the "fsdp" axis.
    mesh = make_mesh(cfg.fsdp)
    n_proc, proc = jax.process_count(), jax.process_index()
    if cfg.batch_size % mesh.size:
        raise ValueError(
            f"batch_size {cfg.batch_size} must be a multiple of the {mesh.size} devices"
        )
    batch_sharding = NamedSharding(mesh, P(None, ("data", "fsdp")))  # [accum, rows, length]
    replicated = NamedSharding(mesh, P())

    # 4. Optimizer.
    tx, schedule = make_optimizer(cfg)
    param_dtype = _dtype(cfg.param_dtype)
    compute_dtype = _dtype(cfg.dtype)

    def init_state(rng):
        params = jax.tree.map(lambda x: x.astype(param_dtype), init_fn(rng))
        return {"params": params, "opt_state": tx.init(params), "step": jnp.int32(0), "rng": rng}

    root_rng = jax.random.PRNGKey(cfg.seed)
    abstract = jax.eval_shape(init_state, root_rng)
    shardings = state_shardings(mesh, abstract)
    abstract = jax.tree.map(
        lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), abstract, shardings
    )

    # 5. State: resume from OUT/checkpoints if present, else --init-from, else random init.
    ckpt = Checkpoints(out / "checkpoints", cfg.checkpoint_every, cfg.keep_checkpoints)
    meta_base = {
        "model": model_name,
        "kind": kind,
        "model_config": dataclasses.asdict(model_cfg),
        "optimizer": cfg.optimizer,
        "manifest_sha256": export.manifest_sha256,
        "tokenizer": tokenizer.name,
    }
    # the newest checkpoint whose checksums, items and meta verify (damaged ones are moved aside)
    restored = ckpt.restore_latest(abstract, meta_base, warn=log)
    if restored is not None:
        resume_step, meta, state = restored
        batches.restore(meta["data_state"])
        log(
            f"resumed from {ckpt.directory} at step {resume_step} (data position {meta['data_state']})"
        )
    else:
        resume_step = None
        state = jax.jit(init_state, out_shardings=shardings)(root_rng)
        if init_cfg is not None:
            params = jax.tree.map(
                lambda x, sh: jax.device_put(np.asarray(x, dtype=param_dtype), sh),
                init_params,
                shardings["params"],
            )
            state = {
                **state,
                "params": params,
                "opt_state": jax.jit(tx.init, out_shardings=shardings["opt_state"])(params),
            }
            log(f"initialised from {cfg.init_from}")
    n_params = count_params(state["params"])

    # 6. The jitted train step (see make_train_step).
    train_step = make_train_step(module, tx, cfg)

    train_step = jax.jit(
        train_step,
        in_shardings=(shardings, batch_sharding),
        out_shardings=(shardings, replicated),
        donate_argnums=0,
    )

    @jax.jit
    def eval_step(params, batch):
        p = jax.tree.map(lambda x: x.astype(compute_dtype), params)
        return per_token_loss(module, p, batch)

    def to_device(batch: dict[str, np.ndarray], sharding, accum: int | None):
        batch = {k: v for k, v in batch.items() if k != "task_ids"}
        if accum is not None:  # [rows, L] → [accum, batch_size, L]
            batch = {k: v.reshape((accum, -1) + v.shape[1:]) for k, v in batch.items()}
        local = fdata.host_rows(batch, proc, n_proc, axis=1 if accum is not None else 0)
        if n_proc == 1:
            return {k: jax.device_put(v, sharding) for k, v in local.items()}
        return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local.items()}

    def evaluate() -> dict[str, Any]:
        totals = {"ce": 0.0, "correct": 0.0, "n": 0.0}
        per_task: dict[int, list[float]] = {}
        eval_sharding = NamedSharding(mesh, P(("data", "fsdp")))
        for b in eval_batches:
            ce, correct = eval_step(state["params"], to_device(b, eval_sharding, None))
            ce, correct = np.asarray(jax.device_get(ce)), np.asarray(jax.device_get(correct))
            tasks, w = b["task_ids"], b["decoder_loss_weights"]
            totals["ce"] += float(ce.sum())
            totals["correct"] += float(correct.sum())
            totals["n"] += float(w.sum())
            for t in np.unique(tasks[w > 0]):
                sel = (tasks == t) & (w > 0)
                acc = per_task.setdefault(int(t), [0.0, 0.0, 0.0])
                acc[0] += float(ce[sel].sum())
                acc[1] += float(correct[sel].sum())
                acc[2] += float(sel.sum())
        n = max(totals["n"], 1.0)
        return {
            "eval_loss": totals["ce"] / n,
            "eval_token_accuracy": totals["correct"] / n,
            "eval_copy_baseline_accuracy": copy_baseline,
            "eval_per_task": {
                source.tasks[t]: {
                    "loss": v[0] / max(v[2], 1),
                    "token_accuracy": v[1] / max(v[2], 1),
                }
                for t, v in sorted(per_task.items())
            },
        }

    def meta_now(step: int) -> dict[str, Any]:
        return {**meta_base, "step": step, "data_state": batches.state(), "config": cfg.to_dict()}

    # 7. The loop.
    metrics_log = MetricsLog(out / "metrics.jsonl", resume_step, cfg.tensorboard)
    start = int(jax.device_get(state["step"]))
    peak = _peak_flops(cfg.dtype)
    eval_ids = source.table.take(np.asarray(source.eval_indices, dtype=np.int64))
    n_eval_ids = len(
        set(zip(eval_ids.column("task").to_pylist(), eval_ids.column("example_id").to_pylist()))
    )
    log(
        f"model {model_name} ({kind}, {n_params / 1e6:.2f}M params) | {len(source.train_indices)} train / "
        f"{len(source.eval_indices)} eval rows ({n_eval_ids} task × source-example pairs) | {mesh.size} device(s), mesh {dict(mesh.shape)} | "
        f"steps {start}→{cfg.steps}"
    )
    from tqdm.auto import tqdm

    bar = tqdm(
        total=cfg.steps, initial=start, disable=not cfg.progress, desc="finetune", file=sys.stderr
    )
    window = {
        "loss": [],
        "tokens": 0,
        "flops": 0.0,
        "time": 0.0,
        "timed": 0,
        "fill": [],
        "grad_norm": [],
        "z": [],
    }
    first_loss = last_loss = None
    last_eval: dict[str, Any] = {}
    step = start
    try:
        while step < cfg.steps:
            try:
                host_batch = next(batches)
            except StopIteration:
                log(f"data exhausted after {cfg.epochs} epoch(s) at step {step}")
                break
            real_tokens = int(
                sum((host_batch[k] > 0).sum() for k in host_batch if k.endswith("segment_ids"))
            )
            device_batch = to_device(host_batch, batch_sharding, cfg.grad_accum_steps)
            # model FLOPs of the real (non-padding) tokens of this step, for MFU
            real_counts = {
                k.replace("segment_ids", "input_tokens"): int((v > 0).sum())
                for k, v in host_batch.items()
                if k.endswith("segment_ids")
            }
            flops = _flops_per_step(kind, state["params"], real_counts)
            t0 = time.perf_counter()
            state, m = train_step(state, device_batch)
            m = jax.device_get(m)
            dt = time.perf_counter() - t0
            step += 1
            loss = float(m["loss"])
            if not bool(m["finite"]):
                if cfg.nan_policy == "stop":
                    raise TrainingError(
                        f"non-finite loss ({loss}) at step {step}; the last checkpoint is kept. "
                        "Lower the learning rate, enable z_loss, or pass --nan_policy=skip"
                    )
                log(f"step {step}: non-finite loss, update skipped")
            else:
                first_loss = loss if first_loss is None else first_loss
                last_loss = loss
                window["loss"].append(loss)
            if step > start + 1:  # the first step includes compilation
                window["time"] += dt
                window["flops"] += flops
                window["tokens"] += real_tokens
                window["timed"] += 1
            window["fill"].append(batches.last_fill)
            window["grad_norm"].append(float(m["grad_norm"]))
            window["z"].append(float(m["z_loss"]))
            bar.update(1)
            if on_step is not None:
                on_step(step, m)

            if step % cfg.log_every == 0 or step == cfg.steps:
                entry = {
                    "step": step,
                    "loss": float(np.mean(window["loss"])) if window["loss"] else float("nan"),
                    "lr": float(schedule(step - 1)),
                    "grad_norm": float(np.mean(window["grad_norm"])),
                    "packing_fill": float(np.mean(window["fill"])),
                    "step_time_s": dt,
                    "tokens_per_s": window["tokens"] / window["time"]
                    if window["time"] > 0
                    else 0.0,
                    "epoch": batches.epoch,
                }
                if cfg.z_loss:
                    entry["z_loss"] = float(np.mean(window["z"]))
                if peak and window["time"] > 0:
                    entry["mfu"] = window["flops"] / window["time"] / peak
                metrics_log.write(entry)
                bar.set_postfix(loss=f"{entry['loss']:.4f}")
                window = {
                    "loss": [],
                    "tokens": 0,
                    "flops": 0.0,
                    "time": 0.0,
                    "timed": 0,
                    "fill": [],
                    "grad_norm": [],
                    "z": [],
                }

            if (
                eval_batches
                and cfg.eval_every > 0
                and step % cfg.eval_every == 0
                and step != cfg.steps
            ):
                last_eval = evaluate()
                metrics_log.write({"step": step, **last_eval})
                tqdm.write(
                    f"step {step}: eval_loss {last_eval['eval_loss']:.4f} "
                    f"token_acc {last_eval['eval_token_accuracy']:.3f}",
                    file=sys.stderr,
                )
            ckpt.save(step, state, meta_now(step))
        bar.close()

        # 8. Final eval, checkpoint, HF export and a few greedy decodes.
        if eval_batches:
            last_eval = evaluate()
            metrics_log.write({"step": step, **last_eval})
        ckpt.wait()
        if ckpt.latest_step() != step:
            ckpt.save(step, state, meta_now(step), force=True)
            ckpt.wait()
        hf_dir = None
        if n_proc > 1:  # sharded params span hosts: gather them before host-side export/decode
            from jax.experimental import multihost_utils

            host_params = multihost_utils.process_allgather(state["params"])
        else:
            host_params = jax.device_get(state["params"])
        if cfg.export_hf and proc == 0:
            if kind == "decoder" and model_cfg.prefix_lm:
                log("no HF export: a prefix-LM has no LlamaForCausalLM equivalent")
            else:
                hf_dir = str(models.save_hf(out / "hf", model_cfg, host_params))
        samples, exact = [], 0
        if cfg.decode_examples > 0:
            from finetune.generate import greedy_generate

            max_new = min(cfg.max_decode_length, source.targets_length)
            idx = pick_decode_rows(source, cfg.decode_examples, max_new)
            raws = [source.raw(i) for i in idx]
            prompts = [ex.inputs for ex in source.get(idx, count=False)]
            preds = greedy_generate(kind, module, host_params, tokenizer, prompts, max_new)
            with open(out / "samples.jsonl", "w", encoding="utf-8") as f:
                for r, p in zip(raws, preds):
                    hit = p.strip() == (r["targets"] or "").strip()
                    exact += hit
                    samples.append(
                        {
                            "task": r["task"],
                            "inputs": r["inputs"],
                            "target": r["targets"],
                            "prediction": p,
                            "exact_match": hit,
                        }
                    )
                    f.write(json.dumps(samples[-1], ensure_ascii=False) + "\n")
            log(
                f"greedy decodes of {len(samples)} held-out rows with short answers "
                f"(≤ {min(SHORT_ANSWER_TOKENS, max_new)} tokens): {exact} exactly right"
            )
            for s in samples:
                query = " ".join(s["inputs"].split())[-70:]
                log(
                    f"  {'✓' if s['exact_match'] else '✗'} [{s['task']}] …{query!r} → "
                    f"{s['prediction']!r} (target {s['target']!r})"
                )
    finally:
        metrics_log.close()
        ckpt.close()

    summary = {
        "steps": step,
        "first_loss": first_loss,
        "final_loss": last_loss,
        "params": n_params,
        "mesh": dict(mesh.shape),
        "sharded_param_leaves": sum(
            any(a is not None for a in sh.spec) for sh in jax.tree.leaves(shardings["params"])
        ),
        "truncation": source.truncation.as_dict(),
        "out": str(out),
        "hf_export": hf_dir,
        "samples": samples,
        "decode_exact_match": exact,
        "lengths": lengths_report,
        "tokenizer": tokenizer.name,
        **{k: v for k, v in last_eval.items() if k != "eval_per_task"},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    if last_eval:
        log(
            f"eval_loss {last_eval['eval_loss']:.4f} | eval token accuracy {last_eval['eval_token_accuracy']:.3f} "
            f"(copy baseline {copy_baseline:.3f})"
        )
    t = source.truncation
    log(
        f"truncated: {t.inputs_truncated} inputs, {t.targets_truncated} targets of {t.examples} examples"
    )
    return summary
