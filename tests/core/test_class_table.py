"""The class table travels with the analysis: a model whose card lists the classes in another order
is analysed, stored in a real SQLite case store, loaded, exported as QuPath GeoJSON, read back and
scored, and every step names each cell by its card, not by the paper's global table.

The model is the deterministic intensity model of the engine tests (class c wins where the
normalised intensity is nearest ``LEVELS[c]``), so which output index each painted cell gets is
known; the card says what that index is called.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from shapely.geometry import box

from core.classes import CLASS_NAMES, DEFAULT_CLASS_TABLE, ClassTable, class_table_of
from core.engine import AnalysisParams, analyse_slide
from core.engine.summary import AnalysisSummary
from core.errors import StoreError
from core.progress import run_to_completion
from core.regions import Region, RegionSet, read_cells_geojson, write_cells_geojson
from core.scores import score_case
from core.slides import open_slide
from core.store import CaseStore
from tests.core._engine_support import SIZE_BOUNDS, intensity_model, paint_blobs, write_slide

#: The paper's classes with the positive ones in another order (index 0 stays the background),
#: and a colour of the card's own for CD20.
PERMUTED = ("other", "CD20", "CD8_CD3HI", "CD3", "CD8_CD3LO")
COLOURS = ("#808080", "#00ffff", "#d62728", "#2ca02c", "#ff7f0e")
#: Painted cells per output index (1..4): distinct counts, so a name swap changes every count.
PER_INDEX = {1: 1, 2: 2, 3: 3, 4: 4}
PARAMS = AnalysisParams(context_px=8, batch_size=4, tissue_min_area_um2=500.0, **SIZE_BOUNDS)


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    centres = []  # clear of the hot lattice (24 + 48k): every patch keeps its maximum, see paint_blobs
    at = (48.0, 96.0, 144.0, 180.0)
    for cls, n in PER_INDEX.items():
        centres += [(at[i], at[cls - 1], cls) for i in range(n)]
    img, _ = paint_blobs((192, 192), centres)
    return write_slide(tmp_path_factory.mktemp("perm") / "perm.ome.tif", img)


def _analyse(slide_path: Path, classes: tuple[str, ...], colours: tuple[str, ...]):  # noqa: ANN202
    model = intensity_model()
    model = replace(model, card=replace(model.card, classes=classes, class_colours=colours))
    with open_slide(slide_path) as slide:
        return run_to_completion(analyse_slide(slide, model, PARAMS))


def test_a_card_with_another_class_order_names_cells_right_from_engine_to_scores(slide_path: Path,
                                                                                   tmp_path: Path) -> None:
    result = _analyse(slide_path, PERMUTED, COLOURS)
    expected = Counter({PERMUTED[i]: n for i, n in PER_INDEX.items()})  # CD20 1, CD8_CD3HI 2, CD3 3, CD8_CD3LO 4
    assert Counter(result.cells["class_name"]) == expected
    assert result.summary.classes == PERMUTED and result.summary.class_table.colour("CD20") == "#00ffff"

    # Stored and loaded: the codec keeps class ids, the summary the table that names them.
    with CaseStore.open(f"sqlite:///{tmp_path / 'cases.db'}", user="tester") as store:
        case = store.create_case("P1")
        slide = store.add_slide(case.id, slide_path, mpp=(0.5, 0.5), channels=["Hoechst"], is_synthetic=True)
        run = store.start_analysis(case.id, slide.id, model_name="intensity-test", model_sha256="0" * 64,
                                   parameters={}, device="cpu", precision="fp32")
        store.save_cells(run.id, result.cells, result.summary.classes)
        store.finish_analysis(run.id, summary=json.loads(json.dumps(result.summary.to_dict())))
        stored = store.get_analysis(run.id).summary
        loaded = store.load_cells(run.id)
    assert Counter(loaded["class_name"]) == expected
    assert (loaded["class_id"].map(dict(enumerate(PERMUTED))) == loaded["class_name"]).all()
    table = class_table_of(stored)
    assert table == ClassTable(PERMUTED, COLOURS) and AnalysisSummary.from_dict(stored).class_table == table

    # QuPath GeoJSON: names and the card's colours out, the card's indices back in.
    path = write_cells_geojson(loaded, tmp_path / "cells.geojson", (0.5, 0.5), classes=table)
    features = json.loads(path.read_text(encoding="utf-8"))["features"]
    colour = {f["properties"]["classification"]["name"]: f["properties"]["classification"]["color"] for f in features}
    assert colour["CD20"] == [0, 255, 255] and colour["CD8_CD3LO"] == [255, 127, 14]
    back = read_cells_geojson(path, (0.5, 0.5), classes=table)
    assert Counter(back["class_name"]) == expected
    assert (back["class_id"].map(dict(enumerate(PERMUTED))) == back["class_name"]).all()

    # Scores count marker groups by name: CD8+ = CD8_CD3LO + CD8_CD3HI, CD20+ = CD20.
    regions = RegionSet([Region(kind="tumour", geometry=box(0, 0, 96, 96))], bounds_um=(96, 96))
    scores = score_case(back, regions, None)
    (tumour,) = [r for r in scores.densities.regions if r.region == "Tumour"]
    assert tumour.counts["CD8+"] == 6 and tumour.counts["CD20+"] == 1 and tumour.counts["CD3+"] == 9


def test_cells_of_another_order_are_refused_under_the_paper_table(slide_path: Path, tmp_path: Path) -> None:
    """Saving without the model's table must not store cells that would load under wrong names."""
    result = _analyse(slide_path, PERMUTED, COLOURS)
    with CaseStore.open(f"sqlite:///{tmp_path / 'cases.db'}", user="tester") as store:
        case = store.create_case("P2")
        slide = store.add_slide(case.id, slide_path, mpp=(0.5, 0.5), channels=["Hoechst"], is_synthetic=True)
        run = store.start_analysis(case.id, slide.id, model_name="m", model_sha256="0" * 64, parameters={},
                                   device="cpu", precision="fp32")
        with pytest.raises(StoreError, match="class table"):
            store.save_cells(run.id, result.cells)  # the paper's table by default


def test_older_analyses_and_the_paper_model_keep_the_global_table(slide_path: Path) -> None:
    result = _analyse(slide_path, CLASS_NAMES, DEFAULT_CLASS_TABLE.colours)
    assert Counter(result.cells["class_name"]) == Counter({CLASS_NAMES[i]: n for i, n in PER_INDEX.items()})
    assert class_table_of({"total_cells": 3}) == DEFAULT_CLASS_TABLE  # stored before the table travelled
    assert class_table_of(result.summary.to_dict()) == DEFAULT_CLASS_TABLE
    assert ClassTable.from_names(["other", "X"]).colours == ("#808080", "#9467bd")  # unknown names still drawn
    with pytest.raises(ValueError, match="differ"):
        ClassTable(("other", "CD3", "CD3"), ("#000000",) * 3)
