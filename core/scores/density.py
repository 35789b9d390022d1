"""Cell counts and densities (cells/mm²) per marker group per region, from a cell table.

SPEC: density = cells of a marker group in a region ÷ region area in mm². Exclusions are removed
from each region before both counting and measuring its area. A cell counts for a region when its
centroid (x_um, y_um) lies strictly inside it (cells exactly on a border, a zero-area set, count
for neither side). Counting uses shapely's vectorised ``contains_xy`` on a prepared geometry after
a bounding-box cut, so a million cells take well under a second per region.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd
import shapely

from core.classes import CLASS_NAMES, DEFAULT_MARKER_GROUPS
from core.errors import ScoreError
from core.jsontypes import JSONDict, JSONMapping, as_float, as_int, as_list, as_mapping, as_str
from core.regions import UM2_PER_MM2, Polygonal
from core.scores.base import Provenance, Score, parameter_name


class CellDensity(Score):
    """Cells of a marker group per mm² of a region."""

    key: ClassVar[str] = "density"
    name: ClassVar[str] = "Cell density"
    unit: ClassVar[str] = "cells/mm²"
    help: ClassVar[str] = (
        "Number of cells of a marker group (CD3+ = CD3, CD8_CD3LO, CD8_CD3HI; CD8+ = CD8_CD3LO, "
        "CD8_CD3HI; CD20+ = CD20) whose centre lies inside the region, divided by the region's "
        "area in mm². Exclusion regions are removed from both the count and the area."
    )

    @staticmethod
    def label(group: str, region: str) -> str:
        """Display name of one density, e.g. "CD3+ density, CT (cells/mm²)"."""
        return f"{group} density, {region} ({CellDensity.unit})"


@dataclass(frozen=True)
class RegionDensity:
    """Counts and densities in one region. area_mm2: area after exclusions (mm²)."""

    region: str
    area_mm2: float
    counts: Mapping[str, int]
    densities: Mapping[str, float]  # cells/mm²

    def to_dict(self) -> JSONDict:
        return {"region": self.region, "area_mm2": self.area_mm2, "counts": dict(self.counts),
                "densities": dict(self.densities)}

    @classmethod
    def from_dict(cls, d: JSONMapping) -> RegionDensity:
        return cls(as_str(d["region"]), as_float(d["area_mm2"]),
                   {k: as_int(v) for k, v in as_mapping(d["counts"]).items()},
                   {k: as_float(v) for k, v in as_mapping(d["densities"]).items()})


@dataclass(frozen=True)
class DensityTable:
    """Densities of every marker group in every region; ``missing`` regions had no area."""

    regions: tuple[RegionDensity, ...]
    marker_groups: Mapping[str, tuple[str, ...]]
    missing: tuple[str, ...] = ()
    provenance: Provenance = field(default_factory=Provenance)

    def get(self, region: str) -> RegionDensity | None:
        """The row of one region, or None when it is missing."""
        return next((r for r in self.regions if r.region == region), None)

    def density(self, group: str, region: str) -> float | None:
        """cells/mm² of ``group`` in ``region``; None when the region is missing."""
        row = self.get(region)
        return None if row is None else row.densities[group]

    def parameters(self, regions: tuple[str, ...] = ("CT", "IM")) -> dict[str, float | None]:
        """Cohort-style parameters, e.g. {"CD3_CT": cells/mm², ...}; None for a missing region."""
        return {parameter_name(g, r): self.density(g, r) for g in self.marker_groups for r in regions}

    def to_dict(self) -> JSONDict:
        return {
            "unit": CellDensity.unit,
            "regions": [r.to_dict() for r in self.regions],
            "missing_regions": list(self.missing),
            "marker_groups": {k: list(v) for k, v in self.marker_groups.items()},
            "provenance": self.provenance.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: JSONMapping) -> DensityTable:
        """Inverse of :meth:`to_dict` (a stored result)."""
        return cls(tuple(RegionDensity.from_dict(as_mapping(r)) for r in as_list(d.get("regions"))),
                   {k: tuple(as_str(m) for m in as_list(v)) for k, v in as_mapping(d.get("marker_groups")).items()},
                   tuple(as_str(r) for r in as_list(d.get("missing_regions"))),
                   Provenance.from_dict(as_mapping(d.get("provenance"))))


def _class_names(cells: pd.DataFrame, classes: Sequence[str]) -> pd.Series:
    """Each cell's class name: its class_name, else its class_id looked up in ``classes`` (the
    model's table). Marker groups name classes, so scores follow names, never indices."""
    if "class_name" in cells.columns:
        return cells["class_name"].astype(str)
    if "class_id" in cells.columns:
        return cells["class_id"].map(dict(enumerate(classes))).fillna("").astype(str)
    raise ScoreError(
        "The cell table needs a class_name (or class_id) column; "
        f"it has {', '.join(map(str, cells.columns))}."
    )


def _coordinates(cells: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    if not {"x_um", "y_um"} <= set(cells.columns):
        raise ScoreError(
            f"The cell table needs x_um and y_um columns (µm); it has {', '.join(map(str, cells.columns))}."
        )
    return cells["x_um"].to_numpy(np.float64), cells["y_um"].to_numpy(np.float64)


def inside(geometry: Polygonal, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Boolean mask of points (µm) strictly inside ``geometry`` (bounding-box cut, then contains_xy)."""
    mask = np.zeros(x.shape, dtype=bool)
    if geometry.is_empty:
        return mask
    minx, miny, maxx, maxy = geometry.bounds
    cand = np.flatnonzero((x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy))
    if cand.size:
        shapely.prepare(geometry)  # in place; harmless, and reused by later calls
        mask[cand] = shapely.contains_xy(geometry, x[cand], y[cand])
    return mask


def compute_densities(
    cells: pd.DataFrame,
    regions: Mapping[str, Polygonal | None],
    *,
    exclusions: Polygonal | None = None,
    marker_groups: Mapping[str, tuple[str, ...]] = DEFAULT_MARKER_GROUPS,
    provenance: Provenance | None = None,
    classes: Sequence[str] = CLASS_NAMES,
) -> DensityTable:
    """Counts and densities per marker group in each named region.

    cells: cell table with x_um, y_um (slide µm) and class_name (or class_id).
    regions: label (e.g. "CT", "IM") -> geometry in slide µm; None or no area -> listed as missing.
    exclusions: removed from every region first. marker_groups: group -> class names it counts.
    classes: the model's class table, for a cell table with class_id but no class_name.
    """
    x, y = _coordinates(cells)
    names = _class_names(cells, classes)
    categories = sorted(set(classes) | set(names.unique()))
    codes = pd.Categorical(names, categories=categories).codes
    # member[g, c] = 1 when class c counts for marker group g
    member = np.array([[c in cls for c in categories] for cls in marker_groups.values()], dtype=np.int64)
    rows: list[RegionDensity] = []
    missing: list[str] = []
    for label, geometry in regions.items():
        if geometry is not None and exclusions is not None and not exclusions.is_empty:
            geometry = geometry.difference(exclusions)
        if geometry is None or geometry.is_empty or geometry.area <= 0:
            missing.append(label)
            continue
        per_class = np.bincount(codes[inside(geometry, x, y)], minlength=len(categories))
        counts = dict(zip(marker_groups, (int(v) for v in member @ per_class), strict=True))
        area_mm2 = geometry.area / UM2_PER_MM2
        rows.append(RegionDensity(label, area_mm2, counts, {g: n / area_mm2 for g, n in counts.items()}))
    groups = {k: tuple(v) for k, v in marker_groups.items()}
    return DensityTable(tuple(rows), groups, tuple(missing), provenance or Provenance())
