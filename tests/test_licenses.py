"""License facts in the catalog, overrides, license policies in planning and
export, the attribution file and the catalog filters."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from flan_data import Catalog
from flan_data.cli import main
from flan_data.errors import CatalogError, UnknownNameError
from flan_data.export import export_mixture
from flan_data.licenses import LicensePolicy, attribution_markdown
from flan_data.mixture import metadata_sizes, plan_mixture
from flan_data.specs import LicenseInfo

REPO = Path(__file__).resolve().parents[1]
DPC = REPO.parent.parent / "shared" / "reference" / "dpc_licenses.csv"
if not DPC.is_file():
    DPC = REPO.parent / "shared" / "reference" / "dpc_licenses.csv"


@pytest.fixture(scope="module")
def full():
    return Catalog.load()


def test_bundled_facts(full):
    b = full.task("bool_q").metadata.licensing
    assert b.use == "commercial" and b.licenses == ("CC BY-SA 3.0",)
    assert b.share_alike is True and b.attribution is True and b.model_generated is False
    assert "fc-flan-bool_q" in b.source and b.url.startswith("https://")
    # an inversion shares its original's facts
    assert full.task("bool_q_ii").metadata.licensing == b
    # unmatched tasks are unknown, with the source saying so
    u = full.task("task664_mmmlu_answer_generation_abstract_algebra").metadata.licensing
    assert u.use == "unknown" and not u.known and u.licenses == ()
    assert "no entry" in u.source
    # every task carries a class
    assert all(t.metadata.licensing.source for t in full.tasks.values())


@pytest.mark.skipif(not DPC.is_file(), reason="../shared/reference/dpc_licenses.csv not present")
def test_facts_match_the_reference_table(full):
    flags = {"true": True, "false": False, "unknown": None}
    with open(DPC, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1929
    present = [r for r in rows if r["task"] in full.tasks]
    assert len(present) >= 1880  # NIv2's 41 "_" twins of hyphenated names may be deduplicated
    for r in present:
        info = full.task(r["task"]).metadata.licensing
        if r["match_rule"] == "none":
            assert info.use == "unknown", r["task"]
            continue
        assert info.use == r["license_use_class"], r["task"]
        assert info.licenses == tuple(x for x in r["licenses"].split(";") if x), r["task"]
        assert info.attribution is flags[r["attribution_required"]], r["task"]
        assert info.share_alike is flags[r["share_alike"]], r["task"]
        assert info.model_generated is flags[r["model_generated"]], r["task"]
        assert r["dpc_dataset_id"] in info.source


def _override_file(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "licenses.yaml"
    p.write_text(body)
    return p


def test_user_override(tmp_path):
    p = _override_file(
        tmp_path,
        "license_overrides:\n  bool_q: {use: non-commercial, licenses: [Our terms]}\n"
        "  xsum: {share_alike: false}\n",
    )
    cat = Catalog.load(extra_files=[p])
    b = cat.task("bool_q").metadata.licensing
    assert b.use == "non-commercial" and b.licenses == ("Our terms",)
    assert b.share_alike is True  # not overridden: kept
    assert b.source == f"override in {p}"
    x = cat.task("xsum").metadata.licensing
    assert x.use == "unspecified" and x.share_alike is False
    # the overriding file is part of the catalog's fingerprint
    assert cat.fingerprint != Catalog.load().fingerprint


@pytest.mark.parametrize(
    "body, expect",
    [
        ("license_overrides:\n  bool_qq: {use: commercial}\n", "did you mean: bool_q"),
        ("license_overrides:\n  bool_q: {use: comercial}\n", "did you mean commercial"),
        ("license_overrides:\n  bool_q: {usage: commercial}\n", "unknown key 'usage'"),
        ("license_overrides:\n  bool_q: {share_alike: maybe}\n", "expected true, false or unknown"),
        ("license_overrides:\n  bool_q: commercial\n", "expected a mapping"),
    ],
)
def test_override_errors_name_file_and_place(tmp_path, body, expect):
    p = _override_file(tmp_path, body)
    with pytest.raises(CatalogError) as e:
        Catalog.load(extra_files=[p])
    msg = str(e.value)
    assert str(p) in msg and "license_overrides.bool_q" in msg and expect in msg


def test_policy_from_options():
    assert LicensePolicy.from_options("commercial").classes == ("commercial",)
    assert LicensePolicy.from_options("non-commercial").classes == (
        "commercial",
        "unspecified",
        "non-commercial",
    )
    p = LicensePolicy.from_options(license_classes=["unknown,commercial"])
    assert p.classes == ("commercial", "unknown")
    assert not LicensePolicy.from_options("any").active
    with pytest.raises(UnknownNameError, match="did you mean"):
        LicensePolicy.from_options("comercial")
    with pytest.raises(UnknownNameError, match="academic-only"):
        LicensePolicy.from_options(license_classes=["academic"])


def test_policy_reasons():
    sa = LicenseInfo(
        use="commercial", licenses=("CC BY-SA 3.0",), share_alike=True, model_generated=False
    )
    unk = LicenseInfo(use="commercial", share_alike=None, model_generated=None)
    mg = LicenseInfo(use="commercial", share_alike=False, model_generated=True)
    p = LicensePolicy(classes=("commercial",), share_alike=False, model_generated=False)
    assert p.reason_for(sa) == "share-alike required (CC BY-SA 3.0)"
    assert p.reason_for(unk).startswith("share-alike not known")
    assert p.reason_for(mg) == "model-generated data"
    assert (
        p.reason_for(LicenseInfo(use="commercial", share_alike=False, model_generated=False))
        is None
    )
    assert LicensePolicy().reason_for(LicenseInfo()) is None


def test_plan_rebalances_after_removal(full):
    spec = full.mixture("flan2022")
    sizes = metadata_sizes(full.tasks.values())
    base = plan_mixture(full, spec, sizes)
    pol = LicensePolicy.from_options("commercial", allow_share_alike=False)
    plan = plan_mixture(full, spec, sizes, license_policy=pol)
    kept = set(plan.tasks())
    assert kept and kept < set(base.tasks())
    for t in kept:
        info = full.task(t).metadata.licensing
        assert info.use == "commercial" and info.share_alike is False
    # every removed task is gone, with its reason
    assert plan.removed and not kept & set(plan.removed)
    assert plan.removed["anli_r1"].startswith("license class non-commercial")
    assert plan.removed["bool_q"].startswith("share-alike required")
    # collection rates still hold over what remains (0.40 / 0.32 / 0.20 / 0.05 / 0.03)
    rates = {"flan2021": 0.40, "t0sf": 0.32, "niv2": 0.20, "cot": 0.05, "dialog": 0.03}
    by = plan.by_collection()
    present = {c: r for c, r in rates.items() if by.get(c)}
    norm = sum(present.values())
    for c, r in present.items():
        assert abs(by[c] / plan.total - r / norm) < 1e-4, c
    # caps hold per task: niv2 tasks capped at 5000 keep an equal share of a full task
    # and the format split stays equal inside each task
    for t, fm in plan.counts().items():
        assert max(fm.values()) - min(fm.values()) <= 1, t
    js = plan.to_json()
    assert (
        js["license_policy"]["license_classes"] == ["commercial"] and js["removed"] == plan.removed
    )
    assert "removed" not in base.to_json()


def test_policy_that_removes_everything(full):
    spec = full.mixture("demo")
    sizes = {t.name: 10 for t in full.tasks.values()}
    pol = LicensePolicy(classes=("unknown",))
    with pytest.raises(Exception, match="license policy removes every task"):
        plan_mixture(full, spec, sizes, license_policy=pol)


def test_cli_mixture_plan_with_license(full):
    res = CliRunner().invoke(
        main, ["mixture", "plan", "flan2022", "--sizes", "metadata", "--license", "commercial"]
    )
    assert res.exit_code == 0, res.output
    out = res.output
    assert "license policy: classes commercial" in out
    assert "removed " in out and "anli_r1" in out and "license class non-commercial" in out
    tail = out.split("\ncollection", 1)[1]
    assert "40.00%" in tail and "32.00%" in tail
    # no removed task appears as a plan row
    rows = {ln.split()[0] for ln in out.split("\ncollection", 1)[0].splitlines()[2:] if ln.strip()}
    assert "anli_r1" not in rows and "cot_gsm8k" in rows
    res = CliRunner().invoke(main, ["mixture", "plan", "flan2022", "--sizes", "metadata", "--json",
                                    "--license-class", "commercial,unspecified", "--exclude-model-generated"])  # fmt: skip
    data = json.loads(res.output)
    assert data["license_policy"]["allow_model_generated"] is False
    assert data["removed"]["dart"] == "model-generated data"


def test_export_with_policy_writes_attribution(tmp_path, full):
    out = tmp_path / "ex"
    pol = LicensePolicy.from_options("commercial")
    m = export_mixture(
        full, "demo", out, total=120, progress=False, license_policy=pol, log=lambda s: None
    )
    assert (out / "ATTRIBUTION.md").is_file()
    assert m["license_policy"]["license_classes"] == ["commercial"]
    assert "anli_r1" in m["plan"]["removed"]
    for t in m["counts"]:
        assert full.task(t).metadata.licensing.use == "commercial"
    assert set(m["licenses"]["use_classes"]) == {"commercial"}
    text = (out / "ATTRIBUTION.md").read_text()
    for t in m["counts"]:
        assert t in text
    assert "anli_r1" not in text.split("## Licenses")[1].split("## Citations")[0]
    assert "@inproceedings{longpre2023flan" in text
    # without a policy the attribution file is written too, with every task
    out2 = tmp_path / "ex2"
    m2 = export_mixture(full, "demo", out2, total=120, progress=False, log=lambda s: None)
    assert "license_policy" not in m2 and (out2 / "ATTRIBUTION.md").is_file()
    text2 = (out2 / "ATTRIBUTION.md").read_text()
    assert all(t in text2 for t in m2["counts"])
    # different policies are different specs: refused without --overwrite
    with pytest.raises(Exception, match="different spec"):
        export_mixture(
            full, "demo", out2, total=120, progress=False, license_policy=pol, log=lambda s: None
        )


def test_attribution_groups_and_flags(full):
    tasks = [full.task(n) for n in ("bool_q", "bool_q_ii", "anli_r1", "task1146_country_capital")]
    text = attribution_markdown(tasks, mixture="x")
    lic = text.split("## Licenses")[1].split("## Citations")[0]
    rows = [ln for ln in lic.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    assert len(rows) == 3  # bool_q and its inversion share one record
    assert any("bool_q, bool_q_ii" in r and "CC BY-SA 3.0" in r for r in rows)
    assert "wei2022finetuned" in text and "wang2022super" in text and "sanh2022" not in text


def test_catalog_list_filters():
    r = CliRunner().invoke(main, ["catalog", "list", "--license-class", "non-commercial", "--json"])
    rows = json.loads(r.output)
    assert rows and all(x["license_class"] == "non-commercial" for x in rows)
    assert "anli_r1" in {x["name"] for x in rows}
    r = CliRunner().invoke(main, ["catalog", "list", "--language", "German", "--json"])
    de = json.loads(r.output)
    assert de and all("de" in x["languages"] for x in de)
    r2 = CliRunner().invoke(main, ["catalog", "list", "--language", "de", "--json"])
    assert json.loads(r2.output) == de
    r = CliRunner().invoke(main, ["catalog", "list", "--license-class", "comercial"])
    assert r.exit_code != 0 and "did you mean" in r.output


def _facts(tmp_path: Path, doc) -> Path:
    p = tmp_path / "facts.json"
    p.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return p


def test_license_facts_file(tmp_path, make_catalog):
    rec = {"use": "non-commercial", "licenses": ["CC BY-NC 4.0"], "attribution": True,
           "share_alike": None, "model_generated": False, "url": None, "collection": "X"}  # fmt: skip
    _facts(
        tmp_path, {"records": {"r1": rec}, "tasks": {"toy": ["r1", "filter_id"], "not_here": None}}
    )
    cat = make_catalog(catalog_extra={"license_facts": [str(tmp_path / "facts.json")]})
    info = cat.task("toy").metadata.licensing
    assert info.use == "non-commercial" and info.share_alike is None
    assert info.source == "Data Provenance Collection r1 (X; matched by filter_id)"
    assert any(p.name == "facts.json" for p in cat.files)  # part of the fingerprint


@pytest.mark.parametrize(
    "doc, expect",
    [
        ({"records": {}, "tasks": {"toy": ["r9"]}}, "unknown license record 'r9'"),
        ({"records": {"r1": {"use": "free"}}, "tasks": {}}, "unknown license use class 'free'"),
        ({"records": {}}, "missing required key 'tasks'"),
        ("{not json", "not valid JSON"),
    ],
)
def test_license_facts_errors(tmp_path, make_catalog, doc, expect):
    _facts(tmp_path, doc)
    with pytest.raises(CatalogError) as e:
        make_catalog(catalog_extra={"license_facts": [str(tmp_path / "facts.json")]})
    assert "facts.json" in str(e.value) and expect in str(e.value)


def test_catalog_search_filters():
    r = CliRunner().invoke(main, ["catalog", "search", "sentiment", "--license-class", "commercial", "--json",
                                  "--limit", "0"])  # fmt: skip
    assert r.exit_code == 0, r.output
    hits = json.loads(r.output)
    cat = Catalog.load()
    assert hits and all(cat.task(h["name"]).metadata.licensing.use == "commercial" for h in hits)
    r2 = CliRunner().invoke(main, ["catalog", "search", "sentiment", "--json", "--limit", "0"])
    assert len(json.loads(r2.output)) > len(hits)
