"""Export validation, tokenizers, truncation, first-fit packing and the resumable stream."""

import json

import numpy as np
import pytest

pytest.importorskip("jax")

from conftest import write_export  # noqa: E402

from finetune import data as fdata  # noqa: E402

pytestmark = pytest.mark.finetune


def test_open_export_reads_manifest(export_dir):
    export = fdata.open_export(export_dir)
    assert export.num_rows == 400 and len(export.shard_paths) == 2
    table = fdata.read_table(export)
    assert table.num_rows == 400 and table.column_names == list(fdata.REQUIRED_COLUMNS)


def test_refuses_without_completed(tmp_path):
    d = write_export(tmp_path / "e", rows=20, complete=False)
    with pytest.raises(fdata.DataError, match=r"COMPLETED is missing"):
        fdata.open_export(d)


def test_refuses_bad_shard_checksum(tmp_path):
    d = write_export(tmp_path / "e", rows=20)
    shard = d / "shard-00001-of-00002.arrow"
    raw = bytearray(shard.read_bytes())
    raw[-20] ^= 0xFF
    shard.write_bytes(bytes(raw))
    with pytest.raises(fdata.DataError, match=r"shard-00001-of-00002\.arrow has sha256"):
        fdata.open_export(d)


def test_refuses_edited_manifest(tmp_path):
    d = write_export(tmp_path / "e", rows=20)
    m = json.loads((d / "manifest.json").read_text())
    m["seed"] = 1
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(fdata.DataError, match=r"manifest changed after the export finished"):
        fdata.open_export(d)


def test_cli_reports_refusal(tmp_path, capsys):
    from finetune.cli import main

    d = write_export(tmp_path / "e", rows=20, complete=False)
    assert main(["--data", str(d), "--out", str(tmp_path / "run"), "--steps", "1"]) == 2
    assert "COMPLETED is missing" in capsys.readouterr().err


def test_byte_tokenizer_roundtrip():
    tok = fdata.ByteTokenizer()
    ids = tok.encode("héllo")
    assert min(ids) >= 3 and tok.decode(ids + [1, 99]) == "héllo"


def test_truncation_counted(export_dir):
    src = fdata.ExampleSource(fdata.open_export(export_dir), fdata.ByteTokenizer(), "encdec", 8, 4)
    exs = src.get(range(10))
    assert all(len(e.inputs) <= 8 and e.inputs[-1] == 1 and len(e.targets) <= 4 for e in exs)
    assert src.truncation.examples == 10 and src.truncation.inputs_truncated == 10


def test_eval_split_disjoint_and_stable(export_dir):
    export = fdata.open_export(export_dir)
    a = fdata.ExampleSource(export, fdata.ByteTokenizer(), "encdec", 32, 16, eval_fraction=0.1)
    b = fdata.ExampleSource(export, fdata.ByteTokenizer(), "encdec", 32, 16, eval_fraction=0.1)
    assert len(a.eval_indices) > 10
    assert not set(a.eval_indices) & set(a.train_indices)
    assert np.array_equal(a.eval_indices, b.eval_indices)


def _examples(lengths):
    return [
        fdata.Example(list(range(3, 3 + i)) + [1], list(range(10, 10 + t)) + [1], k)
        for k, (i, t) in enumerate(lengths)
    ]


def test_first_fit_packing_encdec():
    # (encoder, decoder) slots incl. eos: ex0 (6,3), ex1 (4,2), ex2 (10,6), ex3 (2,2); rows hold (12, 8)
    exs = _examples([(5, 2), (3, 1), (9, 5), (1, 1)])
    (batch,) = fdata.pack_examples(exs, "encdec", rows=2, inputs_length=12, targets_length=8)
    seg = batch["encoder_segment_ids"]
    # ex2 does not fit row 0 → row 1; ex3 fits back into row 0 (first fit, not next fit)
    assert seg[0].tolist() == [1] * 6 + [2] * 4 + [3] * 2
    assert seg[1].tolist() == [1] * 10 + [0] * 2
    assert batch["task_ids"][0].tolist() == [0] * 3 + [1] * 2 + [3] * 2 + [-1]
    assert batch["encoder_positions"][0].tolist() == list(range(6)) + list(range(4)) + [0, 1]
    # decoder input is the target shifted right, restarting at 0 in each segment
    assert batch["decoder_input_tokens"][0, :5].tolist() == [0, 10, 11, 0, 10]
    assert batch["decoder_target_tokens"][0, :5].tolist() == [10, 11, 1, 10, 1]
    assert batch["decoder_loss_weights"].sum() == 3 + 2 + 6 + 2
    # a fifth example that fits no row starts a second batch
    more = fdata.pack_examples(
        exs + _examples([(8, 1)]), "encdec", rows=2, inputs_length=12, targets_length=8
    )
    assert len(more) == 2 and more[1]["encoder_segment_ids"][0, :9].tolist() == [1] * 9
    # without packing every example takes its own row
    unpacked = fdata.pack_examples(
        exs, "encdec", rows=4, inputs_length=12, targets_length=8, pack=False
    )
    assert len(unpacked) == 1 and unpacked[0]["encoder_segment_ids"].max() == 1


def test_decoder_only_packing_loss_on_targets():
    exs = [fdata.Example([3, 4, 5], [7, 8, 1], 0)]
    (batch,) = fdata.pack_examples(exs, "decoder", rows=1, inputs_length=6, targets_length=4)
    assert batch["decoder_input_tokens"][0, :6].tolist() == [1, 3, 4, 5, 7, 8]
    assert batch["decoder_target_tokens"][0, :6].tolist() == [3, 4, 5, 7, 8, 1]
    assert batch["decoder_loss_weights"][0, :6].tolist() == [0, 0, 0, 1, 1, 1]
    assert batch["decoder_prefix_mask"][0, :6].tolist() == [1, 1, 1, 1, 0, 0]


def test_stream_resume_is_exact(export_dir):
    export = fdata.open_export(export_dir)
    src = fdata.ExampleSource(export, fdata.ByteTokenizer(), "encdec", 32, 16)
    a = fdata.PackedBatches(src, src.train_indices, rows=8, seed=3)
    for _ in range(5):
        next(a)
    state = a.state()
    expected = [next(a) for _ in range(20)]  # crosses an epoch boundary
    assert a.epoch >= 1
    b = fdata.PackedBatches(src, src.train_indices, rows=8, seed=3)
    b.restore(state)
    for want in expected:
        got = next(b)
        assert all(np.array_equal(got[k], want[k]) for k in want)
    c = fdata.PackedBatches(src, src.train_indices, rows=8, seed=4)
    c.restore(state)
    assert not np.array_equal(next(c)["encoder_input_tokens"], expected[0]["encoder_input_tokens"])


def test_epochs_limit_and_fill(export_dir):
    src = fdata.ExampleSource(
        fdata.open_export(export_dir), fdata.ByteTokenizer(), "encdec", 32, 16
    )
    it = fdata.PackedBatches(src, src.train_indices, rows=8, seed=0, epochs=1)
    n_examples = 0
    fills = []
    for _ in it:
        n_examples += it.last_examples
        fills.append(it.last_fill)
    assert n_examples == len(src.train_indices)
    assert np.mean(fills[:-1]) > 0.6  # packing puts several short examples in a row


def test_host_rows_blocks():
    batch = {"x": np.arange(24).reshape(2, 4, 3)}
    parts = [fdata.host_rows(batch, i, 2, axis=1)["x"] for i in range(2)]
    assert np.array_equal(np.concatenate(parts, axis=1), batch["x"])


def test_hf_tokenizer_json(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, "sort": 3, "abc": 4}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    loaded = fdata.load_tokenizer(str(tmp_path))
    assert (loaded.pad_id, loaded.eos_id, loaded.vocab_size) == (0, 1, 5)
    assert loaded.encode("sort abc zzz") == [3, 4, 2]
    assert loaded.decode([3, 4, 1, 3]) == "sort abc"


def test_unknown_tokenizer_path():
    with pytest.raises(fdata.DataError, match="no such file"):
        fdata.load_tokenizer("/nonexistent/spm.model")


# ----------------------------------------------------------------------------- lengths


def test_keep_side_and_cut():
    assert fdata.keep_side("auto", "fs_opt") == "keep_end"
    assert fdata.keep_side("auto", "zs_opt") == "keep_start"
    assert fdata.keep_side("auto", None) == "keep_start"
    assert fdata.keep_side("keep_start", "fs_noopt") == "keep_start"
    assert fdata._cut([1, 2, 3, 4], 2, "keep_end") == [3, 4]
    assert fdata._cut([1, 2, 3, 4], 2, "keep_start") == [1, 2]


def test_percentiles_and_auto_length():
    lengths = list(range(1, 101))
    p = fdata.percentiles(lengths)
    assert (p["p50"], p["p90"], p["p95"], p["p99"], p["max"]) == (50, 90, 95, 99, 100)
    assert fdata.auto_length(lengths, cap=1024) == 96
    assert fdata.auto_length(lengths, cap=64) == 64
    assert fdata.auto_length([3], cap=64) == 16


def test_fewshot_rows_keep_their_query(tmp_path):
    export = fdata.open_export(write_export(tmp_path / "e", rows=40, fewshot=True))
    tok = fdata.ByteTokenizer()
    src = fdata.ExampleSource(export, tok, "encdec", 24, 16, table=None)
    table = src.table
    assert "format" in table.column_names
    fmts = table.column("format").to_pylist()
    inputs = table.column("inputs").to_pylist()
    exs = src.get(range(40))
    for ex, fmt, text in zip(exs, fmts, inputs):
        body = tok.decode(ex.inputs)
        want = text.encode()[-23:] if fmt.startswith("fs") else text.encode()[:23]
        assert body.encode() == want, (fmt, text)
    assert "fs_noopt" in fmts and "zs_noopt" in fmts
    keep_start = fdata.ExampleSource(export, tok, "encdec", 24, 16, truncate="keep_start")
    fs = fmts.index("fs_noopt")
    assert tok.decode(keep_start.get([fs])[0].inputs) == inputs[fs][:23]


def test_measure_counts_tokens_before_truncation(export_dir):
    src = fdata.ExampleSource(fdata.open_export(export_dir), fdata.ByteTokenizer(), "encdec", 8, 4)
    li, lt = src.measure(range(4))
    raw = [src.raw(i) for i in range(4)]
    assert li.tolist() == [len(r["inputs"].encode()) + 1 for r in raw]
    assert lt.tolist() == [len(r["targets"].encode()) + 1 for r in raw]


# ----------------------------------------------------------------------------- tokenizer


def test_train_tokenizer_deterministic_and_reused(export_dir, tmp_path):
    pytest.importorskip("sentencepiece")
    src = fdata.ExampleSource(fdata.open_export(export_dir), fdata.ByteTokenizer(), "encdec", 8, 4)
    a = fdata.train_tokenizer(src.table, src.train_indices, 320, 0, tmp_path / "a")
    b = fdata.train_tokenizer(src.table, src.train_indices, 320, 0, tmp_path / "b")
    assert (tmp_path / "a" / "spm.model").read_bytes() == (
        tmp_path / "b" / "spm.model"
    ).read_bytes()
    assert (a.pad_id, a.eos_id, a.unk_id) == (0, 1, 2) and a.name == "train:320"
    text = src.raw(0)["inputs"] + "  Ünïcode ✓\n"
    assert a.decode(a.encode(text)) == text  # byte fallback, no normalisation
    assert len(a.encode(src.raw(0)["inputs"])) < len(src.raw(0)["inputs"])  # real subwords
    # reused as is (a resumed run keeps its vocabulary) ...
    before = (tmp_path / "a" / "spm.model").stat().st_mtime_ns
    again = fdata.train_tokenizer(src.table, src.train_indices, 320, 0, tmp_path / "a")
    assert (tmp_path / "a" / "spm.model").stat().st_mtime_ns == before
    assert again.encode(text) == a.encode(text) == b.encode(text)
    # ... and refused when the run asks for another one
    with pytest.raises(fdata.DataError, match="use a fresh --out"):
        fdata.train_tokenizer(src.table, src.train_indices, 400, 0, tmp_path / "a")


# ----------------------------------------------------------------------------- chat


def _chat_source(export_dir, template="default", length=(64, 32), messages_dir=None):
    export = fdata.open_export(messages_dir or export_dir)
    return fdata.ExampleSource(
        export,
        fdata.ByteTokenizer(),
        "decoder",
        *length,
        chat_template=fdata.load_chat_template(template),
    )


def test_chat_template_marks_only_assistant_tokens(tmp_path):
    d = write_export(tmp_path / "m", rows=8, messages=True)
    src = _chat_source(None, messages_dir=d)
    assert src.has_messages
    tok = src.tokenizer
    msgs = src.table.column("messages").to_pylist()[0]
    ex = src.get([0])[0]
    prompt, answer = tok.decode(ex.inputs), tok.decode(ex.targets)
    want_prompt = src.chat.render(msgs[:2], add_generation_prompt=True)
    assert prompt == want_prompt and prompt.startswith("<|system|>\nAnswer briefly.\n<|user|>\n")
    # the answer, eos, and the newline the template writes after it: all assistant tokens
    assert answer == msgs[2]["content"] and ex.weights is None
    assert ex.targets[-2:] == [tok.eos_id] + tok.encode("\n")
    (batch,) = fdata.pack_examples([ex], "decoder", rows=1, inputs_length=64, targets_length=32)
    w = batch["decoder_loss_weights"][0]
    assert batch["decoder_target_tokens"][0][w > 0].tolist() == ex.targets
    assert w.sum() == len(ex.targets) and (w[: len(ex.inputs)] == 0).all()


def test_multiturn_weights_follow_the_assistant_turns(export_dir):
    src = _chat_source(export_dir, length=(96, 64))
    msgs = [
        {"role": "user", "content": "one?"},
        {"role": "assistant", "content": "1"},
        {"role": "user", "content": "two?"},
        {"role": "assistant", "content": "2"},
    ]
    pieces = src.chat_pieces(msgs)
    assert [k for _, k in pieces].count("assistant") == 2
    ex, _, _ = src._decoder_example(pieces, 0, "keep_start")
    tok = src.tokenizer
    loss_text = [t for t, w in zip(ex.targets, ex.weights) if w]
    # the answers plus eos and the newline the template writes after eos
    assert loss_text == tok.encode("1") + [1] + tok.encode("\n") + tok.encode("2") + [
        1
    ] + tok.encode("\n")
    no_loss = tok.decode([t for t, w in zip(ex.targets, ex.weights) if not w])
    assert no_loss == "<|user|>\ntwo?\n<|assistant|>\n"


def test_hf_tokenizer_config_template(tmp_path):
    conf = {
        "chat_template": "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}"
        "[INST] {{ m['content'] }} [/INST]{% else %} {{ m['content'] }}{{ eos_token }}{% endif %}"
        "{% endfor %}",
        "bos_token": {"content": "<s>"},
        "eos_token": "</s>",
    }
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(conf))
    tmpl = fdata.load_chat_template(str(tmp_path))
    assert tmpl.eos_token == "</s>" and tmpl.bos_token == "<s>"
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    assert tmpl.render(msgs) == "<s>[INST] hi [/INST] yo</s>"
    d = write_export(tmp_path / "e", rows=4)
    src = fdata.ExampleSource(
        fdata.open_export(d), fdata.ByteTokenizer(), "decoder", 64, 16, chat_template=tmpl
    )
    ex = src.get([0])[0]
    assert src.tokenizer.decode(ex.targets) == " " + src.raw(0)["targets"]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "tokenizer_config.json").write_text("{}")
    with pytest.raises(fdata.DataError, match="no 'chat_template'"):
        fdata.load_chat_template(str(bad))


def test_chat_truncation_cuts_user_text_not_answers(export_dir):
    src = _chat_source(export_dir, length=(30, 8))  # markup 24 + answer 4 leave 10 for the user
    long = "x" * 30 + "QUERY"
    pieces = src.chat_pieces(
        [{"role": "user", "content": long}, {"role": "assistant", "content": "ok"}]
    )
    ex, cut_in, cut_tgt = src._decoder_example(pieces, 0, "keep_end")
    tok = src.tokenizer
    assert cut_in and not cut_tgt and len(ex.inputs) + len(ex.targets) == 38
    assert tok.decode(ex.targets) == "ok"
    assert tok.decode(ex.inputs) == "<|user|>\nxxxxxQUERY\n<|assistant|>\n"
    ex2, _, _ = src._decoder_example(pieces, 0, "keep_start")
    assert tok.decode(ex2.inputs) == "<|user|>\n" + "x" * 10 + "\n<|assistant|>\n"
