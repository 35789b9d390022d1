"""The tile grid: where tiles lie, in which frame, and which of them the model must see.

Frames: *level-0 px* (the slide's full resolution), *model px* (pixels of the model card's mpp,
origin at the slide's top-left corner; model px = level-0 px × slide mpp / model mpp per axis),
*raster px* (``factor`` model px each, for low-resolution maps) and slide µm (model px × model mpp).

Tile (row r, col c) *keeps* model px ``[c·K, (c+1)·K) × [r·K, (r+1)·K)`` with ``K = patch − 2·context``;
the model reads the patch ``[c·K − context, c·K − context + patch)`` around it (zero-filled outside
the slide). ``K`` is a multiple of ``factor`` so tile edges fall on raster pixel edges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from core.errors import CoreError, RegionError

#: A slide pixel may be at most this much coarser than the model's: beyond, resampling invents detail.
MAX_UPSAMPLING = 2.0


@dataclass(frozen=True)
class TileGrid:
    """Tiles over a slide of ``size`` level-0 px with ``slide_mpp`` (x, y) µm/px for a model at ``model_mpp``."""

    size: tuple[int, int]
    slide_mpp: tuple[float, float]
    model_mpp: float
    patch: int
    context: int
    factor: int

    @classmethod
    def build(
        cls, size: tuple[int, int], slide_mpp: tuple[float, float], model_mpp: float,
        patch: int, context: int, raster_um: float,
    ) -> TileGrid:  # fmt: skip
        """Check the geometry can work and pick the raster factor (model px per raster px)."""
        coarsest = max(slide_mpp)
        if coarsest > MAX_UPSAMPLING * model_mpp:
            raise CoreError(
                f"The slide's pixels ({coarsest:.3f} µm) are more than {MAX_UPSAMPLING:g}× coarser than the "
                f"model's ({model_mpp:.3f} µm): the model cannot see nuclei at this resolution. Scan at a "
                "higher magnification, check the pixel size, or use a model trained at this pixel size."
            )
        keep = patch - 2 * context
        if keep < 16:
            raise CoreError(
                f"Context {context} px leaves only {keep} px of each {patch} px tile; use a smaller context."
            )
        target = max(1, round(raster_um / model_mpp))
        factor = max(d for d in range(1, keep + 1) if keep % d == 0 and d <= target)
        return cls(size, (float(slide_mpp[0]), float(slide_mpp[1])), float(model_mpp), patch, context, factor)

    @property
    def keep(self) -> int:
        """Model px kept per tile side (K)."""
        return self.patch - 2 * self.context

    @property
    def model_size(self) -> tuple[int, int]:
        """Slide extent in model px (width, height)."""
        w, h = self.size
        return (math.ceil(w * self.slide_mpp[0] / self.model_mpp), math.ceil(h * self.slide_mpp[1] / self.model_mpp))

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of tiles."""
        mw, mh = self.model_size
        return math.ceil(mh / self.keep), math.ceil(mw / self.keep)

    @property
    def raster_shape(self) -> tuple[int, int]:
        """(h, w) of the low-resolution rasters."""
        mw, mh = self.model_size
        return math.ceil(mh / self.factor), math.ceil(mw / self.factor)

    @property
    def raster_mpp(self) -> float:
        return self.factor * self.model_mpp

    @property
    def raster_downsample(self) -> tuple[float, float]:
        """Level-0 px per raster px (x, y)."""
        return (self.raster_mpp / self.slide_mpp[0], self.raster_mpp / self.slide_mpp[1])

    def read_location(self, row: int, col: int) -> tuple[float, float]:
        """Level-0 px (exact, may be fractional) of the top-left corner of tile (row, col)'s input patch."""
        mx = col * self.keep - self.context
        my = row * self.keep - self.context
        return (mx * self.model_mpp / self.slide_mpp[0], my * self.model_mpp / self.slide_mpp[1])

    def tissue_tiles(self, tissue: np.ndarray) -> np.ndarray:
        """bool (rows, cols): tiles whose kept area holds any tissue raster pixel."""
        rows, cols = self.shape
        k = self.keep // self.factor
        padded = np.zeros((rows * k, cols * k), dtype=bool)
        h, w = min(tissue.shape[0], rows * k), min(tissue.shape[1], cols * k)
        padded[:h, :w] = tissue[:h, :w]
        return np.asarray(padded.reshape(rows, k, cols, k).any(axis=(1, 3)), dtype=bool)

    def region_tiles(self, region_um: BaseGeometry, margin_um: float) -> np.ndarray:
        """bool (rows, cols): tiles whose kept area lies within ``margin_um`` of the region (µm)."""
        rows, cols = self.shape
        k_um = self.keep * self.model_mpp
        rr, cc = np.mgrid[0:rows, 0:cols]
        boxes = shapely.box(cc * k_um, rr * k_um, (cc + 1) * k_um, (rr + 1) * k_um)
        grown = region_um.buffer(margin_um) if margin_um > 0 else region_um
        shapely.prepare(grown)
        return np.asarray(shapely.intersects(grown, boxes), dtype=bool)

    def slide_box_um(self) -> BaseGeometry:
        w, h = self.size
        return shapely.box(0, 0, w * self.slide_mpp[0], h * self.slide_mpp[1])


def check_region(region_um: BaseGeometry, grid: TileGrid) -> BaseGeometry:
    """The region clipped to the slide; RegionError when it is empty, invalid or outside the slide."""
    if region_um.is_empty or region_um.area <= 0:
        raise RegionError("The region to analyse is empty (it has no area); draw or import a region first.")
    region = region_um if region_um.is_valid else shapely.make_valid(region_um)
    slide_box = grid.slide_box_um()
    clipped = region.intersection(slide_box)
    if clipped.is_empty or clipped.area <= 0:
        x0, y0, x1, y1 = (round(v, 1) for v in region.bounds)
        sx1, sy1 = (round(v, 1) for v in slide_box.bounds[2:])
        raise RegionError(
            f"The region (x {x0}–{x1} µm, y {y0}–{y1} µm) lies outside the slide (0–{sx1} µm × 0–{sy1} µm). "
            "Region coordinates must be slide µm; a region in pixels must be multiplied by the pixel size."
        )
    return clipped
