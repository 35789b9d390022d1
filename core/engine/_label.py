"""4-connected components of a sparse mask from its runs: ``ndimage.label``'s labels, 10× faster.

Cell extraction labels a window of three rows of tiles per block (2 Mpx), of which only ~5% is
nucleus. ``ndimage.label`` and ``ndimage.find_objects`` visit every pixel (about 5 and 4 ns each;
``np.flatnonzero`` on the int32 labels another 4), which made labelling the largest cost of the
pipeline. Here the mask is read once as runs of foreground along its rows; runs that overlap in
neighbouring rows are joined by ``scipy.sparse.csgraph``, and everything after works on the runs
and the foreground pixels alone. The labels are numbered as ``ndimage.label`` numbers them (in
the raster order of each component's first pixel), so everything downstream, ties included,
stays exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components


@dataclass
class Components:
    """The components of a 2-D mask: ``labels`` as ``ndimage.label(mask, 4-connectivity)`` gives it."""

    labels: np.ndarray  # int32 (H, W), 0 = background, 1..n
    n: int
    idx: np.ndarray  # flat indices of the mask's pixels, raster order (``np.flatnonzero(mask)``)
    y: np.ndarray  # their rows (int64)
    x: np.ndarray  # their columns (int64)
    #: (n + 1, 4) int64: y0, y1, x0, x1 of each component's bounding box (half-open; row 0 unused),
    #: the slices ``ndimage.find_objects`` gives.
    box: np.ndarray
    base_ids: np.ndarray  # the label of every mask pixel, in the order of ``idx`` (as labelled)

    def slices(self, i: int) -> tuple[slice, slice]:
        y0, y1, x0, x1 = self.box[i]
        return slice(int(y0), int(y1)), slice(int(x0), int(x1))


def label4(mask: np.ndarray) -> Components:
    """The 4-connected components of the bool 2-D ``mask``."""
    h, w = mask.shape
    labels = np.zeros((h, w), dtype=np.int32)
    idx = np.flatnonzero(mask)
    if len(idx) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Components(labels, 0, idx, empty, empty.copy(), np.zeros((1, 4), dtype=np.int64), empty.astype(np.int32))
    y, x = np.divmod(idx, w)
    # Runs: a pixel starts one unless it follows its left neighbour in the same row.
    first = np.flatnonzero(np.concatenate(([True], (np.diff(idx) != 1) | (x[1:] == 0))))
    n_runs = len(first)
    lens = np.diff(np.append(first, len(idx)))
    starts = idx[first]
    ends = starts + lens
    rows, x0 = y[first], x[first]
    # Runs of the row above that overlap run b: shifted down one row, they are the runs whose end
    # lies after b's start and whose start lies before b's end (runs are sorted and disjoint, and
    # a shifted run of any other row lies in another row).
    lo = np.searchsorted(ends + w, starts, side="right")
    hi = np.searchsorted(starts + w, ends, side="left")
    n_links = np.maximum(hi - lo, 0)
    below = np.repeat(np.arange(n_runs), n_links)
    first_link = np.cumsum(n_links) - n_links
    above = np.repeat(lo - first_link, n_links) + np.arange(len(below))
    graph = csr_matrix((np.ones(len(below), dtype=np.int8), (above, below)), shape=(n_runs, n_runs))
    n, comp = connected_components(graph, directed=False)
    # Number components by their first run, i.e. by the raster order of their first pixel. The
    # graph search already numbers them so (each new search starts at the lowest unseen run);
    # that is checked, cheaply, rather than relied on.
    seen = np.maximum.accumulate(comp)
    if comp[0] == 0 and (comp[1:] <= seen[:-1] + 1).all():
        run_label = (comp + 1).astype(np.int32)
    else:
        _, first_run = np.unique(comp, return_index=True)
        number = np.empty(n, dtype=np.int32)
        number[np.argsort(first_run, kind="stable")] = np.arange(1, n + 1, dtype=np.int32)
        run_label = number[comp]
    base_ids = np.repeat(run_label, lens)
    labels.ravel()[idx] = base_ids
    box = np.zeros((n + 1, 4), dtype=np.int64)
    box[:, 0] = h
    box[:, 2] = w
    np.minimum.at(box[:, 0], run_label, rows)
    np.maximum.at(box[:, 1], run_label, rows + 1)
    np.minimum.at(box[:, 2], run_label, x0)
    np.maximum.at(box[:, 3], run_label, x0 + lens)
    return Components(labels, int(n), idx, y, x, box, base_ids)
