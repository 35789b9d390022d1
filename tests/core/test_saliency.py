"""HiPe and feature visualisation on toy models whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from core.progress import run_to_completion
from core.saliency import exhaustive_occlusion, feature_loss, feature_visualisation_job, hipe, quadrant_masks
from core.saliency.hipe import _windows


class RegionModel(torch.nn.Module):
    """Class 1's logit everywhere = 8 × mean input inside a fixed box; class 0's logit is 0."""

    def __init__(self, box: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.box = box
        self.bn = torch.nn.BatchNorm2d(1)  # present so eval-mode handling is observable

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y0, y1, x0, x1 = self.box
        s = 8 * self.bn(x)[:, :, y0:y1, x0:x1].mean(dim=(1, 2, 3)).view(-1, 1, 1, 1)
        s = s.expand(-1, 1, x.shape[2], x.shape[3])
        return torch.cat([torch.zeros_like(s), s], dim=1)


def _local_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 3, padding=1)
    ).eval()


def test_windows_cover_edges_and_are_clipped():
    wins = _windows(4)
    assert len(wins) == 25  # positions -1..3 in both axes
    assert (0, 1, 0, 1) in wins and (3, 4, 3, 4) in wins and (1, 3, 1, 3) in wins


def test_saliency_concentrates_where_the_output_depends():
    model = RegionModel((8, 16, 16, 24))
    model.bn.eval()
    image = torch.rand(1, 1, 32, 32) + 0.5
    res = hipe(model, image, target=1, initial_cells=4)
    inside = res.saliency[8:16, 16:24].sum()
    assert res.saliency.sum() > 0
    assert inside / res.saliency.sum() > 0.6
    # Pixels far from the box (beyond one window of the coarsest depth) get no saliency at all.
    assert res.saliency[24:, :8].sum() == 0
    assert res.depth_maps.shape[0] == 3
    np.testing.assert_allclose(res.depth_maps.sum(axis=0), res.saliency, rtol=1e-5)


def test_eval_mode_and_batchnorm_statistics_are_untouched():
    model = RegionModel((0, 8, 0, 8))
    model.train()
    before = model.bn.running_mean.clone()
    hipe(model, torch.rand(1, 1, 32, 32), target=1)
    assert model.training  # restored
    assert torch.equal(model.bn.running_mean, before)


def test_deterministic_and_batch_size_invariant():
    model = _local_model()
    image = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    a = hipe(model, image, target=2, batch_size=7)
    b = hipe(model, image, target=2, batch_size=64)
    assert a.n_masks == b.n_masks
    np.testing.assert_allclose(a.saliency, b.saliency, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("perturbation", ["fade", "mean", "blur"])
def test_every_perturbation_runs_on_one_channel(perturbation):
    res = hipe(_local_model(), torch.rand(1, 1, 32, 32), target=1, perturbation=perturbation)
    assert res.saliency.shape == (32, 32) and np.isfinite(res.saliency).all()


class SpotModel(torch.nn.Module):
    """Class 1's logit = 6 × Gaussian-blurred input: bright spots ("nuclei") drive the call locally."""

    def __init__(self, sigma: float = 1.5, radius: int = 4) -> None:
        super().__init__()
        x = torch.arange(-radius, radius + 1, dtype=torch.float32)
        k = torch.exp(-(x[:, None] ** 2 + x[None] ** 2) / (2 * sigma**2))
        self.conv = torch.nn.Conv2d(1, 1, 2 * radius + 1, padding=radius, bias=False)
        self.conv.weight.data[:] = k / k.sum()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = 6 * self.conv(x)
        return torch.cat([torch.full_like(y, 2.0), y, torch.zeros_like(y)], dim=1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hipe_agrees_with_exhaustive_occlusion_with_far_fewer_passes(seed, capsys):
    model = SpotModel().eval()
    rng = np.random.default_rng(seed)
    img = np.zeros((32, 32), np.float32)
    for y, x in rng.integers(4, 28, size=(4, 2)):
        img[y - 2 : y + 2, x - 2 : x + 2] = rng.uniform(0.5, 1.0)
    image = torch.from_numpy(img + 0.05 * rng.random((32, 32), dtype=np.float32))[None, None]
    res = hipe(model, image, target=1, initial_cells=4)
    exhaustive, n_exhaustive = exhaustive_occlusion(model, image, target=1, cells=32)
    top = np.argsort(exhaustive.ravel())[::-1][: exhaustive.size // 10]
    rho = spearmanr(exhaustive.ravel()[top], res.saliency.ravel()[top]).statistic
    with capsys.disabled():
        print(f"\nHiPe forward passes {res.n_masks} vs exhaustive {n_exhaustive}; Spearman on top 10% = {rho:.3f}")
    assert res.n_masks < n_exhaustive / 3
    assert rho >= 0.9


def test_cell_mode_explains_one_cell_with_evidence_around_it():
    model = RegionModel((8, 16, 8, 16))
    model.bn.eval()
    cell = np.zeros((32, 32), bool)
    cell[24:28, 24:28] = True  # the output of interest is at this cell; the evidence is in the box
    res = hipe(model, torch.rand(1, 1, 32, 32) + 0.5, target=1, cell_mask=cell)
    assert res.saliency[8:16, 8:16].sum() / res.saliency.sum() > 0.6


def test_feature_loss_prefers_each_class_in_its_quadrant():
    masks = quadrant_masks(8, 4)
    good = 5 * masks - 1 * (1 - masks)
    bad = -good
    assert feature_loss(good, masks) < feature_loss(bad, masks)


def test_feature_visualisation_lowers_the_loss_without_touching_weights():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 5, 5, padding=2))
    before = [p.detach().clone() for p in model.parameters()]
    res = run_to_completion(feature_visualisation_job(model, size=32, steps=60, lr=1.0, report_every=20))
    assert res.losses[-1] < res.losses[0]
    assert res.image.shape == (32, 32) and res.image.min() >= 0 and res.image.max() <= 1
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
