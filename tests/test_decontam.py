"""Decontamination: eval readers, the n-gram index against a brute-force check,
planted items in rows and exemplar pools, the CLI and the export hook."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pyarrow.ipc as ipc
import pytest
from click.testing import CliRunner

from flan_data import Catalog
from flan_data.cli import main
from flan_data.decontam import EvalItem, EvalSet, NgramIndex, RowFilter, read_eval, scan, words
from flan_data.errors import FlanDataError
from flan_data.export import export_mixture
from flan_data.render import Exemplar

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
if not SHARED.is_dir():
    SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def brute(texts, evals, n=13, min_words=8):
    """The rule written the slow, obvious way: sets of word tuples."""
    grams: dict[tuple[str, ...], set[str]] = {}
    for ev in evals:
        for it in ev.items:
            for seg in it.segments:
                w = words(seg)
                if len(w) < min_words:
                    continue
                L = min(n, len(w))
                for i in range(len(w) - L + 1):
                    grams.setdefault(tuple(w[i : i + L]), set()).add(f"{ev.name}:{it.id}")
    lengths = {len(g) for g in grams}
    out = []
    for t in texts:
        w = words(t)
        hit: set[str] = set()
        for L in lengths:
            for i in range(len(w) - L + 1):
                hit |= grams.get(tuple(w[i : i + L]), set())
        out.append(hit)
    return out


def found_ids(index, texts):
    return [{index.item_ids[m.item] for m in ms} for ms in index.find_many(texts)]


# ----------------------------------------------------------------------------- normalization and rule


def test_words_normalize_case_punctuation_and_unicode():
    assert words("Hello,   WORLD!! It's") == ["hello", "world", "it", "s"]
    assert words("ﬁve Ｆｕｌｌ") == ["five", "full"]  # NFKC: ligature and full-width forms
    assert words("") == []


Q1 = "A baker sells 24 loaves every morning and twice as many in the afternoon; how many loaves in a week?"
Q2 = "Which planet in our solar system has the longest day measured against its own year length?"
SHORT = "name the capital city of the smallest country"  # 8 words: matched whole
TINY = "True or False"  # under min_words: not indexed


@pytest.fixture
def toy():
    ev = EvalSet("toy", [EvalItem("q1", (Q1, "168")), EvalItem("q2", (Q2,)), EvalItem("s", (SHORT,)),
                         EvalItem("t", (TINY,))])  # fmt: skip
    return ev, NgramIndex.build([ev])


def test_planted_items_are_caught_and_near_misses_are_not(toy):
    ev, idx = toy
    assert idx.sets[0]["short_segments"] == 2  # "168" and TINY
    texts = [
        "Question: " + Q1.upper() + "\nAnswer:",  # whole item, other case and punctuation
        "Context. " + " ".join(words(Q2)[2:15]) + " and more",  # a 13-word slice of q2
        "Please " + SHORT + ", thanks",  # the short item, whole
        Q1.replace("morning", "evening").replace(
            "afternoon", "night"
        ),  # near miss: no 13 words in a row
        "name the capital city of the largest country",  # near miss of SHORT
        "True or False: the sky is green",  # TINY is not indexed
        " ".join(words(Q2)[:12]),  # 12 words: one short of an n-gram
    ]
    got = found_ids(idx, texts)
    assert got == [{"toy:q1"}, {"toy:q2"}, {"toy:s"}, set(), set(), set(), set()]
    assert got == brute(texts, [ev])
    m = idx.find(texts[1])[0]
    assert m.ngram == " ".join(words(Q2)[2:15]) and len(m.ngram.split()) == 13


def test_matches_equal_brute_force_on_random_text():
    rng = random.Random(5)
    vocab = [f"w{i}" for i in range(4)]
    items = [EvalItem(f"i{k}", (" ".join(rng.choice(vocab) for _ in range(rng.randint(2, 9))),))
             for k in range(60)]  # fmt: skip
    ev = EvalSet("r", items)
    idx = NgramIndex.build([ev], n=5, min_words=3)
    texts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(0, 40))) for _ in range(300)]
    got = found_ids(idx, texts)
    exp = brute(texts, [ev], n=5, min_words=3)
    assert got == exp and sum(map(bool, exp)) > 20
    # one text at a time gives the same as the batch
    assert [found_ids(idx, [t])[0] for t in texts[:50]] == exp[:50]


def test_index_save_load_roundtrip(tmp_path, toy):
    ev, idx = toy
    idx.save(tmp_path / "ix")
    back = NgramIndex.load(tmp_path / "ix")
    texts = [Q1, Q2, SHORT, "nothing here"]
    assert found_ids(back, texts) == found_ids(idx, texts)
    assert back.describe() == idx.describe() and back.fingerprint == idx.fingerprint


def test_bad_parameters_and_limits(toy):
    ev, _ = toy
    with pytest.raises(FlanDataError, match="min words"):
        NgramIndex.build([ev], n=5, min_words=6)
    with pytest.raises(FlanDataError, match="max-ngrams"):
        NgramIndex.build([ev], max_ngrams=3)
    with pytest.raises(FlanDataError, match="NAME=PATH"):
        NgramIndex.build([ev, ev])


# ----------------------------------------------------------------------------- readers


def _write(p: Path, text: str) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p


def test_readers_for_published_formats(tmp_path):
    bbh = tmp_path / "bbh_repo"
    _write(
        bbh / "bbh" / "navigate.json",
        json.dumps({"canary": "x", "examples": [{"input": Q1, "target": "Yes"}]}),
    )
    _write(bbh / "cot-prompts" / "navigate.txt", "not an eval item")
    ev = read_eval(str(bbh))
    assert (ev.format, ev.name, [i.id for i in ev.items]) == ("bbh", "bbh_repo", ["navigate/0"])
    assert read_eval(str(bbh / "bbh" / "navigate.json")).items[0].segments == (Q1, "Yes")

    gsm = _write(
        tmp_path / "test.jsonl",
        json.dumps({"question": Q1, "answer": "12 * 7 = 84\n#### 84"}) + "\n",
    )
    ev = read_eval(f"gsm8k={gsm}")
    assert (ev.name, ev.format, ev.items[0].id, ev.items[0].segments[0]) == (
        "gsm8k",
        "gsm8k",
        "test/1",
        Q1,
    )

    mmlu = tmp_path / "data"
    with open(_write(mmlu / "test" / "astronomy_test.csv", ""), "w", newline="") as fh:
        csv.writer(fh).writerow([Q2, "Venus", "Mars", "Earth", "Jupiter", "A"])
    _write(mmlu / "dev" / "astronomy_dev.csv", "")
    ev = read_eval(str(mmlu))
    assert ev.format == "mmlu" and ev.items[0] == EvalItem(
        "astronomy/0", (Q2, "Venus", "Mars", "Earth", "Jupiter")
    )

    squad = {"data": [{"title": "T", "paragraphs": [{"context": SHORT, "qas": [{"id": "fi-1", "question": Q2, "answers": []}]}]}]}  # fmt: skip
    ev = read_eval(str(_write(tmp_path / "tydiqa-goldp-v1.1-dev.json", json.dumps(squad))))
    assert ev.format == "tydiqa" and ev.items == [EvalItem("fi-1", (Q2, SHORT))]
    prim = _write(tmp_path / "tydiqa-v1.0-dev.jsonl", json.dumps({"example_id": 77, "question_text": Q2, "document_plaintext": "long"}) + "\n")  # fmt: skip
    assert read_eval(str(prim)).items == [EvalItem("77", (Q2,))]

    mg = tmp_path / "mgsm"
    _write(mg / "mgsm_de.tsv", f"{Q1}\t84\n{Q2}\t3\n")
    ev = read_eval(str(mg))
    assert ev.format == "mgsm" and [i.id for i in ev.items] == ["mgsm_de/0", "mgsm_de/1"]

    gen = _write(
        tmp_path / "mine.jsonl", json.dumps({"id": "a", "prompt": Q1, "ctx": [Q2, SHORT]}) + "\n"
    )
    assert read_eval(f"{gen}::prompt,ctx").items == [EvalItem("a", (Q1, Q2, SHORT))]


def test_hf_save_to_disk_reader(tmp_path):
    datasets = pytest.importorskip("datasets")
    d = datasets.DatasetDict(
        {"test": datasets.Dataset.from_dict({"id": ["x1", "x2"], "question": [Q1, Q2]})}
    )
    d.save_to_disk(str(tmp_path / "hf"))
    ev = read_eval(f"{tmp_path / 'hf'}::question")
    assert ev.format == "hf" and [i.id for i in ev.items] == ["test/x1", "test/x2"]
    with pytest.raises(FlanDataError, match="did you mean question"):
        read_eval(f"{tmp_path / 'hf'}::questoin")


def test_reader_errors_name_the_place(tmp_path):
    with pytest.raises(FlanDataError, match="no such file"):
        read_eval(str(tmp_path / "missing.jsonl"))
    bad = _write(tmp_path / "bad.jsonl", '{"text": "ok"}\n{not json\n')
    with pytest.raises(FlanDataError, match=r"bad.jsonl, line 2"):
        read_eval(str(bad))
    f = _write(tmp_path / "f.jsonl", json.dumps({"txt": "hello"}) + "\n")
    with pytest.raises(FlanDataError, match="no field 'text'; did you mean txt"):
        read_eval(str(f))
    with pytest.raises(FlanDataError, match="unknown eval file type"):
        read_eval(str(_write(tmp_path / "x.xml", "<a/>")))
    with pytest.raises(FlanDataError, match="expected 6 columns"):
        read_eval(str(_write(tmp_path / "m" / "test" / "a_test.csv", "q,a,b\n").parent.parent))


# ----------------------------------------------------------------------------- export hooks


def test_row_filter_pool_and_field(toy):
    ev, idx = toy
    f = RowFilter(idx)
    pool = [Exemplar("p0", {"question": "clean one here"}), Exemplar("p1", {"question": Q1, "answer": "168"}),
            Exemplar("p2", {"question": "another clean", "options": ["a", SHORT]})]  # fmt: skip
    assert [e.example_id for e in f.clean_pool("t", pool)] == ["p0"]
    canon = {
        "q": "x",
        "pos": [{"input": "fine", "output": "ok"}, {"input": Q2, "output": "y"}, {"input": "z"}],
    }
    out = f.clean_field("t", canon, "pos")
    assert out["pos"] == [canon["pos"][0], canon["pos"][2]] and canon["pos"][1]["input"] == Q2
    cols = {
        "inputs": ["clean", "Q: " + Q2, "clean again"],
        "targets": ["a", "b", SHORT],
        "index": [0, 1, 2],
    }
    kept = f.filter_rows("t", cols)
    assert kept == {"inputs": ["clean"], "targets": ["a"], "index": [0]}
    rep = f.report.to_json()
    (cell,) = rep["hits"]
    assert (cell["rows"], cell["rows_hit"], cell["rows_dropped"], cell["exemplars_replaced"]) == (
        3,
        2,
        2,
        3,
    )
    assert cell["item_ids"] == ["q1", "q2", "s"]


def _rows(out: Path) -> list[dict]:
    rows = []
    for p in sorted(out.rglob("shard-*.arrow")):
        with ipc.open_file(p) as r:
            rows += r.read_all().to_pylist()
    return rows


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """An eval set made of demo sample records (premises of anli_r1 and questions
    of arc_challenge), plus near misses that must not match."""
    root = Path(__file__).resolve().parents[1] / "sample_data"
    d = tmp_path_factory.mktemp("planted")
    anli = [
        json.loads(x)
        for x in (root / "anli_r1" / "train.jsonl").read_text().splitlines()
        if x.strip()
    ]
    lines = [{"id": f"anli{i}", "text": r["premise"]} for i, r in enumerate(anli[:4])]
    w = words(anli[5]["premise"])
    near = " ".join("zzz" if i % 7 == 6 else x for i, x in enumerate(w))  # no 13 words in a row
    assert len(w) >= 13
    lines.append({"id": "near", "text": near})
    ev = d / "eval.jsonl"
    ev.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return ev


def test_export_decontaminate_matches_brute_force(tmp_path, planted):
    cat = Catalog.load()
    quiet = {"progress": False, "log": lambda s: None, "total": 500, "seed": 4}
    plain = export_mixture(cat, "demo", tmp_path / "plain", **quiet)
    spec = f"{planted}::text"
    clean = export_mixture(cat, "demo", tmp_path / "clean", decontaminate=[spec], **quiet)
    evs = [read_eval(spec)]
    a, b = _rows(tmp_path / "plain"), _rows(tmp_path / "clean")
    hits_a = brute([r["inputs"] + "\n" + r["targets"] for r in a], evs)
    assert sum(map(bool, hits_a)) > 0  # the plain export does contain the planted items
    assert not any(
        brute([r["inputs"] + "\n" + r["targets"] for r in b], evs)
    )  # the clean one does not
    assert all("eval:near" not in h for h in hits_a)
    dc = clean["decontamination"]
    assert dc["rows_checked"] == plain["num_rows"] == 500
    assert clean["num_rows"] == 500 - dc["rows_dropped"] and dc["rows_dropped"] > 0
    # zero-shot rows do not depend on exemplars: the clean export keeps exactly the plain rows not hit
    zs = [(r["task"], r["example_id"], r["format"], r["inputs"]) for r, h in zip(a, hits_a)
          if r["format"].startswith("zs") and not h]  # fmt: skip
    assert sorted(zs) == sorted(
        (r["task"], r["example_id"], r["format"], r["inputs"])
        for r in b
        if r["format"].startswith("zs")
    )
    zs_dropped = sum(1 for r, h in zip(a, hits_a) if r["format"].startswith("zs") and h)
    report = json.loads((tmp_path / "clean" / "decontamination.json").read_text())
    zs_fs = {}
    for r in b:
        zs_fs[r["task"]] = zs_fs.get(r["task"], 0) + 1
    assert (
        report["rows_total"] == 500
        and sum(e["rows_dropped"] for e in report["hits"]) == dc["rows_dropped"]
    )
    assert dc["rows_dropped"] >= zs_dropped
    # few-shot rows that carried a planted exemplar in the plain export now carry clean ones
    fs_with_planted_exemplar = [r for r, h in zip(a, hits_a) if r["format"].startswith("fs") and h
                                and not brute([r["targets"]], evs)[0]]  # fmt: skip
    assert dc["exemplars_replaced"] > 0 or not fs_with_planted_exemplar
    # manifest counts are the rows actually written
    assert sum(n for d in clean["counts"].values() for n in d.values()) == clean["num_rows"]
    for task, per in dc["by_task"].items():
        assert set(per) == {"eval"} and task in ("anli_r1", "anli_r1_ii")


def test_export_decontaminate_same_bytes_for_any_workers(tmp_path, planted):
    cat = Catalog.load()
    kw = {
        "progress": False,
        "log": lambda s: None,
        "total": 200,
        "seed": 1,
        "decontaminate": [f"{planted}::text"],
    }
    export_mixture(cat, "demo", tmp_path / "w1", workers=1, **kw)
    export_mixture(cat, "demo", tmp_path / "w2", workers=2, **kw)
    files = lambda d: {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}  # noqa: E731
    assert files(tmp_path / "w1") == files(tmp_path / "w2")


# ----------------------------------------------------------------------------- CLI and real data


def test_cli_decontaminate_rows_file(tmp_path, toy):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps(x) + "\n" for x in [
        {"task": "a", "q": Q1, "a": "x"}, {"task": "a", "q": "fine", "a": "y"}, {"task": "b", "q": "ok", "a": SHORT}]))  # fmt: skip
    ev = tmp_path / "toy.jsonl"
    ev.write_text(
        "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in [("q1", Q1), ("s", SHORT)])
    )
    r = CliRunner().invoke(
        main, ["decontaminate", str(rows), "--fields", "q,a", "--against", f"{ev}::text", "--json"]
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["rows_total"] == 3 and data["rows_hit"] == 2
    cells = {(e["task"], e["eval_set"]): e for e in data["hits"]}
    assert cells[("a", "toy")]["share"] == 0.5 and cells[("a", "toy")]["item_ids"] == ["q1"]
    assert cells[("b", "toy")]["where"] == {"a": 1}
    r = CliRunner().invoke(
        main,
        [
            "decontaminate",
            str(rows),
            "--fields",
            "q,a",
            "--against",
            f"{ev}::text",
            "--fail-on-hit",
        ],
    )
    assert r.exit_code == 2 and "2 hit" in r.output
    r = CliRunner().invoke(
        main, ["decontaminate", str(rows), "--fields", "question", "--against", f"{ev}::text"]
    )
    assert r.exit_code != 0 and "no field 'question'" in r.output


GSM = SHARED / "gsm8k" / "train.jsonl"
BBH = SHARED / "bbh"


@pytest.mark.skipif(not (GSM.is_file() and BBH.is_dir()), reason="../shared gsm8k/bbh not present")
def test_real_gsm8k_train_against_bbh_and_planted_gsm8k_items(tmp_path):
    """GSM8K train against BIG-Bench Hard (real files) agrees with the brute-force
    rule; 30 GSM8K train questions written out as a GSM8K-format eval file are
    found exactly where they are (and wherever the same text repeats)."""
    recs = [json.loads(x) for x in GSM.read_text(encoding="utf-8").splitlines() if x.strip()]
    texts = [r["question"] + "\n" + r["answer"] for r in recs]
    bbh = read_eval(str(BBH))
    idx = NgramIndex.build([bbh])
    got = found_ids(idx, texts)
    assert got == brute(texts, [bbh])
    picks = sorted(random.Random(0).sample(range(len(recs)), 30))
    ev_file = tmp_path / "gsm8k_test.jsonl"
    ev_file.write_text(
        "".join(
            json.dumps({"question": recs[i]["question"], "answer": "#### 0"}) + "\n" for i in picks
        )
    )
    gsm = read_eval(str(ev_file))
    assert gsm.format == "gsm8k"
    rep = scan(NgramIndex.build([gsm]), GSM, fields=("question", "answer"), task_field=None)
    data = rep.to_json(full_ids=True)
    exp = brute(texts, [gsm])
    assert data["rows_hit"] == sum(map(bool, exp)) >= 30
    (cell,) = data["hits"]
    assert cell["eval_items"] == len({i for h in exp for i in h})
    hit_rows = {i for i, h in enumerate(exp) if h}
    assert set(picks) <= hit_rows


def test_export_with_license_and_decontaminate(tmp_path):
    """The issue's end-to-end check: --license commercial and --decontaminate
    together write the attribution file and a report whose counts match the
    brute-force rule on the rows of the same export without decontamination."""
    from flan_data.licenses import LicensePolicy

    root = Path(__file__).resolve().parents[1] / "sample_data" / "arc_challenge"
    recs = [json.loads(x) for x in (root / "train.jsonl").read_text().splitlines() if x.strip()]
    ev = tmp_path / "arc_eval.jsonl"
    ev.write_text(
        "".join(json.dumps({"id": r["id"], "text": r["question"]}) + "\n" for r in recs[:6])
    )
    spec = f"arc={ev}::text"
    cat = Catalog.load()
    pol = LicensePolicy.from_options("commercial")
    kw = {"progress": False, "log": lambda s: None, "total": 300, "seed": 2, "license_policy": pol}
    plain = export_mixture(cat, "demo", tmp_path / "plain", **kw)
    clean = export_mixture(cat, "demo", tmp_path / "clean", decontaminate=[spec], **kw)
    assert (tmp_path / "clean" / "ATTRIBUTION.md").is_file() and clean["license_policy"][
        "license_classes"
    ] == ["commercial"]
    assert all(cat.task(t).metadata.licensing.use == "commercial" for t in clean["counts"])
    evs = [read_eval(spec)]
    a, b = _rows(tmp_path / "plain"), _rows(tmp_path / "clean")
    hits_a = brute([r["inputs"] + "\n" + r["targets"] for r in a], evs)
    assert not any(brute([r["inputs"] + "\n" + r["targets"] for r in b], evs))
    report = json.loads((tmp_path / "clean" / "decontamination.json").read_text())
    # zero-shot rows are the same in both exports: dropped = hit, per task, exactly
    zs_hit: dict[str, int] = {}
    for r, h in zip(a, hits_a):
        if h and r["format"].startswith("zs"):
            zs_hit[r["task"]] = zs_hit.get(r["task"], 0) + 1
    assert zs_hit, "the planted questions must occur in zero-shot rows"
    zs_b = {}
    for r in b:
        if r["format"].startswith("zs"):
            zs_b[r["task"]] = zs_b.get(r["task"], 0) + 1
    zs_a = {}
    for r in a:
        if r["format"].startswith("zs"):
            zs_a[r["task"]] = zs_a.get(r["task"], 0) + 1
    for task, n in zs_hit.items():
        assert zs_a[task] - zs_b.get(task, 0) == n
    dropped = sum(e["rows_dropped"] for e in report["hits"])
    assert (
        dropped == clean["decontamination"]["rows_dropped"] == plain["num_rows"] - clean["num_rows"]
    )
    ids = {i for e in report["hits"] for i in e["item_ids"]}
    assert ids <= {r["id"] for r in recs[:6]} and ids
