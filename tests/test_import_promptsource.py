"""`flan import promptsource`: converting promptsource templates.yaml files.

Unit tests run on invented fixtures in tests/fixtures/promptsource/ (good/: two
datasets plus a slug clash; bad/: files that cannot be used). The comparison
tests render side by side with promptsource 0.2.3's own ``Template.apply``
(its unmodified ``templates.py``, read from the sdist) when the sdist is
there, on records shaped to each template's fields; the real promptsource
files come from ../shared.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import sys
import tarfile
import types
from pathlib import Path

import jinja2.filters
import pytest
import yaml
from click.testing import CliRunner

from flan_data import Catalog
from flan_data import templates as templates_module
from flan_data.errors import FlanDataError, RecordError
from flan_data.importers import (
    PromptsourceError,
    convert_file,
    convert_tree,
    summarize,
    write_results,
)
from flan_data.importers.cli import import_group
from flan_data.importers.promptsource import _Loader
from flan_data.render import Renderer
from flan_data.templates import TemplateEngine

sys.path.insert(0, str(Path(__file__).parent))
from promptsource_records import record_for  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "promptsource"
GOOD, BAD = FIXTURES / "good", FIXTURES / "bad"
NLI = GOOD / "toy_nli" / "templates.yaml"
REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "promptsource" / "templates"
SDIST_NAME = "promptsource-0.2.3.tar.gz"
SDIST_HINT = (
    "promptsource 0.2.3's sdist is not here: `pip download --no-deps --no-binary=:all: "
    f"--python-version 3.9 promptsource==0.2.3 -d {REPO / '.cache'}` (or set FLAN_PROMPTSOURCE_SDIST)"
)


def _raw_templates(path: Path) -> dict:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)["templates"]


def _render(spec, row, engine=None):
    eng = engine or TemplateEngine()
    return eng.render(eng.compile(spec), row)


# ----------------------------------------------------------------------------- one file


def test_convert_file_converts_every_template_that_parses():
    r = convert_file(NLI)
    assert (r.dataset, r.subset, r.set_name, r.error) == ("toy_nli", None, "ps.toy_nli", None)
    assert r.total == len(_raw_templates(NLI)) == 15
    assert [t.id for t in r.converted] == [
        "ps.toy_nli.back_up_the_claim",
        "ps.toy_nli.pick_the_word",
        "ps.toy_nli.which_came_first",
        "ps.toy_nli.say_it_louder",
        "ps.toy_nli.count_words",
        "ps.toy_nli.no_target_here",
        "ps.toy_nli.random_prefix",
        "ps.toy_nli.three_parts",
        "ps.toy_nli.empty_target",
        "ps.toy_nli.back_up_the_claim_2",  # same slug as the first: made unique
        "ps.toy_nli.interleave",
        "ps.toy_nli.random_target",
        "ps.toy_nli.namespace_mutation",
        "ps.toy_nli.set_inside_if",
    ]
    assert {s.name: (s.code, s.reason) for s in r.skipped} == {
        "broken braces": (
            "syntax_error",
            "Jinja syntax error (line 1): expected token 'name', got '|'",
        ),
    }
    by_name = {t.name: t for t in r.converted}
    assert by_name["no target here"].method == "no-target"
    # the text is kept as promptsource has it; the dialect renders it
    raw = _raw_templates(NLI)
    for t in r.converted:
        assert t.input == raw[t.uuid]["jinja"] and t.target == ""
        assert t.answer_choices == raw[t.uuid]["answer_choices"]
    # fields: what the templates read before assigning it (not `tag`, set inside an {% if %})
    assert by_name["set inside if"].fields == ("claim", "flip", "note")
    assert r.fields() == ["claim", "flip", "left_word", "note", "right_word", "verdict"]


def test_description_keeps_metadata():
    t = convert_file(NLI).converted[0]
    assert t.description == (
        'promptsource toy_nli template "back up the claim" (uuid 0a000000-0000-4000-8000-000000000001); '
        "original_task: true; choices_in_prompt: true; metrics: Accuracy; languages: en; "
        "answer_choices: Agree ||| Disagree; reference: Invented for the flan-data tests."
    )


ROW = {"note": "The bridge closed in May.", "claim": "the bridge is open", "verdict": 1,
       "flip": True, "left_word": "hot", "right_word": "cold"}  # fmt: skip


def _by_name(r):
    return {t.name: spec for t, spec in zip(r.converted, r.specs())}


def test_promptsource_rules_whitespace_choices_and_split():
    r = convert_file(NLI)
    s = _by_name(r)
    assert _render(s["back up the claim"], ROW) == (
        "Note: The bridge closed in May.\nClaim: the bridge is open\n"
        "Does the note back up the claim? Agree or disagree?",
        "Disagree",
    )
    # answer_choices rendered from the record, split on '|||', visible as a list
    assert _render(s["pick the word"], ROW) == (
        "Pick the word that fits: hot or cold.\nthe bridge is open",
        "cold",
    )
    # '|||' inside {% if %}: the whole text renders once, then splits
    assert _render(s["which came first"], ROW)[1] == "the note"
    assert _render(s["which came first"], {**ROW, "flip": False})[1] == "the claim"
    # no block trimming: the newline after a block tag stays (promptsource's whitespace)
    qa = convert_file(GOOD / "toy_qa" / "easy" / "templates.yaml")
    row = {"question": "Which is largest?", "options": ["ant", "whale"], "answer_idx": 1}
    assert _render(qa.converted[0].to_spec(qa.set_name), row) == (
        "Q: Which is largest?\n\n- ant\n\n- whale\n\nA:",
        "whale",
    )
    # targets the input computes (set, namespace mutation) come along: one render
    assert _render(s["Say it LOUDER"], ROW)[1] == "THE BRIDGE IS OPEN!"
    assert _render(s["count words"], ROW)[1] == "4"
    assert _render(s["namespace mutation"], ROW)[1] == "the=THE bridge=BRIDGE is=IS open=OPEN"
    # a name set only in a branch is the template's own: empty when the branch is not taken
    assert _render(s["set inside if"], ROW)[0] == "the bridge is open (flipped)"
    assert _render(s["set inside if"], {**ROW, "flip": False}) == (
        "the bridge is open ()",
        "The bridge closed in May.",  # most_frequent
    )
    assert _render(s["interleave"], {**ROW, "claim": "ab", "note": "xy"}) == ("axby", "ab")
    assert _render(s["no target here"], ROW) == (
        "Write a claim about: The bridge closed in May.",
        "",
    )
    assert _render(s["empty target"], ROW)[1] == ""


def test_pipes_inside_field_values_never_split():
    s = _by_name(convert_file(NLI))
    row = {**ROW, "claim": "left ||| right", "note": "a|||b"}
    assert _render(s["back up the claim"], row)[0].endswith(
        "Claim: left ||| right\nDoes the note back up the claim? Agree or disagree?"
    )
    assert _render(s["interleave"], {**ROW, "claim": "x|||", "note": "12345"})[1] == "x|||"
    with pytest.raises(FlanDataError, match=r"rendered 3 parts separated by '\|\|\|'"):
        _render(s["three parts"], ROW)


def test_values_are_truncated_like_promptsource_unless_asked_not_to():
    long = "w" * 3000
    r = convert_file(NLI)
    spec = _by_name(r)["back up the claim"]
    assert spec.truncate == 2048
    text = _render(spec, {**ROW, "claim": long})[0]
    assert "w" * 2045 + "..." in text and "w" * 2046 not in text
    whole = convert_file(NLI, truncate=None)
    assert long in _render(_by_name(whole)["back up the claim"], {**ROW, "claim": long})[0]


def test_choice_and_random_are_seeded_and_input_target_agree():
    r = convert_file(NLI)
    s = _by_name(r)
    eng = TemplateEngine()
    ct = eng.compile(s["random target"])
    outs = set()
    for seed in range(40):
        out = eng.render(ct, {**ROW, "__seed": seed})
        assert out == eng.render(ct, {**ROW, "__seed": seed})  # reproducible
        outs.add(out[1])
    # drawn per render (not folded into a constant when the template compiles)
    assert outs == {ROW["note"], ROW["claim"]}
    prefixes = {eng.render(eng.compile(s["random prefix"]), {**ROW, "__seed": k})[0].split()[0]
                for k in range(40)}  # fmt: skip
    assert prefixes == {"Claim:", "Statement:"}


def test_renderer_seeds_choice_from_the_example_and_run_seed(tmp_path):
    out = tmp_path / "imp"
    write_results(convert_tree(GOOD), out)
    cat = Catalog.load(extra_files=[out])
    tr = Renderer(cat).task_renderer("ps.toy_nli")
    tid = "ps.toy_nli.random_prefix"
    rows = [(f"ex-{i}", {**ROW, "claim": f"claim {i}"}) for i in range(30)]
    a = tr.render_batch(rows, split="train", fmt="zs_noopt", seed=1, template_id=tid)
    b = tr.render_batch(rows, split="train", fmt="zs_noopt", seed=1, template_id=tid)
    c = tr.render_batch(rows, split="train", fmt="zs_noopt", seed=2, template_id=tid)
    assert a["inputs"] == b["inputs"] != c["inputs"]
    assert {x.split()[0] for x in a["inputs"]} == {"Claim:", "Statement:"}


# ----------------------------------------------------------------------------- trees, bad files


def test_convert_tree_makes_set_names_unique():
    results = convert_tree(GOOD)
    assert [Path(r.source).relative_to(GOOD).as_posix() for r in results] == [
        "toy-qa/easy/templates.yaml",
        "toy_nli/templates.yaml",
        "toy_qa/easy/templates.yaml",
    ]
    assert [r.set_name for r in results] == ["ps.toy_qa.easy", "ps.toy_nli", "ps.toy_qa.easy_2"]
    assert [t.id for t in results[2].converted] == [
        "ps.toy_qa.easy_2.question_then_options",
        "ps.toy_qa.easy_2.t_0b000000",
    ]
    s = summarize(results)
    assert (s["files"], s["files_failed"], s["templates"], s["converted"], s["skipped"]) == (
        3,
        0,
        18,
        17,
        1,
    )
    assert s["skip_codes"] == {"syntax_error": 1}
    assert s["methods"] == {"no-target": 1, "split": 16}
    json.dumps(s)  # JSON-able


@pytest.mark.parametrize(
    ("folder", "message"),
    [
        ("malformed", "malformed YAML: line 7, column 1: found unexpected end of stream"),
        (
            "not_promptsource",
            "not a promptsource template file (expected top-level keys 'dataset' and 'templates')",
        ),
        ("not_utf8", "not valid UTF-8 (byte offset 12)"),
        (
            "python_tag",
            "unsupported YAML: line 3, column 41: could not determine a constructor for the tag",
        ),
    ],
)
def test_bad_files_raise_clean_errors(folder, message):
    path = BAD / folder / "templates.yaml"
    with pytest.raises(PromptsourceError) as e:
        convert_file(path)
    assert isinstance(e.value, FlanDataError)
    assert str(e.value).startswith(f"{path}: {message}")


def test_bad_files_in_a_tree_are_reported_not_raised():
    results = convert_tree(BAD)
    assert len(results) == 4
    assert all(r.error and not r.converted and r.set_name is None for r in results)
    assert summarize(results)["files_failed"] == 4


def test_missing_or_empty_path(tmp_path):
    with pytest.raises(PromptsourceError, match="no such file or folder"):
        convert_tree(tmp_path / "nope")
    with pytest.raises(PromptsourceError, match="no promptsource templates.yaml files"):
        convert_tree(tmp_path)


def test_safe_loader_never_runs_python_tags():
    text = (BAD / "python_tag" / "templates.yaml").read_text()
    with pytest.raises(yaml.constructor.ConstructorError):
        yaml.load(text, Loader=_Loader)


def test_loader_tags_and_odd_entries_are_reported(tmp_path):
    f = tmp_path / "templates.yaml"
    f.write_text(
        "dataset: odd\ntemplates:\n"
        "  a: !Template {name: loop outside for, jinja: '{{ loop.index }} ||| {% break %}'}\n"
        "  b: !Template {name: not a mapping}\n"
        "  c: just text\n"
        "  d: !Template {name: no jinja, jinja: ''}\n"
        "  e: !Template {name: includes, jinja: '{% include \"x.j2\" %} ||| y'}\n",
        encoding="utf-8",
    )
    r = convert_file(f)
    assert r.total == 5
    assert {s.name: s.code for s in r.skipped} == {
        "loop outside for": "syntax_error",
        "not a mapping": "no_jinja",
        "": "invalid",
        "no jinja": "no_jinja",
        "includes": "unsupported",
    }


# ----------------------------------------------------------------------------- writing, using


def test_written_files_load_in_the_catalog_with_tasks_and_a_mixture(tmp_path):
    results = convert_tree(GOOD)
    out = tmp_path / "out"
    written = write_results(results, out)
    assert sorted(p.name for p in out.iterdir()) == [
        "promptsource_mixture.yaml",
        "promptsource_tasks.yaml",
        "ps.toy_nli.yaml",
        "ps.toy_qa.easy.yaml",
        "ps.toy_qa.easy_2.yaml",
    ]
    assert len(written) == 3
    cat = Catalog.load(extra_files=[out])
    for r in results:
        assert cat.template_sets[r.set_name] == tuple(t.id for t in r.converted)
        task = cat.task(r.set_name)
        assert (task.collection, task.source.kind, task.source.path, task.source.config) == (
            "promptsource",
            "hf",
            r.dataset,
            r.subset,
        )
        assert dict(task.fields) == {f: f for f in r.fields()}
        for t in r.converted:
            spec = cat.template(t.id)
            # the YAML round trip is byte-exact
            assert (spec.input, spec.answer_choices, spec.dialect, spec.truncate) == (
                t.input,
                t.answer_choices,
                "promptsource",
                2048,
            )
    assert [m.name for m in cat.mixture("promptsource").members] == ["promptsource"]
    text = written[str(NLI)].read_text(encoding="utf-8")
    assert text.startswith(
        f"# Generated by `flan import promptsource` from {NLI}\n# 14 of 15 templates converted"
    )
    assert "# skipped broken braces (0a000000-0000-4000-8000-000000000008): Jinja syntax" in text


def test_write_results_refuses_duplicate_sets(tmp_path):
    with pytest.raises(PromptsourceError, match="share the set name 'ps.toy_nli'"):
        write_results([convert_file(NLI), convert_file(NLI)], tmp_path)


def _hf_copy(tmp_path: Path, rows: list[dict]) -> Path:
    datasets = pytest.importorskip("datasets")
    path = tmp_path / "toy_nli_hf"
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(rows),
            "validation": datasets.Dataset.from_list(rows[:3]),
        }
    ).save_to_disk(str(path))
    return path


def _rows(n: int, bad: set[int] = frozenset()) -> list[dict]:
    return [{**ROW, "claim": f"claim number {i}", "verdict": 7 if i in bad else i % 2,
             "flip": i % 3 == 0} for i in range(n)]  # fmt: skip


def test_import_render_export_path_as_documented(tmp_path, h):
    """The README's path: import → render a task → export the mixture."""
    out = tmp_path / "imported"
    runner = CliRunner()
    from flan_data.cli import main

    res = runner.invoke(main, ["import", "promptsource", str(GOOD), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "3 file(s), 18 template(s): 17 converted, 1 skipped" in res.output
    data = _hf_copy(tmp_path, _rows(24))
    src = f"ps.toy_nli={data}"
    res = runner.invoke(main, ["--extra", str(out), "render", "ps.toy_nli", "--source-dir", src,
                               "--template", "ps.toy_nli.back_up_the_claim", "-n", "1", "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    row = json.loads(res.output.splitlines()[0])
    assert row["targets"] in ("Agree", "Disagree") and row["template_id"].startswith("ps.toy_nli.")
    res = runner.invoke(main, ["--extra", str(out), "catalog", "show", "ps.toy_nli", "--no-pager"])
    assert res.exit_code == 0, res.output
    assert "jinja (promptsource rules: rendered once, split on '|||'):" in res.output
    assert "      answer_choices:\n        Agree ||| Disagree" in res.output
    exp = tmp_path / "export"
    res = runner.invoke(main, ["--extra", str(out), "export", "--mixture", "promptsource", "--out", str(exp),
                               "--total", "30", "--exclude", "ps.toy_qa.easy", "--exclude", "ps.toy_qa.easy_2",
                               "--source-dir", src, "--on-error", "skip", "-q"])  # fmt: skip
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["verify", str(exp)])
    assert res.exit_code == 0, res.output


def test_template_failures_are_record_errors_skipped_and_counted(tmp_path):
    """A record that makes a template fail while rendering fails that record only.

    ("count words" calls claim.split(): an integer claim fails, in promptsource too.)
    """
    out = tmp_path / "imported"
    write_results(convert_tree(GOOD), out)
    cat = Catalog.load(extra_files=[out])
    tr = Renderer(cat).task_renderer("ps.toy_nli")
    rows = _rows(6)
    rows[2]["claim"] = rows[4]["claim"] = 7
    items = [(f"ex-{i}", r) for i, r in enumerate(rows)]
    tid = "ps.toy_nli.count_words"
    errors: list = []
    cols = tr.render_batch(items, split="train", fmt="zs_noopt", seed=0, template_id=tid,
                           errors=errors)  # fmt: skip
    assert cols["example_id"] == ["ex-0", "ex-1", "ex-3", "ex-5"]
    assert [(i, type(e)) for i, e in errors] == [(2, RecordError), (4, RecordError)]
    assert "record 'ex-2'" in str(errors[0][1]) and tid in str(errors[0][1])
    with pytest.raises(RecordError, match="record 'ex-2'"):
        tr.render_batch(items, split="train", fmt="zs_noopt", seed=0, template_id=tid)
    # promptsource's own rule for an index out of range: an empty string, not an error
    bad_label = [("ex-9", {**ROW, "verdict": 7})]
    cols = tr.render_batch(bad_label, split="train", fmt="zs_noopt", seed=0,
                           template_id="ps.toy_nli.back_up_the_claim")  # fmt: skip
    assert cols["targets"] == [""]


def test_export_with_symlinked_catalog_folders_and_two_workers(tmp_path, h):
    """A catalog whose collections/ and templates/ are symlinks loads once in workers."""
    real = tmp_path / "real"
    root = h.write_catalog_dir(real)
    link = tmp_path / "linked"
    link.mkdir()
    (link / "catalog.yaml").write_bytes((root / "catalog.yaml").read_bytes())
    for d in ("collections", "templates", "sample_data"):
        if (root / d).exists():
            (link / d).symlink_to(root / d)
    out = tmp_path / "imported"
    write_results(convert_tree(GOOD), out)
    cat = Catalog.load(link, extra_files=[out])
    from flan_data.export.local import LocalExecutor
    from flan_data.render import RenderConfig

    ex = LocalExecutor(cat, RenderConfig(), workers=2)
    try:
        from flan_data.export.local import _state  # noqa: F401 - the worker-side state exists

        names = list(ex.map(_task_names, [0, 1]))
    finally:
        ex.close()
    assert names[0] == names[1] == sorted(cat.tasks)


def _task_names(_: int) -> list[str]:
    from flan_data.export.local import _state

    return sorted(_state("catalog").tasks)


# ----------------------------------------------------------------------------- CLI


def test_cli_dry_run_reports_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(import_group, ["promptsource", str(GOOD)])
    assert res.exit_code == 0, res.output
    assert "ps.toy_nli  converted 14, skipped 1" in res.output
    assert "    skipped 'broken braces': Jinja syntax error" in res.output
    assert "ps.toy_qa.easy " not in res.output  # files with nothing skipped: only in --verbose
    assert (
        "3 file(s), 18 template(s): 17 converted, 1 skipped, 0 file(s) could not be read"
        in res.output
    )
    assert "dry run: nothing written" in res.output
    assert list(tmp_path.iterdir()) == []
    res = CliRunner().invoke(import_group, ["promptsource", str(GOOD), "--verbose"])
    assert "ps.toy_qa.easy  converted 1, skipped 0" in res.output


def test_cli_out_json_and_no_truncate(tmp_path):
    out = tmp_path / "imported"
    res = CliRunner().invoke(
        import_group, ["promptsource", str(NLI), "--out", str(out), "--json", "--no-truncate"]
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert (report["files"], report["templates"], report["converted"], report["skipped"]) == (
        1,
        15,
        14,
        1,
    )
    assert report["results"][0]["output"] == str(out / "ps.toy_nli.yaml")
    doc = yaml.safe_load((out / "ps.toy_nli.yaml").read_text())
    assert doc["sets"]["ps.toy_nli"]["truncate"] is None
    assert Catalog.load(extra_files=[out]).template("ps.toy_nli.interleave").truncate is None


def test_cli_bad_files_exit_1_without_traceback():
    res = CliRunner().invoke(import_group, ["promptsource", str(BAD)])
    assert res.exit_code == 1
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert (
        f"{BAD / 'not_utf8' / 'templates.yaml'}: ERROR: not valid UTF-8 (byte offset 12)"
        in res.output
    )
    assert "4 file(s) could not be read" in res.output
    assert "Traceback" not in res.output


def test_cli_missing_path_is_a_clean_error(tmp_path):
    res = CliRunner().invoke(import_group, ["promptsource", str(tmp_path / "nope")])
    assert res.exit_code == 1
    assert isinstance(res.exception, SystemExit)
    assert f"Error: {tmp_path / 'nope'}: no such file or folder" in res.output


# ----------------------------------------------------------------------------- side by side with promptsource


def _sdist() -> Path | None:
    for p in (os.environ.get("FLAN_PROMPTSOURCE_SDIST"), REPO / ".cache" / SDIST_NAME):
        if p and Path(p).is_file():
            return Path(p)
    return None


@pytest.fixture(scope="module")
def promptsource(tmp_path_factory):
    """promptsource 0.2.3's own templates.py, unmodified, imported from its sdist."""
    sdist = _sdist()
    if sdist is None:
        pytest.skip(SDIST_HINT)
    pytest.importorskip("pandas")  # templates.py imports it
    tmp = tmp_path_factory.mktemp("promptsource")
    with tarfile.open(sdist) as tf:
        src = tf.extractfile("promptsource-0.2.3/promptsource/templates.py").read()
    path = tmp / "ps_templates.py"
    path.write_bytes(src)
    if "pkg_resources" not in sys.modules:
        try:
            import pkg_resources  # noqa: F401
        except ImportError:  # gone from recent setuptools; templates.py only asks for a path
            stub = types.ModuleType("pkg_resources")
            stub.resource_filename = lambda package, name: str(tmp / name)
            sys.modules["pkg_resources"] = stub
    spec = importlib.util.spec_from_file_location("ps_templates_0_2_3", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class _Scripted:
    """Stands in for the RNG promptsource draws from, answering each draw with
    the value our render drew from the same options: so promptsource renders the
    one output it would give for those draws."""

    def __init__(self, log: list[tuple[list, object]]):
        self.log, self.missed = list(log), 0

    def choice(self, seq):
        values = list(seq)
        for i, (opts, chosen) in enumerate(self.log):
            if opts == values:
                del self.log[i]
                return chosen
        self.missed += 1
        return random.Random(0).choice(values)


def compare_with_promptsource(ps, results, out_dir: Path, variants=(0, 1)) -> dict:
    """Render every converted template through the catalog (task renderer, zs_noopt)
    and through promptsource's ``Template.apply`` on the same synthetic records."""
    write_results(results, out_dir)
    cat = Catalog.load(extra_files=[out_dir])
    renderer = Renderer(cat)
    eng = TemplateEngine()
    stats = {"templates": 0, "compared": 0, "identical": 0, "seeded": 0, "promptsource_failed": 0}
    mismatches = []
    for r in results:
        raw = _raw_templates(Path(r.source))
        trees = []
        ok = {t.uuid for t in r.converted}
        for uuid, t in raw.items():
            if uuid in ok:
                trees.append(eng.ps_env.parse(t["jinja"]))
                if t.get("answer_choices"):
                    trees.append(eng.ps_env.parse(t["answer_choices"]))
        tr = renderer.task_renderer(r.set_name)
        for t in r.converted:
            stats["templates"] += 1
            rt = raw[t.uuid]
            ref_t = ps.Template(rt.get("name", ""), rt["jinja"], rt.get("reference", ""),
                                answer_choices=rt.get("answer_choices"))  # fmt: skip
            compared = False
            for v in variants:
                record = record_for(trees, r.fields(), variant=v)
                log: list = []
                draw = templates_module._draw

                def logged(values, _draw=draw, _log=log):
                    chosen = _draw(values)
                    _log.append((list(values), chosen))
                    return chosen

                templates_module._draw = logged
                try:
                    ex = tr.render_batch([(f"ex-{v}", record)], split="train", fmt="zs_noopt",
                                         seed=5, template_id=t.id, errors=(errs := []))  # fmt: skip
                finally:
                    templates_module._draw = draw
                scripted = _Scripted(log)
                saved = (ps.random, jinja2.filters.random)
                ps.random = jinja2.filters.random = scripted
                try:
                    ref = ref_t.apply(record)
                except Exception:  # noqa: BLE001 - a record shape promptsource cannot render
                    continue
                finally:
                    ps.random, jinja2.filters.random = saved
                compared = True
                if log:
                    stats["seeded"] += 1
                if len(ref) > 2:
                    ok = bool(errs) and f"rendered {len(ref)} parts" in str(errs[0][1])
                    ours = errs[0][1] if errs else (ex["inputs"], ex["targets"])
                else:
                    ours = (ex["inputs"][0], ex["targets"][0]) if not errs else errs[0][1]
                    ok = ours == (ref[0], ref[1] if len(ref) > 1 else "")
                # (a draw promptsource makes that our render never needed, e.g. one Jinja
                # folded at compile time inside a branch not taken, cannot change the text)
                stats["identical"] += ok
                if not ok:
                    mismatches.append((t.id, v, ours, ref))
            stats["compared"] += compared
            stats["promptsource_failed"] += not compared
            if not compared:
                stats.setdefault("not_compared", []).append(t.id)
    stats["mismatches"] = mismatches
    return stats


def test_fixtures_render_exactly_as_promptsource(promptsource, tmp_path):
    stats = compare_with_promptsource(promptsource, convert_tree(GOOD), tmp_path / "out")
    assert stats["mismatches"] == []
    assert stats["compared"] == stats["templates"] == 17, stats
    assert stats["seeded"] >= 4  # random prefix, random target (both variants)


@pytest.mark.shared
def test_every_real_promptsource_template_converts_and_renders_exactly(promptsource, tmp_path):
    if not SHARED.is_dir():
        pytest.skip("needs ../shared/data/promptsource/templates")
    results = convert_tree(SHARED)
    s = summarize(results)
    assert (s["files"], s["templates"], s["converted"], s["files_failed"]) == (279, 2085, 2085, 0)
    stats = compare_with_promptsource(promptsource, results, tmp_path / "out", variants=(0,))
    assert stats["mismatches"] == [], stats["mismatches"][:5]
    # promptsource itself renders most synthetic records; every one it renders, we render the same
    assert stats["compared"] >= 0.88 * stats["templates"], stats
    assert stats["seeded"] >= 40, stats
    print({k: v for k, v in stats.items() if k != "mismatches"})
