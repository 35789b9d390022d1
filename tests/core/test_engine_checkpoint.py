"""Checkpoint debris (issue 14 row 2): leftovers of a killed run never block re-analysis."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.engine import AnalysisParams, BlockDone, analyse_slide
from core.engine._checkpoint import STALE_TMP_S
from core.progress import run_to_completion
from core.slides import open_slide
from tests.core._engine_support import intensity_model, paint_blobs, seam_centres, write_slide

PARAMS = AnalysisParams(context_px=8, batch_size=4, tissue_min_area_um2=500.0)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    shape = (192, 144)  # 4 rows of tiles = 4 blocks
    img, _ = paint_blobs(shape, seam_centres(shape, 48, seed=3))
    return write_slide(tmp_path_factory.mktemp("ckpt") / "small.ome.tif", img, names=("DAPI",))


def _crash_after(slide_path: Path, root: Path, blocks: int) -> Path:
    """Run until ``blocks`` blocks are saved, then stop as a killed process would; the key folder."""
    with open_slide(slide_path) as slide:
        job = analyse_slide(slide, intensity_model(), PARAMS, checkpoint_dir=root)
        done = 0
        for p in job:
            done += isinstance(p, BlockDone)
            if done == blocks:
                break
        job.close()
    (folder,) = [p for p in root.iterdir() if p.is_dir()]
    return folder


def _rerun(slide_path: Path, root: Path):
    with open_slide(slide_path) as slide:
        return run_to_completion(analyse_slide(slide, intensity_model(), PARAMS, checkpoint_dir=root))


def test_leftover_temporaries_are_ignored_and_removed(slide_path: Path, tmp_path: Path) -> None:
    with open_slide(slide_path) as slide:
        reference = run_to_completion(analyse_slide(slide, intensity_model(), PARAMS))
    folder = _crash_after(slide_path, tmp_path, 2)
    assert sorted(p.name for p in folder.glob("block-*.npz")) == ["block-000000.npz", "block-000001.npz"]
    assert not list(folder.glob(".block-*"))  # the temporaries of finished saves are gone
    old_style = folder / "block-000002.tmp.npz"  # what a kill during np.savez used to leave
    old_style.write_bytes(b"")
    stale = folder / ".block-000003.999999.tmp"
    stale.write_bytes(b"PK\x03\x04 half a zip")
    long_ago = time.time() - STALE_TMP_S - 10
    os.utime(stale, (long_ago, long_ago))
    fresh = folder / ".block-000003.888888.tmp"  # maybe a concurrent run's save: ignored, kept
    fresh.write_bytes(b"")
    odd = folder / "block-7.npz"  # not a name this code writes
    odd.write_bytes(b"")

    result = _rerun(slide_path, tmp_path)

    assert result.summary["blocks_resumed"] == 2
    pd.testing.assert_frame_equal(result.cells, reference.cells, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(result.class_map, reference.class_map)
    assert not old_style.exists() and not stale.exists() and fresh.exists() and odd.exists()


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(b""),  # empty
        lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),  # truncated
        lambda p: p.write_bytes(b"\x00" * 512),  # garbage
        lambda p: np.savez(p, cx=np.zeros(3)),  # fields missing
        lambda p: np.savez(p, cx=np.zeros(3), cy=np.zeros(2), class_id=np.zeros(3), probability=np.zeros(3),
                           n_px=np.zeros(3), raster=np.zeros((1, 1), np.uint8)),  # unequal fields, wrong raster
    ],
    ids=["empty", "truncated", "garbage", "missing-fields", "wrong-shapes"],
)
def test_an_unreadable_block_is_discarded_with_a_warning_and_recomputed(
    slide_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, damage
) -> None:
    with open_slide(slide_path) as slide:
        reference = run_to_completion(analyse_slide(slide, intensity_model(), PARAMS))
    folder = _crash_after(slide_path, tmp_path, 2)
    damage(folder / "block-000001.npz")
    with caplog.at_level(logging.WARNING, logger="core.engine._checkpoint"):
        result = _rerun(slide_path, tmp_path)
    assert result.summary["blocks_resumed"] == 1  # block 0 kept, block 1 computed again
    assert any("block-000001.npz" in r.getMessage() and "computed again" in r.getMessage() for r in caplog.records)
    pd.testing.assert_frame_equal(result.cells, reference.cells, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(result.class_map, reference.class_map)
    assert len(list(folder.glob("block-*.npz"))) == 4  # the rerun saved every block whole
