"""flan-data: the Flan Collection as runnable data.

The public API is small:

- :class:`Catalog` — load the catalog (``Catalog.load()``), look up tasks,
  templates, collections and mixtures.
- :class:`Renderer`, :class:`RenderConfig`, :func:`render_task` — turn records
  into :class:`RenderedExample` objects in the formats ``zs_opt``,
  ``zs_noopt``, ``fs_opt``, ``fs_noopt`` and ``cot``.
- :func:`open_task_source` — read a task's raw records (sample, local or hub).
- :func:`lint` — check templates and tasks.

>>> from flan_data import Catalog, render_task
>>> cat = Catalog.load()
>>> ex = next(render_task(cat, "anli_r1", fmt="zs_noopt", n=1, seed=0))
>>> ex.task, ex.format
('anli_r1', 'zs_noopt')
"""

__version__ = "0.1.0"

from .errors import (
    CatalogError,
    FlanDataError,
    MissingDependencyError,
    RecordError,
    SourceError,
    TemplateError,
    TemplateLimitError,
    TemplateSecurityError,
    UnknownNameError,
)

# The rest of the public API loads on first use (PEP 562): a CLI command pays
# only for the modules it needs (`flan render` never imports lint's checks).
_LAZY = {
    "Catalog": "catalog",
    "Tokenizer": "fewshot",
    "WhitespaceTokenizer": "fewshot",
    "Problem": "linter",
    "lint": "linter",
    "Exemplar": "render",
    "RenderConfig": "render",
    "Renderer": "render",
    "build_pool": "render",
    "render_task": "render",
    "derive_seed": "seeding",
    "open_source": "sources",
    "open_task_source": "sources",
    "FORMATS": "specs",
    "MixtureSpec": "specs",
    "RenderedExample": "specs",
    "SourceSpec": "specs",
    "TaskSpec": "specs",
    "TemplateSpec": "specs",
}


def __getattr__(name: str):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'flan_data' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(f".{mod}", __name__)
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "__version__",
    "Catalog",
    "CatalogError",
    "Exemplar",
    "FORMATS",
    "FlanDataError",
    "MissingDependencyError",
    "MixtureSpec",
    "Problem",
    "RecordError",
    "RenderConfig",
    "RenderedExample",
    "Renderer",
    "SourceError",
    "SourceSpec",
    "TaskSpec",
    "TemplateError",
    "TemplateLimitError",
    "TemplateSecurityError",
    "TemplateSpec",
    "Tokenizer",
    "UnknownNameError",
    "WhitespaceTokenizer",
    "build_pool",
    "derive_seed",
    "lint",
    "open_source",
    "open_task_source",
    "render_task",
]
