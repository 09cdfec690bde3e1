"""Memory an export worker keeps between batches and jobs is bounded by bytes:
the few-shot exemplar caches (long documents composed under many few-shot
styles once held gigabytes), and memory freed by a job goes back to the OS.
Counted in bytes held and calls made, never timed; output is unchanged."""

from __future__ import annotations

import sys

import pytest
from test_fewshot_cache import _catalog

from flan_data import Renderer
from flan_data import render as rendermod
from flan_data.export import DEFAULT_SHARD_ROWS, export_mixture
from flan_data.export import jobs as jobsmod
from flan_data.render import RenderConfig


def _long_records(n: int) -> list[dict]:
    # premises from a few words to ~7,000 characters (a news article): entries over
    # the few-shot budget's bound and entries that fit, in every batch
    return [
        {
            "uid": f"r{i}",
            "premise": " ".join(f"w{i}x{j}" for j in range(3 + (i % 7) * 160)),
            "hypothesis": f"Hypothesis {i}.",
            "label": i % 3,
        }
        for i in range(n)
    ]


def _held(cache) -> int:
    """Bytes of the distinct strings a few-shot cache holds: rendered entries, their
    composed texts and forms, the column-wise segments."""
    seen: set[int] = set()
    total = 0

    def add(x) -> None:
        nonlocal total
        if type(x) is str:
            if id(x) not in seen:
                seen.add(id(x))
                total += sys.getsizeof(x)
        elif isinstance(x, tuple | list):
            for y in x:
                add(y)
        elif isinstance(x, dict):
            for y in x.values():
                add(y)

    for table in cache.tables.values():
        for e in table.values():
            if e is not None:
                add(e[1])
                add(e[2])
                add(e[4])
    add(cache.flist)
    return total


def _render(tr, items, pool, fmts=("fs_opt", "fs_noopt"), batch=80, after=None):
    out = []
    for fmt in fmts:
        for s in range(0, len(items), batch):
            cols = tr.render_batch(items[s : s + batch], split="train", fmt=fmt, seed=3, pool=pool)
            out.append(cols)
            if after is not None:
                after(cols)
    return out


@pytest.fixture
def fresh_live(monkeypatch):
    monkeypatch.setattr(rendermod, "_LIVE", [])


def test_fewshot_cache_is_bounded_by_bytes_with_the_same_rows(tmp_path, h, monkeypatch, fresh_live):
    cat, recs = _catalog(tmp_path, h, records=_long_records(240))
    items = [(r["uid"], r) for r in recs]
    outs, peaks, renders = [], [], []
    for bound in (10**12, 400_000):  # unbounded first: the reference rows and bytes
        monkeypatch.setattr(rendermod, "FS_CACHE_BYTES", bound)
        monkeypatch.setattr(rendermod, "FS_LIVE_BYTES", 10**12)
        tr = Renderer(cat).task_renderer("toy")
        pool = [tr.exemplar(r["uid"], r) for r in recs[:80]]
        peak = [0]

        def after(cols, tr=tr, peak=peak, bound=bound):
            c = tr.__dict__["_fs_cache"]
            held = _held(c)
            assert held <= c.n_bytes  # what is held is counted
            # checked at each batch's start: a batch adds at most a few copies of its rows
            grown = 5 * sum(sys.getsizeof(x) for x in cols["inputs"])
            assert held <= bound + grown
            peak[0] = max(peak[0], held)

        outs.append(_render(tr, items, pool, after=after))
        peaks.append(peak[0])
        renders.append(tr.__dict__["_fs_cache"].renders)
    assert outs[0] == outs[1]  # same rows, byte for byte
    assert peaks[0] > 4 * 400_000  # the test has teeth: unbounded, the cache grows past it
    assert peaks[1] < peaks[0] / 2
    assert renders[1] > renders[0]  # emptied and rendered again when needed


def test_column_forms_are_kept_only_for_exemplars_that_can_fit(
    tmp_path, h, monkeypatch, fresh_live
):
    # an exemplar whose length bound alone is over the budget never makes a row
    # column-wise: no composed form per few-shot style is kept for it
    cat, recs = _catalog(tmp_path, h, records=_long_records(160))
    items = [(r["uid"], r) for r in recs]
    cfg = RenderConfig(budget=400)
    outs = []
    for columns in (True, False):
        monkeypatch.setattr(rendermod, "FEWSHOT_COLUMNS", columns)
        tr = Renderer(cat, cfg).task_renderer("toy")
        pool = [tr.exemplar(r["uid"], r) for r in recs[:60]]
        outs.append(_render(tr, items, pool))
        cache = tr.__dict__["_fs_cache"]
        if columns:
            lens = [sum(len(s) for s in f if type(s) is str) for f in cache.flist]
            assert lens  # the short exemplars go column-wise
            assert max(lens) <= 2 * cfg.budget + 64
            longest = max(len(e[1]) for t in cache.tables.values() for e in t.values() if e)
            assert longest > 4 * cfg.budget  # long ones were used, per row
    assert outs[0] == outs[1]


def test_all_kept_caches_together_are_bounded_by_bytes(tmp_path, h, monkeypatch, fresh_live):
    monkeypatch.setattr(rendermod, "FS_CACHE_BYTES", 10**12)
    monkeypatch.setattr(rendermod, "FS_LIVE_BYTES", 600_000)
    cat, recs = _catalog(tmp_path, h, records=_long_records(120))
    items = [(r["uid"], r) for r in recs]
    trs = [Renderer(cat).task_renderer("toy") for _ in range(4)]
    firsts = []
    for tr in trs:
        pool = [tr.exemplar(r["uid"], r) for r in recs[:60]]
        firsts.append(_render(tr, items, pool, fmts=("fs_noopt",), batch=120))
        live = rendermod._LIVE
        assert live[-1] is tr.__dict__["_fs_cache"]
        # the others kept hold at most the bound; emptied ones left the list
        assert sum(c.n_bytes for c in live[:-1]) <= 600_000
        assert all(c.n_bytes > 0 for c in live)
    one = trs[-1].__dict__["_fs_cache"].n_bytes
    assert one > 600_000  # one task's cache alone is over the bound for all...
    assert [tr.__dict__["_fs_cache"].entries() for tr in trs[:3]] == [
        0,
        0,
        0,
    ]  # ...so the others were emptied
    # an emptied cache renders again, with the same bytes
    pool = [trs[0].exemplar(r["uid"], r) for r in recs[:60]]
    assert _render(trs[0], items, pool, fmts=("fs_noopt",), batch=120) == firsts[0]


def test_freed_memory_is_given_back_over_the_level_only(tmp_path, h, monkeypatch):
    cat, _ = _catalog(tmp_path, h, n=400)
    monkeypatch.setattr(jobsmod, "CHUNK_ROWS", 50)
    jobs = []
    real = jobsmod._run_job

    def counting(job, *a, **kw):
        jobs.append(job.index)
        return real(job, *a, **kw)

    monkeypatch.setattr(jobsmod, "_run_job", counting)
    # every process holds more than a level of 0: released after each job and
    # each assembled bucket, and once when the process starts assembling
    monkeypatch.setattr(jobsmod, "RELEASE_ABOVE", 0)
    before = jobsmod.RELEASES[0]
    m = export_mixture(cat, "mix", tmp_path / "o", total=400, progress=False, log=lambda s: None)
    assert m["num_rows"] == 400
    n_jobs = len(set(jobs))
    assert n_jobs >= 8
    n_buckets = -(-len(m["shards"]) // jobsmod.bucket_shards(DEFAULT_SHARD_ROWS, len(m["shards"])))
    assert jobsmod.RELEASES[0] - before == n_jobs + n_buckets + 1
    # under the level: nothing handed back after jobs or buckets (their freed
    # pages are reused), only once when assembly starts (the job caches dropped)
    monkeypatch.setattr(jobsmod, "RELEASE_ABOVE", 1 << 50)
    before = jobsmod.RELEASES[0]
    m2 = export_mixture(cat, "mix", tmp_path / "o2", total=400, progress=False, log=lambda s: None)
    assert jobsmod.RELEASES[0] - before == 1
    assert [s["sha256"] for s in m2["shards"]] == [s["sha256"] for s in m["shards"]]
    jobsmod.release_memory()  # a no-op where there is no malloc_trim; never raises


def test_release_rule_reads_the_anonymous_rss(monkeypatch):
    rss = jobsmod.anon_rss()
    assert rss is None or rss > 1 << 20
    own = jobsmod.own_rss()
    assert own is None or own > 1 << 20
    monkeypatch.setattr(jobsmod, "anon_rss", lambda: 300 << 20)
    monkeypatch.setattr(jobsmod, "own_rss", lambda: 300 << 20)
    before = jobsmod.RELEASES[0]
    assert not jobsmod.release_if_over(400 << 20)
    assert jobsmod.release_if_over(200 << 20)
    # pages shared copy-on-write with the parent (a forked worker) do not count
    monkeypatch.setattr(jobsmod, "own_rss", lambda: 100 << 20)
    assert not jobsmod.release_if_over(200 << 20)
    monkeypatch.setattr(jobsmod, "own_rss", lambda: None)  # cannot tell: release
    assert jobsmod.release_if_over(200 << 20)
    monkeypatch.setattr(jobsmod, "anon_rss", lambda: None)
    assert jobsmod.release_if_over(400 << 20)
    assert jobsmod.RELEASES[0] - before == 3
    # an executor's work item runs through the rule, even when it raises
    monkeypatch.setattr(jobsmod, "anon_rss", lambda: 1 << 40)
    assert jobsmod.released(lambda x: x + 1, 1) == 2
    with pytest.raises(ZeroDivisionError):
        jobsmod.released(lambda x: 1 / x, 0)
    assert jobsmod.RELEASES[0] - before == 5


def test_jobs_share_one_source_dirs_mapping():
    # a full-size export has thousands of jobs and hundreds of --source-dir
    # entries: one copy per job was ~60 MB in the parent
    from types import SimpleNamespace

    plan = SimpleNamespace(
        entries=[SimpleNamespace(task=f"t{i}", format="zs_opt", count=30_000) for i in range(5)]
    )
    dirs = {f"t{i}": f"/data/t{i}" for i in range(300)}
    js, _ = jobsmod.make_jobs(plan, {f"t{i}": 90_000 for i in range(5)}, seed=0, shard_rows=1000,
                              source="real", source_dirs=dirs, on_error="fail")  # fmt: skip
    assert len(js) == 10
    assert len({id(j.source_dirs) for j in js}) == 1
    assert js[0].source_dirs == dirs and js[0].source_dirs is not dirs  # a copy, made once


def test_column_wise_batches_are_bounded_by_bytes_with_the_same_output(tmp_path, monkeypatch):
    # rows of long documents render column-wise a few MB at a time (few-shot
    # prompts are several times their records), in batches of any size the same bytes
    from test_columnar import _catalog as columnar_catalog
    from test_columnar import _export, _nli

    monkeypatch.setattr(jobsmod, "CHUNK_ROWS", 10**6)  # one job: thousands of rows per format
    recs = _nli(3000, 2, dirty=False)
    for i, r in enumerate(recs):
        r["premise"] = r["premise"] + " more" * (i % 50 * 20)  # up to ~5 KB
    cat = columnar_catalog(tmp_path / "c", "arrow", recs)  # batches of 500 rows
    sizes: list[int] = []
    real = jobsmod._FastRows._render

    def measured(self, k, batch, parts):
        sizes.append(batch.nbytes)
        return real(self, k, batch, parts)

    monkeypatch.setattr(jobsmod._FastRows, "_render", measured)
    read: list[int] = []
    real_add = jobsmod._FastRows._add

    def add(self, b, *a):
        read.append(b.nbytes)
        return real_add(self, b, *a)

    monkeypatch.setattr(jobsmod._FastRows, "_add", add)
    kw = dict(total=4000, seed=7, shard_rows=700)
    outs, peaks, calls = [], [], []
    for bound in (10**12, 100_000):
        monkeypatch.setattr(jobsmod, "FAST_BYTES", bound)
        sizes.clear()
        out, fast = _export(cat, "mix", tmp_path / f"o{bound}", True, monkeypatch, **kw)
        assert fast > 1000
        outs.append(out)
        peaks.append(max(sizes))
        calls.append(len(sizes))
    assert outs[0] == outs[1]
    assert calls[1] > calls[0]
    # a batch is flushed once it holds the bound: at most one source batch more
    assert peaks[1] <= 100_000 + max(read) < peaks[0]


def test_shard_buffer_is_the_ipc_file_written_once():
    import pyarrow as pa
    import pyarrow.ipc as ipc

    from flan_data.export.writer import table_buffer, table_bytes

    t = pa.table({"a": list(range(3000)), "b": [str(i) * 7 for i in range(3000)],
                  "c": [[str(i)] * (i % 3) for i in range(3000)]})  # fmt: skip
    for table in (t, t.slice(5, 1000), pa.concat_tables([t, t]), t.schema.empty_table()):
        sink = pa.BufferOutputStream()  # the reference: a growing stream
        with ipc.new_file(sink, table.schema) as w:
            w.write_table(table.combine_chunks(), max_chunksize=max(1, table.num_rows))
        want = sink.getvalue().to_pybytes()
        buf = table_buffer(table)
        assert buf.size == len(want) and buf.to_pybytes() == want == table_bytes(table)


def test_assembly_drops_the_job_caches(tmp_path, h, monkeypatch):
    # few-shot pools and rendered exemplars serve the next job of a task: once a
    # process assembles, no job needs them
    from flan_data import columnar_fs

    cat, _ = _catalog(tmp_path, h, n=400)
    seen = {}
    real = jobsmod._run_job

    def spy(job, *a, **kw):
        res = real(job, *a, **kw)
        seen["pools"] = max(seen.get("pools", 0), len(jobsmod._POOLS))
        seen["live"] = max(seen.get("live", 0), len(rendermod._LIVE) + len(columnar_fs._LIVE))
        return res

    monkeypatch.setattr(jobsmod, "_run_job", spy)
    m = export_mixture(cat, "mix", tmp_path / "o", total=400, progress=False, log=lambda s: None)
    assert m["num_rows"] == 400
    assert seen["pools"] >= 1 and seen["live"] >= 1  # jobs kept them
    assert not jobsmod._POOLS and not rendermod._LIVE and not columnar_fs._LIVE
