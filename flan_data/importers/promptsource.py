"""Convert promptsource ``templates.yaml`` files into flan-data template files.

promptsource files are read at run time from a path the user gives; nothing of
promptsource is bundled or imported. Each file becomes one template set (and one
output file); ``write_results`` also writes a collection file with one task per
promptsource dataset/config and a mixture over them, so the output folder works
as it is with ``flan --extra DIR``.

>>> results = convert_tree("path/to/promptsource/templates")      # doctest: +SKIP
>>> write_results(results, "imported/")                           # doctest: +SKIP

The mapping
-----------

* **File → set and task.** One file (``dataset``, optional ``subset``) gives the
  set ``ps.<dataset>[.<subset>]`` (slugified: lowercase ASCII, ``[a-z0-9_]``),
  written to ``<out>/<set>.yaml``, and a task of the same name in
  ``<out>/promptsource_tasks.yaml`` (collection ``promptsource``; source: the
  Hugging Face dataset and config the prompts were written for; fields: every
  name the templates read from a record). ``<out>/promptsource_mixture.yaml``
  defines the mixture ``promptsource`` over that collection. Each template gets
  the id ``<set>.<slugified template name>`` (``_2``, ``_3``... on a clash; the
  uuid prefix when the name has no usable characters).
* **Rendering rules.** The sets use the ``promptsource`` template dialect
  (docs/FORMATS.md): the promptsource text is kept as it is and renders the way
  promptsource's ``Template.apply`` renders it — no block trimming, lenient
  undefined names, ``zip`` and ``most_frequent`` available, ``answer_choices``
  rendered and split on ``|||`` first, the whole text rendered once and split
  on ``|||`` into input and target (stripped), ``|||`` inside string field
  values protected, and every ``{{ ... }}`` value cut to 2,048 characters as
  promptsource does by default (``truncate=None`` / ``--no-truncate`` keeps
  values whole). The ``choice`` and ``random`` filters draw from the example's
  seed (promptsource uses the unseeded global RNG): input and target come from
  one render, so they always form a pair promptsource could produce.
* **Metadata** (promptsource name and uuid, ``original_task``,
  ``choices_in_prompt``, ``metrics``, ``languages``, the raw
  ``answer_choices`` and ``reference``) goes into the template's
  ``description`` as one line of ``key: value; ...`` text.
* **Not converted** (reported with a reason, never written): entries without
  ``jinja`` text, Jinja syntax errors, ``include``/``import``/``extends`` (there
  is no template loader) and anything that fails
  :meth:`TemplateEngine.compile <flan_data.templates.TemplateEngine.compile>`.
  A template without ``|||`` converts and renders an empty target, as in
  promptsource.
"""

from __future__ import annotations

import functools
import json
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jinja2
import yaml
from jinja2 import nodes

from ..errors import FlanDataError, TemplateError
from ..specs import TemplateSpec
from ..templates import TemplateEngine

SEPARATOR = "|||"
SET_PREFIX = "ps"
TEMPLATE_FILE = "templates.yaml"
#: promptsource's default cut of each ``{{ ... }}`` value, in characters.
TRUNCATE = 2048
#: The collection, collection file and mixture written beside the sets.
COLLECTION = "promptsource"
TASKS_FILE = "promptsource_tasks.yaml"
MIXTURE_FILE = "promptsource_mixture.yaml"

# Conversion methods, as recorded in reports.
SPLIT = "split"


class PromptsourceError(FlanDataError):
    """A promptsource path that cannot be read or is not a promptsource template file."""

    def __init__(self, file: str | Path, problem: str):
        self.file, self.problem = str(file), problem
        super().__init__(f"{self.file}: {problem}")


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ConvertedTemplate:
    """One promptsource template as a flan-data template."""

    id: str
    name: str
    uuid: str
    input: str  # the whole promptsource text
    target: str  # always "": the dialect splits the one render
    description: str
    method: str  # split | no-target
    answer_choices: str | None = None
    fields: tuple[str, ...] = ()  # the record fields it reads

    def to_spec(
        self, set_name: str, file: str = "", truncate: int | None = TRUNCATE
    ) -> TemplateSpec:
        return TemplateSpec(
            id=self.id,
            set=set_name,
            kind="zero_shot",
            input=self.input,
            target="",
            file=file,
            dialect="promptsource",
            answer_choices=self.answer_choices,
            truncate=truncate,
        )


@dataclass(frozen=True)
class SkippedTemplate:
    """A promptsource template that was not converted, and why."""

    uuid: str
    name: str
    reason: str
    code: str  # no_jinja | syntax_error | unsupported | no_target | ambiguous_split | empty | compile_error | invalid


@dataclass(frozen=True)
class ConversionResult:
    """What became of one promptsource file.

    ``error`` is set (and nothing converted) when the file itself could not be
    used: unreadable, not UTF-8, malformed YAML, not a promptsource file.
    """

    source: str
    dataset: str | None = None
    subset: str | None = None
    set_name: str | None = None
    converted: tuple[ConvertedTemplate, ...] = ()
    skipped: tuple[SkippedTemplate, ...] = ()
    error: str | None = None
    truncate: int | None = TRUNCATE
    languages: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return len(self.converted) + len(self.skipped)

    @property
    def label(self) -> str:
        return f"{self.dataset}/{self.subset}" if self.subset is not None else str(self.dataset)

    def renamed(self, set_name: str) -> ConversionResult:
        """The same result with another set name (template ids follow)."""
        old = f"{self.set_name}."
        conv = tuple(replace(t, id=f"{set_name}.{t.id[len(old) :]}") for t in self.converted)
        return replace(self, set_name=set_name, converted=conv)

    def specs(self) -> list[TemplateSpec]:
        return [t.to_spec(self.set_name or "", self.source, self.truncate) for t in self.converted]

    def fields(self) -> list[str]:
        """The record fields the converted templates read (sorted)."""
        return sorted({f for t in self.converted for f in t.fields})

    def task(self) -> dict[str, Any]:
        """The collection-file entry of the task that renders this file's templates."""
        source: dict[str, Any] = {"kind": "hf", "path": self.dataset}
        if self.subset is not None:
            source["config"] = self.subset
        source["note"] = (
            f"the Hugging Face dataset promptsource's {self.label} prompts were written for; "
            "point it at a local copy with --source-dir"
        )
        metadata: dict[str, Any] = {"category": "promptsource"}
        if self.languages:
            metadata["languages"] = list(self.languages)
        return {
            "name": self.set_name,
            "source": source,
            "fields": {f: f for f in self.fields()},
            "templates": [self.set_name],
            "metadata": metadata,
        }

    def to_yaml(self) -> str:
        """The flan-data template file for the converted templates."""
        if self.set_name is None:
            raise PromptsourceError(self.source, "nothing to write: the file was not converted")
        templates = []
        for t in self.converted:
            entry: dict[str, Any] = {"id": t.id, "description": t.description, "jinja": t.input}
            if t.answer_choices is not None:
                entry["answer_choices"] = t.answer_choices
            templates.append(entry)
        set_doc: dict[str, Any] = {
            "kind": "zero_shot",
            "dialect": "promptsource",
            "truncate": self.truncate,
            "description": f"promptsource {self.label}: {len(self.converted)} of {self.total} templates converted",
            "templates": templates,
        }
        doc = {
            "description": f"promptsource templates for {self.label}, imported by `flan import promptsource`.",
            "sets": {self.set_name: set_doc},
        }
        head = [
            f"# Generated by `flan import promptsource` from {_one_line(self.source)}",
            f"# {len(self.converted)} of {self.total} templates converted; regenerate rather than edit.",
        ]
        head += [
            f"# skipped {_one_line(s.name)!s} ({s.uuid}): {_one_line(s.reason)}"
            for s in self.skipped
        ]
        return "\n".join(head) + "\n" + _dump(doc)

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.source,
            "dataset": self.dataset,
            "subset": self.subset,
            "set": self.set_name,
            "total": self.total,
            "converted": len(self.converted),
            "skipped": len(self.skipped),
            "error": self.error,
            "templates": [
                {"id": t.id, "uuid": t.uuid, "name": t.name, "method": t.method}
                for t in self.converted
            ],
            "skipped_templates": [
                {"uuid": s.uuid, "name": s.name, "code": s.code, "reason": s.reason}
                for s in self.skipped
            ],
        }


# ----------------------------------------------------------------------------- reading


_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    """A safe loader that also reads promptsource's ``!Template`` and
    ``!TemplateMetadata`` tags, as plain mappings. Any other tag is an error."""


def _tagged_mapping(loader: Any, node: yaml.Node) -> dict[Any, Any]:
    if not isinstance(node, yaml.MappingNode):
        raise yaml.constructor.ConstructorError(
            None, None, f"expected a mapping after {node.tag}", node.start_mark
        )
    return loader.construct_mapping(node, deep=True)


for _tag in ("!Template", "!TemplateMetadata"):
    _Loader.add_constructor(_tag, _tagged_mapping)


def _read(path: Path) -> Any:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise PromptsourceError(path, f"cannot read the file: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PromptsourceError(path, f"not valid UTF-8 (byte offset {e.start})") from None
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        if isinstance(e, yaml.constructor.ConstructorError):
            problem += " (only the tags !Template and !TemplateMetadata are accepted)"
            raise PromptsourceError(path, f"unsupported YAML: {where}{problem}") from None
        raise PromptsourceError(path, f"malformed YAML: {where}{problem}") from None
    except RecursionError:
        raise PromptsourceError(path, "malformed YAML: nested too deeply") from None


# ----------------------------------------------------------------------------- converting


def convert_file(
    path: str | Path, *, engine: TemplateEngine | None = None, truncate: int | None = TRUNCATE
) -> ConversionResult:
    """Convert one promptsource ``templates.yaml``.

    ``truncate`` cuts each ``{{ ... }}`` value as promptsource does by default
    (None: keep values whole).

    Raises :class:`PromptsourceError` when the file cannot be read or is not a
    promptsource template file; problems with single templates are reported in
    :attr:`ConversionResult.skipped`.
    """
    path = Path(path)
    doc = _read(path)
    if not isinstance(doc, Mapping) or "dataset" not in doc or "templates" not in doc:
        raise PromptsourceError(
            path,
            "not a promptsource template file (expected top-level keys 'dataset' and 'templates')",
        )
    dataset = doc["dataset"]
    if (
        isinstance(dataset, bool)
        or not isinstance(dataset, str | int | float)
        or not str(dataset).strip()
    ):
        raise PromptsourceError(
            path, "not a promptsource template file: 'dataset' must be a non-empty string"
        )
    subset = doc.get("subset")
    if subset is not None and (
        isinstance(subset, bool) or not isinstance(subset, str | int | float)
    ):
        raise PromptsourceError(path, "not a promptsource template file: 'subset' must be a string")
    raw_templates = doc["templates"] if doc["templates"] is not None else {}
    if not isinstance(raw_templates, Mapping):
        raise PromptsourceError(
            path,
            "not a promptsource template file: 'templates' must be a mapping of id -> template",
        )

    dataset, subset = str(dataset), (str(subset) if subset is not None else None)
    set_name = ".".join(
        [SET_PREFIX, _slug(dataset) or "dataset"]
        + ([_slug(subset) or "subset"] if subset is not None else [])
    )
    label = f"{dataset}/{subset}" if subset is not None else dataset
    conv = _Converter(engine or TemplateEngine(), str(path), label, truncate)

    converted: list[ConvertedTemplate] = []
    skipped: list[SkippedTemplate] = []
    used: set[str] = set()
    for key, raw in raw_templates.items():
        uuid = str(key)
        name = str(raw.get("name") or "") if isinstance(raw, Mapping) else ""
        try:
            out = conv.convert(uuid, raw)
        except _Skip as s:
            skipped.append(SkippedTemplate(uuid, name, s.reason, s.code))
            continue
        except (jinja2.TemplateError, RecursionError) as e:
            # a corner that the checks in _Converter did not foresee: still only reported
            skipped.append(
                SkippedTemplate(
                    uuid, name, f"Jinja error: {type(e).__name__}: {e}", "compile_error"
                )
            )
            continue
        slug = _slug(name) or f"t_{_slug(uuid)[:8] or len(used)}"
        tid, k = slug, 2
        while tid in used:
            tid, k = f"{slug}_{k}", k + 1
        used.add(tid)
        converted.append(replace(out, id=f"{set_name}.{tid}"))
    languages: dict[str, None] = {}
    for raw in raw_templates.values():
        md = raw.get("metadata") if isinstance(raw, Mapping) else None
        langs = md.get("languages") if isinstance(md, Mapping) else None
        if isinstance(langs, list):
            languages.update((str(x), None) for x in langs if isinstance(x, str))
    return ConversionResult(str(path), dataset, subset, set_name, tuple(converted), tuple(skipped),
                            truncate=truncate, languages=tuple(languages))  # fmt: skip


def convert_tree(
    path: str | Path,
    *,
    engine: TemplateEngine | None = None,
    truncate: int | None = TRUNCATE,
    progress: Callable[[Path], None] | None = None,
) -> list[ConversionResult]:
    """Convert one file, or every ``templates.yaml`` under a folder (recursively, sorted).

    A file that cannot be used gives a result with :attr:`~ConversionResult.error`
    instead of stopping the run. Set names are made unique across the results.
    Raises :class:`PromptsourceError` when ``path`` does not exist or a folder
    holds no ``templates.yaml``. ``progress`` is called with each file before
    it is converted.
    """
    root = Path(path)
    if root.is_file():
        files = [root]
    elif root.is_dir():
        files = sorted(p for p in root.rglob(TEMPLATE_FILE) if p.is_file())
        if not files:
            raise PromptsourceError(
                root, f"no promptsource {TEMPLATE_FILE} files in this folder or below"
            )
    else:
        raise PromptsourceError(root, "no such file or folder")
    engine = engine or TemplateEngine()
    results = []
    for f in files:
        if progress is not None:
            progress(f)
        try:
            results.append(convert_file(f, engine=engine, truncate=truncate))
        except PromptsourceError as e:
            results.append(ConversionResult(str(f), error=e.problem))
    return _unique_sets(results)


def _unique_sets(results: Iterable[ConversionResult]) -> list[ConversionResult]:
    seen: set[str] = set()
    out = []
    for r in results:
        if r.set_name is not None:
            name, k = r.set_name, 2
            while name in seen:
                name, k = f"{r.set_name}_{k}", k + 1
            seen.add(name)
            if name != r.set_name:
                r = r.renamed(name)
        out.append(r)
    return out


def write_results(results: Sequence[ConversionResult], out_dir: str | Path) -> dict[str, Path]:
    """Write one ``<set>.yaml`` per result with converted templates into ``out_dir``.

    Returns ``{source file: written file}``. Files with nothing converted are
    not written. Existing files of the same name are replaced.
    """
    out = Path(out_dir)
    todo = [r for r in results if r.error is None and r.converted]
    names = Counter(r.set_name for r in todo)
    dup = sorted(n for n, c in names.items() if c > 1)
    if dup:
        raise PromptsourceError(
            out, f"two results share the set name {dup[0]!r}; convert them with convert_tree()"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PromptsourceError(
            out, f"cannot create the output folder: {e.strerror or e}"
        ) from None
    written: dict[str, Path] = {}
    for r in todo:
        dest = out / f"{r.set_name}.yaml"
        _write_atomic(dest, r.to_yaml())
        written[r.source] = dest
    if todo:
        head = "# Generated by `flan import promptsource`; regenerate rather than edit.\n"
        tasks = {
            "collection": COLLECTION,
            "description": "Tasks for the imported promptsource template sets, one per dataset/config.",
            "tasks": [r.task() for r in todo],
        }
        _write_atomic(out / TASKS_FILE, head + _dump(tasks))
        mixture = {
            "mixtures": {
                COLLECTION: {
                    "description": "Every imported promptsource task, proportional to its size.",
                    "members": [{"collection": COLLECTION}],
                }
            }
        }
        _write_atomic(out / MIXTURE_FILE, head + _dump(mixture))
    return written


def _write_atomic(dest: Path, text: str) -> None:
    tmp = dest.with_name(f".{dest.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, dest)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise PromptsourceError(dest, f"cannot write: {e.strerror or e}") from None


def summarize(
    results: Sequence[ConversionResult], written: Mapping[str, Path] | None = None
) -> dict[str, Any]:
    """The report as plain JSON-able data: totals, skip reasons, per-file details."""
    written = written or {}
    reasons = Counter(s.reason for r in results for s in r.skipped)
    codes = Counter(s.code for r in results for s in r.skipped)
    methods = Counter(t.method for r in results for t in r.converted)
    files = []
    for r in results:
        d = r.to_dict()
        d["output"] = str(written[r.source]) if r.source in written else None
        files.append(d)
    return {
        "files": len(results),
        "files_failed": sum(r.error is not None for r in results),
        "templates": sum(r.total for r in results),
        "converted": sum(len(r.converted) for r in results),
        "skipped": sum(len(r.skipped) for r in results),
        "methods": dict(sorted(methods.items())),
        "skip_codes": dict(codes.most_common()),
        "skip_reasons": [
            {"reason": k, "count": n}
            for k, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        "written": len(written),
        "results": files,
    }


# ----------------------------------------------------------------------------- one template


class _Skip(Exception):
    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, reason


_LOADER_NODES = (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)
_LOADER_TAG = re.compile(r"\{%[-+]?\s*(include|import|from|extends)\b")
_META_KEYS = ("original_task", "choices_in_prompt", "metrics", "languages")


class _Converter:
    """One promptsource template → one ``promptsource``-dialect template spec."""

    def __init__(self, engine: TemplateEngine, file: str, label: str, truncate: int | None):
        self.engine, self.env, self.file, self.label = engine, engine.ps_env, file, label
        self.truncate = truncate

    def parse(self, source: str, what: str) -> nodes.Template:
        try:
            return self.env.parse(source)
        except jinja2.TemplateSyntaxError as e:
            raise _Skip(
                "syntax_error", f"Jinja syntax error in {what} (line {e.lineno}): {e.message}"
            ) from None

    def convert(self, uuid: str, raw: Any) -> ConvertedTemplate:
        if not isinstance(raw, Mapping):
            raise _Skip("invalid", "the template entry is not a mapping")
        name = str(raw.get("name") or "")
        src = raw.get("jinja")
        if not isinstance(src, str) or not src.strip():
            raise _Skip("no_jinja", "no `jinja` text")
        choices = raw.get("answer_choices")
        if choices is not None and (
            isinstance(choices, bool) or not isinstance(choices, str | int | float)
        ):
            raise _Skip("invalid", "answer_choices is not a string")
        choices = str(choices) if choices is not None else None
        for what, text in (("`jinja`", src), ("answer_choices", choices or "")):
            m = _LOADER_TAG.search(text)
            if m and any(True for _ in self.parse(text, what).find_all(_LOADER_NODES)):
                raise _Skip(
                    "unsupported", f"{what} uses {{% {m[1]} %}} (there is no template loader)"
                )
        method = SPLIT if SEPARATOR in src else "no-target"
        spec = TemplateSpec(id=f"ps.check.{uuid}", set="ps.check", kind="zero_shot", input=src,
                            target="", file=self.file, dialect="promptsource",
                            answer_choices=choices, truncate=self.truncate)  # fmt: skip
        try:
            ct = self.engine.compile(spec)
        except TemplateError as e:
            m = re.search(r"template '[^']*', line (\d+): (.*)$", str(e), re.S)
            if m:
                raise _Skip("syntax_error", f"Jinja syntax error (line {m[1]}): {m[2]}") from None
            raise _Skip("compile_error", str(e).split(": ", 1)[-1]) from None
        return ConvertedTemplate(
            id="", name=name, uuid=uuid, input=src, target="", method=method,
            description=self.describe(uuid, name, raw, choices, method), answer_choices=choices,
            fields=tuple(sorted(ct.variables)),
        )  # fmt: skip

    def describe(
        self, uuid: str, name: str, raw: Mapping[str, Any], choices: str | None, method: str
    ) -> str:
        parts = [
            f"promptsource {self.label} template {json.dumps(name, ensure_ascii=False)} (uuid {uuid})"
        ]
        md = raw.get("metadata")
        if isinstance(md, Mapping):
            for k in _META_KEYS:
                if md.get(k) is not None:
                    parts.append(f"{k}: {_meta_value(md[k])}")
        if choices is not None:
            parts.append(f"answer_choices: {_one_line(choices)}")
        if raw.get("reference"):
            parts.append(f"reference: {_one_line(str(raw['reference']))}")
        if method != SPLIT:
            parts.append("no '|||': renders an input and an empty target")
        return "; ".join(parts)


def _meta_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list | tuple):
        return ", ".join(_meta_value(x) for x in v) or "-"
    return _one_line(str(v))


# ----------------------------------------------------------------------------- small helpers


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Multi-line strings as literal blocks (YAML falls back to quotes when it must)."""


def _represent_str(dumper: yaml.SafeDumper, s: str) -> yaml.ScalarNode:
    style = "|" if "\n" in s and _block_safe(s) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", s, style=style)


@functools.lru_cache(maxsize=65536)
def _block_safe(s: str) -> bool:
    # A literal block must give back exactly the same text (trailing spaces,
    # tabs and edge newlines are where YAML emitters can lose bytes).
    try:
        back = yaml.load(yaml.dump(s, Dumper=_BlockDumper), Loader=_BaseLoader)
    except yaml.YAMLError:
        return False
    return back == s


class _BlockDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    pass


_BlockDumper.add_representer(
    str,
    lambda d, s: d.represent_scalar("tag:yaml.org,2002:str", s, style="|" if "\n" in s else None),
)
_Dumper.add_representer(str, _represent_str)


def _dump(doc: Any) -> str:
    return yaml.dump(
        doc,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=4096,
        default_flow_style=False,
    )
