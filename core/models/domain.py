"""Say when not to trust a model: compare a slide with the statistics of the model's training data.

A U-Net trained on one lab's Hoechst images fails quietly on images that look different (another
pixel size, a dimmer stain, bigger nuclei): it still calls cells, just wrong ones. Training stores
:func:`summarise` of a sample of its patches in the model card (``training["data_statistics"]``);
:func:`check_slide` measures a cheap sample of tissue tiles of a new slide the same way, at the
model's pixel size, and returns plain-language warnings. Both use :func:`image_stats`, so the two
sides are always measured alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypedDict

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import gaussian, threshold_otsu

from core.jsontypes import JSONDict, JSONMapping, as_float
from core.models.card import ModelCard
from core.slides import Slide

STATS_VERSION = 1
QUANTILES = (5, 25, 50, 75, 95)
#: Blobs outside this area range (µm²) are debris or clumps, not single nuclei.
NUCLEUS_AREA_UM2 = (10.0, 300.0)
#: A slide whose median is this many times outside the training range is out of range. Set so the
#: demo model's card flags a realistic-phantom slide (contrast 25 vs 27-96, bright nuclei 2,000 vs
#: 4,200-8,200 counts) and none of 20 clean validation phantoms, cold to hot.
INTENSITY_FACTOR = 2.0
AREA_FACTOR = 1.5
CONTRAST_FACTOR = 1.0
MPP_FACTOR = 1.5
#: Below this contrast (robust background SDs) an image's Otsu split is noise, not nuclei.
MIN_CONTRAST = 3.0


class ImageStats(TypedDict):
    """What :func:`image_stats` measures on one image (intensities in the image's units, areas µm²)."""

    p1: float
    p50: float
    p99: float
    contrast: float
    areas: list[float]


def image_stats(image: np.ndarray, mpp: float) -> ImageStats | None:
    """Hoechst statistics of one image at ``mpp`` µm/px; None when it holds no nuclei and background both.

    ``contrast``: (median of nuclei − median of background) in robust background SDs (Otsu split
    of the lightly smoothed image); ``areas``: µm² of the separate blobs that are nucleus-sized.
    An image whose split is mere noise (contrast below :data:`MIN_CONTRAST`: glass, whose Otsu
    split gives about 2.2, or nuclei too faint to tell) counts as holding no nuclei, so that glass
    in training patches or sample tiles never passes for tiny, faint nuclei.
    """
    a = np.asarray(image, dtype=np.float32)
    if a.ndim != 2 or a.size < 64 or float(a.max()) <= float(a.min()):
        return None
    s = gaussian(a, sigma=max(0.5, 0.5 / mpp), preserve_range=True)
    fg = s > threshold_otsu(s)
    if not 0.002 <= fg.mean() <= 0.95:
        return None
    bg = a[~fg]
    bg_med = float(np.median(bg))
    bg_sd = max(1.4826 * float(np.median(np.abs(bg - bg_med))), float(np.std(bg)) * 0.1, 1e-6)
    contrast = (float(np.median(a[fg])) - bg_med) / bg_sd
    if contrast < MIN_CONTRAST:
        return None
    labels, n = ndi.label(ndi.binary_opening(fg))
    areas = np.bincount(labels.ravel())[1:] * mpp * mpp if n else np.zeros(0)
    lo, hi = NUCLEUS_AREA_UM2
    return {
        "p1": float(np.percentile(a, 1)), "p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)),
        "contrast": contrast,
        "areas": areas[(areas >= lo) & (areas <= hi)].tolist(),
    }


def _q(values: Iterable[float]) -> JSONDict | None:
    v = np.asarray(list(values), dtype=np.float64)
    return {f"p{q}": float(np.percentile(v, q)) for q in QUANTILES} if len(v) else None


def summarise(images: Iterable[np.ndarray], mpp: float) -> JSONDict:
    """Distributions over a sample of images: per-image intensity percentiles and contrast, nucleus areas."""
    per = [s for s in (image_stats(im, mpp) for im in images) if s is not None]
    return {
        "version": STATS_VERSION,
        "mpp": mpp,
        "images": len(per),
        "intensity_p1": _q(s["p1"] for s in per),
        "intensity_p50": _q(s["p50"] for s in per),
        "intensity_p99": _q(s["p99"] for s in per),
        "contrast": _q(s["contrast"] for s in per),
        "nucleus_area_um2": _q(a for s in per for a in s["areas"]),
        "nuclei": int(sum(len(s["areas"]) for s in per)),
    }


def sample_tiles(slide: Slide, mpp: float, size: int, n: int = 16, seed: int = 0,
                 channel: str | int = "hoechst") -> list[np.ndarray]:
    """Up to ``n`` tiles (size² px at ``mpp``) from tissue of the slide's thumbnail, seeded."""
    ch = slide.channel_index(channel)
    thumb = np.asarray(slide.thumbnail(512, channels=[ch])[0], dtype=np.float32)
    if float(thumb.max()) <= float(thumb.min()):
        return []
    tissue = thumb > threshold_otsu(thumb)
    ys, xs = np.nonzero(tissue)
    if not len(ys):
        return []
    w, h = slide.dimensions
    sx, sy = w / thumb.shape[1], h / thumb.shape[0]
    mx, my = slide.require_mpp()
    half_x, half_y = size * mpp / mx / 2, size * mpp / my / 2
    pick = np.random.default_rng(seed).choice(len(ys), size=min(n, len(ys)), replace=False)
    tiles = []
    for k in pick:
        x = float(np.clip((xs[k] + 0.5) * sx - half_x, 0, max(0.0, w - 2 * half_x)))
        y = float(np.clip((ys[k] + 0.5) * sy - half_y, 0, max(0.0, h - 2 * half_y)))
        tiles.append(slide.read_region_at_mpp((x, y), (size, size), mpp, channels=[ch])[0])
    return tiles


def _quantiles(stats: JSONMapping, key: str) -> dict[str, float] | None:
    """The quantiles ({"p5": ..., "p50": ..., "p95": ...}) stored under ``key``; None when absent or empty."""
    q = stats.get(key)
    return {k: as_float(v) for k, v in q.items()} if isinstance(q, dict) and q else None


def _p50(stats: JSONMapping, key: str) -> float:
    """The median stored under ``key``; NaN (which no comparison passes) when absent."""
    return (_quantiles(stats, key) or {}).get("p50", float("nan"))


def _outside(value: float, q: dict[str, float] | None, factor: float) -> bool:
    """True when ``value`` lies beyond the training p5-p95 range widened by ``factor``."""
    return q is not None and not (q["p5"] / factor <= value <= q["p95"] * factor)


def check_slide(slide: Slide, card: ModelCard, n_tiles: int = 16, seed: int = 0,
                channel: str | int = "hoechst") -> list[str]:
    """Plain-language warnings about running ``card``'s model on ``slide`` (empty: nothing to say)."""
    warnings: list[str] = []
    if card.synthetic:
        warnings.append(
            f"The model '{card.name}' was trained only on synthetic phantom slides: its cell calls on a real "
            "slide are not validated and are likely wrong. Train a model on your own labelled slides "
            "(see training/README.md) before using the results."
        )
    mx, my = slide.require_mpp()
    slide_mpp = (mx + my) / 2
    if card.mpp < slide_mpp / MPP_FACTOR:
        warnings.append(
            f"This slide has {slide_mpp:.3g} µm pixels but the model works at {card.mpp:.3g} µm: every tile is "
            f"enlarged {slide_mpp / card.mpp:.1f}x, so nuclei look blurrier than anything the model saw in training."
        )
    stats = card.data_statistics
    if not stats:
        warnings.append(
            f"The model card of '{card.name}' holds no statistics of its training data, so this slide cannot be "
            "compared with it; retrain or re-export the model with this version to get that check."
        )
        return warnings
    train_mpp = stats.get("source_mpp")
    if train_mpp and not 1 / MPP_FACTOR <= slide_mpp / as_float(train_mpp) <= MPP_FACTOR:
        warnings.append(
            f"The model was trained on images with {as_float(train_mpp):.3g} µm pixels; this slide has "
            f"{slide_mpp:.3g} µm. Images scanned at another resolution look different even after resampling."
        )
    seen = summarise(sample_tiles(slide, card.mpp, card.patch_size, n_tiles, seed, channel), card.mpp)
    if not seen["images"]:
        warnings.append("No tissue with nuclei was found in a sample of this slide, so it could not be compared "
                        "with the model's training data. Check the channel and that the slide holds tissue.")
        return warnings
    contrast = _p50(seen, "contrast")
    q = _quantiles(stats, "contrast")
    if q and contrast < q["p5"] * CONTRAST_FACTOR:
        warnings.append(
            f"Nuclei stand out from the background less than in the model's training data (contrast "
            f"{contrast:.1f} background SDs here; {q['p5']:.1f}-{q['p95']:.1f} in training): expect missed and "
            "misclassified cells. Check focus and staining."
        )
    elif q and contrast > q["p95"] / CONTRAST_FACTOR:
        warnings.append(
            f"Nuclei stand out from the background much more than in the model's training data (contrast "
            f"{contrast:.1f} background SDs here; {q['p5']:.1f}-{q['p95']:.1f} in training): the images differ."
        )
    bright = _p50(seen, "intensity_p99")
    q = _quantiles(stats, "intensity_p99")
    if q is not None and _outside(bright, q, INTENSITY_FACTOR):
        warnings.append(
            f"Hoechst intensities differ strongly from the training data (bright nuclei at {bright:.0f} here; "
            f"{q['p5']:.0f}-{q['p95']:.0f} in training). Check that the right channel was chosen and the bit depth."
        )
    areas = _quantiles(seen, "nucleus_area_um2")
    q = _quantiles(stats, "nucleus_area_um2")
    if areas and q and not q["p50"] / AREA_FACTOR <= areas["p50"] <= q["p50"] * AREA_FACTOR:
        warnings.append(
            f"Nuclei here are {'larger' if areas['p50'] > q['p50'] else 'smaller'} than in the training data "
            f"(median {areas['p50']:.0f} µm² here; {q['p50']:.0f} µm² in training). Check the pixel size; "
            "tissue of another kind may need its own model."
        )
    return warnings
