"""core.regions.raster: the engine's tissue mask becomes a region whose area is the mask's."""

from __future__ import annotations

import numpy as np
import pytest
from shapely.geometry import Point

from core.regions import RegionKind, RegionSet, derive_ct_im
from core.regions.raster import mask_to_polygon, tissue_region
from core.regions.region import Region


def test_polygon_has_the_mask_area_holes_and_islands() -> None:
    yy, xx = np.mgrid[0:200, 0:300]
    mask = (xx - 120) ** 2 + (yy - 100) ** 2 < 80**2  # a disc
    mask &= ~((xx - 120) ** 2 + (yy - 100) ** 2 < 30**2)  # with a hole
    mask |= (xx - 120) ** 2 + (yy - 100) ** 2 < 10**2  # and an island in the hole
    mask[20:60, 240:290] = True  # and a separate rectangle
    poly = mask_to_polygon(mask, 4.0)
    assert poly.geom_type == "MultiPolygon" and len(poly.geoms) == 3
    assert poly.area == pytest.approx(mask.sum() * 16.0, rel=0.01)
    assert not poly.contains(Point(120 * 4 + 25 * 4, 100 * 4))  # in the hole
    assert poly.contains(Point(120.5 * 4, 100.5 * 4))  # on the island
    assert poly.contains(Point(265 * 4, 40 * 4))
    # a raster pixel (i, j) covers [j·s, (j+1)·s): the rectangle's edges are at 240·s and 290·s
    rect = [g for g in poly.geoms if g.bounds[0] > 900][0]
    np.testing.assert_allclose(rect.bounds, (240 * 4, 20 * 4, 290 * 4, 60 * 4), atol=2.01)


def test_empty_mask_gives_no_region_and_anisotropic_pixels_scale() -> None:
    assert tissue_region(np.zeros((10, 10), bool), 4.0) is None
    mask = np.zeros((50, 50), bool)
    mask[10:40, 10:40] = True
    region = tissue_region(mask, (2.0, 3.0))
    assert region is not None and region.kind is RegionKind.TISSUE
    assert region.area_um2 == pytest.approx(900 * 6.0, rel=0.02)


def test_detected_tissue_clips_the_derived_margin() -> None:
    """Where the tumour meets the tissue edge, the IM stops at the tissue (not at the slide)."""
    mask = np.zeros((250, 250), bool)
    mask[:, :150] = True  # tissue on the left 600 µm of a 1000 µm slide (4 µm pixels)
    tissue = tissue_region(mask, 4.0)
    from shapely.geometry import box

    tumour = Region(kind=RegionKind.TUMOUR, geometry=box(100, 100, 600, 900))
    with_tissue = RegionSet([tumour, tissue], bounds_um=(1000.0, 1000.0))
    without = RegionSet([tumour], bounds_um=(1000.0, 1000.0))
    ct, im, warnings = derive_ct_im(with_tissue, 200.0)
    ct0, im0, warnings0 = derive_ct_im(without, 200.0)
    assert warnings == [] and warnings0 and "not clipped to tissue" in warnings0[0]
    assert im.bounds[2] == pytest.approx(600.0, abs=2.1) and im0.bounds[2] == pytest.approx(800.0)
    assert im.area < im0.area and ct.equals_exact(ct0, 1e-6)
