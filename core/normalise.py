"""The one per-patch normalisation, used by training and inference alike (SPEC: min-max to [0, 1]).

Keeping a single implementation is what makes a model trained here behave the same in the app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

NORMALISATION = "per-patch min-max to [0, 1]"


def normalise_patch(patch: np.ndarray) -> np.ndarray:
    """Scale one patch (any shape, any dtype) to float32 in [0, 1] by its own min and max.

    A flat patch (max == min, e.g. empty glass) becomes all zeros rather than dividing by zero.
    """
    a = np.asarray(patch, dtype=np.float32)
    lo = float(a.min())
    hi = float(a.max())
    if hi <= lo:
        return np.zeros_like(a)
    return (a - lo) / (hi - lo)


def normalise_batch(batch: np.ndarray) -> np.ndarray:
    """Normalise each item of a (N, ...) batch on its own; returns float32."""
    a = np.asarray(batch, dtype=np.float32)
    flat = a.reshape(a.shape[0], -1)
    lo = flat.min(axis=1)
    hi = flat.max(axis=1)
    span = np.where(hi > lo, hi - lo, 1.0).astype(np.float32)
    out = (flat - lo[:, None]) / span[:, None]
    out[hi <= lo] = 0.0
    return out.reshape(a.shape)


def normalise_batch_tensor(batch: torch.Tensor) -> torch.Tensor:
    """:func:`normalise_batch` for a float32 tensor, on its device (the engine normalises where the
    model runs). The same float32 operations, so the result equals :func:`normalise_batch` exactly."""
    import torch

    flat = batch.reshape(batch.shape[0], -1)
    lo = flat.amin(dim=1)
    hi = flat.amax(dim=1)
    span = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    out = (flat - lo[:, None]) / span[:, None]
    out[hi <= lo] = 0.0
    return out.reshape(batch.shape)
