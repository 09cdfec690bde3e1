"""CLI start-up does only the work a command needs (issues 9 and 13, "CLI latency").

These tests count work, never time: which modules a fresh interpreter imports for
``flan --help`` / ``flan catalog show`` / ``flan render``, and which templates a
render compiles. Timings live in bench/RESULTS.md ("CLI latency").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import flan_data
from flan_data.cli import main

REPO = Path(flan_data.__file__).resolve().parent.parent

# Never needed to print help, show a task or render a few rows.
HEAVY = (
    "pyarrow",
    "numpy",
    "datasets",
    "pandas",
    "tqdm",
    "rich",
    "jax",
    "torch",
    "ray",
    "flan_data.importers.promptsource",
    "flan_data.export",
    "flan_data.mixture",
    "flan_data.linter",
    "flan_data.decontam",
    "flan_data.views",
    "flan_data.browse.server",
    "flan_data.browse.pages",
    "flan_data.browse.preview",
    "flan_data.browse.charts",
)

_PROBE = """
import json, sys
from flan_data.cli import main
try:
    main(sys.argv[2:], prog_name="flan", standalone_mode=False)
finally:
    with open(sys.argv[1], "w") as f:
        json.dump({"file": sys.modules["flan_data"].__file__, "modules": sorted(sys.modules)}, f)
"""


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("flan-cache")


@pytest.fixture(scope="module")
def warm_cache(cache_dir, tmp_path_factory) -> Path:
    """A parsed-catalog cache filled by one earlier command (the usual case)."""
    imported_by(["catalog", "show", "anli_r1", "--brief"], cache_dir, tmp_path_factory.mktemp("w"))
    return cache_dir


def imported_by(args: list[str], cache_dir: Path, tmp_path: Path) -> set[str]:
    """Modules a fresh ``python`` has loaded after running ``flan ARGS`` (this checkout)."""
    out = tmp_path / "modules.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               FLAN_DATA_CACHE=str(cache_dir))  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(out), *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(out.read_text())
    assert Path(got["file"]).resolve().is_relative_to(REPO)  # this checkout, not an installed copy
    mods = set(got["modules"])
    assert "flan_data.cli" in mods  # the probe really ran the CLI
    return mods


def loaded(mods: set[str], names) -> list[str]:
    return sorted(m for m in mods for n in names if m == n or m.startswith(n + "."))


def test_help_loads_no_catalog_renderer_or_heavy_deps(cache_dir, tmp_path):
    mods = imported_by(["--help"], cache_dir, tmp_path)
    light = (*HEAVY, "jinja2", "yaml", "flan_data.catalog", "flan_data.catalog_cache",
             "flan_data.render", "flan_data.templates", "flan_data.sources", "flan_data.browse")  # fmt: skip
    assert loaded(mods, light) == []


def test_catalog_show_loads_no_heavy_module(tmp_path_factory, tmp_path):
    # a cold cache: the catalog is parsed (YAML), still nothing heavy
    cold = tmp_path_factory.mktemp("cold")
    mods = imported_by(["catalog", "show", "anli_r1", "--no-pager"], cold, tmp_path)
    assert loaded(mods, (*HEAVY, "flan_data.sources")) == []
    assert "flan_data.browse.query" in mods  # what show is built on


def test_catalog_show_from_cache_loads_no_yaml(warm_cache, tmp_path):
    mods = imported_by(["catalog", "show", "anli_r1", "--no-pager"], warm_cache, tmp_path)
    assert loaded(mods, (*HEAVY, "flan_data.sources", "yaml")) == []


def test_render_loads_no_heavy_module(warm_cache, tmp_path):
    mods = imported_by(["render", "anli_r1", "-n", "1", "--source", "sample"], warm_cache, tmp_path)
    assert loaded(mods, (*HEAVY, "yaml")) == []
    assert "flan_data.render" in mods


def test_help_still_lists_every_command():
    out = CliRunner().invoke(main, ["--help"]).output
    listed = out.split("Commands:", 1)[1].split()
    for name in main.list_commands(None):
        assert name in listed, name
    assert "import" in listed and "catalog" in listed


def test_render_and_show_compile_only_the_tasks_templates(monkeypatch):
    from flan_data.catalog_cache import load_catalog
    from flan_data.templates import TemplateEngine

    compiled: list[str] = []
    real = TemplateEngine.compile

    def counting(self, spec):
        compiled.append(spec.id)
        return real(self, spec)

    monkeypatch.setattr(TemplateEngine, "compile", counting)
    cat = load_catalog()
    own = {t.id for t in cat.templates_for(cat.task("anli_r1"))}
    for args in (["render", "anli_r1", "-n", "2", "--source", "sample"],
                 ["catalog", "show", "anli_r1", "--no-pager"]):  # fmt: skip
        compiled.clear()
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 0, res.output
        assert compiled and set(compiled) <= own, set(compiled) - own
        assert len(cat.templates) > 10 * len(own)  # compiling all would be far more work
