"""Explaining a call at a point: the patch read, the cell picked, saliency mass inside it, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.cli import main
from core.errors import CoreError
from core.models import ModelCard, build_model, save_model
from core.models.runtime import LoadedModel, load_model
from core.progress import run_to_completion
from core.saliency import (
    ContextReady,
    cell_mask_at,
    default_target,
    dilate,
    explain_job,
    explain_point_job,
    mass_inside,
    prepare,
    rank_inside,
)
from core.slides import open_slide
from tests.conftest import write_ome_pyramid

MPP = 0.5
MAX = 20000
LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)  # normalised intensity of each class for the level model


class LevelModel(torch.nn.Module):
    """Per-pixel logits −200·(x − level_c)²: the class is the nearest intensity level (no context)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("levels", torch.tensor(LEVELS).view(1, -1, 1, 1))
        self.sharpness = torch.nn.Parameter(torch.tensor(200.0))  # a parameter: HiPe finds the device by it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -self.sharpness * (x - self.levels) ** 2


def _disc(shape: tuple[int, int], cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= r**2


# Discs on a 128² slide: A (class 2) is the cell explained; B (class 2) is near but separate;
# C (class 4, brightest: it sets the patch maximum) touches A.
A, B, C = (64.0, 64.0, 2), (78.0, 64.0, 2), (64.0, 55.0, 4)


@pytest.fixture(scope="module")
def disc_slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    img = np.zeros((128, 128), np.uint16)
    for cx, cy, cls in (C, A, B):  # A painted over C: they touch, with different classes
        img[_disc(img.shape, cx, cy, 5)] = round(LEVELS[cls] * MAX)
    return write_ome_pyramid(tmp_path_factory.mktemp("disc") / "discs.ome.tif", img[None], mpp=MPP,
                             names=("Hoechst",), levels=1, tile=64)


@pytest.fixture(scope="module")
def level_model() -> LoadedModel:
    card = ModelCard(name="levels", encoder="none", mpp=MPP, patch_size=64, weights_sha256="0" * 64)
    return LoadedModel(LevelModel().eval(), card, torch.device("cpu"), "fp32", "test model")


def test_cell_mask_at_takes_the_4_connected_component_of_the_class_at_the_point():
    classes = np.zeros((8, 8), np.uint8)
    classes[1:3, 1:3] = 2  # the cell
    classes[3, 3] = 2  # touches it only diagonally: another cell
    classes[1:3, 3:5] = 1  # touches it, other class
    classes[6, 6] = 2
    mask, cls = cell_mask_at(classes, (1, 1))
    assert cls == 2 and mask.sum() == 4 and mask[1:3, 1:3].all()
    assert cell_mask_at(classes, (0, 7)) is None  # background, no search radius
    snapped = cell_mask_at(classes, (7, 6), search_radius_px=1.5)
    assert snapped is not None and snapped[1] == 2 and snapped[0].sum() == 1 and snapped[0][6, 6]
    assert cell_mask_at(classes, (0, 7), search_radius_px=1.5) is None


def test_mass_inside_on_a_hand_made_map():
    sal = np.zeros((6, 6), np.float32)
    sal[2, 2] = 6.0
    sal[2, 3] = 2.0
    sal[5, 5] = 2.0
    mask = np.zeros((6, 6), bool)
    mask[2, 2] = True
    assert mass_inside(sal, mask) == pytest.approx(0.6)
    assert mass_inside(sal, dilate(mask, 1.0)) == pytest.approx(0.8)  # the plus shape takes in (2, 3)
    assert dilate(mask, 1.0).sum() == 5 and dilate(mask, 1.5).sum() == 9 and dilate(mask, 0.2).sum() == 1
    assert np.isnan(mass_inside(np.zeros((6, 6)), mask))
    with pytest.raises(ValueError):
        mass_inside(sal, mask[:5])


def test_rank_inside_counts_the_top_pixels_and_shares_ties():
    sal = np.zeros((4, 4))
    sal[0, 0], sal[0, 1], sal[3, 3] = 5.0, 4.0, 3.0
    mask = np.zeros((4, 4), bool)
    mask[0, 0] = mask[3, 3] = True
    # K = 2: the two most salient pixels are (0, 0) inside and (0, 1) outside.
    assert rank_inside(sal, mask) == pytest.approx(0.5)
    mask[0, 1] = True
    assert rank_inside(sal, mask) == pytest.approx(1.0)  # K = 3: all three are inside
    flat = np.zeros((4, 4))
    flat[:2, :2] = 1.0  # a 2x2 window of equal saliency; K = 2 slots shared among 4 tied pixels
    one = np.zeros((4, 4), bool)
    one[0, 0] = one[3, 3] = True
    assert rank_inside(flat, one) == pytest.approx(0.25)  # expected 2 * 1/4 inside, over K = 2
    assert np.isnan(rank_inside(np.zeros((4, 4)), one)) and np.isnan(rank_inside(sal, np.zeros((4, 4), bool)))


def test_prepare_reads_the_centred_patch_and_picks_the_cell_under_the_point(disc_slide, level_model):
    with open_slide(disc_slide) as slide:
        ctx = prepare(level_model, slide, A[0], A[1], cell=True)
    assert ctx.patch.location == (32.0, 32.0) and ctx.patch.point == (32, 32)
    assert ctx.patch.hoechst[32, 32] == round(LEVELS[2] * MAX)
    expected = _disc((128, 128), A[0], A[1], 5)[32:96, 32:96]
    assert ctx.cell_class == 2 and ctx.point_class == 2
    np.testing.assert_array_equal(ctx.cell_mask, expected)  # not B (same class), not C (touching)
    assert default_target(ctx) == 2


def test_prepare_snaps_to_a_cell_nearby_and_refuses_empty_places(disc_slide, level_model):
    with open_slide(disc_slide) as slide:
        # 2 px (1 µm) left of A's edge; the patch starts at x = 25, so A's centre is at column 39.
        near = prepare(level_model, slide, A[0] - 7, A[1], cell=True, search_radius_um=2.0)
        assert near.point_class == 0 and near.cell_class == 2 and near.cell_mask[32, 39]
        with pytest.raises(CoreError, match="No cell"):
            prepare(level_model, slide, A[0] - 7, A[1], cell=True, search_radius_um=0.5)
        with pytest.raises(CoreError, match="No cell"):
            prepare(level_model, slide, 20.0, 110.0, cell=True)
        background = prepare(level_model, slide, 20.0, 110.0)
    with pytest.raises(CoreError, match="choose the class to explain"):
        default_target(background)


def test_explain_cell_and_patch_put_the_saliency_on_the_cell(disc_slide, level_model):
    with open_slide(disc_slide) as slide:
        cell_ctx = prepare(level_model, slide, A[0], A[1], cell=True)
        patch_ctx = prepare(level_model, slide, A[0], A[1])
    cell = run_to_completion(explain_job(level_model, cell_ctx, [2]))
    res = cell.maps[2]
    assert res.n_masks > 0 and res.depth_maps.shape == (4, 64, 64)
    # Windows that miss the cell change nothing: no saliency beyond one coarse window (16 px) of it.
    assert res.saliency[~dilate(cell_ctx.cell_mask, 16 * 1.5)].sum() == 0
    # Even a perfectly local model leaves mass outside (windows overlap the border; here about 0.28),
    # but far more than the cell's share of the patch (2%) lies inside.
    assert cell.inside_fraction(2) > 10 * cell_ctx.cell_mask.mean()
    assert cell.inside_fraction(2, dilate_um=1.0) > cell.inside_fraction(2)
    # Where the strongest evidence lies is sharper than the mass: the top pixels sit on the cell.
    assert cell.rank_fraction(2) > 0.95 > 0.5 > cell.inside_fraction(2)  # measured 1.0 and 0.28
    # Patch mode: the per-pixel drop only occurs where class 2 is predicted (A and B).
    reports = []
    patch = run_to_completion(explain_job(level_model, patch_ctx, [2, 4]), reports.append)
    done = [r.done for r in reports]
    assert done == sorted(done) and done[-1] == reports[-1].total == 2000  # never goes back
    assert patch.inside_fraction(2) > 0.99 and patch.inside_fraction(4) > 0.99
    assert set(patch.seconds) == {2, 4}


def test_explain_point_job_shows_the_patch_first_then_explains_the_default_class(disc_slide, level_model):
    with open_slide(disc_slide) as slide:
        job = explain_point_job(level_model, slide, A[0], A[1], cell=True)
        first = next(job)
        assert isinstance(first, ContextReady) and first.context is not None and first.context.cell_class == 2
        expl = run_to_completion(job)
    assert list(expl.maps) == [2] and expl.context is first.context


# --- the command line, on a tiny random U-Net --------------------------------------------------

TINY = ModelCard(name="t", encoder="resnet18", mpp=MPP, patch_size=32, synthetic=True)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny")
    save_model(build_model(TINY).eval(), TINY, out)
    return out


@pytest.fixture(scope="module")
def nuclei_slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(3)
    img = rng.normal(400, 50, (192, 192)).clip(0, None)
    for _ in range(30):
        img[_disc(img.shape, *rng.uniform(0, 192, 2), rng.uniform(3, 6))] += rng.uniform(4000, 9000)
    return write_ome_pyramid(tmp_path_factory.mktemp("nuclei") / "nuclei.ome.tif",
                             img.astype(np.uint16)[None], mpp=MPP, names=("Hoechst",), levels=2, tile=64)


def test_cli_writes_maps_pictures_and_json(tmp_path, tiny_model_dir, nuclei_slide):
    out = tmp_path / "patch"
    args = ["saliency", str(nuclei_slide), "--x", "96", "--y", "96", "--class", "CD3", "--model",
            str(tiny_model_dir), "--device", "cpu", "--initial-cells", "2", "--out", str(out)]
    assert main(args) == 0
    for name in ("hoechst.png", "prediction.png", "saliency_CD3.png", "saliency_CD3_depths.png"):
        assert (out / name).stat().st_size > 0
    assert np.load(out / "saliency_CD3.npy").shape == (32, 32)
    depth = np.load(out / "depth_maps_CD3.npy")
    assert depth.shape == (4, 32, 32)  # log2(32 / 2) depths
    doc = json.loads((out / "saliency.json").read_text())
    assert doc["mode"] == "patch" and doc["targets"][0]["class"] == "CD3"
    assert doc["targets"][0]["n_masks"] > 0 and doc["targets"][0]["seconds"] > 0
    assert doc["model"]["name"] == "t" and doc["patch_location_px"] == [80.0, 80.0]


def test_cli_cell_mode_defaults_to_the_cell_class(tmp_path, tiny_model_dir, nuclei_slide):
    model = load_model(tiny_model_dir, device="cpu", precision="fp32")
    with open_slide(nuclei_slide) as slide:
        ctx = prepare(model, slide, 96, 96)
    rows, cols = np.nonzero(ctx.classes)
    if rows.size == 0:
        pytest.skip("the random model predicts no positive class here")
    i = int(np.argmin((rows - 16) ** 2 + (cols - 16) ** 2))  # a positive pixel near the centre
    x, y = ctx.patch.to_level0(cols[i] + 0.5, rows[i] + 0.5)
    out = tmp_path / "cell"
    args = ["saliency", str(nuclei_slide), "--x", str(x), "--y", str(y), "--cell", "--model",
            str(tiny_model_dir), "--device", "cpu", "--initial-cells", "2", "--out", str(out)]
    assert main(args) == 0
    doc = json.loads((out / "saliency.json").read_text())
    target = doc["targets"][0]
    assert doc["mode"] == "cell" and target["class"] == doc["cell"]["class"] == TINY.classes[ctx.classes[rows[i], cols[i]]]
    assert 0 <= target["inside_fraction"] <= target["inside_fraction_dilated_1um"] <= 1
    assert 0 <= target["top_pixels_inside"] <= 1


def test_cli_unknown_class_is_a_one_line_error(tmp_path, tiny_model_dir, nuclei_slide, capsys):
    args = ["saliency", str(nuclei_slide), "--x", "96", "--y", "96", "--class", "CD4", "--model",
            str(tiny_model_dir), "--device", "cpu", "--out", str(tmp_path)]
    assert main(args) == 2
    assert "Unknown class 'CD4'" in capsys.readouterr().err


@pytest.mark.slow
def test_nucleus_benchmark_runs_on_a_tiny_model(tmp_path, tiny_model_dir, capsys):
    """benchmarks/saliency_nucleus.py end to end (phantom generation included: about a minute)."""
    import runpy

    bench = runpy.run_path(str(Path(__file__).resolve().parents[2] / "benchmarks" / "saliency_nucleus.py"))
    card = json.loads((tiny_model_dir / "model.json").read_text())
    card["mpp"] = 0.227  # the phantom's pixel size; the weights do not depend on it
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model.json").write_text(json.dumps(card))
    (model_dir / "model.safetensors").write_bytes((tiny_model_dir / "model.safetensors").read_bytes())
    out = tmp_path / "nucleus.json"
    args = ["--model", str(model_dir), "--device", "cpu", "--n", "2", "--size", "1024", "--work", str(tmp_path),
            "--accept-any", "--json", str(out)]
    assert bench["main"](args) == 0
    doc = json.loads(out.read_text())
    assert len(doc["cells"]) == 2 and 0 <= doc["summary"]["inside"]["mean"] <= 1
    assert "inside_1um" in capsys.readouterr().out


def test_cli_perturbation_choices_match_hipe():
    from core.cli.saliency import PERTURBATION_CHOICES
    from core.saliency import PERTURBATIONS

    assert PERTURBATION_CHOICES == PERTURBATIONS
