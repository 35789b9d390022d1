"""Colours of the report: markers take their class colour, so the app, overlays and PDF agree.

A marker group is drawn in the colour of the class that defines it (CD3+ in the CD3 colour, CD8+
in the CD8_CD3HI colour, CD20+ in the CD20 colour, from :mod:`core.classes`). Region outlines
and labels come from :mod:`core.regions.kinds`, the table the app and GeoJSON export use too.
"""

from __future__ import annotations

from core.classes import MARKER_COLOURS, hex_to_rgb, marker_colour
from core.regions.kinds import REGION_KINDS

__all__ = ["BRAND", "MARKER_COLOURS", "MUTED", "REGION_COLOURS", "REGION_LABELS", "RULE", "TINT", "WARNING",
           "hex_to_rgb", "marker_colour"]

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
