"""Few-shot exemplar selection and the length budget.

Exemplars are drawn from a pool (usually the task's train split) with a seeded
counter-based generator, never including the example itself, and trimmed from the end until the
whole prompt fits a token budget counted by a pluggable tokenizer.

>>> sorted(pick_exemplars(["a", "b", "c", "d"], k=3, exclude="b", seed=0))
[0, 2, 3]
>>> fit_count([10, 10, 10], query_tokens=15, budget=40)
2
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from .seeding import mix64, mix64_array, purpose_salt

if TYPE_CHECKING:  # numpy is imported by the batch picker only (CLI start-up stays light)
    import numpy as np

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


#: How exemplars are picked (the manifest's ``render.exemplar_picker``): draw ``t``
#: of a row is ``mix64(exemplar seed, salt(t)) % (eligible - t)``, mapped past the
#: example itself and the earlier draws. Version 1 drew with one
#: ``random.Random(seed)`` per row; a different generator, so different exemplars.
PICKER_VERSION = "counter-v2"

_DRAW_SALTS: list[int] = []


def _draw_salt(t: int) -> int:
    while len(_DRAW_SALTS) <= t:
        _DRAW_SALTS.append(purpose_salt(f"exemplar draw {len(_DRAW_SALTS)}"))
    return _DRAW_SALTS[t]


def pick_exemplars(pool_ids: Sequence[str], k: int, exclude: str | None, seed: int) -> list[int]:
    """Indices of up to ``k`` distinct pool entries, never one whose id is ``exclude``.

    Sequential sampling without replacement from a counter-based generator: the
    ``t``-th draw is ``mix64(seed, salt(t)) % (m - t)`` over the ``m`` eligible
    entries, taken as a rank among the entries not excluded and not yet drawn.
    Every ordered ``k``-tuple of eligible entries is (up to a 2**-64 bias) equally
    likely; the draw order is kept (exemplar order is itself a seeded choice).
    Each row's picks depend on its seed only, so a batch of rows can be picked at
    once (:meth:`ExemplarPicker.pick_array`) with the same result.

    >>> pick_exemplars(["a", "b", "c", "d"], 2, "b", 7) == pick_exemplars(["a", "b", "c", "d"], 2, "b", 7)
    True
    >>> 1 in pick_exemplars(["a", "b", "c", "d"], 3, "b", 7)
    False
    """
    n = len(pool_ids)
    if k <= 0 or n == 0:
        return []
    return _draw(n, k, [i for i, x in enumerate(pool_ids) if x == exclude], seed)


def _draw(n: int, k: int, taken: list[int], seed: int) -> list[int]:
    """``k`` draws without replacement from the ``n`` pool indices not in
    ``taken`` (ascending; extended in place): draw ``t`` is the
    ``mix64(seed, salt(t)) % (m - t)``-th index not taken yet."""
    m = n - len(taken)
    out: list[int] = []
    for t in range(min(k, m)):
        v = mix64(seed, _draw_salt(t)) % (m - t)
        for s in taken:  # the v-th index not taken
            if v >= s:
                v += 1
            else:
                break
        bisect.insort(taken, v)
        out.append(v)
    return out


class ExemplarPicker:
    """:func:`pick_exemplars` for many rows of one pool: ``pick(exclude, seed)`` per
    row, ``pick_array(excludes, seeds)`` for a whole batch with numpy (the same
    picks, row by row, whatever the batch).

    >>> import numpy as np
    >>> ids = [f"e{i}" for i in range(50)]
    >>> p = ExemplarPicker(ids, 3)
    >>> p.pick("e7", 42) == pick_exemplars(ids, 3, "e7", 42)
    True
    >>> p.pick_array(["e7"], np.array([42], dtype=np.uint64)).tolist() == [p.pick("e7", 42)]
    True
    """

    __slots__ = ("ids", "k", "n", "_pos", "_dups")

    def __init__(self, pool_ids: Sequence[str], k: int):
        self.ids = pool_ids
        self.k = k
        self.n = len(pool_ids)
        pos: dict[str, int] = {}
        dups: set[str] = set()
        for i, x in enumerate(pool_ids):
            if pos.setdefault(x, i) != i:
                dups.add(x)
        self._pos = pos
        self._dups = dups

    def pick(self, exclude: str | None, seed: int) -> list[int]:
        n, k = self.n, self.k
        if k <= 0 or n == 0 or exclude in self._dups:
            return pick_exemplars(self.ids, k, exclude, seed)
        x = self._pos.get(exclude)  # type: ignore[arg-type]
        return _draw(n, k, [] if x is None else [x], seed)

    def pick_array(self, excludes: Sequence[str | None], seeds: np.ndarray) -> np.ndarray | None:
        """Picks of many rows as an ``(rows, k)`` int64 array, row ``r`` equal to
        ``pick(excludes[r], seeds[r])``; None when some row gets fewer than ``k``
        (a pool of at most ``k`` entries) or excludes an id the pool holds twice
        (then :meth:`pick` decides per row)."""
        import numpy as np

        n, k = self.n, self.k
        if k <= 0 or n - 1 < k:
            return None
        pos, dups = self._pos, self._dups
        if dups and any(x in dups for x in excludes):
            return None
        get = pos.get
        excl = np.fromiter((get(x, -1) for x in excludes), dtype=np.int64, count=len(excludes))
        return self.pick_positions(excl, seeds)

    def pick_positions(self, excl: np.ndarray, seeds: np.ndarray) -> np.ndarray | None:
        """:meth:`pick_array` with each row's excluded entry given as its pool
        position (-1: none), e.g. from ``pyarrow.compute.index_in`` over the pool's
        ids; None as there, or when a row excludes an id the pool holds twice."""
        import numpy as np

        n, k = self.n, self.k
        rows = len(excl)
        if k <= 0 or n - 1 < k:
            return None
        if self._dups:
            firsts = np.array([self._pos[x] for x in self._dups], dtype=np.int64)
            if np.isin(excl, firsts).any():
                return None
        excl = np.asarray(excl, dtype=np.int64)
        seeds = np.asarray(seeds, dtype=np.uint64)
        m = (n - (excl >= 0)).astype(np.uint64)
        big = n + k + 1  # never <= a rank
        taken = np.full((rows, k + 1), big, dtype=np.int64)
        taken[:, 0] = np.where(excl >= 0, excl, big)
        out = np.empty((rows, k), dtype=np.int64)
        for t in range(k):
            v = (mix64_array(seeds, _draw_salt(t)) % (m - np.uint64(t))).astype(np.int64)
            srt = np.sort(taken[:, : t + 1], axis=1)
            for c in range(t + 1):
                v += v >= srt[:, c]
            taken[:, t + 1] = v
            out[:, t] = v
        return out


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
