"""Density rasters and the stored tissue mask (core.density_map, core.tissue_mask): app and report share them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from core.density_map import density_from_cells, mask_density
from core.tissue_mask import decode_mask, encode_mask, fraction_in_mask

MPP = (0.5, 0.5)


def test_mask_round_trip_is_json_and_subsamples_big_masks() -> None:
    rng = np.random.default_rng(1)
    mask = rng.random((37, 53)) > 0.5
    data = json.loads(json.dumps(encode_mask(mask, 8.0)))
    back, ds = decode_mask(data)
    assert ds == 8.0 and np.array_equal(back, mask)
    big, ds = decode_mask(encode_mask(np.ones((3000, 10), bool), 2.0))
    assert big.shape == (1000, 4) and ds == 6.0


def test_fraction_in_mask_left_half() -> None:
    mask = np.zeros((100, 100), bool)
    mask[:, :50] = True  # mask px = 4 level-0 px = 2 µm: the left 100 µm are tissue
    assert fraction_in_mask(box(0, 0, 200, 200), mask, 4.0, MPP) == pytest.approx(0.5)
    assert fraction_in_mask(box(0, 0, 100, 50), mask, 4.0, MPP) == pytest.approx(1.0)
    assert fraction_in_mask(box(150, 0, 400, 100), mask, 4.0, MPP) == pytest.approx(0.0)  # partly off the mask
    assert fraction_in_mask(box(10, 10, 10.5, 10.5), mask, 4.0, MPP) == 1.0  # below one mask pixel
    assert fraction_in_mask(box(0, 0, 0, 0), mask, 4.0, MPP) is None


def test_density_from_cells_integrates_to_the_count() -> None:
    rng = np.random.default_rng(0)
    n = 400
    cells = pd.DataFrame({"x_um": rng.uniform(300, 700, n), "y_um": rng.uniform(300, 700, n),
                          "class_name": rng.choice(["CD3", "CD8_CD3HI", "CD20", "other"], n)})
    overlay = density_from_cells(cells, (1000.0, 1000.0), MPP, "CD3+", max_side=200, sigma_um=20.0)
    assert overlay.values.shape == (200, 200) and overlay.downsample == pytest.approx(10.0)
    px_mm2 = (5.0 * 5.0) / 1e6
    expected = int(cells.class_name.isin(["CD3", "CD8_CD3HI"]).sum())
    assert overlay.values.sum() * px_mm2 == pytest.approx(expected, rel=1e-3)
    mask = np.zeros((100, 100), bool)
    mask[:, :50] = True  # left half of the slide (mask px = 20 level-0 px)
    masked = mask_density(overlay, mask, 20.0)
    assert masked.values[:, 100:].sum() == 0 and masked.values[:, :100].sum() > 0
