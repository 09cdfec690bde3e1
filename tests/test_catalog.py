"""Catalog loading, schema validation, lookups; and the frozen specs it builds."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import MappingProxyType

import pytest
import yaml

from flan_data import Catalog, CatalogError, UnknownNameError
from flan_data.catalog import default_root, read_yaml
from flan_data.specs import (
    FORMATS,
    RenderedExample,
    SourceSpec,
    TaskSpec,
    frozen_mapping,
    thaw,
)

# ----------------------------------------------------------------------------- helpers


def task_with(h, **changes):
    """The toy task with top-level keys replaced (None deletes a key)."""
    t = copy.deepcopy(h.TOY_TASK)
    for k, v in changes.items():
        if v is None:
            t.pop(k, None)
        else:
            t[k] = v
    return t


def load_error(make_catalog, **kw) -> CatalogError:
    with pytest.raises(CatalogError) as ei:
        make_catalog(**kw)
    return ei.value


# ----------------------------------------------------------------------------- the shipped catalog


def test_bundled_catalog_loads_and_has_the_sample_tasks(catalog, h):
    assert set(catalog.collections) == {"flan2021", "t0sf", "niv2", "cot", "dialog"}
    for name in h.SAMPLE_TASKS:
        t = catalog.task(name)
        assert t.sample is not None, name
        assert catalog.templates_for(t), name
    assert "demo" in catalog.mixtures


def test_bundled_inversions_point_at_real_tasks(catalog):
    inversions = [t for t in catalog.tasks.values() if t.metadata.inversion_of]
    assert inversions
    for t in inversions:
        assert t.name.endswith("_ii") and t.metadata.inversion_of == t.name[:-3]
        assert all(ct.kind == "inversion" for ct in catalog.templates_for(t))


def test_bundled_template_ids_are_unique_and_grouped(catalog):
    ids = [i for ids in catalog.template_sets.values() for i in ids]
    assert len(ids) == len(set(ids)) == len(catalog.templates)
    for set_name, ids in catalog.template_sets.items():
        assert all(catalog.template(i).set == set_name for i in ids)


def test_default_root_is_the_repository_or_the_wheel(h):
    root = default_root()
    assert (root / "catalog.yaml").is_file()
    assert root in (h.REPO, Path(__import__("flan_data").__file__).resolve().parent / "_bundled")


def test_aliases_and_lookups(catalog):
    assert catalog.collection("muffin").name == "flan2021"
    assert catalog.collection("flan2021").name == "flan2021"
    assert catalog.tasks_in("muffin") == tuple(
        t for t in catalog.tasks.values() if t.collection == "flan2021"
    )
    assert catalog.mixture("demo").source == "sample"
    assert catalog.fewshot_style(catalog.fewshot_styles[0].id) is catalog.fewshot_styles[0]
    with pytest.raises(UnknownNameError, match="unknown few-shot style 'fs-999'"):
        catalog.fewshot_style("fs-999")
    with pytest.raises(UnknownNameError, match="unknown template 'nli-99'; did you mean: nli-"):
        catalog.template("nli-99")
    with pytest.raises(UnknownNameError, match="unknown collection 'muffn'; did you mean: muffin"):
        catalog.collection("muffn")


def test_search_filters(catalog):
    names = [t.name for t in catalog.search("anli")]
    assert names[:2] == ["anli_r1", "anli_r1_ii"]
    assert {t.collection for t in catalog.search(collection="niv2")} == {"niv2"}
    assert all(
        "entailment" in t.metadata.category.lower() for t in catalog.search(category="ENTAILMENT")
    )
    assert catalog.search(category="entailment")
    assert [t.name for t in catalog.search("facebook/anli")][:1] == [
        "anli_r1"
    ]  # matches the source path
    assert catalog.search("no-such-task-anywhere") == []
    assert len(catalog.search()) == len(catalog.tasks)


def test_repr_and_fingerprint(catalog):
    r = repr(catalog)
    assert r.startswith("Catalog(root=") and f"tasks={len(catalog.tasks)}" in r and "'demo'" in r
    fp = catalog.fingerprint
    assert len(fp) == 64 and fp == catalog.fingerprint
    assert catalog.files[0].name == "catalog.yaml"


def test_catalog_is_immutable(catalog):
    with pytest.raises(TypeError):
        catalog.tasks["x"] = None  # type: ignore[index]
    with pytest.raises(AttributeError):
        catalog.root = Path("/")  # type: ignore[misc]
    with pytest.raises(TypeError):
        catalog.task("anli_r1").fields["premise"] = "x"  # type: ignore[index]


# ----------------------------------------------------------------------------- tiny catalogs


def test_toy_catalog_loads(make_catalog):
    cat = make_catalog()
    t = cat.task("toy")
    assert t.collection == "flan2021" and t.file.endswith("flan2021.yaml")
    assert t.options == ("yes", "maybe", "no") and t.has_options and t.options_field is None
    assert t.exemplars == "pool" and t.exemplar_field is None
    assert t.source == SourceSpec(kind="jsonl", path="/nonexistent/toy")
    assert t.metadata.category == "Toy NLI" and t.metadata.languages == ("en",)
    assert (t.metadata.held_out, t.metadata.exclude_from_training, t.metadata.inversion_of) == (
        False,
        False,
        None,
    )
    assert cat.template_sets == {"toy": ("toy-01", "toy-02"), "toy_ii": ("toy_ii-01",)}
    assert [s.id for s in cat.fewshot_styles] == ["st-qa"]
    assert cat.collection("alias1").description == "A test collection."
    assert cat.sample_dir == cat.root / "sample_data"
    assert cat.mixtures == {}


def test_root_may_be_the_catalog_file(tmp_path, h):
    root = h.write_catalog_dir(tmp_path / "c")
    assert Catalog.load(root / "catalog.yaml").root == root


def test_missing_catalog_file(tmp_path):
    with pytest.raises(CatalogError, match=r"catalog\.yaml: file not found"):
        Catalog.load(tmp_path)


def test_fingerprint_changes_with_any_file(tmp_path, h):
    root = h.write_catalog_dir(tmp_path / "c")
    a = Catalog.load(root).fingerprint
    assert Catalog.load(root).fingerprint == a
    p = root / "templates" / "toy.yaml"
    p.write_text(p.read_text() + "\n# a comment\n")
    assert Catalog.load(root).fingerprint != a


def test_fingerprint_does_not_depend_on_the_folder(tmp_path, h):
    a = Catalog.load(h.write_catalog_dir(tmp_path / "one")).fingerprint
    b = Catalog.load(h.write_catalog_dir(tmp_path / "two")).fingerprint
    assert a == b


def test_defaults_merge_shallowly_and_metadata_key_by_key(make_catalog, h):
    doc = {
        "collection": "flan2021",
        "defaults": {
            "metadata": {"languages": ["de"], "license": "mit"},
            "options": ["yes", "maybe", "no"],
            "templates": ["toy"],
        },
        "tasks": [
            {k: v for k, v in h.TOY_TASK.items() if k not in ("options", "templates")}
            | {"metadata": {"category": "C"}},
            task_with(h, name="toy2", metadata={"license": "apache-2.0"}, templates=["toy_ii"]),
        ],
    }
    cat = make_catalog(tasks=yaml.safe_dump(doc))
    a, b = cat.task("toy"), cat.task("toy2")
    assert (
        a.metadata.languages == ("de",)
        and a.metadata.license == "mit"
        and a.metadata.category == "C"
    )
    assert a.templates == ("toy",) and a.options == ("yes", "maybe", "no")
    assert b.metadata.license == "apache-2.0" and b.metadata.languages == ("de",)
    assert b.templates == ("toy_ii",)


def test_name_placeholder_in_source_path_and_config(make_catalog, h):
    cat = make_catalog(
        tasks=[
            task_with(
                h,
                source={
                    "kind": "hf",
                    "path": "org/{name}",
                    "config": "{name}-cfg",
                    "revision": "abc",
                },
            )
        ]
    )
    s = cat.task("toy").source
    assert (s.path, s.config, s.revision) == ("org/toy", "toy-cfg", "abc")
    assert s.describe() == "hf:org/toy config=toy-cfg revision=abc"


def test_source_options_and_splits(make_catalog, h):
    src = {"kind": "csv", "path": "x", "splits": {"train": "tr", "validation": "dev"}, "id_field": "id",
           "validation_size": 5, "note": "n", "delimiter": ";", "data_files": {"tr": "a.csv"}}  # fmt: skip
    s = make_catalog(tasks=[task_with(h, source=src)]).task("toy").source
    assert dict(s.splits) == {"train": "tr", "validation": "dev"}
    assert (s.id_field, s.validation_size, s.note) == ("id", 5, "n")
    assert thaw(s.options) == {"delimiter": ";", "data_files": {"tr": "a.csv"}}


def test_options_from_a_field_and_metadata_extras(make_catalog, h):
    t = task_with(h, options={"field": "choices"}, exemplars="field:examples",
                  metadata={"category": "c", "task_type": "tt", "source_dataset": "sd", "niv2_split": "test", "held_out": True,
                            "exclude_from_training": True})  # fmt: skip
    spec = make_catalog(tasks=[t]).task("toy")
    assert spec.options is None and spec.options_field == "choices" and spec.has_options
    assert spec.exemplar_field == "examples"
    assert (
        spec.metadata.task_type == "tt"
        and spec.metadata.held_out
        and spec.metadata.exclude_from_training
    )
    assert dict(spec.metadata.extra) == {"source_dataset": "sd", "niv2_split": "test"}


def test_a_single_string_is_one_template_set(make_catalog, h):
    assert make_catalog(tasks=[task_with(h, templates="toy")]).task("toy").templates == ("toy",)


def test_numbers_are_accepted_as_strings(make_catalog, h):
    assert make_catalog(tasks=[task_with(h, options=[1, 2, 3])]).task("toy").options == (
        "1",
        "2",
        "3",
    )


def test_extra_files_add_collections_and_templates(tmp_path, h):
    root = h.write_catalog_dir(tmp_path / "c")
    extra_t = h.write_yaml(
        tmp_path / "mine" / "t.yaml",
        {
            "sets": {
                "mine": {
                    "templates": [
                        {
                            "id": "mine-01",
                            "input": "{{ premise }}{{ options_block }}",
                            "target": "{{ answer }}",
                        }
                    ]
                }
            }
        },
    )
    extra_c = h.write_yaml(
        tmp_path / "mine" / "c.yaml",
        {"collection": "flan2021", "tasks": [task_with(h, name="mine", templates=["mine"])]},
    )
    cat = Catalog.load(root, extra_files=[tmp_path / "mine"])
    assert cat.task("mine").templates == ("mine",)
    assert cat.template("mine-01").file == str(extra_t)
    assert extra_c in cat.files and extra_t in cat.files
    assert len(cat.fingerprint) == 64  # files outside the root are hashed too


# ----------------------------------------------------------------------------- validation errors


@pytest.mark.parametrize(
    ("changes", "key_path", "problem"),
    [
        ({"name": None}, "tasks[0]", "missing required key 'name'"),
        ({"fields": None}, "tasks[0]", "missing required key 'fields'"),
        ({"name": ["a"]}, "tasks[0].name", "expected a string, got a list"),
        ({"name": True}, "tasks[0].name", "expected a string, got a boolean"),
        (
            {"collection": "niv2"},
            "tasks[0].collection",
            "task 'toy' says collection 'niv2' but is listed in collection 'flan2021'",
        ),
        ({"source": "hf:x"}, "tasks[0].source", "expected a mapping, got a string"),
        (
            {"source": {"kind": "jsnl", "path": "x"}},
            "tasks[0].source.kind",
            "unknown source kind 'jsnl'; expected one of hf, niv2, cot_tsv, jsonl, parquet, csv, tsv, arrow, raw (did you mean jsonl?)",
        ),
        (
            {"source": {"kind": "zzz", "path": "x"}},
            "tasks[0].source.kind",
            "unknown source kind 'zzz'; expected one of hf, niv2",
        ),
        ({"source": {"kind": "jsonl"}}, "tasks[0].source", "missing required key 'path'"),
        (
            {"source": {"kind": "jsonl", "path": "x", "split": {}}},
            "tasks[0].source.split",
            "unknown key 'split'; did you mean splits",
        ),
        (
            {"source": {"kind": "jsonl", "path": "x", "splits": ["train"]}},
            "tasks[0].source.splits",
            "expected a mapping, got a list",
        ),
        (
            {"source": {"kind": "jsonl", "path": "x", "splits": {"train": None}}},
            "tasks[0].source.splits.train",
            "expected a string, got nothing (null)",
        ),
        (
            {"source": {"kind": "jsonl", "path": "x", "validation_size": 0}},
            "tasks[0].source.validation_size",
            "expected a value >= 1, got 0",
        ),
        (
            {"source": {"kind": "jsonl", "path": "x", "validation_size": 1.5}},
            "tasks[0].source.validation_size",
            "expected an integer, got float",
        ),
        (
            {"source": {"kind": "jsonl", "path": "x", "validation_size": True}},
            "tasks[0].source.validation_size",
            "expected an integer, got a boolean",
        ),
        (
            {"sample": {"kind": "jsonl", "path": "x", "id_feld": "a"}},
            "tasks[0].sample.id_feld",
            "did you mean id_field",
        ),
        ({"fields": ["premise"]}, "tasks[0].fields", "expected a mapping, got a list"),
        (
            {"fields": {"premise": {"a": 1}}},
            "tasks[0].fields.premise",
            "expected a string, got a mapping",
        ),
        ({"options": ["yes"]}, "tasks[0].options", "expected at least two options"),
        ({"options": ["yes", "yes"]}, "tasks[0].options", "options must be distinct"),
        ({"options": [True, False]}, "tasks[0].options[0]", "expected a string, got a boolean"),
        (
            {"options": {"fild": "x"}},
            "tasks[0].options.fild",
            "unknown key 'fild'; did you mean field",
        ),
        ({"options": {}}, "tasks[0].options", "missing required key 'field'"),
        ({"templates": []}, "tasks[0].templates", "expected at least one template set"),
        ({"templates": {"a": 1}}, "tasks[0].templates", "expected a list, got a mapping"),
        (
            {"exemplars": "field:"},
            "tasks[0].exemplars",
            "expected 'pool' or 'field:<name>', got 'field:'",
        ),
        (
            {"exemplars": "all"},
            "tasks[0].exemplars",
            "expected 'pool' or 'field:<name>', got 'all'",
        ),
        ({"metadata": ["a"]}, "tasks[0].metadata", "expected a mapping, got a list"),
        (
            {"metadata": {"held_out": "no"}},
            "tasks[0].metadata.held_out",
            "expected true or false, got a string",
        ),
        ({"metadata": {"languages": 5}}, "tasks[0].metadata.languages", "expected a list, got int"),
        (
            {"metadata": {"licence": "mit"}},
            "tasks[0].metadata.licence",
            "unknown key 'licence'; did you mean license",
        ),
    ],
)
def test_task_schema_errors(make_catalog, h, changes, key_path, problem):
    e = load_error(make_catalog, tasks=[task_with(h, **changes)])
    assert e.file.endswith("flan2021.yaml")
    assert e.key_path == key_path
    assert problem in e.problem, e.problem
    assert str(e).startswith(f"{e.file} at {key_path}: ")


def test_empty_fields_mapping_is_rejected(make_catalog, h):
    t = task_with(h)
    t["fields"] = {}
    e = load_error(make_catalog, tasks=[t])
    assert (e.key_path, e.problem) == ("tasks[0].fields", "expected at least one field mapping")


@pytest.mark.parametrize(
    ("doc", "key_path", "problem"),
    [
        ("- a\n- b\n", "", "expected a mapping, got a list"),
        ("tasks: []\n", "", "missing required key 'collection'"),
        (
            "collection: flan2021\ntasks: []\ndefault: {}\n",
            "default",
            "unknown key 'default'; did you mean defaults",
        ),
        (
            "collection: t0sf\ntasks: []\n",
            "collection",
            "expected 'flan2021' (as catalog.yaml says), got 't0sf'",
        ),
        ("collection: flan2021\ntasks: {}\n", "tasks", "expected a list, got a mapping"),
        ("collection: flan2021\ntasks: [a]\n", "tasks[0]", "expected a mapping, got a string"),
        (
            "collection: flan2021\ndefaults: [1]\ntasks: []\n",
            "defaults",
            "expected a mapping, got a list",
        ),
        ("", "", "expected a mapping, got nothing (null)"),
    ],
)
def test_collection_file_errors(make_catalog, doc, key_path, problem):
    e = load_error(make_catalog, tasks=doc)
    assert e.key_path == key_path and problem in e.problem, str(e)


def test_duplicate_task_names(make_catalog, h):
    e = load_error(make_catalog, tasks=[task_with(h), task_with(h)])
    assert e.key_path == "tasks[1]" and "duplicate task name 'toy' (also in " in e.problem


def test_extra_collection_file_brings_its_own_collection(tmp_path, h):
    # A user's collection file may name a collection the catalog does not have:
    # it becomes a collection of its own (any name, not only the five built-ins).
    root = h.write_catalog_dir(tmp_path / "c")
    f = h.write_yaml(
        tmp_path / "x.yaml",
        {"collection": "my_tasks", "description": "mine", "tasks": [task_with(h, name="y")]},
    )
    cat = Catalog.load(root, extra_files=[f])
    assert cat.collection("my_tasks").description == "mine"
    assert cat.task("y").collection == "my_tasks"
    assert cat.extra_files == (f,)
    bad = h.write_yaml(
        tmp_path / "z.yaml", {"collection": "no spaces!", "tasks": [task_with(h, name="z")]}
    )
    with pytest.raises(UnknownNameError, match=rf"unknown collection 'no spaces!' \({bad}\)"):
        Catalog.load(root, extra_files=[bad])


@pytest.mark.parametrize(
    ("doc", "key_path", "problem"),
    [
        ({"set": {}}, "set", "unknown key 'set'; did you mean sets"),
        ({"sets": {"s": {"kind": "zero_shot"}}}, "sets.s", "missing required key 'templates'"),
        ({"sets": {"s": {"templates": [{"id": "a", "input": "x"}]}}}, "sets.s.templates[0]", "missing required key 'target'"),
        ({"sets": {"s": {"templates": [{"id": "a", "input": "x", "target": "y", "kind": "zeroshot"}]}}},
         "sets.s.templates[0].kind", "unknown template kind 'zeroshot'; expected one of zero_shot, few_shot, cot, inversion"),
        ({"sets": {"s": {"kind": "fewshot", "templates": [{"id": "a", "input": "x", "target": "y"}]}}},
         "sets.s.templates[0].kind", "unknown template kind 'fewshot'"),
        ({"sets": {"s": {"templates": [{"id": "a", "input": "x", "target": "y", "targets": "z"}]}}},
         "sets.s.templates[0].targets", "unknown key 'targets'; did you mean target"),
        ({"sets": {"s": {"templates": "x"}}}, "sets.s.templates", "expected a list, got a string"),
        ({"sets": {"s": {"templates": [{"id": "a", "input": ["x"], "target": "y"}]}}}, "sets.s.templates[0].input", "expected a string, got a list"),
        ({"styles": [{"input_prefix": "Q"}]}, "styles[0]", "missing required key 'id'"),
        ({"styles": [{"id": "s", "prefix": "Q"}]}, "styles[0].prefix", "unknown key 'prefix'"),
        ({"styles": {"id": "s"}}, "styles", "expected a list, got a mapping"),
    ],
)  # fmt: skip
def test_template_file_errors(make_catalog, doc, key_path, problem):
    e = load_error(make_catalog, templates=doc)
    assert e.file.endswith("toy.yaml")
    assert e.key_path == key_path and problem in e.problem, str(e)


def test_template_kind_per_set_and_per_template(make_catalog, h):
    t = copy.deepcopy(h.TOY_TEMPLATES)
    t["sets"]["toy"]["templates"][1]["kind"] = "cot"
    cat = make_catalog(templates=t)
    assert cat.template("toy-01").kind == "zero_shot"
    assert cat.template("toy-02").kind == "cot"
    assert cat.template("toy_ii-01").kind == "inversion"
    assert cat.template("toy-01").set == "toy" and cat.template("toy-01").file.endswith("toy.yaml")


def test_style_defaults(make_catalog, h):
    t = copy.deepcopy(h.TOY_TEMPLATES)
    t["styles"] = [{"id": "bare"}]
    s = make_catalog(templates=t).fewshot_style("bare")
    assert (s.input_prefix, s.target_prefix, s.x_y_delimiter, s.example_separator) == (
        "",
        "",
        "\n",
        "\n\n",
    )


def test_duplicate_template_ids_and_styles_across_files(tmp_path, h):
    root = h.write_catalog_dir(tmp_path / "c")
    h.write_yaml(
        root / "templates" / "zz.yaml",
        {"sets": {"other": {"templates": [{"id": "toy-01", "input": "x", "target": "y"}]}}},
    )
    with pytest.raises(
        CatalogError,
        match=r"zz\.yaml at sets\.other: duplicate template id 'toy-01' \(also in .*toy\.yaml\)",
    ):
        Catalog.load(root)
    (root / "templates" / "zz.yaml").write_text(yaml.safe_dump({"styles": [{"id": "st-qa"}]}))
    with pytest.raises(
        CatalogError, match=r"zz\.yaml at styles: duplicate few-shot style id 'st-qa'"
    ):
        Catalog.load(root)


@pytest.mark.parametrize(
    ("extra", "key_path", "problem"),
    [
        ({"colections": {}}, "colections", "unknown key 'colections'; did you mean collections"),
        ({"template_files": ["nope"]}, "template_files[0]", "no such file or folder: "),
        ({"collections": {"my tasks": {"file": "x.yaml"}}}, "collections.my tasks", "invalid collection name 'my tasks': use letters, digits, '_', '-' and '.'"),
        ({"collections": {"flan2021": {"file": "collections/flan2021.yaml", "alias": ["x"]}}}, "collections.flan2021.alias", "did you mean aliases"),
        ({"collections": {"flan2021": {}}}, "collections.flan2021", "missing required key 'file'"),
        ({"collections": []}, "collections", "expected a mapping, got a list"),
        ({"mixtures": {"m": {"members": [{"task": "toy", "collection": "flan2021"}]}}}, "mixtures.m.members[0]", "expected exactly one of 'task', 'collection' or 'mixture'"),
        ({"mixtures": {"m": {"members": [{"rate": 1}]}}}, "mixtures.m.members[0]", "expected exactly one of"),
        ({"mixtures": {"m": {"members": [{"task": "toy", "rate": -1}]}}}, "mixtures.m.members[0].rate", "expected a value >= 0, got -1"),
        ({"mixtures": {"m": {"members": [{"task": "toy", "cap": 1.5}]}}}, "mixtures.m.members[0].cap", "expected an integer, got float"),
        ({"mixtures": {"m": {"members": [{"task": "toy", "weight": 1}]}}}, "mixtures.m.members[0].weight", "unknown key 'weight'"),
        ({"mixtures": {"m": {"members": [{"task": "toy"}], "source": "local"}}}, "mixtures.m.source", "expected 'real' or 'sample', got 'local'"),
        ({"mixtures": {"m": {"members": [{"task": "toy"}], "temperature": "hot"}}}, "mixtures.m.temperature", "expected a number, got a string"),
        ({"mixtures": {"m": {"members": [{"task": "toy"}], "total": 0.5}}}, "mixtures.m.total", "expected an integer, got float"),
        ({"mixtures": {"m": {}}}, "mixtures.m", "missing required key 'members'"),
        ({"mixtures": {"m": {"members": [{"task": "tyo"}]}}}, "mixtures.m.members[0]", "unknown task 'tyo'; did you mean: toy?"),
        ({"mixtures": {"m": {"members": [{"mixture": "n"}]}}}, "mixtures.m.members[0]", "unknown mixture 'n'"),
    ],
)  # fmt: skip
def test_catalog_file_errors(tmp_path, h, extra, key_path, problem):
    root = h.write_catalog_dir(tmp_path / "c", catalog_extra=extra)
    with pytest.raises(CatalogError) as ei:
        Catalog.load(root)
    e = ei.value
    assert e.file.endswith("catalog.yaml")
    assert e.key_path == key_path and problem in e.problem, str(e)


def test_mixture_spec(make_catalog):
    mix = {
        "m": {
            "description": "d",
            "source": "sample",
            "temperature": 2,
            "total": 100,
            "members": [
                {
                    "task": "toy",
                    "rate": 0.5,
                    "cap": 10,
                    "formats": "zs_opt",
                    "inversion_weight": 0.3,
                    "exclude": "x",
                },
                {
                    "collection": "flan2021",
                    "formats": ["fs_opt", "fs_noopt"],
                },
                {"mixture": "m2"},
            ],
        },
        "m2": {"members": [{"task": "toy"}]},
    }
    cat = make_catalog(mixtures=mix)
    m = cat.mixture("m")
    assert (m.description, m.source, m.temperature, m.total) == ("d", "sample", 2, 100)
    a, b, c = m.members
    assert (a.kind, a.name, a.rate, a.cap, a.formats, a.inversion_weight, a.exclude) == (
        "task",
        "toy",
        0.5,
        10,
        ("zs_opt",),
        0.3,
        ("x",),
    )
    assert (b.kind, b.formats, b.rate) == ("collection", ("fs_opt", "fs_noopt"), None)
    assert c.kind == "mixture" and c.name == "m2"
    m2 = cat.mixture("m2")
    assert (m2.source, m2.temperature, m2.total, m2.members[0].formats) == ("real", 1.0, None, None)


def test_unknown_template_set_and_inversion_target(make_catalog, h):
    e = load_error(make_catalog, tasks=[task_with(h, templates=["tyo"])])
    assert (
        e.key_path == "task toy.templates"
        and "unknown template set 'tyo'; did you mean: toy" in e.problem
    )
    e = load_error(make_catalog, tasks=[task_with(h, metadata={"inversion_of": "toyy"})])
    assert (
        e.key_path == "task toy.metadata.inversion_of"
        and "unknown task 'toyy'; did you mean: toy" in e.problem
    )


def test_read_yaml_reports_line_and_column(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("a: 1\nb: [1, 2\nc: 3\n")
    with pytest.raises(CatalogError) as ei:
        read_yaml(p)
    assert ei.value.file == str(p) and "malformed YAML: line 3, column 2" in ei.value.problem
    p.write_text("a: 1\n  b: 2\n")
    with pytest.raises(
        CatalogError, match=r"malformed YAML: line 2, column 4: mapping values are not allowed"
    ):
        read_yaml(p)
    p.write_text("x: !!python/object:os.system 'id'\n")
    with pytest.raises(CatalogError, match="malformed YAML: line 1"):  # the safe loader refuses
        read_yaml(p)


def test_read_yaml_tabs_and_bom(tmp_path):
    p = tmp_path / "bom.yaml"
    p.write_bytes("\ufeffa: 1\n".encode())
    assert read_yaml(p) == {"a": 1}


# ----------------------------------------------------------------------------- specs


def test_frozen_mapping_is_deep_and_read_only():
    m = frozen_mapping({"a": [1, {"b": [2]}], "c": {"d": 1}})
    assert isinstance(m, MappingProxyType)
    assert m["a"] == (1, {"b": (2,)}) and isinstance(m["a"][1], MappingProxyType)
    with pytest.raises(TypeError):
        m["x"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        m["c"]["d"] = 2  # type: ignore[index]
    assert frozen_mapping(None) == {} and frozen_mapping({}) == {}
    src = {"a": 1}
    f = frozen_mapping(src)
    src["a"] = 2
    assert f["a"] == 1  # a copy, not a view


def test_thaw_gives_plain_json_data():
    m = frozen_mapping({"a": [1, {"b": (2, 3)}], "s": "x"})
    assert thaw(m) == {"a": [1, {"b": [2, 3]}], "s": "x"}
    json.dumps(thaw(m))


def test_source_spec_splits():
    s = SourceSpec(
        kind="hf", path="p", splits=frozen_mapping({"train": "train_r1", "validation": "dev_r1"})
    )
    assert s.split_name("train") == "train_r1" and s.split_name("test") == "test"
    assert s.canonical_splits() == ("train", "validation")
    assert SourceSpec(kind="jsonl", path="p").canonical_splits() == ("train", "validation")
    one = SourceSpec(
        kind="niv2", path="p", splits=frozen_mapping({"train": "train"}), validation_size=5
    )
    assert one.canonical_splits() == ("train", "validation")
    assert SourceSpec(kind="jsonl", path="p").describe() == "jsonl:p"


def test_task_spec_properties():
    s = SourceSpec(kind="jsonl", path="p")
    t = TaskSpec(
        name="t", collection="c", source=s, fields=frozen_mapping({"a": "a"}), templates=("x",)
    )
    assert not t.has_options and t.exemplar_field is None
    t2 = TaskSpec(
        name="t",
        collection="c",
        source=s,
        fields={},
        templates=(),
        options_field="o",
        exemplars="field:pos",
    )
    assert t2.has_options and t2.exemplar_field == "pos"


def test_rendered_example_to_dict_has_the_export_columns():
    ex = RenderedExample(inputs="i", targets="t", task="k", collection="c", format="fs_opt", template_id="x-1",
                         example_id="e", source_split="train", seed=2**64 - 1, fewshot_style="fs-01",
                         options=("a", "b"), exemplar_ids=("e1", "e2"))  # fmt: skip
    d = ex.to_dict()
    assert list(d) == ["inputs", "targets", "task", "collection", "format", "template_id", "fewshot_style",
                       "options", "exemplar_ids", "example_id", "source_split", "seed"]  # fmt: skip
    assert (
        d["options"] == ["a", "b"] and d["exemplar_ids"] == ["e1", "e2"] and d["seed"] == 2**64 - 1
    )
    bare = RenderedExample("i", "t", "k", "c", "zs_noopt", "x", "e", "validation", 0).to_dict()
    assert bare["options"] is None and bare["exemplar_ids"] == [] and bare["fewshot_style"] is None
    assert FORMATS == ("zs_opt", "zs_noopt", "fs_opt", "fs_noopt", "cot")


def test_default_root_prefers_the_bundled_copy_in_a_wheel(tmp_path, monkeypatch):
    import flan_data.catalog as catalog_module

    pkg = tmp_path / "site-packages" / "flan_data"
    (pkg / "_bundled").mkdir(parents=True)
    (pkg / "_bundled" / "catalog.yaml").write_text("collections: {}\n")
    monkeypatch.setattr(catalog_module, "__file__", str(pkg / "catalog.py"))
    assert catalog_module.default_root() == pkg / "_bundled"
    (pkg / "_bundled" / "catalog.yaml").unlink()
    assert catalog_module.default_root() == pkg.parent  # a source checkout: the repository root


def test_task_aliases_resolve_and_must_be_unique(make_catalog, h):
    t = dict(h.TOY_TASK, aliases=["toy-old", "toy_older"])
    cat = make_catalog(tasks=[t])
    assert cat.task("toy-old") is cat.task("toy") and cat.task_aliases["toy_older"] == "toy"
    assert "toy-old" not in cat.tasks  # an alias is not a second task
    t2 = dict(h.TOY_TASK, name="toy2", aliases=["toy-old"])
    with pytest.raises(
        CatalogError, match="alias 'toy-old' is already the name or an alias of task 'toy'"
    ):
        make_catalog(subdir="c2", tasks=[t, t2])
