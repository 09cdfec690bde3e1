"""Seeded bijections of ``[0, n)`` without materialising them.

A balanced Feistel network over the smallest even bit width that covers ``n``,
with cycle walking to stay inside ``[0, n)``. Used for the global row order and
for record selection: any slice of the permutation is computed in O(slice)
memory, identically on every machine.

>>> p = permute(list(range(10)), n=10, key=7)
>>> sorted(p) == list(range(10))
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..seeding import derive_seed

_ROUNDS = 4
_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)


def _round(x: np.ndarray, k: np.uint64) -> np.ndarray:
    # splitmix64 finaliser: a cheap, well-mixed 64-bit hash.
    z = (x + k) * _M1
    z = (z ^ (z >> np.uint64(30))) * _M2
    z = (z ^ (z >> np.uint64(27))) * _M3
    return z ^ (z >> np.uint64(31))


def _keys(key: int) -> list[np.uint64]:
    return [np.uint64(derive_seed(key, "feistel", r)) for r in range(_ROUNDS)]


def permute(values: Sequence[int] | np.ndarray, n: int, key: int) -> np.ndarray:
    """Images of ``values`` (each in ``[0, n)``) under the permutation for ``key``."""
    return _walk(values, n, key, inverse=False)


def unpermute(values: Sequence[int] | np.ndarray, n: int, key: int) -> np.ndarray:
    """Preimages: ``permute(unpermute(v, n, key), n, key) == v``.

    Lets a job that owns the records ``[lo, hi)`` find the output slots that
    select them in O(hi - lo), without walking the whole permutation.

    >>> v = permute([3, 1, 4], n=10, key=5)
    >>> unpermute(v, n=10, key=5).tolist()
    [3, 1, 4]
    """
    return _walk(values, n, key, inverse=True)


def _walk(values, n: int, key: int, inverse: bool) -> np.ndarray:
    x = np.asarray(values, dtype=np.uint64)
    if n <= 1 or x.size == 0:
        return x.astype(np.int64)
    bits = max(2, (n - 1).bit_length())
    bits += bits % 2
    half = bits // 2
    mask = np.uint64((1 << half) - 1)
    keys = _keys(key)
    out = x.copy()
    todo = np.arange(out.size)
    cur = out
    with np.errstate(over="ignore"):
        while todo.size:
            v = cur[todo] if cur is not out else out[todo]
            left, right = v >> np.uint64(half), v & mask
            if inverse:  # undo the rounds in reverse order
                for k in reversed(keys):
                    left, right = right ^ (_round(left, k) & mask), left
            else:
                for k in keys:
                    left, right = right, left ^ (_round(right, k) & mask)
            v = (left << np.uint64(half)) | right
            out[todo] = v
            cur = out
            todo = todo[v >= np.uint64(n)]
    return out.astype(np.int64)
