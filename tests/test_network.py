"""Network: an unreachable hub fails fast with one message; plans need no data.

The hub is "unreachable" by pointing HF_ENDPOINT at a closed port on this
machine: no test ever contacts a real remote host.
"""

from __future__ import annotations

import json
import socket
import time

import pytest
from click.testing import CliRunner

from flan_data.cli import main
from flan_data.errors import HubUnreachableError, SourceError
from flan_data.sources import hf as hfmod
from flan_data.sources import open_source
from flan_data.sources import raw as rawmod
from flan_data.specs import SourceSpec


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return port


@pytest.fixture
def dead_hub(monkeypatch):
    for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "FLAN_DATA_OFFLINE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setattr(hfmod, "_HUB_STATE", {})
    # raw release files (kind raw) live on other hosts: the network is down for them too
    monkeypatch.setattr(rawmod, "_HOSTS", {})
    monkeypatch.setattr(rawmod, "probe_host", lambda base: "ConnectionRefusedError: network down")
    return hfmod.hub_endpoint()


def test_unreachable_hub_fails_fast_with_how_to_supply(dead_hub):
    src = open_source(SourceSpec(kind="hf", path="some/dataset", splits={"train": "train"}))
    t0 = time.monotonic()
    with pytest.raises(HubUnreachableError) as ei:
        list(src.read("train"))
    assert time.monotonic() - t0 < 30
    msg = str(ei.value)
    assert dead_hub in msg and "--source-dir" in msg and "HF_HUB_OFFLINE=1" in msg
    # the answer is remembered: a second source fails at once, without a new probe
    t1 = time.monotonic()
    with pytest.raises(HubUnreachableError):
        open_source(SourceSpec(kind="hf", path="other/dataset")).check()
    assert time.monotonic() - t1 < 1


def test_offline_mode_skips_the_probe(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hfmod, "_HUB_STATE", {})
    hfmod.check_hub("x")  # no probe, no error
    assert hfmod._HUB_STATE == {}


def test_render_with_a_dead_hub_is_one_clean_error(dead_hub, h):
    t0 = time.monotonic()
    r = CliRunner().invoke(main, ["render", "snli", "--source", "real", "-n", "1"])
    assert time.monotonic() - t0 < 30
    out = h.assert_cli_error(r, "cannot be reached", "--source-dir")
    assert out.count("cannot be reached") == 1


def test_mixture_plan_counting_with_a_dead_hub_gives_one_line(dead_hub, h):
    r = CliRunner().invoke(main, ["mixture", "plan", "flan2022", "--sizes", "source", "--exclude", "niv2",
                                  "--exclude", "t0sf", "--exclude", "cot"])  # fmt: skip
    out = h.assert_cli_error(r, "cannot be reached", "--source-dir")
    # one line per distinct reason (the hub; each raw download host), never one per task
    lines = [x for x in out.splitlines() if "cannot be reached" in x]
    assert sum("Hugging Face hub" in x for x in lines) == 1
    assert len(lines) == len(set(lines)) <= 1 + len(rawmod_hosts())


def rawmod_hosts() -> set[str]:
    from urllib.parse import urlsplit

    from flan_data import Catalog

    urls = (
        t.source.options.get("url") for t in Catalog.load().tasks.values() if t.source.kind == "raw"
    )
    return {urlsplit(u).netloc for u in urls if u}


def test_script_only_repo_without_revision_is_refused_before_any_download(monkeypatch):
    monkeypatch.setattr(hfmod, "_HUB_STATE", {})
    src = open_source(SourceSpec(kind="hf", path="Harvard/gigaword", splits={"train": "train"}))
    with pytest.raises(SourceError, match="ships only a loading script"):
        src.check()
    man = open_source(SourceSpec(kind="hf", path="x/y", options={"manual": "Request the data at https://example.org."}))  # fmt: skip
    with pytest.raises(SourceError, match="not downloadable from the hub as is: Request the data"):
        man.check()


def test_mixture_plan_uses_published_sizes_by_default_and_says_so():
    r = CliRunner().invoke(main, ["mixture", "plan", "flan2022", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["size_sources"] and set(data["size_sources"].values()) == {
        "published (metadata.num_examples)"
    }
    r = CliRunner().invoke(main, ["mixture", "plan", "flan2022"])
    assert r.exit_code == 0 and "size from" in r.output and "published" in r.output


def test_mixture_plan_source_counts_sample_mixture(h):
    r = CliRunner().invoke(main, ["mixture", "plan", "demo", "--sizes", "source", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert all(v.startswith("counted") for v in data["size_sources"].values())


# ----------------------------------------------------------------------------- hub routes


def test_no_hf_source_names_a_script_only_repo_without_a_route():
    from flan_data import Catalog

    bad = []
    for t in Catalog.load().tasks.values():
        s = t.source
        if (
            s.kind == "hf"
            and s.path in hfmod.SCRIPT_ONLY_REPOS
            and not (s.revision or s.options.get("manual"))
        ):
            bad.append(f"{t.name} ({s.path})")
    assert not bad, f"script-only hub repos without a revision or a manual route: {bad}"


def test_every_changed_route_says_where_its_evidence_is():
    from flan_data import Catalog

    cat = Catalog.load()
    for name in ("quac", "math_dataset", "sentiment140", "gigaword", "cosmos_qa", "wiki_dialog", "newsroom",
                 "story_cloze", "para_crawl_enes", "common_gen"):  # fmt: skip
        note = cat.task(name).source.note or ""
        assert "Route:" in note, name


def test_export_skip_unavailable_replans_and_lists_skipped(tmp_path, h):
    from flan_data import Catalog
    from flan_data.export import export_mixture

    good = dict(h.TOY_TASK)
    gone = dict(h.TOY_TASK, name="gone", sample={"kind": "jsonl", "path": "nothere"})
    root = h.write_catalog_dir(
        tmp_path / "c",
        tasks=[good, gone],
        mixtures={
            "m": {
                "source": "sample",
                "members": [{"collection": "flan2021", "formats": ["zs_opt"]}],
            }
        },
    )
    cat = Catalog.load(root)
    with pytest.raises(SourceError, match="gone"):
        export_mixture(cat, "m", tmp_path / "o1", total=20, progress=False, log=lambda s: None)
    assert not (tmp_path / "o1" / "COMPLETED").exists()
    lines: list[str] = []
    m = export_mixture(
        cat, "m", tmp_path / "o2", total=20, progress=False, log=lines.append, skip_unavailable=True
    )
    assert list(m["unavailable"]) == ["gone"] and "nothere" in m["unavailable"]["gone"]
    assert m["num_rows"] == 20 and set(m["counts"]) == {
        "toy"
    }  # the rates are planned over what is left
    assert "1 unavailable task(s) left out: gone" in lines[-1]
    assert m["source_routes"]["toy"] == {"sample": "toy"}


def test_manifest_records_the_revision_used(tmp_path, h, catalog):
    from flan_data.export import sources_used

    got = sources_used(catalog, ["quac", "anli_r1"], "real", {"anli_r1": str(tmp_path)})
    assert (
        got["quac"]["revision"] == catalog.task("quac").source.revision
        and got["quac"]["path"] == "allenai/quac"
    )
    assert got["anli_r1"] == {"local": str(tmp_path), "kind": "hf"}
