"""The model's cell classes, the words users read for them, the marker groups scores are computed
from (SPEC "The science") and their colours: one table each, for app, report and CLI.

Which class index means which class is the model's business: its card lists them
(``ModelCard.classes``), and the analysis carries that list on (:class:`ClassTable`, kept in the
analysis summary) to the cell codec, the GeoJSON export, the scores and the viewer. The global
:data:`CLASS_NAMES` is the table of the paper's model only: the default for a card that lists no
classes, and for cells and analyses stored before the table travelled with them. Marker groups
name classes, never indices, so they hold for any order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


#: Colours for class names the paper's table does not know (cycled), so any card can be drawn.
_SPARE_COLOURS: tuple[str, ...] = ("#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#7f7f7f")


@dataclass(frozen=True)
class ClassTable:
    """One model's classes: index -> name (the order its output channels have) and colours.

    Index 0 is the background class ("other" in the paper's model): the engine finds cells only of
    the classes after it. Built from a model card (:meth:`from_card`), carried by the analysis
    summary, read by the codec, the GeoJSON export, the scores and the viewer.
    """

    names: tuple[str, ...] = CLASS_NAMES
    colours: tuple[str, ...] = CLASS_COLOURS

    def __post_init__(self) -> None:
        if not self.names:
            raise ValueError("A class table needs at least one class (the background).")
        if len(self.colours) != len(self.names):
            raise ValueError(f"{len(self.names)} classes ({', '.join(self.names)}) but {len(self.colours)} colours.")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"Class names must differ: {', '.join(self.names)}.")

    @classmethod
    def from_names(cls, names: Sequence[str], colours: Sequence[str] | None = None) -> ClassTable:
        """A table of ``names``; colours: given, else each known name's own (others from a spare set)."""
        names = tuple(str(n) for n in names)
        given = tuple(str(c) for c in colours) if colours is not None else ()
        return cls(names, given if len(given) == len(names) else cls.default_colours(names))

    @staticmethod
    def default_colours(names: Sequence[str]) -> tuple[str, ...]:
        """The paper's colour for each of its class names, a spare colour for any other."""
        known = dict(zip(CLASS_NAMES, CLASS_COLOURS, strict=True))
        spare = iter(_SPARE_COLOURS * (1 + len(names) // len(_SPARE_COLOURS)))
        return tuple(known[n] if n in known else next(spare) for n in names)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def positive(self) -> tuple[int, ...]:
        """Indices of the classes cells are found for (all but the background, index 0)."""
        return tuple(range(1, len(self.names)))

    def index(self, name: str) -> int:
        """Index of class ``name``; raises ValueError listing this table's names."""
        try:
            return self.names.index(name)
        except ValueError:
            raise ValueError(f"Unknown class {name!r}; valid classes: {', '.join(self.names)}") from None

    def colour(self, name: str) -> str:
        """Display colour of class ``name`` (dark grey for a name not in the table)."""
        return self.colours[self.names.index(name)] if name in self.names else "#404040"

    def to_global(self) -> tuple[int, ...]:
        """For each index of this table, the index of the same name in :data:`CLASS_NAMES` (-1: none)."""
        return tuple(CLASS_NAMES.index(n) if n in CLASS_NAMES else -1 for n in self.names)


#: The paper's model's table: the default where no card says otherwise.
DEFAULT_CLASS_TABLE = ClassTable(CLASS_NAMES, CLASS_COLOURS)


def class_table_of(summary: Mapping[str, object] | None) -> ClassTable:
    """The class table an analysis summary (stored, or a ``summary.json``) records: its
    ``classes`` and ``class_colours``; the paper's table for summaries written before it was kept."""
    names = (summary or {}).get("classes")
    if not isinstance(names, (list, tuple)) or not names:
        return DEFAULT_CLASS_TABLE
    colours = (summary or {}).get("class_colours")
    return ClassTable.from_names([str(n) for n in names],
                                 [str(c) for c in colours] if isinstance(colours, (list, tuple)) else None)
