"""Hierarchical Perturbation (HiPe) saliency for the segmentation model, as the paper used it.

HiPe (Cooper et al.) finds what a network looks at with far fewer forward passes than exhaustive
occlusion: it occludes coarse windows first and refines only where the saliency found so far is
high. For this per-pixel model the output of interest is ``p = softmax(model(image))[target]``, a
map; a window's evidence is the per-pixel drop ``ReLU(p - p_perturbed)``, added inside that window.

The schedule, exactly as published: at depth d = 1, 2, … the grid has ``initial_cells * 2**d``
cells per side; candidate windows are 2×2 cells at a stride of one cell, including the windows
hanging over the edges (grid positions -1 … n-1, clipped). At depth 1 every window is evaluated;
after that only windows whose maximum accumulated saliency reaches the mid-range threshold
``min + (max - min) / 2`` of the accumulated map. It stops when no window is selected or the cells
are one pixel (max depth ``log2(min(H, W) / initial_cells)``).

With ``cell_mask`` (one cell's predicted pixels) the output of interest becomes the scalar mean of
``p`` over that cell, and a window's drop is spread over the window, as in HiPe for classifiers:
this answers "why is this cell CD8?" with evidence that may lie anywhere in the patch.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from core.progress import CancelToken, Progress, run_to_completion

PERTURBATIONS = ("fade", "mean", "blur")


@dataclass(frozen=True)
class HipeResult:
    """``saliency`` (H, W) and ``depth_maps`` (D, H, W) in input pixels; ``n_masks`` forward passes."""

    saliency: np.ndarray
    depth_maps: np.ndarray
    n_masks: int
    target: int


def _substrate(image: torch.Tensor, perturbation: str) -> torch.Tensor:
    """What replaces an occluded window: zeros ("fade"), the image mean, or a blurred copy."""
    if perturbation == "fade":
        return torch.zeros_like(image)
    if perturbation == "mean":
        return torch.full_like(image, float(image.mean()))
    if perturbation == "blur":
        # Separable Gaussian, sigma = 1/16 of the short side, applied per channel (works on one).
        h, w = image.shape[-2:]
        sigma = max(1.0, min(h, w) / 16)
        radius = int(3 * sigma)
        x = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
        k = torch.exp(-(x**2) / (2 * sigma**2))
        k = k / k.sum()
        c = image.shape[1]
        padded = F.pad(image, (radius, radius, radius, radius), mode="reflect")
        out = F.conv2d(padded, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
        return F.conv2d(out, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
    raise ValueError(f"Unknown perturbation {perturbation!r}; choose one of {', '.join(PERTURBATIONS)}.")


def _windows(n: int) -> list[tuple[int, int, int, int]]:
    """2×2-cell windows at stride one cell over an n×n grid, edges included: (y1, y2, x1, x2) in cells."""
    out = []
    for y in range(-1, n):
        for x in range(-1, n):
            out.append((max(0, y), min(y + 2, n), max(0, x), min(x + 2, n)))
    return out


def _target_output(model: torch.nn.Module, x: torch.Tensor, target: int, cell: torch.Tensor | None) -> torch.Tensor:
    p = torch.softmax(model(x).float(), dim=1)[:, target]  # (N, H, W)
    if cell is None:
        return p
    return (p * cell).sum(dim=(1, 2)) / cell.sum()  # (N,)


def hipe_job(
    model: torch.nn.Module,
    image: torch.Tensor,
    target: int,
    perturbation: str = "fade",
    initial_cells: int = 4,
    batch_size: int = 32,
    cell_mask: np.ndarray | None = None,
    cancel: CancelToken | None = None,
) -> Generator[Progress, None, HipeResult]:
    """HiPe as a job: yields Progress per batch, returns :class:`HipeResult` (see module docstring).

    ``image``: (1, 1, H, W) float tensor normalised as for inference. The model is put in eval
    mode for the call (BatchNorm statistics never change) and restored afterwards.
    """
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"image must be (1, C, H, W); got {tuple(image.shape)}")
    if perturbation not in PERTURBATIONS:
        raise ValueError(f"Unknown perturbation {perturbation!r}; choose one of {', '.join(PERTURBATIONS)}.")
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            device = next(model.parameters()).device
            image = image.to(device=device, dtype=torch.float32)
            _, _, h, w = image.shape
            cell = None
            if cell_mask is not None:
                cell = torch.as_tensor(np.asarray(cell_mask, dtype=np.float32), device=device)
                if cell.shape != (h, w) or float(cell.sum()) == 0:
                    raise ValueError("cell_mask must be a non-empty (H, W) mask of the cell's pixels.")
            substrate = _substrate(image, perturbation)
            base = _target_output(model, image, target, cell)  # (1, H, W) or (1,)
            max_depth = max(1, int(math.log2(min(h, w) / initial_cells)))
            saliency = torch.zeros((h, w), device=device)
            depth_maps = torch.zeros((max_depth, h, w), device=device)
            n_masks = 0
            cells = initial_cells
            for depth in range(1, max_depth + 1):
                cells *= 2
                threshold = saliency.min() + (saliency.max() - saliency.min()) / 2
                selected = []
                for y1, y2, x1, x2 in _windows(cells):
                    ys, ye = y1 * h // cells, y2 * h // cells
                    xs, xe = x1 * w // cells, x2 * w // cells
                    if ye <= ys or xe <= xs:
                        continue
                    if depth == 1 or saliency[ys:ye, xs:xe].max() >= threshold:
                        selected.append((ys, ye, xs, xe))
                if not selected:
                    break
                for start in range(0, len(selected), batch_size):
                    if cancel is not None:
                        cancel.check()
                    chunk = selected[start : start + batch_size]
                    keep = torch.ones((len(chunk), 1, h, w), device=device)
                    for i, (ys, ye, xs, xe) in enumerate(chunk):
                        keep[i, :, ys:ye, xs:xe] = 0
                    perturbed = image * keep + substrate * (1 - keep)
                    out = _target_output(model, perturbed, target, cell)
                    occluded = 1 - keep[:, 0]
                    if cell is None:
                        drop = F.relu(base - out) * occluded  # per-pixel drop inside each window
                    else:
                        drop = F.relu(base - out).view(-1, 1, 1) * occluded
                    total = drop.sum(dim=0)
                    saliency += total
                    depth_maps[depth - 1] += total
                    n_masks += len(chunk)
                    yield Progress(n_masks, n_masks + len(selected) - start - len(chunk), f"Depth {depth}")
            return HipeResult(
                saliency=saliency.cpu().numpy(),
                depth_maps=depth_maps.cpu().numpy(),
                n_masks=n_masks,
                target=target,
            )
    finally:
        model.train(was_training)


def hipe(
    model: torch.nn.Module,
    image: torch.Tensor,
    target: int,
    perturbation: str = "fade",
    initial_cells: int = 4,
    batch_size: int = 32,
    cell_mask: np.ndarray | None = None,
) -> HipeResult:
    """HiPe saliency in one call (the job without progress); see :func:`hipe_job`."""
    return run_to_completion(hipe_job(model, image, target, perturbation, initial_cells, batch_size, cell_mask))


def exhaustive_occlusion(
    model: torch.nn.Module, image: torch.Tensor, target: int, cells: int, perturbation: str = "fade",
    batch_size: int = 64,
) -> tuple[np.ndarray, int]:
    """Occlude every 2×2-cell window of an n×n grid (the reference HiPe approximates).

    Returns the accumulated per-pixel drop map and the number of forward passes used.
    """
    model.eval()
    with torch.inference_mode():
        image = image.float()
        _, _, h, w = image.shape
        substrate = _substrate(image, perturbation)
        base = _target_output(model, image, target, None)
        sal = torch.zeros((h, w))
        wins = [
            (y1 * h // cells, y2 * h // cells, x1 * w // cells, x2 * w // cells) for y1, y2, x1, x2 in _windows(cells)
        ]
        for start in range(0, len(wins), batch_size):
            chunk = wins[start : start + batch_size]
            keep = torch.ones((len(chunk), 1, h, w))
            for i, (ys, ye, xs, xe) in enumerate(chunk):
                keep[i, :, ys:ye, xs:xe] = 0
            out = _target_output(model, image * keep + substrate * (1 - keep), target, None)
            sal += (F.relu(base - out) * (1 - keep[:, 0])).sum(dim=0)
        return sal.numpy(), len(wins)
