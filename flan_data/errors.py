"""The error tree of flan-data.

Every error the library raises on bad input derives from :class:`FlanDataError`
and carries a message that names the file, task, record or field at fault, so
the CLI can print it without a traceback.

>>> try:
...     raise UnknownNameError("task", "anli_r9", ["anli_r1", "anli_r2", "anli_r3"])
... except FlanDataError as e:
...     print(e)
unknown task 'anli_r9'; did you mean: anli_r1, anli_r2, anli_r3?
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class FlanDataError(Exception):
    """Base class: a problem with the user's input, data or configuration."""

    def __reduce__(self):
        # Subclasses take several __init__ arguments but pass one message to
        # Exception; the default reduce would call cls(message) and fail, so an
        # error raised in a worker process could not be sent back (Pool hangs).
        return (_restore, (type(self), self.args, self.__dict__))


def _restore(cls: type, args: tuple, state: dict) -> FlanDataError:
    e = cls.__new__(cls)
    Exception.__init__(e, *args)
    e.__dict__.update(state)
    return e


class CatalogError(FlanDataError):
    """A catalog, collection or template file does not match the schema."""

    def __init__(self, file: str, key_path: str, problem: str):
        self.file, self.key_path, self.problem = str(file), key_path, problem
        where = f"{self.file}" + (f" at {key_path}" if key_path else "")
        super().__init__(f"{where}: {problem}")


class UnknownNameError(FlanDataError, KeyError):
    """A task, template, collection, mixture, format or field name that does not exist."""

    def __init__(self, kind: str, name: str, candidates: Iterable[str] = (), hint: str = ""):
        self.kind, self.name = kind, name
        self.suggestions = suggest(name, candidates)
        msg = f"unknown {kind} {name!r}"
        if self.suggestions:
            msg += "; did you mean: " + ", ".join(self.suggestions) + "?"
        if hint:
            msg += f" ({hint})"
        self.message = msg
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message


class TemplateError(FlanDataError):
    """A template that does not compile or render."""


class TemplateSecurityError(TemplateError):
    """A template tried to reach outside the sandbox."""


class RecordError(FlanDataError):
    """A source record that lacks a field or holds a value the task cannot use.

    ``split`` and ``field`` name where the bad value sits when known; ``reason``
    is a short, record-independent cause (e.g. ``"null value in answer"``) that
    exports count skipped records by.
    """

    def __init__(
        self,
        task: str,
        record_id: str,
        problem: str,
        available: Iterable[str] = (),
        *,
        split: str | None = None,
        field: str | None = None,
        reason: str | None = None,
    ):
        self.task, self.record_id = task, record_id
        self.split, self.field, self.problem = split, field, problem
        self.reason = reason
        msg = f"task {task!r}, record {record_id!r}: {problem}"
        avail = sorted(available)
        self.available = tuple(avail)
        if avail:
            msg += f" (available fields: {', '.join(avail)})"
        at = [f"split {split!r}"] if split else []
        if field and f"field {field!r}" not in problem:
            at.append(f"field {field!r}")
        if at:
            msg += f" [{', '.join(at)}]"
        super().__init__(msg)


class TemplateLimitError(TemplateError, RecordError):
    """A template needed more output, memory, depth or time than the sandbox
    allows (templates are untrusted input). A record error too, so
    ``--on-error skip`` counts it instead of stopping."""

    def __init__(self, message: str, limit: str = ""):
        self.limit = limit
        # the attributes of a RecordError, so code that counts or re-raises
        # record errors reads them from this one too
        self.task, self.record_id = "", ""
        self.split, self.field, self.problem, self.available = None, None, message, ()
        self.reason = f"template exceeds the {limit} limit" if limit else "template exceeds a limit"
        Exception.__init__(self, message)


class SourceError(FlanDataError):
    """A source that cannot be read: missing, unreachable, empty or malformed."""


class HubUnreachableError(SourceError):
    """The Hugging Face hub (or the configured ``HF_ENDPOINT``) cannot be reached."""


class MissingDependencyError(FlanDataError, ImportError):
    """An optional dependency is needed; the message gives the pip command."""

    def __init__(self, module: str, extra: str, purpose: str):
        self.module, self.extra = module, extra
        super().__init__(
            f"{purpose} needs the '{module}' package: pip install 'flan-data[{extra}]'"
        )


def suggest(name: str, candidates: Iterable[str], n: int = 5) -> list[str]:
    """Closest names to ``name`` among ``candidates`` (substring matches first)."""
    cands = list(dict.fromkeys(candidates))
    close = difflib.get_close_matches(name, cands, n=n, cutoff=0.6)
    low = name.lower()
    subs = [c for c in cands if low and low in c.lower() and c not in close]
    return (close + sorted(subs, key=len))[:n]
