"""AnalysisSummary: the engine's summary as a typed record that writes the JSON the dict had and
reads what earlier versions stored (a real engine run, a real SQLite case store)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from core.classes import CLASS_COLOURS, CLASS_NAMES
from core.engine import AnalysisParams, analyse_slide
from core.engine.summary import AnalysisSummary, MppOverride
from core.progress import run_to_completion
from core.slides import open_slide
from core.store import CaseStore
from tests.core._engine_support import intensity_model, paint_blobs, seam_centres, write_slide

#: The keys of the engine's summary dict before it became a dataclass, in its order.
ENGINE_KEYS = [
    "slide", "slide_mpp", "channel", "model", "model_sha256", "model_mpp", "model_synthetic", "device",
    "precision", "precision_reason", "runtime", "counts", "total_cells", "tissue_area_mm2",
    "nucleus_stain_min", "analysed_area_mm2", "region_area_mm2", "tiles_in_grid", "tiles_analysed",
    "tiles_skipped_background", "tiles_computed", "blocks_resumed", "batch_size", "tile_px", "context_px",
    "seconds", "seconds_model", "seconds_waiting_for_tiles", "stage_ms_per_tile", "stage_cpu_ms_per_tile",
    "checkpoint_key",
]

#: A finished analysis's summary as an earlier release stored it (no class table, no runtime or
#: precision reason yet, a key this release does not know).
OLD_STORED = {
    "slide": "/data/s1.ome.tif", "slide_mpp": [0.227, 0.227], "channel": "Hoechst", "model": "demo",
    "model_sha256": "ab" * 32, "model_mpp": 0.227, "model_synthetic": True, "device": "cpu", "precision": "fp32",
    "counts": {"other": 0, "CD8_CD3LO": 3, "CD3": 5, "CD20": 1, "CD8_CD3HI": 2}, "total_cells": 11,
    "tissue_area_mm2": 1.5, "analysed_area_mm2": 1.5, "region_area_mm2": None, "tiles_in_grid": 40,
    "tiles_analysed": 30, "tiles_skipped_background": 10, "tiles_computed": 30, "blocks_resumed": 0,
    "batch_size": 8, "tile_px": 256, "context_px": 32, "seconds": 12.5, "seconds_model": 9.0,
    "seconds_waiting_for_tiles": 0.5, "stage_ms_per_tile": {"model": 300.0}, "checkpoint_key": None,
    "tissue_mask": {"shape": [2, 2], "downsample": 16.0, "packbits_b64": "gA=="},
    "model_card": {"name": "demo", "synthetic": True}, "warnings": ["slide is dim"], "future_key": {"a": 1},
}


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    shape = (192, 144)
    img, _ = paint_blobs(shape, seam_centres(shape, 48, seed=3))
    path = write_slide(tmp_path_factory.mktemp("s") / "s.ome.tif", img, names=("Hoechst",))
    with open_slide(path) as slide:
        return run_to_completion(analyse_slide(slide, intensity_model(), AnalysisParams(
            context_px=8, batch_size=4, tissue_min_area_um2=500.0, min_cell_area_um2=3.0)))


def test_engine_summary_writes_the_keys_the_dict_had_plus_the_class_table(result) -> None:  # noqa: ANN001
    s = result.summary
    assert isinstance(s, AnalysisSummary)
    d = s.to_dict()
    assert list(d) == [*ENGINE_KEYS, "classes", "class_colours"]
    assert d["classes"] == list(CLASS_NAMES) and d["class_colours"] == list(CLASS_COLOURS)
    assert d["total_cells"] == len(result.cells) > 0 and sum(s.counts.values()) == s.total_cells
    assert json.loads(json.dumps(d)) == d  # plain JSON: lists, not tuples or numpy scalars
    assert AnalysisSummary.from_dict(json.loads(json.dumps(d))) == s
    assert s["tiles_analysed"] == s.tiles_analysed  # the dict's readers still read by key


def test_a_summary_stored_by_an_older_version_reads_with_defaults_and_keeps_unknown_keys() -> None:
    s = AnalysisSummary.from_dict(OLD_STORED)
    assert s.runtime == "torch" and s.precision_reason == "" and s.nucleus_stain_min == 0.0
    assert s.classes == CLASS_NAMES and s.class_table.colour("CD20") == CLASS_COLOURS[3]
    assert s.counts["CD3"] == 5 and s.slide_mpp == (0.227, 0.227) and s.warnings == ("slide is dim",)
    assert s.stage_cpu_ms_per_tile == {} and s.tissue_mask is not None and s.model_card == {"name": "demo", "synthetic": True}
    assert s.extra == {"future_key": {"a": 1}}
    again = s.to_dict()
    assert {k: v for k, v in OLD_STORED.items()} == {k: again[k] for k in OLD_STORED}  # nothing lost
    assert AnalysisSummary.from_dict({}) == AnalysisSummary()  # a failed run's summary: all defaults


def test_mpp_override_and_warnings_round_trip() -> None:
    s = replace(AnalysisSummary(), warnings=("a",), mpp_override=MppOverride(None, (0.25, 0.25), False),
                raster_mpp=4.0, raster_downsample=16.0)
    d = s.to_dict()
    assert d["mpp_override"] == {"recorded": None, "used": [0.25, 0.25], "forced": False}
    assert d["warnings"] == ["a"] and d["raster_mpp"] == 4.0
    assert AnalysisSummary.from_dict(json.loads(json.dumps(d))) == s
    assert "warnings" not in AnalysisSummary().to_dict() and "error" not in AnalysisSummary().to_dict()


def test_stored_in_the_case_store_and_read_back(result, tmp_path: Path) -> None:  # noqa: ANN001
    slide_file = tmp_path / "slide.ome.tif"
    slide_file.write_bytes(b"II*\x00" + bytes(range(256)) * 100)
    with CaseStore.open(f"sqlite:///{tmp_path / 'cases.db'}", user="tester") as store:
        case = store.create_case("S1")
        slide = store.add_slide(case.id, slide_file, mpp=(0.5, 0.5), channels=["Hoechst"], is_synthetic=True)
        run = store.start_analysis(case.id, slide.id, model_name="intensity-test", model_sha256="0" * 64,
                                   parameters={}, device="cpu", precision="fp32")
        store.finish_analysis(run.id, summary=result.summary.to_dict())
        stored = store.get_analysis(run.id).summary
    assert AnalysisSummary.from_dict(stored) == result.summary
