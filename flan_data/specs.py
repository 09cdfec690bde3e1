"""Immutable specifications: what the catalog and template files describe.

All specs are frozen dataclasses holding tuples and read-only mappings; they are
validated when built (by :mod:`flan_data.catalog`) and never change afterwards.

>>> s = SourceSpec(kind="jsonl", path="anli_r1")
>>> s.split_name("validation")
'validation'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

#: Output formats, in the order the Flan 2022 paper lists them.
FORMATS = ("zs_opt", "zs_noopt", "fs_opt", "fs_noopt", "cot")
#: How options are written (``RenderConfig.option_style``); here so the CLI needs no renderer to list them.
OPTION_STYLES = ("random", "plain")
#: Where a task's records come from (``--source``); here so the CLI needs no source modules to list them.
SOURCE_CHOICES = ("auto", "real", "sample")
#: Template kinds.
TEMPLATE_KINDS = ("zero_shot", "few_shot", "cot", "inversion")
#: The five collections of Flan 2022.
COLLECTIONS = ("flan2021", "t0sf", "niv2", "cot", "dialog")
#: Template dialects: ``flan`` (this project's Jinja rules) and ``promptsource``
#: (promptsource's rules: one text split on ``|||``, no block trimming).
DIALECTS = ("flan", "promptsource")
#: Source kinds the library can read.
SOURCE_KINDS = ("hf", "niv2", "cot_tsv", "jsonl", "parquet", "csv", "tsv", "arrow", "raw")

#: License use classes, least to most restrictive (the Data Provenance Collection's
#: order), then ``unknown`` for tasks without license facts.
LICENSE_CLASSES = ("commercial", "unspecified", "non-commercial", "academic-only", "unknown")

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def frozen_mapping(d: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A read-only view of a copy of ``d`` (nested dicts/lists are frozen too)."""
    if not d:
        return _EMPTY
    return MappingProxyType({k: _freeze(v) for k, v in d.items()})


def _freeze(v: Any) -> Any:
    if isinstance(v, Mapping):
        return frozen_mapping(v)
    if isinstance(v, list | tuple):
        return tuple(_freeze(x) for x in v)
    return v


def thaw(v: Any) -> Any:
    """Plain dicts/lists from frozen mappings/tuples (for JSON and manifests)."""
    if isinstance(v, LicenseInfo):
        return v.to_dict()
    if isinstance(v, Mapping):
        return {k: thaw(x) for k, x in v.items()}
    if isinstance(v, tuple | list):
        return [thaw(x) for x in v]
    return v


@dataclass(frozen=True)
class SourceSpec:
    """Where a task's records come from.

    ``splits`` maps canonical split names (``train``, ``validation``, ``test``) to
    the source's own split names. ``validation_size`` carves the last N records of
    the train split into ``validation`` for sources that have one split only.
    ``options`` holds kind-specific settings (e.g. ``data_files``, ``streaming``).
    """

    kind: str
    path: str
    config: str | None = None
    revision: str | None = None
    splits: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    id_field: str | None = None
    validation_size: int | None = None
    note: str | None = None
    options: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    def split_name(self, split: str) -> str:
        """The source's name for canonical ``split`` (itself when unmapped)."""
        return self.splits.get(split, split)

    def canonical_splits(self) -> tuple[str, ...]:
        names = list(self.splits) or ["train", "validation"]
        if self.validation_size and "validation" not in names:
            names.append("validation")
        return tuple(names)

    def describe(self) -> str:
        parts = [f"{self.kind}:{self.path}"]
        if self.config:
            parts.append(f"config={self.config}")
        if self.revision:
            parts.append(f"revision={self.revision}")
        return " ".join(parts)


@dataclass(frozen=True)
class SampleTurn:
    """Pick one turn of a dialog per record, seeded by the record's id.

    ``field`` names the list of turns; ``parity`` limits the candidates to
    ``odd`` or ``even`` 0-based indices (or ``any``); indices below
    ``min_index`` are never chosen. The chosen index is stored in the record
    as ``as_`` (YAML key ``as``) for the field expressions to use.
    """

    field: str
    as_: str = "turn"
    parity: str = "any"
    min_index: int = 0
    seed: int = 0


@dataclass(frozen=True)
class RecordRules:
    """Declarative record rules applied by the source layer, in this order:

    1. ``explode``: new field -> expression giving a list; one record per list
       element (lists are zipped and must have equal lengths), with example id
       ``<record id>#<element index>`` and the element index in ``element_index``;
    2. ``sample_turn``: see :class:`SampleTurn`;
    3. ``filter``: a sandboxed Jinja expression; records where it is falsy are dropped.

    >>> RecordRules(filter="label >= 0").describe()
    ['filter: label >= 0']
    """

    filter: str | None = None
    explode: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    sample_turn: SampleTurn | None = None

    def __bool__(self) -> bool:
        return bool(self.filter or self.explode or self.sample_turn)

    def describe(self) -> list[str]:
        """One line per rule, in the order they apply."""
        out = []
        if self.explode:
            out.append("explode: " + ", ".join(f"{k} <- {v}" for k, v in self.explode.items()))
        if self.sample_turn:
            st = self.sample_turn
            out.append(
                f"sample_turn: {st.as_} <- one {st.parity} index of {st.field}"
                + (f" (>= {st.min_index})" if st.min_index else "")
                + f", seed {st.seed}"
            )
        if self.filter:
            out.append(f"filter: {self.filter}")
        return out


@dataclass(frozen=True)
class LicenseInfo:
    """License facts of a task's data, with where they come from.

    ``use`` is one of :data:`LICENSE_CLASSES`; a flag that is ``None`` is not
    known. ``source`` names the record the facts were taken from (e.g. a Data
    Provenance Collection entry) or the file that overrode them.

    >>> LicenseInfo(use="commercial", licenses=("MIT License",)).known
    True
    """

    use: str = "unknown"
    licenses: tuple[str, ...] = ()
    attribution: bool | None = None
    share_alike: bool | None = None
    model_generated: bool | None = None
    url: str | None = None
    source: str | None = None

    @property
    def known(self) -> bool:
        return self.use != "unknown"

    def to_dict(self) -> dict[str, Any]:
        return {
            "use": self.use,
            "licenses": list(self.licenses),
            "attribution": self.attribution,
            "share_alike": self.share_alike,
            "model_generated": self.model_generated,
            "url": self.url,
            "source": self.source,
        }


@dataclass(frozen=True)
class TaskMetadata:
    category: str | None = None
    languages: tuple[str, ...] = ()
    license: str | None = None
    held_out: bool = False
    inversion_of: str | None = None
    exclude_from_training: bool = False
    task_type: str | None = None
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    licensing: LicenseInfo = field(default_factory=LicenseInfo)


@dataclass(frozen=True)
class TaskSpec:
    """One task: a source, a mapping to canonical fields, options and templates.

    ``fields`` maps canonical field names to Jinja expressions over the raw
    record. ``options`` is a fixed tuple, or ``options_field`` names an expression
    giving the list per record. ``exemplars`` is ``"pool"`` (few-shot exemplars
    drawn from the train split) or ``"field:<name>"`` (a canonical field holding
    the exemplars, as NIv2's positive examples). ``records`` holds the record
    rules (filter/explode/sample_turn) the source layer applies before anything
    else sees a record.
    """

    name: str
    collection: str
    source: SourceSpec
    fields: Mapping[str, str]
    templates: tuple[str, ...]
    sample: SourceSpec | None = None
    options: tuple[str, ...] | None = None
    options_field: str | None = None
    exemplars: str = "pool"
    metadata: TaskMetadata = field(default_factory=TaskMetadata)
    file: str = ""
    records: RecordRules = field(default_factory=RecordRules)
    aliases: tuple[str, ...] = ()

    @property
    def has_options(self) -> bool:
        return self.options is not None or self.options_field is not None

    @property
    def exemplar_field(self) -> str | None:
        return self.exemplars.split(":", 1)[1] if self.exemplars.startswith("field:") else None


@dataclass(frozen=True)
class TemplateSpec:
    """A Jinja input/target pair with a stable id.

    In the ``promptsource`` dialect ``input`` holds the whole promptsource text
    (rendered once and split on ``|||``), ``target`` is empty, ``answer_choices``
    is promptsource's answer-choices text and ``truncate`` the length each
    ``{{ ... }}`` value is cut to (None: not cut).
    """

    id: str
    set: str
    kind: str
    input: str
    target: str
    file: str = ""
    dialect: str = "flan"
    answer_choices: str | None = None
    truncate: int | None = None


@dataclass(frozen=True)
class FewShotStyle:
    """How exemplars and the query are joined in few-shot formats."""

    id: str
    input_prefix: str = ""
    target_prefix: str = ""
    x_y_delimiter: str = "\n"
    example_separator: str = "\n\n"
    file: str = ""


@dataclass(frozen=True)
class CollectionSpec:
    name: str
    file: str
    description: str = ""
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class MixtureMember:
    """A weighted member of a mixture: a task, a collection or another mixture."""

    kind: str  # "task" | "collection" | "mixture"
    name: str
    rate: float | None = None
    cap: int | None = None
    formats: tuple[str, ...] | None = None
    inversion_weight: float | None = None
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class MixtureSpec:
    name: str
    members: tuple[MixtureMember, ...]
    description: str = ""
    source: str = "real"  # "real" | "sample"
    temperature: float = 1.0
    total: int | None = None
    file: str = ""


@dataclass(frozen=True)
class RenderedExample:
    """One rendered training example with everything needed to audit it."""

    inputs: str
    targets: str
    task: str
    collection: str
    format: str
    template_id: str
    example_id: str
    source_split: str
    seed: int
    fewshot_style: str | None = None
    options: tuple[str, ...] | None = None
    exemplar_ids: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "targets": self.targets,
            "task": self.task,
            "collection": self.collection,
            "format": self.format,
            "template_id": self.template_id,
            "fewshot_style": self.fewshot_style,
            "options": list(self.options) if self.options is not None else None,
            "exemplar_ids": list(self.exemplar_ids),
            "example_id": self.example_id,
            "source_split": self.source_split,
            "seed": self.seed,
        }
