"""The throughput pipeline (issue #13) changes speed only: same pixels, same classes, same cells.

- the block reader cuts the same tiles as one ``read_region_at_mpp`` per tile, decoding each
  slide pixel once;
- normalisation, argmax and class raster batched on the device equal the per-tile functions;
- a parallel run (reader threads, extraction workers) gives exactly the serial run's cell table.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from core.engine import AnalysisParams, analyse_slide
from core.engine._batching import batch_class_raster, cpu_class_raster, cpu_classes
from core.engine._extract import tile_class_raster
from core.engine._grid import TileGrid
from core.engine._reader import CHUNK, BlockReader
from core.engine.standin import standin_model
from core.models import ModelCard
from core.models.runtime import classes_from_logits
from core.normalise import normalise_batch, normalise_batch_tensor
from core.phantom import PhantomParams, generate_phantom
from core.progress import run_to_completion
from core.slides import open_slide
from tests.core._engine_support import SIZE_BOUNDS, paint_blobs, seam_centres, write_slide


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("phantom")
    run_to_completion(generate_phantom(PhantomParams(size=1280, seed=3), out))
    return out / "hoechst.ome.tif"


def _slide_with_gaps(tmp_path: Path, mpp: float) -> Path:
    img, _ = paint_blobs((700, 1100), seam_centres((700, 1100), 48, seed=2))
    img = img + np.random.default_rng(0).integers(0, 300, img.shape).astype(np.uint16)
    return write_slide(tmp_path / f"gaps-{mpp}.ome.tif", img, mpp=mpp, levels=2)


class _CountingSlide:
    """A real slide whose ``read_region`` calls are recorded (to count decoded pixels)."""

    def __init__(self, slide) -> None:
        self._slide = slide
        self.reads: list[tuple[int, tuple[int, int]]] = []

    def read_region(self, location, level, size, channels):
        self.reads.append((level, tuple(size)))
        return self._slide.read_region(location, level, size, channels)

    def __getattr__(self, name: str):
        return getattr(self._slide, name)


@pytest.mark.parametrize(("slide_mpp", "model_mpp", "workers"), [(0.5, 0.5, 2), (0.5, 0.5, 0), (0.37, 0.5, 1), (0.227, 0.227, 1)])
def test_block_reader_cuts_the_tiles_a_per_tile_read_gives(tmp_path: Path, slide_mpp: float, model_mpp: float, workers: int) -> None:
    """Exactly, resampled or not (0.227/0.227: positions with float noise are still whole pixels)."""
    path = _slide_with_gaps(tmp_path, slide_mpp)
    with open_slide(path) as slide:
        grid = TileGrid.build(slide.dimensions, slide.require_mpp(), model_mpp, 64, 8, 4.0)
        rows, cols = grid.shape
        # Rows with gaps between runs of tiles, the slide's edges (zero-filled) and a skipped row.
        wanted = {r: [c for c in range(cols) if (c + r) % 5 != 2] for r in range(rows) if r != 3}
        counting = _CountingSlide(slide)
        with BlockReader(counting, grid, 0, wanted, workers=workers, ahead=2) as reader:
            for r in sorted(wanted):
                got_cols, got = reader.read_row(r)
                assert got_cols == wanted[r] and got.shape == (len(got_cols), 1, 64, 64)
                for c, tile in zip(got_cols, got, strict=True):
                    want = slide.read_region_at_mpp(grid.read_location(r, c), (64, 64), model_mpp, [0])
                    np.testing.assert_array_equal(tile, want)
        assert reader.identity == (slide_mpp == model_mpp)
        # Every chunk (hence every file tile, which chunks align to) is decoded once.
        decoded = len(counting.reads)
        lw, lh = slide.level_dimensions[counting.reads[0][0]]
        assert decoded <= -(-lw // CHUNK) * -(-lh // CHUNK)
        assert all(size == (CHUNK, CHUNK) for _, size in counting.reads)


def test_batched_device_ops_equal_the_per_tile_functions() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 5000, (6, 1, 32, 32)).astype(np.float32)
    x[2] = 7.0  # a flat tile normalises to zeros
    np.testing.assert_array_equal(normalise_batch_tensor(torch.from_numpy(x)).numpy(), normalise_batch(x))

    labels = rng.integers(0, 5, (6, 48, 48)).astype(np.uint8)
    labels[0, :8, :8] = 0  # blocks without a positive class, and ties between classes
    labels[1, :4, :4] = np.array([[1, 2] * 2] * 4)
    got = batch_class_raster(torch.from_numpy(labels), 4, 5).numpy()
    np.testing.assert_array_equal(got, np.stack([tile_class_raster(lab, 4, 5) for lab in labels]))

    logits = torch.from_numpy(rng.normal(0, 3, (4, 5, 16, 16)).astype(np.float32))
    cls, prob = classes_from_logits(logits)
    soft = torch.softmax(logits, dim=1)
    np.testing.assert_array_equal(cls.numpy(), soft.argmax(dim=1).numpy())
    np.testing.assert_allclose(prob.numpy(), soft.max(dim=1).values.numpy(), rtol=1e-6)


def _run(path: Path, model, **kwargs) -> object:
    with open_slide(path) as slide:
        return run_to_completion(analyse_slide(slide, model, AnalysisParams(**kwargs)))


def test_parallel_run_gives_the_serial_cell_table(phantom: Path) -> None:
    card = ModelCard(name="standin", synthetic=True)
    model = standin_model(card)
    # the stand-in calls bright fragments, many under a lymphocyte's size: keep them, more cells to compare
    serial = _run(phantom, model, reader_threads=0, extract_workers=0, batch_size=8, **SIZE_BOUNDS)
    parallel = _run(phantom, model, reader_threads=3, extract_workers=2, prefetch_rows=1, batch_size=5, **SIZE_BOUNDS)
    assert len(serial.cells) > 100  # the stand-in's class map has cells, of several classes
    assert serial.cells["class_id"].nunique() >= 3
    pd.testing.assert_frame_equal(parallel.cells, serial.cells)
    np.testing.assert_array_equal(parallel.class_map, serial.class_map)
    stages = parallel.summary["stage_ms_per_tile"]
    assert set(stages) >= {"decode", "normalise", "model", "post-processing", "extraction", "writing"}
    assert all(v >= 0 for v in stages.values()) and stages["decode"] > 0
    cpu = parallel.summary["stage_cpu_ms_per_tile"]  # the threads' CPU time, beside their busy time
    assert set(cpu) == set(stages) and cpu["extraction"] > 0 and all(v >= 0 for v in cpu.values())


def test_sleep_standin_costs_its_time_per_tile() -> None:
    card = ModelCard(name="standin", patch_size=64, synthetic=True)
    model = standin_model(card, "sleep", ms_per_tile=20)
    x = np.random.default_rng(0).uniform(0, 1, (4, 1, 64, 64)).astype(np.float32)
    t0 = time.perf_counter()
    cls, _ = model.predict_classes(x, crop=8)
    assert time.perf_counter() - t0 >= 0.08 and cls.shape == (4, 48, 48)
    assert set(np.unique(cls)) - {0}  # bright pixels become a positive class


def test_cpu_post_processing_equals_the_device_version() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, (3, 5, 24, 24)).astype(np.float32)
    logits[0, 2] = logits[0, 1]  # exact ties: the lowest class wins in both
    cls, prob = cpu_classes(logits)
    cls_t, prob_t = classes_from_logits(torch.from_numpy(logits))
    np.testing.assert_array_equal(cls, cls_t.numpy())
    np.testing.assert_allclose(prob, prob_t.numpy(), rtol=1e-6)
    labels = rng.integers(0, 5, (4, 48, 48)).astype(np.uint8)
    np.testing.assert_array_equal(cpu_class_raster(labels, 4, 5), batch_class_raster(torch.from_numpy(labels), 4, 5).numpy())
