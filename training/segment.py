"""Nucleus segmentation on the Hoechst channel with scikit-image (smooth, threshold, watershed).

The paper segmented with StarDist in QuPath; StarDist needs TensorFlow and pretrained weights we
cannot ship, so this is the classical pipeline: Gaussian smoothing, a threshold, a
distance-transform watershed to split touching nuclei, and a size filter. All lengths are given
in µm and converted with the slide's mpp, so one config works across scanners.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.filters import gaussian, threshold_local, threshold_otsu
from skimage.segmentation import watershed

from core.slides import Slide
from training.config import Segmentation

#: Minimum (nuclei mean − background mean) in background standard deviations (see estimate_threshold).
MIN_CONTRAST = 8.0


def smooth(image: np.ndarray, mpp: float, seg: Segmentation) -> np.ndarray:
    """Gaussian-smoothed float32 copy (sigma in µm), which steadies thresholds on shot noise."""
    a = np.asarray(image, dtype=np.float32)
    sigma = seg.smooth_sigma_um / mpp
    if sigma <= 0:
        return a
    return gaussian(a, sigma=sigma, preserve_range=True).astype(np.float32, copy=False)


def estimate_threshold(slide: Slide, channel: int, seg: Segmentation, n_samples: int = 12) -> float:
    """One global Otsu threshold for the Hoechst channel, from level-0 samples of tissue.

    Blocks are processed one at a time, and a block of mostly glass or stroma would get its own
    Otsu threshold far too low; a single slide-wide value avoids that. Samples (512² px) are
    taken where the thumbnail is brightest (densest tissue), so glass does not dominate the
    histogram and the threshold separates nuclei from tissue background.
    """
    mpp = float(np.mean(slide.require_mpp()))
    w, h = slide.dimensions
    thumb = np.asarray(slide.thumbnail(max_size=256, channels=[channel]), dtype=np.float32)[0]
    size = 512
    if w <= size * 2 and h <= size * 2:
        boxes = [(0, 0, w, h)]
    else:
        ty, tx = thumb.shape
        fy, fx = h / ty, w / tx
        # Score candidate positions on a coarse grid by thumbnail brightness around them.
        cells = max(2, int(math.sqrt(n_samples * 4)))
        cand = []
        for gy in range(cells):
            for gx in range(cells):
                y0, x0 = int(gy * ty / cells), int(gx * tx / cells)
                y1, x1 = int((gy + 1) * ty / cells), int((gx + 1) * tx / cells)
                score = float(thumb[y0:y1, x0:x1].mean()) if y1 > y0 and x1 > x0 else 0.0
                cx, cy = (x0 + x1) / 2 * fx, (y0 + y1) / 2 * fy
                cand.append((score, int(max(0, min(w - size, cx - size / 2))), int(max(0, min(h - size, cy - size / 2)))))
        cand.sort(reverse=True)
        boxes = [(x, y, min(size, w), min(size, h)) for _, x, y in cand[:n_samples]]
    pixels = []
    for x, y, bw, bh in boxes:
        block = slide.read_region((x, y), 0, (bw, bh), channels=[channel])[0]
        pixels.append(smooth(block, mpp, seg)[::2, ::2].ravel())
    values = np.concatenate(pixels)
    if values.size == 0 or float(values.max()) <= float(values.min()):
        return float("inf")
    t = float(threshold_otsu(values))
    lo, hi = values[values <= t], values[values > t]
    # Otsu splits any histogram, even pure noise; nuclei must stand far out of the background
    # (on real and phantom slides the gap is tens of background standard deviations).
    if hi.size == 0 or float(hi.mean() - lo.mean()) < MIN_CONTRAST * float(lo.std()) + 1e-6:
        return float("inf")
    return t * seg.threshold_scale


def segment_nuclei(hoechst: np.ndarray, mpp: float, seg: Segmentation, threshold: float) -> np.ndarray:
    """Label image (int32, 0 = background) of nuclei in one block of Hoechst intensities.

    ``threshold``: the global Otsu value from :func:`estimate_threshold` (slide units). With
    ``seg.threshold == "local"`` a local threshold is used instead, floored at half the global
    one so that empty glass is never segmented.
    """
    smoothed = smooth(hoechst, mpp, seg)
    if seg.threshold == "local":
        window = max(3, int(round(seg.local_window_um / mpp)) | 1)
        local = threshold_local(smoothed, block_size=window, method="gaussian") * seg.threshold_scale
        fg = (smoothed > local) & (smoothed > 0.5 * threshold)
    else:
        fg = smoothed > threshold
    fg = ndi.binary_fill_holes(fg)
    px_area = mpp * mpp
    min_px = max(1, int(seg.min_nucleus_area_um2 / px_area))
    max_px = int(seg.max_nucleus_area_um2 / px_area)
    blobs, n = ndi.label(fg)
    if n == 0:
        return np.zeros(fg.shape, dtype=np.int32)
    sizes = np.bincount(blobs.ravel())
    keep = sizes >= min_px
    keep[0] = False
    fg = keep[blobs]
    dist = ndi.distance_transform_edt(fg).astype(np.float32)
    dist = gaussian(dist, sigma=1.0, preserve_range=True)
    min_dist = max(1, int(round(seg.peak_min_distance_um / mpp)))
    peaks = peak_local_max(dist, min_distance=min_dist, labels=ndi.label(fg)[0], exclude_border=False)
    markers = np.zeros(fg.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1, dtype=np.int32)
    labels = watershed(-dist, markers, mask=fg).astype(np.int32)
    sizes = np.bincount(labels.ravel())
    bad = (sizes < min_px) | (sizes > max_px)
    bad[0] = True
    labels[bad[labels]] = 0
    return labels
