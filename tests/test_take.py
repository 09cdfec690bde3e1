"""``Source.take``: the few-shot pool's sampled records read by index from Arrow
record batches, only those records converted to Python (issue 9: the pool read
used to turn ~the whole split into dicts to keep 512). Counts work, not time."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from toy import toy_rows, write_toy_catalog, write_toy_source

from flan_data import Catalog, open_source
from flan_data.export import export_mixture, jobs
from flan_data.sources.base import Source
from flan_data.specs import SourceSpec

N = 300


def _write(kind: str, d: Path, n: int = N) -> Path:
    return write_toy_source(kind, d, n, group=37 if kind == "parquet" else 23)


@pytest.mark.parametrize("kind", ["parquet", "arrow", "hf"])
@pytest.mark.parametrize("id_field", [None, "uid"])
@pytest.mark.parametrize("holdout", [0, 40])
def test_take_gives_the_records_read_range_gives(tmp_path, monkeypatch, kind, id_field, holdout):
    monkeypatch.setattr(Source, "TAKE_GAP", 16)  # several ranges over this small split
    src = open_source(SourceSpec(kind=kind, path=str(_write(kind, tmp_path / "d")),
                                 id_field=id_field, validation_size=holdout))  # fmt: skip
    for split in ("train", "validation") if holdout else ("train",):
        full = list(src.read(split))
        n = len(full)
        for want in ([0], [n - 1], [5, 3, 5, 100 % n, 101 % n, n - 1], list(range(0, n, 7)), list(range(n))):  # fmt: skip
            stats: dict[str, int] = {}
            got = list(src.take(split, want, stats))
            assert got == [(i, *full[i]) for i in sorted(set(want))], (split, want)
            assert stats["converted"] == len(set(want))
            assert stats["read"] >= len(set(want))
        assert list(src.take(split, [])) == []


def test_take_is_none_where_there_are_no_batches(tmp_path):
    src = open_source(SourceSpec(kind="jsonl", path=str(_write("jsonl", tmp_path / "d"))))
    assert src.take("train", [1, 2]) is None


def _catalog(root: Path, n: int) -> Catalog:
    _write("parquet", root / "data", n)
    return Catalog.load(write_toy_catalog(root, {"mix": ["zs_opt", "fs_opt", "fs_noopt"]}))


def test_export_pool_by_take_is_the_same_and_converts_only_the_pool(tmp_path, monkeypatch):
    cat = _catalog(tmp_path / "c", 2000)
    monkeypatch.setattr(jobs, "POOL_SIZE", 30)
    converted = []
    orig = Source.take

    def spy(self, split, indices, stats=None):
        st: dict[str, int] = {}
        it = orig(self, split, indices, st)
        if it is None:
            return None

        def run():
            yield from it
            converted.append(st.get("converted", 0))

        return run()

    outs = []
    for use_take in (True, False):
        jobs._POOLS.clear()
        if use_take:
            monkeypatch.setattr(Source, "take", spy)
        else:
            monkeypatch.setattr(Source, "take", lambda *a, **k: None)
        out = tmp_path / f"o{use_take}"
        export_mixture(cat, "mix", out, total=900, seed=3, progress=False, log=lambda s: None)
        outs.append({p.name: p.read_bytes() for p in sorted((out / "data").iterdir())})
    assert outs[0] == outs[1]  # the same exemplars, the same bytes
    assert converted and all(c == 30 for c in converted)  # only the sampled records


def test_two_catalogs_in_one_process_never_share_a_pool(tmp_path, monkeypatch):
    """Same task name, seed and size in two catalogs: each export builds its own
    pool (it used to reuse the first catalog's, so the second export depended on
    what ran before it in the process). Pools are kept across exports here (as
    in a worker that ran jobs but assembled nothing), so b's jobs see a's pool."""
    monkeypatch.setattr(jobs, "drop_job_caches", lambda: None)
    a = _catalog(tmp_path / "a", 400)
    b = _catalog(tmp_path / "b", 400)
    # catalog b's records differ from a's: the exemplars' texts must come from b
    pq.write_table(pa.Table.from_pylist([{**r, "text": "B " + r["text"]} for r in toy_rows(400)]),
                   tmp_path / "b" / "data" / "train.parquet", row_group_size=37)  # fmt: skip
    kw = dict(total=300, seed=5, progress=False, log=lambda s: None)
    jobs._POOLS.clear()
    export_mixture(b, "mix", tmp_path / "fresh", **kw)
    jobs._POOLS.clear()
    export_mixture(a, "mix", tmp_path / "first", **kw)
    assert any(hit[2] is a.task("syn") for hit in jobs._POOLS.values())  # a's pool is kept
    export_mixture(b, "mix", tmp_path / "second", **kw)  # after a, in the same process
    fresh, second = (
        {p.name: p.read_bytes() for p in sorted((tmp_path / d / "data").iterdir())}
        for d in ("fresh", "second")
    )
    assert fresh == second
