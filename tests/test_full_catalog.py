"""The full Flan 2022 catalog: counts, names, metadata, inversions, lint and renders.

Reference-table comparisons read ``../shared/reference`` and skip cleanly when it
is absent (a fresh clone has no ``../shared``); everything else runs on the
committed YAML alone. Field mappings of the Flan 2021 tasks, whose real data is
not bundled, are exercised on small hand-made records in each source's schema
(:data:`RECORDS`, written from the field lists of flan2021_hf_sources.csv).
"""

from __future__ import annotations

import csv
import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest

from flan_data import Catalog
from flan_data.linter import lint
from flan_data.render import RenderConfig, Renderer

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
REFERENCE = SHARED / "reference"

N_FLAN2021 = 71
N_T0SF = 193
N_NIV2 = 1613  # 1,654 names in FLAN's list, 41 of them spelt twice (aliases here)
N_MMLU = 57
N_COT = 18
N_DIALOG = 4
COT_DATASETS = (
    "gsm8k",
    "strategyqa",
    "creak",
    "qasc",
    "esnli",
    "ecqa",
    "sensemaking",
    "aqua",
    "qed",
)


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return Catalog.load()


def _reference(name: str) -> Path:
    p = REFERENCE / name
    if not p.is_file():
        pytest.skip(f"{p} not available (../shared is not part of a fresh clone)")
    return p


def _rows(name: str) -> list[dict[str, str]]:
    with open(_reference(name), newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _originals(cat: Catalog, collection: str) -> list[str]:
    return [t.name for t in cat.tasks_in(collection) if t.metadata.inversion_of is None]


def _is_mmlu(name: str) -> bool:
    n = int(re.match(r"task(\d+)", name).group(1))
    return 664 <= n <= 667 or 685 <= n <= 737


# ----------------------------------------------------------------------------- counts


def test_counts_per_collection(cat):
    flan = cat.tasks_in("flan2021")
    originals = _originals(cat, "flan2021")
    inversions = [t for t in flan if t.metadata.inversion_of is not None]
    assert len(originals) == N_FLAN2021
    assert len(flan) == N_FLAN2021 + len(inversions)
    assert 0 < len(inversions) <= N_FLAN2021
    assert len(cat.tasks_in("t0sf")) == N_T0SF
    assert len(cat.tasks_in("niv2")) == N_NIV2
    assert len(cat.tasks_in("cot")) == N_COT
    assert len(cat.tasks_in("dialog")) == N_DIALOG


def test_catalog_stats_cli_agrees(cat):
    from flan_data.cli import catalog_stats_data

    stats = catalog_stats_data(cat)["collections"]
    assert stats["t0sf"]["tasks"] == N_T0SF
    assert stats["niv2"]["tasks"] == N_NIV2
    assert stats["niv2"]["excluded"] == N_MMLU
    assert stats["cot"] == {**stats["cot"], "tasks": N_COT, "inversions": 9}
    assert stats["dialog"] == {**stats["dialog"], "tasks": N_DIALOG, "inversions": 2}
    assert stats["flan2021"]["tasks"] - stats["flan2021"]["inversions"] == N_FLAN2021


def test_mmlu_tasks_are_excluded_from_training(cat):
    excluded = sorted(t.name for t in cat.tasks.values() if t.metadata.exclude_from_training)
    assert len(excluded) == N_MMLU
    assert all(cat.task(n).collection == "niv2" and _is_mmlu(n) for n in excluded)
    assert sorted(t.name for t in cat.tasks_in("niv2") if _is_mmlu(t.name)) == excluded


def test_cot_and_dialog_names(cat):
    want = {f"cot_{d}" for d in COT_DATASETS} | {f"cot_{d}_ii" for d in COT_DATASETS}
    assert {t.name for t in cat.tasks_in("cot")} == want
    assert {t.name for t in cat.tasks_in("dialog")} == {
        "wiki_dialog",
        "wiki_dialog_ii",
        "qrecc",
        "qrecc_ii",
    }
    for d in COT_DATASETS:
        t = cat.task(f"cot_{d}")
        assert t.source.kind == "cot_tsv" and t.source.path == f"{d}_train.tsv"
        assert t.templates == ("cot",) and cat.task(f"cot_{d}_ii").templates == ("cot_ii",)


def test_catalog_load_parses_each_file_at_most_once(monkeypatch):
    # Work, not time (the machines are shared and noisy): loading the full
    # catalog never parses a file twice.
    from flan_data import catalog as catalog_module

    parsed: list[Path] = []
    real = catalog_module.read_yaml

    def counting(path):
        parsed.append(Path(path))
        return real(path)

    monkeypatch.setattr(catalog_module, "read_yaml", counting)
    cat = Catalog.load()
    assert len(parsed) == len(set(parsed)) <= len(cat.files)


# ----------------------------------------------------------------------------- metadata and inversions


def test_every_task_has_languages_and_a_category(cat):
    no_lang = [t.name for t in cat.tasks.values() if not t.metadata.languages]
    assert not no_lang
    # Only the MMLU-derived NIv2 tasks are missing from flan_collection_info.csv.
    no_cat = sorted(t.name for t in cat.tasks.values() if not t.metadata.category)
    assert no_cat == sorted(t.name for t in cat.tasks_in("niv2") if _is_mmlu(t.name))


def test_inversions_point_to_their_original(cat):
    for t in cat.tasks.values():
        inv = t.metadata.inversion_of
        if inv is None:
            assert not t.name.endswith("_ii"), t.name
            continue
        assert inv in cat.tasks, t.name
        orig = cat.task(inv)
        assert orig.metadata.inversion_of is None
        assert orig.collection == t.collection
        assert t.name == f"{inv}_ii"
        assert all(ct.kind == "inversion" for ct in cat.templates_for(t)), t.name


def test_held_out_only_niv2_test_tasks(cat):
    for t in cat.tasks.values():
        assert t.metadata.held_out == (
            t.collection == "niv2" and t.metadata.extra.get("niv2_split") == "test"
        ), t.name
    assert {t.metadata.extra.get("niv2_split") for t in cat.tasks_in("niv2")} == {
        "train",
        "test",
        "none",
    }


def test_t0sf_tasks_with_options_only_use_option_templates(cat):
    for t in cat.tasks_in("t0sf"):
        assert t.source.path == "bigscience/P3" and t.source.config == t.name
        assert t.fields["inputs"] == "inputs_pretokenized | trim"
        assert t.templates == ("t0_wrap",)
        if t.has_options:
            assert t.options_field == "answer_choices"
            assert all(
                cat.templates[i].kind != "zero_shot" or "options_block" in cat.templates[i].input
                for i in cat.template_sets["t0_wrap"]
            )


def test_niv2_defaults_applied(cat):
    for t in cat.tasks_in("niv2"):
        assert t.source.kind == "niv2"
        assert t.source.path.startswith(t.name.split("_")[0] + "_")
        assert 1 <= t.source.validation_size <= 100
        assert t.templates == ("niv2_zs", "niv2_fs")
        assert t.exemplar_field == "positive_examples"


# ----------------------------------------------------------------------------- reference tables


def test_flan2021_names_match_reference(cat):
    want = [r["task"] for r in _rows("flan2021_hf_sources.csv")]
    assert len(want) == N_FLAN2021
    assert _originals(cat, "flan2021") == want


def test_t0sf_names_and_task_types_match_reference(cat):
    rows = [r for r in _rows("p3_subtasks.csv") if r["in_flan"] == "False"]
    assert [t.name for t in cat.tasks_in("t0sf")] == [r["p3_subtask"] for r in rows]
    for r in rows:
        assert cat.task(r["p3_subtask"]).metadata.task_type == r["task_type"]
    # every multiple-choice subtask shows its answer choices
    for r in rows:
        if r["task_type"] != "t0_question_answer":
            assert cat.task(r["p3_subtask"]).has_options, r["p3_subtask"]


def test_niv2_names_splits_and_categories_match_reference(cat):
    rows = _rows("niv2_tasks.csv")
    # every name of FLAN's list is a task or an alias of one
    assert [cat.task(r["task"]).collection for r in rows] == ["niv2"] * len(rows)
    names = [t.name for t in cat.tasks_in("niv2")]
    aliases = [a for t in cat.tasks_in("niv2") for a in t.aliases]
    assert sorted(names + aliases) == sorted(r["task"] for r in rows)
    assert len(aliases) == 41 and len(names) == N_NIV2


def test_niv2_one_task_per_task_file(cat):
    paths = [t.source.path for t in cat.tasks_in("niv2")]
    assert len(paths) == len(set(paths))
    for t in cat.tasks_in("niv2"):
        for a in t.aliases:
            assert cat.task(a) is t and a.replace("-", "_") == t.name.replace("-", "_")


def _niv2_reference_checks(cat):
    _rows("niv2_tasks.csv")  # skips when the reference tables are absent
    splits = SHARED / "data" / "niv2" / "splits" / "default"
    if not splits.is_dir():
        pytest.skip(f"{splits} not available")
    train = set((splits / "train_tasks.txt").read_text().split())
    test = set((splits / "test_tasks.txt").read_text().split())
    for t in cat.tasks_in("niv2"):
        file_name = t.source.path  # the task file; differs from the name for FLAN's respelled names
        want = "test" if file_name in test else "train" if file_name in train else "none"
        assert t.metadata.extra["niv2_split"] == want, t.name
    # every default-track task is covered
    assert test <= {t.source.path for t in cat.tasks_in("niv2")}
    assert train <= {t.source.path for t in cat.tasks_in("niv2")}
    info = {
        r["Specific Task Category"]: r["Generic Task Category"]
        for r in _rows("flan_collection_info.csv")
        if r["Source"] == "NIv2"
    }
    for t in cat.tasks_in("niv2"):
        if t.name in info:
            assert t.metadata.category == info[t.name], t.name


def test_niv2_splits_and_categories_match_reference(cat):
    _niv2_reference_checks(cat)


def test_flan2021_categories_match_reference(cat):
    info: dict[str, set[str]] = {}
    for r in _rows("flan_collection_info.csv"):
        if r["Source"] in ("FLAN", "FLAN/T0"):
            info.setdefault(r["Dataset"], set()).add(r["Specific Task Category"])
    for t in cat.tasks_in("flan2021"):
        base = t.metadata.inversion_of or t.name
        cats = info.get(base) or info.get("mnli" if base.startswith("mnli_") else base)
        assert t.metadata.category in cats, t.name
        assert t.metadata.category.startswith("Inverted ") == (
            t.metadata.inversion_of is not None
        ), t.name


def test_generated_files_are_up_to_date():
    """tools/build_catalog.py reproduces the committed collection files."""
    _reference("flan2021_hf_sources.csv")
    spec = importlib.util.spec_from_file_location(
        "build_catalog", REPO / "tools" / "build_catalog.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    outputs = mod.build_all(SHARED)
    stale = [
        n
        for n, text in outputs.items()
        if (REPO / "collections" / (n if "." in n else f"{n}.yaml")).read_text(encoding="utf-8")
        != text
    ]
    assert not stale, f"collections out of date, rerun tools/build_catalog.py: {stale}"


# ----------------------------------------------------------------------------- lint and renders


def test_lint_whole_catalog_has_no_errors(cat):
    problems = lint(cat, rows=2)
    errors = [str(p) for p in problems if p.level == "error"]
    assert not errors, "\n".join(errors[:20])


def _tr(url_a: str, url_b: str, a: str, b: str) -> dict[str, Any]:
    return {"translation": {url_a: a, url_b: b}}


# One raw record per Flan 2021 source without bundled sample data, in the hub schema.
RECORDS: dict[str, dict[str, Any]] = {
    "rte": {
        "premise": "The museum opened in 1901.",
        "hypothesis": "The museum is old.",
        "idx": 3,
        "label": 0,
    },
    "wsc": {
        "text": "Mark told Pete many lies about himself, which Pete included in his book. He should have been more skeptical.",
        "span1_index": 0,
        "span2_index": 13,
        "span1_text": "Pete",
        "span2_text": "He",
        "idx": 1,
        "label": 1,
    },
    "wic": {
        "word": "bank",
        "sentence1": "He sat on the bank of the river.",
        "sentence2": "She went to the bank to get cash.",
        "start1": 0,
        "start2": 0,
        "end1": 0,
        "end2": 0,
        "idx": 0,
        "label": 0,
    },
    "natural_questions": {"question": "who wrote the novel dracula", "answer": ["Bram Stoker"]},
    "record": {
        "passage": "A storm hit Boston on Monday.\n@highlight\nSchools closed in Boston",
        "query": "Officials in @placeholder urged people to stay home.",
        "entities": ["Boston", "Monday", "Boston"],
        "entity_spans": {"text": [], "start": [], "end": []},
        "answers": ["Boston"],
        "idx": {"passage": 0, "query": 0},
    },
    "trivia_qa": {
        "question": "Which planet is known as the Red Planet?",
        "question_id": "tq1",
        "question_source": "x",
        "entity_pages": {},
        "search_results": {},
        "answer": {
            "aliases": ["Mars"],
            "normalized_aliases": ["mars"],
            "matched_wiki_entity_name": "",
            "normalized_matched_wiki_entity_name": "",
            "normalized_value": "mars",
            "type": "WikipediaEntity",
            "value": "Mars",
        },
    },
    "arc_easy": {
        "id": "a1",
        "question": "Which is a mammal?",
        "choices": {"text": ["shark", "whale", "trout", "eel"], "label": ["A", "B", "C", "D"]},
        "answerKey": "B",
    },
    "math_dataset": {"question": "b'Solve 2*x + 4 = 10 for x.\\n'", "answer": "b'3\\n'"},
    "aeslc": {
        "email_body": "Hi all, the meeting moves to 3pm on Friday. Thanks, Ann",
        "subject_line": "Meeting moved",
    },
    "cnn_dailymail": {
        "article": "(CNN) A new bridge opened today after years of work.",
        "highlights": "New bridge opens.\nIt took years.",
        "id": "c1",
    },
    "gigaword": {
        "document": "the central bank raised interest rates on tuesday by half a point .",
        "summary": "central bank raises rates",
    },
    "multi_news": {
        "document": "First article text. ||||| Second article text.",
        "summary": "– Two articles summarized.",
    },
    "newsroom": {
        "text": "The city council voted on Tuesday to expand the park.",
        "summary": "Council expands park.",
        "title": "Park",
        "url": "u",
        "date": "d",
        "density_bin": "",
        "coverage_bin": "",
        "compression_bin": "",
        "density": 1.0,
        "coverage": 1.0,
        "compression": 1.0,
    },
    "opinion_abstracts_rotten_tomatoes": {
        "_critic_consensus": "A charming, funny film.",
        "_critics": {"key": ["c1", "c2"], "value": ["Funny.", "Charming."]},
        "_movie_id": "m1",
        "_movie_name": "Film",
    },
    "opinion_abstracts_idebate": {
        "_debate_name": "Ban cars",
        "_debate_id": "d1",
        "_claim": "Cars pollute cities.",
        "_claim_id": "c1",
        "_argument_sentences": {
            "key": ["1", "2"],
            "value": ["Cars emit CO2.", "Air quality suffers."],
        },
    },
    "coqa": {
        "source": "wikipedia",
        "story": "Anna has a red bike. She rides it to school.",
        "questions": ["What does Anna have?", "What color is it?"],
        "answers": {"input_text": ["a bike", "red"], "answer_start": [0, 0], "answer_end": [0, 0]},
    },
    "samsum": {
        "id": "s1",
        "dialogue": "Amy: Lunch?\nBob: Sure, 12?\nAmy: OK",
        "summary": "Amy and Bob will have lunch at 12.",
    },
    "squad_v1": {
        "id": "q1",
        "title": "T",
        "context": "Paris is the capital of France.",
        "question": "What is the capital of France?",
        "answers": {"text": ["Paris"], "answer_start": [0]},
    },
    "squad_v2": {
        "id": "q2",
        "title": "T",
        "context": "Paris is the capital of France.",
        "question": "What is the capital of Peru?",
        "answers": {"text": [], "answer_start": []},
    },
    "drop": {
        "section_id": "s",
        "query_id": "d1",
        "passage": "The Bears scored 7 points and the Lions scored 3.",
        "question": "How many more points did the Bears score?",
        "answers_spans": {"spans": ["4"], "types": ["number"]},
    },
    "quac": {
        "dialogue_id": "qd1",
        "wikipedia_page_title": "X",
        "background": "B",
        "section_title": "S",
        "context": "He was born in 1950. CANNOTANSWER",
        "turn_ids": ["t0"],
        "questions": ["When was he born?"],
        "followups": [0],
        "yesnos": [2],
        "answers": {"texts": [["1950"]], "answer_starts": [[0]]},
        "orig_answers": {"texts": ["He was born in 1950."], "answer_starts": [0]},
    },
    "multirc": {
        "paragraph": "Tom bought apples and pears.",
        "question": "What did Tom buy?",
        "answer": "apples",
        "idx": {"paragraph": 0, "question": 0, "answer": 0},
        "label": 1,
    },
    "anli_r2": {
        "uid": "u2",
        "premise": "A dog runs.",
        "hypothesis": "An animal moves.",
        "label": 0,
        "reason": "",
    },
    "anli_r3": {
        "uid": "u3",
        "premise": "A dog runs.",
        "hypothesis": "A cat sleeps.",
        "label": 2,
        "reason": "",
    },
    "sentiment140": {
        "text": "I love this weather!",
        "date": "d",
        "user": "u",
        "sentiment": 4,
        "query": "NO_QUERY",
    },
    "story_cloze": {
        "story_id": "st1",
        "input_sentence_1": "Sam was hungry.",
        "input_sentence_2": "He opened the fridge.",
        "input_sentence_3": "It was empty.",
        "input_sentence_4": "He went to the store.",
        "sentence_quiz1": "He bought food.",
        "sentence_quiz2": "He flew to Mars.",
        "answer_right_ending": 1,
    },
    "imdb_reviews": {"text": "Great film.<br /><br />Loved it.", "label": 1},
    "paws_wiki": {
        "id": 1,
        "sentence1": "The cat sat on the mat.",
        "sentence2": "On the mat sat the cat.",
        "label": 1,
    },
    "definite_pronoun_resolution": {
        "sentence": "The bee landed on the flower because it had pollen.",
        "pronoun": "it",
        "candidates": ["The bee", "the flower"],
        "label": 1,
    },
    "glue_mrpc": {
        "sentence1": "He left early.",
        "sentence2": "He departed ahead of time.",
        "label": 1,
        "idx": 0,
    },
    "glue_qqp": {
        "question1": "How do I learn Python?",
        "question2": "What is the best way to learn Python?",
        "label": 1,
        "idx": 0,
    },
    "copa": {
        "premise": "The man broke his toe.",
        "choice1": "He dropped a hammer on his foot.",
        "choice2": "He got a hole in his sock.",
        "question": "cause",
        "idx": 0,
        "label": 0,
    },
    "winogrande": {
        "sentence": "The trophy doesn't fit into the suitcase because _ is too large.",
        "option1": "the trophy",
        "option2": "the suitcase",
        "answer": "1",
    },
    "yelp_polarity_reviews": {"text": "Terrible service.", "label": 0},
    "cosmos_qa": {
        "id": "c1",
        "context": "I missed the bus this morning.",
        "question": "Why was I late?",
        "answer0": "I missed the bus",
        "answer1": "I was sick",
        "answer2": "It rained",
        "answer3": "None of the above choices",
        "label": 0,
    },
    "para_crawl_enes": _tr("en", "es", "Good morning.", "Buenos días."),
    "wmt14_enfr": _tr("fr", "en", "Bonjour.", "Hello."),
    "wmt16_translate_tren": _tr("tr", "en", "Merhaba.", "Hello."),
    "wmt16_translate_csen": _tr("cs", "en", "Ahoj.", "Hi."),
    "wmt16_translate_fien": _tr("fi", "en", "Hei.", "Hi."),
    "wmt16_translate_roen": _tr("ro", "en", "Salut.", "Hi."),
    "wmt16_translate_ruen": _tr("ru", "en", "Привет.", "Hi."),
    "common_gen": {
        "gem_id": "g1",
        "gem_parent_id": "g1",
        "concept_set_id": 1,
        "concepts": ["dog", "frisbee", "catch"],
        "target": "The dog catches the frisbee.",
        "references": [],
    },
    "dart": {
        "gem_id": "g2",
        "gem_parent_id": "g2",
        "dart_id": 1,
        "tripleset": [["Mars", "ORBITS", "Sun"], ["Mars", "COLOR", "red"]],
        "subtree_was_extended": False,
        "target_sources": [],
        "target": "Mars is red and orbits the Sun.",
        "references": [],
    },
    "e2e_nlg": {
        "gem_id": "g3",
        "gem_parent_id": "g3",
        "meaning_representation": "name[The Eagle], eatType[pub]",
        "target": "The Eagle is a pub.",
        "references": [],
    },
    "web_nlg_en": {
        "gem_id": "g4",
        "gem_parent_id": "g4",
        "input": ["Rome | country | Italy"],
        "target": "Rome is in Italy.",
        "references": [],
        "category": "City",
        "webnlg_id": "w",
    },
    "wiki_lingua_english_en": {
        "gem_id": "g5",
        "gem_parent_id": "g5",
        "source_aligned": {},
        "target_aligned": {},
        "source": "Boil water. Add pasta. Wait ten minutes.",
        "target": "Cook pasta in boiling water.",
        "references": [],
    },
    "true_case": _tr("en", "da", "Paris is in France.", "Paris ligger i Frankrig."),
    "fix_punct": _tr("en", "da", "Hello, world! How are you?", "Hej"),
    "word_segment": _tr("en", "da", "the cat sat", "katten"),
    "cb": {"premise": "It is raining.", "hypothesis": "The ground is wet.", "idx": 0, "label": 0},
    "cola": {"sentence": "The boys runs.", "label": 0, "idx": 0},
    "sst2": {"sentence": "a delightful film", "label": 1, "idx": 0},
    "mnli_matched": {
        "premise": "A man plays guitar.",
        "hypothesis": "A man plays music.",
        "label": 0,
        "idx": 0,
    },
    "mnli_mismatched": {
        "premise": "A man plays guitar.",
        "hypothesis": "A woman sings.",
        "label": 1,
        "idx": 0,
    },
    "qnli": {
        "question": "Where is the Eiffel Tower?",
        "sentence": "The Eiffel Tower is in Paris.",
        "label": 0,
        "idx": 0,
    },
    "wnli": {
        "sentence1": "The cup fell off the table because it was tipped.",
        "sentence2": "The table was tipped.",
        "label": 1,
        "idx": 0,
    },
    "snli": {"premise": "Two kids play soccer.", "hypothesis": "Children are outside.", "label": 1},
    "trec": {"text": "Where is Mount Everest?", "coarse_label": 4, "fine_label": 0},
    "stsb": {
        "sentence1": "A cat sleeps.",
        "sentence2": "A cat is sleeping.",
        "label": 4.6,
        "idx": 0,
    },
    "piqa": {
        "goal": "How do I boil an egg?",
        "sol1": "Put it in boiling water.",
        "sol2": "Put it in the freezer.",
        "label": 0,
    },
    "openbookqa": {
        "id": "o1",
        "question_stem": "What gives plants energy?",
        "choices": {"text": ["sunlight", "rocks", "sand", "wind"], "label": ["A", "B", "C", "D"]},
        "answerKey": "A",
        "fact1": "plants use sunlight for energy",
        "humanScore": 1.0,
        "clarity": 1.0,
        "turkIdAnonymized": "x",
    },
    "hellaswag": {
        "ind": 1,
        "activity_label": "Cooking",
        "ctx_a": "A man cracks eggs.",
        "ctx_b": "he",
        "ctx": "A man cracks eggs into a bowl. He",
        "endings": ["whisks them.", "flies away.", "reads a book.", "sings."],
        "source_id": "s",
        "split": "train",
        "split_type": "indomain",
        "label": "0",
    },
    "lambada": {"text": "She opened the door and saw her old friend Maria", "domain": ""},
    "unified_qa_science_inst": {
        "input": "Which is a gas? \\n (A) ice (B) steam (C) rock",
        "output": "steam",
    },
}

# Expected canonical values for a few mappings that transform the record.
EXPECTED = {
    "trec": {"answer": "location"},
    "stsb": {"answer": "5"},
    "math_dataset": {"question": "Solve 2*x + 4 = 10 for x.", "answer": "3"},
    "squad_v2": {"answer": "unanswerable"},
    "record": {
        "question": "Officials in _____ urged people to stay home.",
        "answer": "Boston",
        "options": ["Boston", "Monday"],
    },
    "lambada": {"text": "She opened the door and saw her old friend", "answer": "Maria"},
    "quac": {
        "context": "He was born in 1950.",
        "question": "When was he born?",
        "answer": "He was born in 1950.",
    },
    "fix_punct": {"text": "Hello world How are you", "answer": "Hello, world! How are you?"},
    "word_segment": {"text": "thecatsat"},
    "true_case": {"text": "paris is in france."},
    "winogrande": {"answer": "the trophy"},
    "story_cloze": {"answer": "He bought food."},
    "copa": {"question": "The man broke his toe. What was the cause of this?"},
    "dart": {"data": "Mars | ORBITS | Sun; Mars | COLOR | red"},
    "wmt14_enfr": {
        "source_text": "Hello.",
        "target_text": "Bonjour.",
        "source_lang": "English",
        "target_lang": "French",
    },
    "wmt14_enfr_ii": {
        "source_text": "Hello.",
        "target_text": "Bonjour.",
        "source_lang": "English",
        "target_lang": "French",
    },
    "sentiment140": {"answer": "positive"},
    "openbookqa": {"context": "plants use sunlight for energy", "answer": "sunlight"},
}

_FLAN_NO_SAMPLE = sorted(t.name for t in Catalog.load().tasks_in("flan2021") if t.sample is None)


def test_every_flan2021_task_without_sample_has_a_fixture(cat):
    missing = sorted(
        {t.metadata.inversion_of or t.name for t in cat.tasks_in("flan2021") if t.sample is None}
        - set(RECORDS)
    )
    assert not missing


@pytest.mark.parametrize("name", _FLAN_NO_SAMPLE)
def test_flan2021_task_renders_every_template(cat, name):
    task = cat.task(name)
    rec = RECORDS[task.metadata.inversion_of or name]
    if task.records:  # the source layer applies the task's record rules first
        from flan_data.records import compile_rules

        kept = list(compile_rules(task.records).apply([("fixture", rec)], task=name, split="train"))
        assert kept, f"{name}: the fixture record does not pass the task's record rules"
        rec = kept[0][1]
    tr = Renderer(cat, RenderConfig()).task_renderer(task)
    canon = tr.canonical("fixture", rec)
    for k, v in EXPECTED.get(name, {}).items():
        assert (list(canon[k]) if k == "options" else canon[k]) == v, (name, k)
    pool = [tr.exemplar("p1", rec), tr.exemplar("p2", rec)]
    for fmt in tr.formats():
        for ct in tr.eligible(fmt):
            ex = tr.render(
                "fixture",
                rec,
                split="validation",
                fmt=fmt,
                seed=0,
                pool=pool,
                template_id=ct.spec.id,
            )
            assert ex.inputs.strip() and ex.targets.strip(), (name, ct.spec.id, fmt)
            if fmt == "zs_noopt":
                assert "OPTIONS:" not in ex.inputs
