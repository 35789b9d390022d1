"""Damaged QuPath GeoJSON and pathological outlines (issue 14 rows 4 and 5).

Each row-4 case is a one-line edit of a valid QuPath annotation file: it is either read (the bad
part ignored) or refused with a RegionError that names the feature, never another exception.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shapely.geometry import Polygon

from core.cli import score
from core.errors import RegionError
from core.regions import RegionKind, RegionSet, derive_ct_im, read_regions_geojson, write_regions_geojson
from core.regions.validate import MAX_CROSSINGS, self_crossings

MPP = (0.5, 0.5)
VALID = (
    '{"type": "FeatureCollection", "features": [{"type": "Feature", "id": "a1",'
    ' "geometry": {"type": "Polygon", "coordinates": [[[100, 100], [3000, 100], [3000, 2500], [100, 2500], [100, 100]]]},'
    ' "properties": {"objectType": "annotation", "name": "Tumour 1",'
    ' "classification": {"name": "Tumor", "color": [200, 0, 0]}}}]}'
)


def _edited(tmp_path: Path, old: str, new: str) -> Path:
    assert old in VALID
    path = tmp_path / "edited.geojson"
    path.write_text(VALID.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('"properties": {"objectType": "annotation", "name": "Tumour 1",', '"properties": 5, "x": {', "feature 1: 'properties' must be an object"),
        ('"type": "FeatureCollection"', '"type": ["FeatureCollection"]', "'type' must be a text"),
        ('"type": "Polygon"', '"type": {"a": 1}', r"feature 1.*geometry's 'type' must be a text"),
        ("[3000, 100]", "[1e400, 100]", r"feature 1 \(Tumour 1\).*not finite"),
        ("[3000, 100]", '[NaN, 100]', r"feature 1 \(Tumour 1\).*not finite"),
        ("[3000, 100]", "[-Infinity, 100]", r"feature 1 \(Tumour 1\).*not finite"),
        ("[3000, 100]", "[1e300, 100]", r"feature 1 \(Tumour 1\).*beyond ±1e\+09 pixels"),
        ("[3000, 100]", "[" + "9" * 5000 + ", 100]", "edited.geojson: it holds a value no GeoJSON file has"),
        ('"id": "a1"', '"id": ' + "[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('"geometry": {', '"geometry": [{', r"feature 1: 'geometry' must be an object"),
    ],
    ids=["properties-number", "type-list", "geometry-type-object", "infinite", "nan", "minus-infinity", "1e300",
         "5000-digit-number", "deep-nesting", "geometry-list"],
)
def test_broken_structure_is_a_region_error_naming_the_feature(tmp_path: Path, old: str, new: str, message: str) -> None:
    if old == '"geometry": {':
        new_text = VALID.replace(']]]}, "properties"', ']]]}], "properties"')
        path = tmp_path / "edited.geojson"
        path.write_text(new_text.replace(old, new, 1), encoding="utf-8")
    else:
        path = _edited(tmp_path, old, new)
    with pytest.raises(RegionError, match=message):
        read_regions_geojson(path, MPP)


@pytest.mark.parametrize(
    "colour", ['"red"', "null", '["red", "green", "blue"]', "[1e400, 0, 0]", "[300, -5, 0]", "1e300", "[null, 1]", "true"],
)
def test_odd_colours_are_ignored_and_export_still_works(tmp_path: Path, colour: str) -> None:
    imported = read_regions_geojson(_edited(tmp_path, "[200, 0, 0]", colour), MPP)
    (region,) = imported.regions
    assert region.kind is RegionKind.TUMOUR and region.name == "Tumour 1"
    out = write_regions_geojson(imported.regions, tmp_path / "out.geojson", MPP)
    assert read_regions_geojson(out, MPP).regions[0].kind is RegionKind.TUMOUR


@pytest.mark.parametrize(
    ("classification", "kind"),
    [('"Tumor"', RegionKind.TUMOUR), ("5", RegionKind.OTHER), ('{"name": 7}', RegionKind.OTHER),
     ('{"name": ["Tumor"]}', RegionKind.OTHER)],
    ids=["bare-name", "bare-number", "numeric-name", "list-name"],
)
def test_unusual_classifications_import_and_export(tmp_path: Path, classification: str, kind: RegionKind) -> None:
    path = _edited(tmp_path, '{"name": "Tumor", "color": [200, 0, 0]}', classification)
    (region,) = read_regions_geojson(path, MPP).regions
    assert region.kind is kind
    back = json.loads(write_regions_geojson([region], tmp_path / "out.geojson", MPP).read_text())
    assert back["features"][0]["geometry"]["type"] == "Polygon"


def test_score_cli_reads_a_bare_class_name_and_explains_a_missing_tumour(tmp_path: Path) -> None:
    """``"classification": "Tumor"`` used to end in an AttributeError in cli/score.py."""
    rng = np.random.default_rng(0)
    cells = tmp_path / "cells.csv"
    pd.DataFrame({"x_px": rng.uniform(0, 3000, 500), "y_px": rng.uniform(0, 3000, 500),
                  "class_name": rng.choice(["CD3", "CD20", "other"], 500)}).to_csv(cells, index=False)
    parser = argparse.ArgumentParser()
    score.register(parser.add_subparsers(dest="command", required=True))

    def run(regions: Path) -> int:
        args = parser.parse_args(["score", "--cells", str(cells), "--regions", str(regions), "--mpp", "0.5",
                                  "--im-width", "100", "--reference", "demo", "--out", str(tmp_path / "scores.json")])
        return args.func(args)

    with pytest.raises(RegionError, match=r"classes found: Stroma"):
        run(_edited(tmp_path, '{"name": "Tumor", "color": [200, 0, 0]}', '"Stroma"'))
    assert run(_edited(tmp_path, '{"name": "Tumor", "color": [200, 0, 0]}', '"Tumor"')) == 0
    assert json.loads((tmp_path / "scores.json").read_text())


def _random_outline(tmp_path: Path, n: int, seed: int = 0) -> Path:
    pts = np.random.default_rng(seed).uniform(0, 4000, (n, 2)).round(1).tolist()
    feature = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [pts + pts[:1]]},
               "properties": {"objectType": "annotation", "name": f"scribble {n}", "classification": {"name": "Tumor"}}}
    path = tmp_path / f"random{n}.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}), encoding="utf-8")
    return path


@pytest.mark.timeout(60)  # a hang guard, not a speed target: before the fix this never returned
def test_random_1000_point_outline_is_refused_not_a_hang(tmp_path: Path) -> None:
    with pytest.raises(RegionError, match=r"scribble 1000.*crosses its own outline [\d,]+ times"):
        read_regions_geojson(_random_outline(tmp_path, 1000), MPP)


@pytest.mark.timeout(60)
def test_a_moderately_self_crossing_outline_is_repaired_and_ct_im_derived(tmp_path: Path) -> None:
    path = _random_outline(tmp_path, 40, seed=3)
    crossings = self_crossings(Polygon(json.loads(path.read_text())["features"][0]["geometry"]["coordinates"][0]))
    assert 20 < crossings <= MAX_CROSSINGS
    imported = read_regions_geojson(path, MPP)
    assert any("repaired" in w for w in imported.warnings)
    (tumour,) = imported.regions
    ct, im, _ = derive_ct_im(RegionSet([tumour]), im_half_width_um=150.0)
    assert im.area > 0 and abs(ct.area + im.intersection(tumour.geometry).area - tumour.geometry.area) < 1e-3 * tumour.geometry.area


def test_self_crossings_counts_a_bow_tie_once_and_a_square_none() -> None:
    assert self_crossings(Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])) == 1
    assert self_crossings(Polygon([(0, 0), (10, 0), (10, 10), (0, 10)])) == 0
    square_with_hole = Polygon([(0, 0), (10, 0), (10, 10), (0, 10)], [[(2, 2), (4, 2), (4, 4), (2, 4)]])
    assert self_crossings(square_with_hole) == 0


def test_too_many_vertices_are_simplified_with_a_warning(tmp_path: Path) -> None:
    t = np.linspace(0, 2 * np.pi, 120_000, endpoint=False)
    ring = np.c_[2000 + 1500 * np.cos(t), 2000 + 1500 * np.sin(t)].round(3).tolist()
    feature = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring + ring[:1]]},
               "properties": {"objectType": "annotation", "classification": {"name": "Tumor"}}}
    path = tmp_path / "dense.geojson"
    path.write_text(json.dumps(feature), encoding="utf-8")
    imported = read_regions_geojson(path, MPP)
    assert any("120,001 vertices and was simplified" in w for w in imported.warnings)
    assert abs(imported.regions[0].geometry.area - np.pi * 750**2) < 1e-3 * np.pi * 750**2
