#!/usr/bin/env python3
"""Generate the collection files of the catalog from the reference tables.

    python tools/build_catalog.py                 # write collections/*.yaml
    python tools/build_catalog.py --check         # exit 1 if a file would change
    python tools/build_catalog.py --shared PATH   # reference data elsewhere

Inputs (read only here, never at run time): ``../shared/reference/*.csv``,
``../shared/data/niv2/splits/default/*.txt`` and the promptsource 0.2.3
templates in ``../shared/data/promptsource`` (to see which P3 prompts have
``answer_choices``). Outputs: ``collections/{flan2021,t0sf,niv2,cot,dialog}.yaml``.
The YAML files are the committed artefact; the package never needs ../shared.

Facts (names, counts, categories, hub ids, field names) come from the
reference tables; every choice this script makes is written down in the header
comment of the file it writes. Hand-curated per-task specs (field mappings,
options, template sets) live in the tables below: edit them here and rerun.
"""

from __future__ import annotations

import argparse
import ast
import csv
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = ROOT.parent / "shared"

# ----------------------------------------------------------------------------- YAML output


class Flow(dict):
    """A mapping written in flow style ({a: 1, b: 2})."""


class FlowList(list):
    """A list written in flow style ([a, b])."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    Flow, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v.items(), flow_style=True)
)
_Dumper.add_representer(
    FlowList, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True)
)


def dump_doc(header: str, doc: dict[str, Any], *, one_line_tasks: bool = False) -> str:
    out = [header.rstrip() + "\n"]
    head = {k: v for k, v in doc.items() if k != "tasks"}
    out.append(yaml.dump(head, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100))
    out.append("tasks:\n")
    for t in doc["tasks"]:
        if one_line_tasks:
            line = yaml.dump(
                Flow(t), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=10**6
            ).strip()
            out.append(f"  - {line}\n")
        else:
            text = yaml.dump([t], Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
            out.append(
                "\n" + "".join("  " + ln if ln.strip() else ln for ln in text.splitlines(True))
            )
    return "".join(out)


# ----------------------------------------------------------------------------- reference data


class Refs:
    def __init__(self, shared: Path):
        ref = shared / "reference"
        needed = [
            ref / n
            for n in (
                "flan2021_hf_sources.csv",
                "flan_collection_info.csv",
                "p3_subtasks.csv",
                "niv2_tasks.csv",
            )
        ]
        needed += [
            shared / "data/niv2/splits/default/train_tasks.txt",
            shared / "data/niv2/splits/default/test_tasks.txt",
        ]
        missing = [str(p) for p in needed if not p.is_file()]
        if missing:
            sys.exit(
                "build_catalog: the reference data is not there (looked for "
                + ", ".join(missing)
                + "). Pass --shared PATH to the folder that holds reference/ and data/."
            )
        self.shared = shared
        self.hf = {r["task"]: r for r in _csv(ref / "flan2021_hf_sources.csv")}
        self.info = _csv(ref / "flan_collection_info.csv")
        self.p3 = _csv(ref / "p3_subtasks.csv")
        self.niv2 = _csv(ref / "niv2_tasks.csv")
        sp = shared / "data/niv2/splits/default"
        self.niv2_train = set((sp / "train_tasks.txt").read_text().split())
        self.niv2_test = set((sp / "test_tasks.txt").read_text().split())

    def flan_category(self, dataset: str, inverted: bool = False) -> str | None:
        for r in self.info:
            if r["Source"] in ("FLAN", "FLAN/T0") and r["Dataset"] == dataset:
                cat = r["Specific Task Category"]
                if cat.startswith("Inverted ") == inverted:
                    return cat
        return None

    def flan_languages(self, dataset: str) -> list[str]:
        for r in self.info:
            if r["Source"] in ("FLAN", "FLAN/T0") and r["Dataset"] == dataset:
                return languages(r["Languages"])
        return ["en"]

    def keyed(self, source: str) -> dict[str, dict[str, str]]:
        """NIv2 / T0 rows keyed by their task name (held in 'Specific Task Category')."""
        return {r["Specific Task Category"]: r for r in self.info if r["Source"] == source}

    def cot_category(self, dataset: str, inverted: bool) -> str | None:
        for prefix in ("cot_", "stream_"):
            for r in self.info:
                if r["Source"] == "CoT" and r["Dataset"] == prefix + dataset:
                    cat = r["Specific Task Category"]
                    if (cat == "Question Generation") == inverted:
                        return cat
        return None

    def dialog_category(self, dataset: str, inverted: bool) -> str | None:
        for r in self.info:
            generation = r["Specific Task Category"] == "Dialog Context Generation"
            if r["Source"] == "Dialog" and r["Dataset"] == dataset and generation == inverted:
                return r["Specific Task Category"]
        return None


def _csv(p: Path) -> list[dict[str, str]]:
    with open(p, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


LANG_CODES = {
    "Arabic": "ar", "Assamese": "as", "Bengali": "bn", "Bulgarian": "bg", "Burmese": "my", "Catalan": "ca",
    "Central Khmer": "km", "Chinese": "zh", "Croatian": "hr", "Czech": "cs", "Dutch": "nl", "English": "en",
    "Estonian": "et", "Filipino": "fil", "Finnish": "fi", "French": "fr", "Galician": "gl", "German": "de",
    "Greek": "el", "Gujarati": "gu", "Haitian": "ht", "Hebrew": "he", "Hindi": "hi", "Igbo": "ig",
    "Indonesian": "id", "Italian": "it", "Japanese": "ja", "Kannada": "kn", "Korean": "ko", "Kurdish": "ku",
    "Lao": "lo", "Lithuanian": "lt", "Malay": "ms", "Malayalam": "ml", "Marathi": "mr", "Nepali": "ne",
    "Norwegian": "no", "Oriya": "or", "Panjabi": "pa", "Persian": "fa", "Polish": "pl", "Portuguese": "pt",
    "Romanian": "ro", "Russian": "ru", "Sinhala": "si", "Slovak": "sk", "Somali": "so", "Spanish": "es",
    "Swahili": "sw", "Swedish": "sv", "Tagalog": "tl", "Tamil": "ta", "Telugu": "te", "Thai": "th",
    "Turkish": "tr", "Urdu": "ur", "Vietnamese": "vi", "Xhosa": "xh", "Yoruba": "yo", "Zhuang": "za",
}  # fmt: skip


def languages(value: str) -> list[str]:
    names = ast.literal_eval(value) if value.strip().startswith("[") else [value.strip()]
    codes = []
    for n in names:
        if n not in LANG_CODES:
            sys.exit(f"build_catalog: no ISO code for language {n!r}; add it to LANG_CODES")
        codes.append(LANG_CODES[n])
    return sorted(dict.fromkeys(codes))


# ----------------------------------------------------------------------------- flan2021


# Split mappings. FLAN's own mapping is the second half of the `splits` column of
# flan2021_hf_sources.csv; slices use the `datasets` split syntax ("train[:-200]").
def carve(n: int = 200, test: str | None = "validation", train: str = "train") -> dict[str, str]:
    d = {"train": f"{train}[:-{n}]", "validation": f"{train}[-{n}:]"}
    if test:
        d["test"] = test
    return d


NATIVE3 = {"train": "train", "validation": "validation", "test": "test"}
NATIVE2 = {"train": "train", "validation": "validation"}
LANG_NAMES = {"en": "English", "de": "German", "fr": "French", "es": "Spanish", "cs": "Czech", "fi": "Finnish",
              "ro": "Romanian", "ru": "Russian", "tr": "Turkish"}  # fmt: skip

NLI3 = ["yes", "it is not possible to tell", "no"]
YES_NO = ["yes", "no"]
NO_YES = ["no", "yes"]
NEG_POS = ["negative", "positive"]
PUNCT = ",.!?;:"

# One entry per Flan 2021 task (the 71 rows of flan2021_hf_sources.csv).
#   src:       source spec overrides (path/config default to the CSV's hf_id/hf_config)
#   fields, options, templates: as in the catalog
#   inv:       the inversion: {"templates": [...], optional "fields"} or a reason string (no inversion)
#   draft:     the entry was merged from collections/drafts (its note is kept verbatim)
F: dict[str, dict[str, Any]] = {}


def _t(name: str, **kw: Any) -> None:
    F[name] = kw


def _translation(
    name: str, src: str, tgt: str, path: str, config: str, splits: dict[str, str], note: str = ""
) -> None:
    _t(
        name,
        src={"path": path, "config": config, "splits": splits, "extra_note": note},
        fields={"source_text": f"translation.{src}", "target_text": f"translation.{tgt}",
                "source_lang": f"'{LANG_NAMES[src]}'", "target_lang": f"'{LANG_NAMES[tgt]}'"},
        templates=["translate"],
        inv={"templates": ["translate_ii"]},
        languages=sorted({src, tgt}),
    )  # fmt: skip


# --- drafts merged from collections/drafts (sources and notes as their authors verified them)
_t("anli_r1", draft=True)
_t("arc_challenge", draft=True)
_t("ag_news_subset", draft=True)
_t("bool_q", draft=True)
_t("xsum", draft=True)
_t("wmt16_translate_deen", draft=True, inv={"templates": ["translate_ii"]})

# --- NLI
for _n, _split in (("anli_r2", "r2"), ("anli_r3", "r3")):
    _t(
        _n,
        src={
            "splits": {
                "train": f"train_{_split}",
                "validation": f"dev_{_split}[:200]",
                "test": f"test_{_split}",
            },
            "id_field": "uid",
        },
        fields={"premise": "premise", "hypothesis": "hypothesis", "answer": "options[label]"},
        options=NLI3,
        templates=["nli"],
        inv={"templates": ["nli_ii"]},
        license="cc-by-nc-4.0",
    )
_t(
    "rte",
    src={"splits": carve(), "id_field": "idx"},
    fields={"premise": "premise", "hypothesis": "hypothesis", "answer": "options[label]"},
    options=YES_NO,
    templates=["nli"],
    inv={"templates": ["nli_ii"]},
)
_t(
    "cb",
    src={"splits": carve(50), "id_field": "idx"},
    fields={"premise": "premise", "hypothesis": "hypothesis", "answer": "options[label]"},
    options=["yes", "no", "it is not possible to tell"],
    templates=["nli"],
    inv={"templates": ["nli_ii"]},
)
_t(
    "mnli_matched",
    src={"splits": carve(test="validation_matched"), "id_field": "idx"},
    cat="mnli",
    fields={"premise": "premise", "hypothesis": "hypothesis", "answer": "options[label]"},
    options=NLI3,
    templates=["nli"],
    inv={"templates": ["nli_ii"]},
)
_t(
    "mnli_mismatched",
    src={"splits": carve(test="validation_mismatched"), "id_field": "idx"},
    cat="mnli",
    fields={"premise": "premise", "hypothesis": "hypothesis", "answer": "options[label]"},
    options=NLI3,
    templates=["nli"],
    inv="it trains on the same glue/mnli train split as mnli_matched, whose inversion already covers it",
)
_t(
    "snli",
    src={
        "splits": NATIVE3,
        "extra_note": "Rows with label -1 (no gold label: 785 in train, 158 in validation, 176 in test) are dropped by the record filter, as FLAN drops them.",
    },
    records={"filter": "label >= 0"},
    fields={"premise": "premise", "hypothesis": "hypothesis", "answer": "options[label]"},
    options=NLI3,
    templates=["nli"],
    inv={"templates": ["nli_ii"]},
    license="cc-by-sa-4.0",
)
_t(
    "wnli",
    src={"splits": carve(30), "id_field": "idx"},
    fields={"premise": "sentence1", "hypothesis": "sentence2", "answer": "options[label]"},
    options=NO_YES,
    templates=["nli"],
    inv={"templates": ["nli_ii"]},
)
_t(
    "qnli",
    src={"splits": carve(), "id_field": "idx"},
    fields={
        "context": "''",
        "question": "question",
        "candidate": "sentence",
        "answer": "options[label]",
    },
    options=YES_NO,
    templates=["answer_check"],
    inv={"templates": ["answer_check_ii"]},
)

# --- closed-book and multiple-choice QA
_t(
    "arc_easy",
    src={
        "splits": carve(test="test"),
        "id_field": "id",
        "extra_note": "FLAN keeps only 4-option items; this loader has no filter, so 3- and 5-option items stay.",
    },
    fields={"question": "question", "answer": "choices.text[choices.label.index(answerKey)]"},
    options={"field": "choices.text"},
    templates=["qa_mc"],
    inv={"templates": ["qa_mc_ii"]},
    license="cc-by-sa-4.0",
)
_t(
    "natural_questions",
    src={"splits": carve()},
    fields={"question": "question", "answer": "answer[0]"},
    templates=["cbqa"],
    inv={"templates": ["qa_mc_ii"]},
    license="cc-by-sa-3.0",
)
_t(
    "trivia_qa",
    src={
        "config": "unfiltered.nocontext",
        "splits": carve(),
        "id_field": "question_id",
        "extra_note": "Config unfiltered.nocontext, not the CSV's rc: FLAN's count (87,420) equals unfiltered train minus 200 and FLAN asks closed-book questions, so the context-free config is enough (not checked against the hub).",
    },
    fields={"question": "question", "answer": "answer.value"},
    templates=["cbqa"],
    inv={"templates": ["qa_mc_ii"]},
)
_t(
    "math_dataset",
    src={
        "splits": carve(test="test"),
        "extra_note": "Script-based repo (needs datasets<4, or a parquet revision for this config). HF stores question/answer as the text of a Python bytes literal (b'...\\n'); the field expressions strip that wrapper when present (from memory of the dataset, not checked here).",
    },
    fields={
        "question": '(question[2:-3] if question.startswith("b\'") else question) | trim',
        "answer": '(answer[2:-3] if answer.startswith("b\'") else answer) | trim',
    },
    templates=["cbqa"],
    inv="the questions are synthetic (generated by a program), so writing them is not a useful task",
)
_t(
    "unified_qa_science_inst",
    src={
        "kind": "jsonl",
        "path": "unified_qa_science_inst",
        "config": None,
        "splits": None,
        "extra_note": "No HF equivalent: TFDS unified_qa/ai2_science_middle:1.0.0 (fields input, output), built from the raw UnifiedQA TSVs read here.",
    },
    fields={"question": "input", "answer": "output"},
    templates=["cbqa"],
    inv={"templates": ["qa_mc_ii"]},
)
_t(
    "copa",
    src={"splits": carve(50), "id_field": "idx"},
    fields={
        "question": "premise ~ (' What was the cause of this?' if question == 'cause' else ' What happened as a result?')",
        "answer": "[choice1, choice2][label]",
    },
    options={"field": "[choice1, choice2]"},
    templates=["qa_mc"],
    inv={"templates": ["qa_mc_ii"]},
)
_t(
    "piqa",
    src={"splits": carve(100)},
    fields={"question": "goal", "answer": "[sol1, sol2][label]"},
    options={"field": "[sol1, sol2]"},
    templates=["piqa"],
    inv={"templates": ["piqa_ii"]},
)

# --- reading comprehension
_t(
    "squad_v1",
    src={"splits": carve(), "id_field": "id"},
    fields={"context": "context", "question": "question", "answer": "answers.text[0]"},
    templates=["rc"],
    inv={"templates": ["rc_ii"]},
    license="cc-by-sa-4.0",
)
_t(
    "squad_v2",
    src={
        "splits": carve(),
        "id_field": "id",
        "extra_note": "Unanswerable questions have an empty answers.text; their answer is the word 'unanswerable'.",
    },
    fields={
        "context": "context",
        "question": "question",
        "answer": "answers.text[0] if answers.text else 'unanswerable'",
    },
    templates=["rc"],
    inv={"templates": ["squad_v2_ii"]},
    license="cc-by-sa-4.0",
)
_t(
    "drop",
    src={"splits": carve(), "id_field": "query_id"},
    fields={"context": "passage", "question": "question", "answer": "answers_spans.spans[0]"},
    templates=["rc"],
    inv={"templates": ["rc_ii"]},
    license="cc-by-sa-4.0",
)
_t(
    "quac",
    src={
        "splits": NATIVE2,
        "id_field": "dialogue_id",
        "extra_note": "HF has one row per dialogue, FLAN one per question: the explode rule gives one record per question (questions zipped with orig_answers.texts; ids <dialogue_id>#<question index>), and the context loses its trailing CANNOTANSWER marker, as in FLAN.",
    },
    records={"explode": {"question": "questions", "answer": "orig_answers.texts"}},
    fields={
        "context": "(context[:-12] if context.endswith('CANNOTANSWER') else context) | trim",
        "question": "question",
        "answer": "answer",
    },
    templates=["rc"],
    inv="a QuAC question leans on the earlier turns of its dialogue, which the record does not show; writing it back from the answer is under-specified",
)
_t(
    "coqa",
    src={
        "splits": carve(100),
        "extra_note": "One row per story with all its questions; the questions and answers are joined one per line, as one multi-question example (HF has no test split; test is HF validation, as in FLAN's TFDS test).",
    },
    fields={
        "context": "story",
        "question": "questions | join('\\n')",
        "answer": "answers.input_text | join('\\n')",
    },
    templates=["coqa"],
    inv="one record holds a whole conversation of questions; inverting it would ask for a list of questions that depend on each other",
)
_t(
    "record",
    src={
        "splits": carve(),
        "extra_note": "The query is a cloze; '@placeholder' is shown as a blank. Options are the passage's entities (deduplicated); the answer is the first gold answer.",
    },
    fields={
        "context": "passage | replace('@highlight\\n', '- ')",
        "question": "query | replace('@placeholder', '_____')",
        "answer": "answers[0]",
    },
    options={"field": "entities | unique | list"},
    templates=["record"],
    inv="the 'question' is a cloze sentence about an entity; writing it back from the entity is not a question-asking task",
)
_t(
    "multirc",
    src={"splits": carve()},
    fields={
        "context": "paragraph",
        "question": "question",
        "candidate": "answer",
        "answer": "options[label]",
    },
    options=NO_YES,
    templates=["answer_check"],
    inv={"templates": ["answer_check_ii"]},
)
_t(
    "cosmos_qa",
    src={"splits": carve(), "id_field": "id"},
    fields={
        "context": "context",
        "question": "question",
        "answer": "[answer0, answer1, answer2, answer3][label]",
    },
    options={"field": "[answer0, answer1, answer2, answer3]"},
    templates=["rc"],
    inv={"templates": ["rc_ii"]},
    license="cc-by-4.0",
)
_t(
    "openbookqa",
    src={
        "splits": NATIVE3,
        "id_field": "id",
        "extra_note": "Config 'additional' because FLAN shows the science fact (fact1), which 'main' lacks; the fact is given as the context.",
    },
    fields={
        "context": "fact1",
        "question": "question_stem",
        "answer": "choices.text[choices.label.index(answerKey)]",
    },
    options={"field": "choices.text"},
    templates=["openbookqa"],
    inv={"templates": ["openbookqa_ii"]},
)

# --- sentiment, paraphrase, topic, other classification
_t(
    "imdb_reviews",
    src={"splits": carve(test="test")},
    fields={"text": "text | replace('<br /><br />', '\\n\\n')", "answer": "options[label]"},
    options=NEG_POS,
    templates=["sentiment"],
    inv={"templates": ["sentiment_ii"]},
)
_t(
    "sst2",
    src={"splits": carve(), "id_field": "idx"},
    fields={"text": "sentence", "answer": "options[label]"},
    options=NEG_POS,
    templates=["sentiment"],
    inv={"templates": ["sentiment_ii"]},
)
_t(
    "yelp_polarity_reviews",
    src={"splits": carve(test="test")},
    fields={"text": "text", "answer": "options[label]"},
    options=NEG_POS,
    templates=["sentiment"],
    inv={"templates": ["sentiment_ii"]},
)
_t(
    "sentiment140",
    src={
        "splits": carve(test="test"),
        "extra_note": "sentiment is 0 (negative) or 4 (positive) in train; the test split also has 2 (neutral), which the record filter drops so the test split maps onto the same two options.",
    },
    records={"filter": "sentiment in (0, 4)"},
    fields={"text": "text", "answer": "'positive' if sentiment == 4 else 'negative'"},
    options=NEG_POS,
    templates=["sentiment"],
    inv={"templates": ["sentiment_ii"]},
)
_t(
    "glue_mrpc",
    src={"splits": carve(), "id_field": "idx"},
    fields={"sentence1": "sentence1", "sentence2": "sentence2", "answer": "options[label]"},
    options=NO_YES,
    templates=["paraphrase"],
    inv={"templates": ["paraphrase_ii"]},
)
_t(
    "glue_qqp",
    src={"splits": carve(), "id_field": "idx"},
    fields={"sentence1": "question1", "sentence2": "question2", "answer": "options[label]"},
    options=NO_YES,
    templates=["paraphrase"],
    inv={"templates": ["paraphrase_ii"]},
)
_t(
    "paws_wiki",
    src={"splits": NATIVE3, "id_field": "id"},
    fields={"sentence1": "sentence1", "sentence2": "sentence2", "answer": "options[label]"},
    options=NO_YES,
    templates=["paraphrase"],
    inv={"templates": ["paraphrase_ii"]},
)
_t(
    "trec",
    src={
        "splits": carve(test="test"),
        "extra_note": "HF coarse_label order is ABBR|ENTY|DESC|HUM|LOC|NUM, TFDS/FLAN order is DESC|ENTY|ABBR|HUM|NUM|LOC: the answer expression remaps the HF index to FLAN's option order.",
    },
    fields={"question": "text", "answer": "options[[2, 1, 0, 3, 5, 4][coarse_label]]"},
    options=["description", "entity", "abbreviation", "human", "number", "location"],
    templates=["question_type"],
    inv="the label (the kind of answer a question asks for) says too little about the question to write it back",
)
_t(
    "cola",
    src={"splits": carve(), "id_field": "idx"},
    fields={"sentence": "sentence", "answer": "options[label]"},
    options=["unacceptable", "acceptable"],
    templates=["acceptability"],
    inv="the label is a grammaticality judgement; an inverted task would ask for deliberately ungrammatical sentences",
)
_t(
    "stsb",
    src={
        "splits": carve(100),
        "id_field": "idx",
        "extra_note": "The 0-5 float score is rounded to the nearest integer and shown as one of six options, as FLAN does.",
    },
    fields={
        "sentence1": "sentence1",
        "sentence2": "sentence2",
        "answer": "(label | round | int) | string",
    },
    options=["0", "1", "2", "3", "4", "5"],
    templates=["similarity"],
    inv="the label is a similarity score; a sentence 'with similarity 3.2' to another is not a meaningful writing task",
)
_t(
    "wic",
    src={"splits": carve(), "id_field": "idx"},
    fields={
        "word": "word",
        "sentence1": "sentence1",
        "sentence2": "sentence2",
        "answer": "options[label]",
    },
    options=NO_YES,
    templates=["wic"],
    inv="the decision hinges on the sense of one word inside otherwise given sentences; the inverted target would be under-specified",
)

# --- coreference and completion
_t(
    "wsc",
    src={"splits": carve(50), "id_field": "idx"},
    fields={
        "text": "text",
        "pronoun": "span2_text",
        "candidate": "span1_text",
        "answer": "options[label]",
    },
    options=NO_YES,
    templates=["coref_yn"],
    inv="the answer points at a span of the input (pronoun resolution); nothing new to generate",
)
_t(
    "definite_pronoun_resolution",
    src={"splits": carve(test="test")},
    fields={"text": "sentence", "pronoun": "pronoun", "answer": "candidates[label]"},
    options={"field": "candidates"},
    templates=["coref"],
    inv="the answer points at a span of the input (pronoun resolution); nothing new to generate",
)
_t(
    "winogrande",
    src={
        "config": "winogrande_xl",
        "splits": carve(),
        "extra_note": "answer is the string '1' or '2' (empty on the unlabelled test split, which is not mapped).",
    },
    fields={
        "text": "sentence",
        "pronoun": "'_'",
        "answer": "[option1, option2][(answer | int) - 1]",
    },
    options={"field": "[option1, option2]"},
    templates=["winogrande"],
    inv="the answer fills a blank with one of two given names; nothing new to generate",
)
_t(
    "hellaswag",
    src={
        "splits": carve(),
        "extra_note": "label is a string '0'-'3' on HF (empty on the unlabelled test split, which is not mapped).",
    },
    fields={"context": "ctx", "answer": "endings[label | int]"},
    options={"field": "endings"},
    templates=["completion"],
    inv={"templates": ["completion_ii"]},
    license="mit",
)
_t(
    "story_cloze",
    src={
        "config": "2016",
        "splits": carve(200, test="test", train="validation"),
        "extra_note": "Manual download (data_dir); no train split on HF, so FLAN trains on validation[:-200]. answer_right_ending is 1 or 2.",
    },
    fields={
        "context": "[input_sentence_1, input_sentence_2, input_sentence_3, input_sentence_4] | join(' ')",
        "answer": "[sentence_quiz1, sentence_quiz2][answer_right_ending - 1]",
    },
    options={"field": "[sentence_quiz1, sentence_quiz2]"},
    templates=["completion"],
    inv={"templates": ["completion_ii"]},
)
_t(
    "lambada",
    src={
        "splits": {"train": "validation", "validation": "test[:200]", "test": "test"},
        "extra_note": "TFDS lambada 'train' (the 4,869 dev passages FLAN trains on) is HF 'validation', used whole as FLAN does; HF 'train' is whole novels and is not used. validation is the first 200 test passages (a flan-data choice for previews; FLAN has no validation split here).",
    },
    fields={
        "text": "(text | trim).rsplit(' ', 1)[0]",
        "answer": "(text | trim).rsplit(' ', 1)[-1]",
    },
    templates=["next_word"],
    inv="the target is the last word cut from the passage; writing the passage from one word is under-specified",
)

# --- summarization
_t(
    "aeslc",
    src={
        "splits": NATIVE3,
        "extra_note": "Emails with an empty body are dropped by the record filter, as FLAN drops them.",
    },
    records={"filter": "email_body | trim | length > 0"},
    fields={"document": "email_body", "summary": "subject_line"},
    templates=["summary"],
    inv={"templates": ["summary_ii"]},
)
_t(
    "cnn_dailymail",
    src={"splits": NATIVE3, "id_field": "id"},
    fields={"document": "article", "summary": "highlights"},
    templates=["summary"],
    inv={"templates": ["summary_ii"]},
    license="apache-2.0",
)
_t(
    "gigaword",
    src={
        "splits": NATIVE3,
        "extra_note": "FLAN drops examples containing 'UNK' or '#' in the document or the summary (54% of train kept); the record filter does the same.",
    },
    records={
        "filter": "'UNK' not in document and '#' not in document and 'UNK' not in summary and '#' not in summary"
    },
    fields={"document": "document", "summary": "summary"},
    templates=["summarize"],
    inv={"templates": ["summarize_ii"]},
)
_t(
    "multi_news",
    src={
        "splits": NATIVE3,
        "extra_note": "The source articles are separated by '|||||' in document; they are shown separated by blank lines.",
    },
    fields={"document": "document | replace('|||||', '\\n\\n') | trim", "summary": "summary"},
    templates=["summary"],
    inv={"templates": ["summary_ii"]},
)
_t(
    "newsroom",
    src={
        "splits": NATIVE3,
        "extra_note": "Manual download: request the data, then pass it as data_dir / --source-dir.",
    },
    fields={"document": "text", "summary": "summary"},
    templates=["summary"],
    inv={"templates": ["summary_ii"]},
)
_t(
    "samsum",
    src={
        "path": "knkarthick/samsum",
        "config": None,
        "splits": NATIVE3,
        "id_field": "id",
        "extra_note": "Samsung/samsum was deleted from the hub (404 since 2025-05); knkarthick/samsum is the community mirror. Its schema is assumed to match (id, dialogue, summary), not checked.",
    },
    fields={"document": "dialogue", "summary": "summary"},
    templates=["summary"],
    inv={"templates": ["summary_ii"]},
    license="cc-by-nc-nd-4.0",
)
_t(
    "wiki_lingua_english_en",
    src={
        "splits": NATIVE3,
        "id_field": "gem_id",
        "extra_note": "Only in the script-based GEM/gem repo (datasets<4 or a parquet revision); GEM/wiki_lingua is a different re-release.",
    },
    fields={"document": "source", "summary": "target"},
    templates=["summary"],
    inv={"templates": ["summary_ii"]},
)
for _n, _doc, _sum, _what in (
    (
        "opinion_abstracts_rotten_tomatoes",
        "_critics.value | join('\\n')",
        "_critic_consensus",
        "rotten_tomatoes",
    ),
    ("opinion_abstracts_idebate", "_argument_sentences.value | join(' ')", "_claim", "idebate"),
):
    _t(
        _n,
        src={
            "kind": "jsonl",
            "path": _n,
            "config": None,
            "splits": None,
            "validation_size": 600,
            "extra_note": f"No HF equivalent: TFDS opinion_abstracts/{_what}:1.0.0 (train split only). FLAN holds out the last 600 rows (validation, then test); here all 600 are the validation split.",
        },
        fields={"document": _doc, "summary": _sum},
        templates=["summary"],
        inv={"templates": ["summary_ii"]},
    )

# --- structured data to text
_t(
    "common_gen",
    src={"splits": carve(), "id_field": "gem_id"},
    fields={"data": "concepts | join(', ')", "text": "target"},
    templates=["data_to_text"],
    inv={"templates": ["data_to_text_ii"]},
    license="mit",
)
_t(
    "dart",
    src={"splits": carve(), "id_field": "gem_id"},
    fields={"data": "tripleset | map('join', ' | ') | join('; ')", "text": "target"},
    templates=["data_to_text"],
    inv={"templates": ["data_to_text_ii"]},
    license="mit",
)
_t(
    "e2e_nlg",
    src={"splits": carve(), "id_field": "gem_id"},
    fields={"data": "meaning_representation", "text": "target"},
    templates=["data_to_text"],
    inv={"templates": ["data_to_text_ii"]},
)
_t(
    "web_nlg_en",
    src={"splits": carve(), "id_field": "gem_id"},
    fields={"data": "input | join('; ')", "text": "target"},
    templates=["data_to_text"],
    inv={"templates": ["data_to_text_ii"]},
)

# --- translation (direction = the order of the language codes in the task name)
_translation(
    "para_crawl_enes",
    "en",
    "es",
    "ParaCrawl/para_crawl",
    "enes",
    {"train": "train[:30000]", "validation": "train[-1200:-1000]", "test": "train[-1000:]"},
    "Script-based repo (datasets<4). FLAN uses the first 30,000 rows of the 22M-row train split; the slices reproduce that.",
)
_translation("wmt14_enfr", "en", "fr", "wmt/wmt14", "fr-en", NATIVE3, "40.8M training pairs.")
for _xx in ("cs", "fi", "ro", "ru", "tr"):
    _translation(
        f"wmt16_translate_{_xx}en",
        _xx,
        "en",
        "wmt/wmt16",
        f"{_xx}-en",
        NATIVE3,
        {
            "cs": "FLAN's TFDS cs-en pool (52.3M) includes data HF lacks (997k pairs here).",
            "ru": "FLAN's TFDS ru-en pool (2.52M) includes data HF lacks (1.52M pairs here).",
        }.get(_xx, ""),
    )

# --- text fixing (English side of ParaCrawl en-da; FLAN's row slices)
_FIX_NOTE = (
    "Script-based repo (datasets<4). FLAN uses the English side of para_crawl/enda, rows {rows} for training and "
    "train[-3000:] for test; validation is the 200 rows just before the test rows (a flan-data choice)."
)


def _FIX_SPLITS(rows: str) -> dict[str, str]:  # noqa: N802 - reads like the constants around it
    return {"train": f"train[{rows}]", "validation": "train[-3200:-3000]", "test": "train[-3000:]"}


_t(
    "true_case",
    src={"splits": _FIX_SPLITS(":30000"), "extra_note": _FIX_NOTE.format(rows="[:30000]")},
    fields={
        "text": "translation.en | lower",
        "problem": "'capitalization'",
        "answer": "translation.en",
    },
    templates=["text_fix"],
    inv="the input is a deterministic corruption of the target (lower-casing); the inverse is trivial",
)
_t(
    "fix_punct",
    src={
        "splits": _FIX_SPLITS("30200:60200"),
        "extra_note": _FIX_NOTE.format(rows="[30200:60200]"),
    },
    fields={
        "text": "translation.en" + "".join(f" | replace('{c}', '')" for c in PUNCT),
        "problem": "'punctuation'",
        "answer": "translation.en",
    },
    templates=["text_fix"],
    inv="the input is a deterministic corruption of the target (punctuation removed); the inverse is trivial",
)
_t(
    "word_segment",
    src={
        "splits": _FIX_SPLITS("60400:90400"),
        "extra_note": _FIX_NOTE.format(rows="[60400:90400]"),
    },
    fields={
        "text": "translation.en | replace(' ', '')",
        "problem": "'spacing between words'",
        "answer": "translation.en",
    },
    templates=["text_fix"],
    inv="the input is a deterministic corruption of the target (spaces removed); the inverse is trivial",
)

INV_WHAT = {
    "nli_ii": "write a hypothesis that has the given relation to the premise",
    "qa_mc_ii": "write the question that the given answer answers",
    "rc_ii": "write a question about the passage that has the given answer",
    "piqa_ii": "write the goal that the given solution achieves",
    "openbookqa_ii": "write the quiz item (question or sentence stem) that the fact and answer belong to",
    "squad_v2_ii": "write a question about the passage that has the given answer, or one the passage does not answer when the answer is 'unanswerable'",
    "answer_check_ii": "write a candidate answer that is (or is not) correct",
    "sentiment_ii": "write a text with the given sentiment",
    "paraphrase_ii": "write a second sentence that is (or is not) a paraphrase of the first",
    "completion_ii": "write the context that the given ending continues",
    "data_to_text_ii": "recover the structured input from the text",
    "summary_ii": "write the full text from its summary",
    "summarize_ii": "write the article from its one-sentence summary",
    "topic_ii": "write a news item for the given topic",
    "boolq_ii": "write a yes/no question about the passage with the given answer",
    "translate_ii": "recover the source-language original from its translation (the reverse direction)",
}

FLAN2021_HEADER = """\
# Flan 2021 ("Muffin"): the 71 tasks of shared/reference/flan2021_hf_sources.csv plus their input inversions.
# GENERATED by tools/build_catalog.py from the reference tables and the per-task specs in that script:
# edit the script and rerun it rather than editing this file.
#
# Sources: hub id, config, field names and label orders from flan2021_hf_sources.csv (+ .md gotchas); each
# task's source.note cites the row. Splits mirror FLAN's own mapping (the csv's `splits` column after '||'),
# written with the `datasets` slice syntax where FLAN carves ("train[:-200]" / "train[-200:]"); `test` maps
# to the split FLAN evaluates on, unlabelled hub test splits are left out. Entries merged from
# collections/drafts keep their authors' (verified) source, sample data, field mapping and templates.
# Categories and languages: shared/reference/flan_collection_info.csv (FLAN and FLAN/T0 rows; inversions
# take the "Inverted ..." row). Licenses only where a card or a draft states one; null = not checked.
#
# Input inversions (`<task>_ii`, metadata.inversion_of: <task>). Rule: an inversion is created when the
# original input holds natural text that can sensibly be written from the rest of the input plus the
# original answer -- summaries -> document, translation -> back to the source language, data -> text -> data,
# answer -> question (QA), label -> hypothesis / second sentence (NLI, paraphrase), label -> text
# (sentiment, topic), ending -> context (completion). No inversion when (each task's reason is below):
#   a. the input is a deterministic corruption of the target or the target is cut from it
#      (true_case, fix_punct, word_segment, lambada);
#   b. the answer points at a span or a sense inside an otherwise given input
#      (wsc, winogrande, definite_pronoun_resolution, wic);
#   c. the label says too little about the input to write it back (cola, stsb, trec);
#   d. the input is synthetic (math_dataset), or a cloze built from an entity (record);
#   e. the loader cannot give one record per example (quac, coqa);
#   f. the training data duplicates another inverted task (mnli_mismatched = mnli_matched's train split).
# Inversions keep the original's fields and options (options are not shown by inversion templates).
"""


def build_flan2021(
    refs: Refs, drafts: Mapping[str, dict[str, Any]]
) -> tuple[dict[str, Any], list[str]]:
    names = list(refs.hf)
    missing = [n for n in names if n not in F]
    extra = [n for n in F if n not in refs.hf]
    if missing or extra:
        sys.exit(
            f"build_catalog: flan2021 spec table out of sync with the csv: missing {missing}, unknown {extra}"
        )
    tasks: list[dict[str, Any]] = []
    skipped: list[str] = []
    for name in names:
        spec = F[name]
        row = refs.hf[name]
        if spec.get("draft"):
            if name not in drafts:
                sys.exit(
                    f"build_catalog: {name} is marked as merged from a draft, but no draft entry was found (see DRAFTS in the script)"
                )
            orig = _apply_draft_rules(name, _clean_draft(drafts[name]))
            tasks.append(orig)
            inv = drafts.get(f"{name}_ii")
            if inv is not None:
                tasks.append(_apply_draft_rules(f"{name}_ii", _clean_draft(inv)))
            elif isinstance(spec.get("inv"), dict):
                tasks.append(_inversion(name, orig, spec["inv"], refs))
            continue
        orig = _flan_task(name, spec, row, refs)
        tasks.append(orig)
        if isinstance(spec.get("inv"), dict):
            tasks.append(_inversion(name, orig, spec["inv"], refs))
        else:
            skipped.append(f"{name}: {spec['inv']}")
    return {"collection": "flan2021", "tasks": tasks}, skipped


# Hub routes for sources whose hub repo ships only a loading script (datasets>=4 cannot run it;
# flan_data.sources.hf.SCRIPT_ONLY_REPOS). Each says which route was chosen and the evidence seen
# (hub pages, cards); "manual" routes make the loader stop at once with the instructions.
_HF = "https://huggingface.co/datasets"
_GEM_GEM_COMMITS = (
    # commits of GEM/gem's refs/convert/parquet branch whose tree listing shows the config's folders
    {
        "e2e_nlg": "fa9e3488f9ac7174a4e9e6fae0e645e13a8dca78",
        "web_nlg_en": "d8c1b4918abba96ba45c306a64efeb3a73723a52",
    }
)
_GEM_EXPORT_NOTE = (
    "Route: the hub's Parquet export of GEM/gem (parquet-converter branch refs/convert/parquet), config folder "
    "{cfg}, read as data_files {cfg}/<split>/*.parquet (the export has no builder configs), pinned to branch commit "
    "{sha}. Evidence: "
    + _HF
    + "/GEM/gem/tree/{sha}/{cfg} lists {listing} (parquet-converter commits); the fields "
    "are those of GEM/gem's {cfg} config, which the converter copies."
)
_GEM_LISTING = {
    "e2e_nlg": "train/0000.parquet (earlier commits b0a09cb4bf08bbf33d5dd38ba7d05e7df9101255 and "
               "e03c90937da24d563dfcf6e3497d78990ddfe970 list the train, validation and test folders)",
    "web_nlg_en": "the folders train, validation, test and the challenge_* sets",
}  # fmt: skip
_PARACRAWL_URL = "https://s3.amazonaws.com/web-language-models/paracrawl/release4"
_PARACRAWL_NOTE = (
    "Route: the ParaCrawl release 4 file the hub's ParaCrawl/para_crawl loading script downloads, "
    + _PARACRAWL_URL
    + "/en-{lang}.bicleaner07.txt.gz (gzip; one sentence pair a line, English, tab, {name}), "
    "read by flan_data.sources.raw (format tabs, fields translation.en / translation.{lang} as the script names them). "
    "Evidence: "
    + _HF
    + "/ParaCrawl/para_crawl/blob/refs%2Fpr%2F1/para_crawl.py (commit 024a42b) sets "
    "_BASE_DATA_URL_FORMAT_STR to that URL pattern; the repo tree (e.g. commit 80173d568f229fbc4e8ddaa77400571d57bf24b8) "
    "holds only para_crawl.py, README.md and dataset_infos.json (no data, no Parquet export found). The line layout "
    "is taken from the script's reader as remembered, not re-read here. FLAN's slices of the train split need the "
    "whole file counted (negative slices)."
)


def _paracrawl(lang: str, name: str) -> dict[str, Any]:
    return {
        "kind": "raw", "path": f"para_crawl_en{lang}", "config": None, "url": _PARACRAWL_URL,
        "files": {"train": f"en-{lang}.bicleaner07.txt.gz"}, "format": "tabs",
        "columns": [ "translation.en", f"translation.{lang}"], "manual": None,
        "note": _PARACRAWL_NOTE.format(lang=lang, name=name),
    }  # fmt: skip


ROUTES: dict[str, dict[str, Any]] = {
    "quac": {
        "revision": "aee041af3f5f00db50878b2a4a0ad1de8998a7a7",
        "export_config": "plain_text",
        "note": "Route: the hub's Parquet export of allenai/quac (branch refs/convert/parquet; main holds only the "
                "loading script), config folder plain_text read as data_files plain_text/<split>/*.parquet (the export "
                "has no builder configs: load_dataset('allenai/quac', 'plain_text', revision=...) fails on datasets>=4), "
                "pinned to export commit aee041af3f5f00db50878b2a4a0ad1de8998a7a7. Evidence: " + _HF + "/quac/commit/"
                "aee041af3f5f00db50878b2a4a0ad1de8998a7a7 (parquet-converter, \"Update parquet files\": renames "
                "plain_text/quac-train.parquet -> plain_text/train/0000.parquet and plain_text/quac-validation.parquet "
                "-> plain_text/validation/0000.parquet; quac is the legacy name of allenai/quac).",
    },
    "math_dataset": {
        "path": "parquet",
        "config": None,
        "revision": "a7bcc75621f588a6d136033adb855ea108cd5a79",
        "data_files": {
            "train": "hf://datasets/deepmind/math_dataset@a7bcc75621f588a6d136033adb855ea108cd5a79/algebra__linear_1d/train-00000-of-00001.parquet",
            "test": "hf://datasets/deepmind/math_dataset@a7bcc75621f588a6d136033adb855ea108cd5a79/algebra__linear_1d/test-00000-of-00001.parquet",
        },
        "note": "Route: the Parquet files of deepmind/math_dataset's main branch (\"Convert dataset to Parquet\", "
                "commit 458cc37303955a0fc6a661676287c3ee2d85c02c), read with the parquet builder at commit "
                "a7bcc75621f588a6d136033adb855ea108cd5a79: the repo still ships math_dataset.py, so "
                "load_dataset('deepmind/math_dataset', ...) stops on datasets>=4 ('Dataset scripts are no longer "
                "supported'), while the files read fine by hf:// URL. Evidence: " + _HF + "/deepmind/math_dataset/tree/"
                "a7bcc75621f588a6d136033adb855ea108cd5a79/algebra__linear_1d lists test-00000-of-00001.parquet "
                "(316 kB) and train-00000-of-00001.parquet (53.9 MB); the card of commit 458cc37 gives train 1999998 / "
                "test 10000. The hub's export (refs/convert/parquet, algebra__linear_1d/train/0000.parquet) is the "
                "same data.",
    },
    "sentiment140": {
        "path": "csv",
        "config": None,
        "data_files": {
            "train": "zip://training.1600000.processed.noemoticon.csv::https://cs.stanford.edu/people/alecmgo/trainingandtestdata.zip",
            "test": "zip://testdata.manual.2009.06.14.csv::https://cs.stanford.edu/people/alecmgo/trainingandtestdata.zip",
        },
        "column_names": ["sentiment", "id", "date", "query", "user", "text"],
        "encoding": "latin-1",
        "note": "Route: the authors' raw archive by URL, read by the datasets csv builder (zip:// chained URL). "
                "Evidence: stanfordnlp/sentiment140's loading script at main commit "
                "65290510a2bbe20f8600efbbb5fff22becd11474 (\"Fix source data URL (#4)\", which merged 9416763 \"Fix "
                "data URL to use HTTPS\") sets _DATA_URL = https://cs.stanford.edu/people/alecmgo/trainingandtestdata.zip, "
                "_TRAIN_FILE_NAME = training.1600000.processed.noemoticon.csv, _TEST_FILE_NAME = "
                "testdata.manual.2009.06.14.csv; the TFDS sentiment140 catalog page lists the six headerless columns in "
                "this order (polarity 0/2/4, id, date, query, user, text) and splits train 1600000 / test 498. The "
                "latin-1 encoding is not from those pages (the files are not valid UTF-8).",
    },
    "gigaword": {
        "kind": "raw",
        "path": "gigaword",
        "config": None,
        "url": _HF + "/Harvard/gigaword/resolve/e45e01b2da13842bb3df1b12dc046910147b3d82/data",
        "archive": "ggw_data.zip",
        "files": {
            "train": ["org_data/train.src.txt", "org_data/train.tgt.txt"],
            "dev": ["org_data/dev.src.txt", "org_data/dev.tgt.txt"],
            "test": ["org_data/test.src.txt", "org_data/test.tgt.txt"],
        },
        "splits": {"train": "train", "validation": "dev", "test": "test"},
        "format": "line_pairs",
        "columns": ["document", "summary"],
        "replace": {"<unk>": "UNK"},
        "manual": None,
        "note": "Route: the source archive the hub repo hosts itself (data/ggw_data.zip, added by \"Host source data "
                "(#5)\", commit e45e01b2da13842bb3df1b12dc046910147b3d82), read by flan_data.sources.raw: "
                "org_data/<split>.src.txt / .tgt.txt line pairs (dev is the validation split), <unk> written UNK as "
                "the script does for train and validation. Evidence: " + _HF + "/gigaword/commit/"
                "e45e01b2da13842bb3df1b12dc046910147b3d82 (adds data/ggw_data.zip, changes gigaword.py by +2 -1, card "
                "splits 3803957 / 189651 / 1951); the script in huggingface/datasets "
                "datasets/gigaword/gigaword.py reads os.path.join(dl_path, 'org_data', '%s.%s.txt') for train/dev/test "
                "and strips each line. That the hosted zip keeps the org_data/ layout of the Drive file is assumed "
                "from the small script change, not seen.",
    },
    "newsroom": {
        "kind": "raw",
        "path": "newsroom",
        "config": None,
        "files": {"train": "train.jsonl", "dev": "dev.jsonl", "test": "test.jsonl"},
        "splits": {"train": "train", "validation": "dev", "test": "test"},
        "format": "jsonl",
        "manual": "Newsroom is released after a request form at https://lil.nlp.cornell.edu/newsroom/; unpack "
                  "train.jsonl, dev.jsonl and test.jsonl into one folder.",
        "note": "Route: manual; the released JSONL files read by flan_data.sources.raw (fields url, archive, title, "
                "date, text, summary, compression, coverage, density and their _bin labels). Evidence: "
                "huggingface/datasets datasets/newsroom/newsroom.py reads train.jsonl / dev.jsonl / test.jsonl from "
                "the manual folder (json per line) and asks for the data through the authors' form; no public "
                "copy is loadable (lil-lab/newsroom is that script).",
    },
    "story_cloze": {
        "kind": "raw",
        "path": "story_cloze",
        "config": None,
        "files": {
            "validation": "cloze_test_val__spring2016 - cloze_test_ALL_val.csv",
            "test": "cloze_test_test__spring2016 - cloze_test_ALL_test.csv",
        },
        "format": "csv",
        "columns": ["story_id", "input_sentence_1", "input_sentence_2", "input_sentence_3", "input_sentence_4",
                    "sentence_quiz1", "sentence_quiz2", "answer_right_ending"],
        "types": {"answer_right_ending": "int"},
        "manual": "Story Cloze 2016 is released after a request form (https://cs.rochester.edu/nlp/rocstories/); put "
                  "the two CSV files in one folder.",
        "note": "Route: manual; the 2016 CSVs read by flan_data.sources.raw (a header row, 8 quoted columns mapped to "
                "the names the hub script gives them). Evidence: huggingface/datasets "
                "datasets/story_cloze/story_cloze.py reads 'cloze_test_val__spring2016 - cloze_test_ALL_val.csv' and "
                "'cloze_test_test__spring2016 - cloze_test_ALL_test.csv' from the manual folder with csv.reader, skips "
                "the header, and maps row[0..7] to story_id, input_sentence_1..4, sentence_quiz1/2, "
                "answer_right_ending (int); its manual_download_instructions point to the authors' form.",
    },
    "piqa": {
        "revision": "refs/convert/parquet", "export_config": "plain_text",
        "note": "Route: the hub's Parquet export of ybisk/piqa (main is the piqa.py loading script: tree "
                "0a84d89d0d706919978da2108857355af5fc981e still has its dummy/ data), folder plain_text read as "
                "plain_text/<split>/*.parquet; unpinned. Evidence: " + _HF + "/piqa/commits/refs%2Fconvert%2Fparquet/"
                "plain_text (parquet-converter commits, \"Update parquet files\" c341f77) and .../plain_text/validation; "
                "the train folder is inferred from the same layout, not listed.",
    },
    "hellaswag": {
        "revision": "refs/convert/parquet", "export_config": "default",
        "note": "Route: the hub's Parquet export of Rowan/hellaswag, folder default read as default/<split>/*.parquet; "
                "unpinned. Evidence: main at 9c75cc00ec2e1f93893cbd25ba617ee30eb70d88 still holds hellaswag.py (tree "
                "listing); the script is deleted only on the pull-request branch refs/pr/7 (commit "
                "049e80830aedaee63cd025622acf83822eb46553, \"Delete loading script\"); the export lists "
                "default/train/0000.parquet (" + _HF + "/Rowan/hellaswag/commits/refs%2Fconvert%2Fparquet/default/train/"
                "0000.parquet, commit b0a1b0b).",
    },
    "winogrande": {
        "revision": "refs/convert/parquet", "export_config": "winogrande_xl",
        "note": "Route: the hub's Parquet export of allenai/winogrande, folder winogrande_xl read as "
                "winogrande_xl/<split>/*.parquet; unpinned. Evidence: " + _HF + "/allenai/winogrande/tree/"
                "refs%2Fconvert%2Fparquet/winogrande_xl/train lists 0000.parquet (2.06 MB); main carried the "
                "winogrande.py script (tree refs/pr/3: winogrande.py, dataset_infos.json) and whether main has "
                "dropped it was not seen (Parquet files appear at df8eb8fe2e3ab788ec6eada56b9203a86a34c93d, \"Add "
                "'winogrande_xl' config data files\"). Checked again (pins): the tree at df8eb8f lists the six config "
                "folders and still winogrande.py; only the pull-request branch refs/pr/6 deletes it (head fd7b014 "
                "\"Delete loading script\", short id only), so a commit with the Parquet files and no script has no "
                "full id seen and the export stays the route.",
    },
    "lambada": {
        "revision": "refs/convert/parquet", "export_config": "plain_text",
        "note": "Route: the hub's Parquet export of cimec/lambada, folder plain_text read as plain_text/<split>/*.parquet; "
                "unpinned. Evidence: the repo shipped lambada.py (tree 16be90d4173358633a4ccc09b1ca85a1696dd04e: "
                "lambada.py, dummy/, dataset_infos.json) and a later main without it was not seen; the export holds "
                "plain_text/validation (" + _HF + "/cimec/lambada/commits/refs%2Fconvert%2Fparquet/plain_text/"
                "validation, parquet-converter commits, latest \"Update parquet files\" 9e5b49c on plain_text); the "
                "dataset viewer, which reads the export, lists subset plain_text with splits train 2.66k, validation "
                "4.87k, test 5.15k rows (" + _HF + "/cimec/lambada/viewer). Checked again (pins): no main tree "
                "without lambada.py was found; 16be90d is still the latest main tree seen.",
    },
    "cosmos_qa": {
        "note": "Route: the hub repo allenai/cosmos_qa as it is now (no-script Parquet, config default). Evidence: "
                "the hub page shows dataset viewer rows and a dataset_info card without a script config "
                "(train 25262 / validation 2985 / test 6963).",
    },
    "para_crawl_enes": _paracrawl("es", "Spanish"),
    "true_case": _paracrawl("da", "Danish"),
    "fix_punct": _paracrawl("da", "Danish"),
    "word_segment": _paracrawl("da", "Danish"),
    **{
        n: {"revision": sha, "export_config": n, "manual": None,
            "note": _GEM_EXPORT_NOTE.format(cfg=n, sha=sha, listing=_GEM_LISTING[n])}
        for n, sha in _GEM_GEM_COMMITS.items()
    },
    "common_gen": {
        "path": "GEM/common_gen", "config": None, "export_config": "default", "manual": None,
        "revision": "62063f847b090959b6fd342f9c8582f61a6bbb53",
        "note": "Route: the hub's Parquet export of GEM/common_gen (the per-dataset GEM repo; its main is the "
                "common_gen.py loading script), folder default read as default/<split>/*.parquet, pinned to "
                "refs/convert/parquet commit 62063f847b090959b6fd342f9c8582f61a6bbb53. Evidence: " + _HF +
                "/GEM/common_gen/tree/62063f847b090959b6fd342f9c8582f61a6bbb53/default lists train, validation, test "
                "and the challenge_* folders (parquet-converter, \"Delete old duckdb index files\"). The fields "
                "(concepts, target, ...) are GEM's common_gen features, as in GEM/gem's config.",
    },  # fmt: skip
    "dart": {
        "path": "GEM/dart", "config": None, "export_config": "default", "manual": None,
        "revision": "refs/convert/parquet",
        "note": "Route: the hub's Parquet export of GEM/dart (the per-dataset GEM repo; main is a loading script), "
                "folder default read as default/<split>/*.parquet. Evidence: " + _HF + "/GEM/dart/blob/"
                "refs%2Fconvert%2Fparquet/.gitattributes (commit ab80339) lists default/train/0000.parquet and "
                "default/test/0000.parquet and a default/validation folder; " + _HF + "/GEM/dart/commit/"
                "4e5f3cc6c8ad9fdbfdc0aaf52872ca9b8f8bfd73 shows its dart-train/-validation/-test files. Unpinned: only "
                "short commit ids were seen. Fields (tripleset, target, ...) as GEM's dart config.",
    },  # fmt: skip
    "wiki_lingua_english_en": {
        "revision": "refs/convert/parquet", "export_config": "wiki_lingua_english_en", "manual": None,
        "note": "Route: the hub's Parquet export of GEM/gem (branch refs/convert/parquet), config folder "
                "wiki_lingua_english_en read as wiki_lingua_english_en/<split>/*.parquet. Evidence, partial: the "
                "converter wrote GEM/gem's wiki_lingua_* configs into the export (" + _HF + "/GEM/gem/commit/"
                "52f847a2bd7abc6af2f6cb1c33aa0563696036b4 adds wiki_lingua_chinese_zh/gem-{train,validation,test}"
                ".parquet) and moved configs to <config>/<split>/0000.parquet later (web_nlg_en, e2e_nlg above); the "
                "wiki_lingua_english_en folder itself was not seen, so this route is unpinned and unverified. "
                "GEM/wiki_lingua's own export holds the later cleaned release (per-language configs such as de, en_es), "
                "not this one. If it fails, load the config with datasets<4 elsewhere and pass --source-dir.",
    },  # fmt: skip
    "opinion_abstracts_rotten_tomatoes": {
        "kind": "raw", "path": "opinion_abstracts", "url": "https://web.eecs.umich.edu/~wangluxy/datasets",
        "archive": "opinion_abstracts.zip", "files": {"train": "opinion_abstracts/rottentomatoes.json"},
        "format": "json_list", "kv_fields": ["_critics"],
        "note": "Route: the authors' archive by URL, read in place by flan_data.sources.raw (a JSON array; the "
                "{critic: text} mapping becomes the key/value sequence TFDS builds). Evidence: TFDS "
                "tensorflow_datasets/summarization/opinion_abstracts.py sets _URL = "
                "https://web.eecs.umich.edu/~wangluxy/datasets/opinion_abstracts.zip (older builds "
                "http://www.ccs.neu.edu/home/luwang/datasets/opinion_abstracts.zip), reads "
                "opinion_abstracts/rottentomatoes.json with json.load and turns _critics.items() into {key, value}.",
    },  # fmt: skip
    "opinion_abstracts_idebate": {
        "kind": "raw", "path": "opinion_abstracts", "url": "https://web.eecs.umich.edu/~wangluxy/datasets",
        "archive": "opinion_abstracts.zip", "files": {"train": "opinion_abstracts/idebate.json"},
        "format": "json_list", "kv_fields": ["_argument_sentences"],
        "note": "Route: the authors' archive by URL, read in place by flan_data.sources.raw. Evidence: TFDS "
                "opinion_abstracts.py (config idebate: opinion_abstracts/idebate.json, keys _debate_name, _claim_id, "
                "_claim, _argument_sentences as a {name: text} mapping), _URL as for rotten_tomatoes.",
    },  # fmt: skip
    "unified_qa_science_inst": {
        "kind": "raw", "path": "unified_qa_science_inst",
        "url": "https://storage.googleapis.com/unifiedqa/data/ai2_science_middle",
        "files": {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"},
        "splits": {"train": "train", "validation": "validation", "test": "test"},
        "format": "tsv", "columns": ["input", "output"],
        "note": "Route: the UnifiedQA release TSVs by URL, read by flan_data.sources.raw (input, tab, output; no "
                "header; csv-module rules and stripped fields as TFDS reads them). Evidence: TFDS "
                "tensorflow_datasets/datasets/unified_qa/unified_qa_dataset_builder.py, config ai2_science_middle: "
                "_URL_BASE = https://storage.googleapis.com/unifiedqa/data, files ai2_science_middle/train.tsv, "
                "dev.tsv (validation), test.tsv; _generate_examples uses csv.reader(delimiter='\\t') and "
                "row[0]/row[1].strip(); its dummy_data/ai2_science_middle/dev.tsv shows the two-column layout.",
    },  # fmt: skip
    "multi_news": {
        "kind": "raw", "path": "multi_news", "config": None,
        "url": _HF + "/alexfabbri/multi_news/resolve/713d9814275decacf84b5b7dbe7a4cd3d21fc8d9/data",
        "files": {"train": ["train.src.cleaned", "train.tgt"], "val": ["val.src.cleaned", "val.tgt"],
                  "test": ["test.src.cleaned", "test.tgt"]},
        "splits": {"train": "train", "validation": "val", "test": "test"},
        "format": "line_pairs", "columns": ["document", "summary"], "replace": {"NEWLINE_CHAR": "\n"},
        "manual": None,
        "note": "Route: the source files the hub repo hosts itself (data/, added by \"Add data files\" 5b27e04 and "
                "read by its script since \"Host multi_news data on the Hub instead of Google Drive (#4585)\", commit "
                "713d9814275decacf84b5b7dbe7a4cd3d21fc8d9), read by flan_data.sources.raw: <split>.src.cleaned / "
                "<split>.tgt line pairs (val is the validation split), each line stripped and NEWLINE_CHAR written "
                "as a newline in the document. Evidence: main still ships the loading script, so load_dataset("
                "'alexfabbri/multi_news') stops on datasets>=4: " + _HF + "/multi_news/tree/main lists "
                "data/, .gitattributes, README.md, multi_news.py (head 38cb206 \"Delete legacy JSON metadata (#6)\"; "
                "no dataset viewer, so no Parquet export was found); " + _HF + "/alexfabbri/multi_news/tree/"
                "713d9814275decacf84b5b7dbe7a4cd3d21fc8d9 lists data/, dummy/, multi_news.py; " + _HF +
                "/alexfabbri/multi_news/tree/main/data lists test.src.cleaned (69 MB), test.tgt, train.src.cleaned "
                "(548 MB), train.tgt (58.8 MB), val.src.cleaned, val.tgt, all from 5b27e04, the parent of 713d981. "
                "The line rules (strip; document NEWLINE_CHAR -> newline; summary stripped only, after \"Don't strip "
                "proceeding hyphen (#4353)\") are from a public copy of the hub script's _generate_examples, not "
                "from the hub file itself; TFDS multi_news reads the same six files. Splits: train 44972, "
                "validation 5622, test 5622 (TFDS catalog).",
    },  # fmt: skip
    "trec": {
        "manual": "CogComp/trec ships only its trec.py loading script (datasets>=4 cannot run it) and no Parquet "
                  "export was found; load_dataset('CogComp/trec') where datasets<4 is installed and "
                  "save_to_disk the result.",
        "note": "Route: manual (--source-dir trec=PATH, a save_to_disk folder of CogComp/trec). Evidence: " + _HF +
                "/CogComp/trec/tree/main lists .gitattributes, README.md and trec.py only (head eb1e45c \"Delete "
                "legacy JSON metadata (#5)\", no dataset viewer tab); the PR trees refs/pr/2 and refs/pr/4 hold the "
                "same script; no refs/convert/parquet listing for CogComp/trec was found. The script reads the "
                "label files from cogcomp.seas.upenn.edu (train_5500.label, TREC_10.label), whose 'COARSE:fine "
                "question' lines no raw format here parses.",
    },  # fmt: skip
}  # fmt: skip

#: Commits pinned for hub repos that load as they are (no script): the commit whose tree or diff was seen
#: holding the Parquet files and no loading script, with where it was seen. Repos not listed stay unpinned.
PINS: dict[str, tuple[str, str]] = {
    "nyu-mll/glue": (
        "a3f3ab759b9d7018046ce361f115ef38276d2e1e",
        _HF
        + '/nyu-mll/glue/tree/a3f3ab759b9d7018046ce361f115ef38276d2e1e ("Convert dataset to Parquet (#16)" on '
        "main: one folder per config, e.g. mnli/train-00000-of-00001.parquet, and README.md)",
    ),
    "wmt/wmt16": (
        "41d8a4013aa1489f28fea60ec0932af246086482",
        _HF
        + '/wmt/wmt16/commits/41d8a4013aa1489f28fea60ec0932af246086482/README.md (head "Convert dataset to Parquet '
        '(#8)") and the main tree at that head: folders cs-en, de-en, fi-en, ro-en, ru-en, tr-en (e.g. '
        "de-en/train-0000{0,1,2}-of-00003.parquet, validation, test), .gitattributes, README.md, no loading script",
    ),
    "facebook/anli": (
        "8e4813d81f46d313dac7892e1c28076917cfcdf9",
        _HF
        + '/facebook/anli/commit/8e4813d81f46d313dac7892e1c28076917cfcdf9 ("Convert dataset to Parquet (#5)" on '
        "main: adds plain_text/{train,dev,test}_r{1,2,3}-00000-of-00001.parquet, deletes anli.py and dataset_infos.json)",
    ),
    "rajpurkar/squad_v2": (
        "80596c4f2b9ffcd716039dfc7e564c4e491802ec",
        _HF
        + '/rajpurkar/squad_v2/commit/80596c4f2b9ffcd716039dfc7e564c4e491802ec ("Convert dataset to Parquet (#6)": '
        "adds squad_v2/{train,validation}-00000-of-00001.parquet, deletes squad_v2.py and dataset_infos.json) and "
        + _HF
        + "/rajpurkar/squad_v2/tree/80596c4f2b9ffcd716039dfc7e564c4e491802ec (squad_v2/, .gitattributes, README.md; "
        "the viewer lists subset squad_v2, train 130k / validation 11.9k rows)",
    ),
    "allenai/ai2_arc": (
        "210d026faf9955653af8916fad021475a3f00453",
        _HF
        + '/allenai/ai2_arc/tree/210d026faf9955653af8916fad021475a3f00453 ("Add paper to dataset card (#5)" on main: '
        'folders ARC-Challenge and ARC-Easy from "Convert dataset to Parquet (#4)", .gitattributes, README.md, no '
        "ai2_arc.py; the PR tree refs/pr/4 lists ARC-Easy/{train,validation,test}-00000-of-00001.parquet)",
    ),
    "mandarjoshi/trivia_qa": (
        "8dc2b82074533f20e92858f3577f10ff192f48cc",
        _HF
        + '/mandarjoshi/trivia_qa/tree/refs%2Fpr%2F8 (head 8dc2b82 "Delete data folder"; folders rc, rc.nocontext, '
        "rc.web, rc.web.nocontext, rc.wikipedia, rc.wikipedia.nocontext, unfiltered, unfiltered.nocontext, "
        ".gitattributes, README.md; no trivia_qa.py, no data/), full id from "
        + _HF
        + "/mandarjoshi/trivia_qa/commits/8dc2b82074533f20e92858f3577f10ff192f48cc/unfiltered.nocontext (history: "
        '"Add unfiltered.nocontext data files" 640d378); '
        + _HF
        + "/mandarjoshi/trivia_qa/tree/640d3785c8080b8c2cef6ddc1e083b4c3596add0/unfiltered.nocontext lists "
        "{train,validation,test}-00000-of-00001.parquet (33.2 MB / 4.39 MB / 762 kB). This is the head of the "
        "conversion pull request (refs/pr/8): the trees seen before it (640d378, 87a3c80) still carry trivia_qa.py "
        "and data/, and a main without the script was not seen, so the unpinned repo may still stop on datasets>=4. "
        "That the card at 8dc2b82 declares the unfiltered.nocontext config is inferred from the conversion commits, "
        "not read",
    ),
    "svakulenk0/qrecc": (
        "d2e4ae22ba724b6b24360ddb173c90428da79aab",
        _HF
        + '/svakulenk0/qrecc/tree/d2e4ae22ba724b6b24360ddb173c90428da79aab ("Update README.md": .gitattributes, '
        "README.md 3.47 kB, qrecc-test.json 19.5 MB, qrecc-training.json 66.6 MB; no loading script), the parent of "
        'main\'s head 433e142 "Fix `license` metadata (#1)" in '
        + _HF
        + "/svakulenk0/qrecc/commits/main (main's tree lists the same four files, its README also 3.47 kB); the "
        "json builder takes the splits from the file names (training -> train, test -> test: checked with "
        "datasets 5.2.0 data_files.get_data_patterns on a folder holding those two names)",
    ),
    "google-research-datasets/paws": (
        "161ece9501cf0a11f3e48bd356eaa82de46d6a09",
        _HF
        + '/paws/commit/161ece9501cf0a11f3e48bd356eaa82de46d6a09 ("Convert dataset to Parquet (#3)" on main, parent '
        "cd6b868; paws is the legacy name of google-research-datasets/paws, the commit folds in 06b62eae81864f3d8d9d9d7cc3a8130e542b5cc8 "
        '"Add unlabeled_final data files" of that repo): adds labeled_final/{train,validation,test}-00000-of-00001.parquet, '
        "labeled_swap/train-..., unlabeled_final/{train,validation}-..., deletes paws.py (-209) and dataset_infos.json; "
        "the viewer lists subset labeled_final with train 49.4k / validation 8k / test 8k rows",
    ),
    "stanfordnlp/snli": (
        "cdb5c3d5eed6ead6e5a341c8e56e669bb666725b",
        _HF
        + '/stanfordnlp/snli/commit/cdb5c3d5eed6ead6e5a341c8e56e669bb666725b ("Convert dataset to Parquet (#6)": '
        "adds plain_text/{train,validation,test}-00000-of-00001.parquet and the configs card, deletes snli.py)",
    ),
}


def _pin(source: dict[str, Any]) -> dict[str, Any]:
    pin = PINS.get(source.get("path", "")) if source.get("kind") == "hf" else None
    if pin is None or source.get("revision"):
        return source
    sha, seen = pin
    note = f"Revision {sha} pinned: {seen}."
    return {**source, "revision": sha, "note": ((source.get("note") or "") + " " + note).strip()}


_ROUTE_WRAP = (
    "data_files",
    "column_names",
    "files",
    "columns",
    "types",
    "kv_fields",
    "replace",
    "splits",
)


def _route(name: str, source: dict[str, Any]) -> dict[str, Any]:
    """Apply ROUTES[name] to a generated source mapping (idempotent).

    A key set to None removes it (e.g. ``manual`` once a loadable route exists)."""
    r = ROUTES.get(name)
    if not r:
        return source
    out = dict(source)
    for k, v in r.items():
        if k == "note":
            continue
        if v is None:
            out.pop(k, None)
        elif k in _ROUTE_WRAP and isinstance(v, dict):
            out[k] = Flow(v)
        elif isinstance(v, list):
            out[k] = FlowList(v)
        else:
            out[k] = v
    note = out.get("note") or ""
    if r["note"] not in note:
        out["note"] = (note + " " + r["note"]).strip()
    return out


def _flan_task(
    name: str, spec: dict[str, Any], row: Mapping[str, str], refs: Refs
) -> dict[str, Any]:
    s = dict(spec.get("src") or {})
    extra = s.pop("extra_note", "")
    kind = s.pop("kind", "hf")
    hf_id = row["hf_id"].split(" ")[0]
    config = row["hf_config"].split(" ")[0] if row["hf_config"] not in ("-", "") else None
    source: dict[str, Any] = {"kind": kind, "path": s.pop("path", hf_id)}
    cfg = s.pop("config", config)
    if cfg is not None:
        source["config"] = cfg
    if s.get("revision"):
        source["revision"] = s.pop("revision")
    splits = s.pop("splits", None)
    if splits:
        source["splits"] = Flow(splits)
    for k in ("validation_size", "id_field"):
        if s.get(k) is not None:
            source[k] = s.pop(k)
    flan_map = row["splits"].split("||")[-1].strip()
    cite = row["citation"].strip()
    if kind == "hf":
        note = (
            f"Hub id, config and fields from shared/reference/flan2021_hf_sources.csv (row {name}, {row['status']}; "
            f"{cite}). {flan_map}."
        )
    else:
        note = f"flan2021_hf_sources.csv row {name}: {row['status']} ({cite}). {flan_map}."
    if extra:
        note += " " + extra
    source["note"] = note
    source = _pin(_route(name, source))
    task: dict[str, Any] = {"name": name, "source": source}
    if spec.get("records"):
        task["records"] = _records(spec["records"])
    task["fields"] = dict(spec["fields"])
    if spec.get("options") is not None:
        o = spec["options"]
        task["options"] = Flow(o) if isinstance(o, dict) else FlowList(o)
    task["templates"] = FlowList(spec["templates"])
    cat_key = spec.get("cat", name)
    task["metadata"] = {
        "category": refs.flan_category(cat_key),
        "languages": FlowList(spec.get("languages") or refs.flan_languages(cat_key)),
        "license": spec.get("license"),
        "held_out": False,
    }
    return task


def _inversion(name: str, orig: dict[str, Any], inv: dict[str, Any], refs: Refs) -> dict[str, Any]:
    spec = F[name]
    src = dict(orig["source"])
    what = INV_WHAT.get(inv["templates"][0], "write the input from the output")
    src["note"] = f"Same source as {name} (see that entry); inverted task: {what}."
    t: dict[str, Any] = {"name": f"{name}_ii", "source": src}
    if "sample" in orig:
        t["sample"] = orig["sample"]
    if "records" in orig:
        t["records"] = orig["records"]
    t["fields"] = dict(orig["fields"])
    if "options" in orig:
        t["options"] = orig["options"]
    t["templates"] = FlowList(inv["templates"])
    md = dict(orig["metadata"])
    md["category"] = refs.flan_category(spec.get("cat", name), inverted=True)
    md["inversion_of"] = name
    t["metadata"] = md
    return t


def _records(r: Mapping[str, Any]) -> dict[str, Any]:
    """A task's ``records:`` rules (docs/FORMATS.md), with flow-style sub-mappings."""
    return {k: Flow(v) if isinstance(v, Mapping) else v for k, v in r.items()}


# Record rules and split mappings of merged draft entries (FLAN's loaders, see each note).
DRAFT_RULES: dict[str, dict[str, Any]] = {
    "arc_challenge": {
        "records": {"filter": "choices.text | length == 4"},
        "splits": {"train": "train[:-200]", "validation": "validation", "test": "test"},
        "note": "FLAN keeps 4-option questions only (a few ARC items have 3 or 5 options) and trains on train[:-200]; the record filter and the split slice do the same.",
    },
    "bool_q": {
        "splits": {"train": "train[:-200]", "validation": "validation"},
        "note": "The split slice train[:-200] reproduces FLAN's training split.",
    },
    "anli_r1": {
        "splits": {"train": "train_r1", "validation": "dev_r1[:200]", "test": "test_r1"},
        "note": "FLAN validates on dev_r1[:200], as for anli_r2/r3.",
    },
}


def _apply_draft_rules(name: str, t: dict[str, Any]) -> dict[str, Any]:
    """Idempotent: rerunning on an already merged entry changes nothing."""
    rule = DRAFT_RULES.get(name[:-3] if name.endswith("_ii") else name)
    if not rule:
        return t
    src = dict(t["source"])
    src["splits"] = Flow(rule["splits"])
    note = src.get("note") or ""
    if rule["note"] not in note:
        note = (note + " " + rule["note"]).strip()
    src["note"] = note
    out: dict[str, Any] = {}
    for k, v in t.items():
        if k == "records":
            continue
        out[k] = src if k == "source" else v
        if (
            k in ("sample", "source")
            and "records" in rule
            and not ("sample" in t and k == "source")
        ):
            out["records"] = _records(rule["records"])
    return out


def _clean_draft(t: Mapping[str, Any]) -> dict[str, Any]:
    d = {k: v for k, v in t.items() if k != "collection"}
    src = dict(d["source"])
    if src.get("revision", "x") is None:
        del src["revision"]
    if "splits" in src:
        src["splits"] = Flow(src["splits"])
    d["source"] = _pin(src)
    if "sample" in d:
        d["sample"] = Flow(d["sample"])
    for k in ("templates",):
        d[k] = FlowList(d[k])
    if isinstance(d.get("options"), list):
        d["options"] = FlowList(d["options"])
    elif isinstance(d.get("options"), dict):
        d["options"] = Flow(d["options"])
    md = dict(d.get("metadata") or {})
    if "languages" in md:
        md["languages"] = FlowList(md["languages"])
    d["metadata"] = md
    return d


# ----------------------------------------------------------------------------- drafts

# Task entries written (with bundled sample data) by other engineers in collections/drafts/*.yaml
# and merged into the collection files. Their sample, fields and templates are kept as written;
# sources were checked against the reference tables. Once a draft file is deleted, the merged entry
# in the collection file is the source of truth: the script reads it back from there, so rerunning
# it is reproducible and never loses a merged entry.
DRAFT_TASKS = {
    "flan2021": ["anli_r1", "anli_r1_ii", "arc_challenge", "arc_challenge_ii", "ag_news_subset", "ag_news_subset_ii",
                 "bool_q", "bool_q_ii", "xsum", "xsum_ii", "wmt16_translate_deen"],
    "cot": ["cot_gsm8k", "cot_gsm8k_ii", "cot_creak", "cot_creak_ii"],
    "dialog": ["qrecc", "qrecc_ii"],
}  # fmt: skip
# Draft entries of generated collections (niv2, t0sf) need no copy: the generic rules reproduce
# them (fields, templates, metadata) and pick up their bundled samples from sample_data/.


def load_drafts() -> dict[str, dict[str, Any]]:
    """Draft entries: from collections/drafts/*.yaml when still there, else from the merged collection files."""
    out: dict[str, dict[str, Any]] = {}
    for coll, names in DRAFT_TASKS.items():
        path = ROOT / "collections" / f"{coll}.yaml"
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
        for t in (doc or {}).get("tasks") or []:
            if t["name"] in names:
                out[t["name"]] = t
    for f in sorted((ROOT / "collections" / "drafts").glob("*.yaml")):
        doc = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        for t in doc.get("tasks") or []:
            out[t["name"]] = t
    for t in out.values():  # license facts live in collections/licenses.json
        (t.get("metadata") or {}).pop("licensing", None)
    return out


# ----------------------------------------------------------------------------- t0sf

#: Head of bigscience/P3's refs/convert/parquet branch (its commit list starts with it; the converter
#: wrote one config per commit, 4a98c16 the first, and has not committed since).
P3_EXPORT_COMMIT = "985469b111586131283ac28a9f92ef720c48a8fe"
P3_NOTE = (
    "bigscience/P3 config {name}; split sizes in shared/reference/p3_subtasks.csv. FLAN reads the same data through "
    "TFDS huggingface:bigscience__p3/<subtask> (train split). Route: the hub's Parquet export (branch "
    "refs/convert/parquet), folder {name} read as data_files {name}/<split>/*.parquet, pinned to the branch head "
    "985469b111586131283ac28a9f92ef720c48a8fe. Evidence: the main branch is the P3.py loading script over tfrecords "
    "(tree at eebf82105ad8b692635572bcb5ba58e1b6d3c473: data/, P3.py, io_utils.py, tasks_splits_and_features.py), "
    "which datasets>=4 refuses; "
    + _HF
    + "/bigscience/P3/commits/refs%2Fconvert%2Fparquet lists 985469b as the "
    'latest of the parquet-converter\'s "Update parquet files" commits (full id in '
    + _HF
    + "/bigscience/P3/commits/985469b111586131283ac28a9f92ef720c48a8fe); the first, "
    "4a98c16b005c302806c20b74d0ad0199656f158e, adds the folder adversarial_qa_dbert_answer_the_following_q, and "
    "the tree lists e.g. ag_news_classify_question_first/train/0000.parquet and "
    "ai2_arc_ARC_Easy_i_am_hesitating/train/0000.parquet: one folder per P3 config. That every one of the 193 "
    "configs is in the export is assumed from that layout, not checked one by one."
)


T0SF_HEADER = """\
# T0-SF: the 193 P3 subtasks that Flan 2022 kept from T0's training mixture (in_flan=False in
# shared/reference/p3_subtasks.csv), one task per P3 config. GENERATED by tools/build_catalog.py.
#
# Source: the bigscience/P3 config named after the subtask, read from the hub's Parquet export
# (refs/convert/parquet, folder <config>/<split>/): main is still the P3.py loading script over
# tfrecords, which datasets>=4 cannot run (card license apache-2.0, the underlying datasets keep their
# own licenses).
# Splits: train/validation where P3 has a validation split; otherwise the last 200 train rows are the
# validation split ("train[:-200]" / "train[-200:]", as FLAN carves). Fields: the P3 prompt and target
# as they are (inputs_pretokenized / targets_pretokenized, trimmed).
# Options rule: `options: {field: answer_choices}` exactly for the subtasks whose promptsource 0.2.3
# template (the prompt P3 was rendered from; shared/data/promptsource) has non-null answer_choices:
# P3 stores them per row in `answer_choices`. That is all 89 t0_multiple_choice* subtasks plus 4
# wiqa t0_question_answer ones with fixed answers. (Without promptsource the script falls back to
# task_type != t0_question_answer.) The t0_wrap templates always show {{ options_block }}.
# Category: the subtask's row in flan_collection_info.csv (T0 rows, "Generic Task Category");
# task_type: p3_subtasks.csv; source_dataset: the P3 dataset the subtask prompts.
"""


def promptsource_choices(shared: Path) -> dict[str, bool] | None:
    root = shared / "data" / "promptsource" / "templates"
    if not root.is_dir():
        return None

    class L(yaml.SafeLoader):
        pass

    L.add_constructor("!Template", lambda loader, node: loader.construct_mapping(node, deep=True))
    L.add_constructor(
        "!TemplateMetadata", lambda loader, node: loader.construct_mapping(node, deep=True)
    )
    out: dict[str, bool] = {}
    for f in sorted(root.rglob("templates.yaml")):
        d = yaml.load(f.read_text(encoding="utf-8"), Loader=L)
        base = d["dataset"].split("/")[-1] + (f"_{d['subset']}" if d.get("subset") else "")
        for t in (d.get("templates") or {}).values():
            # P3 config names: "<dataset>_<subset>_<template name>", runs of non-word characters -> "_"
            for cand in {re.sub(r"[^\w\d]", "_", t["name"]), re.sub(r"[^\w\d]+", "_", t["name"])}:
                out[f"{base}_{cand}"] = t.get("answer_choices") is not None
    return out


def build_t0sf(refs: Refs) -> dict[str, Any]:
    choices = promptsource_choices(refs.shared)
    info = refs.keyed("T0")
    sample_root = ROOT / "sample_data" / "p3"
    rows = [r for r in refs.p3 if r["in_flan"] == "False"]
    tasks = []
    for r in rows:
        name = r["p3_subtask"]
        if choices is not None:
            if name not in choices:
                sys.exit(f"build_catalog: no promptsource template found for P3 subtask {name!r}")
            has_options = choices[name]
        else:
            has_options = r["task_type"] != "t0_question_answer"
        t: dict[str, Any] = {"name": name}
        if not r["validation"]:
            t["source"] = Flow({"splits": Flow(carve(test=None))})
        if (sample_root / name).is_dir():
            t["sample"] = Flow({"kind": "jsonl", "path": f"p3/{name}"})
        if has_options:
            t["options"] = Flow({"field": "answer_choices"})
        row = info.get(name)
        md: dict[str, Any] = {
            "category": row["Generic Task Category"] if row else None,
            "task_type": r["task_type"],
        }
        if row:
            md["source_dataset"] = row["Dataset"]
        t["metadata"] = Flow(md)
        tasks.append(t)
    defaults = {
        "source": {"kind": "hf", "path": "bigscience/P3", "config": "{name}", "revision": P3_EXPORT_COMMIT, "splits": Flow({"train": "train", "validation": "validation"}),
                   "note": P3_NOTE, "export_config": "{name}"},
        "fields": {"inputs": "inputs_pretokenized | trim", "answer": "targets_pretokenized | trim"},
        "templates": FlowList(["t0_wrap"]),
        "metadata": {"languages": FlowList(["en"]), "license": "apache-2.0", "held_out": False},
    }  # fmt: skip
    return {"collection": "t0sf", "defaults": defaults, "tasks": tasks}


# ----------------------------------------------------------------------------- niv2

NIV2_HEADER = """\
# Super-NaturalInstructions (NIv2): the 1,654 tasks of shared/reference/niv2_tasks.csv (Flan 2022's
# task list), one catalog task per instruction file. GENERATED by tools/build_catalog.py.
#
# Source: the natural-instructions task file tasks/<name>.json (fetched from the allenai repo on first
# use, or --source-dir niv2=PATH to a checkout). Each file has one split; the validation split is its
# last N instances with N = clamp(number_examples // 10, 1, 100) (number_examples from niv2_tasks.csv:
# 100 for tasks with >= 1,000 examples -- the default below -- and 10% for smaller ones, so the
# smallest task, 26 examples, keeps 24 for training).
# metadata.niv2_split: train | test | none from splits/default/{train,test}_tasks.txt; test tasks are
# held_out: true. License: the natural-instructions repository's (Apache-2.0); the datasets the tasks
# were built from keep their own. exclude_from_training: true for the 57 MMLU-derived tasks (task664-667 and
# task685-737; FLAN filters task685-737 from its NIv2 mixture). category / source_dataset / languages:
# the task's NIv2 row in flan_collection_info.csv (matching "-" and "_" alike); the 57 MMLU tasks are not
# listed there and have category null (languages: English).
# Names as in FLAN's list, with two quirks handled through source.path (metadata.notes on each task):
#  - 5 names are cut at a "." (task349_squad2 = task349_squad2.0_answerable_unanswerable_question_classification);
#  - 41 tasks are listed twice, once with the repo's file name (hyphens) and once with "_" for "-";
#    both entries read the repo's file and share its niv2_split / held_out (no test data leaks through
#    the copy). FLAN thus trains on those 41 tasks twice; flan-data keeps both names so the counts
#    match FLAN's list.
"""


def niv2_number(name: str) -> int:
    return int(re.match(r"task(\d+)", name).group(1))


def is_mmlu(name: str) -> bool:
    n = niv2_number(name)
    return 664 <= n <= 667 or 685 <= n <= 737


def niv2_validation_size(n_examples: int) -> int:
    return max(1, min(100, n_examples // 10))


def _norm(name: str) -> str:
    return name.replace("-", "_")


def build_niv2(refs: Refs) -> dict[str, Any]:
    info = refs.keyed("NIv2")
    info_norm = {_norm(k): v for k, v in info.items()}
    names = [r["task"] for r in refs.niv2]
    split_names = refs.niv2_train | refs.niv2_test
    # FLAN's list cuts names at the first "." (task349_squad2 is task349_squad2.0_answerable_...):
    dotted = {s.split(".")[0]: s for s in split_names if "." in s}
    # ... and spells 41 tasks twice: the repo's file name (hyphens) and a copy with "_" for "-".
    by_norm: dict[str, list[str]] = {}
    for n in names:
        by_norm.setdefault(_norm(n), []).append(n)
    sample_root = ROOT / "sample_data" / "niv2"
    tasks = []
    for r in refs.niv2:
        name = r["task"]
        twins = [n for n in by_norm[_norm(name)] if n != name]
        if name in split_names:
            file_name = name
        elif name in dotted:
            file_name = dotted[name]
        else:
            hyphenated = [n for n in twins if "-" in n]
            file_name = hyphenated[0] if hyphenated else name
        if twins and name != file_name and file_name in twins:
            continue  # one task per task file: this spelling is an alias of the file's own name
        t: dict[str, Any] = {"name": name}
        if twins:
            t["aliases"] = FlowList(sorted(twins))
        src: dict[str, Any] = {}
        if file_name != name:
            src["path"] = file_name
        vs = niv2_validation_size(int(r["number_examples"]))
        if vs != 100:
            src["validation_size"] = vs
        if src:
            t["source"] = Flow(src)
        sf = sample_root / f"{name}.json"
        if sf.is_file():
            import json

            n = len(json.loads(sf.read_text(encoding="utf-8-sig"))["Instances"])
            t["sample"] = Flow(
                {
                    "kind": "niv2",
                    "path": f"niv2/{name}",
                    "validation_size": max(1, min(100, n // 4)),
                }
            )
        split = (
            "test"
            if file_name in refs.niv2_test
            else "train"
            if file_name in refs.niv2_train
            else "none"
        )
        row = info.get(name) or info.get(file_name) or info_norm.get(_norm(name))
        md: dict[str, Any] = {}
        notes = []
        if row:
            md["category"] = row["Generic Task Category"]
            md["source_dataset"] = row["Dataset"]
            langs = languages(row["Languages"])
            if langs != ["en"]:
                md["languages"] = FlowList(langs)
        else:
            notes.append("not in flan_collection_info.csv: no category, languages assumed English")
        if file_name != name and file_name.startswith(name + "."):
            notes.append(f"FLAN's list cuts the name at the '.'; the task file is {file_name}.json")
        if twins:
            notes.append(
                f"FLAN's list has this task twice ({', '.join(sorted([name, *twins]))}), both reading {file_name}.json; "
                "it is one task here (the other spelling is an alias), so no instance is trained twice"
            )
        md["niv2_split"] = split
        if split == "test":
            md["held_out"] = True
        if is_mmlu(name):
            md["exclude_from_training"] = True
        if notes:
            md["notes"] = "; ".join(notes)
        t["metadata"] = Flow(md)
        tasks.append(t)
    defaults = {
        "source": {"kind": "niv2", "path": "{name}", "validation_size": 100,
                   "note": "natural-instructions tasks/<source.path>.json (allenai/natural-instructions); validation = the last validation_size instances."},
        "fields": {"definition": "definition", "input": "input", "output": "output", "positive_examples": "positive_examples"},
        "templates": FlowList(["niv2_zs", "niv2_fs"]),
        "exemplars": "field:positive_examples",
        "metadata": {"category": None, "languages": FlowList(["en"]), "license": "apache-2.0", "held_out": False, "exclude_from_training": False},
    }  # fmt: skip
    return {"collection": "niv2", "defaults": defaults, "tasks": tasks}


# ----------------------------------------------------------------------------- cot

COT_HEADER = """\
# Chain-of-thought: the nine Flan CoT datasets (cot_<name>) and their input inversions (cot_<name>_ii).
# GENERATED by tools/build_catalog.py.
#
# Source: FLAN's flan/v2/cot_data/<name>_train.tsv (question \\t answer \\t chain_of_thought; file names and
# line counts from FLAN's task_configs.py: gsm8k 7473, strategyqa 2061, creak 6915, qasc 1084, esnli 36174,
# ecqa 7112, sensemaking 6070, aqua 2728, qed 5154). Pass --source-dir cot=PATH to a folder with the files,
# or use the raw GitHub URL. One split: the last 100 rows are the validation split.
# Options only where the answer set is fixed: strategyqa/creak yes|no, esnli's three NLI answers,
# sensemaking Sentence A|B. The questions embed their option list ("\\nOptions:\\n- yes\\n- no"); the field
# expression cuts it off so the options appear only through {{ options_block }}. aqua, qasc and ecqa have
# per-question choices inside the question text (kept there, as the source has them), gsm8k and qed
# free answers: no options. aqua and qasc answer with an option marker ("(C)"); their answer field is that
# option's text, read from the question, so CoT targets end in the answer text.
# Inversions (answer + rationale -> question) use the full question text, without options.
# Category: flan_collection_info.csv (CoT rows; inversions "Question Generation"). License: the FLAN
# repository's (Apache-2.0) for the rationale files; the underlying datasets keep their own.
"""

STRIP_OPTIONS = 'question.split("\\nOptions:")[0]'
SENSEMAKING_Q = 'question | replace("\\nOptions:", "") | replace("\\n- Sentence A:", "\\nSentence A:") | replace("\\n- Sentence B:", "\\nSentence B:") | trim'
# aqua and qasc answer with the marker of an inline option ("(C)"); the CoT
# target should end in the answer's text, so the answer field reads that
# option's text from the question (the marker stays when it is not found).
INLINE_ANSWER = '(question.split(answer ~ " ")[-1].split("\\n")[0] | trim) if (answer ~ " ") in question else answer'
COT_ANSWER = {"qasc": INLINE_ANSWER, "aqua": INLINE_ANSWER}
COT = [
    ("gsm8k", None, None),
    ("strategyqa", ["yes", "no"], STRIP_OPTIONS),
    ("creak", ["yes", "no"], STRIP_OPTIONS),
    ("qasc", None, None),
    ("esnli", ["yes", "it is not possible to tell", "no"], STRIP_OPTIONS),
    ("ecqa", None, None),
    ("sensemaking", ["Sentence A", "Sentence B"], SENSEMAKING_Q),
    ("aqua", None, None),
    ("qed", None, None),
]
COT_UNCHECKED = {
    "strategyqa": "Answer set yes|no from FLAN's strategyqa CoT format (file not checked here).",
    "esnli": "Answer set (yes / it is not possible to tell / no) and the embedded 'Options:' list assumed from FLAN's esnli CoT format; the file was not checked here.",
    "ecqa": "File not checked here.",
    "qed": "File not checked here.",
}


def build_cot(refs: Refs, drafts: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    sample_root = ROOT / "sample_data" / "cot"
    local = refs.shared / "data" / "flan_cot"
    tasks = []
    for ds, options, qexpr in COT:
        for inv in (False, True):
            name = f"cot_{ds}" + ("_ii" if inv else "")
            if name in drafts:
                d = _clean_draft(drafts[name])
                d["source"] = Flow(_cot_source(ds, local))
                d["metadata"]["category"] = refs.cot_category(ds, inv)
                d["metadata"]["license"] = "apache-2.0"
                tasks.append(d)
                continue
            t: dict[str, Any] = {"name": name, "source": Flow(_cot_source(ds, local))}
            if (sample_root / f"{ds}_train.tsv").is_file():
                t["sample"] = Flow(
                    {"kind": "cot_tsv", "path": f"cot/{ds}_train.tsv", "validation_size": 12}
                )
            fields = {
                "question": (qexpr if (qexpr and not inv) else "question"),
                "answer": COT_ANSWER.get(ds, "answer"),
                "rationale": "chain_of_thought",
            }
            t["fields"] = fields
            if options and not inv:
                t["options"] = FlowList(options)
            t["templates"] = FlowList(["cot_ii" if inv else "cot"])
            md: dict[str, Any] = {
                "category": refs.cot_category(ds, inv),
                "languages": FlowList(["en"]),
                "license": "apache-2.0",
                "held_out": False,
            }
            if inv:
                md["inversion_of"] = f"cot_{ds}"
            t["metadata"] = md
            tasks.append(t)
    return {"collection": "cot", "tasks": tasks}


def _cot_source(ds: str, local: Path) -> dict[str, Any]:
    present = (local / f"{ds}_train.tsv").is_file()
    note = f"FLAN flan/v2/cot_data/{ds}_train.tsv (raw: https://raw.githubusercontent.com/google-research/FLAN/main/flan/v2/cot_data/{ds}_train.tsv)."
    if present:
        note += " Checked against shared/data/flan_cot (line count as in FLAN's task_configs.py)."
    elif ds in COT_UNCHECKED:
        note += " " + COT_UNCHECKED[ds]
    return {"kind": "cot_tsv", "path": f"{ds}_train.tsv", "validation_size": 100, "note": note}


# ----------------------------------------------------------------------------- dialog

DIALOG_HEADER = """\
# Dialog: WikiDialog and QReCC, next-turn prediction and its input inversion (write the user's turn).
# GENERATED by tools/build_catalog.py. Templates dialog_next / dialog_ii (templates/dialog.yaml) read
# `dialog` (earlier turns, user first), `question` (the user's turn) and `answer` (the reply).
# Category: flan_collection_info.csv (Dialog rows).
"""

WIKI_DIALOG_URL = "https://storage.googleapis.com/gresearch/dialog-inpainting/WikiDialog_OQ"
WIKI_DIALOG_NOTE = (
    "FLAN reads TFDS wiki_dialog:1.0.0 (config OQ). Route: the raw WikiDialog OQ release by URL, the files the TFDS "
    "builder downloads, read by flan_data.sources.raw (gzip JSON lines with title, pid, passage, sentences, "
    "utterances, author_num). Evidence: tensorflow/datasets tensorflow_datasets/datasets/wiki_dialog/"
    "wiki_dialog_dataset_builder.py (_BASE_DOWNLOAD_URL https://storage.googleapis.com/gresearch/dialog-inpainting/, "
    "config OQ -> WikiDialog_OQ/, train data_train.jsonl-{i:05}-of-00099.gz for i < 99, validation "
    "data_validation.jsonl.gz, one JSON object a line) and its checksums.tsv (the 99 train shards, ~75 MB each). "
    "The only hub copy, djaym7/wiki_dialog, is an apache-beam loading script (tree at main: README.md, "
    "wiki_dialog.py). Mapping: the dialog alternates reader question (even 0-based index) / writer sentence (odd "
    "index); as FLAN does, one answer turn per dialog is sampled at an odd index (record rule sample_turn, seeded by "
    "the dialog's id): that turn is the answer, the one before it the question, the earlier ones the history."
)


QRECC_RECORDS = {"filter": "Turn_no > 6 and Context | length > 0"}
QRECC_NOTE = (
    "Record filter: FLAN's rule keeps turns with turn id > 6 (which also leaves no turn with an empty "
    "history; the filter checks that too)."
)


def build_dialog(refs: Refs, drafts: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    tasks = []
    wd_fields = {
        "dialog": "utterances[:turn - 1]",
        "question": "utterances[turn - 1]",
        "answer": "utterances[turn]",
    }
    wd_records = _records({"sample_turn": {"field": "utterances", "parity": "odd", "as": "turn"}})
    for inv in (False, True):
        name = "wiki_dialog" + ("_ii" if inv else "")
        t = {
            "name": name,
            "source": {"kind": "raw", "path": "wiki_dialog", "splits": Flow({"train": "train", "validation": "validation"}),
                       "note": WIKI_DIALOG_NOTE if not inv else "Same source as wiki_dialog (see that entry); inverted task: write the user's turn from the history and the reply.",
                       "url": WIKI_DIALOG_URL, "format": "jsonl",
                       "files": Flow({"train": "data_train.jsonl-{00000..00098}-of-00099.gz", "validation": "data_validation.jsonl.gz"})},
            "records": wd_records,
            "fields": dict(wd_fields),
            "templates": FlowList(["dialog_ii" if inv else "dialog_next"]),
            "metadata": {"category": refs.dialog_category("wiki_dialog", inv), "languages": FlowList(["en"]), "license": None, "held_out": False},
        }  # fmt: skip
        if inv:
            t["metadata"]["inversion_of"] = "wiki_dialog"
        tasks.append(t)
    for name in ("qrecc", "qrecc_ii"):
        if name not in drafts:
            sys.exit(f"build_catalog: draft entry {name} not found")
        d = _clean_draft(drafts[name])
        src = dict(d["source"])
        # QReCC has train/test only: hold out the last 200 train turns as validation, as for FLAN 2021 tasks
        src["validation_size"] = 200
        note = (src.get("note") or "").replace(
            " the rule is not known here.", " see the record filter."
        )
        src["note"] = note if QRECC_NOTE in note else (note + " " + QRECC_NOTE).strip()
        d["source"] = src
        d = {k: v for k, v in d.items() if k != "records"}
        d = {**{k: d[k] for k in ("name", "source", "sample") if k in d}, "records": _records(QRECC_RECORDS),
             **{k: v for k, v in d.items() if k not in ("name", "source", "sample")}}  # fmt: skip
        d["metadata"]["category"] = refs.dialog_category("qrecc", name.endswith("_ii"))
        tasks.append(d)
    return {"collection": "dialog", "tasks": tasks}


# ----------------------------------------------------------------------------- main


def published_sizes(shared: Path) -> dict[str, int]:
    """Per-task example counts the Flan 2022 code mixes by (flan_num_cases.csv,
    niv2_tasks.csv, p3_subtasks.csv), under our task names; inversions share
    their original's count unless FLAN lists one of their own."""
    ref = shared / "reference"
    out: dict[str, int] = {}
    for r in _csv(ref / "flan_num_cases.csv"):
        name, n = r["task"], int(r["zero_shot"])
        if name.startswith("t0_task_adaptation:"):
            out[name.split(":", 1)[1]] = n
        elif name.startswith(("cot_input_inversion_", "stream_input_inversion_")):
            out["cot_" + name.rsplit("_inversion_", 1)[1] + "_ii"] = n
        elif name.startswith("stream_"):
            out["cot_" + name[len("stream_") :]] = n
        elif name.endswith("_input_inversion"):
            out[name[: -len("_input_inversion")] + "_ii"] = n
        else:
            out[name] = n
    for r in _csv(ref / "niv2_tasks.csv"):
        out[r["task"]] = int(r["number_examples"])
    for r in _csv(ref / "p3_subtasks.csv"):
        if r["train"] and r["p3_subtask"] not in out:
            out[r["p3_subtask"]] = int(float(r["train"]))
    return out


def add_sizes(doc: dict[str, Any], sizes: Mapping[str, int]) -> dict[str, Any]:
    """Record each task's published size as metadata.num_examples (for `flan mixture plan --sizes metadata`)."""
    for t in doc["tasks"]:
        name = t["name"]
        n = sizes.get(name)
        if n is None and name.endswith("_ii"):
            n = sizes.get(name[:-3])
        if n is not None:
            t["metadata"]["num_examples"] = n
    return doc


# ----------------------------------------------------------------------------- licenses (DPC)

DPC_FILE = "dpc_licenses.csv"
LICENSE_FACTS = "licenses.json"
LICENSE_DESCRIPTION = (
    "License facts per catalog task, generated by tools/build_catalog.py from shared/reference/dpc_licenses.csv: "
    "the Data Provenance Collection's records (snapshot ce6662d) of each task's source dataset. use: commercial / "
    "unspecified / non-commercial / academic-only, DPC's own derivation (unspecified = no license found, not "
    "permissive); attribution / share_alike: null = a license DPC cannot classify; model_generated as DPC marks it. "
    "tasks maps a task to [record, how it was matched]; inversions share their original's record; null = no DPC "
    "entry (use: unknown). Not legal advice. Override per task with license_overrides (catalog.yaml or --extra)."
)
_DPC_FLAGS = {"true": True, "false": False, "unknown": None}


def dpc_licenses(shared: Path) -> tuple[dict[str, dict[str, Any]], dict[str, list[str] | None]]:
    """(records by DPC id, task -> [record id, match rule] or None) from
    reference/dpc_licenses.csv (see its .md); a missing csv gives no facts."""
    path = shared / "reference" / DPC_FILE
    if not path.is_file():
        return {}, {}
    records: dict[str, dict[str, Any]] = {}
    tasks: dict[str, list[str] | None] = {}
    for r in _csv(path):
        if r["match_rule"] == "none":
            tasks[r["task"]] = None
            continue
        rid = r["dpc_dataset_id"]
        d: dict[str, Any] = {"use": r["license_use_class"],
                             "licenses": [x for x in r["licenses"].split(";") if x]}  # fmt: skip
        for key, col in (("attribution", "attribution_required"), ("share_alike", "share_alike"),
                         ("model_generated", "model_generated")):  # fmt: skip
            d[key] = _DPC_FLAGS[r[col]]
        d["url"] = r["dpc_source_url"] or None
        d["collection"] = r["dpc_collection"]
        if records.setdefault(rid, d) != d:
            sys.exit(f"build_catalog: {DPC_FILE} gives two different facts for {rid}")
        tasks[r["task"]] = [rid, r["match_rule"]]
    return records, tasks


def license_facts(shared: Path, docs: list[dict[str, Any]]) -> str | None:
    """collections/licenses.json: one line per record and per task (JSON parses
    far faster than the same facts repeated in every task's YAML)."""
    import json

    records, by_task = dpc_licenses(shared)
    if not records:
        return None
    tasks: dict[str, list[str] | None] = {}
    for doc in docs:
        for t in doc["tasks"]:
            name = t["name"]
            inv = t["metadata"].get("inversion_of")
            tasks[name] = by_task.get(name, by_task.get(inv) if inv else None)
    lines = ["{", f'"description": {json.dumps(LICENSE_DESCRIPTION)},', '"records": {']
    lines += [
        f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}," for k, v in sorted(records.items())
    ]
    lines[-1] = lines[-1].rstrip(",")
    lines += ["},", '"tasks": {']
    lines += [f"{json.dumps(k)}: {json.dumps(v)}," for k, v in tasks.items()]
    lines[-1] = lines[-1].rstrip(",")
    lines += ["}", "}", ""]
    return "\n".join(lines)


def build_all(shared: Path) -> dict[str, str]:
    refs = Refs(shared)
    drafts = load_drafts()
    sizes = published_sizes(shared)
    flan, skipped = build_flan2021(refs, drafts)
    header = (
        FLAN2021_HEADER
        + "#\n# Originals without an inversion, and why:\n"
        + "".join(f"#   {s}\n" for s in skipped)
    )
    docs = {
        "flan2021": add_sizes(flan, sizes),
        "t0sf": add_sizes(build_t0sf(refs), sizes),
        "niv2": add_sizes(build_niv2(refs), sizes),
        "cot": add_sizes(build_cot(refs, drafts), sizes),
        "dialog": add_sizes(build_dialog(refs, drafts), sizes),
    }
    out = {
        "flan2021": dump_doc(header, docs["flan2021"]),
        "t0sf": dump_doc(T0SF_HEADER, docs["t0sf"], one_line_tasks=True),
        "niv2": dump_doc(NIV2_HEADER, docs["niv2"], one_line_tasks=True),
        "cot": dump_doc(COT_HEADER, docs["cot"]),
        "dialog": dump_doc(DIALOG_HEADER, docs["dialog"]),
    }
    lic = license_facts(shared, list(docs.values()))
    if lic is not None:
        out[LICENSE_FACTS] = lic
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--shared",
        type=Path,
        default=DEFAULT_SHARED,
        help="folder holding reference/ and data/ (default: ../shared)",
    )
    ap.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 when a collection file is out of date",
    )
    ap.add_argument(
        "--only",
        nargs="*",
        choices=["flan2021", "t0sf", "niv2", "cot", "dialog"],
        help="write only these collections",
    )
    args = ap.parse_args(argv)
    outputs = build_all(args.shared)
    stale = []
    for name, text in outputs.items():
        if args.only and name not in args.only:
            continue
        path = ROOT / "collections" / (name if "." in name else f"{name}.yaml")
        old = path.read_text(encoding="utf-8") if path.is_file() else None
        if old == text:
            continue
        stale.append(name)
        if not args.check:
            path.write_text(text, encoding="utf-8")
    verb = "out of date" if args.check else "written"
    print(f"{verb}: {', '.join(stale) or 'none'}")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
