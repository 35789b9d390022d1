"""Engine correctness: every cell once across seams, tiling/batching invariance, regions, frames.

Uses the deterministic intensity model (see ``_engine_support``) so results can be compared
exactly; the real U-Net path is covered in ``test_engine_run.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage
from shapely.geometry import Polygon

from core.cells import CELL_COLUMNS
from core.engine import AnalysisParams, BlockDone, analyse_slide
from core.normalise import normalise_patch
from core.progress import run_to_completion
from core.slides import open_slide
from tests.core._engine_support import (
    SIZE_BOUNDS,
    intensity_model,
    match,
    paint_blobs,
    seam_centres,
    write_slide,
)

SHAPE = (300, 400)  # slide px (h, w) at 0.5 µm
KEEP = 48  # default test tiles: patch 64, context 8


@pytest.fixture(scope="module")
def blob_slide(tmp_path_factory: pytest.TempPathFactory):
    img, blobs = paint_blobs(SHAPE, seam_centres(SHAPE, KEEP))
    path = write_slide(tmp_path_factory.mktemp("blobs") / "blobs.ome.tif", img)
    return path, img, blobs


def run(path: Path, model=None, **kwargs) -> object:
    regions = kwargs.pop("regions_um", None)
    with open_slide(path) as slide:
        params = AnalysisParams(**{"context_px": 8, "batch_size": 4, **SIZE_BOUNDS, **kwargs})
        return run_to_completion(analyse_slide(slide, model or intensity_model(), params, regions_um=regions))


def _sorted(cells: pd.DataFrame) -> pd.DataFrame:
    return cells.sort_values(["y_px", "x_px", "class_id"]).reset_index(drop=True)


def test_cells_across_tile_borders_and_corners_are_found_exactly_once(blob_slide) -> None:
    path, _, blobs = blob_slide
    result = run(path)
    cells = result.cells
    assert list(cells.columns) == list(CELL_COLUMNS)
    on_seams = sum(1 for b in blobs if b.cx % KEEP == 0 or b.cy % KEEP == 0)
    assert on_seams > 50
    idx = match(cells["x_px"].to_numpy(), cells["y_px"].to_numpy(), blobs)
    assert (idx >= 0).all(), "a blob was missed"
    assert len(set(idx)) == len(blobs) == len(cells), "a blob was counted twice or a phantom cell appeared"
    found = cells.iloc[idx]
    np.testing.assert_allclose(found["x_px"], [b.cx for b in blobs], atol=1e-9)
    np.testing.assert_allclose(found["y_px"], [b.cy for b in blobs], atol=1e-9)
    np.testing.assert_array_equal(found["class_id"], [b.cls for b in blobs])
    np.testing.assert_allclose(found["area_um2"], [b.n_px * 0.25 for b in blobs])
    np.testing.assert_allclose(found["x_um"], found["x_px"] * 0.5)
    assert found["probability"].between(0.9, 1.0).all()
    assert (cells["class_name"] == cells["class_id"].map(dict(enumerate(intensity_model().card.classes)))).all()


def test_tiled_equals_whole_image(blob_slide) -> None:
    """The image is small enough to run whole: one normalisation, one model call, no seams."""
    path, img, _ = blob_slide
    tiled = _sorted(run(path).cells)
    model = intensity_model()
    x = normalise_patch(img)[None, None]
    cls, prob = model.predict_classes(x)
    rows = []
    for c in range(1, 5):
        lab, n = ndimage.label(cls[0] == c)
        for i in range(1, n + 1):
            ys, xs = np.nonzero(lab == i)
            if len(ys) * 0.25 >= 3.0:
                rows.append((xs.mean() + 0.5, ys.mean() + 0.5, c, prob[0][ys, xs].mean(), len(ys) * 0.25))
    whole = pd.DataFrame(rows, columns=["x_px", "y_px", "class_id", "probability", "area_um2"])
    whole = whole.sort_values(["y_px", "x_px", "class_id"]).reset_index(drop=True)
    assert len(whole) == len(tiled)
    for col in ("x_px", "y_px", "class_id", "area_um2"):
        np.testing.assert_allclose(tiled[col], whole[col], atol=1e-9, err_msg=col)
    np.testing.assert_allclose(tiled["probability"], whole["probability"], atol=1e-6)


@pytest.mark.parametrize(
    ("patch", "context", "batch"), [(64, 0, 1), (96, 16, 3), (128, 8, 16)], ids=["p64c0b1", "p96c16b3", "p128c8b16"]
)
def test_tile_size_context_and_batch_do_not_change_cells(blob_slide, patch: int, context: int, batch: int) -> None:
    """Tolerance: none for a model that looks at single pixels (a U-Net differs only within its
    receptive field of a tile edge, which the context is there to cover)."""
    path, _, _ = blob_slide
    ref = _sorted(run(path).cells)
    other = _sorted(run(path, intensity_model(patch=patch), context_px=context, batch_size=batch).cells)
    pd.testing.assert_frame_equal(ref, other, rtol=0, atol=1e-6)


def test_block_reports_add_up_to_the_result(blob_slide) -> None:
    path, _, _ = blob_slide
    with open_slide(path) as slide:
        job = analyse_slide(slide, intensity_model(), AnalysisParams(context_px=8, batch_size=5))
        blocks: list[BlockDone] = []
        messages = []
        while True:
            try:
                p = next(job)
            except StopIteration as stop:
                result = stop.value
                break
            messages.append(p.message)
            if isinstance(p, BlockDone):
                blocks.append(p)
    assert [b.block for b in blocks] == sorted(b.block for b in blocks)
    assert "Tile 5 of 63" in messages and messages[-1] == "Tile 63 of 63"
    together = pd.concat([b.cells for b in blocks], ignore_index=True)
    pd.testing.assert_frame_equal(together, result.cells)


def test_region_run_is_the_full_run_inside_the_region(blob_slide) -> None:
    path, _, _ = blob_slide
    full = run(path)
    region = Polygon([(30, 20), (120, 35), (140, 110), (60, 130), (25, 80)])  # µm
    part = run(path, regions_um=region)
    inside = full.cells[[region.contains(p) for p in map(_point, full.cells["x_um"], full.cells["y_um"])]]
    assert 0 < len(part.cells) < len(full.cells)
    pd.testing.assert_frame_equal(_sorted(part.cells), _sorted(inside), atol=1e-9)
    assert part.summary["tiles_analysed"] < full.summary["tiles_analysed"]
    assert part.summary["region_area_mm2"] == pytest.approx(region.area / 1e6)


def _point(x: float, y: float):
    from shapely.geometry import Point

    return Point(x, y)


def test_tissue_detection_skips_empty_glass(tmp_path: Path) -> None:
    h, w = 300, 600
    img, blobs = paint_blobs((h, w), [c for c in seam_centres((h, w), KEEP) if c[0] < 250])
    stroma = np.random.default_rng(1).integers(200, 600, size=(h, 300)).astype(np.uint16)
    img[:, :300] = np.maximum(img[:, :300], stroma)  # left half: tissue with faint autofluorescence
    img[:, 300:] = 0  # right half: glass
    path = write_slide(tmp_path / "half.ome.tif", img)
    result = run(path, tissue_min_area_um2=500.0)
    assert result.summary["tiles_skipped_background"] >= 0.4 * result.summary["tiles_in_grid"]
    assert result.summary["tiles_analysed"] + result.summary["tiles_skipped_background"] == result.summary["tiles_in_grid"]
    assert (match(result.cells["x_px"].to_numpy(), result.cells["y_px"].to_numpy(), blobs) >= 0).all()
    assert (result.cells["x_px"] < 300).all()  # (the intensity model also finds specks at the glass edge)
    mask = result.tissue_mask
    assert mask[:, : mask.shape[1] // 3].all() and not mask[:, 2 * mask.shape[1] // 3 :].any()
    assert result.tissue_area_mm2 == pytest.approx(0.5 * h * w * 0.25 / 1e6, rel=0.05)


def test_resampled_slide_gives_level0_coordinates(tmp_path: Path) -> None:
    """A slide at 0.25 µm read by a 0.5 µm model: centroids come back in the slide's own pixels."""
    img, blobs = paint_blobs((400, 400), [(100.0, 100.0, 1), (200.0, 96.0, 2), (96.0, 288.0, 3)], radius=10, hot=2)
    path = write_slide(tmp_path / "fine.ome.tif", img, mpp=0.25)
    result = run(path, tissue_detection=False, min_cell_area_um2=10.0)
    idx = match(result.cells["x_px"].to_numpy(), result.cells["y_px"].to_numpy(), blobs)
    assert (idx >= 0).all() and len(result.cells) == 3
    found = result.cells.iloc[idx]
    np.testing.assert_array_equal(found["class_id"], [1, 2, 3])
    np.testing.assert_allclose(found["area_um2"], [b.n_px * 0.0625 for b in blobs], rtol=0.2)  # edge pixels blur into other classes
    assert result.raster_downsample == pytest.approx(2 * result.raster_mpp / 0.5)


def test_rasters_line_up_with_the_cells(blob_slide) -> None:
    path, _, _ = blob_slide
    result = run(path, density_sigma_um=0.0)
    h, w = result.class_map.shape
    assert result.density.shape == (5, h, w) and result.tissue_mask.shape == (h, w)
    px_mm2 = result.raster_mpp**2 / 1e6
    counts = result.density.sum(axis=(1, 2)) * px_mm2
    np.testing.assert_allclose(counts[1:], result.cells["class_id"].value_counts().sort_index().to_numpy(), rtol=1e-4)
    for _, cell in result.cells.head(20).iterrows():
        i, j = int(cell["y_px"] / result.raster_downsample), int(cell["x_px"] / result.raster_downsample)
        assert cell["class_id"] in result.class_map[max(0, i - 1) : i + 2, max(0, j - 1) : j + 2]


def test_objects_larger_than_a_tile_are_dropped_and_big_nuclei_kept_once(tmp_path: Path) -> None:
    """Rules 3 and 4 of core.engine._extract: a component reaching a window's cut edge is no cell,
    nor is one larger than max_cell_area_um2."""
    img, blobs = paint_blobs((300, 300), [(96.0, 144.0, 3), (200.0, 100.0, 1)], radius=18)  # 36 px nuclei on seams
    img[30:270, 250:252] = round(0.5 * 20000)  # a 240 x 2 px bar of class 2 (120 µm², under the max area)
    path = write_slide(tmp_path / "bar.ome.tif", img)
    cells = run(path, tissue_detection=False).cells
    assert len(cells) == 2 and (cells["class_id"] != 2).all()
    assert (match(cells["x_px"].to_numpy(), cells["y_px"].to_numpy(), blobs) >= 0).all()
    img[125:165, 30:70] = round(0.25 * 20000)  # a 40 x 40 px square (400 µm²), clear of the hot lattice
    path = write_slide(tmp_path / "square.ome.tif", img)
    assert len(run(path, tissue_detection=False, max_cell_area_um2=399.0).cells) == 2
    assert len(run(path, tissue_detection=False, max_cell_area_um2=400.0).cells) == 3


def _disc(shape: tuple[int, int], cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= r * r


def test_one_nucleus_of_mixed_classes_is_one_cell_of_its_majority_class(tmp_path: Path) -> None:
    """A U-Net calls some pixels of one nucleus CD3 and others CD8_CD3HI: still one cell."""
    shape = (200, 200)
    img, _ = paint_blobs(shape, [])
    centres = [(60.0, 60.0), (144.0, 96.0), (96.0, 150.0)]  # the second lies on a tile corner
    for cx, cy in centres:
        img[_disc(shape, cx, cy, 9)] = round(0.5 * 20000)  # class 2 (CD3)
        img[_disc(shape, cx + 4, cy, 4)] = round(1.0 * 20000)  # a patch of class 4 (CD8_CD3HI)
    cells = run(write_slide(tmp_path / "mixed.ome.tif", img), tissue_detection=False).cells
    assert len(cells) == len(centres)
    assert (cells["class_name"] == "CD3").all()
    whole = _disc((40, 40), 20, 20, 9).sum() * 0.25  # µm² of one nucleus: all of it is one cell
    np.testing.assert_allclose(cells["area_um2"], whole, rtol=0.02)
    # the share of the nucleus voting for CD3: the class-4 patch holds (4/9)² of its pixels
    assert cells["confidence"].between(0.7, 0.85).all()
    assert cells["probability"].between(0.9, 1.0).all()


@pytest.mark.parametrize("gap", [16.0, 17.0])
def test_touching_nuclei_are_split_and_counted_once_across_seams(tmp_path: Path, gap: float) -> None:
    """Pairs of touching discs (4.5 µm radius, centres ``gap`` px of 0.5 µm apart, so overlapping)
    give two cells each, also where a pair straddles a tile seam; with splitting off, one each."""
    shape = (300, 300)
    img, _ = paint_blobs(shape, [])
    pairs = [(70.0, 70.0), (KEEP * 3 - gap / 2, 120.0), (200.0, KEEP * 4 + 0.5), (110.0, 230.0)]
    truth = []
    for cx, cy in pairs:
        for dx in (-gap / 2, gap / 2):
            img[_disc(shape, cx + dx, cy, 9.0)] = round(0.25 * 20000)
            truth.append((cx + dx, cy))
    path = write_slide(tmp_path / "pairs.ome.tif", img)
    cells = run(path, tissue_detection=False).cells
    assert len(cells) == len(truth)
    d = np.hypot(cells["x_px"].to_numpy()[:, None] - [t[0] for t in truth], cells["y_px"].to_numpy()[:, None] - [t[1] for t in truth])
    assert (d.min(axis=0) < 1.5).all(), "every nucleus found near its centre"
    assert len(run(path, tissue_detection=False, split_depth_um=0.0).cells) == len(pairs)
