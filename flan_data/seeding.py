"""Seeds derived from names, never from global state.

Every random choice in flan-data (template, option style, exemplars, few-shot
style, shuffle order) uses a seed derived from a tuple such as
``(run seed, task, split, example id, purpose)``. The derivation is a keyed
BLAKE2b hash of a canonical encoding, so it is identical on every machine,
Python version and worker count.

>>> derive_seed(0, "anli_r1", "train", "s1-0001", "template") == derive_seed(
...     0, "anli_r1", "train", "s1-0001", "template")
True
>>> rng(0, "a", "template").randrange(10) == rng(0, "a", "template").randrange(10)
True
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported only by the vectorised helpers (CLI start-up stays light)
    import numpy as np

_SEP = b"\x1f"


def _encode(part: object) -> bytes:
    if isinstance(part, bool):
        return b"b1" if part else b"b0"
    if isinstance(part, int):
        return b"i" + str(part).encode()
    if isinstance(part, str):
        return b"s" + part.encode("utf-8")
    if part is None:
        return b"n"
    raise TypeError(f"seed parts must be int, str, bool or None, not {type(part).__name__}")


def derive_seed(*parts: object) -> int:
    """A 64-bit seed from the given parts (ints, strings, None)."""
    h = hashlib.blake2b(_SEP.join(_encode(p) for p in parts), digest_size=8, person=b"flan-data")
    return int.from_bytes(h.digest(), "little")


def rng(*parts: object) -> random.Random:
    """A ``random.Random`` seeded from :func:`derive_seed` of the parts."""
    return random.Random(derive_seed(*parts))


class SeedPrefix:
    """``derive_seed(*parts, *more)`` with the common prefix hashed once.

    >>> SeedPrefix(0, "t", "train").derive("ex-1") == derive_seed(0, "t", "train", "ex-1")
    True
    """

    __slots__ = ("_h",)

    def __init__(self, *parts: object):
        self._h = hashlib.blake2b(digest_size=8, person=b"flan-data")
        for p in parts:
            self._h.update(_encode(p) + _SEP)

    def derive(self, *more: object) -> int:
        h = self._h.copy()
        h.update(_SEP.join(_encode(p) for p in more))
        return int.from_bytes(h.digest(), "little")

    def derive_many(self, ids: Sequence[object]) -> np.ndarray:
        """``[derive(i) for i in ids]`` as a ``uint64`` array, in one tight loop
        (the same BLAKE2b per id; no Python int per id on the way).

        >>> p = SeedPrefix(0, "t", "train")
        >>> p.derive_many(["a", "b"]).tolist() == [p.derive("a"), p.derive("b")]
        True
        """
        h0 = self._h
        copy = h0.copy
        parts = []
        add = parts.append
        for x in ids:
            h = copy()
            h.update(b"s" + x.encode("utf-8") if type(x) is str else _encode(x))
            add(h.digest())
        import numpy as np

        return np.frombuffer(b"".join(parts), dtype="<u8").astype(np.uint64, copy=False)


_MASK = (1 << 64) - 1


def purpose_salt(purpose: str) -> int:
    """A constant 64-bit salt naming one kind of random choice."""
    return derive_seed("purpose", purpose)


def mix64(seed: int, salt: int) -> int:
    """A well-mixed 64-bit value from (seed, salt): the splitmix64 finaliser.

    Cheap sub-seeds for per-example choices: ``mix64(example seed, salt("template"))``.
    """
    z = (seed ^ salt) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def mix64_array(seeds: np.ndarray, salt: int) -> np.ndarray:
    """:func:`mix64` of every seed of a ``uint64`` array (uint64 wrap-around
    arithmetic, so the values are exactly :func:`mix64`'s).

    >>> import numpy as np
    >>> s = np.array([0, 1, 2**64 - 1], dtype=np.uint64)
    >>> mix64_array(s, 7).tolist() == [mix64(int(x), 7) for x in s]
    True
    """
    import numpy as np

    u = np.uint64
    z = np.asarray(seeds, dtype=u) ^ u(salt & _MASK)
    z = (z ^ (z >> u(30))) * u(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> u(27))) * u(0x94D049BB133111EB)
    return z ^ (z >> u(31))


def choose(seeds: np.ndarray, salt: int, n: int) -> np.ndarray:
    """``mix64(seed, salt) % n`` for every seed, as ``int64`` indices.

    >>> import numpy as np
    >>> choose(np.array([5, 6], dtype=np.uint64), 3, 10).tolist() == [mix64(5, 3) % 10, mix64(6, 3) % 10]
    True
    """
    import numpy as np

    return (mix64_array(seeds, salt) % np.uint64(n)).astype(np.int64)
