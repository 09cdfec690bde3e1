"""Bridge to seqio: an export folder (or a live mixture) as a seqio Task or Mixture.

t5x trains from seqio Tasks and Mixtures. :func:`register_export` registers a
finished ``flan export`` folder (any file format) as a seqio Task whose
``train`` split yields the exported rows in their exported order, with
``inputs``/``targets`` text features tokenized by the vocabulary you supply;
:func:`register_mixture` renders a mixture first (into a cache folder, reused
and resumed like any export) and registers that. With ``by_task=True`` each
flan task becomes its own seqio Task and the name a seqio Mixture whose rates
are the exported row counts, for recipes that mix in seqio.

The export is already shuffled by its seed: call ``get_dataset(...,
shuffle=False)`` to read it in that order (seqio shuffles by default).

Needs the ``[seqio]`` extra (seqio pulls TensorFlow); nothing here is imported
until a function is called.

>>> from flan_data.seqio import register_export          # doctest: +SKIP
>>> import seqio                                         # doctest: +SKIP
>>> register_export("flan_demo", "out/demo", seqio.ByteVocabulary())  # doctest: +SKIP
>>> ds = seqio.get_mixture_or_task("flan_demo").get_dataset(  # doctest: +SKIP
...     sequence_length={"inputs": 1024, "targets": 256}, split="train", shuffle=False)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import FlanDataError, MissingDependencyError

SPLIT = "train"
TEXT = ("inputs", "targets")


def _seqio():
    try:
        import seqio
        import tensorflow as tf
    except ImportError as e:
        raise MissingDependencyError(
            getattr(e, "name", None) or "seqio", "seqio", "flan_data.seqio"
        ) from None
    return seqio, tf


def export_dataset_fn(out: str | Path, columns: Sequence[str] = TEXT, task: str | None = None):
    """A seqio ``dataset_fn(split, shuffle_files, seed=None)`` over a finished export:
    its rows in order (only those of ``task`` when given), as string features ``columns``."""
    from .export.verify import iter_shards, load_manifest

    out = Path(out)
    m = load_manifest(out)  # refuses an unfinished export
    names = {c["name"] for c in m["schema"]}
    missing = [c for c in columns if c not in names]
    if missing:
        raise FlanDataError(f"{out}: the export has no column(s) {missing}; it has {sorted(names)}")
    cols = list(dict.fromkeys([*columns, "task"])) if task else list(columns)

    def rows():
        for t in iter_shards(out, cols):
            data = [t[c].to_pylist() for c in cols]
            for row in zip(*data):
                r = dict(zip(cols, row))
                if task is None or r["task"] == task:
                    yield {c: r[c] for c in columns}

    def dataset_fn(split: str, shuffle_files: bool = False, seed: int | None = None):
        _, tf = _seqio()
        if split != SPLIT:
            raise FlanDataError(f"{out}: an export has one split, {SPLIT!r}; got {split!r}")
        sig = {c: tf.TensorSpec(shape=(), dtype=tf.string) for c in columns}
        return tf.data.Dataset.from_generator(rows, output_signature=sig)

    return dataset_fn


def _task(name: str, dataset_fn, vocabulary, n: int | None, add_eos: bool, replace: bool):
    seqio, _ = _seqio()
    if replace:
        seqio.TaskRegistry.remove(name)
    features = {k: seqio.Feature(vocabulary=vocabulary, add_eos=add_eos) for k in TEXT}
    source = seqio.FunctionDataSource(
        dataset_fn=dataset_fn,
        splits=(SPLIT,),
        num_input_examples={SPLIT: n} if n is not None else None,
    )
    # tokenize keeps the texts as inputs_pretokenized / targets_pretokenized
    return seqio.TaskRegistry.add(
        name,
        source=source,
        preprocessors=[
            seqio.preprocessors.tokenize,
            seqio.CacheDatasetPlaceholder(),
            seqio.preprocessors.append_eos_after_trim,
        ],
        output_features=features,
    )


def register_export(
    name: str,
    out: str | Path,
    vocabulary,
    *,
    by_task: bool = False,
    extra_columns: Sequence[str] = (),
    add_eos: bool = True,
    verify: bool = True,
    replace: bool = False,
):
    """Register the export folder ``out`` as seqio Task ``name`` (or, with
    ``by_task``, a Mixture of one Task per flan task named ``name.<task>``,
    rated by exported counts); return it.

    ``vocabulary`` is any ``seqio.Vocabulary`` (``seqio.SentencePieceVocabulary(path)``
    for T5's). ``extra_columns`` (``task``, ``example_id``, …) pass through
    untokenized. ``verify`` checks the shards' sha256 first; ``replace``
    re-registers an existing name.
    """
    from .export.verify import load_manifest
    from .export.verify import verify as check

    seqio, _ = _seqio()
    out = Path(out).resolve()
    if verify:
        problems = check(out)
        if problems:
            raise FlanDataError(
                f"{out}: not a complete, intact export:\n  " + "\n  ".join(problems)
            )
    m = load_manifest(out)
    cols = list(dict.fromkeys([*TEXT, *extra_columns]))
    if not by_task:
        return _task(
            name, export_dataset_fn(out, cols), vocabulary, m["num_rows"], add_eos, replace
        )
    rates = {}
    for task, d in sorted(m["counts"].items()):
        n = sum(d.values())
        if n:
            _task(f"{name}.{task}", export_dataset_fn(out, cols, task=task), vocabulary, n, add_eos, replace)  # fmt: skip
            rates[f"{name}.{task}"] = n
    if replace:
        seqio.MixtureRegistry.remove(name)
    return seqio.MixtureRegistry.add(name, list(rates.items()))


def register_mixture(
    name: str,
    catalog,
    mixture: str,
    vocabulary,
    *,
    cache_dir: str | Path,
    total: int | None = None,
    seed: int = 0,
    by_task: bool = False,
    replace: bool = False,
    **export_kwargs: Any,
):
    """Render ``mixture`` from ``catalog`` into ``cache_dir/<name>`` (a normal export:
    deterministic, resumed if interrupted, reused when complete) and register it
    as with :func:`register_export`. ``export_kwargs`` go to
    :func:`~flan_data.export.export_mixture` (``workers``, ``output``, ``source_dirs``, …)."""
    from .export import export_mixture

    _seqio()  # fail before rendering when seqio is missing
    out = Path(cache_dir) / name
    export_kwargs.setdefault("progress", False)
    export_mixture(catalog, mixture, out, total=total, seed=seed, **export_kwargs)
    return register_export(name, out, vocabulary, by_task=by_task, replace=replace)


__all__ = ["export_dataset_fn", "register_export", "register_mixture"]
