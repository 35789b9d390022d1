"""Tissue detection on a low-resolution read, so that tiles of empty glass never reach the model.

Hoechst marks every nucleus, so tissue is where the stain is. Log intensity has three populations:
glass (dark), stroma (dim nuclei and autofluorescence) and nucleus-dense tissue; plain Otsu splits
stroma from dense tissue and would drop stroma, where many lymphocytes live. So the threshold is
the lower one of a three-class Otsu (glass | stroma), falling back to two classes when the image
has too few grey levels. A closing joins the nuclei of sparse tissue, small holes are filled, and
pieces below a minimum area (debris, dust) dropped. Erring on the side of tissue costs only time, but
not where the mask becomes the Tissue region that densities divide by: a hole that survives the
closing is glass (a vessel lumen, a tear, fat), and filling it would add cell-free area to the CT/IM
(on validation phantoms, filled holes made CT densities 5–7% too low). So only holes smaller than
``max_hole_um2`` are filled, as QuPath's tissue detection does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_multiotsu, threshold_otsu
from skimage.morphology import remove_small_holes, remove_small_objects

from core.engine._grid import TileGrid

if TYPE_CHECKING:
    from core.slides import Slide

#: Radius (µm) of the closing that joins nuclei into tissue.
CLOSING_UM = 12.0
#: Pieces are debris only if also smaller than this fraction of the slide area.
SMALL_FRACTION = 0.05
#: Most level-0 pixels read at once (bounds memory on a slide without a pyramid).
_MAX_READ_PX = 64_000_000


def read_overview(slide: Slide, grid: TileGrid, channel: int) -> np.ndarray:
    """float32 (h, w) of ``channel`` at the raster resolution, read in strips (bounded memory)."""
    h, w = grid.raster_shape
    ds_x, ds_y = grid.raster_downsample
    strip = max(1, min(h, int(_MAX_READ_PX / max(1.0, w * ds_x * ds_y))))
    out = np.zeros((h, w), dtype=np.float32)
    for top in range(0, h, strip):
        rows = min(strip, h - top)
        part = slide.read_region_at_mpp(location=(0, top * ds_y), size=(w, rows), mpp=grid.raster_mpp, channels=[channel])
        out[top : top + rows] = np.asarray(part, dtype=np.float32)[0, :rows, :w]
    return out


@dataclass(frozen=True)
class OverviewLevels:
    """The cuts of the log overview's three populations (glass | stroma | nucleus-dense tissue),
    from one multi-Otsu: the tissue mask and the nucleus stain check read the same split."""

    log: np.ndarray  # log1p of the overview
    tissue: float | None  # log threshold glass | tissue (None: a flat image, no tissue)
    stroma: float | None  # raw intensity stroma | nucleus (None: fewer than three populations)


def overview_levels(overview: np.ndarray) -> OverviewLevels:
    """The levels of ``overview``. ``stroma``: a nucleus, read at full resolution, is brighter than
    this blurred boundary; a call below it sits on no DNA. With too few grey levels for three
    classes, the tissue threshold falls back to a two-class Otsu and there is no stroma level."""
    img = np.log1p(np.maximum(overview, 0.0))
    if img.size == 0 or float(img.max()) <= float(img.min()):
        return OverviewLevels(img, None, None)
    try:
        lower, upper = threshold_multiotsu(img, classes=3)
    except ValueError:  # fewer than three grey levels
        return OverviewLevels(img, float(threshold_otsu(img)), None)
    return OverviewLevels(img, float(lower), float(np.expm1(upper)))


def detect_tissue(overview: np.ndarray, raster_mpp: float, min_area_um2: float,
                  max_hole_um2: float = 500.0, levels: OverviewLevels | None = None) -> np.ndarray:
    """bool mask of tissue in ``overview`` (raster px of ``raster_mpp`` µm); pieces smaller than
    ``min_area_um2`` (and than 5% of the slide) are dropped, holes smaller than ``max_hole_um2``
    filled (larger ones are glass and stay out). ``levels``: :func:`overview_levels` of
    ``overview`` if the caller has them already."""
    levels = levels if levels is not None else overview_levels(overview)
    if levels.tissue is None:
        return np.zeros(overview.shape, dtype=bool)
    mask = levels.log > levels.tissue
    radius = max(1, math.ceil(CLOSING_UM / raster_mpp))
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    disk = yy * yy + xx * xx <= radius * radius
    # Pad so the closing does not eat tissue that touches the slide edge.
    padded = np.pad(mask, radius, mode="edge")
    mask = ndimage.binary_closing(padded, structure=disk)[radius:-radius, radius:-radius]
    hole_px = int(max_hole_um2 / (raster_mpp * raster_mpp))
    if hole_px > 0:
        mask = remove_small_holes(mask, max_size=hole_px)
    # Debris is small relative to the slide too: on a small crop or TMA core, never drop everything.
    min_area_um2 = min(min_area_um2, SMALL_FRACTION * overview.size * raster_mpp * raster_mpp)
    min_px = int(min_area_um2 / (raster_mpp * raster_mpp))
    if min_px > 1:
        mask = remove_small_objects(mask, max_size=min_px - 1)
    return np.asarray(mask, dtype=bool)
