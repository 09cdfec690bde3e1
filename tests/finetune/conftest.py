"""Fixtures for the finetune tests: a tiny export directory per docs/FORMATS.md §3.

``write_export(dir, rows, shards)`` writes Arrow IPC file shards with the full
column set, ``manifest.json`` (sorted keys, indent 2, per-shard sha256) and
``COMPLETED`` holding the manifest's sha256. The rows are small learnable
synthetic tasks (reverse / sort / add / upper) so a tiny model's loss falls
within a few hundred steps.

Also a script, for the CPU demo::

    python tests/finetune/conftest.py /tmp/demo_export 4000
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path

import pytest

SCHEMA_FIELDS = [
    ("inputs", "string"),
    ("targets", "string"),
    ("task", "string"),
    ("collection", "string"),
    ("format", "string"),
    ("template_id", "string"),
    ("fewshot_style", "string"),
    ("options", "list<string>"),
    ("exemplar_ids", "list<string>"),
    ("example_id", "string"),
    ("source_split", "string"),
    ("seed", "uint64"),
]


def synthetic_rows(n: int, seed: int = 0, fewshot: bool = False) -> list[dict]:
    rng = random.Random(seed)
    letters = "abcdefghij"
    rows = []
    for i in range(n):
        task = ("reverse", "sort", "add", "upper")[i % 4]
        word = "".join(rng.choice(letters) for _ in range(rng.randint(3, 7)))
        if task == "reverse":
            inputs, targets = f"reverse: {word}", word[::-1]
        elif task == "sort":
            inputs, targets = f"sort: {word}", "".join(sorted(word))
        elif task == "upper":
            inputs, targets = f"upper: {word}", word.upper()
        else:
            a, b = rng.randint(0, 9), rng.randint(0, 9)
            inputs, targets = f"add: {a}+{b}=", str(a + b)
        fmt = "zs_noopt"
        if fewshot and i % 2:  # a few-shot rendering: exemplars first, the query last
            shots = "".join(f"{task}: demo{j} => x{j}\n" for j in range(rng.randint(4, 8)))
            inputs, fmt = shots + inputs, "fs_noopt"
        rows.append(
            {
                "inputs": inputs,
                "targets": targets,
                "task": task,
                "collection": "synthetic",
                "format": fmt,
                "template_id": f"{task}_0",
                "fewshot_style": None,
                "options": None,
                "exemplar_ids": [],
                "example_id": f"{task}-{i}",
                "source_split": "train",
                "seed": rng.getrandbits(63),
            }
        )
    return rows


def write_export(
    out: Path,
    rows: int = 400,
    shards: int = 2,
    seed: int = 0,
    complete: bool = True,
    messages: bool = False,
    fewshot: bool = False,
) -> Path:
    """``messages=True`` adds the chat view column (system + user + assistant turns)."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    schema = pa.schema(
        [
            ("inputs", pa.string()),
            ("targets", pa.string()),
            ("task", pa.string()),
            ("collection", pa.string()),
            ("format", pa.string()),
            ("template_id", pa.string()),
            pa.field("fewshot_style", pa.string(), nullable=True),
            pa.field("options", pa.list_(pa.string()), nullable=True),
            ("exemplar_ids", pa.list_(pa.string())),
            ("example_id", pa.string()),
            ("source_split", pa.string()),
            ("seed", pa.uint64()),
        ]
        + (
            [("messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())])))]
            if messages
            else []
        )
    )
    data = synthetic_rows(rows, seed, fewshot)
    if messages:
        for r in data:
            r["messages"] = [
                {"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": r["inputs"]},
                {"role": "assistant", "content": r["targets"]},
            ]
    per = -(-rows // shards)
    entries = []
    counts: dict[str, dict[str, int]] = {}
    for s in range(shards):
        chunk = data[s * per : (s + 1) * per]
        name = f"shard-{s:05d}-of-{shards:05d}.arrow"
        table = pa.Table.from_pylist(chunk, schema=schema)
        with ipc.new_file(str(out / name), schema) as writer:
            writer.write_table(table, max_chunksize=128)
        raw = (out / name).read_bytes()
        entries.append(
            {
                "file": name,
                "rows": len(chunk),
                "bytes": len(raw),
                "sha256": hashlib.sha256(raw).hexdigest(),
            }
        )
        for r in chunk:
            counts.setdefault(r["task"], {}).setdefault(r["format"], 0)
            counts[r["task"]][r["format"]] += 1
    manifest = {
        "format": "flan-data-shards",
        "format_version": 1,
        "tool_version": "0.1.0",
        "seed": seed,
        "num_rows": rows,
        "schema": [{"name": n, "type": t} for n, t in SCHEMA_FIELDS]
        + ([{"name": "messages", "type": "list<struct<role,content>>"}] if messages else []),
        "mixture": {"name": "synthetic", "tasks": sorted(counts)},
        "catalog_hash": hashlib.sha256(b"synthetic").hexdigest(),
        "counts": counts,
        "shards": entries,
    }
    text = json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False)
    (out / "manifest.json").write_text(text, encoding="utf-8")
    if complete:
        digest = hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest()
        (out / "COMPLETED").write_text(digest + "\n")
    return out


@pytest.fixture(scope="session", autouse=True)
def _jax_compilation_cache(tmp_path_factory):
    """Share compiled train/eval steps between the many tiny runs of one test session."""
    try:
        import jax
    except ImportError:
        yield
        return
    cache = tmp_path_factory.mktemp("jax_cache")
    old = (
        jax.config.jax_compilation_cache_dir,
        jax.config.jax_persistent_cache_min_compile_time_secs,
    )
    jax.config.update("jax_compilation_cache_dir", str(cache))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    yield
    jax.config.update("jax_compilation_cache_dir", old[0])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", old[1])


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory) -> Path:
    """A 400-row, 2-shard synthetic export shared by the tests (read-only)."""
    return write_export(tmp_path_factory.mktemp("export") / "exp", rows=400, shards=2)


if __name__ == "__main__":
    target = Path(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 4000
    write_export(target, rows=n, shards=4)
    print(f"wrote {n} rows to {target}")
