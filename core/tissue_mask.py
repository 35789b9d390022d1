"""The analysed-tissue mask kept with every analysis: encode it small, decode it, measure with it.

The engine's tissue mask says where the model looked. It is kept with the analysis (small,
packed, JSON-able: :func:`encode_mask`) so that a report printed later, after the regions were
edited, can still say what fraction of each region was analysed, and so that the app's density
map and the report's overview leave glass blank. Used by the analysis records, the viewer and
the report alike, so it lives in core, not in core.report.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Protocol

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from core.jsontypes import JSONDict, JSONMapping, as_float, as_int, as_list, as_str

if TYPE_CHECKING:
    from core.models.card import ModelCard

__all__ = ["MAX_MASK_SIDE", "analysis_summary_extras", "decode_mask", "encode_mask", "fraction_in_mask"]

#: Longest side (pixels) of a stored tissue mask; larger masks are subsampled.
MAX_MASK_SIDE = 1024


class MaskedResult(Protocol):
    """What :func:`analysis_summary_extras` reads of an analysis (``core.engine.AnalysisResult``)."""

    @property
    def tissue_mask(self) -> np.ndarray: ...

    @property
    def raster_downsample(self) -> float: ...


def encode_mask(mask: np.ndarray, downsample: float) -> JSONDict:
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


def analysis_summary_extras(result: MaskedResult, card: ModelCard) -> JSONDict:
    """What the report needs from an analysis beyond the engine's summary; merge it into the
    summary passed to ``CaseStore.finish_analysis``.

    result: a ``core.engine.AnalysisResult``; card: its ``ModelCard``. Gives ``model_card`` (the
    card without its class lists: name, version, dates, metrics) and ``tissue_mask`` (where the
    model looked, see :func:`encode_mask`), so a later report shows metrics and analysed fractions.
    """
    card_dict = {k: v for k, v in card.to_dict().items() if k not in ("classes", "class_colours")}
    return {"model_card": card_dict, "tissue_mask": encode_mask(result.tissue_mask, result.raster_downsample)}


def decode_mask(data: JSONMapping) -> tuple[np.ndarray, float]:
    """The inverse of :func:`encode_mask`: (bool mask, level-0 pixels per mask pixel)."""
    h, w = (as_int(v) for v in as_list(data["shape"]))
    bits = np.frombuffer(base64.b64decode(as_str(data["packbits_b64"])), dtype=np.uint8)
    return np.unpackbits(bits, count=h * w).astype(bool).reshape(h, w), as_float(data["downsample"])


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
