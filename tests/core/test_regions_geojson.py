"""QuPath GeoJSON: regions (annotations) and cells (detections), in level-0 pixels <-> slide µm."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from core.errors import RegionError
from core.regions import (
    Region,
    RegionKind,
    cells_from_geojson,
    cells_to_geojson,
    kind_for_class,
    read_cells_geojson,
    read_regions_geojson,
    regions_from_geojson,
    regions_to_geojson,
    write_cells_geojson,
    write_regions_geojson,
)
from core.regions.kinds import REGION_KINDS

MPP = (0.5, 0.25)  # anisotropic on purpose: x and y must not be swapped


def _square(x0: float, y0: float, size: float) -> dict:
    ring = [[x0, y0], [x0 + size, y0], [x0 + size, y0 + size], [x0, y0 + size], [x0, y0]]
    return {"type": "Polygon", "coordinates": [ring]}


def _qupath_feature(cls: str | None, geometry: dict, **props: object) -> dict:
    """A feature as QuPath 0.4/0.5 writes it (File > Export objects as GeoJSON)."""
    p: dict = {"objectType": "annotation", **props}
    if cls is not None:
        p["classification"] = {"name": cls, "color": [200, 0, 0]}
    return {"type": "Feature", "id": str(uuid.uuid4()), "geometry": geometry, "properties": p}


@pytest.fixture
def collection() -> dict:
    return {
        "type": "FeatureCollection",
        "features": [
            _qupath_feature("Tumor", _square(1000, 2000, 400), name="Main tumour", isLocked=True,
                            measurements={"Area µm^2": 40000.0}),
            _qupath_feature("Necrosis", _square(1100, 2100, 40)),
            _qupath_feature("Stroma", _square(0, 0, 100)),
            _qupath_feature(None, _square(3000, 3000, 100)),
        ],
    }


def test_class_map() -> None:
    assert kind_for_class("Tumor") is kind_for_class(" tumour ") is RegionKind.TUMOUR
    assert kind_for_class("Ignore*") is kind_for_class("necrosis") is RegionKind.EXCLUSION
    assert kind_for_class("Center") is kind_for_class("CT") is RegionKind.TUMOUR_CENTRE
    assert kind_for_class("Invasive margin") is kind_for_class("IM") is RegionKind.INVASIVE_MARGIN
    assert kind_for_class("Tissue") is RegionKind.TISSUE
    assert kind_for_class("Stroma") is kind_for_class(None) is RegionKind.OTHER
    assert kind_for_class("Carcinoma", {"carcinoma": "tumour"}) is RegionKind.TUMOUR


def test_import_converts_pixels_to_um(collection: dict) -> None:
    imported = regions_from_geojson(collection, MPP)
    tumour, necrosis, stroma, plain = imported.regions
    assert tumour.kind is RegionKind.TUMOUR and tumour.name == "Main tumour"
    assert tumour.geometry.bounds == (500.0, 500.0, 700.0, 600.0)  # x * 0.5, y * 0.25
    assert tumour.area_mm2 == pytest.approx(200 * 100 / 1e6)
    assert tumour.id == collection["features"][0]["id"]
    assert necrosis.kind is RegionKind.EXCLUSION
    assert stroma.kind is plain.kind is RegionKind.OTHER
    assert imported.warnings == []


def test_round_trip_keeps_qupath_fields(collection: dict, tmp_path: Path) -> None:
    original = copy.deepcopy(collection)
    regions = read_regions_geojson(write_json(tmp_path / "in.geojson", collection), MPP).regions
    out = json.loads(write_regions_geojson(regions, tmp_path / "out.geojson", MPP).read_text())
    assert collection == original  # input not mutated
    for before, after in zip(original["features"], out["features"], strict=True):
        assert after["id"] == before["id"] and after["type"] == "Feature"
        locked = before["properties"].get("isLocked", False)  # export states it explicitly
        assert after["properties"] == before["properties"] | {"isLocked": locked}
        ring_in = before["geometry"]["coordinates"][0]
        ring_out = [list(c) for c in after["geometry"]["coordinates"][0]]
        assert sorted(map(tuple, ring_out)) == sorted(map(tuple, ring_in))


def test_export_of_new_and_reclassified_regions() -> None:
    r = Region(kind="invasive_margin", geometry=box(0, 0, 50, 25), name="IM", author="dr x")
    (f,) = regions_to_geojson([r], MPP)["features"]
    assert f["id"] == r.id
    assert f["properties"]["objectType"] == "annotation"
    im = REGION_KINDS[RegionKind.INVASIVE_MARGIN]  # the colour the app and the report draw the IM in
    assert f["properties"]["classification"] == {"name": "Invasive margin", "color": list(im.rgb)}
    assert f["properties"]["metadata"] == {"author": "dr x"}
    assert f["geometry"]["type"] == "Polygon" and max(c[0] for c in f["geometry"]["coordinates"][0]) == 100
    (imported,) = regions_from_geojson(f, MPP).regions
    assert imported.author == "dr x" and imported.kind is RegionKind.INVASIVE_MARGIN
    # A "Stroma" annotation the user turns into tissue is exported with the tissue class.
    stroma = regions_from_geojson(_qupath_feature("Stroma", _square(0, 0, 10)), MPP).regions[0]
    as_tissue = Region(kind="tissue", geometry=stroma.geometry, id=stroma.id, extra=stroma.extra)
    assert region_class(as_tissue) == "Tissue"
    assert region_class(stroma) == "Stroma"


def test_accepts_bare_feature_list_and_old_qupath() -> None:
    old = [  # QuPath 0.2: a bare list, the Java type in "id", packed colour
        {"type": "Feature", "id": "PathAnnotationObject", "geometry": _square(0, 0, 100),
         "properties": {"classification": {"name": "Tumor", "colorRGB": -3670016}, "isLocked": False}},
        {"type": "Feature", "id": "PathDetectionObject", "geometry": {"type": "Point", "coordinates": [1, 2]},
         "properties": {"classification": {"name": "CD3"}}},
    ]
    (r,) = regions_from_geojson(old, MPP).regions
    assert r.kind is RegionKind.TUMOUR and r.id != "PathAnnotationObject"
    (g,) = regions_from_geojson(_square(0, 0, 10), MPP).regions  # a bare geometry
    assert g.kind is RegionKind.OTHER


def test_skips_points_lines_and_invalid_with_warnings() -> None:
    data = [
        _qupath_feature("Tumor", {"type": "LineString", "coordinates": [[0, 0], [10, 10]]}),
        _qupath_feature("Tumor", {"type": "Polygon",
                                  "coordinates": [[[0, 0], [100, 100], [100, 0], [0, 100], [0, 0]]]}),
        _qupath_feature("Tumor", {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}),
    ]
    imported = regions_from_geojson(data, MPP, source="x.geojson")
    assert len(imported.regions) == 1 and imported.regions[0].geometry.is_valid
    text = " ".join(imported.warnings)
    assert "LineString" in text and "repaired" in text and "no usable area" in text


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "bad.geojson: not valid JSON"),
        ('{"type": "Topology"}', "expected a GeoJSON FeatureCollection"),
        ('{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": null}]}', "no region"),
        ("[1, 2]", "feature 1 is not a GeoJSON Feature"),
    ],
)
def test_bad_files_raise_region_error(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "bad.geojson"
    path.write_text(content)
    with pytest.raises(RegionError, match=match):
        read_regions_geojson(path, MPP)


def test_missing_file_and_bad_mpp(tmp_path: Path) -> None:
    with pytest.raises(RegionError, match="Cannot read nothere.geojson"):
        read_regions_geojson(tmp_path / "nothere.geojson", MPP)
    with pytest.raises(RegionError, match="positive"):
        regions_from_geojson(_square(0, 0, 10), (0.0, 0.25))


def test_cells_round_trip_as_qupath_detections() -> None:
    cells = pd.DataFrame({
        "x_um": [10.0, 20.0, 30.0], "y_um": [5.0, 5.0, 7.5],
        "class_name": ["CD3", "CD20", "CD8_CD3HI"], "probability": [0.9, 0.8, 0.7],
        "area_um2": [28.3, 30.0, 25.0],
    })
    fc = cells_to_geojson(cells, MPP)
    f0 = fc["features"][0]
    assert f0["geometry"] == {"type": "Point", "coordinates": [20.0, 20.0]}  # px = µm / mpp
    assert f0["properties"]["objectType"] == "detection"
    assert f0["properties"]["classification"] == {"name": "CD3", "color": [44, 160, 44]}
    assert f0["properties"]["measurements"] == {"probability": 0.9, "area_um2": 28.3}
    back = cells_from_geojson(json.loads(json.dumps(fc)), MPP)
    assert back["x_um"].tolist() == [10.0, 20.0, 30.0] and back["y_um"].tolist() == [5.0, 5.0, 7.5]
    assert back["class_name"].tolist() == ["CD3", "CD20", "CD8_CD3HI"]
    assert back["class_id"].tolist() == [2, 3, 4]
    circles = cells_to_geojson(cells, MPP, shape="circle")
    ring = circles["features"][1]["geometry"]["coordinates"][0]
    assert len(ring) == 13 and ring[0] == ring[-1]
    centre = cells_from_geojson(circles, MPP)
    assert centre["x_um"].tolist() == pytest.approx([10.0, 20.0, 30.0], abs=0.01)


def test_cells_file_is_streamed_in_chunks(tmp_path: Path) -> None:
    cells = pd.DataFrame({"id": [7, 8, 9], "x_px": [1.0, 2.0, 3.0], "y_px": [4.0, 5.0, 6.0],
                          "class_name": ["CD20", "other", "Mystery"],
                          "probability": [0.5, float("nan"), 1.0]})
    path = write_cells_geojson(cells, tmp_path / "cells.geojson", MPP, chunk=2)
    data = json.loads(path.read_text())
    assert [f["id"] for f in data["features"]] == ["7", "8", "9"]
    assert data["features"][1]["properties"]["measurements"] == {}  # NaN dropped
    unknown = data["features"][2]["properties"]["classification"]
    assert unknown == {"name": "Mystery", "color": [128, 128, 128]}
    back = read_cells_geojson(path, MPP)
    assert back["x_px"].tolist() == [1.0, 2.0, 3.0] and back["class_id"].tolist() == [3, 0, -1]
    assert back["probability"].iloc[0] == 0.5 and np.isnan(back["probability"].iloc[1])


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def region_class(region: Region) -> str:
    return regions_to_geojson([region], MPP)["features"][0]["properties"]["classification"]["name"]
