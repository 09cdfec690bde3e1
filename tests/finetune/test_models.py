"""Models: packed == unpacked per-example loss, cached decoding == full forward, HF parity."""

import dataclasses

import numpy as np
import pytest

jax = pytest.importorskip("jax")

from finetune import data as fdata  # noqa: E402
from finetune import models  # noqa: E402
from finetune.generate import greedy_decoder, greedy_encdec  # noqa: E402
from finetune.models import t5 as t5mod  # noqa: E402
from finetune.train import per_token_loss  # noqa: E402

pytestmark = pytest.mark.finetune


def _random_examples(n, rng, max_in=9, max_tgt=6):
    return [
        fdata.Example(
            list(rng.integers(3, 200, rng.integers(1, max_in))) + [1],
            list(rng.integers(3, 200, rng.integers(1, max_tgt))) + [1],
            k,
        )
        for k in range(n)
    ]


def _per_example_loss(module, params, batch, n):
    fn = jax.jit(lambda p, b: per_token_loss(module, p, b))
    ce, _ = fn(params, {k: v for k, v in batch.items() if k != "task_ids"})
    ce = np.asarray(ce)
    return np.array([ce[batch["task_ids"] == k].sum() for k in range(n)])


@pytest.mark.parametrize(
    "name, prefix_lm", [("tiny-t5", False), ("tiny-decoder", False), ("tiny-decoder", True)]
)
def test_packed_loss_equals_unpacked(name, prefix_lm):
    rng = np.random.default_rng(0)
    kind, cfg, module, init = models.build(name, prefix_lm=prefix_lm)
    params = init(jax.random.PRNGKey(1))
    exs = _random_examples(6, rng)
    li, lt = 24, 12
    (packed,) = fdata.pack_examples(exs, kind, rows=2, inputs_length=li, targets_length=lt)
    assert packed["decoder_segment_ids"].max() >= 2  # really packed
    (alone,) = fdata.pack_examples(
        exs, kind, rows=6, inputs_length=li, targets_length=lt, pack=False
    )
    got = _per_example_loss(module, params, packed, 6)
    want = _per_example_loss(module, params, alone, 6)
    np.testing.assert_allclose(got, want, rtol=2e-5)
    # control: if attention could cross examples the losses would differ
    leaky = dict(packed)
    for key in [k for k in packed if k.endswith("segment_ids")]:
        leaky[key] = (packed[key] > 0).astype(np.int32)
    assert not np.allclose(_per_example_loss(module, params, leaky, 6), want, rtol=1e-3)


def test_t5_cached_decode_matches_full_forward():
    kind, cfg, module, init = models.build("tiny-t5")
    params = init(jax.random.PRNGKey(2))
    rng = np.random.default_rng(1)
    enc = np.zeros((3, 10), np.int32)
    for i, n in enumerate((10, 6, 3)):
        enc[i, :n] = rng.integers(3, 200, n)
    out = greedy_encdec(module, params, enc, max_length=7, eos_id=-1)  # eos never: decode all 7
    dec_in = np.concatenate([np.zeros((3, 1), np.int32), out[:, :-1]], axis=1)
    batch = {
        "encoder_input_tokens": enc,
        "encoder_segment_ids": (enc > 0).astype(np.int32),
        "encoder_positions": np.broadcast_to(np.arange(10, dtype=np.int32), enc.shape),
        "decoder_input_tokens": dec_in,
        "decoder_segment_ids": np.ones_like(dec_in),
        "decoder_positions": np.broadcast_to(np.arange(7, dtype=np.int32), dec_in.shape),
    }
    full = np.asarray(module.apply({"params": params}, batch)).argmax(-1)
    assert np.array_equal(full, out)


@pytest.mark.parametrize("prefix_lm", [False, True])
def test_decoder_cached_decode_matches_full_forward(prefix_lm):
    kind, cfg, module, init = models.build("tiny-decoder", prefix_lm=prefix_lm)
    params = init(jax.random.PRNGKey(3))
    prompt = [5, 9, 40, 7]
    gen = greedy_decoder(module, params, prompt, max_new=6, eos_id=-1)
    seq = [1] + prompt + gen
    n = len(seq) - 1
    batch = {
        "decoder_input_tokens": np.array([seq[:-1]], np.int32),
        "decoder_segment_ids": np.ones((1, n), np.int32),
        "decoder_positions": np.arange(n)[None],
        "decoder_prefix_mask": np.array(
            [[1] * (len(prompt) + 1) + [0] * (n - len(prompt) - 1)], np.int32
        ),
    }
    full = np.asarray(module.apply({"params": params}, batch)).argmax(-1)[0]
    assert full[len(prompt) :].tolist() == gen


def test_load_hf_refuses_wrong_shape(tmp_path):
    cfg = t5mod.T5Config.preset("tiny-t5")
    params = jax.device_get(t5mod.init_params(t5mod.T5(cfg), jax.random.PRNGKey(0)))
    t5mod.save_hf(tmp_path / "m", cfg, params)
    bad = dataclasses.replace(cfg, d_ff=cfg.d_ff * 2)
    (tmp_path / "m" / "config.json").write_text(__import__("json").dumps(bad.to_hf()))
    with pytest.raises(ValueError, match=r"DenseReluDense\.wi_0\.weight has shape"):
        t5mod.load_hf(tmp_path / "m")


def test_hf_roundtrip_ours(tmp_path):
    cfg = t5mod.T5Config.preset("tiny-t5")
    params = jax.device_get(t5mod.init_params(t5mod.T5(cfg), jax.random.PRNGKey(0)))
    t5mod.save_hf(tmp_path / "m", cfg, params)
    cfg2, params2 = t5mod.load_hf(tmp_path / "m")
    assert cfg2 == cfg
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(params2)):
        np.testing.assert_array_equal(a, b)


def _hf_or_skip():
    try:
        import torch
        import transformers
    except ImportError as exc:  # the parity test needs the PyTorch reference
        pytest.skip(
            f"torch/transformers not importable ({exc}); install torch==2.13.0 transformers"
        )
    return torch, transformers


@pytest.mark.parametrize("untied_head", [False, True])
def test_logits_match_transformers_t5(tmp_path, untied_head):
    torch, transformers = _hf_or_skip()
    torch.manual_seed(0)
    hf_cfg = transformers.T5Config(
        vocab_size=131,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=3,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=20,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        dropout_rate=0.0,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    ref_model = transformers.T5ForConditionalGeneration(hf_cfg).eval()
    if untied_head:  # a distinct lm_head, as in Flan-T5 checkpoints
        with torch.no_grad():
            ref_model.lm_head.weight = torch.nn.Parameter(torch.randn(131, 32) * 0.1)
    ref_model.save_pretrained(tmp_path / "hf", safe_serialization=True)
    cfg, params = t5mod.load_hf(tmp_path / "hf")
    ref_model = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path / "hf").eval()

    rng = np.random.default_rng(0)
    enc = rng.integers(2, 131, (2, 40))  # longer than max_distance: exercises the log buckets
    dec = rng.integers(2, 131, (2, 33))
    with torch.no_grad():
        want = ref_model(
            input_ids=torch.tensor(enc), decoder_input_ids=torch.tensor(dec)
        ).logits.numpy()
    batch = {
        "encoder_input_tokens": enc.astype(np.int32),
        "encoder_segment_ids": np.ones(enc.shape, np.int32),
        "encoder_positions": np.broadcast_to(np.arange(40, dtype=np.int32), enc.shape),
        "decoder_input_tokens": dec.astype(np.int32),
        "decoder_segment_ids": np.ones(dec.shape, np.int32),
        "decoder_positions": np.broadcast_to(np.arange(33, dtype=np.int32), dec.shape),
    }
    got = np.asarray(t5mod.T5(cfg).apply({"params": params}, batch))
    rel = np.abs(got - want).max() / np.abs(want).max()
    assert rel < 1e-4, rel

    # and back: our export loads in transformers and gives the same logits
    t5mod.save_hf(tmp_path / "ours", cfg, params)
    back = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path / "ours").eval()
    with torch.no_grad():
        again = back(
            input_ids=torch.tensor(enc), decoder_input_ids=torch.tensor(dec)
        ).logits.numpy()
    assert np.abs(again - want).max() / np.abs(want).max() < 1e-5


# ----------------------------------------------------------------------------- Llama-style decoder


def _decoder_batch(tokens):
    b, n = tokens.shape
    return {
        "decoder_input_tokens": tokens.astype(np.int32),
        "decoder_segment_ids": np.ones((b, n), np.int32),
        "decoder_positions": np.broadcast_to(np.arange(n, dtype=np.int32), (b, n)),
    }


@pytest.mark.parametrize("tied, kv_heads", [(False, 2), (True, 4)])
def test_logits_match_transformers_llama(tmp_path, tied, kv_heads):
    torch, transformers = _hf_or_skip()
    from finetune.models import decoder as decmod

    torch.manual_seed(0)
    hf_cfg = transformers.LlamaConfig(
        vocab_size=131,
        hidden_size=32,
        intermediate_size=80,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=kv_heads,  # 2: grouped-query attention
        rms_norm_eps=1e-5,
        rope_theta=500.0,
        tie_word_embeddings=tied,
        max_position_embeddings=128,
        attention_bias=False,
    )
    ref = transformers.LlamaForCausalLM(hf_cfg).eval()
    with torch.no_grad():  # non-trivial norm weights, so a mis-mapped norm shows
        for name, p in ref.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
    ref.save_pretrained(tmp_path / "hf", safe_serialization=True)
    kind, cfg, module, _ = models.build("tiny-decoder", cfg=models.load_hf(tmp_path / "hf")[0])
    cfg2, params = models.load_hf(tmp_path / "hf")
    assert kind == "decoder" and cfg2.kv_heads == kv_heads and cfg2.tie_word_embeddings == tied
    assert cfg2.rope_theta == 500.0 and cfg2.layer_norm_epsilon == 1e-5

    tokens = np.random.default_rng(0).integers(2, 131, (2, 37))
    with torch.no_grad():
        want = ref(input_ids=torch.tensor(tokens)).logits.numpy()
    got = np.asarray(decmod.DecoderLM(cfg2).apply({"params": params}, _decoder_batch(tokens)))
    assert np.abs(got - want).max() / np.abs(want).max() < 1e-4

    # and back: our export loads in transformers and gives the same logits
    decmod.save_hf(tmp_path / "ours", cfg2, params)
    back = transformers.LlamaForCausalLM.from_pretrained(tmp_path / "ours").eval()
    with torch.no_grad():
        again = back(input_ids=torch.tensor(tokens)).logits.numpy()
    assert np.abs(again - want).max() / np.abs(want).max() < 1e-5
    # a packed pair of segments gives each the logits it has alone (positions restart)
    packed = _decoder_batch(np.concatenate([tokens[0, :20], tokens[1, :17]])[None])
    packed["decoder_segment_ids"] = np.array([[1] * 20 + [2] * 17], np.int32)
    packed["decoder_positions"] = np.array([list(range(20)) + list(range(17))], np.int32)
    both = np.asarray(decmod.DecoderLM(cfg2).apply({"params": params}, packed))[0]
    with torch.no_grad():
        alone = ref(input_ids=torch.tensor(tokens[1:, :17])).logits.numpy()[0]
    np.testing.assert_allclose(both[20:], alone, rtol=1e-4, atol=1e-4 * np.abs(alone).max())


def test_decoder_hf_roundtrip_and_refusals(tmp_path):
    import json

    from finetune.models import decoder as decmod

    cfg = decmod.DecoderConfig.preset("tiny-decoder", num_kv_heads=2)
    params = jax.device_get(decmod.init_params(decmod.DecoderLM(cfg), jax.random.PRNGKey(0)))
    decmod.save_hf(tmp_path / "m", cfg, params)
    cfg2, params2 = models.load_hf(tmp_path / "m")
    assert cfg2 == cfg
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(params2)):
        np.testing.assert_array_equal(a, b)
    conf = json.loads((tmp_path / "m" / "config.json").read_text())
    conf["intermediate_size"] *= 2
    (tmp_path / "m" / "config.json").write_text(json.dumps(conf))
    with pytest.raises(ValueError, match=r"mlp\.gate_proj\.weight has shape"):
        models.load_hf(tmp_path / "m")
    conf["rope_parameters"] = {"rope_type": "llama3", "rope_theta": 1.0}
    with pytest.raises(ValueError, match="RoPE scaling 'llama3'"):
        decmod.from_hf_config(conf)
    with pytest.raises(ValueError, match="model_type 'gpt2'"):
        decmod.from_hf_config({"model_type": "gpt2"})


def test_gqa_cached_decode_matches_full_forward():
    kind, cfg, module, init = models.build("tiny-decoder")
    from finetune.models import decoder as decmod

    cfg = dataclasses.replace(cfg, num_kv_heads=2)
    module = decmod.DecoderLM(cfg)
    params = decmod.init_params(module, jax.random.PRNGKey(3))
    prompt = [5, 9, 33, 7]
    out = greedy_decoder(module, params, prompt, 6, eos_id=1)
    seq = [1] + prompt
    for tok in out[:-1]:
        seq.append(tok)
    logits = np.asarray(module.apply({"params": params}, _decoder_batch(np.array([seq]))))
    assert list(np.argmax(logits[0, len(prompt) :], axis=-1)) == out[: len(seq) - len(prompt)]
