"""The GPU benchmark's CPU smoke test: it runs, packs real segments and reports honest numbers."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("jax")

pytestmark = pytest.mark.finetune

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import finetune_gpu  # noqa: E402


def test_smoke_run_reports_every_model():
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "finetune_gpu.py"),
            "--smoke",
            "--json",
            "--steps",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("device: ") and "smoke test" in lines[0]
    rows = [json.loads(x) for x in lines[1:]]
    assert [r["model"] for r in rows] == ["tiny-t5", "tiny-decoder"]
    for r in rows:
        assert r["step_s"] > 0 and r["tokens_per_s"] > 0 and np.isfinite(r["loss"])
        assert 0.5 < r["packing_fill"] <= 1 and r["mfu"] is None  # no GPU peak on CPU


def test_model_flops_count_real_tokens_only():
    import jax

    from finetune import models

    kind, cfg, module, init = models.build("tiny-decoder")
    params = jax.eval_shape(init, jax.random.PRNGKey(0))
    batch, _ = finetune_gpu.synthetic_batch(kind, 2, 48, 16, cfg.vocab_size)
    flops, real = finetune_gpu.model_flops(kind, cfg, params, batch)
    assert real == int((batch["decoder_segment_ids"] > 0).sum()) < batch["decoder_segment_ids"].size
    padded = {k: v.copy() for k, v in batch.items()}
    padded["decoder_segment_ids"][:, :4] = 0  # fewer real tokens, fewer FLOPs
    assert finetune_gpu.model_flops(kind, cfg, params, padded)[0] < flops
    # one segment of s tokens, causal: mean context (s + 1) / 2
    seg = np.array([[1] * 8 + [0] * 4])
    assert finetune_gpu._segment_ctx(seg, causal=True) == pytest.approx(4.5)
    assert finetune_gpu._segment_ctx(seg, causal=False) == pytest.approx(8.0)
