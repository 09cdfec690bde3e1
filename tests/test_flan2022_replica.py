"""bench/flan2022_replica.py: every Flan 2021 and dialog task gets a schema-faithful source.

The replica is what the full-size flan2022 benchmark exports; these tests check
(by reading, never by timing) that each task's generated source is found
through ``--source-dir`` exactly as the export finds it, holds the columns the
catalog's field expressions, options and record rules read, renders in every
format without a bad record, and carries the rows the record rules drop.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("datasets")

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import flan2022_replica as replica  # noqa: E402
import replica_sources  # noqa: E402

from flan_data import Catalog  # noqa: E402
from flan_data.export import export_mixture  # noqa: E402
from flan_data.render import Renderer  # noqa: E402
from flan_data.sources import open_task_source  # noqa: E402
from flan_data.specs import MixtureMember, MixtureSpec  # noqa: E402

COLLECTIONS = ("flan2021", "dialog")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    replica_sources.STREAM_WORDS = 20_000  # a short word stream: same schema, faster start
    cat = Catalog.load()
    tasks = [t for c in COLLECTIONS for t in cat.tasks_in(c)]
    need = {t.name: 30 for t in tasks}
    need["gigaword"] = need["qrecc"] = 200
    root = tmp_path_factory.mktemp("replica")
    logged: list[str] = []
    args, made = replica.build(cat, need, root, log=logged.append)
    it = iter(args)
    dirs = dict(v.split("=", 1) for flag in it for v in [next(it)])
    return cat, tasks, dirs, made, logged


def test_every_task_has_a_source(built):
    cat, tasks, dirs, made, logged = built
    assert logged == []  # nothing "NOT GENERATED"
    assert sorted(made) == sorted(t.name for t in tasks)
    for t in tasks:
        assert t.name in dirs or t.collection in dirs, t.name


def test_sources_read_and_render_in_every_format(built):
    cat, tasks, dirs, _made, _ = built
    rend = Renderer(cat)
    for t in tasks:
        src = open_task_source(cat, t, "real", dirs)
        n = src.count("train")
        recs = list(src.read("train"))
        assert n == len(recs) >= 20, t.name
        tr = rend.task_renderer(t)
        canon = [tr.canonical(eid, rec, "train") for eid, rec in recs]  # raises on a bad record
        assert all(c.get("answer", c.get("summary", c.get("text", "x"))) for c in canon), t.name
        pool = [tr.exemplar(eid, rec) for eid, rec in recs[:8]]
        for fmt in tr.formats():
            if fmt == "cot":
                continue
            cols = tr.render_batch(recs, split="train", fmt=fmt, seed=3, pool=pool)
            assert len(cols["inputs"]) == len(recs) and all(cols["targets"]), (t.name, fmt)


def test_record_rules_drop_generated_rows(built):
    """The replica carries the rows the rules drop (Gigaword's UNK/#, qrecc's early turns)."""
    cat, _tasks, dirs, _made, _ = built
    for name in ("gigaword", "qrecc"):
        src = open_task_source(cat, cat.task(name), "real", dirs)
        kept = src.count("train")
        raw = sum(1 for _ in src._read_raw("train"))
        assert raw > kept >= 150, (name, raw, kept)
        assert src.rules.dropped.get("filter", 0) > 0


def test_flan2021_and_dialog_export_end_to_end(built, tmp_path):
    cat, tasks, dirs, _made, _ = built
    spec = MixtureSpec(
        name="replica_f21_dialog",
        members=tuple(
            MixtureMember(kind="collection", name=c, rate=0.5, cap=30) for c in COLLECTIONS
        ),
    )
    m = export_mixture(cat, spec, tmp_path / "out", total=2400, source="real",
                       source_dirs=dirs, progress=False, log=lambda s: None)  # fmt: skip
    skipped = {why for d in m["skipped"].values() for why in d}
    assert m["num_rows"] + sum(n for d in m["skipped"].values() for n in d.values()) == 2400
    assert skipped <= {
        "few-shot row without exemplars (none fit the token budget)"
    }  # long documents only
    assert m["plan"]["excluded"] == [] and not m.get("unavailable")
    assert len(m["counts"]) == len(tasks)  # every task draws rows (caps equalise them)
