"""Helpers for the engine tests: blob slides written as real OME-TIFFs, and a deterministic model.

The *intensity model* "segments" by normalised intensity: class c wins where the pixel is closest
to ``LEVELS[c]``. It looks at single pixels only, so its output never depends on where a tile
starts, which makes exact seam and tiling tests possible. Blob slides have a background of 0 and a
lattice of single hot pixels at the maximum value (plus the last row and column), so every patch normalises exactly like the
whole image (min 0, max the hot value); hot pixels are single pixels, below the minimum cell area.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.models import ModelCard
from core.models.runtime import LoadedModel
from tests.conftest import write_ome_pyramid

MAX = 20000
#: Normalised intensity of each class; 0 = background.
LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)
LATTICE = 48  # hot pixel spacing (slide px), offset LATTICE // 2


class IntensityClasses(torch.nn.Module):
    """Logits −k·(x − level_c)²: class = nearest intensity level. Counts its forward calls."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("levels", torch.tensor(LEVELS).view(1, -1, 1, 1))
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return -200.0 * (x - self.levels) ** 2


def intensity_model(mpp: float = 0.5, patch: int = 64) -> LoadedModel:
    card = ModelCard(name="intensity-test", encoder="none", mpp=mpp, patch_size=patch, weights_sha256="0" * 64)
    return LoadedModel(IntensityClasses().eval(), card, torch.device("cpu"), "fp32", "test model")


@dataclass
class Blob:
    cx: float  # expected centroid, continuous level-0 px
    cy: float
    cls: int
    n_px: int


#: The painted blobs are 2.5 µm-radius discs at 0.5 µm/px (~20 µm², at the engine's lower bound for
#: a lymphocyte); tests about seams, tiling and frames pass these bounds so that every blob counts.
SIZE_BOUNDS = {"min_cell_area_um2": 3.0, "max_cell_area_um2": 400.0}


def paint_blobs(
    shape: tuple[int, int], centres: list[tuple[float, float, int]], radius: float = 5.0, hot: int = 1
) -> tuple[np.ndarray, list[Blob]]:
    """uint16 image (h, w) with discs of class intensity + the hot lattice (``hot``×``hot`` px dots,
    2 to survive a 2× downsample); the exact blob centroids."""
    h, w = shape
    img = np.zeros((h, w), dtype=np.uint16)
    lat_y = [y + d for y in [*range(LATTICE // 2, h - hot, LATTICE), h - hot] for d in range(hot)]
    lat_x = [x + d for x in [*range(LATTICE // 2, w - hot, LATTICE), w - hot] for d in range(hot)]
    img[np.ix_(lat_y, lat_x)] = MAX  # edge row/column too: every patch, even at the edge, holds one
    yy, xx = np.mgrid[0:h, 0:w]
    blobs = []
    for cx, cy, cls in centres:
        disc = (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= radius**2
        img[disc] = round(LEVELS[cls] * MAX)
        ys, xs = np.nonzero(disc)
        blobs.append(Blob(xs.mean() + 0.5, ys.mean() + 0.5, cls, int(disc.sum())))
    return img, blobs


def seam_centres(shape: tuple[int, int], keep: int, seed: int = 0, n_random: int = 30, radius: float = 5.0) -> list[tuple[float, float, int]]:
    """Blob centres on tile borders and corners (multiples of ``keep``), plus random ones, not touching."""
    h, w = shape
    rng = np.random.default_rng(seed)
    pts: list[tuple[float, float, int]] = []
    for gy in range(keep, h - 8, keep):
        for gx in range(keep, w - 8, keep):
            pts.append((gx, gy, 1 + len(pts) % 4))  # corner
            pts.append((gx + keep / 2 + 0.3, gy, 1 + len(pts) % 4))  # horizontal border
            pts.append((gx, gy + keep / 2 - 0.5, 1 + len(pts) % 4))  # vertical border
    for _ in range(n_random * 20):
        if len(pts) >= 3 * (h // keep) * (w // keep) + n_random:
            break
        pts.append((rng.uniform(8, w - 8), rng.uniform(8, h - 8), int(rng.integers(1, 5))))
    chosen: list[tuple[float, float, int]] = []
    for x, y, c in pts:
        lat = (x - LATTICE // 2 - 0.5) % LATTICE, (y - LATTICE // 2 - 0.5) % LATTICE
        near_lattice = min(lat[0], LATTICE - lat[0]) < radius + 2 and min(lat[1], LATTICE - lat[1]) < radius + 2
        inside = 8 <= x <= w - 8 and 8 <= y <= h - 8
        if inside and not near_lattice and all((x - a) ** 2 + (y - b) ** 2 > (2 * radius + 3) ** 2 for a, b, _ in chosen):
            chosen.append((x, y, c))
    return chosen


def write_slide(path: Path, img: np.ndarray, mpp: float | None = 0.5, names: tuple[str, ...] = ("Hoechst",), levels: int = 2) -> Path:
    data = np.stack([img] * len(names)) if img.ndim == 2 else img
    return write_ome_pyramid(path, data, mpp=mpp, names=names, levels=levels, tile=64)


def match(cells_x: np.ndarray, cells_y: np.ndarray, blobs: list[Blob]) -> np.ndarray:
    """Index of the nearest cell for every blob (−1 if none within 2 px)."""
    out = np.full(len(blobs), -1)
    for i, b in enumerate(blobs):
        if len(cells_x):
            d = np.hypot(cells_x - b.cx, cells_y - b.cy)
            j = int(np.argmin(d))
            if d[j] < 2:
                out[i] = j
    return out
