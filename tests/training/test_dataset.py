"""Patches, splits, augmentation and the epoch sampler (determinism and disjoint DDP shares)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.progress import run_to_completion
from training.config import LabelConfig
from training.dataset import EpochSampler, PatchDataset, PatchSet, dihedral, make_splits
from training.errors import DatasetError
from training.patches import PatchParams, grid, slide_patches


@pytest.fixture(scope="module")
def patchset(train_phantom: Path, tmp_path_factory: pytest.TempPathFactory) -> PatchSet:
    cache = tmp_path_factory.mktemp("cache")
    params = PatchParams(size=64, overlap=0.0)
    entry = run_to_completion(slide_patches(train_phantom, LabelConfig(), params, cache, name="a"))
    again = run_to_completion(slide_patches(train_phantom, LabelConfig(), params, cache, name="a"))
    assert again.path == entry.path  # cached: the second call reads nothing
    return PatchSet([entry])


def test_patches_have_tissue_and_labels(patchset: PatchSet) -> None:
    entry = patchset.entries[0]
    assert 16 < entry.n <= 256  # 1024/64 = 16² grid, glass skipped
    labels = np.load(entry.path / "labels.npy")
    assert labels.shape == (entry.n, 64, 64) and labels.max() <= 4
    assert sum(entry.meta["pixels"].values()) == labels.size
    data = PatchDataset(patchset, np.arange(entry.n))
    x, y = data[3 * 8 + 5]
    assert x.shape == (1, 64, 64) and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert y.shape == (64, 64)


def test_grid_covers_the_edge() -> None:
    assert grid(100, 64, 32) == [0.0, 32.0, 36.0]
    assert grid(50, 64, 32) == [0.0]


def test_dihedral_gives_eight_distinct_transforms() -> None:
    a = np.arange(16).reshape(4, 4)
    outs = {dihedral(a, k).tobytes() for k in range(8)}
    assert len(outs) == 8


def test_splits_random_and_by_slide(patchset: PatchSet) -> None:
    s1 = make_splits(patchset, seed=3)
    s2 = make_splits(patchset, seed=3)
    n = len(patchset)
    assert all(np.array_equal(s1[k], s2[k]) for k in s1)
    assert sorted(np.concatenate(list(s1.values())).tolist()) == list(range(n))
    assert abs(len(s1["train"]) - 0.8 * n) <= 2
    with pytest.raises(DatasetError, match="Slides in this run: a"):
        make_splits(patchset, seed=0, holdout_slides=["b"])
    with pytest.raises(DatasetError, match="training split is empty"):
        make_splits(patchset, seed=0, holdout_slides=["a"])


def test_sampler_is_deterministic_and_ranks_are_disjoint() -> None:
    a = EpochSampler(50, seed=1, rank=0, world=2)
    b = EpochSampler(50, seed=1, rank=1, world=2)
    for s in (a, b):
        s.set_epoch(4)
    pa, pb = [i // 8 for i in a], [i // 8 for i in b]
    assert not set(pa) & set(pb) and len(pa) == len(pb) == 25
    again = EpochSampler(50, seed=1, rank=0, world=2)
    again.set_epoch(4)
    assert list(again) == list(a)  # same epoch, same batches and transforms (exact --resume)
    again.set_epoch(5)
    assert list(again) != list(a)
    limited = EpochSampler(50, seed=1, per_epoch=10)
    limited.set_epoch(0)
    assert len(list(limited)) == 10


def test_resampled_to_model_mpp(train_phantom: Path, tmp_path: Path) -> None:
    """A model at twice the slide's pixel size gets patches covering twice the area, labels nearest-sampled."""
    params = PatchParams(size=64, overlap=0.0, mpp=0.454)
    entry = run_to_completion(slide_patches(train_phantom, LabelConfig(), params, tmp_path, name="half"))
    images = np.load(entry.path / "images.npy")
    labels = np.load(entry.path / "labels.npy")
    assert images.dtype == np.float32 and images.shape[1:] == (64, 64) == labels.shape[1:]
    assert 4 < entry.n <= 64  # 1024 px at 0.227 µm = 512 px at 0.454 µm: an 8x8 grid
    assert not (entry.path / "mask.npy").exists()  # the level-0 mask is dropped once patches are cut
    assert labels.max() > 0
