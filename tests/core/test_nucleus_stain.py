"""A cell is a nucleus, and a nucleus holds DNA: calls on stroma are dropped (``nucleus_stain_ratio``).

Why: on validation phantoms the demo model called lymphocytes on stroma fibres and glass gaps inside
the tissue, where per-patch normalisation stretches faint texture into nucleus-like contrast. The
engine reads the raw Hoechst of each call and compares it with the slide's stroma|nucleus level."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from core.engine import AnalysisParams, analyse_slide
from core.engine._extract import find_cells
from core.engine._tissue import overview_levels
from core.engine.standin import standin_model
from core.models import ModelCard
from core.progress import run_to_completion
from core.slides import open_slide
from tests.core._engine_support import write_slide

NUCLEUS, STROMA, GLASS = 4000, 400, 60


def test_find_cells_drops_a_nucleus_without_stain() -> None:
    lab = np.zeros((40, 80), dtype=np.uint8)
    lab[10:20, 10:20] = 2  # two 100 px nuclei of one class
    lab[10:20, 50:60] = 2
    prob = np.where(lab > 0, 0.9, 0.0).astype(np.float32)
    stain = np.full(lab.shape, STROMA, dtype=np.float32)
    stain[10:20, 10:20] = NUCLEUS  # only the left one sits on DNA
    args = (lab, prob, (False,) * 4, (0, 40), (0, 80), 10, 1000)
    assert len(find_cells(*args).cx) == 2  # no stain given: both
    kept = find_cells(*args, stain=stain, min_stain=1000.0)
    assert len(kept.cx) == 1 and kept.cx[0] == pytest.approx(15.0)
    assert len(find_cells(*args, stain=stain, min_stain=0.0).cx) == 2  # 0 = no check


@pytest.fixture(scope="module")
def stroma_slide(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """768² px at 0.5 µm: a glass frame around tissue whose stroma has fibre-like texture; bright
    nuclei only in the top third, so the lower tiles hold stroma alone."""
    rng = np.random.default_rng(4)
    h = w = 768
    texture = ndimage.gaussian_filter(rng.normal(0, 1, (h, w)), (1.0, 6.0))  # fibres along x
    img = STROMA + 60 * texture / texture.std()
    img[:48], img[-48:], img[:, :48], img[:, -48:] = GLASS, GLASS, GLASS, GLASS
    yy, xx = np.mgrid[0:h, 0:w]
    centres = [(x, y) for y in (100, 160, 220) for x in range(100, 700, 75)]
    for cx, cy in centres:
        img[(xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= 36] = NUCLEUS  # 6 px = 3 µm radius
    path = write_slide(tmp_path_factory.mktemp("stroma") / "stroma.ome.tif", np.clip(img, 0, 65535).astype(np.uint16))
    return path, np.array(centres, dtype=float)


def _cells(path: Path, ratio: float):
    model = standin_model(ModelCard(name="standin", mpp=0.5, synthetic=True))
    params = AnalysisParams(nucleus_stain_ratio=ratio, tissue_min_area_um2=1000.0)
    with open_slide(path) as slide:
        return run_to_completion(analyse_slide(slide, model, params))


def test_calls_on_stroma_are_dropped_and_nuclei_kept(stroma_slide) -> None:
    path, centres = stroma_slide
    unchecked = _cells(path, 0.0)
    checked = _cells(path, 1.0)
    # the stand-in (bright after per-patch normalisation = nucleus) calls stroma texture where a
    # tile holds no nucleus, as the demo model did on phantoms
    on_stroma = unchecked.cells[unchecked.cells["y_px"] > 300]
    assert len(on_stroma) >= 5 and unchecked.summary["nucleus_stain_min"] == 0.0
    d = np.hypot(checked.cells["x_px"].to_numpy()[:, None] - centres[:, 0], checked.cells["y_px"].to_numpy()[:, None] - centres[:, 1])
    assert len(checked.cells) == len(centres) and (d.min(axis=1) < 1.0).all()  # every nucleus, once, nothing else
    assert STROMA < checked.summary["nucleus_stain_min"] < NUCLEUS


def test_stroma_level_lies_between_stroma_and_nuclei() -> None:
    rng = np.random.default_rng(0)
    overview = np.concatenate([rng.normal(GLASS, 5, 3000), rng.normal(STROMA, 30, 5000), rng.normal(1500, 200, 2000)])
    level = overview_levels(overview.reshape(100, 100).astype(np.float32)).stroma
    assert level is not None and STROMA + 60 < level < 1500 - 200
    assert overview_levels(np.full((10, 10), 7.0, dtype=np.float32)).stroma is None  # flat: no populations
