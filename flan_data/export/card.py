"""The dataset card (``README.md``) of an export folder.

Its YAML header has a ``configs:`` block pointing at ``data/``, so the folder
loads as-is with ``datasets.load_dataset(OUT)`` and can be pushed to the hub as
a dataset repository with the ordinary tools. The body says what is inside:
mixture, seed, tool version, rows per collection, the licenses of the included
tasks and how to load it. The card is a pure function of the manifest and the
catalog: the same export gives the same bytes.

>>> size_category(12_345)
'10K<n<100K'
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from ..catalog import Catalog
from ..errors import UnknownNameError
from .writer import DATA_DIR, atomic_write_bytes, column_schema, shard_format

CARD = "README.md"
MARKER = "<!-- written by flan export: rerunning the export rewrites this file -->"


def size_category(n: int) -> str:
    """The hub's ``size_categories`` bucket for ``n`` rows."""
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
              (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"),
              (1_000_000_000, "100M<n<1B")]  # fmt: skip
    for b, name in bounds:
        if n < b:
            return name
    return "n>1T" if n >= 10**12 else "1B<n<10B"


def _feature(t: pa.DataType) -> dict[str, Any]:
    """A column type in the card's ``dataset_info.features`` YAML form."""
    if pa.types.is_list(t):
        v = t.value_type
        if pa.types.is_struct(v):
            return {"list": [{"name": f.name, **_feature(f.type)} for f in v]}
        return {"list": _feature(v)["dtype"]}
    return {"dtype": {pa.string(): "string", pa.uint64(): "uint64", pa.int64(): "int64"}[t]}


def licenses_of(catalog: Catalog, tasks) -> dict[tuple[str, str], list[str]]:
    """(license names, use class) → the included tasks under them, from the catalog's
    license facts (``metadata.licensing``)."""
    out: dict[tuple[str, str], list[str]] = {}
    for name in sorted(tasks):
        try:
            info = catalog.task(name).metadata.licensing
            key = (", ".join(info.licenses) or "unknown", info.use)
        except UnknownNameError:
            key = ("unknown", "unknown")
        out.setdefault(key, []).append(name)
    return dict(sorted(out.items(), key=lambda kv: (kv[0][1], kv[0][0])))


def card_text(manifest: Mapping[str, Any], catalog: Catalog) -> str:
    """The README.md of an export with this manifest."""
    fmt = shard_format(manifest.get("file_format", "arrow"))
    names = [c["name"] for c in manifest["schema"]]
    schema = column_schema(names)
    counts: Mapping[str, Mapping[str, int]] = manifest["counts"]
    per_coll: dict[str, dict[str, int]] = {}
    for task, d in counts.items():
        try:
            coll = catalog.task(task).collection
        except UnknownNameError:
            coll = "?"
        c = per_coll.setdefault(coll, {"tasks": 0, "rows": 0})
        c["tasks"] += 1
        c["rows"] += sum(d.values())
    lic = licenses_of(catalog, counts)
    mixture = manifest["mixture"].get("name", "?") if isinstance(manifest["mixture"], dict) else "?"
    header = {
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": "train", "path": f"{DATA_DIR}/shard-*{fmt.suffix}"}],
            }
        ],
        "dataset_info": {
            # JSON Lines carry uint64 as decimal strings: the features make
            # `datasets` cast them back, so every format loads the same rows.
            "features": [{"name": f.name, **_feature(f.type)} for f in schema],
        },
        # A mixture of datasets under their own licenses: the hub's "other",
        # with the per-task facts in the body and ATTRIBUTION.md.
        "license": "other",
        "license_name": "flan-collection-mixed",
        "license_link": "ATTRIBUTION.md",
        "language": ["en"],
        "task_categories": ["text-generation"],
        "tags": ["flan", "flan-collection", "instruction-tuning", "flan-data"],
        "size_categories": [size_category(int(manifest["num_rows"]))],
        "pretty_name": f"flan-data export of mixture {mixture}",
    }
    out = manifest.get("output") or {}
    lines = [
        "---",
        yaml.safe_dump(header, sort_keys=False, allow_unicode=True, width=1000).rstrip(),
        "---",
        MARKER,
        "",
        f"# {mixture} (a flan-data export)",
        "",
        f"Rows rendered from the Flan Collection mixture `{mixture}` by flan-data "
        f"{manifest['tool_version']} with seed {manifest['seed']}: "
        f"{manifest['num_rows']:,} rows in {len(manifest['shards'])} {fmt.name} shard(s) under `{DATA_DIR}/`.",
        "The same command with the same seed writes byte-identical files; "
        "`manifest.json` holds the resolved mixture, the catalog hash, the counts per task × format "
        "and the sha256 of every shard, and `COMPLETED` (written last) the sha256 of the manifest.",
        "",
        "## Load it",
        "",
        "```python",
        "import datasets",
        'ds = datasets.load_dataset("path/to/this/folder", split="train")',
        f'ds = datasets.load_dataset("{fmt.hf_builder}", data_dir="path/to/this/folder/{DATA_DIR}", split="train")',
        "```",
        "",
        "`flan verify` checks the checksums; `flan finetune --data` trains on it.",
        "",
        "## Columns",
        "",
        "`inputs`/`targets` are the rendered prompt and answer; `task`, `collection`, `format`, "
        "`template_id`, `fewshot_style`, `options`, `exemplar_ids`, `example_id`, `source_split` "
        "and `seed` say how each row was made.",
    ]
    if out.get("messages"):
        mode = out.get("chat_fewshot") or "single"
        lines.append(
            "`messages` is the chat view of the same row (`user` = inputs, `assistant` = targets"
            + (
                "; few-shot exemplars in their own user/assistant turns"
                if mode == "multiturn"
                else ""
            )
            + (", after a system turn" if out.get("system") is not None else "")
            + ")."
        )
    if "task_source" in names:
        lines.append(
            "`task_source`, `task_name`, `template_type` and `template_idx` are the columns of the "
            "public Flan 2022 dumps (see flan-data's docs/FORMATS.md for the mapping)."
        )
    lines += [
        "",
        "## Rows per collection",
        "",
        "| collection | tasks | rows |",
        "| --- | ---: | ---: |",
    ]
    for coll, c in sorted(per_coll.items()):
        lines.append(f"| {coll} | {c['tasks']} | {c['rows']:,} |")
    lines += [
        "",
        "## Licenses of the included tasks",
        "",
        "Each source dataset keeps its own license; check them before redistributing. "
        "`ATTRIBUTION.md` has the full facts (source, attribution, share-alike) and the citations.",
        "",
        "| license | use | tasks |",
        "| --- | --- | --- |",
    ]
    for (name, use), tasks in lic.items():
        shown = ", ".join(tasks[:20]) + (f", … ({len(tasks)} in all)" if len(tasks) > 20 else "")
        lines.append(f"| {name} | {use} | {shown} |")
    return "\n".join(lines) + "\n"


def write_card(
    out: Path, manifest: Mapping[str, Any], catalog: Catalog, *, sync: bool = True
) -> None:
    """Write ``out/README.md`` atomically (before the manifest and COMPLETED);
    ``sync=False``: without fsync (the caller syncs it before COMPLETED)."""
    atomic_write_bytes(Path(out) / CARD, card_text(manifest, catalog).encode("utf-8"), sync)
