"""The seqio bridge: an export read through seqio yields exactly the exported rows.

seqio pulls TensorFlow (the ``[seqio]`` extra). The seqio part runs in a child
process, so TensorFlow never loads into the test process beside torch and jax;
it is skipped with the reason where seqio is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pyarrow as pa
import pytest

from flan_data import Catalog, FlanDataError, MissingDependencyError
from flan_data.export import export_mixture
from flan_data.export.verify import iter_shards
from flan_data.views import OutputSpec

HAVE_SEQIO = importlib.util.find_spec("seqio") is not None
SKIP_REASON = (
    f"seqio (TensorFlow) is not installed for Python {sys.version_info.major}.{sys.version_info.minor}: "
    "pip install '.[seqio]' (where TensorFlow has no wheel for this Python, the bridge cannot run)"
)

CHILD = textwrap.dedent(
    """
    import json, sys
    import seqio
    from flan_data import Catalog
    from flan_data.seqio import register_export, register_mixture

    out, cache = sys.argv[1], sys.argv[2]
    vocab = seqio.ByteVocabulary()
    res = {}
    register_export("flan_test_export", out, vocab, extra_columns=("task", "example_id"))
    ds = seqio.get_mixture_or_task("flan_test_export").get_dataset(
        sequence_length=None, split="train", shuffle=False)
    res["task"] = [{
        "inputs": r["inputs_pretokenized"].decode(), "targets": r["targets_pretokenized"].decode(),
        "task": r["task"].decode(), "example_id": r["example_id"].decode(),
        "inputs_ids": vocab.decode(r["inputs"].tolist()), "targets_ids": vocab.decode(r["targets"].tolist()),
        "eos": int(r["targets"][-1]),
    } for r in ds.as_numpy_iterator()]
    mix = register_export("flan_test_mix", out, vocab, by_task=True)
    res["rates"] = {t.name: mix.get_rate(t) for t in mix.tasks}
    one = sorted(mix.tasks, key=lambda t: t.name)[0]
    ds = one.get_dataset(sequence_length=None, split="train", shuffle=False)
    res["first_task"] = [r["inputs_pretokenized"].decode() for r in ds.as_numpy_iterator()]
    register_mixture("flan_live", Catalog.load(), "demo", vocab, cache_dir=cache, total=30, seed=2)
    ds = seqio.get_mixture_or_task("flan_live").get_dataset(
        sequence_length=None, split="train", shuffle=False)
    res["live"] = [r["targets_pretokenized"].decode() for r in ds.as_numpy_iterator()]
    print(json.dumps(res))
    """
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("seqio") / "o"
    export_mixture(Catalog.load(), "demo", out, total=80, seed=9, shard_rows=30, progress=False,
                   log=lambda s: None, output=OutputSpec(file_format="parquet"))  # fmt: skip
    return out


@pytest.fixture(scope="module")
def through_seqio(exported, tmp_path_factory):
    """What seqio yields for the export, its by-task mixture and a live mixture
    (one child process: TensorFlow starts once)."""
    if not HAVE_SEQIO:
        if os.environ.get("FLAN_REQUIRE_SEQIO"):
            pytest.fail(
                "FLAN_REQUIRE_SEQIO is set but seqio is not installed (pip install '.[seqio]')"
            )
        pytest.skip(SKIP_REASON)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    cache = tmp_path_factory.mktemp("seqio-cache")
    r = subprocess.run([sys.executable, "-c", CHILD, str(exported), str(cache)], capture_output=True, text=True,
                       env=env, timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.splitlines()[-1])


@pytest.mark.seqio
def test_seqio_task_yields_exactly_the_exported_rows_in_order(exported, through_seqio):
    got = through_seqio["task"]
    ref = pa.concat_tables(list(iter_shards(exported))).to_pylist()
    assert len(got) == len(ref) == 80
    for g, r in zip(got, ref):
        assert (g["inputs"], g["targets"], g["task"], g["example_id"]) == (
            r["inputs"], r["targets"], r["task"], r["example_id"],
        )  # fmt: skip
        # the token ids are the user's vocabulary applied to the same text, EOS appended
        assert g["inputs_ids"] == r["inputs"] and g["targets_ids"] == r["targets"]
        assert g["eos"] == 1


@pytest.mark.seqio
def test_seqio_mixture_by_task_rates_are_the_exported_counts(exported, through_seqio):
    ref = pa.concat_tables(list(iter_shards(exported))).to_pylist()
    counts: dict[str, int] = {}
    for r in ref:
        counts[f"flan_test_mix.{r['task']}"] = counts.get(f"flan_test_mix.{r['task']}", 0) + 1
    assert through_seqio["rates"] == counts
    first = sorted(counts)[0].split(".", 1)[1]
    assert through_seqio["first_task"] == [r["inputs"] for r in ref if r["task"] == first]


@pytest.mark.seqio
def test_seqio_live_mixture_matches_a_plain_export(through_seqio, tmp_path):
    out = tmp_path / "plain"
    export_mixture(
        Catalog.load(), "demo", out, total=30, seed=2, progress=False, log=lambda s: None
    )
    ref = [r["targets"] for r in pa.concat_tables(list(iter_shards(out))).to_pylist()]
    assert through_seqio["live"] == ref


def test_bridge_imports_lazily_and_names_the_extra(monkeypatch, tmp_path):
    r = subprocess.run(
        [sys.executable, "-c", "import sys, flan_data.seqio; print('tensorflow' in sys.modules)"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr
    import flan_data.seqio as bridge

    monkeypatch.setitem(sys.modules, "seqio", None)  # as if not installed
    with pytest.raises(MissingDependencyError, match=r"seqio"):
        bridge.register_export("x", tmp_path, vocabulary=None)


def test_dataset_fn_refuses_unfinished_exports_and_unknown_columns(exported, tmp_path):
    from flan_data.seqio import export_dataset_fn

    with pytest.raises(FlanDataError, match="no manifest.json"):
        export_dataset_fn(tmp_path)
    with pytest.raises(FlanDataError, match="task_source"):
        export_dataset_fn(exported, ("inputs", "task_source"))
