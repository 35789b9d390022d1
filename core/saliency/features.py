"""Feature visualisation (the paper's eq. 2): an input optimised so each quadrant shows one class.

Start from an image set to the training set's mean (normalised units), then run SGD (lr 1.0) on

    loss = 1/(d²C) Σ_c Σ_xy [ReLU(ρ_c·|µ_c − 1|) − µ_c·ρ_c]  +  Var_c( 1/d² Σ_xy [ReLU(ρ_c·|µ_c − 1|) − µ_c·ρ_c] )

where ρ are the logits of the C positive classes, µ_c is one in class c's quadrant and zero
elsewhere: each class's logits are maximised in its own quadrant, pushed down (only while positive,
hence the ReLU) elsewhere, and the variance keeps easy classes from dominating. The image is clamped
to [0, 1] after each step, the range the model saw in training (our choice; the paper is silent).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from core.classes import POSITIVE_CLASSES
from core.progress import CancelToken, Progress


@dataclass(frozen=True)
class FeatureVisResult:
    """``image`` (d, d) float32 in [0, 1]; ``losses`` one value per step; ``classes`` by quadrant."""

    image: np.ndarray
    losses: np.ndarray
    classes: tuple[int, ...]


def quadrant_masks(size: int, n: int) -> torch.Tensor:
    """(n, size, size) masks: quadrant k (row-major: TL, TR, BL, BR) is one in mask k."""
    if n > 4:
        raise ValueError("at most four classes fit the quadrants")
    m = torch.zeros((n, size, size))
    half = size // 2
    for k in range(n):
        y, x = divmod(k, 2)
        m[k, y * half : (y + 1) * half, x * half : (x + 1) * half] = 1
    return m


def feature_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Eq. 2 for positive-class logits (C, d, d) and their quadrant masks (C, d, d)."""
    c, d, _ = logits.shape
    per_pixel = torch.relu(logits * (masks - 1).abs()) - masks * logits
    per_class = per_pixel.sum(dim=(1, 2)) / (d * d)
    return per_class.sum() / c + per_class.var(unbiased=False)


def feature_visualisation_job(
    model: torch.nn.Module,
    size: int = 256,
    steps: int = 10_000,
    lr: float = 1.0,
    start_value: float = 0.5,
    classes: Sequence[int] = POSITIVE_CLASSES,
    seed: int = 0,
    cancel: CancelToken | None = None,
    report_every: int = 10,
) -> Generator[Progress, None, FeatureVisResult]:
    """Optimise the input image; yields Progress every ``report_every`` steps; eval mode throughout.

    ``start_value`` is the training set's mean normalised intensity (the model card records it
    when known). The model's own weights never change (only the image requires gradients).
    """
    torch.manual_seed(seed)
    was_training = model.training
    model.eval()
    params = [p.requires_grad_(False) for p in model.parameters()]
    device = params[0].device if params else torch.device("cpu")
    image = torch.full((1, 1, size, size), float(start_value), device=device, requires_grad=True)
    masks = quadrant_masks(size, len(classes)).to(device)
    idx = torch.as_tensor(list(classes), device=device)
    optimiser = torch.optim.SGD([image], lr=lr)
    losses = np.zeros(steps, dtype=np.float32)
    try:
        for step in range(steps):
            if cancel is not None and step % report_every == 0:
                cancel.check()
            optimiser.zero_grad()
            logits = model(image)[0].float().index_select(0, idx)
            loss = feature_loss(logits, masks)
            loss.backward()
            optimiser.step()
            with torch.no_grad():
                image.clamp_(0.0, 1.0)
            losses[step] = float(loss.detach())
            if (step + 1) % report_every == 0 or step + 1 == steps:
                yield Progress(step + 1, steps, f"Step {step + 1} of {steps}, loss {losses[step]:.4f}")
    finally:
        for p in params:
            p.requires_grad_(True)
        model.train(was_training)
    return FeatureVisResult(image=image.detach()[0, 0].cpu().numpy(), losses=losses, classes=tuple(classes))
