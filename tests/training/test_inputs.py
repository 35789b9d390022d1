"""Tile folders (QuPath TileExporter) and every bad input, each with a clear message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from core.errors import ChannelNotFoundError, UncalibratedError
from core.progress import run_to_completion
from core.slides import open_slide
from training.config import LabelConfig
from training.errors import LabelError
from training.labeller import label_slide
from training.patches import PatchParams, tile_patches
from training.retrain import main as retrain_main

CHANNELS = ["Hoechst", "FITC", "Cy3", "AF750"]


def _write_tile(folder: Path, stem: str, stack: np.ndarray, label: np.ndarray, mpp: float | None = 0.227) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    kw = {"resolution": (1 / mpp, 1 / mpp)} if mpp else {}
    meta = {"axes": "CYX", "Labels": CHANNELS, **({"unit": "micron"} if mpp else {})}
    tifffile.imwrite(folder / f"{stem}.tif", stack, imagej=True, metadata=meta, **kw)
    Image.fromarray(label.astype(np.uint8)).save(folder / f"{stem}-labelled.png")


@pytest.fixture(scope="module")
def phantom_tiles(train_phantom: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 320² tiles cut from the phantom, labelled with TileExporter values (incl. 5-7)."""
    folder = tmp_path_factory.mktemp("tiles") / "export"
    with open_slide(train_phantom) as slide:
        result = run_to_completion(label_slide(slide, LabelConfig()))
        for x, y in [(100, 200), (500, 450)]:
            stack = slide.read_region((x, y), 0, (320, 320))
            label = np.asarray(result.mask[y : y + 320, x : x + 320]).copy()
            label[:4, :4] = 6  # a CD20 double positive -> background
            _write_tile(folder, f"Lung 1 [x={x},y={y},w=320,h=320]", stack, label)
    return folder


def test_tile_folder_gives_patches(phantom_tiles: Path, tmp_path: Path) -> None:
    entry = run_to_completion(tile_patches(phantom_tiles, LabelConfig(), PatchParams(size=128, overlap=0.5), tmp_path))
    assert entry.slides == ("Lung 1",)
    assert entry.n == 2 * 16  # 320 px: starts 0, 64, 128, 192 in each axis
    labels = np.load(entry.path / "labels.npy")
    assert labels.max() <= 4 and labels[0, :4, :4].max() == 0
    assert entry.meta["cells"]["CD3"] > 0


def test_uncalibrated_tile_needs_mpp(phantom_tiles: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "nompp"
    stack = tifffile.imread(next(phantom_tiles.glob("*.tif")))
    _write_tile(folder, "t", stack, np.zeros((320, 320)), mpp=None)
    with pytest.raises(UncalibratedError, match="pixel size"):
        run_to_completion(tile_patches(folder, LabelConfig(), PatchParams(size=64), tmp_path / "c"))
    entry = run_to_completion(tile_patches(folder, LabelConfig(), PatchParams(size=64), tmp_path / "c", mpp=0.227))
    assert entry.n > 0
    assert retrain_main(["--tiles", str(folder), "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c2")]) == 2
    assert "--mpp MICRONS" in capsys.readouterr().err


def test_bad_label_images(phantom_tiles: Path, tmp_path: Path) -> None:
    stack = tifffile.imread(next(phantom_tiles.glob("*.tif")))
    bad = tmp_path / "range"
    _write_tile(bad, "t", stack, np.full((320, 320), 9))
    with pytest.raises(LabelError, match=r"value\(s\) 9 outside the label mapping \(known values: 0, 1, 2"):
        run_to_completion(tile_patches(bad, LabelConfig(), PatchParams(size=64), tmp_path / "c"))
    broken = tmp_path / "broken"
    _write_tile(broken, "t", stack, np.zeros((320, 320)))
    (broken / "t-labelled.png").write_bytes(b"not a png at all")
    with pytest.raises(LabelError, match="Cannot read label image"):
        run_to_completion(tile_patches(broken, LabelConfig(), PatchParams(size=64), tmp_path / "c"))
    rgb = tmp_path / "rgb"
    _write_tile(rgb, "t", stack, np.zeros((320, 320)))
    Image.fromarray(np.zeros((320, 320, 3), np.uint8)).save(rgb / "t-labelled.png")
    with pytest.raises(LabelError, match="mode RGB"):
        run_to_completion(tile_patches(rgb, LabelConfig(), PatchParams(size=64), tmp_path / "c"))


def test_missing_channel_names_the_channels(train_phantom: Path) -> None:
    with open_slide(train_phantom.parent / "hoechst.ome.tif") as slide, pytest.raises(ChannelNotFoundError) as err:
        run_to_completion(label_slide(slide, LabelConfig()))
    assert "'Hoechst'" in str(err.value) and "cd20" in str(err.value)


def test_slide_without_cells(tmp_path: Path) -> None:
    path = tmp_path / "empty.ome.tif"
    data = np.random.default_rng(0).integers(90, 110, size=(4, 512, 512), dtype=np.uint16)
    tifffile.imwrite(path, data, ome=True, resolution=(1 / 0.227, 1 / 0.227), resolutionunit="MICROMETER",
                     metadata={"axes": "CYX", "Channel": {"Name": CHANNELS}, "PhysicalSizeX": 0.227, "PhysicalSizeY": 0.227})
    with open_slide(path) as slide:  # labelling warns (issue #11: never a refusal) and writes no mask
        result = run_to_completion(label_slide(slide, LabelConfig(), mask_path=tmp_path / "m.npy"))
    assert result.cells.empty and result.mask_path is None and not (tmp_path / "m.npy").exists()
    assert "empty.ome.tif: no nuclei found" in result.warnings[0]


def test_cli_errors_are_one_line(train_phantom: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hoechst_only = str(train_phantom.parent / "hoechst.ome.tif")
    assert retrain_main(["--slides", hoechst_only, "--out", str(tmp_path / "o")]) == 2
    assert "no channel matches 'cd20'" in capsys.readouterr().err
    cfg = tmp_path / "labels.toml"
    cfg.write_text("[thresholds]\ncd8_hi = 1\n")
    assert retrain_main(["--slides", hoechst_only, "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "Valid keys: cd20, cd8, cd3, cd3_hi" in capsys.readouterr().err
    assert retrain_main(["--out", str(tmp_path / "o")]) == 2
    assert "No inputs" in capsys.readouterr().err
