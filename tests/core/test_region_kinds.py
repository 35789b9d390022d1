"""One table of region kinds: the report, the GeoJSON export, the scores' words and the app agree."""

from __future__ import annotations

import pytest
from shapely.geometry import box

from core.classes import CLASS_COLOURS
from core.regions import Region, RegionKind, regions_to_geojson
from core.regions.kinds import BY_SHORT, REGION_KINDS, kind_info, region_title
from core.report.colours import REGION_COLOURS, REGION_LABELS
from core.scores import REGION_LABELS as SCORE_REGION_LABELS


def test_every_kind_has_one_distinct_entry() -> None:
    assert set(REGION_KINDS) == set(RegionKind)
    colours = [k.colour.lower() for k in REGION_KINDS.values()]
    assert len(set(colours)) == len(colours)
    assert not set(colours) & {c.lower() for c in CLASS_COLOURS}  # never mistaken for a cell class
    assert kind_info("tumour_centre").short == "CT" and region_title("IM") == "Invasive margin (IM)"
    assert set(BY_SHORT) == {"CT", "IM", "Tumour"}


@pytest.mark.parametrize("kind", list(RegionKind))
def test_report_export_and_labels_use_the_table(kind: RegionKind) -> None:
    info = REGION_KINDS[kind]
    assert kind.label == info.label == REGION_LABELS[kind.value]
    assert REGION_COLOURS[kind.value] == info.colour
    (feature,) = regions_to_geojson([Region(kind=kind, geometry=box(0, 0, 10, 10))], (0.5, 0.5))["features"]
    if info.qupath_class is None:
        assert "classification" not in feature["properties"]
    else:
        assert feature["properties"]["classification"] == {"name": info.qupath_class, "color": list(info.rgb)}
    if info.short:
        assert SCORE_REGION_LABELS[info.short] == info.label


def test_the_app_draws_regions_in_the_table_colours() -> None:
    pytest.importorskip("PySide6")
    from app.viewer.regions_layer import KIND_COLOURS

    assert KIND_COLOURS == {k: v.colour for k, v in REGION_KINDS.items()}
