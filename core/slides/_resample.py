"""Separable resampling with exact area weights, for reads at a pixel size no level has.

A resample along one axis is a small matrix ``W`` (n_out x n_in); a channels-first block is
resampled as ``Wy @ block @ Wx.T``. For shrinking (factor >= 1) each output pixel is the exact
area average of the input pixels it covers, including fractional overlaps, so a 2x read equals
the 2x2 block mean. For enlarging (factor < 1) it is linear interpolation between pixel centres.
Matrices instead of ``scipy.ndimage.zoom`` because they handle a fractional start offset and a
non-integer factor with no edge shifts, and a 256-pixel tile costs two small matmuls.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["axis_weights", "resample", "input_span"]


def input_span(start: float, factor: float, n_out: int) -> tuple[int, int]:
    """Integer input pixel range [i0, i1) that a resample of ``n_out`` pixels reads.

    ``start`` is the input coordinate (pixel edges, 0 = left edge of pixel 0) of the first
    output pixel's left edge; ``factor`` is input pixels per output pixel.
    """
    end = start + factor * n_out
    if factor >= 1.0:
        return math.floor(start), max(math.floor(start) + 1, math.ceil(end))
    return math.floor(start) - 1, math.ceil(end) + 1  # neighbours for interpolation


def axis_weights(start: float, factor: float, n_out: int, n_in: int) -> np.ndarray:
    """Weights (n_out, n_in) float32; ``start`` is relative to input pixel 0's left edge."""
    w = np.zeros((n_out, n_in), dtype=np.float64)
    edges = start + factor * np.arange(n_out + 1, dtype=np.float64)
    if factor >= 1.0:
        cols = np.arange(n_in, dtype=np.float64)
        lo = np.maximum(edges[:-1, None], cols[None, :])
        hi = np.minimum(edges[1:, None], cols[None, :] + 1.0)
        w = np.clip(hi - lo, 0.0, None) / factor
    else:
        centres = (edges[:-1] + edges[1:]) / 2.0 - 0.5  # in input index units
        i0 = np.floor(centres).astype(np.int64)
        t = centres - i0
        rows = np.arange(n_out)
        np.add.at(w, (rows, np.clip(i0, 0, n_in - 1)), 1.0 - t)
        np.add.at(w, (rows, np.clip(i0 + 1, 0, n_in - 1)), t)
    return w.astype(np.float32)


def resample(
    block: np.ndarray,
    start_xy: tuple[float, float],
    factor_xy: tuple[float, float],
    size_wh: tuple[int, int],
) -> np.ndarray:
    """Resample a channels-first block (C, H, W) to (C, h, w) float32.

    ``start_xy`` is where the output's top-left corner lies in the block, in block pixels;
    ``factor_xy`` is block pixels per output pixel along x and y.
    """
    c, n_in_y, n_in_x = block.shape
    w_out, h_out = size_wh
    wx = axis_weights(start_xy[0], factor_xy[0], w_out, n_in_x)
    wy = axis_weights(start_xy[1], factor_xy[1], h_out, n_in_y)
    data = block.astype(np.float32, copy=False)
    out = np.matmul(np.matmul(wy[None], data), wx.T[None])
    return np.ascontiguousarray(out, dtype=np.float32).reshape(c, h_out, w_out)
