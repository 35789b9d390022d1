"""One table of user-facing words and colours for the model's classes and marker groups."""

from __future__ import annotations

from core.classes import (
    CLASS_COLOURS,
    CLASS_LABELS,
    CLASS_NAMES,
    DEFAULT_MARKER_GROUPS,
    class_label,
    marker_colour,
)


def test_every_class_has_distinct_words_and_the_names_stay() -> None:
    assert set(CLASS_LABELS) == set(CLASS_NAMES)
    assert len(set(CLASS_LABELS.values())) == len(CLASS_NAMES)
    assert class_label("CD8_CD3LO") == "CD8+ CD3 low" and class_label("CD8_CD3HI") == "CD8+ CD3 high"
    assert class_label("unknown") == "unknown"


def test_marker_groups_take_their_defining_class_colour() -> None:
    assert marker_colour("CD8+") == CLASS_COLOURS[CLASS_NAMES.index("CD8_CD3HI")]
    assert {marker_colour(g) for g in DEFAULT_MARKER_GROUPS} <= set(CLASS_COLOURS)
    assert marker_colour("CD99+") == "#404040"
