"""Batches that survive a full GPU (halve the batch on out-of-memory), and the batched class raster.

The halving is a small pure function of a ``predict`` callable, so it is tested on the CPU with a
callable that raises the same error a GPU would.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from core.errors import CoreError

Outputs = tuple[np.ndarray, ...]


def is_out_of_memory(err: BaseException) -> bool:
    """True for CUDA (and other accelerator) out-of-memory errors."""
    if isinstance(err, torch.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


def predict_with_backoff(
    predict: Callable[[np.ndarray], Outputs], batch: np.ndarray, batch_size: int
) -> tuple[Outputs, int]:
    """Run ``predict`` over ``batch`` in chunks of ``batch_size``; on out-of-memory halve it and retry.

    Returns the concatenated outputs and the batch size that worked, for the next batches. Raises
    CoreError when even one tile does not fit.
    """
    size = max(1, batch_size)
    done: list[Outputs] = []
    start = 0
    while start < len(batch):
        try:
            done.append(predict(batch[start : start + size]))
            start += size
        except (RuntimeError, torch.OutOfMemoryError) as err:
            if not is_out_of_memory(err):
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            chunk = min(size, len(batch) - start)
            if chunk == 1:
                raise CoreError(
                    "The GPU has not enough free memory for even one tile. Close other programs using "
                    "the GPU or analyse on the CPU (--device cpu)."
                ) from None
            while size >= chunk:  # halve the configured size until the chunk actually shrinks
                size //= 2
    if len(done) == 1:
        return done[0], size
    return tuple(np.concatenate([d[i] for d in done]) for i in range(len(done[0]))), size


def batch_class_raster(labels: torch.Tensor, factor: int, n_classes: int) -> torch.Tensor:
    """:func:`core.engine._extract.tile_class_raster` for a whole batch (N, K, K) on its device:
    per ``factor``² block the most frequent positive class, 0 where there is none (ties: the
    lowest class), uint8 (N, K/f, K/f). One pass per class over the batch, not per tile."""
    n, k = labels.shape[0], labels.shape[1] // factor
    blocks = labels[:, : k * factor, : k * factor].reshape(n, k, factor, k, factor)
    counts = [torch.zeros((n, k, k), dtype=torch.int32, device=labels.device)]
    counts += [(blocks == c).sum(dim=(2, 4), dtype=torch.int32) for c in range(1, n_classes)]
    return torch.stack(counts, dim=1).argmax(dim=1).to(torch.uint8)


def cpu_classes(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`core.models.runtime.classes_from_logits` in numpy, for the CPU path's worker thread
    (numpy runs single-threaded and releases the GIL; torch ops there would share the model's
    OpenMP threads). One pass per class over contiguous planes; ties: the lowest class."""
    logits = np.ascontiguousarray(logits, dtype=np.float32)
    top = logits[:, 0].copy()
    cls = np.zeros(top.shape, dtype=np.uint8)
    for c in range(1, logits.shape[1]):
        np.copyto(cls, np.uint8(c), where=logits[:, c] > top)
        np.maximum(top, logits[:, c], out=top)
    total = np.zeros_like(top)
    for c in range(logits.shape[1]):
        total += np.exp(logits[:, c] - top)
    return cls, np.reciprocal(total, out=total)


def cpu_class_raster(labels: np.ndarray, factor: int, n_classes: int) -> np.ndarray:
    """:func:`batch_class_raster` in numpy: uint8 (N, K/f, K/f)."""
    n, k = labels.shape[0], labels.shape[1] // factor
    blocks = labels[:, : k * factor, : k * factor].reshape(n, k, factor, k, factor)
    best = np.zeros((n, k, k), dtype=np.uint8)
    best_count = np.zeros((n, k, k), dtype=np.int32)
    for c in range(1, n_classes):
        count = (blocks == c).sum(axis=(2, 4), dtype=np.int32)
        np.copyto(best, np.uint8(c), where=count > best_count)
        np.maximum(best_count, count, out=best_count)
    return best


def cpu_post(logits: np.ndarray, factor: int, n_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CPU path's post-processing of a batch of logits (N, C, K, K): the argmax class, its
    probability and the class raster, as :func:`cpu_classes` and :func:`cpu_class_raster` give them,
    except that the probability is computed (bit for bit the same) only where the class is
    positive and is 0 elsewhere: cell extraction reads it only there, and nuclei are a small
    share of the pixels, so most of the exp passes are saved. The raster counts only those pixels
    too (one ``bincount`` instead of a pass per class)."""
    n, c, h, w = logits.shape
    top = logits[:, 0].copy()
    cls = np.zeros(top.shape, dtype=np.uint8)
    for k in range(1, c):
        np.copyto(cls, np.uint8(k), where=logits[:, k] > top)
        np.maximum(top, logits[:, k], out=top)
    fg = np.flatnonzero(cls)
    prob = np.zeros(top.shape, dtype=np.float32)
    item, pixel = np.divmod(fg, h * w)
    yy, xx = np.divmod(pixel, w)
    top_fg = top.ravel()[fg]
    total = np.zeros(len(fg), dtype=np.float32)
    for k in range(c):
        total += np.exp(logits[item, k, yy, xx] - top_fg)
    prob.ravel()[fg] = np.reciprocal(total, out=total)
    # Raster: per factor² block, the most frequent positive class (ties: the lowest), 0 for none.
    kb = h // factor
    inside = (yy < kb * factor) & (xx < kb * factor)
    block = (item * kb + yy // factor) * kb + xx // factor
    counts = np.bincount(block[inside] * n_classes + cls.ravel()[fg][inside], minlength=n * kb * kb * n_classes)
    counts = counts.reshape(n, kb, kb, n_classes)[..., 1:]
    raster = (counts.argmax(axis=-1) + 1).astype(np.uint8)
    raster[counts.max(axis=-1) == 0] = 0
    return cls, prob, raster
