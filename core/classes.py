"""The model's cell classes, the words users read for them, the marker groups scores are computed
from (SPEC "The science") and their colours: one table each, for app, report and CLI."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

#: Class index -> name, in the order the model outputs them.
CLASS_NAMES: tuple[str, ...] = ("other", "CD8_CD3LO", "CD3", "CD20", "CD8_CD3HI")
#: Display colours (hex RGB), one per class; "other" is not drawn.
CLASS_COLOURS: tuple[str, ...] = ("#808080", "#ff7f0e", "#2ca02c", "#1f77b4", "#d62728")
#: Class name -> the words users read (app layers, report legends); the names stay the model's.
CLASS_LABELS: Mapping[str, str] = MappingProxyType({
    "other": "Other cells",
    "CD8_CD3LO": "CD8+ CD3 low",
    "CD3": "CD3+ (CD8−)",
    "CD20": "CD20+",
    "CD8_CD3HI": "CD8+ CD3 high",
})
#: Classes that count as lymphocytes (everything but background/other).
POSITIVE_CLASSES: tuple[int, ...] = (1, 2, 3, 4)

#: Marker group -> class names it counts. Configurable by passing another mapping to scores.
DEFAULT_MARKER_GROUPS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "CD3+": ("CD3", "CD8_CD3LO", "CD8_CD3HI"),
        "CD8+": ("CD8_CD3LO", "CD8_CD3HI"),
        "CD20+": ("CD20",),
    }
)


def class_index(name: str) -> int:
    """Index of a class name; raises ValueError listing the valid names."""
    try:
        return CLASS_NAMES.index(name)
    except ValueError:
        raise ValueError(f"Unknown class {name!r}; valid classes: {', '.join(CLASS_NAMES)}") from None


def class_label(name: str) -> str:
    """The words users read for class ``name`` (e.g. "CD8_CD3LO" -> "CD8+ CD3 low"); unknown: as is."""
    return CLASS_LABELS.get(name, name)


#: Marker group -> hex colour: the colour of the class that defines it (CD8+ in the CD8_CD3HI colour).
MARKER_COLOURS: Mapping[str, str] = MappingProxyType({
    "CD3+": CLASS_COLOURS[class_index("CD3")],
    "CD8+": CLASS_COLOURS[class_index("CD8_CD3HI")],
    "CD20+": CLASS_COLOURS[class_index("CD20")],
})


def marker_colour(marker: str) -> str:
    """The colour of a marker group (app, report, density maps); unknown groups are dark grey."""
    return MARKER_COLOURS.get(marker, "#404040")


def hex_to_rgb(colour: str) -> tuple[int, int, int]:
    """``"#rrggbb"`` -> (r, g, b) in 0-255."""
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)
