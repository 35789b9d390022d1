"""From raw cells in model px to the cell table, and the low-resolution rasters for overlays."""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely
from scipy import ndimage
from shapely.geometry.base import BaseGeometry

from core.cells import make_cell_table
from core.engine._extract import RawCells
from core.engine._grid import TileGrid

UM2_PER_MM2 = 1e6


def cell_table(raw: RawCells, grid: TileGrid, class_names: tuple[str, ...], region: BaseGeometry | None) -> pd.DataFrame:
    """Cells in level-0 px and µm; drops cells centred outside the slide or (if given) the region (µm)."""
    m = grid.model_mpp
    sx, sy = grid.slide_mpp
    x_px = raw.cx * m / sx
    y_px = raw.cy * m / sy
    w, h = grid.size
    keep = (x_px < w) & (y_px < h)
    if region is not None and keep.any():
        keep &= shapely.contains_xy(region, raw.cx * m, raw.cy * m)
    return make_cell_table(
        x_px[keep],
        y_px[keep],
        raw.class_id[keep],
        raw.probability[keep],
        raw.n_px[keep] * (m * m),
        (sx, sy),
        class_names,
        raw.confidence[keep],
    )


def density_raster(cells: pd.DataFrame, grid: TileGrid, n_classes: int, sigma_um: float) -> np.ndarray:
    """float32 (C, h, w): cells/mm² of each class, Gaussian-smoothed with ``sigma_um`` (µm)."""
    h, w = grid.raster_shape
    out = np.zeros((n_classes, h, w), dtype=np.float32)
    if len(cells) == 0:
        return out
    ix = np.clip((cells["x_um"].to_numpy() / grid.raster_mpp).astype(np.int64), 0, w - 1)
    iy = np.clip((cells["y_um"].to_numpy() / grid.raster_mpp).astype(np.int64), 0, h - 1)
    flat = iy * w + ix
    cls = cells["class_id"].to_numpy()
    px_area_mm2 = grid.raster_mpp**2 / UM2_PER_MM2
    sigma = sigma_um / grid.raster_mpp
    for c in range(n_classes):
        sel = cls == c
        if not sel.any():
            continue
        counts = np.bincount(flat[sel], minlength=h * w).reshape(h, w).astype(np.float32)
        if sigma > 0:
            counts = ndimage.gaussian_filter(counts, sigma=sigma, mode="constant")
        out[c] = counts / px_area_mm2
    return out


def mask_area_mm2(mask: np.ndarray, grid: TileGrid) -> float:
    return float(mask.sum()) * grid.raster_mpp**2 / UM2_PER_MM2


def region_mask(region: BaseGeometry, grid: TileGrid) -> np.ndarray:
    """bool (h, w): raster pixels whose centre lies in the region (µm)."""
    h, w = grid.raster_shape
    s = grid.raster_mpp
    out = np.zeros((h, w), dtype=bool)
    x0, y0, x1, y1 = region.bounds
    c0, c1 = max(0, int(x0 / s)), min(w, int(np.ceil(x1 / s)) + 1)
    r0, r1 = max(0, int(y0 / s)), min(h, int(np.ceil(y1 / s)) + 1)
    if c1 <= c0 or r1 <= r0:
        return out
    yy, xx = np.mgrid[r0:r1, c0:c1]
    shapely.prepare(region)
    out[r0:r1, c0:c1] = shapely.contains_xy(region, (xx + 0.5) * s, (yy + 0.5) * s)
    return out
