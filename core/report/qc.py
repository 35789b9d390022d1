"""Figures the report derives from stored results: analysed fractions, a density raster, metrics.

The engine's tissue mask says where the model looked. It is kept with the analysis (small,
packed, JSON-able: :func:`encode_mask`) so that a report printed later, after the regions were
edited, can still say what fraction of each region was analysed. The density overlay is made
from the cell table itself, so a stored case needs no stored raster to be re-printed.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import shapely
from scipy import ndimage
from shapely.geometry.base import BaseGeometry

from core.classes import DEFAULT_MARKER_GROUPS
from core.report.data import DensityOverlay

UM2_PER_MM2 = 1e6
#: Longest side (pixels) of a stored tissue mask; larger masks are subsampled.
MAX_MASK_SIDE = 1024
#: Gaussian smoothing (µm) of the density overlay, in the report and in the app's density map.
DENSITY_SIGMA_UM = 50.0


def encode_mask(mask: np.ndarray, downsample: float) -> dict[str, Any]:
    """A bool mask as JSON-able dict; ``downsample``: level-0 pixels per mask pixel.

    Masks longer than :data:`MAX_MASK_SIDE` are subsampled (nearest) to keep the record small.
    """
    m = np.asarray(mask, dtype=bool)
    step = max(1, int(np.ceil(max(m.shape) / MAX_MASK_SIDE))) if m.size else 1
    m = m[::step, ::step]
    packed = np.packbits(m, axis=None)
    return {
        "shape": [int(m.shape[0]), int(m.shape[1])],
        "downsample": float(downsample) * step,
        "packbits_b64": base64.b64encode(packed.tobytes()).decode("ascii"),
    }


def analysis_summary_extras(result: Any, card: Any) -> dict[str, Any]:
    """What the report needs from an analysis beyond the engine's summary; merge it into the
    summary passed to ``CaseStore.finish_analysis``.

    result: a ``core.engine.AnalysisResult``; card: its ``ModelCard``. Gives ``model_card`` (the
    card without its class lists: name, version, dates, metrics) and ``tissue_mask`` (where the
    model looked, see :func:`encode_mask`), so a later report shows metrics and analysed fractions.
    """
    card_dict = {k: v for k, v in card.to_dict().items() if k not in ("classes", "class_colours")}
    return {"model_card": card_dict, "tissue_mask": encode_mask(result.tissue_mask, result.raster_downsample)}


def decode_mask(data: Mapping[str, Any]) -> tuple[np.ndarray, float]:
    """The inverse of :func:`encode_mask`: (bool mask, level-0 pixels per mask pixel)."""
    h, w = (int(v) for v in data["shape"])
    bits = np.frombuffer(base64.b64decode(data["packbits_b64"]), dtype=np.uint8)
    return np.unpackbits(bits, count=h * w).astype(bool).reshape(h, w), float(data["downsample"])


def fraction_in_mask(geometry: BaseGeometry, mask: np.ndarray, downsample: float, mpp: tuple[float, float]
                     ) -> float | None:
    """Fraction (0-1) of a region (slide µm) whose mask pixels are set; None for an empty region.

    Counts mask pixels whose centre lies in the region, so it is exact to one mask pixel.
    """
    if geometry.is_empty or geometry.area <= 0:
        return None
    sx, sy = downsample * mpp[0], downsample * mpp[1]  # µm per mask pixel
    h, w = mask.shape
    x0, y0, x1, y1 = geometry.bounds
    yy, xx = np.mgrid[int(np.floor(y0 / sy)) : int(np.ceil(y1 / sy)) + 1,
                      int(np.floor(x0 / sx)) : int(np.ceil(x1 / sx)) + 1]
    shapely.prepare(geometry)
    inside = shapely.contains_xy(geometry, (xx + 0.5) * sx, (yy + 0.5) * sy)
    total = int(inside.sum())
    if total == 0:  # smaller than a mask pixel: look at the pixel under it
        p = geometry.representative_point()
        i, j = int(p.y / sy), int(p.x / sx)
        return float(mask[i, j]) if 0 <= i < h and 0 <= j < w else 0.0
    # Pixels of the region outside the mask's extent count as not analysed.
    valid = inside & (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
    return int(mask[yy[valid], xx[valid]].sum()) / total


def density_from_cells(cells: pd.DataFrame, extent_um: tuple[float, float], mpp: tuple[float, float],
                       marker: str = "CD3+", marker_groups: Mapping[str, tuple[str, ...]] = DEFAULT_MARKER_GROUPS,
                       max_side: int = 512, sigma_um: float = DENSITY_SIGMA_UM) -> DensityOverlay:
    """A smoothed density raster (cells/mm²) of one marker group, for the overview.

    extent_um: slide (width, height) in µm; mpp: (x, y) µm per level-0 pixel (for the raster's
    downsample). Cells are binned on a square grid of at most ``max_side`` pixels and smoothed
    with a Gaussian of ``sigma_um`` (display only; the table's densities are exact counts).
    """
    bin_um = max(extent_um) / max_side
    w, h = max(1, int(np.ceil(extent_um[0] / bin_um))), max(1, int(np.ceil(extent_um[1] / bin_um)))
    counts = np.zeros((h, w), dtype=np.float64)
    names = cells["class_name"].astype(str) if len(cells) else pd.Series(dtype=str)
    sel = names.isin(marker_groups.get(marker, ())).to_numpy() if len(cells) else np.zeros(0, bool)
    if sel.any():
        ix = np.clip((cells["x_um"].to_numpy()[sel] / bin_um).astype(np.int64), 0, w - 1)
        iy = np.clip((cells["y_um"].to_numpy()[sel] / bin_um).astype(np.int64), 0, h - 1)
        np.add.at(counts, (iy, ix), 1.0)
        counts = ndimage.gaussian_filter(counts, sigma=sigma_um / bin_um, mode="constant")
    values = (counts / (bin_um * bin_um / UM2_PER_MM2)).astype(np.float32)
    return DensityOverlay(values=values, downsample=bin_um / mpp[0], label=marker)


def mask_density(overlay: DensityOverlay, mask: np.ndarray, mask_downsample: float) -> DensityOverlay:
    """The overlay with zero density where the mask (e.g. tissue) is not set, so that the smoothing
    does not paint glass. Both downsamples are level-0 pixels per raster pixel."""
    h, w = overlay.values.shape
    centres_x = ((np.arange(w) + 0.5) * overlay.downsample / mask_downsample).astype(np.int64)
    centres_y = ((np.arange(h) + 0.5) * overlay.downsample / mask_downsample).astype(np.int64)
    inside_x = centres_x < mask.shape[1]
    inside_y = centres_y < mask.shape[0]
    keep = np.zeros((h, w), dtype=bool)
    keep[np.ix_(inside_y, inside_x)] = mask[np.ix_(centres_y[inside_y], centres_x[inside_x])]
    return DensityOverlay(values=np.where(keep, overlay.values, 0.0).astype(np.float32),
                          downsample=overlay.downsample, label=overlay.label)


def analysed_density(cells: pd.DataFrame, extent_um: tuple[float, float], mpp: tuple[float, float],
                     marker: str, summary: Mapping[str, Any]) -> DensityOverlay:
    """The density overlay of one marker group (:func:`density_from_cells`), zero outside the
    analysed tissue when the analysis ``summary`` holds its ``tissue_mask``.

    The report and the app's density map call this one function, so they show the same picture.
    """
    overlay = density_from_cells(cells, extent_um, mpp, marker)
    if "tissue_mask" in summary:
        mask, ds = decode_mask(summary["tissue_mask"])
        overlay = mask_density(overlay, mask, ds)
    return overlay


def _f1_by_class(scores: Mapping[str, Any]) -> dict[str, float]:
    return {str(c): float(v["f1"]) for c, v in scores.items()
            if isinstance(v, Mapping) and isinstance(v.get("f1"), int | float) and str(c) != "other"}


def _training_metrics(metrics: Mapping[str, Any]) -> dict[str, float | str]:
    """The training tools' layout: {split, patches, pixel|centroid: {hard|soft: {class: {f1, ...}}}}.

    Hard (argmax) F1 first, as the paper's Table 2 reports both: the mean over the cell classes
    (background "other" left out) and each class's F1 in one line.
    """
    out: dict[str, float | str] = {}
    if "split" in metrics:
        patches = metrics.get("patches")
        out["Evaluated on"] = f"{metrics['split']} split" + (f", {patches:,} patches" if isinstance(patches, int) else "")
    for level, word in (("pixel", "Per-pixel"), ("centroid", "Per-cell (centroid)")):
        for kind in ("hard", "soft"):
            f1 = _f1_by_class((metrics.get(level) or {}).get(kind) or {})
            if not f1:
                continue
            out[f"{word} F1, {kind}, mean"] = sum(f1.values()) / len(f1)
            if kind == "hard":
                out[f"{word} F1, {kind}, by class"] = " · ".join(f"{c} {v:.2f}" for c, v in f1.items())
    return out


def summarise_metrics(metrics: Mapping[str, Any], limit: int = 8) -> dict[str, float | str]:
    """The model card's metrics as at most ``limit`` (label, value) pairs for the report.

    The training tools' layout is summarised as F1 means and per-class F1 (see
    :func:`_training_metrics`); any other layout is flattened ("test / per_cell / f1_mean"); numbers only; F1 figures come first,
    then means, then the rest in the card's order.
    """
    known = _training_metrics(metrics)
    if len(known) > 1:
        return dict(list(known.items())[:limit])
    flat: list[tuple[str, float]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix} / {k}" if prefix else str(k), v)
        elif isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value):
            flat.append((prefix.replace("_", " "), float(value)))

    walk("", metrics)

    def rank(item: tuple[str, float]) -> int:
        key = item[0].lower()
        return 0 if "f1" in key and ("mean" in key or "macro" in key or "average" in key) else (
            1 if "f1" in key else 2)

    ordered = sorted(flat, key=rank)  # stable: the card's order within a rank
    return {_metric_label(k): v for k, v in ordered[:limit]}


def _metric_label(key: str) -> str:
    """ "test / pixel / f1 mean" -> "Test / pixel / F1 mean"."""
    words = [w.upper() if w.lower() in ("f1", "auc", "iou") else w for w in key.split(" ")]
    text = " ".join(words)
    return text[:1].upper() + text[1:]
