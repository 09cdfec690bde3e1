"""Column-wise few-shot assembly (issue 9): big batches pick exemplars for all rows
at once and build the prompts from format strings composed once per (template,
exemplar, few-shot style, option-style class). It must give exactly the bytes
of the per-row assembly (``render.FEWSHOT_COLUMNS = False``) given the same
picks, and those of :func:`flan_data.compose.compose_fewshot` over separately
rendered exemplars. Counters say which path did the work; no timing is asserted.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flan_data import Catalog, Renderer
from flan_data import render as rendermod
from flan_data.compose import compose_fewshot
from flan_data.fewshot import CallableTokenizer, ExemplarPicker
from flan_data.linter import synthetic_rows
from flan_data.options import PLAIN
from flan_data.render import RENDER_STATS, Exemplar, RenderConfig
from flan_data.seeding import SeedPrefix, mix64, purpose_salt

# (id, input, target): the shapes the columns must either get right or leave to the rows
TEMPLATES = [
    ("end", "{{ premise }}\nDoes it follow that {{ hypothesis }}?{{ options_block }}", "{{ answer }}"),
    ("start", "{{ options_block }}\n{{ premise }}", "{{ answer }}"),
    ("both", "{{ premise }} Is it {{ answer }}?{{ options_block }}", "{{ answer }}"),
    ("cue", "{{ premise }}{{ options_block }}\nAnswer:", "{{ answer }}"),
    ("strip", "{{- options_block -}}  {{ premise }}  ", "  {{ answer }}"),
    ("text", "Q: {{ premise }}\nA:", "{{ answer_text }}"),
    ("short", "Q: {{ options_block }}", "{{ answer }}"),
    ("braces", "{0} {premise} }} {{ premise }} {{ '{' }}x{{ '}' }}{{ options_block }}", "{{ answer }}"),
    ("mixed_target", "{{ premise }}{{ options_block }}", "It is {{ answer }}."),
    ("one_line", 'Given "{{ premise }}", is it so that {{ hypothesis }}?{{ options_block }}', "{{ answer }}"),
    ("long", "Question: read the statement below with care and say what follows from it. {{ premise }}{{ options_block }}", "{{ answer }}"),
    ("filter", "{{ premise }}{{ options_block | upper }}", "{{ answer }}"),
    ("fails", "{{ premise }}{{ options_block }}{{ [1, 2][label_index] }}", "{{ answer }}"),
]  # fmt: skip

STYLES = [
    {"id": "qa", "input_prefix": "Q: ", "target_prefix": "A: ", "x_y_delimiter": "\n", "example_separator": "\n\n"},
    {"id": "inline", "input_prefix": "", "target_prefix": "Answer: ", "x_y_delimiter": " ", "example_separator": "\n\n"},
    {"id": "braced", "input_prefix": "{in} ", "target_prefix": "{out}: ", "x_y_delimiter": " ", "example_separator": "\n}{\n"},
]  # fmt: skip


def _records(n: int) -> list[dict]:
    out = []
    for i in range(n):
        premise = f"Premise number {i} is here."
        if i % 7 == 0:
            premise = "Answer: {0} a {b} }{ brace " + premise  # braces and a cue in the data
        if i % 11 == 0:
            premise = "line one\nline two " + premise
        out.append({"uid": f"r{i}", "premise": premise, "hypothesis": f"Hypothesis {i}.",
                    "label": i % 3, "label_index": 0 if i % 13 else 5})  # fmt: skip
    return out


def _catalog(tmp_path, h, records, options=None):
    tpl = {
        "sets": {"toy": {"kind": "zero_shot", "templates": [
            {"id": f"toy-{i}", "input": inp, "target": tgt} for i, inp, tgt in TEMPLATES]}},
        "styles": STYLES,
    }  # fmt: skip
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(records), data / "train.parquet")
    fields = {**h.TOY_TASK["fields"], "label_index": "label_index"}
    task = {**h.TOY_TASK, "fields": fields,
            "source": {"kind": "parquet", "path": str(data), "id_field": "uid"}}  # fmt: skip
    if options:
        task["options"] = options
    root = h.write_catalog_dir(tmp_path / "c", tasks=[task], templates=tpl,
                               samples={"toy": {"train": records, "validation": records[:5]}})  # fmt: skip
    return Catalog.load(root)


def _render(cat, cfg, records, pool_n, fmt, batch, columns, monkeypatch):
    monkeypatch.setattr(rendermod, "FEWSHOT_COLUMNS", columns)
    tr = Renderer(cat, cfg).task_renderer("toy")
    pool = [tr.exemplar(r["uid"], r) for r in records[:pool_n]]
    items = [(r["uid"], r) for r in records]
    out, errors = [], []
    for s in range(0, len(items), batch):
        errs: list = []
        out.append(tr.render_batch(items[s : s + batch], split="train", fmt=fmt, seed=5,
                                   pool=pool, errors=errs))  # fmt: skip
        errors.append([(i, str(e)) for i, e in errs])
    return out, errors


CONFIGS = {
    "default": RenderConfig(),
    "plain": RenderConfig(option_style="plain"),
    "tight": RenderConfig(budget=200),  # some rows over the bound: exact counts per row
    "shots5": RenderConfig(shots=5),
    "tokenizer": RenderConfig(tokenizer=CallableTokenizer(lambda s: s.split(), "split")),
}

OPTIONS = {
    "toy": None,
    "cue_like": ["yes", "maybe", "Output:"],
    "odd": [" yes ", "two\nlines", "{maybe}", "A:"],  # edges, a line break, braces, a cue
}


@pytest.mark.parametrize("options", list(OPTIONS), ids=list(OPTIONS))
@pytest.mark.parametrize("cfg", list(CONFIGS), ids=list(CONFIGS))
def test_columns_give_the_bytes_of_the_rows(tmp_path, h, monkeypatch, cfg, options):
    records = _records(400)
    cat = _catalog(tmp_path, h, records, OPTIONS[options])
    for fmt in ("fs_opt", "fs_noopt"):
        before = (RENDER_STATS["fewshot_column_rows"], RENDER_STATS["fewshot_row_rows"])
        fast = _render(cat, CONFIGS[cfg], records, 90, fmt, 100, True, monkeypatch)
        cols = RENDER_STATS["fewshot_column_rows"] - before[0]
        rows = RENDER_STATS["fewshot_row_rows"] - before[1]
        slow = _render(cat, CONFIGS[cfg], records, 90, fmt, 100, False, monkeypatch)
        assert fast == slow, (cfg, options, fmt)
        n = sum(len(c["inputs"]) for c in fast[0])
        assert n > 300 and any(fast[1])  # rows rendered; the failing template reported
        if cfg == "tokenizer":
            assert cols == 0  # exact counts by another tokenizer: per row
        elif cfg == "tight":
            assert cols > 0 and rows > 0  # rows over the word bound: exact counts per row
            assert any(len(x) < 3 for c in fast[0] for x in c["exemplar_ids"])  # some trimmed
        else:
            assert cols > n // 2, (cols, rows)  # most rows went column-wise


def test_every_batch_split_gives_the_same_rows(tmp_path, h, monkeypatch):
    records = _records(300)
    cat = _catalog(tmp_path, h, records)
    runs = []
    for batch in (300, 64, 77, 10):  # 10: below VECTOR_MIN, picks and assembly per row
        out, _ = _render(cat, RenderConfig(), records, 80, "fs_opt", batch, True, monkeypatch)
        runs.append({k: sum((c[k] for c in out), []) for k in out[0] if k != "index"})
    assert runs[0] == runs[1] == runs[2] == runs[3]


def test_columns_equal_compose_fewshot_over_separate_renders(catalog, monkeypatch):
    """The shipped anli_r1 templates with the plain option style: each prompt is
    compose_fewshot over the exemplars picked for the row (the example never
    among them), rendered one by one as zero-shot texts with the row's template."""
    monkeypatch.setattr(rendermod, "FEWSHOT_COLUMNS", True)
    r = Renderer(catalog, RenderConfig(option_style="plain"))
    tr = r.task_renderer("anli_r1")
    rows = synthetic_rows(tr.task, n=150)
    pool = [Exemplar(eid, c) for eid, c in rows[:70]]
    before = RENDER_STATS["fewshot_column_rows"]
    cols = tr.render_batch(rows, split="train", fmt="fs_opt", seed=11, pool=pool,
                           canonicals=[c for _, c in rows])  # fmt: skip
    assert RENDER_STATS["fewshot_column_rows"] - before > 100
    picker = ExemplarPicker([e.example_id for e in pool], 3)
    prefix = SeedPrefix(11, "anli_r1", "train")
    styles = {s.id: s for s in tr._styles}
    salt = purpose_salt("exemplars")
    for k, i in enumerate(cols["index"]):
        eid, canon = rows[i]
        ct = tr.template(cols["template_id"][k])
        picks = picker.pick(eid, mix64(prefix.derive(eid), salt))
        assert [pool[j].example_id for j in picks] == cols["exemplar_ids"][k]
        assert eid not in cols["exemplar_ids"][k] or rows[i][0] not in [e.example_id for e in pool]
        exs = [tr._render(ct, pool[j].fields, PLAIN, pool[j].example_id) for j in picks]
        qi, qt = tr._render(ct, canon, PLAIN, eid)
        want = compose_fewshot(exs, qi, styles[cols["fewshot_style"][k]], qt)
        assert cols["inputs"][k] == want
        assert cols["targets"][k] == qt


def test_shipped_tasks_columns_equal_rows(monkeypatch):
    """A sample of the shipped tasks with composed few-shot (every 25th): lint's
    synthetic rows, pool members among the rows, both assemblies byte-identical."""
    cat = Catalog.load()
    names = []
    for name, task in sorted(cat.tasks.items()):
        kinds = {t.kind for t in cat.templates_for(task)}
        if not task.exemplar_field and kinds and "few_shot" not in kinds:
            names.append(name)
    assert len(names) > 300
    took = 0
    for name in names[::25]:
        outs = []
        for columns in (True, False):
            monkeypatch.setattr(rendermod, "FEWSHOT_COLUMNS", columns)
            tr = Renderer(cat).task_renderer(name)
            rows = synthetic_rows(tr.task, n=90)
            pool = [Exemplar(f"p{i}", c) for i, (_, c) in enumerate(synthetic_rows(tr.task, n=50))]
            rows = [(f"p{i}" if i % 3 == 0 else e, c) for i, (e, c) in enumerate(rows)]
            before = RENDER_STATS["fewshot_column_rows"]
            outs.append([tr.render_batch(rows, split="train", fmt=fmt, seed=2, pool=pool, errors=[],
                                         canonicals=[c for _, c in rows]) for fmt in ("fs_opt", "fs_noopt")])  # fmt: skip
            took += RENDER_STATS["fewshot_column_rows"] - before
        assert outs[0] == outs[1], name
    assert took > 0.5 * 2 * 90 * len(names[::25])
