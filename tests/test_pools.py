"""Few-shot pools represent the whole train split; rows without exemplars are dropped and counted."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from flan_data import Catalog
from flan_data.export import export_mixture
from flan_data.export import jobs as jobsmod
from flan_data.render import EMPTY_FEWSHOT, RenderConfig


def _sorted_catalog(tmp_path, h, n=600):
    # the train split sorted by label: a pool from its first rows would hold one class only
    recs = sorted(h.toy_records(n), key=lambda r: r["label"])
    root = h.write_catalog_dir(
        tmp_path / "c",
        samples={"toy": {"train": recs, "validation": recs[:3]}},
        mixtures={"m": {"source": "sample", "members": [{"task": "toy", "formats": ["fs_opt"]}]}},
    )
    return Catalog.load(root), recs


def _rows(out):
    rows = []
    for f in sorted((out / "data").glob("*.arrow")):
        with pa.memory_map(str(f)) as src:
            rows += pa.ipc.open_file(src).read_all().select(["exemplar_ids"]).to_pylist()
    return rows


def test_pool_is_a_seeded_sample_of_the_whole_split(tmp_path, h, monkeypatch):
    monkeypatch.setattr(jobsmod, "POOL_SIZE", 30)
    cat, recs = _sorted_catalog(tmp_path, h)
    label = {f"train-{i}": r["label"] for i, r in enumerate(recs)}
    m = export_mixture(cat, "m", tmp_path / "o", total=60, progress=False, log=lambda s: None)
    assert m["num_rows"] == 60
    used = {e for r in _rows(tmp_path / "o") for e in r["exemplar_ids"]}
    assert {label[e] for e in used} == {0, 1, 2}  # all three classes, though the file is sorted
    idx = sorted(int(e.split("-")[1]) for e in used)
    assert idx[-1] > 400  # drawn from the whole split, not its first rows
    # the same seed draws the same pool (every chunk job shares it)
    job = jobsmod.TaskJob.__new__(jobsmod.TaskJob)
    object.__setattr__(job, "pool_size", 30)
    object.__setattr__(job, "size", 600)
    object.__setattr__(job, "seed", 0)
    object.__setattr__(job, "task", "toy")
    assert (
        jobsmod._pool_indices(job) == jobsmod._pool_indices(job)
        and len(jobsmod._pool_indices(job)) == 30
    )


def test_fewshot_rows_without_exemplars_are_dropped_and_counted(tmp_path, h):
    cat, _ = _sorted_catalog(tmp_path, h, n=60)
    m = export_mixture(cat, "m", tmp_path / "o", total=40, progress=False, log=lambda s: None,
                       render_config=RenderConfig(budget=12))  # fmt: skip
    # a 12-word budget leaves no room for any exemplar: no row may claim to be few-shot
    assert m["skipped"]["toy"] == {EMPTY_FEWSHOT: 40}
    assert m["num_rows"] == 0 or all(r["exemplar_ids"] for r in _rows(tmp_path / "o"))
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["skipped"] == m["skipped"]


@pytest.mark.parametrize("budget", [60, 1920])
def test_fewshot_rows_keep_their_exemplars_when_they_fit(tmp_path, h, budget):
    cat, _ = _sorted_catalog(tmp_path, h, n=60)
    m = export_mixture(cat, "m", tmp_path / "o", total=20, progress=False, log=lambda s: None,
                       render_config=RenderConfig(budget=budget))  # fmt: skip
    assert m["num_rows"] == 20 and not m["skipped"]
    assert all(r["exemplar_ids"] for r in _rows(tmp_path / "o"))


# ----------------------------------------------------------------------------- --tokenizer


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory):
    spm = pytest.importorskip("sentencepiece")
    d = tmp_path_factory.mktemp("spm")
    text = d / "corpus.txt"
    text.write_text(
        "\n".join(f"Premise number {i} is here. Hypothesis {i}. yes maybe no" for i in range(300))
    )
    spm.SentencePieceTrainer.train(input=str(text), model_prefix=str(d / "tiny"), vocab_size=40,
                                   model_type="unigram", minloglevel=2)  # fmt: skip
    return d / "tiny.model"


@pytest.fixture(scope="module")
def tokenizer_json(tmp_path_factory):
    tk = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers

    vocab = {"[UNK]": 0, **{c: i + 1 for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")}}
    t = tk.Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    t.pre_tokenizer = pre_tokenizers.Split("", "isolated")  # one token per character
    p = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    t.save(str(p))
    return p


def test_load_tokenizer_counts_with_the_file_and_names_it(spm_model, tokenizer_json, tmp_path):
    import pickle

    from flan_data.errors import FlanDataError
    from flan_data.fewshot import WhitespaceTokenizer, load_tokenizer

    assert isinstance(load_tokenizer(None), WhitespaceTokenizer)
    sp = load_tokenizer(str(spm_model))
    assert sp.count("Premise number 7 is here.") > 5  # more pieces than whitespace words
    assert sp.name.startswith("sentencepiece:tiny.model@sha256:")
    js = load_tokenizer(str(tokenizer_json))
    assert js.count("abc") == 3 and js.name.startswith("hf-tokenizers:tokenizer.json@sha256:")
    again = pickle.loads(pickle.dumps(sp))  # worker processes get it by path
    assert again.count("Hypothesis 3.") == sp.count("Hypothesis 3.")
    with pytest.raises(FlanDataError, match="no such file"):
        load_tokenizer(str(tmp_path / "nope.model"))
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"not a model")
    with pytest.raises(FlanDataError, match="not a SentencePiece model"):
        load_tokenizer(str(bad))


def test_export_budget_counted_in_model_tokens_and_recorded(tmp_path, h, spm_model):
    from flan_data.fewshot import load_tokenizer

    cat, _ = _sorted_catalog(tmp_path, h, n=60)
    tok = load_tokenizer(str(spm_model))
    m = export_mixture(cat, "m", tmp_path / "o", total=20, progress=False, log=lambda s: None,
                       render_config=RenderConfig(budget=400, tokenizer=tok))  # fmt: skip
    assert m["render"]["tokenizer"] == tok.name
    rows = []
    for f in sorted((tmp_path / "o" / "data").glob("*.arrow")):
        with pa.memory_map(str(f)) as src:
            rows += pa.ipc.open_file(src).read_all().select(["inputs", "targets"]).to_pylist()
    assert rows and all(tok.count(r["inputs"]) + tok.count(r["targets"]) <= 400 for r in rows)
    # whitespace words would have allowed more: the model's tokens are what limited the prompt
    assert any(len(r["inputs"].split()) * 2 < tok.count(r["inputs"]) for r in rows)


def test_cli_tokenizer_option(h, spm_model, tmp_path):
    from click.testing import CliRunner

    from flan_data.cli import main

    r = CliRunner().invoke(
        main, ["render", "anli_r1", "--format", "fs_opt", "-n", "1", "--tokenizer", str(spm_model)]
    )
    assert r.exit_code == 0, r.output
    (tmp_path / "x.txt").write_text("words")
    r = CliRunner().invoke(
        main,
        [
            "render",
            "anli_r1",
            "--format",
            "fs_opt",
            "-n",
            "1",
            "--tokenizer",
            str(tmp_path / "x.txt"),
        ],
    )
    h.assert_cli_error(r, "expected a SentencePiece model")


def test_preview_pool_is_a_seeded_sample_of_the_whole_split(tmp_path, h):
    from flan_data.render import Renderer, build_pool

    cat, recs = _sorted_catalog(tmp_path, h, n=600)
    tr = Renderer(cat).task_renderer("toy")
    items = [(f"train-{i}", r) for i, r in enumerate(recs)]
    pool = build_pool(tr, items, limit=30, seed=0)
    assert len(pool) == 30 and pool == build_pool(tr, items, limit=30, seed=0)
    assert {
        tr.canonical(e.example_id, dict(items[int(e.example_id[6:])][1]))["answer"] for e in pool
    } == {"yes", "maybe", "no"}
    ids = [int(e.example_id[6:]) for e in pool]
    assert ids == sorted(ids) and ids[-1] > 400
    assert [e.example_id for e in build_pool(tr, items[:20], limit=30, seed=0)] == [
        i for i, _ in items[:20]
    ]
    assert build_pool(tr, items, limit=30, seed=1) != pool
