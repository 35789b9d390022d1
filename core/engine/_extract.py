"""Cells from the model's class maps: one nucleus is one cell, reported exactly once across seams.

Why instances and not components of one class: a U-Net's class map is noisy *inside* a nucleus
(some pixels CD3, some CD8_CD3HI), and lymphocytes touch most where they matter most, in dense
margin infiltrates. Components of equal class turn one mixed nucleus into two cells and two
touching nuclei of one class into one; both bias densities exactly where the scores are read.
So cells are found in two steps:

1. **Nuclei, class-blind.** The model's lymphocyte foreground (any positive class) is split into
   4-connected components; a component that may hold two nuclei is split by a watershed on its
   distance transform, seeded by the maxima of that distance that stand out by ``depth_px``
   (an h-maxima test): two touching round nuclei leave a narrowing at least that deep between
   their centres, while the ragged border of a single nucleus does not.
2. **One class per nucleus** from its pixels' probabilities: each pixel votes for its argmax class
   with its softmax probability; the class with the largest vote wins. ``confidence`` is that
   vote divided by the nucleus's pixel count (1 = every pixel called that class with certainty);
   ``probability`` is the mean softmax of the winning class over the pixels that chose it.

Ownership (one block = one row of tiles; model px; K = kept tile size): nuclei are found on a
*window* = the block's row plus the rows above and below, in column chunks plus one tile column
each side, stitched from the tiles' kept centres (each model px predicted by exactly one tile).

- A nucleus belongs to the block (and chunk) that contains its centroid: rows ``[r·K, (r+1)·K)``,
  columns ``[a·K, b·K)``, tested in exact integer arithmetic, so two windows can never both claim
  (or both miss) one nucleus.
- A nucleus that touches a window edge cut inside the slide reaches more than one tile beyond the
  owned area: it is no cell (a nucleus is far smaller than K ≈ 44 µm) and is dropped in every
  window. The split of a nucleus depends only on its own component near it, and the owned area
  lies a whole tile inside the window, so both windows see the same nuclei there. (Limit: a chain
  of touching nuclei longer than a tile may be split differently where a window cuts it.)
- Nuclei smaller than the minimum cell area are noise, larger than the maximum no cell, and one
  whose mean Hoechst is below the slide's stroma level no nucleus (see ``AnalysisParams``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.segmentation import watershed

from core.engine._label import Components, label4
from core.engine._peaks import local_maxima

#: Tile outputs: (row, col) -> (argmax class uint8 K×K, its probability float32 K×K[, the raw
#: nuclear stain float32 K×K, the model's input before normalisation]).
TileOutputs = dict[tuple[int, int], tuple[np.ndarray, ...]]

#: Tile columns per labelling chunk (bounds memory on wide slides).
CHUNK_COLS = 16
#: 4-connectivity, as QuPath and the labeller count pixels of one nucleus.
_FOUR = ndimage.generate_binary_structure(2, 1)


@dataclass(frozen=True)
class Split:
    """How touching nuclei are separated (model px). ``depth_px`` 0 = never split.

    Only components that may hold several nuclei are examined (the watershed costs ~8 ms per
    component, the test below microseconds for all): at least ``min_px`` pixels (two of the
    smallest nuclei that can be split), and either elongated (major/minor axis of the component's
    second moments above ``elongation``: two touching round nuclei whose centres lie ≥ 0.65 radii
    apart are) or larger than ``round_px`` (a compact clump of three or more).
    """

    depth_px: float = 0.0
    min_px: int = 0
    round_px: int = 0
    elongation: float = 1.3
    #: A split is kept only if every part is at least this big (a nucleus, not a ragged edge).
    min_part_px: int = 0


@dataclass
class RawCells:
    """Cells in model px: continuous centroid (pixel k spans [k, k+1)), class, mean probability of
    the class, confidence (share of the nucleus's probability mass voting for it), pixels."""

    cx: np.ndarray
    cy: np.ndarray
    class_id: np.ndarray
    probability: np.ndarray
    n_px: np.ndarray
    confidence: np.ndarray

    FIELDS = ("cx", "cy", "class_id", "probability", "n_px", "confidence")

    @classmethod
    def empty(cls) -> RawCells:
        f, i = np.zeros(0, np.float64), np.zeros(0, np.int64)
        return cls(f, f.copy(), i, f.copy(), i.copy(), f.copy())

    @classmethod
    def concat(cls, parts: list[RawCells]) -> RawCells:
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, n) for p in parts]) for n in cls.FIELDS))

    def order(self) -> RawCells:
        """Sorted by (cy, cx, class) so a block's table does not depend on chunking."""
        idx = np.lexsort((self.class_id, self.cx, self.cy))
        return RawCells(*(getattr(self, n)[idx] for n in self.FIELDS))


def extract_block(
    tiles: TileOutputs, row: int, grid_shape: tuple[int, int], keep: int, min_px: int, max_px: int,
    split: Split = Split(), min_stain: float = 0.0,
) -> RawCells:  # fmt: skip
    """Cells owned by tile row ``row`` (see the module rule), of ``min_px``–``max_px`` pixels and,
    where the tiles carry the stain, a mean stain of at least ``min_stain``.

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
        stain = np.zeros(lab.shape, dtype=np.float32) if min_stain > 0 else None
        for r in range(r0, r1 + 1):
            for c in range(c0, c1 + 1):
                t = tiles.get((r, c))
                if t is not None:
                    ys, xs = (r - r0) * keep, (c - c0) * keep
                    lab[ys : ys + keep, xs : xs + keep] = t[0]
                    prob[ys : ys + keep, xs : xs + keep] = t[1]
                    if stain is not None:
                        stain[ys : ys + keep, xs : xs + keep] = t[2]
        cuts = (r0 > 0, r1 < rows_total - 1, c0 > 0, c1 < cols_total - 1)  # top, bottom, left, right
        owned_y = (row * keep - r0 * keep, (row + 1) * keep - r0 * keep)
        owned_x = (a * keep - c0 * keep, b * keep - c0 * keep)
        part = find_cells(lab, prob, cuts, owned_y, owned_x, min_px, max_px, split, stain, min_stain)
        if part is not None:
            part.cx += c0 * keep
            part.cy += r0 * keep
            parts.append(part)
    return RawCells.concat(parts).order()


def nuclei(
    lab: np.ndarray, split: Split, focus: tuple[tuple[int, int], tuple[int, int]] | None = None
) -> tuple[Components, int]:
    """Nucleus instances of the positive-class foreground of ``lab``: its components (whose
    ``labels`` are split in place, int32, 0 = none) and the number of nuclei.

    ``focus``: ((y0, y1), (x0, x1)); only components whose bounding box meets it are split (the
    others belong to another window, which splits them itself).
    """
    comp = label4(lab > 0)
    labels, n = comp.labels, comp.n
    if split.depth_px <= 0 or n == 0:
        return comp, n
    next_id = n + 1
    for i in _may_hold_several(comp, split, _meets(comp.box, focus)):
        window = labels[comp.slices(i)]
        inside = window == i
        mask = np.zeros((inside.shape[0] + 2, inside.shape[1] + 2), dtype=bool)
        mask[1:-1, 1:-1] = inside
        dist = ndimage.distance_transform_edt(mask)
        peaks, n_peaks = _seeds(dist, split.depth_px)
        if n_peaks < 2:
            continue
        parts = watershed(-dist, peaks, mask=mask)[1:-1, 1:-1]
        if split.min_part_px and np.bincount(parts.ravel(), minlength=n_peaks + 1)[1:].min() < split.min_part_px:
            continue  # a part too small for a nucleus: the component's outline is ragged, not two nuclei
        for k in range(2, n_peaks + 1):  # part 1 keeps the component's id
            window[inside & (parts == k)] = next_id
            next_id += 1
    return comp, next_id - 1


def _seeds(dist: np.ndarray, depth: float, samples: int = 24) -> tuple[np.ndarray, int]:
    """Watershed seeds of one component: the maxima of its distance transform ``dist`` that stand
    out by at least ``depth`` (an h-maxima test, 10× cheaper than a grey-level reconstruction).

    Local maxima are taken highest first; one whose straight path to a higher one never dips
    ``depth`` below itself belongs to that one's dome (plateaus and the saddle between two nuclei
    are such maxima) and seeds nothing; the others each seed one nucleus. For round nuclei the
    straight path between two maxima passes their saddle, so this is the h-maxima answer.
    Returns (int32 marker image, number of seeds).
    """
    peaks = local_maxima(dist, max(1, int(depth)), depth)
    markers = np.zeros(dist.shape, dtype=np.int32)
    k = len(peaks)
    if k < 2:
        return markers, k
    height = dist[peaks[:, 0], peaks[:, 1]]
    order = np.argsort(-height, kind="stable")
    peaks, height = peaks[order], height[order]
    t = np.linspace(0.0, 1.0, samples)
    dy = peaks[None, :, 0] - peaks[:, None, 0]  # (k, k): from i to j
    dx = peaks[None, :, 1] - peaks[:, None, 1]
    ys = np.rint(peaks[:, None, None, 0] + dy[..., None] * t).astype(np.intp)
    xs = np.rint(peaks[:, None, None, 1] + dx[..., None] * t).astype(np.intp)
    neck = dist[ys, xs].min(axis=2)  # lowest point of the straight path i -> j
    founders: list[int] = []
    for i in range(k):
        # i is the lower of i and every earlier j: its dome joins j's if the path dips < depth
        if i == 0 or not (height[i] - neck[i, :i] < depth).any():
            founders.append(i)
    markers[peaks[founders, 0], peaks[founders, 1]] = np.arange(1, len(founders) + 1)
    return markers, len(founders)


def _meets(box: np.ndarray, focus: tuple[tuple[int, int], tuple[int, int]] | None) -> np.ndarray:
    """bool per component (row 0: background, False): its bounding box meets ``focus`` (all: None)."""
    if focus is None:
        out = np.ones(len(box), dtype=bool)
    else:
        (fy0, fy1), (fx0, fx1) = focus
        out = (box[:, 0] < fy1) & (box[:, 1] > fy0) & (box[:, 2] < fx1) & (box[:, 3] > fx0)
    out[0] = False
    return out


def _may_hold_several(comp: Components, split: Split, among: np.ndarray) -> np.ndarray:
    """Ids of the components worth a watershed (see :class:`Split`), of those ``among`` marks.

    The moments are summed over those components' pixels alone, in the same order as over all
    pixels, so each component's numbers are the same to the last bit."""
    n, ids = comp.n, comp.base_ids
    count = np.bincount(ids, minlength=n + 1).astype(np.float64)
    count[0] = 1.0
    among = among & (count >= max(split.min_px, 2))
    take = among[ids]
    ids = ids[take]
    y = comp.y[take].astype(np.float64)
    x = comp.x[take].astype(np.float64)
    my = np.bincount(ids, weights=y, minlength=n + 1) / count
    mx = np.bincount(ids, weights=x, minlength=n + 1) / count
    dy, dx = y - my[ids], x - mx[ids]
    vyy = np.bincount(ids, weights=dy * dy, minlength=n + 1) / count
    vxx = np.bincount(ids, weights=dx * dx, minlength=n + 1) / count
    vxy = np.bincount(ids, weights=dx * dy, minlength=n + 1) / count
    half_trace, root = (vxx + vyy) / 2, np.sqrt(((vxx - vyy) / 2) ** 2 + vxy**2)
    major, minor = half_trace + root, np.maximum(half_trace - root, 1e-9)
    elongated = major > split.elongation**2 * minor
    candidate = among & (elongated | (count > split.round_px))
    return np.flatnonzero(candidate)


def find_cells(
    lab: np.ndarray,
    prob: np.ndarray,
    cuts: tuple[bool, bool, bool, bool],
    owned_y: tuple[int, int],
    owned_x: tuple[int, int],
    min_px: int,
    max_px: int,
    split: Split = Split(),
    stain: np.ndarray | None = None,
    min_stain: float = 0.0,
) -> RawCells | None:
    """Owned, complete, cell-sized nuclei in one window (window px), each with one class.

    ``lab``/``prob``: argmax class and its probability; ``cuts``: whether the top, bottom, left and
    right edges are cut inside the slide; ``owned_y``/``owned_x``: the owned half-open ranges.
    A whole image is one window with no cuts owning everything. ``stain`` (the raw nuclear stain
    per pixel), if given: a nucleus whose mean stain is below ``min_stain`` is no cell (the
    model called a lymphocyte where there is no DNA, e.g. on stroma fibres).
    """
    if not lab.any():
        return None
    comp, n = nuclei(lab, split, (owned_y, owned_x))
    if n == 0:
        return None
    # Only components whose box meets the owned area can own a cell (a centroid lies in its
    # box): the sums run over their pixels alone, in the same order, so they are unchanged.
    take = _meets(comp.box, (owned_y, owned_x))[comp.base_ids]
    labels, idx = comp.labels, comp.idx[take]
    ids = labels.ravel()[idx]
    count = np.bincount(ids, minlength=n + 1).astype(np.int64)
    sum_y = np.rint(np.bincount(ids, weights=comp.y[take], minlength=n + 1)).astype(np.int64)
    sum_x = np.rint(np.bincount(ids, weights=comp.x[take], minlength=n + 1)).astype(np.int64)
    n_classes = int(lab.max()) + 1
    cls_px = lab.ravel()[idx].astype(np.int64)
    votes = np.bincount(ids * n_classes + cls_px, weights=prob.ravel()[idx], minlength=(n + 1) * n_classes)
    votes = votes.reshape(n + 1, n_classes)
    hits = np.bincount(ids * n_classes + cls_px, minlength=(n + 1) * n_classes).reshape(n + 1, n_classes)
    cls = votes.argmax(axis=1)  # foreground pixels are positive classes, so never 0 for a nucleus
    keep = np.ones(n + 1, dtype=bool)
    keep[0] = False
    for cut, edge in zip(cuts, (labels[0], labels[-1], labels[:, 0], labels[:, -1]), strict=True):
        if cut:
            keep[np.unique(edge)] = False
    keep[1:] &= (count[1:] >= min_px) & (count[1:] <= max_px)
    if stain is not None and min_stain > 0:
        stain_sum = np.bincount(ids, weights=stain.ravel()[idx], minlength=n + 1)
        keep[1:] &= stain_sum[1:] >= min_stain * count[1:]
    # Centroid (continuous) = sum/n + 0.5 lies in [lo, hi)  <=>  2·lo·n ≤ 2·sum + n < 2·hi·n (exact).
    for total, (lo, hi) in ((sum_y, owned_y), (sum_x, owned_x)):
        twice = 2 * total + count
        keep &= (2 * lo * count <= twice) & (twice < 2 * hi * count)
    sel = np.flatnonzero(keep)
    if sel.size == 0:
        return None
    n_px = count[sel]
    chosen = cls[sel]
    vote = votes[sel, chosen]
    return RawCells(
        cx=sum_x[sel] / n_px + 0.5,
        cy=sum_y[sel] / n_px + 0.5,
        class_id=chosen,
        probability=vote / hits[sel, chosen],
        n_px=n_px,
        confidence=vote / n_px,
    )


def tile_class_raster(labels: np.ndarray, factor: int, n_classes: int) -> np.ndarray:
    """Raster of a K×K class map (uint8, K/f × K/f): per ``factor``×``factor`` block, the most frequent
    positive class, 0 where the block has none. Cells stay visible in an overview even when they
    cover less than half a raster pixel."""
    k = labels.shape[0] // factor
    blocks = labels[: k * factor, : k * factor].reshape(k, factor, k, factor)
    counts = np.stack([np.zeros((k, k), np.int64)] + [(blocks == c).sum(axis=(1, 3)) for c in range(1, n_classes)])
    raster: np.ndarray = counts.argmax(axis=0).astype(np.uint8)
    return raster
