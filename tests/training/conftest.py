"""Shared fixtures: small phantom slides (real files from core.phantom), generated once per session.

Phantoms are drawn "hot" (infiltration 1.0) so that a 1024² slide (0.05 mm²) still holds a few
dozen lymphocytes of each common class. Seed 1 trains, seed 2 (never trained on) evaluates.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.phantom import PhantomParams, generate_phantom
from core.progress import run_to_completion

# The test machine's 2 cores are shared: one thread avoids OpenMP spin-waiting (7x faster there).
torch.set_num_threads(1)


def _phantom(root: Path, name: str, seed: int, size: int) -> Path:
    params = PhantomParams(size=size, seed=seed, infiltration_ct=1.0, infiltration_im=1.0)
    paths = run_to_completion(generate_phantom(params, root / name))
    return paths.mif


@pytest.fixture(scope="session")
def train_phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """mIF OME-TIFF of phantom seed 1, 1024² px at 0.227 µm (cells.csv and phantom.json beside it)."""
    return _phantom(tmp_path_factory.mktemp("phantoms"), "train", 1, 1024)


@pytest.fixture(scope="session")
def eval_phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """mIF OME-TIFF of phantom seed 2, 1536² px: never used for training."""
    return _phantom(tmp_path_factory.mktemp("phantoms"), "eval", 2, 1536)


@pytest.fixture(scope="session")
def patch_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One patch cache for all retrain runs of the session (labels are made once per slide/settings)."""
    return tmp_path_factory.mktemp("patch-cache")


@pytest.fixture
def tiny() -> list[str]:
    """Smallest honest training settings: tiny encoder, 64² patches (a multiple of 32), a few steps."""
    return TINY


TINY = ["--encoder", "resnet18", "--patch-size", "64", "--overlap", "0", "--batch-size", "4",
        "--workers", "0", "--eval-batch-size", "32", "--precision", "fp32"]
