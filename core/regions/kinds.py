"""The one table of region kinds: each kind's label, short name, QuPath class and colour.

The app (outlines, region list), the PDF report (overview legend, density table) and the GeoJSON
export all read this table, so a region has one name and one colour wherever it is shown. Before,
four label tables and three colour sets disagreed (the tumour was "Tumour", "Tumour border" and
"Tumor"; the IM yellow, gold and blue).

Colours avoid the cell-class colours of :mod:`core.classes` (orange, green, blue, red), so a region
outline is never mistaken for a class of cells, and read on both the dark slide view and white paper.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from core.regions.region import RegionKind


@dataclass(frozen=True)
class KindInfo:
    """How one region kind is named and drawn.

    label: display name ("Invasive margin (IM)"); short: the name in score parameters and density
    rows ("IM"; None for kinds never scored); qupath_class: the classification written on export
    (None: "other" regions keep the class they came with, or have none); colour: "#rrggbb" of its
    outline in the app, the report and QuPath.
    """

    kind: RegionKind
    label: str
    short: str | None
    qupath_class: str | None
    colour: str

    @property
    def rgb(self) -> tuple[int, int, int]:
        """The colour as (r, g, b) 0-255 (QuPath's ``classification.color``)."""
        c = self.colour.lstrip("#")
        return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)

    @property
    def in_sentence(self) -> str:
        """The label inside a sentence: "No invasive margin (IM) ..." (first letter lower-cased)."""
        return self.label[:1].lower() + self.label[1:]


REGION_KINDS: Mapping[RegionKind, KindInfo] = MappingProxyType({
    k.kind: k for k in (
        KindInfo(RegionKind.TUMOUR, "Tumour", "Tumour", "Tumor", "#e040fb"),
        KindInfo(RegionKind.TUMOUR_CENTRE, "Tumour centre (CT)", "CT", "Center", "#9575cd"),
        KindInfo(RegionKind.INVASIVE_MARGIN, "Invasive margin (IM)", "IM", "Invasive margin", "#e6b800"),
        KindInfo(RegionKind.EXCLUSION, "Exclusion", None, "Ignore*", "#9a9a9a"),
        KindInfo(RegionKind.TISSUE, "Tissue", None, "Tissue", "#4db6ac"),
        KindInfo(RegionKind.OTHER, "Other (not scored)", None, None, "#a1887f"),
    )
})

#: Short name of a scored region (density rows, parameters such as CD3_CT) -> its kind's entry.
BY_SHORT: Mapping[str, KindInfo] = MappingProxyType({k.short: k for k in REGION_KINDS.values() if k.short})


def kind_info(kind: RegionKind | str) -> KindInfo:
    """The entry of ``kind`` (a RegionKind or its value); RegionError listing the kinds otherwise."""
    return REGION_KINDS[RegionKind.parse(kind)]


def region_title(short: str) -> str:
    """Display name of a density row by its short name ("CT" -> "Tumour centre (CT)"); unknown: as is."""
    info = BY_SHORT.get(short)
    return info.label if info else short
