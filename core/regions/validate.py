"""Repair, clean and clip region geometry, and say what was changed.

Hand-drawn and imported outlines are often invalid (a bow-tie where the pen crossed its own line),
carry slivers (zero-width spikes from a fill tool) or stray off the slide. Scores need a valid
polygonal area, so every region passes through :func:`clean_geometry` before it is used, and the
user is told what changed rather than getting a silently different area.

Work is bounded before GEOS sees a geometry, because its repair and buffer times explode on
pathological input (a random 1,000-point outline: 14 s to repair into 1,171 parts, then CT/IM
derivation did not return in 400 s). Decision, per case: an outline with more than
:data:`MAX_VERTICES` vertices is *simplified* (0.25 µm tolerance, about a pixel, coarser if that is
not enough) and the user is told; more than :data:`MAX_PARTS` parts, or an invalid outline that crosses itself more than
:data:`MAX_CROSSINGS` times, is *refused* with a message -- no hand-drawn or QuPath outline comes
near these, and any repair of such a scribble would be a guess. Counting crossings costs one
STRtree query over the outline's segments (milliseconds for 100,000 vertices).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import shapely
from shapely.geometry import GeometryCollection, MultiPolygon, Polygon, box
from shapely.geometry.base import BaseGeometry

from core.errors import RegionError
from core.regions.region import UM2_PER_MM2, Polygonal, Region

#: Parts smaller than this (µm²) are slivers and are dropped.
MIN_AREA_UM2 = 1.0
#: Parts thinner than this (µm, estimated as 2·area/perimeter) are slivers: about one pixel at 20x.
MIN_WIDTH_UM = 0.25
#: Most vertices kept as drawn; above, the outline is simplified with each tolerance in turn (µm)
#: until it fits, and refused if it never does.
MAX_VERTICES = 50_000
SIMPLIFY_UM = (0.25, 1.0, 4.0)
#: Most polygon parts in one region.
MAX_PARTS = 5_000
#: Most self-crossings of an invalid outline that is still repaired (a bow-tie has one).
MAX_CROSSINGS = 1_000


@dataclass(frozen=True)
class GeometryReport:
    """What :func:`clean_geometry` changed.

    repaired: the input was invalid (self-intersection, bow-tie, ...) and was repaired.
    slivers_dropped: polygon parts dropped for being smaller than ``min_area_um2`` or thinner than
    ``min_width_um``. clipped_fraction: fraction (0-1) of the area that lay outside the slide.
    warnings: one sentence per change, for the user.
    """

    repaired: bool = False
    slivers_dropped: int = 0
    clipped_fraction: float = 0.0
    warnings: tuple[str, ...] = ()


def polygonal_parts(geometry: BaseGeometry) -> list[Polygon]:
    """The non-empty polygons in any geometry (lines and points are dropped)."""
    if geometry.is_empty:
        return []
    if isinstance(geometry, Polygon):
        return [geometry]
    if isinstance(geometry, MultiPolygon | GeometryCollection):
        return [p for g in geometry.geoms for p in polygonal_parts(g)]
    return []


def as_polygonal(parts: list[Polygon]) -> Polygonal:
    """One Polygon, or a MultiPolygon for several (empty Polygon for none); parts must not overlap."""
    if not parts:
        return Polygon()
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def _within(geometry: Polygonal, bounds_um: tuple[float, float]) -> bool:
    minx, miny, maxx, maxy = (float(v) for v in geometry.bounds)
    return minx >= 0 and miny >= 0 and maxx <= bounds_um[0] and maxy <= bounds_um[1]


def _is_sliver(part: Polygon, min_area_um2: float, min_width_um: float) -> bool:
    area = part.area
    if area < min_area_um2:
        return True
    return min_width_um > 0 and 2.0 * area / max(part.length, 1e-12) < min_width_um


def self_crossings(geometry: BaseGeometry, limit: int = MAX_CROSSINGS) -> int:
    """Pairs of non-adjacent edges of the polygon rings that touch or cross (0 for a simple outline).

    Counting stops soon after ``limit`` is passed: any value above it means "more than limit".
    """
    rings = [r for p in polygonal_parts(geometry) for r in (p.exterior, *p.interiors)]
    starts, ends, ring_ids = [], [], []
    for k, ring in enumerate(rings):
        xy = shapely.get_coordinates(ring)
        if len(xy) < 2:
            continue
        starts.append(xy[:-1])
        ends.append(xy[1:])
        ring_ids.append(np.full(len(xy) - 1, k))
    if not starts:
        return 0
    a, b, ring = np.concatenate(starts), np.concatenate(ends), np.concatenate(ring_ids)
    segments = shapely.linestrings(np.stack([a, b], axis=1))
    first = np.r_[0, np.flatnonzero(np.diff(ring)) + 1]  # each ring's first segment
    last = np.r_[first[1:] - 1, len(ring) - 1]
    wrap = np.zeros(len(ring), dtype=np.int64)
    wrap[first] = last
    tree = shapely.STRtree(segments)
    count, lo, step = 0, 0, 16
    while lo < len(segments):  # growing chunks, so a scribble stops early, not after 10⁸ pairs
        i, j = tree.query(segments[lo : lo + step], predicate="intersects")
        i = i + lo
        lo, step = lo + step, min(step * 2, 4096)
        keep = i < j
        i, j = i[keep], j[keep]
        adjacent = (ring[i] == ring[j]) & ((j - i == 1) | (wrap[i] == j))
        count += int((~adjacent).sum())
        if count > limit:
            break
    return count


def _bound_work(geometry: BaseGeometry, what: str, warnings: list[str]) -> BaseGeometry:
    """Simplify an outline with too many vertices; refuse one GEOS could not repair in seconds."""
    n = after = shapely.get_num_coordinates(geometry)
    for tolerance in SIMPLIFY_UM:
        if after <= MAX_VERTICES:
            break
        simpler = shapely.simplify(geometry, tolerance, preserve_topology=True)
        after = shapely.get_num_coordinates(simpler)
        if after <= MAX_VERTICES:
            geometry = simpler
            warnings.append(f"Region {what!r} had {n:,} vertices and was simplified to {after:,} "
                            f"(to within {tolerance:g} µm of the outline).")  # fmt: skip
    if after > MAX_VERTICES:
        raise RegionError(
            f"Region {what!r} has {n:,} vertices, still {after:,} after simplifying to {SIMPLIFY_UM[-1]:g} µm; "
            f"at most {MAX_VERTICES:,} are supported. Simplify it in QuPath (Objects > Annotations > Simplify shape)."
        )  # fmt: skip
    parts = len(polygonal_parts(geometry))
    if parts > MAX_PARTS:
        raise RegionError(
            f"Region {what!r} has {parts:,} separate parts; at most {MAX_PARTS:,} are supported. "
            "Merge or remove small pieces in QuPath, or import it as several regions."
        )  # fmt: skip
    if not geometry.is_valid:
        crossings = self_crossings(geometry)
        if crossings > MAX_CROSSINGS:
            raise RegionError(
                f"Region {what!r} crosses its own outline {crossings:,} times, so it cannot be repaired into "
                "a meaningful area (a drawn outline crosses itself a few times at most). Draw it again, or "
                "check that the file holds the outline you meant."
            )  # fmt: skip
    return geometry


def clean_geometry(
    geometry: BaseGeometry | None,
    *,
    what: str = "region",
    bounds_um: tuple[float, float] | None = None,
    min_area_um2: float = MIN_AREA_UM2,
    min_width_um: float = MIN_WIDTH_UM,
) -> tuple[Polygonal, GeometryReport]:
    """Return a valid polygonal geometry (slide µm) and a report of what was changed.

    Invalid input is repaired with ``shapely.make_valid`` (structure method: outer rings bound the
    area, holes exclude it), keeping only polygonal parts; holes are kept. The result is clipped to
    the slide, ``bounds_um`` = (width, height) in µm with the origin at the top-left, if given.
    Slivers are dropped last. Raises RegionError naming ``what`` if nothing is left, and for
    outlines too complex to repair in seconds (see the module docstring: vertex, part and
    self-crossing budgets).
    """
    if geometry is None or geometry.is_empty:
        raise RegionError(f"Region {what!r} has no area (empty geometry). Draw it again.")
    if not np.isfinite(shapely.get_coordinates(geometry)).all():
        raise RegionError(f"Region {what!r} has coordinates that are not finite numbers (infinity or NaN).")
    warnings: list[str] = []
    geometry = _bound_work(geometry, what, warnings)
    repaired = False
    if not geometry.is_valid:
        reason = shapely.is_valid_reason(geometry)
        before = geometry.area
        geometry = shapely.make_valid(geometry, method="structure", keep_collapsed=False)
        repaired = True
        warnings.append(
            f"Region {what!r} was invalid ({reason}) and was repaired: area "
            f"{before / UM2_PER_MM2:.4g} mm² became {geometry.area / UM2_PER_MM2:.4g} mm²."
        )
    parts = polygonal_parts(geometry)
    clipped_fraction = 0.0
    if bounds_um is not None and parts and not _within(as_polygonal(parts), bounds_um):
        width, height = bounds_um
        before = sum(p.area for p in parts)
        inside = shapely.intersection(as_polygonal(parts), box(0.0, 0.0, width, height))
        parts = polygonal_parts(inside)
        after = sum(p.area for p in parts)
        clipped_fraction = 0.0 if before <= 0 else max(0.0, 1.0 - after / before)
        if clipped_fraction > 1e-9:
            warnings.append(
                f"{clipped_fraction:.1%} of region {what!r} lay outside the slide "
                f"({width:.0f} × {height:.0f} µm) and was clipped."
            )
    kept = [p for p in parts if not _is_sliver(p, min_area_um2, min_width_um)]
    dropped = len(parts) - len(kept)
    if dropped:
        warnings.append(
            f"Dropped {dropped} sliver(s) from region {what!r} (smaller than {min_area_um2:g} µm² "
            f"or thinner than {min_width_um:g} µm)."
        )
    if not kept:
        where = " inside the slide" if bounds_um is not None else ""
        raise RegionError(
            f"Region {what!r} has no usable area{where} after repair ({'; '.join(warnings) or 'too small'}). "
            "Draw it again, larger and without crossing its own outline."
        )
    report = GeometryReport(repaired, dropped, clipped_fraction, tuple(warnings))
    return as_polygonal(kept), report


def validate_region(
    region: Region,
    *,
    bounds_um: tuple[float, float] | None = None,
    min_area_um2: float = MIN_AREA_UM2,
    min_width_um: float = MIN_WIDTH_UM,
) -> tuple[Region, GeometryReport]:
    """The region with a cleaned geometry (same id), and the report; see :func:`clean_geometry`."""
    geometry, report = clean_geometry(
        region.geometry,
        what=region.display_name,
        bounds_um=bounds_um,
        min_area_um2=min_area_um2,
        min_width_um=min_width_um,
    )
    if geometry is region.geometry:
        return region, report
    return replace(region, geometry=geometry), report
