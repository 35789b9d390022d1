"""Benchmark: the numbers it reports are consistent, and the CLI ends with one JSON line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from core.cli import main as cli_main
from core.engine import AnalysisParams
from core.engine.bench import benchmark, peak_rss_mb, reset_peak_rss
from core.models import ModelCard, build_model, save_model
from core.slides import open_slide
from tests.core._engine_support import intensity_model, paint_blobs, seam_centres, write_slide


@pytest.fixture(scope="module")
def slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 3 µm-radius discs (28 µm²): lymphocyte-sized, so the default cell size bounds keep them all
    img, _ = paint_blobs((192, 192), seam_centres((192, 192), 48, radius=6.0), radius=6.0)
    return write_slide(tmp_path_factory.mktemp("bench") / "bench.ome.tif", img)


def test_benchmark_reports_consistent_numbers(slide: Path) -> None:
    with open_slide(slide) as s:
        res = benchmark(s, intensity_model(), AnalysisParams(batch_size=4, context_px=8), model_tiles=8)
    assert res.model_tiles_per_s > 0 and res.pipeline_tiles_per_s > 0
    assert res.efficiency == pytest.approx(res.pipeline_tiles_per_s / res.model_tiles_per_s)
    assert res.tiles_analysed == 16 and res.tiles_skipped_background == 0 and res.cells > 20
    assert res.s_per_mm2 == pytest.approx(res.seconds / res.tissue_area_mm2)
    assert "efficiency" in res.line() and res.peak_rss_mb > 0


def test_peak_rss_can_be_reset() -> None:
    big = bytearray(200 * 2**20)
    big[:: 4096] = b"x" * len(big[:: 4096])  # touch every page
    high = peak_rss_mb()
    del big
    if reset_peak_rss():
        assert peak_rss_mb() < high - 100


@pytest.fixture
def restore_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_cli_bench_ends_with_one_json_line(slide: Path, tmp_path: Path, capsys, restore_torch_threads) -> None:
    torch.manual_seed(1)
    card = ModelCard(name="tiny-unet", encoder="resnet18", mpp=0.5, patch_size=64, synthetic=True)
    save_model(build_model(card).eval(), card, tmp_path / "m")
    argv = ["bench", "--slide", str(slide), "--model", str(tmp_path / "m"), "--device", "cpu", "--precision", "fp32", "--model-tiles", "4", "--threads", "1"]
    assert cli_main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert any(line.startswith("cpu fp32 (torch): model") for line in lines)
    result = json.loads(lines[-1])
    keys = {"model_tiles_per_s", "pipeline_tiles_per_s", "efficiency", "peak_rss_mb", "device", "precision", "s_per_mm2"}
    assert keys <= set(result) and result["device"] == "cpu" and result["precision"] == "fp32"


def test_cli_bench_stand_in_reports_the_pipeline_stages(slide: Path, tmp_path: Path, capsys, restore_torch_threads) -> None:
    card = ModelCard(name="tiny-unet", encoder="resnet18", mpp=0.5, patch_size=64, synthetic=True)
    save_model(build_model(card).eval(), card, tmp_path / "m")
    argv = ["bench", "--slide", str(slide), "--model", str(tmp_path / "m"), "--device", "cpu", "--model-tiles", "4",
            "--threads", "1", "--stand-in", "instant"]
    assert cli_main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "stand-in model (instant)" in lines[0] and "load average" in lines[0]
    result = json.loads(lines[-1])
    stages = result["stage_ms_per_tile"]
    assert {"decode", "normalise", "model", "post-processing", "extraction", "writing"} <= set(stages)
    assert result["tiles_analysed"] == 16 and result["cells"] > 20 and len(result["load_average"]) == 3
