"""Small helpers shared by the export tests: reading an export back and a toy source.

Tests import it as ``from toy import ...`` (pytest puts this folder on ``sys.path``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest


def export_files(d: Path) -> dict[str, bytes]:
    """Every file of a finished export (shards under data/ included), by relative path.

    The work-in-progress state folder (``.flan-export``) is left out: it is not output.
    """
    return {
        str(p.relative_to(d)): p.read_bytes()
        for p in sorted(d.rglob("*"))
        if p.is_file() and ".flan-export" not in p.parts
    }


def toy_rows(n: int) -> list[dict]:
    """``n`` records ``{"uid", "text", "label"}`` with labels 0, 1, 2 in turn."""
    return [{"uid": f"u{i:05d}", "text": f"row {i}", "label": i % 3} for i in range(n)]


def write_toy_source(
    kind: str, d: Path, n: int, *, group: int = 7, jsonl_blank_lines: bool = False
) -> Path:
    """Write :func:`toy_rows` as one ``train`` split of ``kind``; return the source path.

    ``group`` is the Parquet row-group size and the Arrow batch size, so that small splits
    still span several groups. ``kind`` is one of parquet, arrow, arrow_stream, jsonl, hf
    (a ``datasets`` ``save_to_disk`` copy; the test is skipped without ``datasets``).
    """
    d.mkdir(parents=True, exist_ok=True)
    t = pa.Table.from_pylist(toy_rows(n))
    if kind == "parquet":
        pq.write_table(t, d / "train.parquet", row_group_size=group)
    elif kind in ("arrow", "arrow_stream"):
        new = ipc.new_file if kind == "arrow" else ipc.new_stream
        with pa.OSFile(str(d / "train.arrow"), "wb") as s, new(s, t.schema) as w:
            w.write_table(t, max_chunksize=group)
    elif kind == "jsonl":
        sep = "\n\n" if jsonl_blank_lines else "\n"
        (d / "train.jsonl").write_text("".join(json.dumps(r) + sep for r in t.to_pylist()))
    elif kind == "hf":
        datasets = pytest.importorskip("datasets")
        datasets.Dataset.from_list(toy_rows(n)).save_to_disk(str(d / "ds"))
        return d / "ds"
    else:
        raise ValueError(f"unknown toy source kind {kind!r}")
    return d


def write_toy_catalog(root: Path, mixtures: dict[str, list[str]], kind: str = "parquet") -> Path:
    """A one-task catalog over ``root/data`` (a ``kind`` source with ``uid``/``text``/``label``).

    Task ``syn`` has two templates (``t0``, ``t1``), options a/b/c and a ``Q:``/``A:``
    few-shot style; ``mixtures`` maps a mixture name to the formats of ``syn`` it uses.
    The caller writes ``root/data``; returns ``root``.
    """
    (root / "collections").mkdir(parents=True, exist_ok=True)
    (root / "templates").mkdir(exist_ok=True)
    (root / "templates" / "t.yaml").write_text(json.dumps({"sets": {"t": {"templates": [
        {"id": "t0", "input": "Text: {{ text }}\n{{ options_block }}", "target": "{{ answer }}"},
        {"id": "t1", "input": "{{ text }} - which?{{ options_block }}", "target": "{{ answer }}"}]}},
        "styles": [{"id": "q", "input_prefix": "Q: ", "target_prefix": "A: ", "x_y_delimiter": "\n", "example_separator": "\n\n"}]}))  # fmt: skip
    (root / "collections" / "c.yaml").write_text(json.dumps({"collection": "flan2021", "tasks": [
        {"name": "syn", "source": {"kind": kind, "path": str(root / "data"), "id_field": "uid"},
         "fields": {"text": "text", "answer": "options[label]"}, "options": ["a", "b", "c"], "templates": ["t"]}]}))  # fmt: skip
    (root / "catalog.yaml").write_text(json.dumps({
        "collections": {"flan2021": {"file": "collections/c.yaml"}},
        "mixtures": {name: {"members": [{"task": "syn", "formats": fmts}]} for name, fmts in mixtures.items()}}))  # fmt: skip
    return root
