"""Schema-faithful synthetic rows for the Flan 2021 and dialog sources (bench/flan2022_replica.py).

Each builder returns the columns of one split of one hub dataset with the
dataset's own feature schema (column names, nesting, ``ClassLabel``/value
types) as the catalog's ``collections/flan2021.yaml`` and ``dialog.yaml``
read it: the columns their ``fields:`` expressions, ``options_field``,
record rules (filter / explode / sample_turn), ``id_field`` and splits use,
plus the other columns the real rows carry. Text lengths follow the real
datasets' typical word counts (log-normal around the mean), labels are in
range, and the rows the record rules drop are there at about the real rate
(snli ``label == -1``, sentiment140's neutral class, gigaword's ``UNK``/``#``,
ARC-Challenge rows without 4 choices, empty aeslc bodies, qrecc turns up to 6,
one-utterance wiki_dialog dialogs), so counting and rendering see what a real
export sees.

>>> g = Gen(0)
>>> cols, feats = build_source("nyu-mll/glue", "mnli", g, 3)
>>> sorted(cols), len(cols["premise"])
(['hypothesis', 'idx', 'label', 'premise'], 3)

Text comes from slices of one long random word stream (fast: ~1 µs per value),
so generating the ~3.7M Flan 2021 rows of the full-size plan takes minutes,
not hours. Nothing here is real text.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

VOCAB = (  # noqa: SIM905 - one readable block of words
    "the a of to and in that is was for on with as by at from his her they this which be have "
    "had not are but one all were when we there been an their has would what will if more can "
    "who about out so up time into only some could them other than then now first also new "
    "after these two may any way years people world city water river school music study group "
    "house market light field game story report paper model data small large north south old "
    "found said made used known called early later during between under while since through "
    "government company family history season team film album war church state county village "
    "population species author league player members system program series member record "
    "president university national international local public second third several many most "
    "children women men night day morning year century area region island road bridge station "
    "museum garden library hospital court army police party election council minister "
    "director singer actor writer painter teacher doctor farmer driver engineer scientist "
    "animal bird tree flower plant stone metal glass paper wood fire wind rain snow sun moon "
    "star sea lake mountain forest desert valley coast border capital province district "
    "built opened closed moved played won lost wrote released began ended grew fell rose "
    "happy sad quick slow bright dark warm cold young ancient modern famous popular local "
    "red blue green white black golden silver heavy quiet loud strong weak rich poor"
).split()


#: Words in each generator's random word stream (tests use fewer: faster start).
STREAM_WORDS = 500_000


class Gen:
    """Seeded synthetic text and numbers (numpy), fast enough for millions of rows."""

    def __init__(self, seed: int, stream_words: int | None = None):
        stream_words = stream_words or STREAM_WORDS
        self.rng = np.random.default_rng(seed)
        v = np.array(VOCAB, dtype=object)
        words = v[self.rng.integers(0, len(v), stream_words)]
        punct = self.rng.random(stream_words)
        words = np.where(punct < 0.05, words + ",", np.where(punct < 0.12, words + ".", words))
        self.big = " ".join(words.tolist())
        lens = np.fromiter((len(w) + 1 for w in words), dtype=np.int64, count=stream_words)
        self.starts = np.concatenate([[0], np.cumsum(lens)])  # word i: big[starts[i]:starts[i+1]-1]
        self.nw = stream_words

    def counts(self, n: int, mean: float, sd: float = 0.45, lo: int = 1, hi: int | None = None):
        k = np.rint(mean * np.exp(self.rng.normal(-sd * sd / 2, sd, n))).astype(np.int64)
        k = np.maximum(k, lo)
        return np.minimum(k, hi if hi is not None else self.nw // 4)

    def text(self, n: int, mean: float, sd: float = 0.45, lo: int = 1, hi: int | None = None) -> list[str]:  # fmt: skip
        """``n`` strings of about ``mean`` words (log-normal word counts)."""
        return self.texts_of(self.counts(n, mean, sd, lo, hi))

    def texts_of(self, k: np.ndarray) -> list[str]:
        s = self.rng.integers(0, self.nw - k)
        a, b = self.starts[s].tolist(), (self.starts[s + k] - 1).tolist()
        big = self.big
        return [big[x:y] for x, y in zip(a, b)]

    def lists(self, n: int, mean_items: float, words: float, lo: int = 1, hi: int | None = None):
        """A ``list<string>`` column: ``n`` lists of about ``mean_items`` strings of ``words`` words."""
        m = self.counts(n, mean_items, 0.35, lo, hi)
        return list_array(m, self.text(int(m.sum()), words))

    def ints(self, n: int, lo: int, hi: int) -> np.ndarray:
        return self.rng.integers(lo, hi, n)

    def mask(self, n: int, p: float) -> np.ndarray:
        return self.rng.random(n) < p

    def ids(self, n: int, prefix: str = "") -> list[str]:
        h = self.rng.integers(0, 2**62, n)
        return [f"{prefix}{x:016x}" for x in h.tolist()]


def list_array(counts: np.ndarray, values: list | pa.Array) -> pa.ListArray:
    off = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    vals = values if isinstance(values, pa.Array) else pa.array(values)
    return pa.ListArray.from_arrays(pa.array(off), vals)


def _ds():
    import datasets

    return datasets


# -- feature helpers (datasets types, imported lazily)


def S():
    return _ds().Value("string")


def I(t="int32"):  # noqa: E743 - a feature type, named like the hub's
    return _ds().Value(t)


def CL(*names):
    return _ds().ClassLabel(names=list(names))


def Seq(f):
    return _ds().Sequence(f)


def L(f):
    return _ds().List(f) if hasattr(_ds(), "List") else _ds().Sequence(f)


Builder = Callable[[Gen, int, str], tuple[dict[str, Any], dict[str, Any]]]
BUILDERS: dict[tuple[str, str | None], Builder] = {}


def source(path: str, *configs: str | None):
    def deco(fn: Builder) -> Builder:
        for c in configs if configs else (None,):
            BUILDERS[(path, c)] = fn
        return fn

    return deco


def nli(
    g: Gen, n: int, p: float, h: float, names: tuple[str, ...], idx: bool = True, neg: float = 0.0
):
    lab = g.ints(n, 0, len(names))
    if neg:
        lab = np.where(g.mask(n, neg), -1, lab)
    cols = {"premise": g.text(n, p), "hypothesis": g.text(n, h), "label": lab}
    feats = {"premise": S(), "hypothesis": S(), "label": CL(*names)}
    if idx:
        cols["idx"], feats["idx"] = np.arange(n), I()
    return cols, feats


@source("aps/super_glue", "rte")
def _rte(g, n, split):
    return nli(g, n, 45, 9, ("entailment", "not_entailment"))


@source("aps/super_glue", "cb")
def _cb(g, n, split):
    return nli(g, n, 60, 8, ("entailment", "contradiction", "neutral"))


@source("nyu-mll/glue", "mnli")
def _mnli(g, n, split):
    return nli(g, n, 22, 11, ("entailment", "neutral", "contradiction"))


@source("stanfordnlp/snli", "plain_text")
def _snli(g, n, split):
    # ~0.14% of SNLI's train rows have no gold label (-1): the catalog's filter drops them
    c, f = nli(g, n, 13, 7, ("entailment", "neutral", "contradiction"), idx=False, neg=0.0014)
    return c, f


@source("facebook/anli", "plain_text")
def _anli(g, n, split):
    c, f = nli(g, n, 55, 10, ("entailment", "neutral", "contradiction"), idx=False)
    c["uid"], f["uid"] = g.ids(n), S()
    c["reason"], f["reason"] = g.text(n, 15), S()
    return c, f


def pair(g, n, a, b, la, lb, names, idx=True):
    cols = {a: g.text(n, la), b: g.text(n, lb), "label": g.ints(n, 0, len(names))}
    feats = {a: S(), b: S(), "label": CL(*names)}
    if idx:
        cols["idx"], feats["idx"] = np.arange(n), I()
    return cols, feats


@source("nyu-mll/glue", "mrpc")
def _mrpc(g, n, split):
    return pair(g, n, "sentence1", "sentence2", 22, 22, ("not_equivalent", "equivalent"))


@source("nyu-mll/glue", "qqp")
def _qqp(g, n, split):
    return pair(g, n, "question1", "question2", 11, 11, ("not_duplicate", "duplicate"))


@source("nyu-mll/glue", "qnli")
def _qnli(g, n, split):
    return pair(g, n, "question", "sentence", 10, 30, ("entailment", "not_entailment"))


@source("nyu-mll/glue", "wnli")
def _wnli(g, n, split):
    return pair(g, n, "sentence1", "sentence2", 20, 10, ("not_entailment", "entailment"))


@source("google-research-datasets/paws", "labeled_final")
def _paws(g, n, split):
    c, f = pair(g, n, "sentence1", "sentence2", 21, 21, ("0", "1"), idx=False)
    c["id"], f["id"] = np.arange(1, n + 1), I()
    return c, f


@source("nyu-mll/glue", "stsb")
def _stsb(g, n, split):
    c, f = pair(g, n, "sentence1", "sentence2", 10, 10, ("x",))
    c["label"], f["label"] = np.round(g.rng.random(n) * 5, 2).astype(np.float32), I("float32")
    return c, f


def single(g, n, col, words, names, idx=True):
    cols = {col: g.text(n, words), "label": g.ints(n, 0, len(names))}
    feats = {col: S(), "label": CL(*names)}
    if idx:
        cols["idx"], feats["idx"] = np.arange(n), I()
    return cols, feats


@source("nyu-mll/glue", "cola")
def _cola(g, n, split):
    return single(g, n, "sentence", 9, ("unacceptable", "acceptable"))


@source("nyu-mll/glue", "sst2")
def _sst2(g, n, split):
    return single(g, n, "sentence", 10, ("negative", "positive"))


@source("stanfordnlp/imdb", "plain_text")
def _imdb(g, n, split):
    c, f = single(g, n, "text", 230, ("neg", "pos"), idx=False)
    br = g.mask(n, 0.6)  # most reviews hold HTML line breaks (the field expression replaces them)
    c["text"] = [t.replace(". ", ".<br /><br />", 1) if b else t for t, b in zip(c["text"], br)]
    return c, f


@source("fancyzhx/yelp_polarity", "plain_text")
def _yelp(g, n, split):
    return single(g, n, "text", 130, ("1", "2"), idx=False)


@source("fancyzhx/ag_news", "default")
def _ag(g, n, split):
    return single(g, n, "text", 38, ("World", "Sports", "Business", "Sci/Tech"), idx=False)


@source("google/boolq", "default")
def _boolq(g, n, split):
    return (
        {"question": g.text(n, 9), "answer": g.mask(n, 0.62), "passage": g.text(n, 110)},
        {"question": S(), "answer": I("bool"), "passage": S()},
    )


@source("aps/super_glue", "wsc.fixed")
def _wsc(g, n, split):
    text = g.text(n, 20, lo=6)
    c = {
        "text": text,
        "span1_index": g.ints(n, 0, 3),
        "span2_index": g.ints(n, 3, 6),
        "span1_text": [t.split(" ")[0] for t in text],
        "span2_text": [t.split(" ")[3] for t in text],
        "idx": np.arange(n),
        "label": g.ints(n, 0, 2),
    }
    f = {"text": S(), "span1_index": I(), "span2_index": I(), "span1_text": S(),
         "span2_text": S(), "idx": I(), "label": CL("False", "True")}  # fmt: skip
    return c, f


@source("aps/super_glue", "wic")
def _wic(g, n, split):
    c = {"word": g.text(n, 1, 0.01), "sentence1": g.text(n, 10), "sentence2": g.text(n, 10),
         "start1": g.ints(n, 0, 20), "start2": g.ints(n, 0, 20), "end1": g.ints(n, 20, 30),
         "end2": g.ints(n, 20, 30), "idx": np.arange(n), "label": g.ints(n, 0, 2)}  # fmt: skip
    f = {"word": S(), "sentence1": S(), "sentence2": S(), "start1": I(), "start2": I(),
         "end1": I(), "end2": I(), "idx": I(), "label": CL("False", "True")}  # fmt: skip
    return c, f


@source("aps/super_glue", "copa")
def _copa(g, n, split):
    c = {"premise": g.text(n, 7), "choice1": g.text(n, 6), "choice2": g.text(n, 6),
         "question": np.where(g.mask(n, 0.5), "cause", "effect").tolist(),
         "idx": np.arange(n), "label": g.ints(n, 0, 2)}  # fmt: skip
    f = {"premise": S(), "choice1": S(), "choice2": S(), "question": S(), "idx": I(),
         "label": CL("choice1", "choice2")}  # fmt: skip
    return c, f


@source("aps/super_glue", "multirc")
def _multirc(g, n, split):
    # several answer candidates per (paragraph, question), as in MultiRC
    para = g.text(n, 260)
    c = {"paragraph": para, "question": g.text(n, 10), "answer": g.text(n, 5),
         "idx": pa.array([{"paragraph": i // 40, "question": i // 4, "answer": i} for i in range(n)]),
         "label": g.ints(n, 0, 2)}  # fmt: skip
    f = {"paragraph": S(), "question": S(), "answer": S(),
         "idx": {"paragraph": I(), "question": I(), "answer": I()}, "label": CL("False", "True")}  # fmt: skip
    return c, f


@source("aps/super_glue", "record")
def _record(g, n, split):
    passage = g.text(n, 180)
    passage = [p + "\n@highlight\n" + h for p, h in zip(passage, g.text(n, 12))]
    k = g.counts(n, 8, 0.4, lo=2, hi=30)
    ents = g.text(int(k.sum()), 2, 0.3)
    ent_arr = list_array(k, ents)
    first = np.concatenate([[0], np.cumsum(k)[:-1]])
    pick = first + g.rng.integers(0, k)
    answers = list_array(np.ones(n, dtype=np.int64), [ents[i] for i in pick.tolist()])
    query = [q + " @placeholder " + r for q, r in zip(g.text(n, 12), g.text(n, 10))]
    spans = list_array(k, pa.array([{"text": e, "start": 0, "end": len(e)} for e in ents]))
    c = {"passage": passage, "query": query, "entities": ent_arr, "entity_spans": _lists_to_struct(spans),
         "answers": answers, "idx": pa.array([{"passage": i // 3, "query": i} for i in range(n)])}  # fmt: skip
    f = {"passage": S(), "query": S(), "entities": Seq(S()),
         "entity_spans": Seq({"text": S(), "start": I(), "end": I()}), "answers": Seq(S()),
         "idx": {"passage": I(), "query": I()}}  # fmt: skip
    return c, f


def _lists_to_struct(la: pa.ListArray) -> pa.StructArray:
    """list<struct<a, b>> -> struct<a: list, b: list> (how ``datasets`` stores a Sequence of dicts)."""
    st = la.values
    off = la.offsets
    return pa.StructArray.from_arrays(
        [pa.ListArray.from_arrays(off, st.field(i)) for i in range(st.type.num_fields)],
        names=[st.type.field(i).name for i in range(st.type.num_fields)],
    )


@source("google-research-datasets/nq_open", "nq_open")
def _nq(g, n, split):
    k = g.counts(n, 1.3, 0.3, lo=1, hi=5)
    return (
        {"question": g.text(n, 9), "answer": list_array(k, g.text(int(k.sum()), 2))},
        {"question": S(), "answer": Seq(S())},
    )


@source("mandarjoshi/trivia_qa", "unfiltered.nocontext")
def _trivia(g, n, split):
    val = g.text(n, 2)
    k = g.counts(n, 4, 0.4, lo=1, hi=20)
    aliases = list_array(k, g.text(int(k.sum()), 2))
    low = pa.array([v.lower() for v in val])
    ans = pa.StructArray.from_arrays(
        [aliases, aliases, pa.array(val), low, low, pa.array(["WikipediaEntity"] * n), pa.array(val)],
        names=["aliases", "normalized_aliases", "matched_wiki_entity_name",
               "normalized_matched_wiki_entity_name", "normalized_value", "type", "value"],
    )  # fmt: skip
    empty = list_array(np.zeros(n, dtype=np.int64), pa.array([], pa.string()))
    c = {"question": g.text(n, 14), "question_id": g.ids(n, "tc_"), "question_source": ["http://www.triviaquiz.example/"] * n,
         "entity_pages": pa.StructArray.from_arrays([empty, empty, empty, empty], names=["doc_source", "filename", "title", "wiki_context"]),
         "search_results": pa.StructArray.from_arrays([empty, empty, empty, empty], names=["description", "filename", "title", "url"]),
         "answer": ans}  # fmt: skip
    f = {"question": S(), "question_id": S(), "question_source": S(),
         "entity_pages": Seq({"doc_source": S(), "filename": S(), "title": S(), "wiki_context": S()}),
         "search_results": Seq({"description": S(), "filename": S(), "title": S(), "url": S()}),
         "answer": {"aliases": Seq(S()), "normalized_aliases": Seq(S()), "matched_wiki_entity_name": S(),
                    "normalized_matched_wiki_entity_name": S(), "type": S(), "value": S(), "normalized_value": S()}}  # fmt: skip
    return c, f


def _choices(g: Gen, n: int, words: float, k: np.ndarray, numeric: float = 0.0):
    """ARC/OpenBookQA ``choices: {text: [...], label: [...]}`` and the answer key."""
    texts = g.text(int(k.sum()), words)
    num = g.mask(n, numeric)
    labels = [
        str(j + 1) if nm else "ABCDE"[j]
        for i, nm in zip(k.tolist(), num.tolist())
        for j in range(i)
    ]
    key = [
        str(a + 1) if nm else "ABCDE"[a]
        for a, nm in zip((g.rng.integers(0, k)).tolist(), num.tolist())
    ]
    ch = pa.StructArray.from_arrays(
        [list_array(k, texts), list_array(k, labels)], names=["text", "label"]
    )
    return ch, key


@source("allenai/ai2_arc", "ARC-Challenge", "ARC-Easy")
def _arc(g, n, split):
    # ~1% of ARC questions have 3 or 5 choices (ARC-Challenge's filter keeps 4), a few use 1-4 keys
    k = np.where(g.mask(n, 0.01), np.where(g.mask(n, 0.5), 3, 5), 4)
    ch, key = _choices(g, n, 4, k, numeric=0.02)
    c = {"id": g.ids(n, "Mercury_"), "question": g.text(n, 20), "choices": ch, "answerKey": key}
    f = {"id": S(), "question": S(), "choices": Seq({"text": S(), "label": S()}), "answerKey": S()}
    return c, f


@source("allenai/openbookqa", "additional")
def _obqa(g, n, split):
    ch, key = _choices(g, n, 3, np.full(n, 4))
    c = {"id": g.ids(n), "question_stem": g.text(n, 11), "choices": ch, "answerKey": key,
         "fact1": g.text(n, 10), "humanScore": g.rng.random(n).astype(np.float32),
         "clarity": (1 + g.rng.random(n)).astype(np.float32), "turkIdAnonymized": g.ids(n)}  # fmt: skip
    f = {"id": S(), "question_stem": S(), "choices": Seq({"text": S(), "label": S()}), "answerKey": S(),
         "fact1": S(), "humanScore": I("float32"), "clarity": I("float32"), "turkIdAnonymized": S()}  # fmt: skip
    return c, f


@source("deepmind/math_dataset", "algebra__linear_1d")
@source("parquet", None)  # the hub's Parquet files by hf:// URL (data_files)
def _math(g, n, split):
    # the hub's Parquet conversion keeps Python's bytes repr: "b'Solve ...\\n'"
    a, x, b = g.ints(n, 2, 60), g.ints(n, -20, 20), g.ints(n, -200, 200)
    q = [
        f"b'Solve {ai}*x + {bi} = {ai * xi + bi} for x.\\n'"
        for ai, xi, bi in zip(a.tolist(), x.tolist(), b.tolist())
    ]
    return {"question": q, "answer": [f"b'{xi}\\n'" for xi in x.tolist()]}, {
        "question": S(),
        "answer": S(),
    }


@source("Yale-LILY/aeslc", "default")
def _aeslc(g, n, split):
    body = g.text(n, 75)
    body = np.where(g.mask(n, 0.005), "  \n", np.array(body, dtype=object)).tolist()  # empty bodies
    return {"email_body": body, "subject_line": g.text(n, 5)}, {
        "email_body": S(),
        "subject_line": S(),
    }


@source("abisee/cnn_dailymail", "3.0.0")
def _cnn(g, n, split):
    return (
        {"article": g.text(n, 690), "highlights": g.text(n, 50), "id": g.ids(n)},
        {"article": S(), "highlights": S(), "id": S()},
    )


@source("Harvard/gigaword", "default")
def _gigaword(g, n, split):
    # digits are '#' and rare words 'UNK' in Gigaword: ~45% of the pairs hold one (the filter drops them)
    doc, summ = g.text(n, 31), g.text(n, 8)
    bad = g.mask(n, 0.45)
    which = g.mask(n, 0.5)
    doc = [
        d + (" ## UNK" if w else " ##") if b else d
        for d, b, w in zip(doc, bad.tolist(), which.tolist())
    ]
    return {"document": doc, "summary": summ}, {"document": S(), "summary": S()}


@source("alexfabbri/multi_news", "default")
def _multi_news(g, n, split):
    k = g.counts(n, 2.7, 0.3, lo=2, hi=10)
    parts = g.text(int(k.sum()), 780)
    docs, i = [], 0
    for m in k.tolist():
        docs.append(" ||||| ".join(parts[i : i + m]))
        i += m
    return {"document": docs, "summary": g.text(n, 260)}, {"document": S(), "summary": S()}


@source("lil-lab/newsroom", "default")
def _newsroom(g, n, split):
    c = {"text": g.text(n, 660), "summary": g.text(n, 27), "title": g.text(n, 9), "url": g.ids(n, "http://news.example/"),
         "date": ["20150101"] * n, "density_bin": ["extractive"] * n, "coverage_bin": ["high"] * n,
         "compression_bin": ["low"] * n, "density": g.rng.random(n).astype(np.float32),
         "coverage": g.rng.random(n).astype(np.float32), "compression": (g.rng.random(n) * 40).astype(np.float32)}  # fmt: skip
    f = {
        k: S()
        for k in (
            "text",
            "summary",
            "title",
            "url",
            "date",
            "density_bin",
            "coverage_bin",
            "compression_bin",
        )
    }
    f.update({k: I("float32") for k in ("density", "coverage", "compression")})
    return c, f


@source("stanfordnlp/coqa", "default")
def _coqa(g, n, split):
    k = g.counts(n, 15, 0.3, lo=3, hi=40)
    tot = int(k.sum())
    ans = pa.StructArray.from_arrays(
        [list_array(k, g.text(tot, 3)), list_array(k, g.ints(tot, 0, 900)), list_array(k, g.ints(tot, 900, 1500))],
        names=["input_text", "answer_start", "answer_end"],
    )  # fmt: skip
    c = {
        "source": ["wikipedia"] * n,
        "story": g.text(n, 270),
        "questions": list_array(k, g.text(tot, 6)),
        "answers": ans,
    }
    f = {"source": S(), "story": S(), "questions": Seq(S()),
         "answers": Seq({"input_text": S(), "answer_start": I(), "answer_end": I()})}  # fmt: skip
    return c, f


@source("knkarthick/samsum", None)
def _samsum(g, n, split):
    k = g.counts(n, 9, 0.4, lo=2, hi=30)
    lines = g.text(int(k.sum()), 10)
    names = np.array(["Anna", "Tom", "Lee", "Maria", "Sam"], dtype=object)
    who = names[g.rng.integers(0, 5, len(lines))]
    dia, i = [], 0
    for m in k.tolist():
        dia.append("\r\n".join(f"{w}: {t}" for w, t in zip(who[i : i + m], lines[i : i + m])))
        i += m
    return (
        {"id": g.ids(n), "dialogue": dia, "summary": g.text(n, 20)},
        {"id": S(), "dialogue": S(), "summary": S()},
    )


@source("EdinburghNLP/xsum", "default")
def _xsum(g, n, split):
    return (
        {"document": g.text(n, 430), "summary": g.text(n, 23), "id": g.ids(n)},
        {"document": S(), "summary": S(), "id": S()},
    )


def _squad(g: Gen, n: int, unanswerable: float):
    k = np.where(g.mask(n, unanswerable), 0, 1)
    ans = pa.StructArray.from_arrays([list_array(k, g.text(int(k.sum()), 3)), list_array(k, g.ints(int(k.sum()), 0, 600).astype(np.int32))],
                                     names=["text", "answer_start"])  # fmt: skip
    c = {
        "id": g.ids(n),
        "title": g.text(n, 2),
        "context": g.text(n, 120),
        "question": g.text(n, 10),
        "answers": ans,
    }
    f = {
        "id": S(),
        "title": S(),
        "context": S(),
        "question": S(),
        "answers": Seq({"text": S(), "answer_start": I()}),
    }
    return c, f


@source("rajpurkar/squad", "plain_text")
def _squad1(g, n, split):
    return _squad(g, n, 0.0)


@source("rajpurkar/squad_v2", "squad_v2")
def _squad2(g, n, split):
    return _squad(g, n, 0.334)


@source("ucinlp/drop", "default")
def _drop(g, n, split):
    k = g.counts(n, 1.2, 0.3, lo=1, hi=4)
    spans = pa.StructArray.from_arrays([list_array(k, g.text(int(k.sum()), 2)), list_array(k, ["span"] * int(k.sum()))],
                                       names=["spans", "types"])  # fmt: skip
    c = {"section_id": g.ids(n, "nfl_"), "query_id": g.ids(n), "passage": g.text(n, 210), "question": g.text(n, 11),
         "answers_spans": spans}  # fmt: skip
    f = {
        "section_id": S(),
        "query_id": S(),
        "passage": S(),
        "question": S(),
        "answers_spans": {"spans": Seq(S()), "types": Seq(S())},
    }
    return c, f


@source("allenai/quac", "plain_text")
def _quac(g, n, split):
    k = g.counts(n, 7.2, 0.25, lo=1, hi=12)
    tot = int(k.sum())
    ctx = [t + " CANNOTANSWER" for t in g.text(n, 400)]
    texts = g.text(tot, 15)
    cannot = g.mask(tot, 0.2)
    texts = [("CANNOTANSWER" if c else t) for t, c in zip(texts, cannot.tolist())]
    starts = g.ints(tot, 0, 2000).astype(np.int32)
    orig = pa.StructArray.from_arrays(
        [list_array(k, texts), list_array(k, starts)], names=["texts", "answer_starts"]
    )
    nested = pa.StructArray.from_arrays(
        [list_array(k, list_array(np.ones(tot, dtype=np.int64), texts)), list_array(k, list_array(np.ones(tot, dtype=np.int64), starts))],
        names=["texts", "answer_starts"],
    )  # fmt: skip
    c = {"dialogue_id": g.ids(n, "C_"), "wikipedia_page_title": g.text(n, 2), "background": g.text(n, 60),
         "section_title": g.text(n, 2), "context": ctx, "turn_ids": list_array(k, [f"q{i}" for i in range(tot)]),
         "questions": list_array(k, g.text(tot, 7)), "followups": list_array(k, g.ints(tot, 0, 3).astype(np.int32)),
         "yesnos": list_array(k, g.ints(tot, 0, 3).astype(np.int32)), "answers": nested, "orig_answers": orig}  # fmt: skip
    f = {"dialogue_id": S(), "wikipedia_page_title": S(), "background": S(), "section_title": S(), "context": S(),
         "turn_ids": Seq(S()), "questions": Seq(S()), "followups": Seq(CL("y", "n", "m")), "yesnos": Seq(CL("y", "n", "x")),
         "answers": {"texts": Seq(Seq(S())), "answer_starts": Seq(Seq(I()))},
         "orig_answers": {"texts": Seq(S()), "answer_starts": Seq(I())}}  # fmt: skip
    return c, f


@source("csv", None)
def _sentiment140(g, n, split):
    # the training CSV's polarity is 0 or 4; the test file also has neutral (2) rows, which the filter drops
    pol = np.where(g.mask(n, 0.5), 0, 4)
    pol = np.where(g.mask(n, 0.01 if split == "train" else 0.3), 2, pol)
    c = {"sentiment": pol, "id": g.ints(n, 1_400_000_000, 2_300_000_000), "date": ["Mon Apr 06 22:19:45 PDT 2009"] * n,
         "query": ["NO_QUERY"] * n, "user": g.ids(n, "u"), "text": g.text(n, 13)}  # fmt: skip
    f = {
        "sentiment": I("int64"),
        "id": I("int64"),
        "date": S(),
        "query": S(),
        "user": S(),
        "text": S(),
    }
    return c, f


@source("LSDSem/story_cloze", "2016")
def _story_cloze(g, n, split):
    c = {"story_id": g.ids(n)}
    f = {"story_id": S()}
    for i in range(1, 5):
        c[f"input_sentence_{i}"], f[f"input_sentence_{i}"] = g.text(n, 9), S()
    c.update(
        sentence_quiz1=g.text(n, 8),
        sentence_quiz2=g.text(n, 8),
        answer_right_ending=g.ints(n, 1, 3),
    )
    f.update(sentence_quiz1=S(), sentence_quiz2=S(), answer_right_ending=I())
    return c, f


@source("community-datasets/definite_pronoun_resolution", "plain_text")
def _dpr(g, n, split):
    k = np.full(n, 2)
    c = {
        "sentence": g.text(n, 15),
        "pronoun": ["he"] * n,
        "candidates": list_array(k, g.text(2 * n, 2)),
        "label": g.ints(n, 0, 2),
    }
    f = {"sentence": S(), "pronoun": S(), "candidates": Seq(S()), "label": CL("0", "1")}
    return c, f


@source("allenai/winogrande", "winogrande_xl")
def _winogrande(g, n, split):
    s = [a + " _ " + b for a, b in zip(g.text(n, 11), g.text(n, 9))]
    c = {
        "sentence": s,
        "option1": g.text(n, 1, 0.1),
        "option2": g.text(n, 1, 0.1),
        "answer": np.where(g.mask(n, 0.5), "1", "2").tolist(),
    }
    return c, {"sentence": S(), "option1": S(), "option2": S(), "answer": S()}


@source("allenai/cosmos_qa", "default")
def _cosmos(g, n, split):
    c = {"id": g.ids(n), "context": g.text(n, 70), "question": g.text(n, 10)}
    for i in range(4):
        c[f"answer{i}"] = g.text(n, 8)
    c["label"] = g.ints(n, 0, 4)
    f = {k: S() for k in c}
    f["label"] = I()
    return c, f


@source("ybisk/piqa", "plain_text")
def _piqa(g, n, split):
    c = {
        "goal": g.text(n, 7),
        "sol1": g.text(n, 20),
        "sol2": g.text(n, 20),
        "label": g.ints(n, 0, 2),
    }
    return c, {"goal": S(), "sol1": S(), "sol2": S(), "label": CL("0", "1")}


@source("Rowan/hellaswag", "default")
def _hellaswag(g, n, split):
    a, b = g.text(n, 25), g.text(n, 12)
    c = {"ind": np.arange(n), "activity_label": g.text(n, 2), "ctx_a": a, "ctx_b": b,
         "ctx": [x + " " + y for x, y in zip(a, b)], "endings": list_array(np.full(n, 4), g.text(4 * n, 20)),
         "source_id": g.ids(n, "activitynet~"), "split": [split] * n, "split_type": ["indomain"] * n,
         "label": g.ints(n, 0, 4).astype(str).tolist()}  # fmt: skip
    f = {"ind": I(), "activity_label": S(), "ctx_a": S(), "ctx_b": S(), "ctx": S(), "endings": Seq(S()),
         "source_id": S(), "split": S(), "split_type": S(), "label": S()}  # fmt: skip
    return c, f


@source("cimec/lambada", "plain_text")
def _lambada(g, n, split):
    return {"text": g.text(n, 80, lo=5), "domain": g.text(n, 1, 0.1)}, {"text": S(), "domain": S()}


@source("CogComp/trec", "default")
def _trec(g, n, split):
    c = {"text": g.text(n, 10), "coarse_label": g.ints(n, 0, 6), "fine_label": g.ints(n, 0, 50)}
    return c, {
        "text": S(),
        "coarse_label": CL("ABBR", "ENTY", "DESC", "HUM", "LOC", "NUM"),
        "fine_label": I(),
    }


def _translation(langs: tuple[str, str], words: float = 25):
    def build(g, n, split):
        a, b = g.text(n, words), g.text(n, words)
        tr = pa.StructArray.from_arrays([pa.array(a), pa.array(b)], names=list(langs))
        return {"translation": tr}, {"translation": _ds().Translation(languages=sorted(langs))}

    return build


for _cfg, _langs in {"fr-en": ("en", "fr"), "de-en": ("de", "en"), "tr-en": ("en", "tr"), "cs-en": ("cs", "en"),
                     "fi-en": ("en", "fi"), "ro-en": ("en", "ro"), "ru-en": ("en", "ru")}.items():  # fmt: skip
    BUILDERS[("wmt/wmt16", _cfg)] = _translation(_langs)
BUILDERS[("wmt/wmt14", "fr-en")] = _translation(("en", "fr"))
BUILDERS[("ParaCrawl/para_crawl", "enes")] = _translation(("en", "es"), 20)
BUILDERS[("ParaCrawl/para_crawl", "enda")] = _translation(("da", "en"), 20)


def _gem(g: Gen, n: int, split: str, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    k = g.counts(n, 1.5, 0.3, lo=1, hi=4)
    c = {"gem_id": [f"{name}-{split}-{i}" for i in range(n)], "gem_parent_id": [f"{name}-{split}-{i}" for i in range(n)],
         "target": g.text(n, 20), "references": list_array(k, g.text(int(k.sum()), 20))}  # fmt: skip
    f = {"gem_id": S(), "gem_parent_id": S(), "target": S(), "references": Seq(S())}
    return c, f


@source("GEM/gem", "common_gen")
@source("GEM/common_gen", None)
def _common_gen(g, n, split):
    c, f = _gem(g, n, split, "common_gen")
    k = g.counts(n, 4, 0.2, lo=3, hi=5)
    c.update(
        concept_set_id=g.ints(n, 0, 30000).astype(np.int32),
        concepts=list_array(k, g.text(int(k.sum()), 1, 0.01)),
    )
    c["target"] = g.text(n, 11)
    f.update(concept_set_id=I(), concepts=Seq(S()))
    return c, f


@source("GEM/gem", "dart")
@source("GEM/dart", None)
def _dart(g, n, split):
    c, f = _gem(g, n, split, "dart")
    k = g.counts(n, 3, 0.4, lo=1, hi=8)
    tot = int(k.sum())
    triples = list_array(np.full(tot, 3), g.text(3 * tot, 2))
    c.update(dart_id=np.arange(n).astype(np.int32), tripleset=list_array(k, triples), subtree_was_extended=g.mask(n, 0.3),
             target_sources=list_array(np.ones(n, dtype=np.int64), ["WikiTableQuestions_mturk"] * n))  # fmt: skip
    f.update(
        dart_id=I(),
        tripleset=Seq(Seq(S())),
        subtree_was_extended=I("bool"),
        target_sources=Seq(S()),
    )
    return c, f


@source("GEM/gem", "e2e_nlg")
def _e2e(g, n, split):
    c, f = _gem(g, n, split, "e2e_nlg")
    k = g.counts(n, 5.5, 0.3, lo=3, hi=8)
    vals = g.text(int(k.sum()), 1.5)
    keys = np.array(
        [
            "name",
            "eatType",
            "food",
            "priceRange",
            "customer rating",
            "area",
            "familyFriendly",
            "near",
        ],
        dtype=object,
    )
    mr, i = [], 0
    for m in k.tolist():
        mr.append(", ".join(f"{keys[j]}[{vals[i + j]}]" for j in range(m)))
        i += m
    c["meaning_representation"], f["meaning_representation"] = mr, S()
    return c, f


@source("GEM/gem", "web_nlg_en")
def _webnlg(g, n, split):
    c, f = _gem(g, n, split, "web_nlg_en")
    k = g.counts(n, 3, 0.4, lo=1, hi=7)
    tot = int(k.sum())
    a, r, b = g.text(tot, 2), g.text(tot, 1, 0.1), g.text(tot, 2)
    c.update(input=list_array(k, [f"{x} | {y} | {z}" for x, y, z in zip(a, r, b)]), category=["Building"] * n,
             webnlg_id=[f"Id{i}" for i in range(n)])  # fmt: skip
    f.update(input=Seq(S()), category=S(), webnlg_id=S())
    return c, f


@source("GEM/gem", "wiki_lingua_english_en")
def _wikilingua(g, n, split):
    c, f = _gem(g, n, split, "wiki_lingua_english_en")
    c.update(source_language=["en"] * n, target_language=["en"] * n, source=g.text(n, 400))
    c["target"] = g.text(n, 40)
    f.update(source_language=S(), target_language=S(), source=S())
    return c, f


# -- dialog


@source("svakulenk0/qrecc", None)
def _qrecc(g, n, split):
    # conversations of ~10 turns; Context holds the earlier questions and answers (2 per turn)
    turns = g.counts(max(1, n // 9), 9.5, 0.35, lo=1, hi=20)
    turn_no = np.concatenate([np.arange(1, t + 1) for t in turns.tolist()])[:n]
    if len(turn_no) < n:
        turn_no = np.concatenate([turn_no, np.arange(1, n - len(turn_no) + 1)])
    conv = np.cumsum(turn_no == 1)
    q, a = g.text(n, 8), g.text(n, 25)
    ctx_len = 2 * (turn_no - 1)
    ctx_vals: list[str] = []
    for i, t in enumerate(turn_no.tolist()):
        s = i - (t - 1)
        for j in range(s, i):
            ctx_vals += [q[j], a[j]]
    c = {"Context": list_array(ctx_len, pa.array(ctx_vals, pa.string())), "Question": q, "Rewrite": q, "Answer": a,
         "Answer_URL": g.ids(n, "https://en.wikipedia.org/wiki/"), "Conversation_no": conv.astype(np.int64),
         "Turn_no": turn_no.astype(np.int64), "Conversation_source": np.where(g.mask(n, 0.5), "quac", "nq").tolist()}  # fmt: skip
    f = {"Context": Seq(S()), "Question": S(), "Rewrite": S(), "Answer": S(), "Answer_URL": S(),
         "Conversation_no": I("int64"), "Turn_no": I("int64"), "Conversation_source": S()}  # fmt: skip
    return c, f


@source("djaym7/wiki_dialog", "OQ")
def _wiki_dialog(g, n, split):
    # reader question / writer sentence alternate; ~0.5% of dialogs have one utterance (no odd turn to sample)
    k = g.counts(n, 8.5, 0.3, lo=2, hi=20)
    k = np.where(g.mask(n, 0.005), 1, k)
    tot = int(k.sum())
    ns = g.counts(n, 7, 0.3, lo=2, hi=20)
    author = np.concatenate([np.arange(m) % 2 for m in k.tolist()]).astype(np.int32)
    c = {"pid": g.ids(n, "pid-"), "title": g.text(n, 3), "passage": g.text(n, 150),
         "sentences": list_array(ns, g.text(int(ns.sum()), 21)), "utterances": list_array(k, g.text(tot, 18)),
         "author_num": list_array(k, author)}  # fmt: skip
    f = {
        "pid": S(),
        "title": S(),
        "passage": S(),
        "sentences": Seq(S()),
        "utterances": Seq(S()),
        "author_num": Seq(I()),
    }
    return c, f


# -- raw release files (catalog kind ``raw``): the files the original loaders read


def _rows_of(cols: dict[str, Any]) -> list[dict[str, Any]]:
    return pa.table(
        {
            k: v if isinstance(v, pa.Array | pa.ChunkedArray) else pa.array(v)
            for k, v in cols.items()
        }
    ).to_pylist()


def raw_rows(path: str, member: str, g: Gen, n: int, split: str) -> list[dict[str, Any]]:
    """Records of a ``raw`` source as its release file holds them (before the
    reader's ``kv_fields``/``replace``/``types`` options)."""
    if path == "gigaword":
        cols, _ = _gigaword(g, n, split)
        cols["document"] = [d.replace("UNK", "<unk>") for d in cols["document"]]
        return _rows_of(cols)
    if path == "multi_news":  # src.cleaned / tgt: one document a line, NEWLINE_CHAR for newlines
        cols, _ = _multi_news(g, n, split)
        cols["document"] = [
            d.replace(". ", ". NEWLINE_CHAR NEWLINE_CHAR ", 1) for d in cols["document"]
        ]
        return _rows_of(cols)
    if path == "newsroom":
        return _rows_of(_newsroom(g, n, split)[0])
    if path == "story_cloze":
        return _rows_of(_story_cloze(g, n, split)[0])
    if path.startswith("para_crawl_en"):
        lang = path[-2:]
        return _rows_of(_translation(("en", lang), 20)(g, n, split)[0])
    if path == "wiki_dialog":
        return _rows_of(_wiki_dialog(g, n, split)[0])
    if path == "unified_qa_science_inst":
        return jsonl_rows(path, g, n)
    if path == "opinion_abstracts":
        which = (
            "opinion_abstracts_idebate"
            if "idebate" in member
            else "opinion_abstracts_rotten_tomatoes"
        )
        kv = "_argument_sentences" if "idebate" in member else "_critics"
        rows = jsonl_rows(which, g, n)
        for (
            r
        ) in rows:  # the release file holds {name: text}; the reader's kv_fields makes {key, value}
            r[kv] = dict(zip(r[kv]["key"], r[kv]["value"]))
        return rows
    raise KeyError(f"no replica schema for raw source {path!r}")


def _get(rec: dict[str, Any], col: str) -> Any:
    for part in col.split("."):
        rec = rec[part]
    return rec


def raw_files(spec, split_rows: dict[str, int], seed: int) -> dict[str, bytes]:
    """File name -> bytes of one ``raw`` source, ``split_rows`` records per native split."""
    import csv
    import gzip
    import io

    from flan_data.sources.raw import expand_name
    from flan_data.specs import thaw

    opts = thaw(spec.options)
    fmt, cols = opts.get("format", "jsonl"), opts.get("columns") or []
    g = Gen(seed)
    out: dict[str, bytes] = {}
    for split, names in opts["files"].items():
        names = names if isinstance(names, list) else [names]
        rows = raw_rows(spec.path, names[0], g, split_rows.get(split, 0), split)
        if fmt == "line_pairs":
            for name, c in zip(names, cols):
                out[name] = "".join(_get(r, c) + "\n" for r in rows).encode()
            continue
        files = [x for nm in names for x in expand_name(nm)]
        per = -(-len(rows) // len(files)) if rows else 0
        for k, name in enumerate(files):
            part = rows[k * per : (k + 1) * per]
            if fmt == "jsonl":
                text = "".join(json.dumps(r) + "\n" for r in part)
            elif fmt == "json_list":
                text = json.dumps(part)
            elif fmt == "tabs":
                text = "".join("\t".join(_get(r, c) for c in cols) + "\n" for r in part)
            else:  # tsv / csv (csv with a header row)
                buf = io.StringIO()
                w = csv.writer(buf, delimiter="\t" if fmt == "tsv" else ",", lineterminator="\n")
                if fmt == "csv":
                    w.writerow([c.replace("_", " ").title().replace(" ", "") for c in cols])
                for r in part:
                    w.writerow([_get(r, c) for c in cols])
                text = buf.getvalue()
            data = text.encode()
            out[name] = gzip.compress(data, compresslevel=1) if name.endswith(".gz") else data
    return out


def write_raw(folder: Path, specs: list, split_rows: dict[str, int], seed: int) -> None:
    """Write the release files of the ``raw`` sources ``specs`` (one path, maybe
    several file sets) into ``folder``, inside their ``archive`` when they have one."""
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {}
    for i, spec in enumerate(specs):
        files.update(raw_files(spec, split_rows, seed + i))
    arch = specs[0].options.get("archive")
    if arch:
        with zipfile.ZipFile(folder / arch, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            for name, data in files.items():
                zf.writestr(name, data)
        return
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


# -- JSONL sources (FLAN's raw files)


def jsonl_rows(name: str, g: Gen, n: int) -> list[dict[str, Any]]:
    """Rows of the catalog's ``jsonl`` sources, with the TFDS field layout the catalog reads."""
    if name == "opinion_abstracts_rotten_tomatoes":
        k = g.counts(n, 30, 0.4, lo=1, hi=200)
        crit, i, rows = g.text(int(k.sum()), 20), 0, []
        for j, (m, cons) in enumerate(zip(k.tolist(), g.text(n, 20))):
            rows.append({"_movie_name": f"movie_{j}", "_movie_id": f"m/{j}", "_critic_consensus": cons,
                         "_critics": {"key": [f"c{x}" for x in range(m)], "value": crit[i : i + m]}})  # fmt: skip
            i += m
        return rows
    if name == "opinion_abstracts_idebate":
        k = g.counts(n, 10, 0.4, lo=1, hi=60)
        sent, i, rows = g.text(int(k.sum()), 25), 0, []
        for j, (m, claim) in enumerate(zip(k.tolist(), g.text(n, 10))):
            rows.append({"_debate_name": f"debate {j}", "_debate_id": f"d{j}", "_claim": claim, "_claim_id": f"c{j}",
                         "_argument_sentences": {"key": [f"s{x}" for x in range(m)], "value": sent[i : i + m]}})  # fmt: skip
            i += m
        return rows
    if name == "unified_qa_science_inst":
        return [{"input": q, "output": a} for q, a in zip(g.text(n, 40), g.text(n, 3))]
    raise KeyError(name)


def survival(task) -> float:
    """Expected records per native row after ``task``'s record rules (what to
    generate: rows needed / survival)."""
    r = task.records
    if not r:
        return 1.0
    keep = 1.0
    if r.filter:
        keep = {
            "label >= 0": 0.998,
            "sentiment in (0, 4)": 0.99,
            "choices.text | length == 4": 0.99,
            "email_body | trim | length > 0": 0.995,
        }.get(r.filter, 0.5 if "UNK" in r.filter else 1.0)
        if "Turn_no > 6" in r.filter:
            keep = 0.3
    if r.explode:
        keep *= 7.0
    if r.sample_turn:
        keep *= 0.99
    return keep


def build_source(path: str, config: str | None, g: Gen, n: int, split: str = "train"):
    """(columns, datasets features) of ``n`` rows of hub dataset ``path``/``config``."""
    fn = BUILDERS.get((path, config))
    if fn is None:
        raise KeyError(f"no replica schema for hf source {path!r} config {config!r}")
    return fn(g, n, split)


def to_table(cols: dict[str, Any], feats: dict[str, Any]):
    """A ``datasets.Dataset`` with exactly the features ``feats``."""
    ds = _ds()
    features = ds.Features(feats)
    arrays = {}
    for k, v in cols.items():
        arrays[k] = v if isinstance(v, pa.Array | pa.ChunkedArray) else pa.array(v)
    table = pa.table(arrays).cast(features.arrow_schema)
    return ds.Dataset(table, info=ds.DatasetInfo(features=features))


def write_hf(
    folder: Path, path: str, config: str | None, split_rows: dict[str, int], seed: int
) -> None:
    """``save_to_disk`` a DatasetDict with ``split_rows`` rows per native split."""
    ds = _ds()
    ds.disable_progress_bars()
    g = Gen(seed)
    parts = {}
    for split, n in split_rows.items():
        cols, feats = build_source(path, config, g, n, split)
        parts[split] = to_table(cols, feats)
    ds.DatasetDict(parts).save_to_disk(str(folder), max_shard_size="2GB")


def write_jsonl(folder: Path, name: str, n: int, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rows = jsonl_rows(name, Gen(seed), n)
    with open(folder / "train.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
