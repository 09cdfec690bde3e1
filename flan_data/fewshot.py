"""Few-shot exemplar selection and the length budget.

Exemplars are drawn from a pool (usually the task's train split) with a seeded
RNG, never including the example itself, and trimmed from the end until the
whole prompt fits a token budget counted by a pluggable tokenizer.

>>> pick_exemplars(["a", "b", "c", "d"], k=2, exclude="b", r=random.Random(0))
[0, 3]
>>> fit_count([10, 10, 10], query_tokens=15, budget=40)
2
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

DEFAULT_BUDGET = 1920
DEFAULT_SHOTS = 3


@runtime_checkable
class Tokenizer(Protocol):
    """Anything that counts tokens in a string."""

    def count(self, text: str) -> int: ...


class WhitespaceTokenizer:
    """Counts whitespace-separated words: the offline default (no download)."""

    name = "whitespace"

    def count(self, text: str) -> int:
        return len(text.split())


class CallableTokenizer:
    """Wraps ``encode(text) -> list`` (e.g. a SentencePiece or HF tokenizer)."""

    def __init__(self, encode, name: str = "custom"):
        self._encode = encode
        self.name = name

    def count(self, text: str) -> int:
        return len(self._encode(text))


class FileTokenizer:
    """Counts tokens with a SentencePiece model (``*.model``) or a Hugging Face
    ``tokenizer.json``, e.g. T5's vocabulary so the few-shot budget is in T5
    tokens as in FLAN. Loaded lazily; pickles as its path (for worker
    processes). ``name`` records the file and its sha256 prefix.

    >>> # FileTokenizer("spiece.model").count("Hello world") -> 3
    """

    def __init__(self, path: str):
        import hashlib
        from pathlib import Path

        from .errors import FlanDataError

        p = Path(path).expanduser()
        if not p.is_file():
            raise FlanDataError(
                f"--tokenizer {path}: no such file (give a SentencePiece .model or a tokenizer.json)"
            )
        if p.suffix not in (".model", ".json"):
            raise FlanDataError(
                f"--tokenizer {path}: expected a SentencePiece model (*.model) or a Hugging Face tokenizer.json"
            )
        self.path = str(p.resolve())
        digest = hashlib.sha256(p.read_bytes()).hexdigest()[:12]
        kind = "sentencepiece" if p.suffix == ".model" else "hf-tokenizers"
        self.name = f"{kind}:{p.name}@sha256:{digest}"
        self._count = None

    def __getstate__(self):
        return {"path": self.path, "name": self.name}

    def __setstate__(self, state):
        self.path, self.name, self._count = state["path"], state["name"], None

    def _load(self):
        from .errors import FlanDataError, MissingDependencyError

        if self.path.endswith(".model"):
            try:
                import sentencepiece as spm
            except ImportError:
                raise MissingDependencyError(
                    "sentencepiece", "finetune", "a SentencePiece --tokenizer"
                ) from None
            try:
                sp = spm.SentencePieceProcessor(model_file=self.path)
            except (OSError, RuntimeError) as e:
                raise FlanDataError(
                    f"--tokenizer {self.path}: not a SentencePiece model ({e})"
                ) from None
            return lambda text: len(sp.encode(text))
        try:
            from tokenizers import Tokenizer as HFTokenizer
        except ImportError:
            raise MissingDependencyError(
                "tokenizers", "hf", "a tokenizer.json --tokenizer"
            ) from None
        try:
            tk = HFTokenizer.from_file(self.path)
        except Exception as e:  # noqa: BLE001 - the library raises plain Exception on bad JSON
            raise FlanDataError(
                f"--tokenizer {self.path}: not a Hugging Face tokenizer.json ({e})"
            ) from None
        return lambda text: len(tk.encode(text, add_special_tokens=False).ids)

    def count(self, text: str) -> int:
        if self._count is None:
            self._count = self._load()
        return self._count(text)


def load_tokenizer(spec: str | None) -> Tokenizer:
    """The token counter for ``--tokenizer``: ``None``/``whitespace`` (default,
    offline) or a path to a SentencePiece ``.model`` / HF ``tokenizer.json``.
    The file is checked at once, so a bad path fails before any work."""
    if spec is None or spec == "whitespace":
        return WhitespaceTokenizer()
    tok = FileTokenizer(spec)
    tok.count("check")  # load now: a wrong file is an error before the export starts
    return tok


def pick_exemplars(
    pool_ids: Sequence[str], k: int, exclude: str | None, r: random.Random
) -> list[int]:
    """Indices of up to ``k`` distinct pool entries, never the one whose id is ``exclude``.

    The draw order is kept: exemplar order is itself a seeded random choice.
    """
    n = len(pool_ids)
    if k <= 0 or n == 0:
        return []
    chosen: list[int] = []
    seen: set[int] = set()
    # Rejection sampling: pools are large and k small; fall back to a full
    # shuffle when the pool is nearly exhausted.
    if n > 4 * (k + 1):
        # Bounded: a pool whose ids mostly equal ``exclude`` (duplicate ids)
        # has fewer than k eligible entries and would loop forever.
        for _ in range(64 * (k + 1)):
            i = r.randrange(n)
            if i in seen or pool_ids[i] == exclude:
                continue
            seen.add(i)
            chosen.append(i)
            if len(chosen) == k:
                return chosen
    order = [i for i in range(n) if pool_ids[i] != exclude]
    r.shuffle(order)
    return order[:k]


class ExemplarPicker:
    """:func:`pick_exemplars` for many rows of one pool, without a ``random.Random``
    built per row: ``picker.pick(exclude, seed)`` returns exactly
    ``pick_exemplars(pool_ids, k, exclude, random.Random(seed))``.

    One generator is re-seeded per row (the same Mersenne Twister state as a
    new ``Random(seed)``) and ``randrange(n)`` is inlined as the rejection loop
    over ``getrandbits(n.bit_length())`` that ``Random._randbelow`` runs, so
    the draws, and hence the picks, are the same.

    >>> ids = [f"e{i}" for i in range(50)]
    >>> ExemplarPicker(ids, 3).pick("e7", 42) == pick_exemplars(ids, 3, "e7", random.Random(42))
    True
    """

    __slots__ = ("ids", "k", "n", "bits", "_r", "_seed", "_getrandbits")

    def __init__(self, pool_ids: Sequence[str], k: int):
        self.ids = pool_ids
        self.k = k
        self.n = len(pool_ids)
        self.bits = self.n.bit_length()
        self._r = random.Random()
        # the C seeding Random(seed) runs for an int seed (Random.seed's
        # Python wrapper only adds the str/bytes handling and gauss_next)
        self._seed = super(random.Random, self._r).seed
        self._getrandbits = self._r.getrandbits

    def pick(self, exclude: str | None, seed: int) -> list[int]:
        n, k = self.n, self.k
        if k <= 0 or n == 0:
            return []
        if not isinstance(seed, int) or seed < 0:
            return pick_exemplars(self.ids, k, exclude, random.Random(seed))
        self._seed(seed)
        self._r.gauss_next = None
        if n > 4 * (k + 1):
            ids, bits, grb = self.ids, self.bits, self._getrandbits
            chosen: list[int] = []
            for _ in range(64 * (k + 1)):
                i = grb(bits)
                while i >= n:
                    i = grb(bits)
                if i in chosen or ids[i] == exclude:
                    continue
                chosen.append(i)
                if len(chosen) == k:
                    return chosen
        # the rare fallback: the same shuffle on the same generator state
        order = [i for i in range(n) if self.ids[i] != exclude]
        self._r.shuffle(order)
        return order[:k]


def fit_count(
    exemplar_tokens: Sequence[int], query_tokens: int, budget: int, sep_tokens: int = 0
) -> int:
    """How many leading exemplars fit in ``budget`` along with the query."""
    total = query_tokens
    n = 0
    for t in exemplar_tokens:
        total += t + sep_tokens
        if total > budget:
            break
        n += 1
    return n
