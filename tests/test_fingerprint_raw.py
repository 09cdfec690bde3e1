"""Export fingerprints of ``raw`` sources (release files): the located files, hashed once."""

from __future__ import annotations

import importlib

from flan_data import Catalog

fp = importlib.import_module(
    "flan_data.export.fingerprint"
)  # the package re-exports a function of that name


def test_raw_source_fingerprint_names_located_files_and_hashes_shared_files_once(
    tmp_path, monkeypatch
):
    cat = Catalog.load()
    folder = tmp_path / "ud"
    folder.mkdir()
    (folder / "train.tsv").write_text("what is it?\tthis\n")
    (folder / "dev.tsv").write_text("q\ta\n")
    (folder / "test.tsv").write_text("q\ta\n")
    tasks = [cat.task("unified_qa_science_inst"), cat.task("unified_qa_science_inst_ii")]
    dirs = {t.name: str(folder) for t in tasks}
    hashed = []
    real = fp.sha256_file
    monkeypatch.setattr(fp, "sha256_file", lambda p: hashed.append(p) or real(p))
    out = fp.fingerprint(cat, tasks, "real", dirs)
    for t in tasks:
        (e,) = out[t.name]
        assert e["file"] == str((folder / "train.tsv").resolve()) and e["bytes"] == 17
    assert len(hashed) == 1  # the two tasks share the file: hashed once
    (folder / "train.tsv").write_text("what is it?\tthat one\n")
    new = fp.fingerprint(cat, tasks, "real", dirs)
    assert "changed (size 17 → 21 bytes" in fp.describe_change(out, new)


def test_raw_source_fingerprint_without_a_folder_names_the_release():
    cat = Catalog.load()
    t = cat.task("unified_qa_science_inst")
    (e,) = fp.fingerprint(cat, [t], "real", {})[t.name]
    assert e == {"raw": t.source.path, "url": t.source.options["url"], "files": ["train.tsv"]}
    other = {t.name: [{**e, "url": "https://example.org/elsewhere"}]}
    assert "release files of unified_qa_science_inst changed" in fp.describe_change(
        {t.name: [e]}, other
    )
