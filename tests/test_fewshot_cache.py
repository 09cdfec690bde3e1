"""Composed few-shot rows: each pool exemplar renders once per template per task
renderer (across batches and chunk jobs), and the option style is filled in by
replacement only where that gives the bytes a render under the style gives."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flan_data import Catalog, Renderer, columnar
from flan_data import render as rendermod
from flan_data.export import export_mixture
from flan_data.export import jobs as jobsmod
from flan_data.fewshot import CallableTokenizer
from flan_data.render import RenderConfig, TaskRenderer
from flan_data.templates import TemplateEngine

# (id, input, target, splittable): templates that print the option block or the
# lettered answer in every way the splitter must tell apart
TEMPLATES = [
    ("start", "{{ options_block }}\n{{ premise }}", "{{ answer }}", True),
    ("both", "{{ premise }} Is it {{ answer }}?{{ options_block }}", "{{ answer }}", True),
    ("cue", "{{ premise }}{{ options_block }}\nAnswer:", "{{ answer }}", True),
    ("loop", "{% for o in options %}{{ o }};{% endfor %}{{ premise }}{{ options_block }}", "{{ answer }}", True),
    ("strip", "{{- options_block -}}  {{ premise }}  ", "  {{ answer }}", True),
    ("text", "Q: {{ premise }}\nA:", "{{ answer_text }}", True),
    ("long", "Question: read the statement below with care and say what follows from it. {{ premise }}{{ options_block }}", "{{ answer }}", True),
    ("long_cue", "Question: read the statement below with care and say what follows from it.\n{{ premise }}{{ options_block }}\nA:", "{{ answer }}", True),
    ("filter", "{{ premise }}{{ options_block | upper }}", "{{ answer }}", False),
    ("test", "{% if options_block %}With options.{% endif %}{{ premise }}{{ options_block }}", "{{ answer }}", False),
    ("captured", "{% set x %}{{ options_block }}{% endset %}{{ premise }}{{ x | lower }}", "{{ answer }}", False),
    ("ans_filter", "{{ premise }}{{ options_block }}", "{{ answer | lower }}", False),
    ("ans_compare", "{{ premise }}{{ options_block }}", "{% if answer == '(A)' %}first{% else %}{{ answer }}{% endif %}", False),
]  # fmt: skip


def _catalog(tmp_path, h, n=400, records=None, options=None):
    recs = records or h.toy_records(n)
    tpl = {
        "sets": {"toy": {"kind": "zero_shot", "templates": [
            {"id": f"toy-{i}", "input": inp, "target": tgt} for i, inp, tgt, _ in TEMPLATES]}},
        "styles": [
            {"id": "qa", "input_prefix": "Q: ", "target_prefix": "A: ", "x_y_delimiter": "\n", "example_separator": "\n\n"},
            {"id": "inline", "input_prefix": "", "target_prefix": "Answer: ", "x_y_delimiter": " ", "example_separator": "\n\n"},
        ],
    }  # fmt: skip
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(recs), data / "train.parquet", row_group_size=16)
    task = {**h.TOY_TASK, "source": {"kind": "parquet", "path": str(data), "id_field": "uid"}}
    if options:  # option texts that read as cues ("Output:") or carry line breaks
        task["options"] = options
    root = h.write_catalog_dir(
        tmp_path / "c",
        tasks=[task],
        templates=tpl,
        samples={"toy": {"train": recs, "validation": recs[:5]}},
        mixtures={"m": {"members": [{"task": "toy", "formats": ["fs_noopt"]}]},
                  "mix": {"members": [{"task": "toy", "formats": ["zs_opt", "fs_opt", "fs_noopt"]}]}},
    )  # fmt: skip
    return Catalog.load(root), recs


def test_templates_are_split_only_where_replacing_is_exact(tmp_path, h):
    cat, _ = _catalog(tmp_path, h)
    tr = Renderer(cat).task_renderer("toy")
    for tid, _, _, splittable in TEMPLATES:
        assert rendermod._split_form(tr.engine, tr.template(f"toy-{tid}")) is splittable, tid


def _render_all(tr: TaskRenderer, recs, pool, fmt, batch=97):
    items = [(r["uid"], r) for r in recs]
    rows = []
    for s in range(0, len(items), batch):
        cols = tr.render_batch(
            items[s : s + batch], split="train", fmt=fmt, seed=5, pool=pool, turns=True
        )
        rows += [dict(zip(cols, vals)) for vals in zip(*cols.values())]
    return rows


@pytest.mark.parametrize(
    "cfg",
    [
        RenderConfig(),
        RenderConfig(budget=40),  # trims exemplars: token counts per style
        RenderConfig(
            budget=200, tokenizer=CallableTokenizer(lambda s: list(s.replace(" ", "")), "chars")
        ),
        RenderConfig(option_style="plain"),
    ],
    ids=["default", "tight", "tokenizer", "plain"],
)
def test_split_rendering_gives_the_bytes_of_a_render_per_style(tmp_path, h, monkeypatch, cfg):
    cat, recs = _catalog(tmp_path, h, n=300)
    recs = recs[:200]
    outs = []
    for split in (True, False):
        if not split:  # the reference: every exemplar rendered under each row's style
            monkeypatch.setattr(rendermod, "_split_form", lambda engine, ct: False)
        tr = Renderer(cat, cfg).task_renderer("toy")
        pool = [tr.exemplar(r["uid"], r) for r in recs[:60]]
        outs.append([_render_all(tr, recs, pool, fmt) for fmt in ("fs_opt", "fs_noopt")])
    assert outs[0] == outs[1]
    rows = outs[0][0]
    assert {r["template_id"] for r in rows} == {f"toy-{t[0]}" for t in TEMPLATES}
    if cfg.budget > 1000:
        assert all(len(r["exemplar_ids"]) == 3 for r in rows)
    else:  # trimmed to the budget: some rows keep fewer exemplars
        assert any(0 < len(r["exemplar_ids"]) < 3 for r in rows)


@pytest.mark.parametrize("options", [["yes", "maybe", "Output:"], ["A:", "two\nlines", "Q. why"]])
def test_split_rendering_with_options_that_look_like_cues(tmp_path, h, monkeypatch, options):
    cat, recs = _catalog(tmp_path, h, n=200, options=options)
    outs = []
    for split in (True, False):
        if not split:
            monkeypatch.setattr(rendermod, "_split_form", lambda engine, ct: False)
        tr = Renderer(cat).task_renderer("toy")
        pool = [tr.exemplar(r["uid"], r) for r in recs[:40]]
        outs.append([_render_all(tr, recs, pool, fmt) for fmt in ("fs_opt", "fs_noopt")])
    assert outs[0] == outs[1]


def test_data_holding_the_placeholder_character_renders_per_style(tmp_path, h, monkeypatch):
    recs = h.toy_records(120)
    for r in recs[::3]:
        r["premise"] = "odd \ue000options_block\ue001 text"
    cat, _ = _catalog(tmp_path, h, records=recs)
    outs = []
    for split in (True, False):
        if not split:
            monkeypatch.setattr(rendermod, "_split_form", lambda engine, ct: False)
        tr = Renderer(cat).task_renderer("toy")
        pool = [tr.exemplar(r["uid"], r) for r in recs[:40]]
        outs.append(_render_all(tr, recs, pool, "fs_opt"))
    assert outs[0] == outs[1]
    assert any("\ue000options_block\ue001" in r["inputs"] for r in outs[0])


def test_each_exemplar_renders_once_per_template_across_batches(tmp_path, h):
    cat, recs = _catalog(tmp_path, h, n=300)
    tr = Renderer(cat).task_renderer("toy")
    pool = [tr.exemplar(r["uid"], r) for r in recs[:50]]
    split = {f"toy-{t[0]}" for t in TEMPLATES if t[3]}
    for fmt in ("fs_opt", "fs_noopt"):
        before = tr._fewshot_cache().renders
        rows = _render_all(tr, recs, pool, fmt, batch=40)
        renders = tr._fewshot_cache().renders - before
        pairs = {(r["template_id"], e) for r in rows for e in r["exemplar_ids"]}
        if fmt == "fs_noopt":  # no option block: one render per (template, exemplar)
            assert renders == len(pairs)
        else:  # split templates once per (template, exemplar); the others per option style too
            once = {p for p in pairs if p[0] in split}
            assert len(once) < renders
            per_style = renders - len(once)
            assert 0 < per_style <= sum(1 for r in rows if r["template_id"] not in split) * 3
        # the same rows again: nothing left to render
        again = tr._fewshot_cache().renders
        assert _render_all(tr, recs, pool, fmt, batch=40) == rows
        assert tr._fewshot_cache().renders == again


def test_exemplar_renders_per_task_across_chunk_jobs(tmp_path, h, monkeypatch):
    # A task split into many chunk jobs renders each (template, exemplar) once in
    # the process, not once per chunk (the pool and the renders are shared).
    # The per-row few-shot path's cache: the record-batch path (flan_data.columnar_fs,
    # whose tables are shared the same way: test_columnar_fs) is switched off.
    monkeypatch.setattr(columnar, "ENABLED", False)
    cat, _ = _catalog(tmp_path, h, n=400)
    monkeypatch.setattr(jobsmod, "CHUNK_ROWS", 50)
    monkeypatch.setattr(jobsmod, "POOL_SIZE", 20)
    renders = []
    real = TaskRenderer._render_exemplars

    def counting(self, todo, *a, **kw):
        renders.append(len(todo))
        return real(self, todo, *a, **kw)

    monkeypatch.setattr(TaskRenderer, "_render_exemplars", counting)
    batches = []
    composed = TaskRenderer._render_composed

    def counting_batches(self, rows, *a, **kw):
        batches.append(len(rows))
        return composed(self, rows, *a, **kw)

    monkeypatch.setattr(TaskRenderer, "_render_composed", counting_batches)
    m = export_mixture(cat, "m", tmp_path / "o", total=400, progress=False, log=lambda s: None)
    assert m["num_rows"] == 400
    rows = []
    for f in sorted((tmp_path / "o" / "data").glob("*.arrow")):
        with pa.memory_map(str(f)) as src:
            rows += (
                pa.ipc.open_file(src).read_all().select(["template_id", "exemplar_ids"]).to_pylist()
            )
    pairs = {(r["template_id"], e) for r in rows for e in r["exemplar_ids"]}
    assert len(batches) >= 8  # 400 rows in chunk jobs of 50
    # at most one render per (template, pool entry), though 400 rows use 1,200 exemplars
    assert sum(renders) <= len(TEMPLATES) * 20 < 3 * 400
    assert renders[-1] < renders[0]  # later chunks find most of theirs rendered
    assert sum(renders) == len(pairs)
    assert len(json.loads((tmp_path / "o" / "manifest.json").read_text())["shards"]) >= 1


OWN = {
    "sets": {
        "own": {
            "kind": "few_shot",
            "templates": [
                {"id": "own-01", "input": "{{ definition }}\n\n{% for ex in exemplars %}In: {{ ex.input }}\nOut: {{ ex.output }}\n\n{% endfor %}In: {{ input }}\nOut:", "target": "{{ output }}"},
                {"id": "own-02", "input": "{{ definition }}\n{% for ex in exemplars %}{{ ex.input }} -> {{ ex.output }}\n{% endfor %}{{ input }} ->", "target": "{{ output }}"},
            ],
        }
    }
}  # fmt: skip


def _own_catalog(make_catalog):
    task = {"name": "nv", "source": {"kind": "jsonl", "path": "/nonexistent"}, "templates": ["own"],
            "fields": {"definition": "definition", "input": "input", "output": "output",
                       "positive_examples": "positive_examples"},
            "exemplars": "field:positive_examples"}  # fmt: skip
    cat = make_catalog(templates=OWN, tasks=[task], samples={})
    recs = [
        {"definition": "Add one to the number. " * (i % 4), "input": str(i), "output": str(i + 1),
         "positive_examples": [{"input": " ".join(["w"] * (j + i % 7)), "output": str(j)} for j in range(i % 5)]}
        for i in range(300)
    ]  # fmt: skip
    return cat, [(f"e{i}", r) for i, r in enumerate(recs)]


@pytest.mark.parametrize("budget", [1920, 30, 12])
def test_own_fewshot_templates_render_in_batches_with_the_same_bytes(
    make_catalog, monkeypatch, budget
):
    cat, items = _own_catalog(make_catalog)
    calls = []
    real_render = TemplateEngine.render

    def counting(self, ct, ctx):
        calls.append(ct.spec.id)
        return real_render(self, ct, ctx)

    monkeypatch.setattr(TemplateEngine, "render", counting)
    outs = []
    for batched in (True, False):
        if not batched:  # the reference: each row rendered on its own, as before
            monkeypatch.setattr(TaskRenderer, "_render_group", _refuse)
        tr = Renderer(cat, RenderConfig(budget=budget)).task_renderer("nv")
        calls.clear()
        cols = {}
        for fmt in ("fs_opt", "fs_noopt"):
            for s in range(0, len(items), 64):
                got = tr.render_batch(items[s : s + 64], split="train", fmt=fmt, seed=1)
                for k, v in got.items():
                    cols.setdefault(k, []).extend(v)
        outs.append(cols)
        if batched and budget == 1920:
            assert calls == []  # nothing over the budget: every row rendered in a batch
        if batched and budget == 12:
            assert len(calls) > 0  # rows over the budget re-render with fewer exemplars
    assert outs[0] == outs[1]
    n_ex = [len(x) for x in outs[0]["exemplar_ids"]]
    assert max(n_ex) == 3 if budget == 1920 else min(n_ex) == 0


def _refuse(self, ct, jobs):
    from flan_data.errors import RecordError

    raise RecordError("nv", jobs[0][2], "forced per-row rendering")


def test_rendered_exemplars_are_kept_for_a_few_task_renderers_only(tmp_path, h, monkeypatch):
    # A worker renders every task of a mixture: the exemplar caches of the least
    # recently used task renderers are emptied, so memory does not grow with tasks.
    monkeypatch.setattr(rendermod, "FS_CACHES_KEPT", 2)
    monkeypatch.setattr(rendermod, "_LIVE", [])
    cat, recs = _catalog(tmp_path, h, n=120)
    items = [(r["uid"], r) for r in recs[:60]]
    trs = [Renderer(cat).task_renderer("toy") for _ in range(4)]  # four task renderers
    for tr in trs:
        pool = [tr.exemplar(r["uid"], r) for r in recs[60:]]
        tr.render_batch(items, split="train", fmt="fs_opt", seed=0, pool=pool)
    sizes = [tr.__dict__["_fs_cache"].entries() for tr in trs]
    assert sizes[:2] == [0, 0] and all(n > 0 for n in sizes[2:])
    # a cleared cache renders again, with the same bytes
    pool = [trs[0].exemplar(r["uid"], r) for r in recs[60:]]
    again = trs[0].render_batch(items, split="train", fmt="fs_opt", seed=0, pool=pool)
    fresh = Renderer(cat).task_renderer("toy")
    assert again == fresh.render_batch(items, split="train", fmt="fs_opt", seed=0, pool=pool)


def test_composed_field_exemplars_are_each_rows_own(make_catalog):
    # A zero-shot template composed into few-shot with exemplars from a record
    # field: every row shows its own field's exemplars, in a batch as alone
    # (a batch once gave every row the first row's exemplars).
    tpl = {
        "sets": {
            "io": {
                "kind": "zero_shot",
                "templates": [{"id": "io-01", "input": "{{ input }}?", "target": "{{ output }}"}],
            }
        }
    }
    task = {"name": "nv", "source": {"kind": "jsonl", "path": "/nonexistent"}, "templates": ["io"],
            "fields": {"input": "input", "output": "output", "positive_examples": "positive_examples"},
            "exemplars": "field:positive_examples"}  # fmt: skip
    cat = make_catalog(templates=tpl, tasks=[task], samples={})
    tr = Renderer(cat, RenderConfig(shots=2)).task_renderer("nv")
    recs = [
        (f"e{i}", {"input": f"Q{i}", "output": f"a{i}",
                   "positive_examples": [{"input": f"ex{i}-{j}", "output": f"o{i}-{j}"} for j in range(2)]})
        for i in range(6)
    ]  # fmt: skip
    cols = tr.render_batch(recs, split="train", fmt="fs_noopt", seed=0)
    alone = [tr.render(e, r, split="train", fmt="fs_noopt", seed=0).inputs for e, r in recs]
    assert cols["inputs"] == alone
    for i, text in enumerate(cols["inputs"]):
        assert f"ex{i}-0?" in text and f"ex{i}-1?" in text
        assert not any(f"ex{k}-" in text for k in range(6) if k != i)
