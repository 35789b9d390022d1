"""Density maps: smoothed cell-density rasters (cells/mm²) of a marker group, and their colours.

The app's density map and the report's overview are made by these functions, so the picture on
screen and the one on paper agree: :func:`analysed_density` bins the cells, smooths them with a
Gaussian of :data:`DENSITY_SIGMA_UM` and blanks what the model did not analyse (the stored tissue
mask, :mod:`core.tissue_mask`); :func:`density_ceiling` and :func:`density_rgba` colour it in the
marker's colour (:func:`core.classes.marker_colour`). Display only: the scores' densities are exact
counts in regions (:mod:`core.scores.density`); the app's scene item that paints a map is
:mod:`app.viewer.density_map_layer`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage

from core.classes import DEFAULT_MARKER_GROUPS, hex_to_rgb
from core.jsontypes import JSONMapping, as_mapping
from core.tissue_mask import decode_mask

__all__ = [
    "DENSITY_SIGMA_UM",
    "DensityOverlay",
    "analysed_density",
    "density_ceiling",
    "density_colour",
    "density_from_cells",
    "density_rgba",
    "mask_density",
    "nice_ceiling",
]

UM2_PER_MM2 = 1e6
#: Gaussian smoothing (µm) of the density overlay, in the report and in the app's density map.
DENSITY_SIGMA_UM = 50.0


@dataclass(frozen=True)
class DensityOverlay:
    """A cell-density raster drawn over a slide.

    values: float array (h, w) of cells/mm²; downsample: level-0 pixels per raster pixel;
    label: the marker group it shows, e.g. ``"CD3+"``, which also gives its colour.
    """

    values: np.ndarray
    downsample: float
    label: str = "CD3+"


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
                     marker: str, summary: JSONMapping) -> DensityOverlay:
    """The density overlay of one marker group (:func:`density_from_cells`), zero outside the
    analysed tissue when the analysis ``summary`` holds its ``tissue_mask``.

    The report and the app's density map call this one function, so they show the same picture.
    """
    overlay = density_from_cells(cells, extent_um, mpp, marker)
    if "tissue_mask" in summary:
        mask, ds = decode_mask(as_mapping(summary["tissue_mask"]))
        overlay = mask_density(overlay, mask, ds)
    return overlay


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k not below ``value`` (colour-bar maxima)."""
    if value <= 0:
        return 1.0
    exp = math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if step * 10**exp >= value * (1 - 1e-9):
            return step * 10**exp
    return 10.0 ** (exp + 1)


def density_ceiling(values: np.ndarray) -> float:
    """The density drawn at full opacity: the 99th percentile of the positive values, rounded up
    by :func:`nice_ceiling`, so a few crowded pixels do not wash out the rest; 1 without any.

    The report's overview and the app's density map both use it, so their colour bars agree.
    """
    v = np.nan_to_num(np.asarray(values, dtype=np.float32), nan=0.0, posinf=0.0)
    positive = v[v > 0]
    return nice_ceiling(float(np.percentile(positive, 99.0))) if positive.size else 1.0


def density_rgba(values: np.ndarray, vmax: float, colour: str, on_dark: bool = False) -> np.ndarray:
    """A density raster (cells/mm², (h, w)) as uint8 (h, w, 4) RGBA with straight alpha, drawn in
    ``colour`` by :func:`density_colour` with ``vmax`` at full opacity (see :func:`density_ceiling`).

    One function for the printed overview and the app's density map, so both draw the same way.
    """
    v = np.nan_to_num(np.asarray(values, dtype=np.float32), nan=0.0, posinf=0.0)
    rgb, alpha = density_colour(np.clip(v / vmax, 0.0, 1.0), colour, on_dark)
    return np.dstack([rgb, alpha]).round().astype(np.uint8)


def density_colour(t: np.ndarray, colour: str, on_dark: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Overlay colour (..., 3) and opacity (...) in 0-255 for densities ``t`` in [0, 1] of the
    colour-bar maximum: the marker colour, more opaque as density grows.

    On paper (the report) the colour also darkens as density grows; ``on_dark`` (the app's view
    over a dark fluorescence image) lightens it towards white instead, since a darkening colour
    over black reads as a dim wash.
    """
    t = np.asarray(t, dtype=np.float32)
    base = np.array(hex_to_rgb(colour), dtype=np.float32)
    if on_dark:
        rgb = base + (255.0 - base) * 0.4 * t[..., None]
    else:
        rgb = base * (1.0 - 0.55 * t[..., None]) + base * 0.45 * 0.55 * t[..., None]
    alpha = np.where(t > 0.02, 25 + t**0.8 * 175, 0.0)
    return rgb, alpha
