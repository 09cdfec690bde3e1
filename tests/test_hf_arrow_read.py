"""Local ``save_to_disk`` copies are read as Arrow slices: the same records as ``datasets`` gives."""

from __future__ import annotations

import pytest

datasets = pytest.importorskip("datasets")

from flan_data.sources import hf  # noqa: E402
from flan_data.sources.hf import HFSource  # noqa: E402
from flan_data.specs import SourceSpec  # noqa: E402


def _save(tmp_path, n=2500):
    feats = datasets.Features({
        "premise": datasets.Value("string"),
        "label": datasets.ClassLabel(names=["e", "n", "c"]),
        "score": datasets.Value("float32"),
        "ok": datasets.Value("bool"),
        "answers": datasets.Sequence({"text": datasets.Value("string"), "start": datasets.Value("int32")}),
        "tr": datasets.Translation(languages=["de", "en"]),
        "turns": datasets.Sequence(datasets.Value("string")),
    })  # fmt: skip
    rows = {
        "premise": [f"p {i}" for i in range(n)],
        "label": [i % 3 - (i == 7) for i in range(n)],  # -1 once, as in SNLI
        "score": [i / 3 for i in range(n)],
        "ok": [i % 2 == 0 for i in range(n)],
        "answers": [{"text": ["a"] * (i % 3), "start": list(range(i % 3))} for i in range(n)],
        "tr": [{"de": f"d{i}", "en": f"e{i}"} for i in range(n)],
        "turns": [[f"t{j}" for j in range(i % 4)] for i in range(n)],
    }
    ds = datasets.Dataset.from_dict(rows, features=feats)
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "d"))
    return tmp_path / "d"


def test_arrow_reads_equal_datasets_rows(tmp_path, monkeypatch):
    d = _save(tmp_path)
    monkeypatch.setattr(hf, "ARROW_BATCH", 100)  # several slices, a partial last one
    src = HFSource(SourceSpec(kind="hf", path="x/y", splits={"train": "train[:-200]"}), base_dir=d)
    want = [dict(r) for r in datasets.load_from_disk(str(d))["train"]]
    assert hf._plain_arrow(datasets.load_from_disk(str(d))["train"])
    got = [r for _, r in src.read("train")]
    assert got == want[:-200]
    assert [type(v) for v in got[5].values()] == [type(v) for v in want[5].values()]
    part = list(src.read_range("train", 1234, 1999))
    assert [r for _, r in part] == want[1234:1999]
    assert [e for e, _ in part] == [f"train-{i}" for i in range(1234, 1999)]


def test_formatted_or_reindexed_datasets_are_not_read_as_arrow(tmp_path):
    ds = datasets.load_from_disk(str(_save(tmp_path, 50)))["train"]
    assert hf._plain_arrow(ds)
    assert not hf._plain_arrow(ds.select([3, 1, 2]))  # an indices mapping
    assert not hf._plain_arrow(ds.with_format("numpy"))
    assert not hf._plain_arrow(ds.with_format(None, columns=["premise"]))  # a column subset
    img = datasets.Dataset.from_dict(
        {"i": [None]}, features=datasets.Features({"i": datasets.Image()})
    )
    assert not hf._plain_arrow(img)  # images decode


def test_loaded_copies_are_bounded_least_recently_used_first(tmp_path, monkeypatch):
    monkeypatch.setattr(hf, "_LOADED", {})
    monkeypatch.setattr(hf, "LOADED_MAX", 3)
    dirs = []
    for i in range(5):
        d = tmp_path / f"d{i}"
        datasets.Dataset.from_dict({"x": [i]}).save_to_disk(str(d))
        dirs.append(d)

    def load(d):
        return HFSource(SourceSpec(kind="hf", path="x/y"), base_dir=d)._load_local()

    first = load(dirs[0])
    for d in dirs[1:3]:
        load(d)
    assert load(dirs[0]) is first  # a hit: no second load, and now the most recent
    for d in dirs[3:]:
        load(d)
    assert len(hf._LOADED) == 3
    assert load(dirs[0]) is first  # kept: used more recently than d1, d2
    assert [next(iter(k[0][1]))[0] for k in hf._LOADED][-1].startswith(str(dirs[0]))


def test_loaded_copies_are_bounded_by_the_bytes_they_map(tmp_path, monkeypatch):
    # mapped pages a read touched count in the worker's RSS: a few big copies
    # are kept at most, whatever LOADED_MAX allows
    monkeypatch.setattr(hf, "_LOADED", {})
    dirs = []
    for i in range(4):
        d = tmp_path / f"d{i}"
        datasets.Dataset.from_dict({"x": [f"{i}-{j}" * 50 for j in range(2000)]}).save_to_disk(
            str(d)
        )
        dirs.append(d)
    size = hf._mapped_bytes((hf._stamp(dirs[0]), ()))
    assert size > 100_000
    monkeypatch.setattr(hf, "LOADED_BYTES", int(2.5 * size))

    def load(d):
        return HFSource(SourceSpec(kind="hf", path="x/y"), base_dir=d)._load_local()

    for d in dirs:
        load(d)
        assert sum(map(hf._mapped_bytes, hf._LOADED)) <= hf.LOADED_BYTES
    assert len(hf._LOADED) == 2 < hf.LOADED_MAX  # the two loaded last
    assert [next(iter(k[0][1]))[0] for k in hf._LOADED][-1].startswith(str(dirs[3]))
    monkeypatch.setattr(hf, "LOADED_BYTES", 1)
    load(dirs[0])
    assert len(hf._LOADED) == 1  # the last one is kept whatever its size
