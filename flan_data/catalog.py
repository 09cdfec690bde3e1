"""Load ``catalog.yaml``, the collection files and the template files into a
validated, immutable :class:`Catalog`.

Nothing registers itself anywhere: a catalog is a value you load, pass around
and query.

>>> cat = Catalog.load()                     # the bundled catalog
>>> cat.task("anli_r1").collection
'flan2021'
>>> [t.name for t in cat.search("anli")][:1]
['anli_r1']
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .errors import CatalogError, UnknownNameError, suggest
from .specs import (
    DIALECTS,
    FORMATS,
    LICENSE_CLASSES,
    SOURCE_KINDS,
    TEMPLATE_KINDS,
    CollectionSpec,
    FewShotStyle,
    LicenseInfo,
    MixtureMember,
    MixtureSpec,
    RecordRules,
    SourceSpec,
    TaskMetadata,
    TaskSpec,
    TemplateSpec,
    frozen_mapping,
)


def default_root() -> Path:
    """Where the bundled data lives: inside the wheel, or the repository root."""
    here = Path(__file__).resolve().parent
    bundled = here / "_bundled"
    if (bundled / "catalog.yaml").is_file():
        return bundled
    return here.parent


def read_yaml(path: Path) -> Any:
    """Parse one YAML file; syntax and encoding errors name the file and line."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise CatalogError(str(path), "", "file not found") from None
    except UnicodeDecodeError as e:
        raise CatalogError(str(path), "", f"not valid UTF-8 (byte offset {e.start})") from None
    import yaml  # here, not at import: a cached catalog loads without the YAML parser

    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise CatalogError(str(path), "", f"malformed YAML: {where}{problem}") from None


# ----------------------------------------------------------------------------- validation


class _V:
    """Small schema checks that report file + key path + what was expected."""

    def __init__(self, file: str):
        self.file = file

    def fail(self, path: str, problem: str) -> CatalogError:
        return CatalogError(self.file, path, problem)

    def mapping(self, obj: Any, path: str) -> Mapping[str, Any]:
        if not isinstance(obj, Mapping):
            raise self.fail(path, f"expected a mapping, got {_typename(obj)}")
        return obj

    def seq(self, obj: Any, path: str) -> list[Any]:
        if not isinstance(obj, list):
            raise self.fail(path, f"expected a list, got {_typename(obj)}")
        return obj

    def string(self, obj: Any, path: str, *, optional: bool = False) -> str | None:
        if obj is None and optional:
            return None
        if isinstance(obj, bool) or not isinstance(obj, str | int | float):
            raise self.fail(path, f"expected a string, got {_typename(obj)}")
        return str(obj)

    def strings(self, obj: Any, path: str) -> tuple[str, ...]:
        if isinstance(obj, str):
            return (obj,)
        return tuple(self.string(x, f"{path}[{i}]") for i, x in enumerate(self.seq(obj, path)))

    def boolean(self, obj: Any, path: str) -> bool:
        if not isinstance(obj, bool):
            raise self.fail(path, f"expected true or false, got {_typename(obj)}")
        return obj

    def number(self, obj: Any, path: str, *, integer: bool = False, minimum: float = 0) -> Any:
        ok = isinstance(obj, int) if integer else isinstance(obj, int | float)
        if isinstance(obj, bool) or not ok:
            raise self.fail(
                path, f"expected {'an integer' if integer else 'a number'}, got {_typename(obj)}"
            )
        if isinstance(obj, float) and not math.isfinite(obj):
            # NaN passes every comparison test below and inf breaks plans later
            raise self.fail(path, f"expected a finite number, got {obj}")
        if obj < minimum:
            raise self.fail(path, f"expected a value >= {minimum}, got {obj}")
        return obj

    def keys(
        self, d: Mapping[str, Any], path: str, allowed: Iterable[str], required: Iterable[str] = ()
    ) -> None:
        allowed = tuple(allowed)
        for k in d:
            if k not in allowed:
                hint = suggest(str(k), allowed, n=3)
                extra = (
                    f"; did you mean {', '.join(hint)}?"
                    if hint
                    else f"; expected one of: {', '.join(allowed)}"
                )
                raise self.fail(_join(path, str(k)), f"unknown key {k!r}{extra}")
        for k in required:
            if k not in d:
                raise self.fail(path, f"missing required key {k!r}")


def _typename(obj: Any) -> str:
    if obj is None:
        return "nothing (null)"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(obj), type(obj).__name__
    )


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


_SOURCE_KEYS = (
    "kind",
    "path",
    "config",
    "revision",
    "splits",
    "id_field",
    "validation_size",
    "note",
)
_SOURCE_OPTION_KEYS = (
    "data_files",
    "streaming",
    "explode",
    "url",
    "trust_remote_code",
    "encoding",
    "delimiter",
    "manual",
    "column_names",
    "export_config",
    "archive",
    "files",
    "format",
    "columns",
    "types",
    "kv_fields",
    "replace",
)
_TASK_KEYS = (
    "name", "collection", "description", "source", "sample", "fields", "options",
    "templates", "exemplars", "metadata", "records", "aliases",
)  # fmt: skip
_META_KEYS = (
    "category", "languages", "license", "held_out", "inversion_of", "exclude_from_training", "task_type",
    "generic_category", "source_dataset", "niv2_split", "notes", "num_examples", "licensing",
)  # fmt: skip
_META_CORE = (
    "category",
    "languages",
    "license",
    "held_out",
    "inversion_of",
    "exclude_from_training",
    "task_type",
    "licensing",
)
_LICENSING_KEYS = (
    "use",
    "licenses",
    "attribution",
    "share_alike",
    "model_generated",
    "url",
    "source",
)


def _flag(v: _V, obj: Any, path: str) -> bool | None:
    if obj is None or obj == "unknown":
        return None
    if not isinstance(obj, bool):
        raise v.fail(path, f"expected true, false or unknown, got {_typename(obj)}")
    return obj


def _parse_licensing(
    v: _V, raw: Any, path: str, base: LicenseInfo | None = None, source: str | None = None
) -> LicenseInfo:
    """``metadata.licensing`` (or a license override on top of ``base``)."""
    d = v.mapping(raw, path)
    v.keys(d, path, _LICENSING_KEYS)
    b = base or LicenseInfo()
    use = v.string(d.get("use", b.use), _join(path, "use"))
    if use not in LICENSE_CLASSES:
        hint = suggest(use, LICENSE_CLASSES, n=1)
        raise v.fail(
            _join(path, "use"),
            f"unknown license use class {use!r}; expected one of {', '.join(LICENSE_CLASSES)}"
            + (f" (did you mean {hint[0]}?)" if hint else ""),
        )
    return LicenseInfo(
        use=use,
        licenses=v.strings(d["licenses"], _join(path, "licenses")) if "licenses" in d else b.licenses,
        attribution=_flag(v, d["attribution"], _join(path, "attribution")) if "attribution" in d else b.attribution,
        share_alike=_flag(v, d["share_alike"], _join(path, "share_alike")) if "share_alike" in d else b.share_alike,
        model_generated=_flag(v, d["model_generated"], _join(path, "model_generated"))
        if "model_generated" in d else b.model_generated,
        url=v.string(d["url"], _join(path, "url"), optional=True) if "url" in d else b.url,
        source=v.string(d["source"], _join(path, "source"), optional=True) if "source" in d else (source or b.source),
    )  # fmt: skip


def _parse_source(v: _V, raw: Any, path: str, name: str) -> SourceSpec:
    d = v.mapping(raw, path)
    v.keys(d, path, _SOURCE_KEYS + _SOURCE_OPTION_KEYS, required=("kind", "path"))
    kind = v.string(d["kind"], _join(path, "kind"))
    if kind not in SOURCE_KINDS:
        hint = suggest(kind, SOURCE_KINDS, n=2)
        raise v.fail(
            _join(path, "kind"),
            f"unknown source kind {kind!r}; expected one of {', '.join(SOURCE_KINDS)}"
            + (f" (did you mean {hint[0]}?)" if hint else ""),
        )
    splits = {}
    if d.get("splits") is not None:
        sm = v.mapping(d["splits"], _join(path, "splits"))
        for k, val in sm.items():
            splits[str(k)] = v.string(val, _join(path, f"splits.{k}"))
    vs = d.get("validation_size")
    if vs is not None:
        v.number(vs, _join(path, "validation_size"), integer=True, minimum=1)

    def fill(s: Any, key: str) -> str | None:
        s = v.string(s, _join(path, key), optional=True)
        return s.replace("{name}", name) if s is not None else None

    # export_config names a folder of the hub's Parquet export, like config a builder config
    sub = {
        k: (fill(d[k], k) if k == "export_config" else d[k]) for k in _SOURCE_OPTION_KEYS if k in d
    }

    return SourceSpec(
        kind=kind,
        path=fill(d["path"], "path"),
        config=fill(d.get("config"), "config"),
        revision=v.string(d.get("revision"), _join(path, "revision"), optional=True),
        splits=frozen_mapping(splits),
        id_field=v.string(d.get("id_field"), _join(path, "id_field"), optional=True),
        validation_size=vs,
        note=v.string(d.get("note"), _join(path, "note"), optional=True),
        options=frozen_mapping(sub),
    )


def _merge_defaults(defaults: Mapping[str, Any], task: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(defaults)
    for k, val in task.items():
        if (
            k in ("metadata", "source", "sample", "fields", "records")
            and isinstance(out.get(k), Mapping)
            and isinstance(val, Mapping)
        ):
            out[k] = {**out[k], **val}
        else:
            out[k] = val
    return out


def _parse_task(v: _V, raw: Mapping[str, Any], path: str, collection: str) -> TaskSpec:
    v.keys(raw, path, _TASK_KEYS, required=("name", "source", "fields", "templates"))
    name = v.string(raw["name"], _join(path, "name"))
    if raw.get("collection") not in (None, collection):
        raise v.fail(
            _join(path, "collection"),
            f"task {name!r} says collection {raw['collection']!r} but is listed in collection {collection!r}",
        )
    source = _parse_source(v, raw["source"], _join(path, "source"), name)
    sample = (
        _parse_source(v, raw["sample"], _join(path, "sample"), name) if raw.get("sample") else None
    )
    fmap = v.mapping(raw["fields"], _join(path, "fields"))
    if not fmap:
        raise v.fail(_join(path, "fields"), "expected at least one field mapping")
    fields = {str(k): v.string(e, _join(path, f"fields.{k}")) for k, e in fmap.items()}
    options: tuple[str, ...] | None = None
    options_field: str | None = None
    if raw.get("options") is not None:
        o = raw["options"]
        if isinstance(o, Mapping):
            v.keys(o, _join(path, "options"), ("field",), required=("field",))
            options_field = v.string(o["field"], _join(path, "options.field"))
        else:
            options = v.strings(o, _join(path, "options"))
            if len(options) < 2:
                raise v.fail(_join(path, "options"), "expected at least two options")
            if len(set(options)) != len(options):
                raise v.fail(_join(path, "options"), "options must be distinct")
    templates = v.strings(raw["templates"], _join(path, "templates"))
    if not templates:
        raise v.fail(_join(path, "templates"), "expected at least one template set")
    exemplars = v.string(raw.get("exemplars", "pool"), _join(path, "exemplars"))
    if exemplars != "pool" and not (exemplars.startswith("field:") and exemplars[6:]):
        raise v.fail(
            _join(path, "exemplars"), f"expected 'pool' or 'field:<name>', got {exemplars!r}"
        )
    md = v.mapping(raw.get("metadata") or {}, _join(path, "metadata"))
    v.keys(md, _join(path, "metadata"), _META_KEYS)
    mp = _join(path, "metadata")
    meta = TaskMetadata(
        category=v.string(md.get("category"), _join(mp, "category"), optional=True),
        languages=v.strings(md.get("languages") or [], _join(mp, "languages")),
        license=v.string(md.get("license"), _join(mp, "license"), optional=True),
        held_out=v.boolean(md.get("held_out", False), _join(mp, "held_out")),
        inversion_of=v.string(md.get("inversion_of"), _join(mp, "inversion_of"), optional=True),
        exclude_from_training=v.boolean(
            md.get("exclude_from_training", False), _join(mp, "exclude_from_training")
        ),
        task_type=v.string(md.get("task_type"), _join(mp, "task_type"), optional=True),
        extra=frozen_mapping({k: val for k, val in md.items() if k not in _META_CORE}),
        licensing=_parse_licensing(v, md["licensing"], _join(mp, "licensing"))
        if md.get("licensing") is not None
        else LicenseInfo(),
    )
    records = RecordRules()
    if raw.get("records") is not None:
        from .records import parse_rules

        records = parse_rules(v, raw["records"], _join(path, "records"))
    return TaskSpec(
        name=name,
        records=records,
        aliases=v.strings(raw.get("aliases") or [], _join(path, "aliases")),
        collection=collection,
        source=source,
        sample=sample,
        fields=frozen_mapping(fields),
        options=options,
        options_field=options_field,
        templates=templates,
        exemplars=exemplars,
        metadata=meta,
        file=v.file,
    )


_COLLECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


def _parse_templates(v: _V, doc: Any) -> tuple[list[TemplateSpec], list[FewShotStyle]]:
    d = v.mapping(doc, "")
    v.keys(d, "", ("sets", "styles", "description"))
    templates: list[TemplateSpec] = []
    for set_name, sraw in v.mapping(d.get("sets") or {}, "sets").items():
        sp = f"sets.{set_name}"
        s = v.mapping(sraw, sp)
        v.keys(
            s,
            sp,
            ("kind", "description", "templates", "dialect", "truncate"),
            required=("templates",),
        )
        default_kind = v.string(s.get("kind", "zero_shot"), _join(sp, "kind"))
        dialect = v.string(s.get("dialect", "flan"), _join(sp, "dialect"))
        if dialect not in DIALECTS:
            raise v.fail(
                _join(sp, "dialect"),
                f"unknown template dialect {dialect!r}; expected one of {', '.join(DIALECTS)}",
            )
        truncate = s.get("truncate")
        if truncate is not None and (
            isinstance(truncate, bool) or not isinstance(truncate, int) or truncate <= 0
        ):
            raise v.fail(
                _join(sp, "truncate"), f"expected a positive integer or null, got {truncate!r}"
            )
        if truncate is not None and dialect != "promptsource":
            raise v.fail(
                _join(sp, "truncate"), "only sets in the promptsource dialect take 'truncate'"
            )
        ps = dialect == "promptsource"
        for i, traw in enumerate(v.seq(s["templates"], _join(sp, "templates"))):
            tp = f"{sp}.templates[{i}]"
            t = v.mapping(traw, tp)
            if ps:
                v.keys(
                    t,
                    tp,
                    ("id", "jinja", "answer_choices", "description"),
                    required=("id", "jinja"),
                )
            else:
                v.keys(
                    t,
                    tp,
                    ("id", "kind", "input", "target", "description"),
                    required=("id", "input", "target"),
                )
            kind = v.string(t.get("kind", default_kind), _join(tp, "kind"))
            if kind not in TEMPLATE_KINDS:
                raise v.fail(
                    _join(tp, "kind"),
                    f"unknown template kind {kind!r}; expected one of {', '.join(TEMPLATE_KINDS)}",
                )
            if ps:
                if kind != "zero_shot":
                    raise v.fail(_join(sp, "kind"), "promptsource sets are zero_shot")
                choices = t.get("answer_choices")
                spec = TemplateSpec(
                    id=v.string(t["id"], _join(tp, "id")),
                    set=str(set_name),
                    kind=kind,
                    input=v.string(t["jinja"], _join(tp, "jinja")),
                    target="",
                    file=v.file,
                    dialect=dialect,
                    answer_choices=(
                        None if choices is None else v.string(choices, _join(tp, "answer_choices"))
                    ),
                    truncate=truncate,
                )
            else:
                spec = TemplateSpec(
                    id=v.string(t["id"], _join(tp, "id")),
                    set=str(set_name),
                    kind=kind,
                    input=v.string(t["input"], _join(tp, "input")),
                    target=v.string(t["target"], _join(tp, "target")),
                    file=v.file,
                )
            templates.append(spec)
    styles: list[FewShotStyle] = []
    for i, sraw in enumerate(v.seq(d.get("styles") or [], "styles")):
        sp = f"styles[{i}]"
        s = v.mapping(sraw, sp)
        keys = ("input_prefix", "target_prefix", "x_y_delimiter", "example_separator")
        v.keys(s, sp, ("id", "description", *keys), required=("id",))
        vals = {k: v.string(s[k], _join(sp, k)) for k in keys if k in s}
        styles.append(FewShotStyle(id=v.string(s["id"], _join(sp, "id")), file=v.file, **vals))
    return templates, styles


def _parse_mixture(v: _V, name: str, raw: Any) -> MixtureSpec:
    p = f"mixtures.{name}"
    d = v.mapping(raw, p)
    v.keys(
        d, p, ("description", "members", "source", "temperature", "total"), required=("members",)
    )
    members = []
    for i, mraw in enumerate(v.seq(d["members"], _join(p, "members"))):
        mp = f"{p}.members[{i}]"
        m = v.mapping(mraw, mp)
        v.keys(
            m,
            mp,
            (
                "task",
                "collection",
                "mixture",
                "rate",
                "cap",
                "formats",
                "inversion_weight",
                "exclude",
            ),
        )
        kinds = [k for k in ("task", "collection", "mixture") if k in m]
        if len(kinds) != 1:
            raise v.fail(mp, "expected exactly one of 'task', 'collection' or 'mixture'")
        fmts = v.strings(m["formats"], _join(mp, "formats")) if "formats" in m else None
        for f in fmts or ():
            if f not in FORMATS:
                raise UnknownNameError("format", f, FORMATS, hint=f"{v.file} at {mp}.formats")
        members.append(
            MixtureMember(
                kind=kinds[0],
                name=v.string(m[kinds[0]], _join(mp, kinds[0])),
                rate=v.number(m["rate"], _join(mp, "rate")) if "rate" in m else None,
                cap=v.number(m["cap"], _join(mp, "cap"), integer=True) if "cap" in m else None,
                formats=fmts,
                inversion_weight=v.number(m["inversion_weight"], _join(mp, "inversion_weight"))
                if "inversion_weight" in m
                else None,
                exclude=v.strings(m.get("exclude") or [], _join(mp, "exclude")),
            )
        )
    source = v.string(d.get("source", "real"), _join(p, "source"))
    if source not in ("real", "sample"):
        raise v.fail(_join(p, "source"), f"expected 'real' or 'sample', got {source!r}")
    return MixtureSpec(
        name=name,
        members=tuple(members),
        description=v.string(d.get("description", ""), _join(p, "description")) or "",
        source=source,
        temperature=v.number(d.get("temperature", 1.0), _join(p, "temperature")),
        total=v.number(d["total"], _join(p, "total"), integer=True)
        if d.get("total") is not None
        else None,
        file=v.file,
    )


def _apply_license_facts(path: Path, tasks: dict[str, TaskSpec]) -> None:
    """``license_facts`` (JSON: ``records`` by id, ``tasks`` -> [record, match rule]
    or null): the facts of tasks whose own metadata gives none. Names of tasks not
    in this catalog are ignored (the file may cover more than one catalog)."""
    import json
    from dataclasses import replace

    v = _V(str(path))
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise v.fail("", f"not valid JSON: {e}") from None
    d = v.mapping(doc, "")
    v.keys(d, "", ("description", "records", "tasks"), required=("records", "tasks"))
    records: dict[str, tuple[LicenseInfo, str]] = {}
    for rid, raw in v.mapping(d["records"], "records").items():
        rec = dict(v.mapping(raw, f"records.{rid}"))
        coll = v.string(rec.pop("collection", ""), f"records.{rid}.collection") or ""
        records[rid] = (_parse_licensing(v, rec, f"records.{rid}"), coll)
    unknown = LicenseInfo(
        use="unknown", source="Data Provenance Collection: no entry for this task"
    )
    for name, ref in v.mapping(d["tasks"], "tasks").items():
        t = tasks.get(name)
        if t is None or t.metadata.licensing != LicenseInfo():
            continue
        if ref is None:
            info = unknown
        else:
            ref = v.strings(ref, f"tasks.{name}")
            if not ref or ref[0] not in records:
                raise CatalogError(
                    v.file,
                    f"tasks.{name}",
                    str(UnknownNameError("license record", ref[0] if ref else "", records)),
                )
            base, coll = records[ref[0]]
            rule = f"; matched by {ref[1]}" if len(ref) > 1 else ""
            info = replace(base, source=f"Data Provenance Collection {ref[0]} ({coll}{rule})")
        tasks[name] = replace(t, metadata=replace(t.metadata, licensing=info))


def _apply_license_overrides(v: _V, raw: Any, tasks: dict[str, TaskSpec]) -> None:
    """``license_overrides: {task: {use: ..., licenses: [...], ...}}``: the user's
    own license facts for some tasks, on top of the catalog's (keys not given
    keep the catalog's value; ``source`` defaults to the overriding file)."""
    from dataclasses import replace

    for name, entry in v.mapping(raw, "license_overrides").items():
        path = f"license_overrides.{name}"
        if name not in tasks:
            raise CatalogError(v.file, path, str(UnknownNameError("task", str(name), tasks)))
        t = tasks[name]
        info = _parse_licensing(
            v, entry, path, base=t.metadata.licensing, source=f"override in {v.file}"
        )
        tasks[name] = replace(t, metadata=replace(t.metadata, licensing=info))


def _names(v: str | Sequence[str]) -> list[str]:
    items = [v] if isinstance(v, str) else list(v)
    return [p.strip() for x in items for p in str(x).split(",") if p.strip()]


#: English names of the languages the catalog's ISO codes stand for (for --language).
LANGUAGE_NAMES = {
    "arabic": "ar", "bengali": "bn", "catalan": "ca", "chinese": "zh", "czech": "cs", "dutch": "nl",
    "english": "en", "finnish": "fi", "french": "fr", "galician": "gl", "german": "de", "greek": "el",
    "gujarati": "gu", "hebrew": "he", "hindi": "hi", "indonesian": "id", "italian": "it", "japanese": "ja",
    "korean": "ko", "malayalam": "ml", "marathi": "mr", "persian": "fa", "polish": "pl", "portuguese": "pt",
    "punjabi": "pa", "romanian": "ro", "russian": "ru", "spanish": "es", "swahili": "sw", "swedish": "sv",
    "tamil": "ta", "telugu": "te", "thai": "th", "turkish": "tr", "urdu": "ur", "vietnamese": "vi",
    "yoruba": "yo",
}  # fmt: skip


def _language_code(x: str) -> str:
    return LANGUAGE_NAMES.get(x.lower(), x.lower())


def _yaml_files(p: Path) -> list[Path]:
    if p.is_dir():
        return sorted(x for x in p.rglob("*.yaml") if x.is_file())
    return [p]


# ----------------------------------------------------------------------------- the catalog


@dataclass(frozen=True)
class Catalog:
    """An immutable, validated view of the catalog, collections and templates.

    Build it with :meth:`Catalog.load`. Lookups raise :class:`UnknownNameError`
    with the closest names when a name is unknown.
    """

    root: Path
    collections: Mapping[str, CollectionSpec]
    tasks: Mapping[str, TaskSpec]
    templates: Mapping[str, TemplateSpec]
    template_sets: Mapping[str, tuple[str, ...]]
    fewshot_styles: tuple[FewShotStyle, ...]
    mixtures: Mapping[str, MixtureSpec]
    files: tuple[Path, ...] = field(default=(), repr=False)
    #: other names of tasks (e.g. NIv2 names FLAN spells twice) -> the task's name
    task_aliases: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}), repr=False
    )
    #: What ``extra_files`` the catalog was loaded with (workers load the same).
    extra_files: tuple[Path, ...] = field(default=(), repr=False)

    def __repr__(self) -> str:
        return (f"Catalog(root={str(self.root)!r}, collections={len(self.collections)}, tasks={len(self.tasks)}, "
                f"templates={len(self.templates)}, mixtures={sorted(self.mixtures)})")  # fmt: skip

    # -- loading

    @classmethod
    def load(
        cls, root: str | Path | None = None, extra_files: Sequence[str | Path] = ()
    ) -> Catalog:
        """Load ``root/catalog.yaml`` (default: the bundled catalog) and what it names.

        ``extra_files`` adds template files (with ``sets``/``styles``) or
        collection files (with ``collection`` + ``tasks``), e.g. a user's own.
        """
        root = Path(root) if root is not None else default_root()
        cat_file = root / "catalog.yaml" if root.is_dir() else root
        root = cat_file.parent
        v = _V(str(cat_file))
        doc = v.mapping(read_yaml(cat_file), "")
        v.keys(
            doc,
            "",
            (
                "version",
                "description",
                "collections",
                "template_files",
                "mixtures",
                "license_facts",
                "license_overrides",
            ),
            required=("collections",),
        )
        files: list[Path] = [cat_file]

        collections: dict[str, CollectionSpec] = {}
        for name, craw in v.mapping(doc["collections"], "collections").items():
            cp = f"collections.{name}"
            c = v.mapping(craw, cp)
            v.keys(c, cp, ("file", "aliases", "description"), required=("file",))
            if not isinstance(name, str) or not _COLLECTION_NAME.fullmatch(name):
                raise v.fail(
                    cp,
                    f"invalid collection name {name!r}: use letters, digits, '_', '-' and '.'",
                )
            collections[name] = CollectionSpec(
                name=name,
                file=v.string(c["file"], _join(cp, "file")),
                description=v.string(c.get("description", ""), _join(cp, "description")) or "",
                aliases=v.strings(c.get("aliases") or [], _join(cp, "aliases")),
            )

        tasks: dict[str, TaskSpec] = {}
        templates: dict[str, TemplateSpec] = {}
        styles: dict[str, FewShotStyle] = {}

        def add_collection_file(path: Path, expect: str | None) -> None:
            cv = _V(str(path))
            cdoc = cv.mapping(read_yaml(path), "")
            cv.keys(
                cdoc,
                "",
                ("collection", "description", "defaults", "tasks"),
                required=("collection", "tasks"),
            )
            cname = cv.string(cdoc["collection"], "collection")
            if expect is not None and cname != expect:
                raise cv.fail(
                    "collection", f"expected {expect!r} (as catalog.yaml says), got {cname!r}"
                )
            if cname not in collections:
                if expect is not None or not _COLLECTION_NAME.fullmatch(cname):
                    raise UnknownNameError("collection", cname, collections, hint=str(path))
                # A user's own collection file (--extra) brings its own collection.
                collections[cname] = CollectionSpec(
                    name=cname,
                    file=str(path),
                    description=cv.string(cdoc.get("description", ""), "description") or "",
                )
            defaults = cv.mapping(cdoc.get("defaults") or {}, "defaults")
            for i, traw in enumerate(cv.seq(cdoc["tasks"], "tasks")):
                tp = f"tasks[{i}]"
                t = _parse_task(cv, _merge_defaults(defaults, cv.mapping(traw, tp)), tp, cname)
                if t.name in tasks:
                    raise cv.fail(
                        tp, f"duplicate task name {t.name!r} (also in {tasks[t.name].file})"
                    )
                tasks[t.name] = t
            files.append(path)

        def add_template_file(path: Path) -> None:
            tv = _V(str(path))
            ts, ss = _parse_templates(tv, read_yaml(path))
            for t in ts:
                if t.id in templates:
                    raise tv.fail(
                        f"sets.{t.set}",
                        f"duplicate template id {t.id!r} (also in {templates[t.id].file})",
                    )
                templates[t.id] = t
            for s in ss:
                if s.id in styles:
                    raise tv.fail(
                        "styles",
                        f"duplicate few-shot style id {s.id!r} (also in {styles[s.id].file})",
                    )
                styles[s.id] = s
            files.append(path)

        for c in collections.values():
            add_collection_file(root / c.file, c.name)
        for i, tf in enumerate(
            v.strings(doc.get("template_files") or ["templates"], "template_files")
        ):
            tpath = root / tf
            if not tpath.exists():
                raise v.fail(f"template_files[{i}]", f"no such file or folder: {tpath}")
            for p in _yaml_files(tpath):
                add_template_file(p)
        for i, lf in enumerate(v.strings(doc.get("license_facts") or [], "license_facts")):
            lpath = root / lf
            if not lpath.is_file():
                raise v.fail(f"license_facts[{i}]", f"no such file: {lpath}")
            _apply_license_facts(lpath, tasks)
            files.append(lpath)
        extra_mixtures: list[tuple[_V, Any]] = []
        overrides: list[tuple[_V, Any]] = []
        if doc.get("license_overrides") is not None:
            overrides.append((v, doc["license_overrides"]))
        for extra in extra_files:
            for p in _yaml_files(Path(extra)):
                d = read_yaml(p)
                if isinstance(d, Mapping) and "tasks" in d:
                    add_collection_file(p, None)
                elif isinstance(d, Mapping) and "mixtures" in d:
                    # a user's mixtures file: {description?, mixtures: {name: spec}}
                    mv = _V(str(p))
                    mv.keys(d, "", ("description", "mixtures"), required=("mixtures",))
                    extra_mixtures.append((mv, d["mixtures"]))
                    files.append(p)
                elif isinstance(d, Mapping) and "license_overrides" in d:
                    ov = _V(str(p))
                    ov.keys(d, "", ("description", "license_overrides"))
                    overrides.append((ov, d["license_overrides"]))
                    files.append(p)
                else:
                    add_template_file(p)
        for ov, raw in overrides:
            _apply_license_overrides(ov, raw, tasks)

        sets: dict[str, list[str]] = {}
        for t in templates.values():
            sets.setdefault(t.set, []).append(t.id)

        mixtures = {
            str(n): _parse_mixture(v, str(n), m)
            for n, m in v.mapping(doc.get("mixtures") or {}, "mixtures").items()
        }
        for mv, mdoc in extra_mixtures:
            for n, m in mv.mapping(mdoc, "mixtures").items():
                if str(n) in mixtures:
                    raise mv.fail(
                        f"mixtures.{n}",
                        f"duplicate mixture name {n!r} (also in {mixtures[str(n)].file or cat_file})",
                    )
                mixtures[str(n)] = _parse_mixture(mv, str(n), m)

        aliases: dict[str, str] = {}
        for t in tasks.values():
            for a in t.aliases:
                other = tasks.get(a)
                if other is not None or a in aliases:
                    raise CatalogError(
                        t.file,
                        f"task {t.name}.aliases",
                        f"alias {a!r} is already the name or an alias of task {other.name if other else aliases[a]!r}",
                    )
                aliases[a] = t.name
        cat = cls(
            task_aliases=MappingProxyType(aliases),
            root=root,
            collections=MappingProxyType(collections),
            tasks=MappingProxyType(tasks),
            templates=MappingProxyType(templates),
            template_sets=MappingProxyType({k: tuple(ids) for k, ids in sets.items()}),
            fewshot_styles=tuple(styles.values()),
            mixtures=MappingProxyType(mixtures),
            files=tuple(files),
            extra_files=tuple(Path(f) for f in extra_files),
        )
        cat._check_references()
        return cat

    def _check_references(self) -> None:
        for t in self.tasks.values():
            for s in t.templates:
                if s not in self.template_sets:
                    raise CatalogError(
                        t.file,
                        f"task {t.name}.templates",
                        str(UnknownNameError("template set", s, self.template_sets)),
                    )
            inv = t.metadata.inversion_of
            if inv is not None and inv not in self.tasks:
                raise CatalogError(
                    t.file,
                    f"task {t.name}.metadata.inversion_of",
                    str(UnknownNameError("task", inv, self.tasks)),
                )
        for m in self.mixtures.values():
            for i, mem in enumerate(m.members):
                where = f"mixtures.{m.name}.members[{i}]"
                pool = {
                    "task": self.tasks,
                    "collection": self.collections,
                    "mixture": self.mixtures,
                }[mem.kind]
                if mem.name not in pool and not (
                    mem.kind == "task" and mem.name in self.task_aliases
                ):
                    raise CatalogError(
                        m.file, where, str(UnknownNameError(mem.kind, mem.name, pool))
                    )

    # -- lookups

    def task(self, name: str) -> TaskSpec:
        """The task called ``name`` (or aliased so); an unknown name suggests the closest ones."""
        try:
            return self.tasks[name]
        except KeyError:
            alias = self.task_aliases.get(name)
            if alias is not None:
                return self.tasks[alias]
            raise UnknownNameError("task", name, self.tasks) from None

    def template(self, template_id: str) -> TemplateSpec:
        try:
            return self.templates[template_id]
        except KeyError:
            raise UnknownNameError("template", template_id, self.templates) from None

    def collection(self, name: str) -> CollectionSpec:
        """A collection by name or alias (``muffin`` is ``flan2021``)."""
        if name in self.collections:
            return self.collections[name]
        for c in self.collections.values():
            if name in c.aliases:
                return c
        names = list(self.collections) + [a for c in self.collections.values() for a in c.aliases]
        raise UnknownNameError("collection", name, names)

    def mixture(self, name: str) -> MixtureSpec:
        try:
            return self.mixtures[name]
        except KeyError:
            raise UnknownNameError("mixture", name, self.mixtures) from None

    def fewshot_style(self, style_id: str) -> FewShotStyle:
        for s in self.fewshot_styles:
            if s.id == style_id:
                return s
        raise UnknownNameError("few-shot style", style_id, [s.id for s in self.fewshot_styles])

    def templates_for(self, task: str | TaskSpec) -> tuple[TemplateSpec, ...]:
        """All templates of a task's template sets, in file order."""
        t = task if isinstance(task, TaskSpec) else self.task(task)
        return tuple(self.templates[i] for s in t.templates for i in self.template_sets[s])

    def tasks_in(self, collection: str) -> tuple[TaskSpec, ...]:
        c = self.collection(collection).name
        return tuple(t for t in self.tasks.values() if t.collection == c)

    def search(
        self,
        text: str | None = None,
        collection: str | None = None,
        category: str | None = None,
        *,
        license_class: str | Sequence[str] | None = None,
        language: str | Sequence[str] | None = None,
    ) -> list[TaskSpec]:
        """Tasks matching all given filters (case-insensitive substring matches;
        ``license_class``: any of these use classes; ``language``: any of these
        ISO codes or English language names)."""
        out = list(self.tasks.values())
        if license_class:
            want = _names(license_class)
            for c in want:
                if c not in LICENSE_CLASSES:
                    raise UnknownNameError("license class", c, LICENSE_CLASSES)
            out = [t for t in out if t.metadata.licensing.use in want]
        if language:
            codes = {_language_code(x) for x in _names(language)}
            out = [t for t in out if codes & set(t.metadata.languages)]
        if collection:
            c = self.collection(collection).name
            out = [t for t in out if t.collection == c]
        if category:
            cl = category.lower()
            out = [t for t in out if t.metadata.category and cl in t.metadata.category.lower()]
        if text:
            tl = text.lower()
            out = [
                t
                for t in out
                if tl in t.name.lower()
                or tl in (t.metadata.category or "").lower()
                or tl in t.source.path.lower()
            ]
        return out

    @property
    def sample_dir(self) -> Path:
        return self.root / "sample_data"

    @cached_property
    def fingerprint(self) -> str:
        """sha256 over every file the catalog was built from (names + bytes)."""
        h = hashlib.sha256()
        for p in sorted(
            self.files,
            key=lambda p: (
                p.relative_to(self.root).as_posix() if p.is_relative_to(self.root) else str(p)
            ),
        ):
            rel = p.relative_to(self.root).as_posix() if p.is_relative_to(self.root) else p.name
            h.update(rel.encode() + b"\0" + p.read_bytes() + b"\0")
        return h.hexdigest()
