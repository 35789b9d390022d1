"""Checked against truth: densities measured on a phantom match the densities it was made with.

The phantom writes its cells, its tumour outline and, in phantom.json, the true density of each
cell type in each compartment (tumour_centre, invasive_margin) and the compartments' areas. Here
CT and IM are derived from the outline exactly as for a real slide and the phantom's cells are
counted in them with :mod:`core.scores`; each must agree with the truth within 5 %. The phantom
clips CT and IM to its tissue outline: a "Tissue" annotation in tumour.geojson (or a separate
tissue.geojson) is used for that, like on a real slide.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest

from core.classes import CLASS_NAMES
from core.phantom import PhantomParams, generate_phantom
from core.progress import run_to_completion
from core.regions import RegionKind, RegionSet, read_regions_geojson
from core.scores import compute_densities, drawn_or_derived_ct_im

COMPARTMENTS = {"tumour_centre": "CT", "invasive_margin": "IM"}


def _pair(value: float | list[float]) -> tuple[float, float]:
    if isinstance(value, list | tuple):
        return float(value[0]), float(value[-1])
    return float(value), float(value)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m core phantom --size 2048 --seed 3``, through the same Python call."""
    out = tmp_path_factory.mktemp("phantom")
    run_to_completion(generate_phantom(PhantomParams(size=2048, seed=3), out))
    return out


def test_densities_match_phantom_truth(phantom: Path) -> None:
    meta = json.loads((phantom / "phantom.json").read_text())
    assert meta["synthetic"] is True
    mpp = _pair(meta["mpp"])
    width, height = _pair(meta["size"])
    found = read_regions_geojson(phantom / "tumour.geojson", mpp).regions
    if (phantom / "tissue.geojson").exists():  # a separate tissue outline (holes clip the IM), if written
        tissue = read_regions_geojson(phantom / "tissue.geojson", mpp).regions
        found += [dataclasses.replace(r, kind=RegionKind.TISSUE) for r in tissue]
    regions = RegionSet(found, bounds_um=(width * mpp[0], height * mpp[1]))
    scoring = drawn_or_derived_ct_im(regions, float(meta["im_half_width_um"]))
    cells = pd.read_csv(phantom / "cells.csv").rename(columns={"type": "class_name"})
    table = compute_densities(cells, {"CT": scoring.ct, "IM": scoring.im},
                              marker_groups={name: (name,) for name in CLASS_NAMES})
    checked = 0
    for compartment, label in COMPARTMENTS.items():
        row = table.get(label)
        assert row is not None, f"no {label} derived from the phantom's tumour outline"
        assert row.area_mm2 == pytest.approx(meta["areas_mm2"][compartment], rel=0.05)
        for cell_type, truth in meta["densities"][compartment].items():
            expected_cells = truth * row.area_mm2
            if expected_cells < 50:  # 5 % of a handful is under one cell: allow two cells either way
                assert abs(row.counts[cell_type] - expected_cells) <= 2 + 0.05 * expected_cells
            else:
                assert row.densities[cell_type] == pytest.approx(truth, rel=0.05), (compartment, cell_type)
            checked += 1
    assert checked >= 8
