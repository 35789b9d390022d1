"""Cells from the model's class maps, each reported exactly once across tile and block borders.

The rule (one block = one row of tiles; model px; K = kept tile size):

1. A block's cells are the connected components (4-connected) of each positive class of the
   argmax map, computed on a *window* = the block's row plus the rows above and below, in column
   chunks plus one tile column each side. Every window pixel comes from the kept centres of the
   tiles, stitched edge to edge (each model px is predicted by exactly one tile).
2. A component belongs to the block (and chunk) that contains its centroid: rows
   ``[r·K, (r+1)·K)``, columns ``[a·K, b·K)``. The test is done in exact integer arithmetic, so
   two windows can never both claim (or both miss) one cell.
3. A component that touches a window edge cut inside the slide extends more than one tile beyond
   the owned area: it is no cell (a cell is far smaller than K ≈ 44 µm) and is dropped in every
   window, so it is never counted twice either.
4. Components smaller than the minimum cell area are noise, larger than the maximum no cell:
   both are dropped.

Hence a cell smaller than one tile is found complete in the window of its owner and counted once,
wherever tile and block borders cut it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.measure import label

#: Tile outputs: (row, col) -> (argmax class uint8 K×K, its probability float32 K×K).
TileOutputs = dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]

#: Tile columns per labelling chunk (bounds memory on wide slides).
CHUNK_COLS = 16


@dataclass
class RawCells:
    """Cells in model px: continuous centroid (pixel k spans [k, k+1)), class, mean probability, pixels."""

    cx: np.ndarray
    cy: np.ndarray
    class_id: np.ndarray
    probability: np.ndarray
    n_px: np.ndarray

    @classmethod
    def empty(cls) -> RawCells:
        f, i = np.zeros(0, np.float64), np.zeros(0, np.int64)
        return cls(f, f.copy(), i, f.copy(), i.copy())

    @classmethod
    def concat(cls, parts: list[RawCells]) -> RawCells:
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, n) for p in parts]) for n in ("cx", "cy", "class_id", "probability", "n_px")))

    def order(self) -> RawCells:
        """Sorted by (cy, cx, class) so a block's table does not depend on chunking."""
        idx = np.lexsort((self.class_id, self.cx, self.cy))
        return RawCells(self.cx[idx], self.cy[idx], self.class_id[idx], self.probability[idx], self.n_px[idx])


def extract_block(
    tiles: TileOutputs, row: int, grid_shape: tuple[int, int], keep: int, min_px: int, max_px: int
) -> RawCells:
    """Cells owned by tile row ``row`` (see the module rule), of ``min_px``–``max_px`` pixels.

    ``tiles`` must hold rows row±1."""
    rows_total, cols_total = grid_shape
    owned_cols = sorted(c for (r, c) in tiles if r == row)
    if not owned_cols:
        return RawCells.empty()
    r0, r1 = max(row - 1, 0), min(row + 1, rows_total - 1)
    parts = []
    for a in range(owned_cols[0], owned_cols[-1] + 1, CHUNK_COLS):
        b = min(a + CHUNK_COLS, owned_cols[-1] + 1)
        if not any(a <= c < b for c in owned_cols):
            continue
        c0, c1 = max(a - 1, 0), min(b, cols_total - 1)
        lab = np.zeros(((r1 - r0 + 1) * keep, (c1 - c0 + 1) * keep), dtype=np.uint8)
        prob = np.zeros(lab.shape, dtype=np.float32)
        for r in range(r0, r1 + 1):
            for c in range(c0, c1 + 1):
                t = tiles.get((r, c))
                if t is not None:
                    ys, xs = (r - r0) * keep, (c - c0) * keep
                    lab[ys : ys + keep, xs : xs + keep] = t[0]
                    prob[ys : ys + keep, xs : xs + keep] = t[1]
        cuts = (r0 > 0, r1 < rows_total - 1, c0 > 0, c1 < cols_total - 1)  # top, bottom, left, right
        owned_y = (row * keep - r0 * keep, (row + 1) * keep - r0 * keep)
        owned_x = (a * keep - c0 * keep, b * keep - c0 * keep)
        part = _components(lab, prob, cuts, owned_y, owned_x, min_px, max_px)
        if part is not None:
            part.cx += c0 * keep
            part.cy += r0 * keep
            parts.append(part)
    return RawCells.concat(parts).order()


def _components(
    lab: np.ndarray,
    prob: np.ndarray,
    cuts: tuple[bool, bool, bool, bool],
    owned_y: tuple[int, int],
    owned_x: tuple[int, int],
    min_px: int,
    max_px: int,
) -> RawCells | None:
    """Owned, complete, cell-sized components of every positive class in one window (window px).

    One labelling pass: 4-connected regions of equal class value, so touching cells of different
    classes stay apart.
    """
    if not lab.any():
        return None
    labels = label(lab, background=0, connectivity=1)
    n = int(labels.max())
    width = lab.shape[1]
    idx = np.flatnonzero(labels)
    ids = labels.ravel()[idx]
    count = np.bincount(ids, minlength=n + 1).astype(np.int64)
    sum_y = np.rint(np.bincount(ids, weights=idx // width, minlength=n + 1)).astype(np.int64)
    sum_x = np.rint(np.bincount(ids, weights=idx % width, minlength=n + 1)).astype(np.int64)
    sum_p = np.bincount(ids, weights=prob.ravel()[idx], minlength=n + 1)
    cls = np.zeros(n + 1, dtype=np.int64)
    cls[ids] = lab.ravel()[idx]
    keep = np.ones(n + 1, dtype=bool)
    keep[0] = False
    for cut, edge in zip(cuts, (labels[0], labels[-1], labels[:, 0], labels[:, -1]), strict=True):
        if cut:
            keep[np.unique(edge)] = False
    keep[1:] &= (count[1:] >= min_px) & (count[1:] <= max_px)
    # Centroid (continuous) = sum/n + 0.5 lies in [lo, hi)  <=>  2·lo·n ≤ 2·sum + n < 2·hi·n (exact).
    for total, (lo, hi) in ((sum_y, owned_y), (sum_x, owned_x)):
        twice = 2 * total + count
        keep &= (2 * lo * count <= twice) & (twice < 2 * hi * count)
    sel = np.flatnonzero(keep)
    if sel.size == 0:
        return None
    n_px = count[sel]
    return RawCells(
        cx=sum_x[sel] / n_px + 0.5,
        cy=sum_y[sel] / n_px + 0.5,
        class_id=cls[sel],
        probability=sum_p[sel] / n_px,
        n_px=n_px,
    )


def tile_class_raster(labels: np.ndarray, factor: int, n_classes: int) -> np.ndarray:
    """Raster of a K×K class map (uint8, K/f × K/f): per ``factor``×``factor`` block, the most frequent
    positive class, 0 where the block has none. Cells stay visible in an overview even when they
    cover less than half a raster pixel."""
    k = labels.shape[0] // factor
    blocks = labels[: k * factor, : k * factor].reshape(k, factor, k, factor)
    counts = np.stack([np.zeros((k, k), np.int64)] + [(blocks == c).sum(axis=(1, 3)) for c in range(1, n_classes)])
    return counts.argmax(axis=0).astype(np.uint8)
