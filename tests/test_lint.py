"""The template/task linter: the shipped catalog is clean; each check fires on a tiny bad catalog."""

from __future__ import annotations

import copy

import pytest

from flan_data import Catalog, Problem, UnknownNameError, lint
from flan_data.linter import RENDERER_VARIABLES, lint_task
from flan_data.render import RenderConfig, Renderer


def errors(problems):
    return [p for p in problems if p.level == "error"]


def warnings(problems):
    return [p for p in problems if p.level == "warning"]


def one(problems, level="error"):
    ps = [p for p in problems if p.level == level]
    assert len(ps) == 1, [str(p) for p in problems]
    return ps[0]


# ----------------------------------------------------------------------------- the shipped catalog


def test_every_shipped_template_lints_clean(catalog):
    problems = lint(catalog)
    assert not errors(problems), "\n".join(str(p) for p in errors(problems))


# ----------------------------------------------------------------------------- a clean tiny catalog


def test_toy_catalog_is_clean_but_for_the_unused_set(make_catalog):
    problems = lint(make_catalog())
    w = one(problems, "warning")
    assert (
        w.where.endswith("toy.yaml: set toy_ii") and w.message == "no task uses this template set"
    )
    assert not errors(problems)


def test_problem_str():
    assert str(Problem("error", "f.yaml: task t", "bad")) == "error: f.yaml: task t: bad"
    assert {"options_block", "options", "answer_text", "exemplars"} == RENDERER_VARIABLES


# ----------------------------------------------------------------------------- static checks


def test_template_that_does_not_compile_stops_the_lint(make_catalog, h):
    t = copy.deepcopy(h.TOY_TEMPLATES)
    t["sets"]["toy_ii"]["templates"][0]["target"] = "{{ hypothesis "
    problems = lint(make_catalog(templates=t))
    e = one(problems)
    assert e.where.endswith("toy.yaml: toy_ii-01")
    assert "template 'toy_ii-01' (target), line 1" in e.message
    assert not any("task" in p.where for p in problems)  # task checks did not run


def test_template_security_error_at_compile_time_is_reported(make_catalog, h):
    t = copy.deepcopy(h.TOY_TEMPLATES)
    t["sets"]["toy"]["templates"][0]["input"] = "{{ (''.__class__ or 1) }}{{ options_block }}"
    e = one(lint(make_catalog(templates=t)))
    assert "toy-01" in e.where and "sandbox" in e.message


def test_template_security_error_at_render_time_is_reported(make_catalog, h):
    t = copy.deepcopy(h.TOY_TEMPLATES)
    t["sets"]["toy"]["templates"][0]["input"] = "{{ premise.__class__.__mro__ }}{{ options_block }}"
    problems = errors(lint(make_catalog(templates=t)))
    assert problems and all("toy-01" in p.where and "sandbox" in p.message for p in problems)


def test_variable_the_task_does_not_provide(make_catalog, h):
    t = copy.deepcopy(h.TOY_TEMPLATES)
    t["sets"]["toy"]["templates"][1]["input"] += " {{ title }}"
    e = one(lint(make_catalog(templates=t)))
    assert e.where.endswith("task toy, template toy-02")
    assert (
        e.message
        == "uses title, which the task does not provide (fields: answer, hypothesis, premise)"
    )


def test_options_task_with_a_template_that_never_shows_them(make_catalog, h):
    t = copy.deepcopy(h.TOY_TEMPLATES)
    t["sets"]["toy"]["templates"][0]["input"] = "{{ premise }} / {{ hypothesis }}"
    e = one(lint(make_catalog(templates=t)))
    assert "template toy-01" in e.where and "never shows {{ options_block }}" in e.message


def test_few_shot_template_without_exemplars(make_catalog, h):
    t = copy.deepcopy(h.TOY_TEMPLATES)
    t["sets"]["fs"] = {
        "kind": "few_shot",
        "templates": [
            {"id": "fs-1", "input": "{{ premise }}{{ options_block }}", "target": "{{ answer }}"}
        ],
    }
    e = one(lint(make_catalog(templates=t, tasks=[dict(h.TOY_TASK, templates=["toy", "fs"])])))
    assert "template fs-1" in e.where and "must use the `exemplars` list" in e.message


def test_only_inversion_templates_without_inversion_of(make_catalog, h):
    problems = lint(make_catalog(tasks=[dict(h.TOY_TASK, templates=["toy_ii"])]))
    w = [p for p in warnings(problems) if "task toy" in p.where]
    assert len(w) == 1 and w[0].message == "only inversion templates but no metadata.inversion_of"
    # with inversion_of set (and the original task present) it is fine
    tasks = [
        dict(h.TOY_TASK),
        dict(h.TOY_TASK, name="toy_ii", templates=["toy_ii"], metadata={"inversion_of": "toy"}),
    ]
    assert not [p for p in lint(make_catalog(subdir="b", tasks=tasks)) if "task" in p.where]


def test_task_whose_field_expression_does_not_compile(make_catalog, h):
    cat = make_catalog(
        tasks=[
            dict(
                h.TOY_TASK,
                fields={
                    "premise": "premise[",
                    "hypothesis": "hypothesis",
                    "answer": "options[label]",
                },
            )
        ]
    )
    e = one(lint(cat))
    assert (
        e.where.endswith("flan2021.yaml: task toy")
        and "field 'premise': invalid expression 'premise['" in e.message
    )


# ----------------------------------------------------------------------------- render checks


def test_unreadable_sample_data(make_catalog, h):
    e = one(lint(make_catalog(samples={})))
    assert e.where.endswith("task toy") and e.message.startswith("cannot read records: ")
    assert "no such file or folder" in e.message


def test_bad_record_is_a_problem_not_an_exception(make_catalog, h):
    recs = h.toy_records(3, "v")
    recs[1]["label"] = "two"
    problems = lint(make_catalog(samples={"toy": {"train": h.toy_records(8), "validation": recs}}))
    es = errors(problems)
    assert es and all("record validation-1" in p.where for p in es)
    # reported once per bad record (before rendering), not once per template x format
    assert len(es) == 1 and "bad record" in es[0].message and "'answer'" in es[0].message


def test_answer_not_among_options_does_not_crash_lint(make_catalog, h):
    task = copy.deepcopy(h.TOY_TASK)
    task["fields"]["answer"] = "gold"
    val = [dict(r, gold="yes") for r in h.toy_records(3, "v")]
    val[1]["gold"] = "perhaps"
    cat = make_catalog(
        tasks=[task],
        samples={
            "toy": {"train": [dict(r, gold="no") for r in h.toy_records(8)], "validation": val}
        },
    )
    es = errors(lint(cat))  # used to raise RecordError from the options check
    assert es and all(
        "record validation-1" in p.where
        and "answer 'perhaps' is not one of the options" in p.message
        for p in es
    )


def test_empty_render(make_catalog, h):
    recs = h.toy_records(2, "v")
    recs[0]["premise"] = recs[0]["hypothesis"] = "  "
    t = copy.deepcopy(h.TOY_TEMPLATES)
    t["sets"]["toy"]["templates"] = [
        {
            "id": "toy-01",
            "input": "{{ premise }}{{ hypothesis }}{% if false %}{{ options_block }}{% endif %}",
            "target": "{{ answer }}",
        }
    ]
    problems = lint(
        make_catalog(templates=t, samples={"toy": {"train": h.toy_records(8), "validation": recs}})
    )
    empties = [p for p in errors(problems) if p.message == "renders an empty input"]
    assert empties and all("record validation-0" in p.where for p in empties)
    # the block is referenced but never shown: the opt format lacks it
    assert any(
        p.message == "the zs_opt format does not show the options block" for p in errors(problems)
    )


def test_noopt_format_that_still_shows_the_options(make_catalog, h):
    t = copy.deepcopy(h.TOY_TEMPLATES)
    t["sets"]["toy"]["templates"][1]["input"] = (
        "{{ premise }}\n\nOPTIONS:\n- yes\n- maybe\n- no{{ options_block }}"
    )
    es = errors(lint(make_catalog(templates=t)))
    assert es and all("template toy-02" in p.where for p in es)
    assert {p.message for p in es if p.rule is None} == {
        "the zs_noopt format still shows the options block"
    }
    # the text rule sees the same thing: the noopt input talks about options
    assert {p.rule for p in es if p.rule} == {"noopt_choice_words"}


def test_no_exemplar_fits_the_budget_warning(make_catalog, h):
    long = [dict(r, premise=" ".join(["word"] * 2000)) for r in h.toy_records(8)]
    problems = lint(
        make_catalog(samples={"toy": {"train": long, "validation": h.toy_records(2, "v")}}), rows=1
    )
    w = [p for p in warnings(problems) if p.message == "no exemplar fits the length budget"]
    assert w and all("format fs_" in p.where for p in w)
    assert not errors(problems)


def test_source_dirs_make_a_task_without_sample_readable(make_catalog, h, tmp_path):
    task = {k: v for k, v in h.TOY_TASK.items() if k != "sample"} | {
        "source": {"kind": "jsonl", "path": "toydata"}
    }
    cat = make_catalog(tasks=[task])
    assert not errors(lint(cat))  # static only: nothing to read
    bad = tmp_path / "real"
    h.write_jsonl(bad / "toydata" / "train.jsonl", h.toy_records(5))
    h.write_jsonl(
        bad / "toydata" / "validation.jsonl", [dict(r, label=5) for r in h.toy_records(2)]
    )
    assert errors(lint(cat, source_dirs={"toy": bad}))
    assert errors(lint(cat, source_dirs={"flan2021": bad}))


# ----------------------------------------------------------------------------- narrowing


def test_lint_only_some_tasks(make_catalog, h):
    bad = dict(h.TOY_TASK, name="bad", templates=["toy_ii"])
    cat = make_catalog(tasks=[dict(h.TOY_TASK), bad])
    assert [p for p in lint(cat, tasks=["toy"]) if "task" in p.where] == []
    assert [p for p in lint(cat, tasks=["bad"]) if "task bad" in p.where]


def test_lint_unknown_task_name_is_an_error(make_catalog):
    with pytest.raises(UnknownNameError, match=r"unknown task 'tyo'; did you mean: toy"):
        lint(make_catalog(), tasks=["tyo"])


def test_lint_only_some_template_files(tmp_path, h):
    root = h.write_catalog_dir(tmp_path / "c")
    other = h.write_yaml(
        root / "templates" / "other.yaml",
        {"sets": {"lonely": {"templates": [{"id": "l-1", "input": "{{ x }", "target": "y"}]}}},
    )
    cat = Catalog.load(root)
    only_toy = lint(cat, template_files=[root / "templates" / "toy.yaml"])
    assert not errors(only_toy) and any("set toy_ii" in p.where for p in only_toy)
    only_other = lint(cat, template_files=[other])
    assert one(only_other).where.endswith("other.yaml: l-1")
    assert not any("toy" in p.where for p in only_other)


def test_lint_task_directly(make_catalog):
    cat = make_catalog()
    r = Renderer(cat, RenderConfig())
    assert lint_task(r, cat.task("toy"), rows=1) == []


# ----------------------------------------------------------------------------- text rules (issue 11)


def _with_template(h, tmpl: dict, kind: str = "zero_shot", options=None, **task_kw):
    t = copy.deepcopy(h.TOY_TEMPLATES)
    t["sets"]["toy"] = {"kind": kind, "templates": [tmpl]}
    task = dict(h.TOY_TASK, **task_kw)
    if options is not None:
        task["options"] = options
    return t, [task]


@pytest.mark.parametrize(
    ("rule", "tmpl", "kw"),
    [
        ("stacked_cue", {"id": "toy-01", "input": "Question: Q: {{ premise }}{{ options_block }}",
                         "target": "{{ answer }}"}, {}),
        ("stacked_cue", {"id": "toy-01", "input": "{{ premise }}{{ options_block }}\nA:",
                         "target": "Answer: {{ answer }}"}, {}),
        ("doubled_option_punct", {"id": "toy-01", "input": "{{ premise }} Is it {{ options[0] }}.{{ options_block }}",
                                  "target": "{{ answer }}"}, {"options": ["yes!", "maybe", "no"]}),
        ("noopt_choice_words", {"id": "toy-01", "input": "{{ premise }}\nChoose the best option.{{ options_block }}",
                                "target": "{{ answer }}"}, {}),
        ("cot_target_no_answer", {"id": "toy-01", "input": "{{ premise }}{{ options_block }}",
                                  "target": "{{ hypothesis }} {{ answer_text }} is it, I think."},
         {"kind": "cot"}),
    ],
)  # fmt: skip
def test_each_text_rule_fires_with_its_name_and_counts(make_catalog, h, rule, tmpl, kw):
    from flan_data.linter import TEXT_RULES, rule_counts

    kind = kw.pop("kind", "zero_shot")
    t, tasks = _with_template(h, tmpl, kind, **kw)
    problems = lint(make_catalog(templates=t, tasks=tasks))
    counts = rule_counts(problems)
    assert counts[rule] > 0, [str(p) for p in problems]
    assert set(counts) == set(TEXT_RULES)
    assert all(v == 0 for k, v in counts.items() if k != rule), counts
    hit = next(p for p in problems if p.rule == rule)
    assert hit.level == "error" and "toy-01" in hit.where and f"[{rule}]" in hit.message
    # found on the sample rows and on synthetic rows alike
    assert any("synthetic rows" in p.where for p in problems if p.rule == rule)


def test_fewshot_style_pairs_are_checked(make_catalog, h):
    """Every template × few-shot style pair is composed; a stacked pair names the style."""
    t = copy.deepcopy(h.TOY_TEMPLATES)
    t["sets"]["toy"]["templates"] = [
        {"id": "toy-01", "input": "{{ premise }}{{ options_block }}\nA:", "target": "Answer: {{ answer }}"}
    ]  # fmt: skip
    problems = [p for p in lint(make_catalog(templates=t)) if p.rule == "stacked_cue"]
    assert any(p.where.endswith("as few-shot with style st-qa") for p in problems), problems
    # a clean template composes cleanly with the same style
    assert not [p for p in lint(make_catalog()) if p.rule]


def test_shipped_catalog_reports_zero_for_every_text_rule(catalog):
    from flan_data.linter import rule_counts

    counts = rule_counts(lint(catalog, rows=2))
    assert counts and all(v == 0 for v in counts.values()), counts


def test_public_lint_is_the_function_whatever_the_import_order():
    """`from flan_data import Problem, lint` imports the lint module first: still the function."""
    import subprocess
    import sys

    for code in (
        "from flan_data import Problem, lint; assert callable(lint), lint",
        "from flan_data import lint, Problem; assert callable(lint), lint",
        # the checks' module imported directly first (as the CLI and some tests do)
        "import flan_data.linter; from flan_data import lint; assert callable(lint), lint",
        "from flan_data.linter import synthetic_rows; from flan_data import lint; assert callable(lint), lint",
    ):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
