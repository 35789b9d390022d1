"""Colours of the report: markers take their class colour, so the app, overlays and PDF agree.

A marker group is drawn in the colour of the class that defines it (CD3+ in the CD3 colour, CD8+
in the CD8_CD3HI colour, CD20+ in the CD20 colour, from :mod:`core.classes`). Region outlines
and labels come from :mod:`core.regions.kinds`, the table the app and GeoJSON export use too.
"""

from __future__ import annotations

from core.classes import CLASS_COLOURS, class_index
from core.regions.kinds import REGION_KINDS

#: Marker group -> hex colour (from the class colours).
MARKER_COLOURS: dict[str, str] = {
    "CD3+": CLASS_COLOURS[class_index("CD3")],
    "CD8+": CLASS_COLOURS[class_index("CD8_CD3HI")],
    "CD20+": CLASS_COLOURS[class_index("CD20")],
}

#: Region kind -> hex colour of its outline, and -> legend label: core's one table of kinds.
REGION_COLOURS: dict[str, str] = {kind.value: info.colour for kind, info in REGION_KINDS.items()}
REGION_LABELS: dict[str, str] = {kind.value: info.label for kind, info in REGION_KINDS.items()}

#: Ink of headings, rules and table headers.
BRAND = "#1f3a5f"
#: Light tint behind table headers and boxes.
TINT = "#eef2f7"
#: Lines of tables.
RULE = "#b8c2cf"
#: The synthetic-data banner.
WARNING = "#b3261e"
#: Text of secondary information.
MUTED = "#5f6b7a"


def marker_colour(marker: str) -> str:
    """The colour of a marker group; unknown groups are drawn dark grey."""
    return MARKER_COLOURS.get(marker, "#404040")


def hex_to_rgb(colour: str) -> tuple[int, int, int]:
    """``"#rrggbb"`` -> (r, g, b) in 0-255."""
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)
