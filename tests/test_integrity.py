"""Integrity under faults and hostile input (issue 12): exports are never lost,
never blessed when damaged, never mixed across source versions; bad numbers in
the catalog are refused at load time."""

from __future__ import annotations

import pytest

from flan_data import Catalog
from flan_data.errors import CatalogError

# ----------------------------------------------------------------------------- catalog numbers


@pytest.mark.parametrize("key", ["rate", "cap", "inversion_weight"])
@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_non_finite_mixture_numbers_are_refused_at_load(tmp_path, h, key, value):
    root = h.write_catalog_dir(tmp_path / "c", mixtures={"m": {"members": [{"task": "toy"}]}})
    text = (
        (root / "catalog.yaml").read_text().replace("task: toy", f"task: toy\n      {key}: {value}")
    )
    assert value in text
    (root / "catalog.yaml").write_text(text)
    with pytest.raises(CatalogError) as ei:
        Catalog.load(root)
    msg = str(ei.value)
    assert "catalog.yaml" in msg and f"members[0].{key}" in msg


def test_non_finite_temperature_is_refused_at_load(tmp_path, h):
    root = h.write_catalog_dir(
        tmp_path / "c", mixtures={"m": {"members": [{"task": "toy"}], "temperature": float("nan")}}
    )
    with pytest.raises(CatalogError, match="finite"):
        Catalog.load(root)
