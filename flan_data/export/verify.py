"""Check an export directory, and summarise what is in it.

>>> problems = verify("/nonexistent")
>>> problems[0].startswith("/nonexistent")
True
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import FlanDataError
from .writer import COMPLETED, DATA_DIR, FORMAT_NAME, MANIFEST, column_schema, read_table


def load_manifest(out: str | Path, *, require_completed: bool = True) -> dict[str, Any]:
    """The manifest of a finished export; refuses a folder without a valid COMPLETED."""
    out = Path(out)
    mf = out / MANIFEST
    if not mf.is_file():
        raise FlanDataError(f"{out}: no {MANIFEST}; is this a flan export folder?")
    data = mf.read_bytes()
    if require_completed:
        done = out / COMPLETED
        if not done.is_file():
            raise FlanDataError(
                f"{out}: no {COMPLETED} marker; the export did not finish (rerun the same flan export command to resume)"
            )
        if done.read_text().strip() != hashlib.sha256(data).hexdigest():
            raise FlanDataError(
                f"{out}: {COMPLETED} does not match {MANIFEST}; the manifest was modified"
            )
    try:
        m = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FlanDataError(f"{mf}: invalid JSON: {e}") from None
    if not isinstance(m, dict):
        raise FlanDataError(f"{mf}: not a {FORMAT_NAME} manifest (a JSON {type(m).__name__})")
    if m.get("format") != FORMAT_NAME:
        raise FlanDataError(f"{mf}: not a {FORMAT_NAME} manifest (format={m.get('format')!r})")
    return m


def check_manifest(m: dict[str, Any], where: Path) -> list[str]:
    """Problems with the manifest's structure (keys and types verify and stats rely on)."""
    problems = []
    shards = m.get("shards")
    if not isinstance(shards, list):
        return [f"{where}: no 'shards' list"]
    for i, s in enumerate(shards):
        ok = (
            isinstance(s, dict)
            and isinstance(s.get("file"), str)
            and not Path(s["file"]).is_absolute()
            and ".." not in Path(s["file"]).parts
            and Path(s["file"]).name.startswith("shard-")
            and all(
                isinstance(s.get(k), int) and not isinstance(s.get(k), bool)
                for k in ("bytes", "rows")
            )
            and isinstance(s.get("sha256"), str)
        )
        if not ok:
            problems.append(
                f"{where}: shards[{i}] is not {{file: 'shard-….arrow', bytes, rows, sha256}}"
            )
    sch = m.get("schema")
    if not isinstance(sch, list) or not all(
        isinstance(c, dict) and isinstance(c.get("name"), str) for c in sch
    ):
        problems.append(f"{where}: no 'schema' list of columns")
    if not isinstance(m.get("num_rows"), int):
        problems.append(f"{where}: no integer 'num_rows'")
    counts = m.get("counts")
    if not isinstance(counts, dict) or not all(
        isinstance(d, dict) and all(isinstance(n, int) for n in d.values()) for d in counts.values()
    ):
        problems.append(f"{where}: no 'counts' mapping of task → format → rows")
    return problems


def verify(out: str | Path) -> list[str]:
    """Problems found (empty when the export is intact): marker, counts, sizes, checksums, schema.
    Never raises for a damaged folder: every problem is a line of the result."""
    out = Path(out)
    try:
        m = load_manifest(out)
    except FlanDataError as e:
        return [str(e)]
    except OSError as e:
        return [f"{out}: cannot read: {e.strerror or e}"]
    problems = check_manifest(m, out / MANIFEST)
    if problems:
        return problems
    try:
        return _verify_shards(out, m)
    except OSError as e:
        return [f"{e.filename or out}: cannot read: {e.strerror or e}"]
    except FlanDataError as e:
        return [str(e)]


def _verify_shards(out: Path, m: dict[str, Any]) -> list[str]:
    problems = []
    rows = 0
    per: Counter[tuple[str, str]] = Counter()
    listed = set()
    schema = manifest_schema(m)
    for s in m["shards"]:
        f = out / s["file"]
        listed.add(s["file"])
        if not f.is_file():
            problems.append(f"{f}: missing")
            continue
        size = f.stat().st_size
        if size != s["bytes"]:
            problems.append(f"{f}: {size} bytes, manifest says {s['bytes']} (truncated or edited)")
            continue
        h = hashlib.sha256(f.read_bytes()).hexdigest()
        if h != s["sha256"]:
            problems.append(
                f"{f}: sha256 {h[:12]}… differs from the manifest's {s['sha256'][:12]}… (edited)"
            )
            continue
        try:
            t = read_table(f, schema)
        except (pa.ArrowInvalid, OSError, ValueError, FlanDataError) as e:
            problems.append(f"{f}: unreadable shard: {e}")
            continue
        if not t.schema.equals(schema):
            problems.append(f"{f}: schema differs from the shard schema")
            continue
        if t.num_rows != s["rows"]:
            problems.append(f"{f}: {t.num_rows} rows, manifest says {s['rows']}")
        rows += t.num_rows
        for task, fmt in zip(t["task"].to_pylist(), t["format"].to_pylist()):
            per[(task, fmt)] += 1
    for extra in sorted(
        str(p.relative_to(out)) for d in (out, out / DATA_DIR) for p in d.glob("shard-*")
    ):
        if extra not in listed:
            problems.append(f"{out / extra}: not listed in the manifest")
    if not problems:
        if rows != m["num_rows"]:
            problems.append(f"{out}: {rows} rows in shards, manifest says {m['num_rows']}")
        expect = Counter({(t, f): n for t, d in m["counts"].items() for f, n in d.items()})
        if expect != per:
            diff = sorted(set(expect) ^ set(per) | {k for k in expect if expect[k] != per.get(k)})[
                :5
            ]
            problems.append(
                f"{out}: per task × format counts differ from the manifest (e.g. {diff})"
            )
    return problems


def manifest_schema(m: dict[str, Any]) -> pa.Schema:
    """The shard schema a manifest promises (its column names, with their known types)."""
    return column_schema([c["name"] for c in m["schema"]])


def iter_shards(out: str | Path, columns=None):
    """Yield each shard of a finished export as a ``pyarrow.Table`` (any file format),
    in manifest order; ``columns`` selects columns.

    >>> next(iter_shards("/nonexistent"))
    Traceback (most recent call last):
    ...
    flan_data.errors.FlanDataError: /nonexistent: no manifest.json; is this a flan export folder?
    """
    out = Path(out)
    m = load_manifest(out)
    schema = manifest_schema(m)
    for s in m["shards"]:
        t = read_table(out / s["file"], schema)
        yield t.select(list(columns)) if columns is not None else t


def _percentiles(values: list[int], ps=(50, 90, 99, 100)) -> dict[str, int]:
    if not values:
        return {f"p{p}": 0 for p in ps}
    v = sorted(values)
    return {f"p{p}": v[min(len(v) - 1, max(0, -(-p * len(v) // 100) - 1))] for p in ps}


def stats(out: str | Path, tokenizer=None) -> dict[str, Any]:
    """Counts per task × format, length percentiles (chars, tokens), template usage."""
    from ..fewshot import WhitespaceTokenizer

    tok = tokenizer or WhitespaceTokenizer()
    out = Path(out)
    problems = verify(out)
    if problems:
        more = (
            f" (and {len(problems) - 1} more; flan verify {out} lists them)"
            if len(problems) > 1
            else ""
        )
        raise FlanDataError(f"{problems[0]}{more}")
    counts: Counter[tuple[str, str]] = Counter()
    templates: Counter[str] = Counter()
    lens: dict[str, list[int]] = {
        "inputs_chars": [],
        "targets_chars": [],
        "inputs_tokens": [],
        "targets_tokens": [],
    }
    for b in iter_shards(out, ("task", "format", "template_id", "inputs", "targets")):
        for task, fmt, tid, x, y in zip(*(col.to_pylist() for col in b.columns)):
            counts[(task, fmt)] += 1
            templates[tid] += 1
            lens["inputs_chars"].append(len(x))
            lens["targets_chars"].append(len(y))
            lens["inputs_tokens"].append(tok.count(x))
            lens["targets_tokens"].append(tok.count(y))
    per_task: dict[str, dict[str, int]] = {}
    for (t, f), n in sorted(counts.items()):
        per_task.setdefault(t, {})[f] = n
    return {
        "rows": sum(counts.values()),
        "tasks": per_task,
        "lengths": {k: _percentiles(v) for k, v in lens.items()},
        "templates": dict(templates.most_common()),
        "_raw_lengths": lens,
    }


def plot_lengths(st: dict[str, Any], path: str | Path) -> None:
    """Write a PNG histogram of input/target token lengths (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from ..errors import MissingDependencyError

        raise MissingDependencyError("matplotlib", "plot", "flan stats --plot") from None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("inputs_tokens", "targets_tokens")):
        ax.hist(st["_raw_lengths"][key], bins=50, color="#4477aa")
        ax.set_title(key.replace("_", " "))
        ax.set_xlabel("tokens (whitespace)")
        ax.set_ylabel("examples")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
