"""Honest per-cell metrics: each cell once, every prediction counted, bootstrap intervals; and the splits
that hold out tiles and regions of one slide without renaming."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.models import load_card
from core.progress import run_to_completion
from core.slides import open_slide
from training.config import LabelConfig
from training.dataset import (
    EpochSampler,
    PatchSet,
    SlideRect,
    SplitSpec,
    balanced_weights,
    class_weights,
    make_splits,
)
from training.errors import DatasetError
from training.evaluate import cell_rows
from training.labeller import label_slide
from training.metrics import CellRecords, bootstrap_ci
from training.patches import PatchParams, owned_bounds, slide_patches, tile_coords, tile_patches
from training.retrain import main as retrain_main

# ---------------------------------------------------------------------------------------------- metrics


def _probs(c: int, h: int = 32, w: int = 32) -> torch.Tensor:
    """Confident class ``c`` everywhere."""
    p = torch.full((5, h, w), 0.01)
    p[c] = 0.96
    return p


def test_cell_rows_count_false_positives_on_other_nuclei_and_where_no_nucleus_is() -> None:
    probs = _probs(0)
    probs[:, 4:10, 4:10] = _probs(2, 6, 6)  # CD3 called on an 'other' nucleus at (7, 7)
    probs[:, 20:26, 20:26] = _probs(3, 6, 6)  # CD20 called where no nucleus is
    probs[:, 4:10, 20:26] = _probs(1, 6, 6)  # CD8_CD3LO called on a true CD8_CD3LO at (7, 23)
    # rows (y, x, class, cell id, owned); the cell at (30, 2) is not owned by this patch
    cells = np.array([[7, 7, 0, 1, 1], [7, 23, 1, 2, 1], [30, 2, 2, 3, 0]])
    p, y = cell_rows(probs, cells, (0, 32, 0, 32), min_px=4)
    pred = p.argmax(1).tolist()
    assert sorted(zip(y.tolist(), pred, strict=True)) == [(0, 2), (0, 3), (1, 1)]
    # a predicted cell outside the owned window belongs to the neighbour: not counted here
    p, y = cell_rows(probs, cells, (0, 16, 0, 32), min_px=4)
    assert sorted(zip(y.tolist(), p.argmax(1).tolist(), strict=True)) == [(0, 2), (1, 1)]
    # specks below min_px are not cells
    p, _ = cell_rows(probs, cells, (0, 32, 0, 32), min_px=40)
    assert len(p) == 2


def test_bootstrap_interval_is_seeded_and_narrows_with_more_cells() -> None:
    rng = np.random.default_rng(0)

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        true = rng.integers(0, 5, n)
        probs = np.full((n, 5), 0.05)
        right = rng.random(n) < 0.7
        probs[np.arange(n), np.where(right, true, (true + 1) % 5)] = 0.8
        return true, probs

    true, probs = sample(200)
    a, b = bootstrap_ci(true, probs, n_boot=300, seed=4), bootstrap_ci(true, probs, n_boot=300, seed=4)
    assert a == b
    rec = CellRecords()
    rec.add(probs, true, "s", 0)
    point = float(rec.counts().scores()["hard"]["average"]["f1"])
    lo, hi = a["hard"]["average"]
    assert lo < point < hi
    big_true, big_probs = sample(5000)
    blo, bhi = bootstrap_ci(big_true, big_probs, n_boot=300, seed=4)["hard"]["average"]
    assert bhi - blo < (hi - lo) / 2
    # resampling 4 tiles instead of 200 cells: far fewer units, a wider interval
    tiles = bootstrap_ci(true, probs, group=np.arange(200) % 4, n_boot=300, seed=4)
    assert tiles["units"] == 4 and tiles["hard"]["average"][1] - tiles["hard"]["average"][0] > 0


def test_balancing_favours_rare_classes() -> None:
    pixels = np.array([[900, 100, 0, 0, 0]] * 9 + [[900, 0, 0, 0, 30]])
    w = balanced_weights(pixels)
    assert w[-1] == pytest.approx(1.0) and w[0] == pytest.approx(1 / 9)
    cw = class_weights(pixels)
    assert cw[4] > cw[1] > cw[0] and cw[2] == 1.0


def test_weighted_sampler_is_seeded_split_between_ranks_and_favours_heavy_patches() -> None:
    w = np.ones(20)
    w[7] = 20.0
    ranks = [EpochSampler(20, seed=2, rank=r, world=2, per_epoch=40, weights=w) for r in (0, 1)]
    for s in ranks:
        s.set_epoch(3)
    draws = [[i // 8 for i in s] for s in ranks]
    assert len(draws[0]) == len(draws[1]) == 20
    again = EpochSampler(20, seed=2, rank=0, world=2, per_epoch=40, weights=w)
    again.set_epoch(3)
    assert [i // 8 for i in again] == draws[0]
    both = draws[0] + draws[1]
    assert both.count(7) > 10  # half the weight: about 20 of 40 draws


# ---------------------------------------------------------------------------------- cells counted once


def test_owned_windows_tile_the_axis() -> None:
    bounds = owned_bounds([0.0, 32.0, 64.0, 68.0], 64)
    assert bounds[0][0] == -np.inf and bounds[-1][1] == np.inf
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))


def test_overlapping_patches_own_each_cell_once(train_phantom: Path, tmp_path: Path) -> None:
    entry = run_to_completion(slide_patches(train_phantom, LabelConfig(), PatchParams(size=64, overlap=0.5), tmp_path))
    z = np.load(entry.path / "centroids.npz")
    seen, owned = np.unique(z["cell"]), z["cell"][z["owned"]]
    assert len(z["cell"]) > 1.5 * len(seen)  # 50 % overlap: most cells lie in several patches
    assert len(owned) == len(np.unique(owned)) == len(seen)  # ... and each is owned by exactly one
    assert (z["cls"] == 0).any()  # 'other' nuclei take part


# --------------------------------------------------------------------------------------------- splits


@pytest.fixture(scope="module")
def tile_folder(train_phantom: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four 256² TileExporter tiles of one slide, all named 'Lung 1 [x=..,y=..,w=256,h=256]'."""
    folder = tmp_path_factory.mktemp("tiles") / "export"
    folder.mkdir()
    import tifffile

    with open_slide(train_phantom) as slide:
        result = run_to_completion(label_slide(slide, LabelConfig()))
        for x, y in [(256, 256), (512, 256), (256, 512), (512, 512)]:
            stem = f"Lung 1 [x={x},y={y},w=256,h=256]"
            tifffile.imwrite(folder / f"{stem}.tif", slide.read_region((x, y), 0, (256, 256)), imagej=True,
                             metadata={"axes": "CYX", "Labels": slide.channel_names, "unit": "micron"},
                             resolution=(1 / 0.227, 1 / 0.227))
            Image.fromarray(np.asarray(result.mask[y : y + 256, x : x + 256]).astype(np.uint8)).save(
                folder / f"{stem}-labelled.png")
    return folder


@pytest.fixture(scope="module")
def tiles_of_one_slide(tile_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> PatchSet:
    """The four tiles cut into 64² patches overlapping by half."""
    cache = tmp_path_factory.mktemp("tile-cache")
    entry = run_to_completion(tile_patches(tile_folder, LabelConfig(), PatchParams(size=64, overlap=0.5), cache))
    return PatchSet([entry])


def test_hold_out_tiles_of_one_slide_by_name(tiles_of_one_slide: PatchSet) -> None:
    ps = tiles_of_one_slide
    assert tile_coords("Lung 1 [x=512,y=256,w=256,h=256]") == (512, 256, 256, 256)
    spec = SplitSpec(holdout_tiles=("Lung 1 [x=512,y=512,*",), val_tiles=("Lung 1 [x=256,y=512,*",))
    s = make_splits(ps, seed=0, spec=spec)
    assert {ps.tile_names[i] for i in s["test"]} == {"Lung 1 [x=512,y=512,w=256,h=256]"}
    assert {ps.tile_names[i] for i in s["val"]} == {"Lung 1 [x=256,y=512,w=256,h=256]"}
    assert {ps.tile_names[i] for i in s["train"]} == {"Lung 1 [x=256,y=256,w=256,h=256]",
                                                      "Lung 1 [x=512,y=256,w=256,h=256]"}
    # boxes are in the slide's level-0 px: the held-out tile's patches lie inside its rectangle
    b = ps.boxes[s["test"]]
    assert b[:, 0].min() == 512 and b[:, 2].max() == 768
    with pytest.raises(DatasetError, match="matches no tile. Tiles are named like 'Lung 1"):
        make_splits(ps, seed=0, spec=SplitSpec(holdout_tiles=("Lung 2*",)))


def test_random_split_by_tile_keeps_tiles_whole(tiles_of_one_slide: PatchSet) -> None:
    ps = tiles_of_one_slide
    s = make_splits(ps, seed=1, spec=SplitSpec(by="tile", fractions=(0.5, 0.25, 0.25)))
    groups = [{ps.tile_names[i] for i in s[k]} for k in ("train", "val", "test")]
    assert all(groups) and not (groups[0] & groups[1]) and not (groups[0] & groups[2]) and not (groups[1] & groups[2])


def test_region_and_block_holdouts_never_share_pixels_with_training(train_phantom: Path, tmp_path: Path) -> None:
    entry = run_to_completion(slide_patches(train_phantom, LabelConfig(), PatchParams(size=64, overlap=0.5),
                                            tmp_path, name="a"))
    ps = PatchSet([entry])

    def overlap(a: np.ndarray, b: np.ndarray) -> bool:
        A, B = ps.boxes[a][:, None], ps.boxes[b][None]
        return bool(((A[..., 0] < B[..., 2]) & (B[..., 0] < A[..., 2]) & (A[..., 1] < B[..., 3])
                     & (B[..., 1] < A[..., 3])).any())

    s = make_splits(ps, seed=0, spec=SplitSpec(holdout_regions=(SlideRect.parse("a:0,0,512,1024"),)))
    centres = (ps.boxes[s["test"], 0] + ps.boxes[s["test"], 2]) / 2
    assert len(s["test"]) and (centres < 512).all()
    assert len(s["dropped"]) and not overlap(s["train"], s["test"])
    b = make_splits(ps, seed=0, spec=SplitSpec(by="block", block_um=60.0))
    assert not overlap(b["train"], b["test"]) and not overlap(b["train"], b["val"])
    with pytest.raises(DatasetError, match="SLIDE:x0,y0,x1,y1"):
        SlideRect.parse("a:0,0,10")


def test_retrain_holds_out_tiles_without_renaming_and_records_its_choices(
    tile_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny: list[str],
) -> None:
    out = tmp_path / "run"
    assert retrain_main(["--tiles", str(tile_folder), "--out", str(out), "--cache", str(tmp_path / "c"), *tiny,
                         "--holdout-tiles", "Lung 1 [x=512,y=512,*", "--split-by", "tile", "--epochs", "2",
                         "--patches-per-epoch", "8", "--patience", "1", "--bootstrap", "200"]) == 0
    text = capsys.readouterr().out
    assert "Model pixel size 0.227 µm: the training data's own pixel size" in text
    assert "95% bootstrap interval" in text
    card = load_card(out)
    t = card.training
    assert t["split"]["test"]["tiles"] == ["Lung 1 [x=512,y=512,w=256,h=256]"]
    assert "Lung 1 [x=512,y=512,w=256,h=256]" not in t["split"]["train"]["tiles"]
    assert t["pixel_size"]["model_mpp"] == pytest.approx(0.227) and card.mpp == pytest.approx(0.227)
    assert t["balance"]["mode"] == "both" and t["early_stopping"]["patience"] == 1
    stats = card.data_statistics
    assert stats is not None and stats["images"] > 0 and stats["source_mpp"] == pytest.approx(0.227)
    ci = card.metrics["centroid_ci"]["hard"]["average"]
    f1 = np.mean([card.metrics["centroid"]["hard"][c]["f1"] for c in ("CD8_CD3LO", "CD3", "CD20", "CD8_CD3HI")])
    assert ci[0] <= f1 + 1e-9 and f1 - 1e-9 <= ci[1]
    assert card.metrics["centroid"]["count"] > 0 and "Lung 1" in card.metrics["per_slide"]
