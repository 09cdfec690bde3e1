"""The parsed-catalog cache behind the CLI: same catalog, invalidated by any change."""

from __future__ import annotations

import os

from flan_data import Catalog
from flan_data import catalog_cache as cc


def test_cached_catalog_equals_a_fresh_parse(monkeypatch, tmp_path):
    monkeypatch.setenv("FLAN_DATA_CACHE", str(tmp_path / "cache"))
    calls = []
    orig = Catalog.load.__func__

    def spy(cls, *a, **k):
        calls.append(1)
        return orig(cls, *a, **k)

    monkeypatch.setattr(Catalog, "load", classmethod(spy))
    first = cc.load_catalog()
    second = cc.load_catalog()
    assert len(calls) == 1  # the second load came from the cache
    assert second.fingerprint == first.fingerprint
    assert second.tasks == first.tasks and second.mixtures == first.mixtures


def test_any_change_to_a_catalog_file_reparses(toy_root, monkeypatch):
    first = cc.load_catalog(toy_root)
    before = first.fingerprint
    coll = next(p for p in first.files if p.parent.name == "collections")
    text = coll.read_text()
    st = os.stat(coll)
    # same size, same mtime: only the bytes tell
    coll.write_text(text.replace("toy", "toi", 1) if "toy" in text else text + " ")
    os.utime(coll, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = cc.load_catalog(toy_root)
    assert again.fingerprint != before
    assert again.fingerprint == Catalog.load(toy_root).fingerprint


def test_a_new_template_file_reparses(toy_root):
    first = cc.load_catalog(toy_root)
    tdir = next(p for p in first.files if p.suffix == ".yaml" and "templates" in p.parts).parent
    (tdir / "zz_more.yaml").write_text(
        "sets:\n  extra:\n    templates:\n      - {id: extra-1, input: 'x {{ a }}', target: 'y'}\n"
    )
    again = cc.load_catalog(toy_root)
    assert "extra-1" in again.templates and "extra-1" not in first.templates


def test_cache_can_be_turned_off(monkeypatch, tmp_path):
    monkeypatch.setenv("FLAN_DATA_CATALOG_CACHE", "0")
    monkeypatch.setenv("FLAN_DATA_CACHE", str(tmp_path / "c"))
    cc.load_catalog()
    assert not (tmp_path / "c").exists()
