"""Hugging Face checkpoint I/O shared by the model families.

A family describes its checkpoint as ``(hf tensor name, path in our param
tree, transpose?)`` triples; this module turns such a list into safetensors
and back, shape-checking every tensor.

>>> tree = {}
>>> set_path(tree, ("a", "b"), 1)
>>> get_path(tree, ("a", "b"))
1
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

Names = Sequence[tuple[str, tuple[str, ...], bool]]


def get_path(tree, path):
    for p in path:
        tree = tree[p]
    return tree


def set_path(tree, path, value) -> None:
    for p in path[:-1]:
        tree = tree.setdefault(p, {})
    tree[path[-1]] = value


def read_safetensors(directory: Path) -> dict[str, np.ndarray]:
    """All tensors of ``model.safetensors`` (or a sharded index) as fp32 arrays."""
    # framework="flax" reads bf16 tensors too (numpy has no bfloat16)
    from safetensors import safe_open

    single = directory / "model.safetensors"
    index = directory / "model.safetensors.index.json"
    if single.is_file():
        files = [single]
    elif index.is_file():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        files = [directory / n for n in names]
    else:
        raise FileNotFoundError(
            f"{directory}: no model.safetensors (or model.safetensors.index.json)"
        )
    tensors: dict[str, np.ndarray] = {}
    for f in files:
        with safe_open(str(f), framework="flax") as st:
            for key in st.keys():  # noqa: SIM118 - safe_open is not a dict
                tensors[key] = np.asarray(st.get_tensor(key), dtype=np.float32)
    return tensors


def params_from_tensors(
    directory: Path, tensors: Mapping[str, np.ndarray], names: Names, shapes: Any
) -> dict:
    """Our fp32 param tree from HF tensors; a missing or mis-shaped tensor raises
    ``ValueError`` naming it and the shape the config implies."""
    params: dict = {}
    for hf_name, path, transpose in names:
        if hf_name not in tensors:
            raise ValueError(f"{directory}: tensor {hf_name} is missing from the checkpoint")
        arr = np.asarray(tensors[hf_name], dtype=np.float32)
        if transpose:
            arr = arr.T
        want = get_path(shapes, path)
        if tuple(arr.shape) != tuple(want):
            raise ValueError(
                f"{directory}: tensor {hf_name} has shape {tensors[hf_name].shape}, "
                f"config.json implies {want[::-1] if transpose else want}"
            )
        set_path(params, path, np.ascontiguousarray(arr))
    return params


def write_hf(
    directory: str | Path,
    params: Mapping,
    names: Names,
    hf_config: Mapping[str, Any],
    aliases: Mapping[str, str] | None = None,
) -> Path:
    """Write ``config.json`` + ``model.safetensors`` (fp32). ``aliases`` maps an
    extra tensor name to the name whose copy it gets (an explicit tied head)."""
    import jax
    from safetensors.numpy import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for hf_name, path, transpose in names:
        arr = np.asarray(jax.device_get(get_path(params, path)), dtype=np.float32)
        tensors[hf_name] = np.ascontiguousarray(arr.T if transpose else arr)
    for extra, src in (aliases or {}).items():
        tensors[extra] = tensors[src].copy()
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
    (directory / "config.json").write_text(json.dumps(dict(hf_config), indent=2, sort_keys=True))
    return directory
