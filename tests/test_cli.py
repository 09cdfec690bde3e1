"""The ``flan`` command line, through click's CliRunner (and once as ``python -m flan_data``)."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner

from flan_data import FORMATS, __version__
from flan_data.cli import main
from flan_data.sources.base import parse_split

RENDER_KEYS = {"inputs", "targets", "task", "collection", "format", "template_id", "fewshot_style", "options",
               "exemplar_ids", "example_id", "source_split", "seed"}  # fmt: skip


@pytest.fixture
def run(cli_extra, catalog):
    """``run(*args)``: invoke ``flan`` on the shipped catalog (plus unmerged drafts).

    The session's loaded catalog is handed to the command (``ctx.obj``) unless
    ``catalog_root`` names another one or ``fresh`` asks for a real load.
    """
    runner = CliRunner()

    def invoke(*args, catalog_root=None, fresh=False):
        pre = ["--catalog", str(catalog_root)] if catalog_root is not None else list(cli_extra)
        obj = None if (catalog_root is not None or fresh) else {"catalog": catalog}
        return runner.invoke(main, [*pre, *map(str, args)], obj=obj)

    return invoke


def ok(result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    assert "Traceback" not in result.output
    return result.output


def json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


# ----------------------------------------------------------------------------- help and version


def test_top_level_help_lists_the_commands(run):
    out = ok(run("--help"))
    assert "Usage:" in out and "flan catalog list" in out
    for cmd in ("catalog", "render", "lint"):
        assert cmd in out
    assert ok(run("-h")) == out


def test_every_command_has_help():
    runner = CliRunner()
    checked = 0
    for name, cmd in main.commands.items():
        if name == "finetune":  # forwards every argument (--help included) to the finetuner
            continue
        out = ok(runner.invoke(main, [name, "--help"]))
        assert "Usage:" in out and name in out, name
        checked += 1
        for sub in getattr(cmd, "commands", {}):
            sout = ok(runner.invoke(main, [name, sub, "--help"]))
            assert f"{name} {sub}" in sout and "Options:" in sout
            checked += 1
    assert checked >= 7  # catalog (+ list, show, stats), render, lint, ...


def test_render_help_documents_the_options():
    out = ok(CliRunner().invoke(main, ["render", "--help"]))
    for opt in (
        "--format",
        "--seed",
        "--template",
        "--source",
        "--source-dir",
        "--json",
        "--shots",
        "--budget",
        "--option-style",
        "--split",
    ):
        assert opt in out
    for fmt in FORMATS:
        assert fmt in out


def test_version(run):
    assert ok(run("--version")).strip() == f"flan, version {__version__}"


def test_no_command_shows_usage(run):
    res = run()
    assert "Usage:" in res.output and "Traceback" not in res.output


# ----------------------------------------------------------------------------- catalog


def test_catalog_list_table(run, catalog):
    out = ok(run("catalog", "list"))
    lines = out.splitlines()
    assert lines[0].split() == [
        "task",
        "collection",
        "category",
        "source",
        "templates",
        "sample",
        "license",
    ]
    assert set(lines[1]) <= {"-", " "}
    assert out.rstrip().endswith(f"{len(catalog.tasks)} task(s)")
    assert any(line.startswith("anli_r1 ") for line in lines)


def test_catalog_list_json_and_filters(run, catalog, h):
    rows = json.loads(ok(run("catalog", "list", "--json")))
    assert len(rows) == len(catalog.tasks)
    anli = next(r for r in rows if r["name"] == "anli_r1")
    assert set(anli) == {
        "name",
        "collection",
        "category",
        "source",
        "templates",
        "sample",
        "held_out",
        "inversion_of",
        "languages",
        "license_class",
    }
    assert (
        anli["collection"] == "flan2021"
        and anli["sample"] is True
        and anli["templates"] == len(catalog.templates_for("anli_r1"))
    )
    niv2 = json.loads(ok(run("catalog", "list", "--json", "--collection", "natural_instructions")))
    assert niv2 and {r["collection"] for r in niv2} == {"niv2"}
    s = json.loads(ok(run("catalog", "list", "--json", "-s", "anli")))
    assert {r["name"] for r in s} >= {"anli_r1", "anli_r1_ii"}
    cats = json.loads(
        ok(run("catalog", "list", "--json", "--category", "natural language inference"))
    )
    assert cats and all("natural language inference" in r["category"].lower() for r in cats)
    sample = json.loads(ok(run("catalog", "list", "--json", "--sample-only")))
    assert {r["name"] for r in sample} >= set(h.SAMPLE_TASKS) and all(r["sample"] for r in sample)
    assert json.loads(ok(run("catalog", "list", "--json", "-s", "zzz-no-such"))) == []
    assert ok(run("catalog", "list", "-s", "zzz-no-such")).rstrip().endswith("0 task(s)")


def test_catalog_show_text(run, catalog):
    out = ok(run("catalog", "show", "anli_r1"))
    assert out.startswith("anli_r1  (flan2021)")
    for frag in (
        "category:",
        "languages:",
        "source:",
        "sample:",
        "fields:",
        "answer <- options[label]",
        "options:",
        "formats:",
        "templates (",
    ):
        assert frag in out, frag
    first = catalog.templates_for("anli_r1")[0].id
    assert f"    {first}" in out
    inv = ok(run("catalog", "show", "anli_r1_ii"))
    assert "inversion of: anli_r1" in inv


def test_catalog_show_json(run, catalog):
    info = json.loads(ok(run("catalog", "show", "task1388_cb_entailment", "--json")))
    assert info["name"] == "task1388_cb_entailment" and info["collection"] == "niv2"
    assert info["exemplars"] == "field:positive_examples"
    assert info["source"]["kind"] == "niv2" and info["sample"]["kind"] == "niv2"
    assert {t["kind"] for t in info["templates"]} == {"zero_shot", "few_shot"}
    assert all(
        {"id", "kind", "set", "variables", "input", "target", "file", "dialect", "answer_choices"}
        == set(t)
        for t in info["templates"]
    )
    assert info["formats"] == ["zs_opt", "zs_noopt", "fs_opt", "fs_noopt"]
    assert set(info["metadata"]) >= {
        "category",
        "languages",
        "license",
        "held_out",
        "inversion_of",
        "exclude_from_training",
        "task_type",
        "extra",
    }
    opt = json.loads(ok(run("catalog", "show", "quartz_answer_question_based_on", "--json")))
    assert opt["options"] == {
        "field": catalog.task("quartz_answer_question_based_on").options_field
    }
    fixed = json.loads(ok(run("catalog", "show", "bool_q", "--json")))
    assert fixed["options"] == list(catalog.task("bool_q").options)


def test_catalog_show_task_type_and_exclusion(run, toy_root, h):
    cat_root = h.write_catalog_dir(
        toy_root.parent / "ex",
        tasks=[
            dict(
                h.TOY_TASK,
                metadata={"task_type": "t0_mc", "held_out": True, "exclude_from_training": True},
            )
        ],
    )
    out = ok(run("catalog", "show", "toy", catalog_root=cat_root))
    assert (
        "task type:    t0_mc" in out
        and "held out:     yes   (excluded from training mixtures)" in out
    )


def test_catalog_stats(run, catalog):
    out = ok(run("catalog", "stats"))
    assert out.splitlines()[0].split()[:2] == ["collection", "tasks"]
    assert f"{len(catalog.tasks)} tasks, {len(catalog.templates)} templates" in out
    data = json.loads(ok(run("catalog", "stats", "--json")))
    assert (
        data["total_tasks"]
        == len(catalog.tasks)
        == sum(c["tasks"] for c in data["collections"].values())
    )
    assert data["templates"] == len(catalog.templates) and data["template_sets"] == len(
        catalog.template_sets
    )
    assert data["fewshot_styles"] == len(catalog.fewshot_styles) and "demo" in data["mixtures"]
    inv = sum(1 for t in catalog.tasks.values() if t.metadata.inversion_of)
    assert sum(c.get("inversions", 0) for c in data["collections"].values()) == inv


def test_catalog_stats_of_a_catalog_without_tasks_in_a_collection(run, toy_root, h):
    root = h.write_catalog_dir(toy_root.parent / "two", catalog_extra={"collections": {
        "flan2021": {"file": "collections/flan2021.yaml"}, "cot": {"file": "collections/cot.yaml"}}})  # fmt: skip
    h.write_yaml(root / "collections" / "cot.yaml", {"collection": "cot", "tasks": []})
    data = json.loads(ok(run("catalog", "stats", "--json", catalog_root=root)))
    assert data["collections"]["cot"] == {"tasks": 0} and data["mixtures"] == []
    assert "mixtures: -" in ok(run("catalog", "stats", catalog_root=root))


# ----------------------------------------------------------------------------- render


@pytest.mark.parametrize("fmt", ["zs_opt", "zs_noopt", "fs_opt", "fs_noopt"])
def test_render_json_every_format(run, fmt):
    rows = json_lines(ok(run("render", "anli_r1", "--format", fmt, "-n", 2, "--json")))
    assert len(rows) == 2
    for r in rows:
        assert set(r) == RENDER_KEYS
        assert r["task"] == "anli_r1" and r["format"] == fmt and r["source_split"] == "validation"
        assert r["inputs"] and r["targets"] and r["template_id"].startswith("nli-")
        assert (r["fewshot_style"] is not None) == fmt.startswith("fs_")
        assert bool(r["exemplar_ids"]) == fmt.startswith("fs_")
    assert [r["example_id"] for r in rows] == ["validation-0", "validation-1"] or rows[0][
        "example_id"
    ] != rows[1]["example_id"]


def test_render_cot_format(run):
    rows = json_lines(ok(run("render", "cot_gsm8k", "-f", "cot", "-n", 1, "--json")))
    assert rows[0]["format"] == "cot" and rows[0]["template_id"].startswith("cot-")


def test_render_text_output(run):
    out = ok(run("render", "anli_r1", "-f", "fs_opt", "-n", 2, "--seed", 3))
    heads = [line for line in out.splitlines() if line.startswith("=== [")]
    assert len(heads) == 2
    assert (
        heads[0].startswith("=== [1] anli_r1 | fs_opt | template nli-")
        and "| style " in heads[0]
        and "exemplar(s)" in heads[0]
    )
    assert heads[0].endswith(" ===") and "| validation/" in heads[0]
    assert out.count("INPUTS:") == 2 and out.count("TARGETS:") == 2
    zs = ok(run("render", "anli_r1", "-n", 1))
    assert "| style" not in zs


def test_render_seed_is_deterministic_and_matters(run):
    a = json_lines(ok(run("render", "arc_challenge", "-n", 4, "--seed", 11, "--json")))
    b = json_lines(ok(run("render", "arc_challenge", "-n", 4, "--seed", 11, "--json")))
    c = json_lines(ok(run("render", "arc_challenge", "-n", 4, "--seed", 12, "--json")))
    assert a == b
    assert [(r["template_id"], r["inputs"]) for r in a] != [
        (r["template_id"], r["inputs"]) for r in c
    ]


def test_render_template_split_and_options(run, catalog):
    tid = catalog.templates_for("bool_q")[3].id
    rows = json_lines(
        ok(
            run(
                "render",
                "bool_q",
                "--template",
                tid,
                "-n",
                3,
                "--split",
                "train",
                "--option-style",
                "plain",
                "--json",
            )
        )
    )
    assert {r["template_id"] for r in rows} == {tid}
    assert all(r["source_split"] == "train" for r in rows)
    assert all("OPTIONS:\n- no\n- yes" in r["inputs"] for r in rows)
    zero = json_lines(
        ok(run("render", "bool_q", "-f", "fs_noopt", "--shots", 0, "-n", 1, "--json"))
    )
    assert zero[0]["exemplar_ids"] == []
    tight = json_lines(
        ok(run("render", "bool_q", "-f", "fs_noopt", "--budget", 5, "-n", 1, "--json"))
    )
    assert tight[0]["exemplar_ids"] == []


def test_render_source_sample_and_real(run):
    rows = json_lines(ok(run("render", "xsum", "--source", "sample", "-n", 1, "--json")))
    assert rows[0]["task"] == "xsum"
    res = run("render", "task1146_country_capital", "--source", "real", "-n", 1)
    assert res.exit_code == 1 and "Error:" in res.output and "Traceback" not in res.output
    assert "offline" in res.output or "--source-dir niv2=PATH" in res.output


def test_render_source_dir_by_collection(run, tmp_path, catalog):
    doc = {"Definition": ["Name the capital."], "Positive Examples": [{"input": "France", "output": "Paris", "explanation": "."}],
           "Instances": [{"id": f"cc-{i}", "input": f"Country {i}", "output": [f"City {i}"]} for i in range(40)]}  # fmt: skip
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "task1146_country_capital.json").write_text(json.dumps(doc))
    rows = json_lines(
        ok(
            run(
                "render",
                "task1146_country_capital",
                "--source-dir",
                f"sni={tmp_path}",
                "-n",
                2,
                "--json",
            )
        )
    )
    hold = catalog.task("task1146_country_capital").source.validation_size or 0
    assert [r["example_id"] for r in rows] == [f"cc-{40 - hold}", f"cc-{41 - hold}"]
    assert all(r["targets"].startswith("City ") for r in rows)


def test_render_source_dir_by_task(run, tmp_path, catalog):
    hold = catalog.task("cot_gsm8k").source.validation_size or 0
    (tmp_path / "gsm8k_train.tsv").write_text(
        "".join(f"What is {i}+1?\t{i + 1}\t{i} plus one is {i + 1}.\n" for i in range(hold + 5))
    )
    rows = json_lines(
        ok(
            run(
                "render",
                "cot_gsm8k",
                "-f",
                "cot",
                "--source-dir",
                f"cot_gsm8k={tmp_path}",
                "-n",
                1,
                "--json",
            )
        )
    )
    assert "What is 5+1?" in rows[0]["inputs"] and "6" in rows[0]["targets"]


def test_render_source_dir_hf_save_to_disk(run, tmp_path, catalog):
    datasets = pytest.importorskip("datasets")
    spec = catalog.task("anli_r1").source
    recs = [
        {
            "uid": f"u{i}",
            "premise": f"Premise {i}.",
            "hypothesis": f"Hypothesis {i}.",
            "label": i % 3,
            "reason": "",
        }
        for i in range(6)
    ]
    dd = datasets.DatasetDict(
        {
            parse_split(spec.split_name(s))[0]: datasets.Dataset.from_list(recs)
            for s in ("train", "validation")
        }
    )
    dd.save_to_disk(str(tmp_path / "anli"))
    rows = json_lines(
        ok(
            run(
                "render",
                "anli_r1",
                "--source-dir",
                f"anli_r1={tmp_path / 'anli'}",
                "-n",
                2,
                "--json",
            )
        )
    )
    assert [r["example_id"] for r in rows] == ["u0", "u1"]
    assert "Premise 0." in rows[0]["inputs"]


def test_render_toy_catalog(run, toy_root):
    rows = json_lines(
        ok(
            run(
                "render",
                "toy",
                "-n",
                1,
                "--option-style",
                "plain",
                "--template",
                "toy-02",
                "--json",
                catalog_root=toy_root,
            )
        )
    )
    assert (
        rows[0]["inputs"]
        == "Premise: Premise number 0 is here.\nHypothesis: Hypothesis 0.\n\nOPTIONS:\n- yes\n- maybe\n- no"
    )
    assert rows[0]["targets"] == "yes" and rows[0]["example_id"] == "validation-0"


def test_render_bad_values_are_usage_errors(run, h):
    h.assert_cli_error(run("render", "anli_r1", "-n", 0), "Invalid value for '-n'")
    h.assert_cli_error(run("render", "anli_r1", "--source", "web"), "Invalid value for '--source'")
    h.assert_cli_error(
        run("render", "anli_r1", "--option-style", "odd"), "Invalid value for '--option-style'"
    )
    h.assert_cli_error(run("render"), "Missing argument 'TASK'")
    h.assert_cli_error(
        run("render", "anli_r1", "--source", "sample", "--split", "test"), "unknown split 'test'"
    )


def test_render_cot_for_a_task_without_cot_templates(run, h):
    h.assert_cli_error(
        run("render", "anli_r1", "-f", "cot"), "task 'anli_r1' has no chain-of-thought templates"
    )


# ----------------------------------------------------------------------------- lint


def test_lint_shipped_catalog_is_clean(run, catalog):
    res = run("lint", "--task", "anli_r1", "--task", "task1388_cb_entailment", "--rows", 1)
    out = ok(res)
    assert out.splitlines()[-1].startswith("0 error(s), ")
    assert out.splitlines()[-1].endswith(f"checked {len(catalog.templates)} templates, 2 tasks")


def test_lint_failing_catalog_exits_1(run, toy_root, h):
    t = dict(h.TOY_TEMPLATES)
    t["sets"] = dict(
        t["sets"],
        toy={
            "templates": [
                {
                    "id": "toy-01",
                    "input": "{{ premise }} {{ nope }}{{ options_block }}",
                    "target": "{{ answer }}",
                }
            ]
        },
    )
    root = h.write_catalog_dir(toy_root.parent / "bad", templates=t)
    res = run("lint", catalog_root=root)
    assert (
        res.exit_code == 1
        and isinstance(res.exception, SystemExit)
        and "Traceback" not in res.output
    )
    assert "error: " in res.output and "uses nope, which the task does not provide" in res.output
    assert "1 error(s), 1 warning(s); checked 2 templates, 1 tasks" in res.output


def test_lint_strict_turns_warnings_into_errors(run, toy_root):
    assert "0 error(s), 1 warning(s)" in ok(run("lint", catalog_root=toy_root))
    res = run("lint", "--strict", catalog_root=toy_root)
    assert res.exit_code == 1 and "1 error(s), 0 warning(s)" in res.output


def test_lint_a_user_template_file(run, toy_root, tmp_path, h):
    f = h.write_yaml(tmp_path / "mine.yaml", {"sets": {"mine": {"templates": [
        {"id": "mine-01", "input": "{{ premise }", "target": "{{ answer }}"}]}}})  # fmt: skip
    res = run("lint", f, catalog_root=toy_root)
    assert res.exit_code == 1 and "mine.yaml: mine-01" in res.output and "line 1" in res.output
    good = h.write_yaml(
        tmp_path / "good.yaml",
        {
            "sets": {
                "good": {
                    "templates": [
                        {"id": "good-01", "input": "{{ premise }}", "target": "{{ answer }}"}
                    ]
                }
            }
        },
    )
    out = ok(run("lint", good, catalog_root=toy_root))
    assert "good.yaml: set good: no task uses this template set" in out
    assert "toy_ii" not in out  # only what the given file defines is checked


def test_lint_a_template_file_of_the_catalog_is_not_loaded_twice(run, toy_root):
    out = ok(run("lint", toy_root / "templates", catalog_root=toy_root))
    assert "duplicate template id" not in out and out.splitlines()[-1].startswith(
        "0 error(s), 1 warning(s)"
    )


def test_lint_a_shipped_template_file(run, h):
    out = ok(
        run("lint", h.REPO / "templates" / "nli.yaml", "--task", "anli_r1", "--rows", 1, fresh=True)
    )
    assert "duplicate template id" not in out and out.splitlines()[-1].startswith("0 error(s)")


def test_lint_unknown_task(run, h):
    h.assert_cli_error(run("lint", "--task", "anli_r9"), "unknown task 'anli_r9'", "anli_r1")


def test_lint_with_source_dir(run, toy_root, tmp_path, h):
    root = h.write_catalog_dir(
        toy_root.parent / "nosample",
        tasks=[
            {k: v for k, v in h.TOY_TASK.items() if k != "sample"}
            | {"source": {"kind": "jsonl", "path": "."}}
        ],
    )
    h.write_jsonl(tmp_path / "d" / "train.jsonl", h.toy_records(5))
    h.write_jsonl(tmp_path / "d" / "validation.jsonl", [dict(r, label=7) for r in h.toy_records(2)])
    assert ok(run("lint", catalog_root=root)).splitlines()[-1].startswith("0 error(s)")
    res = run("lint", "--source-dir", f"toy={tmp_path / 'd'}", catalog_root=root)
    assert res.exit_code == 1 and "record validation-0" in res.output


# ----------------------------------------------------------------------------- finetune


def test_finetune_without_its_extra(monkeypatch, h):
    monkeypatch.setitem(sys.modules, "jax", None)
    res = CliRunner().invoke(main, ["finetune", "--data", "x"])
    h.assert_cli_error(
        res, "flan finetune needs the 'jax' package: pip install 'flan-data[finetune]'"
    )


# ----------------------------------------------------------------------------- odds and ends


def test_catalog_show_task_without_sample(run, toy_root, h):
    root = h.write_catalog_dir(
        toy_root.parent / "nos", tasks=[{k: v for k, v in h.TOY_TASK.items() if k != "sample"}]
    )
    info = json.loads(ok(run("catalog", "show", "toy", "--json", catalog_root=root)))
    assert info["sample"] is None and info["source"] == {
        "kind": "jsonl",
        "path": "/nonexistent/toy",
    }
    out = ok(run("catalog", "show", "toy", catalog_root=root))
    assert "sample:" not in out and "source:       kind=jsonl path=/nonexistent/toy" in out


def test_mixture_list(run, catalog):
    out = ok(run("mixture", "list"))
    for name in catalog.mixtures:
        assert out.count(name) >= 1
    assert "source=sample" in out


def test_broken_pipe_is_a_quiet_exit(run, monkeypatch):
    import click

    def echo(*a, **kw):
        raise BrokenPipeError

    monkeypatch.setattr(click, "echo", echo)
    res = run("catalog", "stats")
    assert res.exit_code == 0 and "Traceback" not in (res.output or "")


def test_main_module_runs_the_cli(monkeypatch, capsys):
    import runpy

    monkeypatch.setattr(sys, "argv", ["flan", "--version"])
    with pytest.raises(SystemExit) as ei:
        runpy.run_module("flan_data", run_name="__main__")
    assert ei.value.code == 0
    assert capsys.readouterr().out.strip() == f"flan, version {__version__}"


def test_finetune_forwards_its_arguments(monkeypatch):
    import types

    seen = {}

    def fake_main(argv):
        seen["argv"] = argv
        return 3

    monkeypatch.setitem(sys.modules, "jax", types.ModuleType("jax"))
    monkeypatch.setitem(sys.modules, "finetune.cli", types.SimpleNamespace(main=fake_main))
    res = CliRunner().invoke(main, ["finetune", "--data", "d", "--steps=5", "--help"])
    assert seen["argv"] == [
        "--data",
        "d",
        "--steps=5",
        "--help",
    ]  # --help goes to the finetuner too
    assert res.exit_code == 3
