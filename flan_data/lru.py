"""A bounded least-recently-used list, for the per-process caches of the hot path.

The caches (a task renderer's rendered exemplars in :mod:`flan_data.render`, a
pool's exemplar tables in :mod:`flan_data.columnar_fs`) live on their owners;
a module-level list orders them, least recently used first, and :func:`touch`
keeps it within a count and a total size, emptying what falls out.

>>> class C:
...     def __init__(self, n):
...         self.n, self.dropped = n, False
>>> live, a, b, c = [], C(5), C(5), C(5)
>>> def drop(x):
...     x.dropped = True
>>> for x in (a, b, a, c):
...     touch(live, x, kept=2, max_bytes=100, size=lambda x: x.n, evict=drop)
>>> [x is a for x in live], b.dropped  # b was the least recently used
([True, False], True)
>>> touch(live, a, kept=2, max_bytes=6, size=lambda x: x.n, evict=drop)
>>> live == [a], c.dropped  # over 6 bytes: c goes; the last one always stays
(True, True)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def touch(live: list, item: Any, *, kept: int, max_bytes: int, size: Callable[[Any], int],
          evict: Callable[[Any], None]) -> None:  # fmt: skip
    """Mark ``item`` most recently used in ``live`` (moved, or added, to its end);
    then, least recently used first, take out and ``evict`` the items beyond
    ``kept`` and those while all together ``size`` over ``max_bytes`` (``item``
    itself always stays). Items are told apart by identity."""
    if not live or live[-1] is not item:
        for k, x in enumerate(live):
            if x is item:
                del live[k]
                break
        live.append(item)
    while len(live) > kept or (len(live) > 1 and sum(size(x) for x in live) > max_bytes):
        evict(live.pop(0))
