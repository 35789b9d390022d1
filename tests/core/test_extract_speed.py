"""The fast paths of cell extraction and post-processing give the libraries' answers exactly.

Extraction's output must not change when it gets faster, so each replacement is compared, on
random inputs built to hit its edge cases (ties, plateaus, rows that touch, image borders), with
the library call it replaces.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage.feature import peak_local_max

from core.engine._batching import cpu_class_raster, cpu_classes, cpu_post
from core.engine._extract import Split, find_cells
from core.engine._label import label4
from core.engine._peaks import local_maxima

FOUR = ndimage.generate_binary_structure(2, 1)


def _masks(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = [np.zeros((5, 7), bool), np.ones((4, 6), bool), np.ones((1, 1), bool), np.eye(6, dtype=bool)]
    for i in range(n):
        h, w = (int(v) for v in rng.integers(1, 70, 2))
        if i % 2:
            out.append(rng.random((h, w)) < rng.uniform(0.05, 0.9))
        else:  # blobs that touch and merge, as nuclei do
            seeds = rng.random((h, w)) < 0.03
            out.append(ndimage.binary_dilation(seeds, iterations=int(rng.integers(1, 5))))
    return out


def test_run_labelling_equals_ndimage_label() -> None:
    for mask in _masks(120, 0):
        comp = label4(mask)
        labels, n = ndimage.label(mask, structure=FOUR)
        assert comp.n == n
        np.testing.assert_array_equal(comp.labels, labels)  # same numbering: raster order of first pixel
        np.testing.assert_array_equal(comp.idx, np.flatnonzero(mask))
        np.testing.assert_array_equal(comp.base_ids, labels.ravel()[comp.idx])
        assert [comp.slices(i) for i in range(1, n + 1)] == ndimage.find_objects(labels)


@pytest.mark.parametrize("min_distance", [1, 2, 4])
def test_local_maxima_equal_peak_local_max(min_distance: int) -> None:
    rng = np.random.default_rng(min_distance)
    for mask in _masks(80, 10 + min_distance):
        dist = ndimage.distance_transform_edt(np.pad(mask, 1))  # plateaus and ties, as extraction sees
        noisy = np.round(rng.random(dist.shape) * 4) / 2  # many equal heights next to each other
        for image, threshold in ((dist, 1.5), (dist, 0.0), (noisy, 0.5)):
            want = peak_local_max(image, min_distance=min_distance, threshold_abs=threshold, exclude_border=False)
            np.testing.assert_array_equal(local_maxima(image, min_distance, threshold), want)


def _disc(shape: tuple[int, int], cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (yy + 0.5 - cy) ** 2 + (xx + 0.5 - cx) ** 2 <= r * r


def test_find_cells_owns_each_nucleus_once_across_two_windows() -> None:
    """Two windows that share rows, as neighbouring blocks do, split the nuclei between them with
    none lost and none twice, including touching pairs that get split and nuclei on the seam."""
    rng = np.random.default_rng(3)
    lab = np.zeros((120, 90), np.uint8)
    for _ in range(40):
        cy, cx = rng.uniform(5, 115), rng.uniform(5, 85)
        lab[_disc(lab.shape, cy, cx, rng.uniform(3, 7))] = rng.integers(1, 5)
    prob = rng.uniform(0.3, 1.0, lab.shape).astype(np.float32)
    split = Split(depth_px=1.5, min_px=40, round_px=120, min_part_px=20)
    whole = find_cells(lab, prob, (False,) * 4, (0, 120), (0, 90), 4, 5000, split)
    top = find_cells(lab[:90], prob[:90], (False, True, False, False), (0, 60), (0, 90), 4, 5000, split)
    bottom = find_cells(lab[30:], prob[30:], (True, False, False, False), (30, 90), (0, 90), 4, 5000, split)
    assert whole is not None and top is not None and bottom is not None
    assert len(whole.cx) > ndimage.label(lab > 0, structure=FOUR)[1] > 15  # some touching nuclei were split
    halves = np.stack([np.concatenate([top.cy, bottom.cy + 30]), np.concatenate([top.cx, bottom.cx])], axis=1)
    np.testing.assert_allclose(np.unique(halves.round(9), axis=0), np.unique(np.stack([whole.cy, whole.cx], axis=1).round(9), axis=0))
    assert len(halves) == len(whole.cx)


def test_sparse_post_processing_equals_the_full_one() -> None:
    rng = np.random.default_rng(4)
    logits = rng.normal(0, 2, (4, 5, 48, 48)).astype(np.float32)
    logits[:, 0] += 2.5  # mostly background, as in a slide
    logits[0, 2] = logits[0, 1]  # exact ties: the lowest class wins
    logits[1, 1:] = -9.0  # a tile without any positive class
    view = np.pad(logits, ((0, 0), (0, 0), (3, 3), (3, 3)))[:, :, 3:-3, 3:-3]  # cropped, as the model gives it
    cls, prob, raster = cpu_post(view, 8, 5)
    want_cls, want_prob = cpu_classes(logits)
    np.testing.assert_array_equal(cls, want_cls)
    np.testing.assert_array_equal(raster, cpu_class_raster(want_cls, 8, 5))
    positive = want_cls > 0
    assert 0.05 < positive.mean() < 0.6
    np.testing.assert_array_equal(prob[positive], want_prob[positive])  # bit for bit
    assert (prob[~positive] == 0).all()
