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

from .catalog import Catalog
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
from .fewshot import Tokenizer, WhitespaceTokenizer
from .lint import Problem, lint
from .render import Exemplar, RenderConfig, Renderer, build_pool, render_task
from .seeding import derive_seed
from .sources import open_source, open_task_source
from .specs import FORMATS, MixtureSpec, RenderedExample, SourceSpec, TaskSpec, TemplateSpec

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
