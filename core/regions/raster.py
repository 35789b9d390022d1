"""From a raster mask (the engine's tissue mask) to a region polygon in slide µm.

Why: the engine finds tissue on a low-resolution raster, but scores clip the invasive margin with
*regions*. Turning the mask into a "Tissue" region lets ``core analyse`` write it as a QuPath
annotation, the app show it as an editable region, and CT/IM always be clipped to real tissue
(otherwise the band spills over the glass where the tumour meets the tissue edge, and IM densities
come out too low).

Contours are traced between pixel centres (marching squares at level 0.5), so the polygon's area
matches the mask's pixel count to within half a pixel along the border; nested contours become
holes by the even-odd rule.
"""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import Polygon
from skimage.measure import find_contours

from core.regions.region import Polygonal, Region, RegionKind
from core.regions.validate import as_polygonal, polygonal_parts

#: Name of a tissue region found by the engine (a drawn one keeps the user's name).
DETECTED_TISSUE_NAME = "Tissue (detected)"


def mask_to_polygon(mask: np.ndarray, pixel_um: float | tuple[float, float], simplify_px: float = 0.5) -> Polygonal:
    """The area of ``mask`` (bool (h, w); pixel (i, j) covers ``[j·sx, (j+1)·sx) × [i·sy, (i+1)·sy)``
    µm with ``(sx, sy) = pixel_um``) as a (Multi)Polygon in µm; empty Polygon for an empty mask.

    ``simplify_px``: tolerance (raster px) that removes the staircase vertices of the trace.
    """
    sx, sy = (pixel_um, pixel_um) if isinstance(pixel_um, int | float) else pixel_um
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return Polygon()
    padded = np.pad(mask, 1).astype(np.float32)
    rings: list[Polygon] = []
    for contour in find_contours(padded, 0.5):
        if len(contour) < 4:
            continue
        # padded index − 1 = mask index; a pixel's centre is at (index + 0.5)·s
        xy = (contour[:, ::-1] - 0.5) * (sx, sy)
        ring = Polygon(xy)
        if not ring.is_valid:
            ring = shapely.make_valid(ring)
        rings.extend(p for p in polygonal_parts(ring) if p.area > 0)
    if not rings:
        return Polygon()
    rings.sort(key=lambda p: p.area, reverse=True)
    shape: shapely.Geometry = rings[0]
    for ring in rings[1:]:  # even-odd: a ring inside the shape is a hole, inside a hole an island
        shape = shape.symmetric_difference(ring)
    if simplify_px > 0:
        shape = shape.simplify(simplify_px * min(sx, sy), preserve_topology=True)
    return as_polygonal(polygonal_parts(shape))


def tissue_region(mask: np.ndarray, pixel_um: float | tuple[float, float], author: str = "HoechstScore") -> Region | None:
    """The engine's tissue mask as a "Tissue" region (slide µm), or None when it holds no tissue."""
    geometry = mask_to_polygon(mask, pixel_um)
    if geometry.is_empty:
        return None
    return Region(kind=RegionKind.TISSUE, geometry=geometry, name=DETECTED_TISSUE_NAME, author=author)
