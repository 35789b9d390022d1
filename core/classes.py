"""The model's cell classes and the marker groups scores are computed from (SPEC "The science")."""

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
