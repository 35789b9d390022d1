"""One region: a polygon on a slide in µm, with a kind that says what it is for scoring.

Coordinates are slide µm: origin at the top-left corner of level 0, x to the right, y down
(level-0 pixel coordinates times the slide's mpp).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TypeAlias

from shapely.geometry import MultiPolygon, Polygon

from core.errors import RegionError
from core.jsontypes import JSONMapping

#: A region's geometry: always polygonal, in slide µm.
Polygonal: TypeAlias = Polygon | MultiPolygon

UM2_PER_MM2 = 1e6


class RegionKind(StrEnum):
    """What a region is used for. ``OTHER`` regions are kept (e.g. QuPath "Stroma") but never scored."""

    TUMOUR = "tumour"
    TUMOUR_CENTRE = "tumour_centre"
    INVASIVE_MARGIN = "invasive_margin"
    EXCLUSION = "exclusion"
    TISSUE = "tissue"
    OTHER = "other"

    @classmethod
    def parse(cls, value: RegionKind | str) -> RegionKind:
        """The kind named ``value``; RegionError listing the valid kinds otherwise."""
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(k.value for k in cls)
            raise RegionError(f"Unknown region kind {value!r}; valid kinds: {valid}.") from None

    @property
    def label(self) -> str:
        """Display name, the same in the app, the report and the CLI (:mod:`core.regions.kinds`)."""
        from core.regions.kinds import REGION_KINDS  # the table imports this module

        return REGION_KINDS[self].label


def _new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, kw_only=True)
class Region:
    """A polygon on a slide.

    geometry: Polygon or MultiPolygon in slide µm (see module docstring); holes allowed.
    extra: fields of the QuPath feature HoechstScore does not use (``isLocked``, measurements,
    the exact classification name and colour, ...), kept verbatim so that export gives them back.
    """

    kind: RegionKind
    geometry: Polygonal
    name: str = ""
    author: str = ""
    id: str = field(default_factory=_new_id)
    extra: JSONMapping = field(default_factory=dict, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", RegionKind.parse(self.kind))
        if not isinstance(self.geometry, Polygon | MultiPolygon):
            kind = getattr(self.geometry, "geom_type", type(self.geometry).__name__)
            raise TypeError(f"Region geometry must be a Polygon or MultiPolygon, not {kind}")
        object.__setattr__(self, "extra", dict(self.extra))  # a private copy; treat as read-only

    @property
    def area_um2(self) -> float:
        """Area in µm² (holes excluded)."""
        return float(self.geometry.area)

    @property
    def area_mm2(self) -> float:
        """Area in mm² (µm² / 1e6)."""
        return self.area_um2 / UM2_PER_MM2

    @property
    def display_name(self) -> str:
        """The user's name, or the kind's label when the region has none."""
        return self.name or self.kind.label

    def with_geometry(self, geometry: Polygonal) -> Region:
        """The same region (same id) with another geometry."""
        return replace(self, geometry=geometry)
