"""Loadable routes for the script-only hub datasets (issue 10).

- the hub's Parquet export (``export_config``), on a local folder laid out like
  the ``refs/convert/parquet`` branch;
- raw release files (``kind: raw``) in each dataset's real file schema, served
  by a local ``http.server`` or given with ``--source-dir``;
- the catalog's routes: every route is loadable with ``datasets`` >= 4 or says
  how to supply the files.
"""

from __future__ import annotations

import contextlib
import gzip
import http.server
import json
import threading
import zipfile
from functools import partial

import pytest

from flan_data.errors import SourceError
from flan_data.sources import hf as hfmod
from flan_data.sources import open_source
from flan_data.sources.raw import expand_name
from flan_data.specs import SourceSpec


def read(src, split):
    return list(src.read(split))


# ----------------------------------------------------------------------------- parquet export


@pytest.fixture
def parquet_export(tmp_path):
    """Two configs as the hub's parquet-converter lays them out (no dataset card)."""
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    root = tmp_path / "repo"
    rows = {
        ("plain_text", "train"): [{"dialogue_id": "d1", "q": "a"}, {"dialogue_id": "d2", "q": "b"}],
        ("plain_text", "validation"): [{"dialogue_id": "d3", "q": "c"}],
        ("other", "train"): [{"dialogue_id": "x", "q": "zzz"}],
    }
    for (cfg, split), recs in rows.items():
        d = root / cfg / split
        d.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(recs), d / "0000.parquet")
    return root


def test_export_config_reads_one_config_of_the_parquet_export(parquet_export):
    pytest.importorskip("datasets")
    spec = SourceSpec(
        kind="hf",
        path=str(parquet_export),
        config="plain_text",
        splits={"train": "train", "validation": "validation"},
        id_field="dialogue_id",
        options={"export_config": "plain_text"},
    )
    src = open_source(spec)
    assert [(i, r["q"]) for i, r in read(src, "train")] == [("d1", "a"), ("d2", "b")]
    assert [r["q"] for _, r in read(src, "validation")] == ["c"]


def test_the_export_has_no_named_configs(parquet_export):
    """Why export_config exists: the export's folders are not builder configs."""
    datasets = pytest.importorskip("datasets")
    with pytest.raises(ValueError, match="plain_text"):
        datasets.load_dataset(str(parquet_export), "plain_text")


def test_export_route_with_a_sliced_split_reads_the_base_split(parquet_export):
    pytest.importorskip("datasets")
    spec = SourceSpec(kind="hf", path=str(parquet_export), config="plain_text",
                      splits={"train": "train[:-1]", "validation": "train[-1:]"},
                      options={"export_config": "plain_text"})  # fmt: skip
    src = open_source(spec)
    assert src._load_kwargs()["data_files"] == {"train": "plain_text/train/*.parquet"}
    assert [r["q"] for _, r in read(src, "validation")] == ["b"]


def test_export_data_files():
    assert hfmod.export_data_files("e2e_nlg", ("train", "validation")) == {
        "train": "e2e_nlg/train/*.parquet",
        "validation": "e2e_nlg/validation/*.parquet",
    }


# ----------------------------------------------------------------------------- raw files


@contextlib.contextmanager
def serve(folder):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

    handler = partial(Quiet, directory=str(folder))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def online(monkeypatch):
    monkeypatch.delenv("FLAN_DATA_OFFLINE")
    monkeypatch.delenv("HF_HUB_OFFLINE")


def raw(path, **options):
    splits = options.pop("splits", None) or {}
    vs = options.pop("validation_size", None)
    return SourceSpec(kind="raw", path=path, splits=splits, validation_size=vs, options=options)


def dialog(i):
    # WikiDialog OQ JSONL (TFDS wiki_dialog builder features)
    return {
        "pid": f"p{i}",
        "title": f"T{i}",
        "passage": "S1. S2.",
        "sentences": ["S1.", "S2."],
        "utterances": [f"q{i}?", "S1.", "more?", "S2."],
        "author_num": [0, 1, 0, 1],
    }


def test_expand_name():
    assert expand_name("a{8..10}.gz") == ["a8.gz", "a9.gz", "a10.gz"]
    assert expand_name("x") == ["x"]


def test_jsonl_gz_shards_download_once_then_read_from_the_cache(tmp_path, online):
    site = tmp_path / "site" / "WikiDialog_OQ"
    site.mkdir(parents=True)
    for shard in range(2):
        with gzip.open(site / f"data_train.jsonl-{shard:05}-of-00002.gz", "wt") as fh:
            for i in range(3):
                fh.write(json.dumps(dialog(10 * shard + i)) + "\n")
    with gzip.open(site / "data_validation.jsonl.gz", "wt") as fh:
        fh.write(json.dumps(dialog(99)) + "\n")
    cache = tmp_path / "cache"
    with serve(site.parent) as base:
        spec = raw(
            "wiki_dialog",
            url=f"{base}/WikiDialog_OQ",
            files={"train": "data_train.jsonl-{00000..00001}-of-00002.gz",
                   "validation": "data_validation.jsonl.gz"},
            format="jsonl",
            splits={"train": "train", "validation": "validation"},
        )  # fmt: skip
        recs = read(open_source(spec, cache_dir=cache), "train")
        assert [r["pid"] for _, r in read(open_source(spec, cache_dir=cache), "validation")] == [
            "p99"
        ]
    assert [r["pid"] for _, r in recs] == ["p0", "p1", "p2", "p10", "p11", "p12"]
    assert [i for i, _ in recs][:2] == ["train-0", "train-1"]
    assert (cache / "raw" / "wiki_dialog" / "data_train.jsonl-00001-of-00002.gz").is_file()
    # the server is gone: the cache answers
    assert read(open_source(spec, cache_dir=cache), "train") == recs


def test_download_failure_says_how_to_supply(tmp_path, online):
    with serve(tmp_path) as base:
        spec = raw("unified_qa_science_inst", url=base, files={"train": "missing.tsv"},
                   format="tsv", columns=["input", "output"])  # fmt: skip
        src = open_source(spec, cache_dir=tmp_path / "c")
        src.check()  # the host answers; check() downloads nothing
        assert not (tmp_path / "c").exists()
        with pytest.raises(SourceError, match=r"cannot download .*missing\.tsv.*--source-dir unified_qa_science_inst=PATH"):  # fmt: skip
            read(src, "train")
    assert not list((tmp_path / "c").rglob("*.part"))


def test_unreachable_host_fails_fast(tmp_path, online, monkeypatch):
    import socket
    import time

    from flan_data.sources import raw as rawmod

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    monkeypatch.setattr(rawmod, "_HOSTS", {})
    spec = raw("wiki_dialog", url=f"http://127.0.0.1:{port}/d", files={"train": "a.jsonl.gz"},
               manual="Or fetch the files by hand.")  # fmt: skip
    t0 = time.monotonic()
    with pytest.raises(
        SourceError,
        match=rf"download host http://127.0.0.1:{port} cannot be reached .*--source-dir TASK=PATH",
    ):
        open_source(spec, cache_dir=tmp_path).check()
    with pytest.raises(SourceError, match="cannot be reached"):
        read(open_source(spec, cache_dir=tmp_path), "train")
    assert time.monotonic() - t0 < 30


def test_offline_without_cache_fails_at_once(tmp_path):
    spec = raw("x", url="https://example.org/d", files={"train": "a.jsonl"})
    with pytest.raises(SourceError, match="offline mode is on"):
        open_source(spec, cache_dir=tmp_path).check()


def opinion_zip(path):
    # opinion_abstracts.zip: opinion_abstracts/{rottentomatoes,idebate}.json, JSON arrays
    rt = [
        {"_movie_name": "M1", "_movie_id": "m1", "_critic_consensus": "Good.",
         "_critics": {"c1": "Fine film.", "c2": "Loved it."}},
        {"_movie_name": "M2", "_movie_id": "m2", "_critic_consensus": "Bad.",
         "_critics": {"c3": "Dull."}},
    ]  # fmt: skip
    deb = [{"_debate_name": "D", "_debate_id": "d", "_claim": "C", "_claim_id": "c1",
            "_argument_sentences": {"s1": "One.", "s2": "Two."}}]  # fmt: skip
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("opinion_abstracts/rottentomatoes.json", json.dumps(rt))
        zf.writestr("opinion_abstracts/idebate.json", json.dumps(deb))


def test_zip_archive_json_list_with_kv_fields(tmp_path, online):
    site = tmp_path / "site"
    site.mkdir()
    opinion_zip(site / "opinion_abstracts.zip")
    with serve(site) as base:
        spec = raw("opinion_abstracts_rotten_tomatoes", url=base, archive="opinion_abstracts.zip",
                   files={"train": "opinion_abstracts/rottentomatoes.json"}, format="json_list",
                   kv_fields=["_critics"], id_field="_movie_id")  # fmt: skip
        spec = SourceSpec(**{**spec.__dict__, "id_field": "_movie_id"})
        recs = read(open_source(spec, cache_dir=tmp_path / "c"), "train")
    assert [i for i, _ in recs] == ["m1", "m2"]
    assert recs[0][1]["_critics"] == {"key": ["c1", "c2"], "value": ["Fine film.", "Loved it."]}
    # the same archive given as a local folder (no url needed)
    local = raw("opinion_abstracts_idebate", archive="opinion_abstracts.zip",
                files={"train": "opinion_abstracts/idebate.json"}, format="json_list",
                kv_fields=["_argument_sentences"])  # fmt: skip
    (r,) = [r for _, r in read(open_source(local, base_dir=site), "train")]
    assert r["_argument_sentences"]["value"] == ["One.", "Two."]


def test_catalog_opinion_abstracts_renders_from_the_zip(tmp_path, catalog):
    """The catalog's own route + field expressions on a fixture of the real zip."""
    from flan_data.render import Renderer

    opinion_zip(tmp_path / "opinion_abstracts.zip")
    task = catalog.task("opinion_abstracts_rotten_tomatoes")
    src = open_source(task.source, base_dir=tmp_path)
    recs = list(src._with_ids("train"))  # the whole file (the task holds out 600 rows)
    assert len(recs) == 2
    canon = Renderer(catalog).task_renderer(task).canonical(*recs[0], split="train")
    assert canon["document"] == "Fine film.\nLoved it." and canon["summary"] == "Good."


def test_tsv_csv_module_rules(tmp_path):
    # UnifiedQA ai2_science_middle/{train,dev,test}.tsv: input \t output, no header
    (tmp_path / "train.tsv").write_text(
        'Which is a gas? \\n (a) ice (b) steam\tsteam\n"Quoted" start\tyes\n', encoding="utf-8"
    )
    spec = raw("u", files={"train": "train.tsv"}, format="tsv", columns=["input", "output"])
    recs = [r for _, r in read(open_source(spec, base_dir=tmp_path), "train")]
    assert recs[0] == {"input": "Which is a gas? \\n (a) ice (b) steam", "output": "steam"}
    assert recs[1]["input"] == "Quoted start"  # csv quoting, as the TFDS reader
    (tmp_path / "bad.tsv").write_text("only one field\n", encoding="utf-8")
    bad = raw("u", files={"train": "bad.tsv"}, format="tsv", columns=["input", "output"])
    with pytest.raises(
        SourceError, match=r"bad\.tsv:1: expected 2 fields \(input, output\), found 1"
    ):
        read(open_source(bad, base_dir=tmp_path), "train")


def test_tabs_nested_columns_gz(tmp_path):
    # ParaCrawl release4 en-es.bicleaner07.txt.gz: "en \t es" per line
    with gzip.open(tmp_path / "en-es.bicleaner07.txt.gz", "wt", encoding="utf-8") as fh:
        fh.write('He said "hi".\tDijo "hola".\nTwo\tDos\n')
    spec = raw("para_crawl_enes", files={"train": "en-es.bicleaner07.txt.gz"}, format="tabs",
               columns=["translation.en", "translation.es"])  # fmt: skip
    recs = [r for _, r in read(open_source(spec, base_dir=tmp_path), "train")]
    assert recs[0] == {"translation": {"en": 'He said "hi".', "es": 'Dijo "hola".'}}
    assert len(recs) == 2


def test_csv_header_types_and_manual_message(tmp_path):
    # Story Cloze 2016 CSV (header, 8 columns, quoted)
    header = ("InputStoryid,InputSentence1,InputSentence2,InputSentence3,InputSentence4,"
              "RandomFifthSentenceQuiz1,RandomFifthSentenceQuiz2,AnswerRightEnding\n")  # fmt: skip
    row = '"s1","A.","B, then.","C.","D.","E1.","E2.","2"\n'
    name = "cloze_test_val__spring2016 - cloze_test_ALL_val.csv"
    cols = ["story_id", "input_sentence_1", "input_sentence_2", "input_sentence_3",
            "input_sentence_4", "sentence_quiz1", "sentence_quiz2", "answer_right_ending"]  # fmt: skip
    spec = raw("story_cloze", files={"validation": name}, format="csv", columns=cols,
               types={"answer_right_ending": "int"},
               manual="Request the files at https://cs.rochester.edu/nlp/rocstories/.")  # fmt: skip
    with pytest.raises(SourceError, match=r"--source-dir story_cloze=PATH.*rocstories"):
        open_source(spec, base_dir=tmp_path).check()
    with pytest.raises(SourceError, match=r"not downloadable as is.*rocstories"):
        open_source(spec).check()
    (tmp_path / name).write_text(header + row, encoding="utf-8")
    ((_, r),) = read(open_source(spec, base_dir=tmp_path), "validation")
    assert r["answer_right_ending"] == 2 and r["input_sentence_2"] == "B, then."


def test_line_pairs_with_replace(tmp_path):
    # Gigaword org_data/{train,dev,test}.{src,tgt}.txt inside ggw_data.zip
    with zipfile.ZipFile(tmp_path / "ggw_data.zip", "w") as zf:
        zf.writestr("org_data/train.src.txt", "a <unk> doc\nsecond doc\n")
        zf.writestr("org_data/train.tgt.txt", "a title\n<unk> title\n")
        zf.writestr("org_data/dev.src.txt", "x\ny\n")
        zf.writestr("org_data/dev.tgt.txt", "x\n")
    spec = raw("gigaword", archive="ggw_data.zip", format="line_pairs",
               files={"train": ["org_data/train.src.txt", "org_data/train.tgt.txt"],
                      "dev": ["org_data/dev.src.txt", "org_data/dev.tgt.txt"]},
               columns=["document", "summary"], replace={"<unk>": "UNK"})  # fmt: skip
    src = open_source(spec, base_dir=tmp_path)
    assert [r for _, r in read(src, "train")] == [
        {"document": "a UNK doc", "summary": "a title"},
        {"document": "second doc", "summary": "UNK title"},
    ]
    with pytest.raises(SourceError, match="different line counts"):
        read(src, "dev")


def test_newsroom_jsonl_from_a_folder(tmp_path):
    rec = {"url": "u", "archive": "a", "title": "t", "date": "d", "text": "Body.", "summary": "S.",
           "compression": 2.0, "coverage": 0.5, "density": 1.0, "compression_bin": "low",
           "coverage_bin": "low", "density_bin": "low"}  # fmt: skip
    for n in ("train", "dev", "test"):
        (tmp_path / f"{n}.jsonl").write_text(json.dumps(rec) + "\n", encoding="utf-8")
    spec = raw("newsroom", files={"train": "train.jsonl", "dev": "dev.jsonl", "test": "test.jsonl"},
               splits={"train": "train", "validation": "dev", "test": "test"})  # fmt: skip
    src = open_source(spec, base_dir=tmp_path)
    assert set(src.splits()) == {"train", "validation", "test"}
    assert read(src, "validation")[0][1]["text"] == "Body."


# ----------------------------------------------------------------------------- the catalog


def test_every_raw_source_says_where_its_files_come_from(catalog):
    bad = []
    for t in catalog.tasks.values():
        s = t.source
        if s.kind == "raw":
            if not (s.options.get("url") or s.options.get("manual")):
                bad.append(t.name)
            if not s.note or ("Evidence" not in s.note and not s.note.startswith("Same source as")):
                bad.append(f"{t.name} (no evidence in the note)")
    assert not bad


def test_export_routes_name_their_config_and_revision(catalog):
    tasks = catalog.tasks.values()
    routes = [t for t in tasks if t.source.options.get("export_config")]
    assert {t.name for t in routes} >= {"quac", "common_gen", "dart", "e2e_nlg", "web_nlg_en", "wiki_lingua_english_en",
                                        "quartz_answer_question_based_on"}  # fmt: skip
    p3 = catalog.task("wiki_qa_Jeopardy_style").source
    assert p3.path == "bigscience/P3" and p3.options["export_config"] == "wiki_qa_Jeopardy_style"
    assert p3.revision == "985469b111586131283ac28a9f92ef720c48a8fe"
    for t in routes:
        assert t.source.revision, t.name
        assert t.source.note and ("Evidence" in t.source.note or t.metadata.inversion_of), t.name


def test_manifest_records_the_route_actually_read(catalog):
    from flan_data.export import sources_used

    got = sources_used(catalog, ["math_dataset", "wiki_dialog", "e2e_nlg", "quac"], "real", {})
    assert got["math_dataset"]["revision"] == "a7bcc75621f588a6d136033adb855ea108cd5a79"
    assert got["wiki_dialog"]["kind"] == "raw"
    assert got["wiki_dialog"]["url"].startswith("https://storage.googleapis.com/gresearch/")
    assert got["e2e_nlg"]["revision"] == "fa9e3488f9ac7174a4e9e6fae0e645e13a8dca78"
    assert got["e2e_nlg"]["export_config"] == "e2e_nlg"
    assert got["quac"]["revision"] == "aee041af3f5f00db50878b2a4a0ad1de8998a7a7"


# ----------------------------------------------------------------------------- catalog routes end to end


def _export_dir(root, cfg, splits):
    import pyarrow as pa
    import pyarrow.parquet as pq

    for split, recs in splits.items():
        d = root / cfg / split
        d.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(recs), d / "0000.parquet")
    return root


def _render(catalog, task, src, split="train"):
    from flan_data.render import Renderer

    tr = Renderer(catalog).task_renderer(task)
    return [tr.canonical(i, r, split=split) for i, r in src.read(split)]


def test_catalog_export_routes_on_fixtures(tmp_path, catalog):
    """The catalog's export routes and field expressions on Parquet-export folders in the
    schema of each config (GEM e2e_nlg, P3, quac with its explode rule)."""
    import dataclasses

    pytest.importorskip("datasets")
    from flan_data.sources import with_rules

    e2e = {"gem_id": "e2e-1", "gem_parent_id": "e2e-1", "meaning_representation": "name[Aromi]",
           "target": "Aromi is a cafe.", "references": ["Aromi is a cafe."]}  # fmt: skip
    p3 = {
        "inputs": [1, 2],
        "inputs_pretokenized": "Q? ",
        "targets": [3],
        "targets_pretokenized": " A",
    }
    quac = {"dialogue_id": "d1", "context": "Some text. CANNOTANSWER", "questions": ["q1?", "q2?"],
            "orig_answers": {"texts": ["a1", "CANNOTANSWER"], "answer_starts": [0, -1]}}  # fmt: skip
    cases = {
        "e2e_nlg": ({"train": [e2e] * 203, "validation": [e2e]}, {"data": "name[Aromi]"}),
        "wiki_qa_Jeopardy_style": (
            {"train": [p3] * 203, "validation": [p3]},
            {"inputs": "Q?", "answer": "A"},
        ),
        "quac": (
            {"train": [quac], "validation": [quac]},
            {"context": "Some text.", "question": "q1?"},
        ),
    }
    for name, (splits, want) in cases.items():
        task = catalog.task(name)
        cfg = task.source.options["export_config"]
        root = _export_dir(tmp_path / name, cfg, splits)
        spec = dataclasses.replace(task.source, path=str(root), revision=None)
        rows = _render(catalog, task, with_rules(open_source(spec), task))
        assert rows and all(rows[0][k] == v for k, v in want.items()), (name, rows[0])
        if name == "quac":
            assert [r["answer"] for r in rows] == ["a1", "CANNOTANSWER"]


def test_catalog_raw_routes_from_a_source_dir(tmp_path, catalog):
    """--source-dir TASK=PATH with the release files in their real layout, read through the
    catalog's own route, record rules and field expressions."""
    from flan_data.sources import open_task_source

    wd = tmp_path / "wiki_dialog"
    wd.mkdir()
    for i in range(99):
        with gzip.open(wd / f"data_train.jsonl-{i:05}-of-00099.gz", "wt") as fh:
            fh.write(json.dumps(dialog(i)) + "\n")
    gw = tmp_path / "gigaword"
    gw.mkdir()
    with zipfile.ZipFile(gw / "ggw_data.zip", "w") as zf:
        zf.writestr("org_data/train.src.txt", "a <unk> b\nclean document\nhas # sign\n")
        zf.writestr("org_data/train.tgt.txt", "t1\nclean title\nt3\n")
    sc = tmp_path / "story_cloze"
    sc.mkdir()
    rows = "".join(f'"s{i}","A.","B.","C.","D.","E1.","E2.","{1 + i % 2}"\n' for i in range(203))
    (sc / "cloze_test_val__spring2016 - cloze_test_ALL_val.csv").write_text("h\n" + rows)
    pc = tmp_path / "para_crawl_enes"
    pc.mkdir()
    with gzip.open(pc / "en-es.bicleaner07.txt.gz", "wt", encoding="utf-8") as fh:
        fh.write("".join(f"Hello {i}.\tHola {i}.\n" for i in range(5)))
    uq = tmp_path / "unified_qa_science_inst"
    uq.mkdir()
    (uq / "train.tsv").write_text("What melts ice? \\n (a) heat (b) cold\theat\n")
    mn = tmp_path / "multi_news"
    mn.mkdir()
    (mn / "train.src.cleaned").write_text(
        "First story.NEWLINE_CHAR Line two. ||||| Second story. |||||\nOther doc. ||||| \n",
        encoding="utf-8",
    )
    (mn / "train.tgt").write_text(
        "– A summary that starts with a dash.\n– Another one.\n", encoding="utf-8"
    )
    want = {
        "wiki_dialog": (
            99,
            lambda r: r["answer"] in ("S1.", "S2.") and r["question"].endswith("?"),
        ),
        "gigaword": (1, lambda r: r["document"] == "clean document"),  # UNK and '#' rows filtered
        "story_cloze": (
            3,
            lambda r: r["answer"] in ("E1.", "E2.") and r["context"] == "A. B. C. D.",
        ),
        "para_crawl_enes": (5, lambda r: r["target_text"].startswith("Hola")),
        "unified_qa_science_inst": (1, lambda r: r["answer"] == "heat"),
        "multi_news": (
            2,
            lambda r: (
                "NEWLINE_CHAR" not in r["document"]
                and "|||||" not in r["document"]
                and r["summary"].startswith("– ")
            ),  # the leading dash is kept, as the hub script does
        ),
    }
    for name, (n, ok) in want.items():
        task = catalog.task(name)
        src = open_task_source(catalog, task, choice="real", source_dirs={name: tmp_path / name})
        rows = _render(catalog, task, src)
        assert len(rows) == n and all(ok(r) for r in rows), (name, rows[:2])


def test_catalog_show_prints_route_revision_and_evidence():
    from click.testing import CliRunner

    from flan_data.cli import main

    r = CliRunner().invoke(main, ["catalog", "show", "e2e_nlg"])
    assert r.exit_code == 0, r.output
    assert "revision=fa9e3488f9ac7174a4e9e6fae0e645e13a8dca78" in r.output
    assert '"export_config": "e2e_nlg"' in r.output and "Evidence:" in r.output
    r = CliRunner().invoke(main, ["catalog", "show", "wiki_dialog"])
    assert "kind=raw" in r.output and "storage.googleapis.com/gresearch" in r.output


def test_pinned_revisions_are_full_commits_and_reach_every_task_of_the_repo(catalog):
    """PINS names only full 40-hex commits (a short or expanded id would be a guess), and every
    catalog task reading that repo from the hub carries the pinned commit and its evidence."""
    import re
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    try:
        import build_catalog
    finally:
        sys.path.pop(0)
    assert {
        "rajpurkar/squad_v2",
        "allenai/ai2_arc",
        "mandarjoshi/trivia_qa",
        "svakulenk0/qrecc",
        "google-research-datasets/paws",
    } <= set(build_catalog.PINS)
    for repo, (sha, seen) in build_catalog.PINS.items():
        assert re.fullmatch(r"[0-9a-f]{40}", sha), repo
        assert sha in seen or "huggingface.co" in seen, repo
        tasks = [
            t for t in catalog.tasks.values() if t.source.kind == "hf" and t.source.path == repo
        ]
        assert tasks, repo
        for t in tasks:
            assert t.source.revision == sha, (repo, t.name, t.source.revision)
            note = t.source.note or ""
            assert sha in note or note.startswith("Same source as"), (repo, t.name)


def test_script_only_trec_says_how_to_supply_it(catalog):
    task = catalog.task("trec")
    assert task.source.path in hfmod.SCRIPT_ONLY_REPOS and not task.source.revision
    with pytest.raises(SourceError, match=r"trec\.py loading script.*--source-dir trec=PATH"):
        open_source(task.source).check()
