"""Importers: convert template files of other projects into flan-data template files.

Each importer reads the other project's files at run time from a path the user
gives and writes ordinary flan-data template YAML (``docs/FORMATS.md`` section 2)
that loads with ``Catalog.load(extra_files=[...])``.

- :mod:`flan_data.importers.promptsource` — promptsource ``templates.yaml`` files.
"""

__all__ = [
    "ConversionResult",
    "ConvertedTemplate",
    "PromptsourceError",
    "SkippedTemplate",
    "convert_file",
    "convert_tree",
    "summarize",
    "write_results",
]


def __getattr__(name: str):
    # Loaded on first use, so `flan` (which registers `flan import`) never pays for the
    # promptsource converter unless it runs; `from flan_data.importers import X` still works.
    if name in __all__:
        from . import promptsource

        return getattr(promptsource, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
