"""The local executor: one pool per export, the catalog shipped as bytes, and a
clear, fast failure when worker processes die while starting."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flan_data import Catalog, FlanDataError
from flan_data.export import local
from flan_data.export.local import GUARD_HINT, LocalExecutor, dumps_catalog
from flan_data.render import RenderConfig

REPO = Path(__file__).resolve().parents[1]


def test_catalog_bytes_round_trip():
    cat = Catalog.load()
    back = pickle.loads(dumps_catalog(cat))
    assert back.fingerprint == cat.fingerprint
    assert back.tasks == cat.tasks and back.mixtures == cat.mixtures
    name = next(iter(cat.tasks))
    assert back.task(name) == cat.task(name)


def test_script_without_main_guard_fails_fast_with_advice(tmp_path):
    script = tmp_path / "export_no_guard.py"
    script.write_text(
        textwrap.dedent(f"""
        from flan_data import Catalog
        from flan_data.export import export_mixture

        export_mixture(Catalog.load(), "demo", {str(tmp_path / "out")!r}, total=60,
                       workers=2, progress=False)
        print("FINISHED")
        """)
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # The timeout only guards against the old behaviour (respawning forever).
    p = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300
    )
    assert p.returncode != 0
    assert "FINISHED" not in p.stdout
    assert 'if __name__ == "__main__":' in p.stderr
    assert "exited while starting" in p.stderr
    assert not list((tmp_path / "out").glob("shard-*"))


def test_guarded_script_runs_with_two_workers(tmp_path):
    script = tmp_path / "export_guard.py"
    script.write_text(
        textwrap.dedent(f"""
        from flan_data import Catalog
        from flan_data.export import export_mixture

        if __name__ == "__main__":
            m = export_mixture(Catalog.load(), "demo", {str(tmp_path / "out")!r}, total=60,
                               workers=2, progress=False)
            print("ROWS", m["num_rows"])
        """)
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300
    )
    assert p.returncode == 0, p.stderr
    assert "ROWS 60" in p.stdout


def test_worker_that_cannot_load_the_catalog_reports_why(tmp_path, monkeypatch):
    cat = Catalog.load()
    monkeypatch.setattr(local, "dumps_catalog", lambda c: b"not a pickle")
    ex = LocalExecutor(cat, RenderConfig(), workers=2)  # the parent does not wait for its children
    try:
        with pytest.raises(FlanDataError, match="could not start: invalid load key"):
            ex.check_started()
    finally:
        ex.close()


def _slow_pid(i: int) -> tuple[int, int]:
    import time

    time.sleep(0.05)
    return i, os.getpid()


def test_parent_works_beside_its_children_and_map_keeps_input_order():
    ex = LocalExecutor(Catalog.load(), RenderConfig(), workers=2)
    try:
        out = list(ex.map(_slow_pid, range(120)))
        assert [i for i, _ in out] == list(range(120))
        pids = {p for _, p in out}
        assert os.getpid() in pids and len(pids) == 2  # the parent and its one child
        ex.check_started()
        got = sorted(i for i, _ in ex._stream(_slow_pid, range(40)))
        assert got == list(range(40))  # every item once, whoever ran it
    finally:
        ex.close()


def test_one_worker_runs_in_process():
    ex = LocalExecutor(Catalog.load(), RenderConfig(), workers=1)
    try:
        n, seekable = next(iter(ex.map(local.count_one, [(None, "anli_r1", "sample", {})])))
        assert n > 0 and seekable is False  # bundled JSONL samples are read in one pass
    finally:
        ex.close()


def test_guard_hint_names_the_fix():
    assert "__main__" in GUARD_HINT and "workers=1" in GUARD_HINT
