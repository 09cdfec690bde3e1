"""Decontamination: find held-out benchmark items inside training text.

An eval set (BIG-Bench Hard task JSON, GSM8K JSONL, MMLU CSV folders in the
hendrycks layout, TyDiQA GoldP / primary-task files, MGSM TSV, or any HF
``save_to_disk`` folder / JSONL with named text fields) is read into items; each
item has one or more text *segments* (question, passage, answer, choices).

Rule (documented in docs/GOVERNANCE.md):

- Text is normalized to words: Unicode NFKC, lower case, maximal runs of
  letters/digits/underscore (``\\w+``); punctuation and spacing do not matter.
- An eval segment of at least ``n`` words (default 13) contributes all its
  ``n``-grams. A *short* segment, with ``min_words <= len < n`` words (default
  ``min_words`` = 8), contributes itself as a single ``len``-gram: training
  text containing the whole segment, word for word, is a hit. Segments shorter
  than ``min_words`` words are not indexed (too common to mean anything:
  "True", "(A)", "42") and are counted as ``short_segments`` in the report.
- A training text is *hit* when it contains one of these word sequences.
  Candidate matches come from 64-bit hashes and are then verified word by word,
  so a hit is always an exact match.

The index is built once: a sorted array of hashes (8 bytes) and positions
(8 bytes) per indexed n-gram plus 4 bytes per eval word; ``max_ngrams`` bounds
it. It can be saved to a folder of ``.npy`` files that worker processes map
read-only.

>>> idx = NgramIndex.build([EvalSet("toy", [EvalItem("q1", ("the quick brown fox jumps over the lazy dog near the river bank",))])])
>>> [m.item for m in idx.find("I saw: The quick brown fox jumps over the lazy dog, near the river bank!")]
[0]
>>> idx.find("the quick brown fox jumps over the lazy cat near the river bank")
[]
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np

from .errors import FlanDataError, MissingDependencyError, suggest

DEFAULT_N = 13
DEFAULT_MIN_WORDS = 8
DEFAULT_MAX_NGRAMS = 100_000_000
_WORD = re.compile(r"\w+")
EVAL_FORMATS = ("bbh", "gsm8k", "mmlu", "tydiqa", "mgsm", "hf", "jsonl")


def words(text: str) -> list[str]:
    """Normalized words of ``text`` (NFKC, lower case, ``\\w+`` runs).

    >>> words("It's 3:45 -- Déjà vu!")
    ['it', 's', '3', '45', 'déjà', 'vu']
    """
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return _WORD.findall(text.lower())


# ----------------------------------------------------------------------------- eval sets


@dataclass(frozen=True)
class EvalItem:
    """One benchmark item: a stable id and its text segments."""

    id: str
    segments: tuple[str, ...]


@dataclass
class EvalSet:
    """The items of one benchmark, with where they came from."""

    name: str
    items: list[EvalItem]
    path: str = ""
    format: str = ""
    sha256: str = ""

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "format": self.format,
            "items": len(self.items),
            "sha256": self.sha256,
        }


def parse_eval_spec(spec: str) -> tuple[str | None, Path, tuple[str, ...]]:
    """``[NAME=]PATH[::FIELD[,FIELD...]]`` → (name, path, fields)."""
    name = None
    fields: tuple[str, ...] = ()
    if "::" in spec:
        spec, f = spec.rsplit("::", 1)
        fields = tuple(x.strip() for x in f.split(",") if x.strip())
        if not fields:
            raise FlanDataError(f"--against {spec}::: expected field names after '::'")
    if "=" in spec and not Path(spec).exists():
        name, spec = spec.split("=", 1)
    return name, Path(spec).expanduser(), fields


def read_eval(spec: str | Path, fields: Sequence[str] = (), name: str | None = None) -> EvalSet:
    """Read one eval set; the format is recognised from the layout.

    ``spec`` may carry ``NAME=`` and ``::FIELDS`` (see :func:`parse_eval_spec`).
    ``fields`` names the text fields of HF ``save_to_disk`` folders and generic
    JSONL files (default: ``text``); for the known formats it replaces the
    default segments.
    """
    n, path, f = parse_eval_spec(str(spec))
    name = name or n
    fields = tuple(fields) or f
    if not path.exists():
        raise FlanDataError(f"--against {path}: no such file or folder")
    fmt, items = _read_any(path, fields)
    if not items:
        raise FlanDataError(f"--against {path}: no eval items found (read as {fmt})")
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise FlanDataError(f"--against {path}: item id {dup!r} appears twice")
    h = hashlib.sha256()
    for it in items:
        h.update(json.dumps([it.id, *it.segments], ensure_ascii=False).encode() + b"\n")
    default = path.stem if path.is_file() else path.name
    return EvalSet(name or default, items, str(path), fmt, h.hexdigest())


def _read_any(path: Path, fields: Sequence[str]) -> tuple[str, list[EvalItem]]:
    if path.is_dir():
        if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
            return "hf", _read_hf(path, fields)
        if (path / "bbh").is_dir():
            return "bbh", _read_bbh_dir(path / "bbh", fields)
        if (path / "test").is_dir() and any((path / "test").glob("*_test.csv")):
            return "mmlu", _read_mmlu(sorted((path / "test").glob("*_test.csv")), fields)
        if (path / "data" / "test").is_dir():
            return "mmlu", _read_mmlu(sorted((path / "data" / "test").glob("*.csv")), fields)
        tsv = sorted(path.glob("mgsm_*.tsv"))
        if tsv:
            return "mgsm", [it for p in tsv for it in _read_mgsm(p, fields)]
        csvs = sorted(path.glob("*.csv"))
        if csvs:
            return "mmlu", _read_mmlu(csvs, fields)
        js = sorted(path.glob("*.json"))
        if js and all(_is_bbh(p) for p in js[:3]):
            return "bbh", _read_bbh_dir(path, fields)
        raise FlanDataError(
            f"--against {path}: cannot tell the eval format of this folder; expected a BIG-Bench Hard "
            "folder (bbh/*.json), an MMLU data folder (test/*_test.csv), mgsm_*.tsv files or an HF "
            "save_to_disk folder"
        )
    suffixes = "".join(path.suffixes[-2:]).lower()
    if suffixes.endswith((".jsonl", ".jsonl.gz", ".ndjson")):
        first = _first_json_line(path)
        if not fields and "question_text" in first:
            return "tydiqa", _read_jsonl(path, ("question_text",), id_field="example_id")
        if not fields and {"question", "answer"} <= set(first):
            return "gsm8k", _read_jsonl(path, ("question", "answer"))
        return "jsonl", _read_jsonl(path, fields or ("text",))
    if path.suffix.lower() == ".json":
        doc = _load_json(path)
        if isinstance(doc, Mapping) and "examples" in doc:
            return "bbh", _bbh_items(path.stem, doc, path, fields)
        if isinstance(doc, Mapping) and "data" in doc:
            return "tydiqa", _squad_items(doc, path, fields)
        raise FlanDataError(
            f"--against {path}: a JSON file must be a BIG-Bench Hard task ('examples') or SQuAD/TyDiQA-GoldP ('data')"
        )
    if path.suffix.lower() == ".tsv":
        return "mgsm", _read_mgsm(path, fields)
    if path.suffix.lower() == ".csv":
        return "mmlu", _read_mmlu([path], fields)
    raise FlanDataError(
        f"--against {path}: unknown eval file type {path.suffix!r}; expected .json (BBH, TyDiQA GoldP), "
        ".jsonl[.gz] (GSM8K, TyDiQA, any with ::FIELD), .csv (MMLU), .tsv (MGSM) or a folder"
    )


def _open_text(path: Path):
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def _load_json(path: Path) -> Any:
    try:
        with _open_text(path) as fh:
            return json.load(fh)
    except json.JSONDecodeError as e:
        raise FlanDataError(f"{path}: malformed JSON at line {e.lineno}: {e.msg}") from None
    except UnicodeDecodeError:
        raise FlanDataError(f"{path}: not valid UTF-8") from None


def _first_json_line(path: Path) -> dict[str, Any]:
    with _open_text(path) as fh:
        for line in fh:
            if line.strip():
                try:
                    d = json.loads(line)
                except json.JSONDecodeError as e:
                    raise FlanDataError(f"{path}: line 1 is not JSON: {e.msg}") from None
                return d if isinstance(d, dict) else {}
    return {}


def _text_of(v: Any) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    if isinstance(v, Mapping):
        return [s for x in v.values() for s in _text_of(x)]
    if isinstance(v, list | tuple):
        return [s for x in v for s in _text_of(x)]
    return [str(v)]


def _pick(rec: Mapping[str, Any], fields: Sequence[str], where: str) -> tuple[str, ...]:
    out: list[str] = []
    for f in fields:
        if f not in rec:
            hint = suggest(f, [str(k) for k in rec], n=3)
            raise FlanDataError(
                f"{where}: no field {f!r}"
                + (
                    f"; did you mean {', '.join(hint)}?"
                    if hint
                    else f"; fields: {', '.join(map(str, rec))}"
                )
            )
        out += _text_of(rec[f])
    return tuple(out)


def _read_jsonl(path: Path, fields: Sequence[str], id_field: str = "id") -> list[EvalItem]:
    items = []
    stem = path.name.split(".")[0]
    with _open_text(path) as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise FlanDataError(f"{path}, line {i}: not JSON ({e.msg})") from None
            if not isinstance(rec, dict):
                raise FlanDataError(f"{path}, line {i}: expected a JSON object")
            rid = rec.get(id_field)
            items.append(
                EvalItem(
                    str(rid) if rid is not None else f"{stem}/{i}",
                    _pick(rec, fields, f"{path}, line {i}"),
                )
            )
    return items


def _is_bbh(p: Path) -> bool:
    try:
        with open(p, encoding="utf-8") as fh:
            head = fh.read(4096)
    except (OSError, UnicodeDecodeError):
        return False
    return '"examples"' in head


def _bbh_items(
    stem: str, doc: Mapping[str, Any], path: Path, fields: Sequence[str]
) -> list[EvalItem]:
    exs = doc.get("examples")
    if not isinstance(exs, list):
        raise FlanDataError(f"{path}: 'examples' is not a list")
    fl = tuple(fields) or ("input", "target")
    return [
        EvalItem(f"{stem}/{i}", _pick(e, fl, f"{path}, examples[{i}]")) for i, e in enumerate(exs)
    ]


def _read_bbh_dir(d: Path, fields: Sequence[str]) -> list[EvalItem]:
    out = []
    for p in sorted(d.glob("*.json")):
        out += _bbh_items(p.stem, _load_json(p), p, fields)
    return out


def _read_mmlu(files: Sequence[Path], fields: Sequence[str]) -> list[EvalItem]:
    """hendrycks/test layout: ``<subject>_test.csv``, no header: question, A, B, C, D, answer."""
    out = []
    for p in files:
        subject = re.sub(r"_(test|val|dev)$", "", p.stem)
        with open(p, encoding="utf-8", newline="") as fh:
            for i, row in enumerate(csv.reader(fh)):
                if len(row) < 6:
                    raise FlanDataError(
                        f"{p}, row {i + 1}: expected 6 columns (question, A, B, C, D, answer), got {len(row)}"
                    )
                segs = (row[0],) if fields == ("question",) else tuple(row[:5])
                out.append(EvalItem(f"{subject}/{i}", segs))
    return out


def _read_mgsm(p: Path, fields: Sequence[str]) -> list[EvalItem]:
    """MGSM: ``mgsm_<lang>.tsv``, no header: question, numeric answer."""
    out = []
    with open(p, encoding="utf-8", newline="") as fh:
        for i, row in enumerate(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)):
            if not row:
                continue
            if len(row) < 2:
                raise FlanDataError(f"{p}, line {i + 1}: expected question<TAB>answer")
            out.append(EvalItem(f"{p.stem}/{i}", (row[0],)))
    return out


def _squad_items(doc: Mapping[str, Any], path: Path, fields: Sequence[str]) -> list[EvalItem]:
    """TyDiQA-GoldP (SQuAD layout): one item per question, segments question and passage."""
    out = []
    want = tuple(fields) or ("question", "context")
    for a, art in enumerate(doc.get("data") or []):
        for p, para in enumerate(art.get("paragraphs") or []):
            for q, qa in enumerate(para.get("qas") or []):
                rec = {"question": qa.get("question", ""), "context": para.get("context", ""),
                       "title": art.get("title", "")}  # fmt: skip
                qid = qa.get("id", f"{a}.{p}.{q}")
                out.append(
                    EvalItem(
                        str(qid), _pick(rec, want, f"{path}, data[{a}].paragraphs[{p}].qas[{q}]")
                    )
                )
    return out


def _read_hf(path: Path, fields: Sequence[str]) -> list[EvalItem]:
    try:
        import datasets
    except ImportError:
        raise MissingDependencyError(
            "datasets", "hf", "reading HF save_to_disk eval sets"
        ) from None
    ds = datasets.load_from_disk(str(path))
    splits = ds.items() if isinstance(ds, datasets.DatasetDict) else [("", ds)]
    out = []
    for split, d in splits:
        fl = tuple(fields) or ("text",)
        for f in fl:
            if f not in d.column_names:
                hint = suggest(f, d.column_names, n=3)
                raise FlanDataError(
                    f"--against {path}{'/' + split if split else ''}: no column {f!r}; "
                    + (
                        f"did you mean {', '.join(hint)}?"
                        if hint
                        else f"columns: {', '.join(d.column_names)}"
                    )
                    + " (name text fields with PATH::FIELD,FIELD)"
                )
        ids = d["id"] if "id" in d.column_names else None
        cols = {f: d[f] for f in fl}
        pre = f"{split}/" if split else ""
        for i in range(len(d)):
            segs = tuple(s for f in fl for s in _text_of(cols[f][i]))
            out.append(EvalItem(f"{pre}{ids[i] if ids is not None else i}", segs))
    return out


# ----------------------------------------------------------------------------- the index


@dataclass(frozen=True)
class Match:
    """One verified occurrence: eval item number, where it starts (word index) and its words."""

    item: int
    start: int
    ngram: str


_MULT_SEED = 0x5EED_F1A7


_BASE = 0x9E3779B97F4A7C15  # odd, so invertible modulo 2**64
_BASE_INV = pow(_BASE, -1, 2**64)
_POW: dict[int, np.ndarray] = {}


def _powers(base: int, n: int) -> np.ndarray:
    """base**i mod 2**64 for i < n (uint64 arithmetic wraps), cached and grown."""
    have = _POW.get(base)
    if have is None or have.size < n:
        size = max(n, 1024, 2 * (have.size if have is not None else 0))
        p = np.full(size, base, dtype=np.uint64)
        p[0] = 1
        have = _POW[base] = np.cumprod(p, dtype=np.uint64)
    return have[:n]


def _prefix(word_keys: np.ndarray) -> np.ndarray:
    """P[j] = sum_{i<j} key_i * B**-i: a window's hash is then
    (P[i+L] - P[i]) * B**i = sum_k key_{i+k} * B**-k, whatever i is."""
    p = np.zeros(word_keys.size + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        np.cumsum(word_keys * _powers(_BASE_INV, word_keys.size), dtype=np.uint64, out=p[1:])
    return p


def _hash_at(prefix: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (prefix[starts + length] - prefix[starts]) * _powers(
            _BASE, int(starts.max()) + 1 if starts.size else 0
        )[starts]


@dataclass
class NgramIndex:
    """Hashes of every indexed eval n-gram, built once (see the module doc)."""

    n: int
    min_words: int
    sets: list[dict[str, Any]]  # EvalSet.describe() + short_segments
    item_ids: list[str]
    item_set: np.ndarray  # eval set number per item
    vocab: dict[str, int]  # word -> id (0 = not an eval word)
    tokens: np.ndarray  # int32 ids of every indexed segment, back to back
    item_start: np.ndarray  # first token of each item in ``tokens``
    tables: dict[int, tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict
    )  # length -> (hashes, starts)
    _words: list[str] | None = field(default=None, repr=False)
    _keys: np.ndarray | None = field(default=None, repr=False)

    # -- building

    @classmethod
    def build(
        cls,
        evals: Sequence[EvalSet],
        *,
        n: int = DEFAULT_N,
        min_words: int = DEFAULT_MIN_WORDS,
        max_ngrams: int = DEFAULT_MAX_NGRAMS,
    ) -> NgramIndex:
        if n < 1 or not 1 <= min_words <= n:
            raise FlanDataError(
                f"n-gram size must be >= 1 and 1 <= min words <= n, got n={n}, min={min_words}"
            )
        names = [e.name for e in evals]
        if len(set(names)) != len(names):
            raise FlanDataError(
                f"two eval sets are called {next(x for x in names if names.count(x) > 1)!r}; name them NAME=PATH"
            )
        vocab: dict[str, int] = {}
        toks: list[int] = []
        item_start: list[int] = []
        item_ids: list[str] = []
        item_set: list[int] = []
        seg_bounds: list[tuple[int, int]] = []  # (start, length) of every indexed segment
        sets = []
        total = 0
        for si, ev in enumerate(evals):
            short = 0
            for it in ev.items:
                item_start.append(len(toks))
                item_ids.append(f"{ev.name}:{it.id}")
                item_set.append(si)
                for seg in it.segments:
                    w = words(seg)
                    if len(w) < min_words:
                        short += bool(w)
                        continue
                    seg_bounds.append((len(toks), len(w)))
                    toks.extend(vocab.setdefault(x, len(vocab) + 1) for x in w)
                    total += len(w) - n + 1 if len(w) >= n else 1
                    if total > max_ngrams:
                        raise FlanDataError(
                            f"the eval index would hold more than {max_ngrams:,} n-grams (at {ev.name}:{it.id}); "
                            "raise --max-ngrams (16 bytes each) or index fewer eval sets at once"
                        )
            sets.append(ev.describe() | {"short_segments": short})
        item_start.append(len(toks))
        self = cls(n=n, min_words=min_words, sets=sets, item_ids=item_ids,
                   item_set=np.asarray(item_set, dtype=np.int32), vocab=vocab,
                   tokens=np.asarray(toks, dtype=np.int32), item_start=np.asarray(item_start, dtype=np.int64))  # fmt: skip
        seg_start = np.asarray([b[0] for b in seg_bounds], dtype=np.int64)
        seg_len = np.asarray([b[1] for b in seg_bounds], dtype=np.int64)
        prefix = _prefix(self._hash_keys()[self.tokens])
        # full-length n-grams of the long segments: every start that leaves n words
        long = seg_len >= n
        counts = seg_len[long] - n + 1
        if counts.size:
            first = np.repeat(seg_start[long], counts)
            offset = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(
                np.cumsum(counts) - counts, counts
            )
            self._add_table(n, prefix, first + offset)
        # short segments: the whole segment is one (shorter) n-gram
        for L in sorted(set(seg_len[~long].tolist())):
            self._add_table(L, prefix, seg_start[seg_len == L])
        return self

    def _add_table(self, length: int, prefix: np.ndarray, starts: np.ndarray) -> None:
        h = _hash_at(prefix, starts, length)
        order = np.argsort(h, kind="stable")
        self.tables[length] = (h[order], starts[order])

    def _bloom(self, length: int) -> np.ndarray:
        """A boolean bitmap over the low bits of the length's hashes (about 16
        slots per n-gram, at most 64 MiB), built on first use."""
        cache = self.__dict__.setdefault("_blooms", {})
        b = cache.get(length)
        if b is None:
            H = self.tables[length][0]
            size = 1 << max(16, min(26, int(H.size * 16).bit_length()))
            b = np.zeros(size, dtype=bool)
            b[(np.asarray(H) & np.uint64(size - 1)).astype(np.int64)] = True
            cache[length] = b
        return b

    def _hash_keys(self) -> np.ndarray:
        if self._keys is None:
            rng = np.random.default_rng(_MULT_SEED + 1)
            k = rng.integers(0, 2**63, size=len(self.vocab) + 1, dtype=np.int64).astype(np.uint64)
            k = k * np.uint64(2) + np.uint64(1)
            k[0] = 0
            self._keys = k
        return self._keys

    @property
    def num_ngrams(self) -> int:
        return sum(h.size for h, _ in self.tables.values())

    @property
    def nbytes(self) -> int:
        return sum(h.nbytes + s.nbytes for h, s in self.tables.values()) + self.tokens.nbytes

    @property
    def fingerprint(self) -> str:
        h = hashlib.sha256(
            json.dumps([self.n, self.min_words, [s["sha256"] for s in self.sets]]).encode()
        )
        return h.hexdigest()

    def describe(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "min_words": self.min_words,
            "ngrams": self.num_ngrams,
            "eval_sets": self.sets,
        }

    # -- persistence (workers map it once, read-only)

    def save(self, folder: str | Path) -> None:
        """Write the index as ``folder/{meta.json,*.npy}`` (replaced atomically)."""
        folder = Path(folder)
        tmp = folder.with_name(folder.name + ".tmp")
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        arrays = {"tokens": self.tokens, "item_start": self.item_start, "item_set": self.item_set}
        for L, (h, s) in self.tables.items():
            arrays[f"h{L}"], arrays[f"s{L}"] = h, s
        for k, v in arrays.items():
            np.save(tmp / f"{k}.npy", np.ascontiguousarray(v))
        meta = {"n": self.n, "min_words": self.min_words, "sets": self.sets, "item_ids": self.item_ids,
                "vocab": sorted(self.vocab, key=self.vocab.__getitem__), "lengths": sorted(self.tables)}  # fmt: skip
        (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        tmp.replace(folder)

    @classmethod
    def load(cls, folder: str | Path) -> NgramIndex:
        """Load a saved index; the arrays are memory-mapped, so worker processes
        on one machine share their pages."""
        folder = Path(folder)
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))

        def arr(k: str) -> np.ndarray:
            return np.load(folder / f"{k}.npy", mmap_mode="r")

        vocab = {w: i + 1 for i, w in enumerate(meta["vocab"])}
        self = cls(n=meta["n"], min_words=meta["min_words"], sets=meta["sets"], item_ids=meta["item_ids"],
                   item_set=arr("item_set"), vocab=vocab, tokens=arr("tokens"), item_start=arr("item_start"))  # fmt: skip
        for L in meta["lengths"]:
            self.tables[int(L)] = (arr(f"h{L}"), arr(f"s{L}"))
        return self

    # -- matching

    def word_of(self, i: int) -> str:
        if self._words is None:
            self._words = ["", *sorted(self.vocab, key=self.vocab.__getitem__)]
        return self._words[i]

    def find(self, text: str) -> list[Match]:
        """Every verified eval n-gram in ``text`` (one Match per item and place)."""
        return self.find_many([text])[0]

    def find_many(self, texts: Sequence[str]) -> list[list[Match]]:
        """:meth:`find` for a batch of texts at once (the fast path)."""
        out: list[list[Match]] = [[] for _ in texts]
        if not self.tables:
            return out
        get = self.vocab.get
        ids_l: list[int] = []
        starts = np.zeros(len(texts) + 1, dtype=np.int64)
        for i, t in enumerate(texts):
            if t:
                ids_l.extend(map(get, words(t), repeat(0)))
            ids_l.append(0)  # a separator: no window spans two texts
            starts[i + 1] = len(ids_l)
        ids = np.asarray(ids_l, dtype=np.int64)
        bad = np.concatenate(([0], np.cumsum(ids == 0)))
        prefix = _prefix(self._hash_keys()[ids])
        for L, (H, S) in self.tables.items():
            if ids.size < L:
                continue
            m = ids.size - L + 1
            ok = np.flatnonzero(bad[L : L + m] == bad[:m])  # windows of eval words only
            if ok.size == 0:
                continue
            h = _hash_at(prefix, ok, L)
            # a bitmap of the hashes' low bits rules out most windows in one gather
            bits = self._bloom(L)
            maybe = bits[(h & np.uint64(bits.size - 1)).astype(np.int64)]
            ok, h = ok[maybe], h[maybe]
            if ok.size == 0:
                continue
            lo = np.searchsorted(H, h, side="left")
            sel = H[np.minimum(lo, H.size - 1)] == h
            if not sel.any():
                continue
            w, lo, h = ok[sel], lo[sel], h[sel]
            hi = np.searchsorted(H, h, side="right")
            # every (window, indexed n-gram with the same hash) pair, verified word by word
            k = hi - lo
            wr = np.repeat(w, k)
            jr = (
                np.arange(int(k.sum()), dtype=np.int64)
                - np.repeat(np.cumsum(k) - k, k)
                + np.repeat(lo, k)
            )
            sr = np.asarray(S[jr], dtype=np.int64)
            same = np.ones(wr.size, dtype=bool)
            for d in range(L):
                same &= self.tokens[sr + d] == ids[wr + d]
            wr, sr = wr[same], sr[same]
            if wr.size == 0:
                continue
            item = np.searchsorted(self.item_start, sr, side="right") - 1
            text = np.searchsorted(starts, wr, side="right") - 1
            # one match per (text, item): the first place it occurs
            order = np.lexsort((wr, item, text))
            text, item, wr = text[order], item[order], wr[order]
            first = np.ones(text.size, dtype=bool)
            first[1:] = (text[1:] != text[:-1]) | (item[1:] != item[:-1])
            grams: dict[int, str] = {}
            for t, it, pos in zip(text[first].tolist(), item[first].tolist(), wr[first].tolist()):
                g = grams.get(pos)
                if g is None:
                    g = grams[pos] = " ".join(self.word_of(int(x)) for x in ids[pos : pos + L])
                out[t].append(Match(it, pos - int(starts[t]), g))
        return out


def read_evals(specs: Iterable[str]) -> list[EvalSet]:
    return [read_eval(s) for s in specs]


# ----------------------------------------------------------------------------- reports


class Report:
    """Hits per training task × eval set: rows, share, example n-grams, item ids."""

    MAX_EXAMPLES = 5
    MAX_IDS = 200

    def __init__(self, index: NgramIndex):
        self.index = index
        self.rows: dict[str, int] = {}
        self.cells: dict[tuple[str, str], dict[str, Any]] = {}
        self.exemplars: dict[str, dict[str, int]] = {}

    def _cell(self, task: str, set_name: str) -> dict[str, Any]:
        c = self.cells.get((task, set_name))
        if c is None:
            c = self.cells[(task, set_name)] = {"rows_hit": 0, "rows_dropped": 0, "exemplars": set(),
                                                 "ngrams": [], "item_ids": set(), "where": {}}  # fmt: skip
        return c

    def add_rows(self, task: str, n: int) -> None:
        self.rows[task] = self.rows.get(task, 0) + n

    def add_hit(self, task: str, matches: Sequence[Match], where: str, *, dropped: bool = False,
                exemplar: str | None = None) -> None:  # fmt: skip
        """Count one hit row (or, with ``exemplar`` = its id, one replaced exemplar)."""
        sets = {}
        for m in matches:
            sets.setdefault(self.index.sets[int(self.index.item_set[m.item])]["name"], []).append(m)
        for name, ms in sets.items():
            c = self._cell(task, name)
            if exemplar is not None:
                if exemplar in c["exemplars"]:
                    continue
                c["exemplars"].add(exemplar)
            else:
                c["rows_hit"] += 1
                c["rows_dropped"] += dropped
            c["where"][where] = c["where"].get(where, 0) + 1
            for m in ms:
                if len(c["ngrams"]) < self.MAX_EXAMPLES and m.ngram not in c["ngrams"]:
                    c["ngrams"].append(m.ngram)
                c["item_ids"].add(self.index.item_ids[m.item].split(":", 1)[1])

    def merge(self, data: Mapping[str, Any]) -> None:
        """Add a report saved with :meth:`to_json` (e.g. one export job's)."""
        for t, n in data.get("rows", {}).items():
            self.add_rows(t, n)
        for e in data.get("hits", []):
            c = self._cell(e["task"], e["eval_set"])
            for k in ("rows_hit", "rows_dropped"):
                c[k] += e[k]
            c["exemplars"].update(e.get("exemplar_ids", ()))
            for k, v in e["where"].items():
                c["where"][k] = c["where"].get(k, 0) + v
            for g in e["ngrams"]:
                if len(c["ngrams"]) < self.MAX_EXAMPLES and g not in c["ngrams"]:
                    c["ngrams"].append(g)
            c["item_ids"].update(e["all_item_ids"] if "all_item_ids" in e else e["item_ids"])

    def to_json(self, *, full_ids: bool = False) -> dict[str, Any]:
        hits = []
        for (task, name), c in sorted(self.cells.items()):
            ids = sorted(c["item_ids"], key=_natural)
            rows = self.rows.get(task, 0)
            e = {"task": task, "eval_set": name, "rows": rows, "rows_hit": c["rows_hit"],
                 "share": round(c["rows_hit"] / rows, 8) if rows else 0.0,
                 "rows_dropped": c["rows_dropped"], "exemplars_replaced": len(c["exemplars"]),
                 "exemplar_ids": sorted(c["exemplars"], key=_natural)[: self.MAX_IDS],
                 "where": dict(sorted(c["where"].items())), "ngrams": list(c["ngrams"]),
                 "eval_items": len(ids), "item_ids": ids[: self.MAX_IDS]}  # fmt: skip
            if full_ids:
                e["all_item_ids"] = ids
                e["exemplar_ids"] = sorted(c["exemplars"], key=_natural)
            hits.append(e)
        return {
            "index": self.index.describe(),
            "rows": dict(sorted(self.rows.items())),
            "rows_total": sum(self.rows.values()),
            "rows_hit": sum(e["rows_hit"] for e in hits),
            "hits": hits,
        }


def _natural(s: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", s))


# ----------------------------------------------------------------------------- export hooks


def exemplar_text(fields: Mapping[str, Any] | Any) -> str:
    """All text of an exemplar's canonical fields, one field per line."""
    return "\n".join(_text_of(fields))


class RowFilter:
    """What an export job applies: clean exemplar pools, drop hit rows, count.

    Deterministic: decisions depend only on the text and the index.
    """

    def __init__(self, index: NgramIndex, drop: bool = True):
        self.index = index
        self.drop = drop
        self.report = Report(index)
        self._seen: dict[str, list[Match]] = {}

    def clean_pool(self, task: str, pool: list[Any]) -> list[Any]:
        """Pool exemplars (objects with ``.fields``) without the hit ones; the
        rows then draw their exemplars from the clean rest."""
        found = self.index.find_many([exemplar_text(e.fields) for e in pool])
        keep = []
        for e, ms in zip(pool, found):
            if ms:
                self.report.add_hit(task, ms, "exemplar pool", exemplar=e.example_id)
            else:
                keep.append(e)
        return keep

    def clean_field(self, task: str, canon: dict[str, Any], name: str) -> dict[str, Any]:
        """A record whose own exemplar list (field ``name``, e.g. NIv2's positive
        examples) loses its hit entries, so the next clean one moves up."""
        values = canon.get(name)
        if not isinstance(values, list | tuple) or not values:
            return canon
        texts = [exemplar_text(v) for v in values]
        todo = [t for t in texts if t not in self._seen]
        if todo:
            for t, ms in zip(todo, self.index.find_many(todo)):
                self._seen[t] = ms
        if not any(self._seen[t] for t in texts):
            return canon
        keep = []
        for j, (v, t) in enumerate(zip(values, texts)):
            ms = self._seen[t]
            if ms:
                self.report.add_hit(task, ms, "exemplar field", exemplar=f"{name}[{j}]")
            else:
                keep.append(v)
        return {**canon, name: keep}

    def save(self, folder: Path) -> None:
        """This job's counts as ``folder/decontam.json`` (merged by the export)."""
        data = self.report.to_json(full_ids=True)
        del data["index"]
        (Path(folder) / "decontam.json").write_text(
            json.dumps(data, ensure_ascii=False), encoding="utf-8"
        )

    def filter_rows(self, task: str, cols: dict[str, list[Any]]) -> dict[str, list[Any]]:
        """Drop (or, with ``drop=False``, only count) rows whose inputs or targets hit."""
        n = len(cols["inputs"])
        self.report.add_rows(task, n)
        if n == 0:
            return cols
        fi = self.index.find_many(cols["inputs"])
        ft = self.index.find_many(cols["targets"])
        bad = []
        for i in range(n):
            if fi[i] or ft[i]:
                where = "inputs+targets" if fi[i] and ft[i] else ("inputs" if fi[i] else "targets")
                self.report.add_hit(task, fi[i] + ft[i], where, dropped=self.drop)
                bad.append(i)
        if not bad or not self.drop:
            return cols
        keep = np.ones(n, dtype=bool)
        keep[bad] = False
        idx = np.flatnonzero(keep)
        il = idx.tolist()
        return {
            k: (v[idx] if isinstance(v, np.ndarray) else [v[i] for i in il])
            for k, v in cols.items()
        }


_LOADED: dict[str, NgramIndex] = {}


def load_cached(path: str) -> NgramIndex:
    """The index saved at ``path``, loaded once per process."""
    idx = _LOADED.get(path)
    if idx is None:
        idx = _LOADED[path] = NgramIndex.load(path)
    return idx


# ----------------------------------------------------------------------------- scanning files


def iter_training_batches(target: Path, fields: Sequence[str], task_field: str | None,
                          batch_rows: int = 2048) -> Iterator[tuple[list[str], dict[str, list[str]]]]:  # fmt: skip
    """(task per row, {field: texts}) batches from an export folder or a
    JSONL / Parquet / Arrow file of training rows."""
    import pyarrow as pa
    import pyarrow.ipc  # noqa: F401
    import pyarrow.parquet as pq

    def from_table_batches(batches, where: str, default_task: str):
        for b in batches:
            names = b.schema.names
            for f in fields:
                if f not in names:
                    hint = suggest(f, names, n=3)
                    raise FlanDataError(
                        f"{where}: no column {f!r}"
                        + (f"; did you mean {', '.join(hint)}?" if hint else "")
                    )
            tf = task_field if task_field in names else None
            if task_field and task_field != "task" and tf is None:
                raise FlanDataError(f"{where}: no column {task_field!r} (--task-field)")
            tasks = (
                [str(x) for x in b.column(tf).to_pylist()] if tf else [default_task] * b.num_rows
            )
            yield (
                tasks,
                {f: ["" if x is None else str(x) for x in b.column(f).to_pylist()] for f in fields},
            )

    if target.is_dir():
        base = target / "data" if (target / "data").is_dir() else target
        files = sorted(
            p for p in base.rglob("*")
            if p.name.endswith((".arrow", ".parquet", ".jsonl", ".jsonl.gz")) and p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(base).parts)
        )  # fmt: skip
        if not files:
            raise FlanDataError(
                f"{target}: no .arrow or .parquet shards (expected a flan export folder)"
            )
        for p in files:
            yield from iter_training_batches(p, fields, task_field, batch_rows)
        return
    suf = "".join(target.suffixes[-2:]).lower()
    if target.suffix == ".parquet":
        pf = pq.ParquetFile(target)
        yield from from_table_batches(
            pf.iter_batches(batch_size=batch_rows), str(target), target.stem
        )
        return
    if target.suffix == ".arrow":
        with pa.memory_map(str(target)) as src:
            try:
                table = pa.ipc.open_file(src).read_all()
            except pa.ArrowInvalid:
                src.seek(0)
                table = pa.ipc.open_stream(src).read_all()
        yield from from_table_batches(
            table.to_batches(max_chunksize=batch_rows), str(target), target.stem
        )
        return
    if suf.endswith((".jsonl", ".jsonl.gz", ".ndjson")):
        tasks: list[str] = []
        cols: dict[str, list[str]] = {f: [] for f in fields}
        with _open_text(target) as fh:
            for i, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise FlanDataError(f"{target}, line {i}: not JSON ({e.msg})") from None
                for f in fields:
                    if f not in rec:
                        hint = suggest(f, list(rec), n=3)
                        raise FlanDataError(f"{target}, line {i}: no field {f!r}"
                                            + (f"; did you mean {', '.join(hint)}?" if hint else ""))  # fmt: skip
                    cols[f].append("\n".join(_text_of(rec[f])))
                tasks.append(str(rec.get(task_field, target.stem)) if task_field else target.stem)
                if len(tasks) >= batch_rows:
                    yield tasks, cols
                    tasks, cols = [], {f: [] for f in fields}
        if tasks:
            yield tasks, cols
        return
    raise FlanDataError(
        f"{target}: expected an export folder, or a .jsonl / .parquet / .arrow file of rows"
    )


def scan(index: NgramIndex, target: str | Path, *, fields: Sequence[str] = ("inputs", "targets"),
         task_field: str | None = "task", progress=None) -> Report:  # fmt: skip
    """Scan training rows (an export folder or a rows file) for eval n-grams."""
    rep = Report(index)
    for tasks, cols in iter_training_batches(Path(target), fields, task_field):
        found = {f: index.find_many(cols[f]) for f in fields}
        for i, task in enumerate(tasks):
            ms = [m for f in fields for m in found[f][i]]
            if ms:
                where = "+".join(f for f in fields if found[f][i])
                rep.add_hit(task, ms, where)
        for t in tasks:
            rep.rows[t] = rep.rows.get(t, 0) + 1
        if progress is not None:
            progress(len(tasks))
    return rep
