"""Engine runs: the real U-Net path, cancel, resume after a crash, bad inputs, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from shapely.geometry import box

from core.cli import main as cli_main
from core.engine import AnalysisParams, BlockDone, analyse_slide
from core.errors import Cancelled, ChannelNotFoundError, CoreError, RegionError, UncalibratedError
from core.models import ModelCard, build_model, save_model
from core.models.runtime import load_model
from core.progress import CancelToken, run_to_completion
from core.regions import RegionKind, read_regions_geojson
from core.slides import open_slide
from tests.core._engine_support import intensity_model, paint_blobs, seam_centres, write_slide

PARAMS = AnalysisParams(context_px=8, batch_size=4, tissue_min_area_um2=500.0)  # the slides are 0.01 mm²


@pytest.fixture(scope="module")
def unet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight smp U-Net (resnet18, 64 px patches at 0.5 µm). With seed 1 and the
    background's bias raised by 0.5 its random calls form ~36 nucleus-sized cells on the test slide
    (cells are class-blind nuclei: a model that lights up whole tiles finds none)."""
    torch.manual_seed(1)
    card = ModelCard(name="tiny-unet", encoder="resnet18", mpp=0.5, patch_size=64, synthetic=True)
    out = tmp_path_factory.mktemp("unet")
    module = build_model(card).eval()
    with torch.no_grad():
        module.segmentation_head[0].bias[0] += 0.5
    save_model(module, card, out)
    return out


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def small_slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    shape = (192, 144)  # 4 rows x 3 columns of 48 px tiles, 72 x 96 µm
    img, _ = paint_blobs(shape, seam_centres(shape, 48, seed=3))
    return write_slide(tmp_path_factory.mktemp("small") / "small.ome.tif", img, names=("DAPI", "FITC"))


def test_unet_path_and_resume_after_a_crash(unet_dir: Path, small_slide: Path, tmp_path: Path) -> None:
    model = load_model(unet_dir, device="cpu", precision="fp32")
    with open_slide(small_slide) as slide:
        reference = run_to_completion(analyse_slide(slide, model, PARAMS))
        assert len(reference.cells) > 5
        assert reference.summary["precision"] == model.precision and reference.summary["model"] == "tiny-unet"
        assert reference.summary["precision_reason"] == "fp32 requested"  # recorded with every run

        job = analyse_slide(slide, model, PARAMS, checkpoint_dir=tmp_path)
        blocks = 0
        for p in job:  # the process "dies" after two finished blocks
            blocks += isinstance(p, BlockDone)
            if blocks == 2:
                break
        job.close()
        job = analyse_slide(slide, model, PARAMS, checkpoint_dir=tmp_path)
        reported = []
        while True:
            try:
                p = next(job)
            except StopIteration as stop:
                resumed = stop.value
                break
            if isinstance(p, BlockDone):
                reported.append(p.cells)
    pd.testing.assert_frame_equal(pd.concat(reported, ignore_index=True), resumed.cells)
    assert resumed.summary["blocks_resumed"] == 2
    assert resumed.summary["tiles_computed"] < reference.summary["tiles_computed"]
    pd.testing.assert_frame_equal(resumed.cells, reference.cells, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(resumed.class_map, reference.class_map)


def test_unet_batch_size_does_not_change_cells(unet_dir: Path, small_slide: Path) -> None:
    """Tolerance: identical cells; probabilities within 1e-5 (float summation order)."""
    model = load_model(unet_dir, device="cpu", precision="fp32")
    with open_slide(small_slide) as slide:
        a = run_to_completion(analyse_slide(slide, model, AnalysisParams(context_px=8, batch_size=1, tissue_detection=False)))
        b = run_to_completion(analyse_slide(slide, model, AnalysisParams(context_px=8, batch_size=7, tissue_detection=False)))
    pd.testing.assert_frame_equal(a.cells, b.cells, rtol=0, atol=1e-5)


def test_cancel_stops_within_one_batch(small_slide: Path) -> None:
    model = intensity_model()
    token = CancelToken()
    with open_slide(small_slide) as slide:
        job = analyse_slide(slide, model, PARAMS, cancel=token)
        while next(job).done == 0:
            pass
        calls = model.module.calls
        token.cancel()
        with pytest.raises(Cancelled):
            next(job)
    # The model may be one batch ahead of the reported progress (post-processing runs beside it),
    # never more; after cancel it is not called again.
    assert 1 <= calls <= 2 and model.module.calls == calls


def test_channel_by_role_and_override(small_slide: Path, tmp_path: Path) -> None:
    with open_slide(small_slide) as slide:  # channels DAPI, FITC: the Hoechst role finds DAPI
        assert run_to_completion(analyse_slide(slide, intensity_model(), PARAMS)).summary["channel"] == "DAPI"
    img, _ = paint_blobs((100, 100), [])
    path = write_slide(tmp_path / "nohoechst.ome.tif", img, names=("FITC", "Cy3"))
    with open_slide(path) as slide:
        with pytest.raises(ChannelNotFoundError, match="'FITC', 'Cy3'.*--channel"):
            next(analyse_slide(slide, intensity_model(), PARAMS))
        result = run_to_completion(analyse_slide(slide, intensity_model(), AnalysisParams(context_px=8, channel="Cy3", tissue_detection=False)))
        assert result.summary["channel"] == "Cy3"


def test_uncalibrated_slide_is_refused_until_given_a_pixel_size(tmp_path: Path) -> None:
    img, _ = paint_blobs((100, 100), [(50.0, 50.0, 1)])
    path = write_slide(tmp_path / "nompp.ome.tif", img, mpp=None)
    with open_slide(path) as slide, pytest.raises(UncalibratedError, match="no pixel size"):
        next(analyse_slide(slide, intensity_model(), PARAMS))
    with open_slide(path, mpp=(0.5, 0.5)) as slide:
        params = AnalysisParams(context_px=8, tissue_detection=False)
        assert len(run_to_completion(analyse_slide(slide, intensity_model(), params)).cells) == 1


def test_bad_regions_and_too_coarse_slides(small_slide: Path, tmp_path: Path) -> None:
    with open_slide(small_slide) as slide:  # 72 x 96 µm
        with pytest.raises(RegionError, match="outside the slide"):
            next(analyse_slide(slide, intensity_model(), PARAMS, regions_um=box(500, 500, 900, 900)))
        with pytest.raises(RegionError, match="empty"):
            next(analyse_slide(slide, intensity_model(), PARAMS, regions_um=box(10, 10, 10, 10)))
    img, _ = paint_blobs((100, 100), [])
    coarse = write_slide(tmp_path / "coarse.ome.tif", img, mpp=2.0)
    with open_slide(coarse) as slide, pytest.raises(CoreError, match="coarser than the model"):
        next(analyse_slide(slide, intensity_model(), PARAMS))


def test_cli_analyse_writes_its_files(unet_dir: Path, small_slide: Path, tmp_path: Path, capsys) -> None:
    regions = tmp_path / "r.geojson"
    feature = {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [100, 0], [100, 100], [0, 100], [0, 0]]]},
        "properties": {"objectType": "annotation", "classification": {"name": "Tumor"}},
    }
    regions.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    out = tmp_path / "out"
    argv = ["analyse", str(small_slide), "--model", str(unet_dir), "--device", "cpu", "--tissue-min-area", "500", "--out", str(out)]
    assert cli_main([*argv, "--regions", str(regions), "--batch-size", "3"]) == 0
    cells = pd.read_csv(out / "cells.csv")
    assert list(cells.columns) == ["x_px", "y_px", "x_um", "y_um", "class_name", "probability", "area_um2", "confidence"]
    assert cells["confidence"].between(0, 1).all()
    assert len(cells) and (cells[["x_px", "y_px"]] < 100).all().all()
    detections = json.loads((out / "cells.geojson").read_text())["features"]
    assert len(detections) == len(cells) and detections[0]["properties"]["objectType"] == "detection"
    assert "color" in detections[0]["properties"]["classification"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["total_cells"] == len(cells) and summary["device"] == "cpu" and summary["model"] == "tiny-unet"
    assert {"counts", "tissue_area_mm2", "seconds", "precision", "model_sha256"} <= set(summary)
    assert (out / "class_map.png").stat().st_size > 0 and not (out / ".checkpoint").exists()
    tissue = read_regions_geojson(out / "tissue.geojson", (0.5, 0.5)).regions
    assert [r.kind for r in tissue] == [RegionKind.TISSUE]
    assert tissue[0].area_mm2 == pytest.approx(summary["tissue_area_mm2"], rel=0.1)
    assert "cells" in capsys.readouterr().out
    nompp = write_slide(tmp_path / "nompp.ome.tif", paint_blobs((100, 100), [])[0], mpp=None)
    assert cli_main(["analyse", str(nompp), "--model", str(unet_dir), "--device", "cpu", "--out", str(out)]) == 2
    assert "no pixel size" in capsys.readouterr().err
    assert cli_main([*argv[:-2], "--mpp", "0.5", "0.5", "--out", str(out), "--channel", "1"]) == 0
    assert json.loads((out / "summary.json").read_text())["nucleus_stain_min"] > 0  # calls need stain by default
    assert cli_main([*argv[:-2], "--mpp", "0.5", "0.5", "--out", str(out), "--nucleus-stain-ratio", "0"]) == 0
    assert json.loads((out / "summary.json").read_text())["nucleus_stain_min"] == 0  # the check is off


def test_torch_threads_apply_during_the_run_only(small_slide: Path) -> None:
    before = torch.get_num_threads()
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(torch.get_num_threads())
            return torch.zeros(x.shape[0], 5, *x.shape[2:])

    model = intensity_model()
    model.module = Probe()
    want = 2 if before == 1 else 1
    with open_slide(small_slide) as slide:
        run_to_completion(analyse_slide(slide, model, AnalysisParams(context_px=8, torch_threads=want, tissue_detection=False)))
    assert set(seen) == {want} and torch.get_num_threads() == before
