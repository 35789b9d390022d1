"""The overview picture: the slide thumbnail with a cell-density overlay and the region outlines.

The Hoechst thumbnail is shown inverted (tissue grey on white) because the picture is printed on
paper, where a black fluorescence background wastes toner and hides the overlay. Density is drawn
in the marker's colour with an opacity that grows with density; regions are drawn as outlines
(the IM as a light band, exclusions hatched). Drawing happens at ``SUPERSAMPLE`` times the output
size and is reduced once, which anti-aliases the lines. Pure PIL/numpy: same input, same pixels.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from core.density_map import DensityOverlay, density_ceiling, density_rgba
from core.report.colours import REGION_COLOURS, hex_to_rgb, marker_colour
from core.report.data import RegionLike

SUPERSAMPLE = 2
#: Drawing order: bands and hatches first, the tumour border last (on top).
_KIND_ORDER = ("tissue", "other", "exclusion", "invasive_margin", "tumour_centre", "tumour")


@dataclass(frozen=True)
class Overview:
    """The rendered picture and what the legend needs.

    um_per_px: slide µm per picture pixel along x (for the scale bar);
    density_max: the density (cells/mm²) drawn at full opacity, None without an overlay (or when
    the overlay has no cells: ``density_label`` is then set and the legend says so);
    kinds: region kinds present in the picture, in drawing order.
    """

    image: Image.Image
    um_per_px: float
    density_max: float | None
    density_label: str
    kinds: tuple[str, ...]


def display_grey(thumbnail: np.ndarray) -> np.ndarray:
    """A thumbnail as uint8 (h, w, 3) for print: fluorescence inverted, RGB kept as it is.

    thumbnail: (h, w) or (1, h, w) intensities of any dtype, or (h, w, 3) uint8 RGB. Contrast is
    stretched between the 1st and 99.7th percentile of the non-zero pixels.
    """
    a = np.asarray(thumbnail)
    if a.ndim == 3 and a.shape[-1] == 3 and a.dtype == np.uint8:
        return a.copy()
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3:  # several channels: keep the first (Hoechst by convention of the slide reader)
        a = a[0]
    if a.ndim != 2:
        raise ValueError(f"thumbnail must be (h, w), (1, h, w) or (h, w, 3); got shape {a.shape}")
    f = a.astype(np.float32)
    nz = f[f > 0]
    if nz.size == 0:
        lo, hi = 0.0, 1.0
    else:
        lo, hi = (float(v) for v in np.percentile(nz, [1.0, 99.7]))
        hi = max(hi, lo + 1e-6)
    v = np.clip((f - lo) / (hi - lo), 0.0, 1.0) ** 0.8
    grey = np.round(255.0 - v * 175.0).astype(np.uint8)  # glass white, brightest nuclei dark grey
    return np.repeat(grey[:, :, None], 3, axis=2)


def _density_layer(overlay: DensityOverlay, size: tuple[int, int], px_level0: float
                   ) -> tuple[Image.Image, float]:
    """RGBA layer of ``size`` for the density raster; returns it and the full-opacity density."""
    values = np.nan_to_num(np.asarray(overlay.values, dtype=np.float32), nan=0.0, posinf=0.0)
    if values.ndim != 2:
        raise ValueError(f"density values must be (h, w); got shape {values.shape}")
    vmax = density_ceiling(values)
    # Resample the raster so that one of its pixels covers the same slide area as in level 0.
    scale = overlay.downsample / px_level0
    h, w = values.shape
    target = (max(1, round(w * scale)), max(1, round(h * scale)))
    resized = np.asarray(Image.fromarray(values).resize(target, Image.Resampling.BILINEAR))
    canvas = np.zeros((size[1], size[0]), dtype=np.float32)
    ch, cw = min(size[1], resized.shape[0]), min(size[0], resized.shape[1])
    canvas[:ch, :cw] = resized[:ch, :cw]
    return Image.fromarray(density_rgba(canvas, vmax, marker_colour(overlay.label))), vmax


def _polygons(geometry: BaseGeometry) -> list[Polygon]:
    if isinstance(geometry, Polygon):
        return [] if geometry.is_empty else [geometry]
    if isinstance(geometry, MultiPolygon):
        return [g for g in geometry.geoms if not g.is_empty]
    return [g for g in getattr(geometry, "geoms", ()) if isinstance(g, Polygon) and not g.is_empty]


def _rings(poly: Polygon, f: float) -> Iterable[list[tuple[float, float]]]:
    """Exterior then interior rings in picture pixels (``f``: picture px per µm, x and y)."""
    for ring in (poly.exterior, *poly.interiors):
        yield [(x * f, y * f) for x, y in ring.coords]


def _dashed(draw: ImageDraw.ImageDraw, pts: Sequence[tuple[float, float]], fill: tuple[int, ...],
            width: int, dash: float, gap: float) -> None:
    """A dashed polyline (PIL draws only solid lines)."""
    on, left = True, dash
    for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:], strict=True):
        seg = math.hypot(x1 - x0, y1 - y0)
        pos = 0.0
        while seg - pos > 1e-9:
            step = min(left, seg - pos)
            if on:
                a, b = pos / seg, (pos + step) / seg
                draw.line([(x0 + (x1 - x0) * a, y0 + (y1 - y0) * a),
                           (x0 + (x1 - x0) * b, y0 + (y1 - y0) * b)], fill=fill, width=width)
            pos += step
            left -= step
            if left <= 1e-9:
                on = not on
                left = dash if on else gap


def _fill(polys: Sequence[Polygon], size: tuple[int, int], f: float, fill: tuple[int, int, int, int]
          ) -> Image.Image:
    """A transparent RGBA image with the polygons filled (holes left transparent)."""
    img = Image.new("RGBA", size, (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    for poly in polys:
        rings = list(_rings(poly, f))
        d.polygon(rings[0], fill=fill)
        for hole in rings[1:]:
            d.polygon(hole, fill=(0, 0, 0, 0))
    return img


def _hatch(polys: Sequence[Polygon], size: tuple[int, int], f: float, colour: tuple[int, int, int],
           period: int, width: int) -> Image.Image:
    """Diagonal hatching inside the polygons (an RGBA image)."""
    lines = Image.new("L", size, 0)
    d = ImageDraw.Draw(lines)
    for c in range(0, size[0] + size[1], period):
        d.line([(c, 0), (c - size[1], size[1])], fill=255, width=width)
    inside = _fill(polys, size, f, (255, 255, 255, 255)).getchannel("A")
    img = Image.new("RGBA", size, (*colour, 0))
    img.putalpha(Image.fromarray(np.minimum(np.asarray(lines), np.asarray(inside)) // 255 * 200))
    return img


def _draw_regions(size: tuple[int, int], regions: Sequence[RegionLike], f: float) -> tuple[Image.Image, tuple[str, ...]]:
    """RGBA layer (at ``size``, already supersampled) with fills and outlines of all regions."""
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    s = SUPERSAMPLE
    by_kind: dict[str, list[Polygon]] = {}
    for region in regions:
        by_kind.setdefault(str(region.kind), []).extend(_polygons(region.geometry))
    kinds = tuple(k for k in _KIND_ORDER if by_kind.get(k))
    for kind in kinds:
        polys = by_kind[kind]
        rgb = hex_to_rgb(REGION_COLOURS[kind])
        if kind == "invasive_margin":
            layer.alpha_composite(_fill(polys, size, f, (*rgb, 60)))
        elif kind == "exclusion":
            layer.alpha_composite(_hatch(polys, size, f, rgb, period=7 * s, width=s))
        draw = ImageDraw.Draw(layer)
        for poly in polys:
            for ring in _rings(poly, f):
                if kind == "tumour":
                    _dashed(draw, ring, (*rgb, 255), width=2 * s, dash=9.0 * s, gap=5.0 * s)
                elif kind == "tissue":
                    draw.line(ring, fill=(*rgb, 200), width=1 * s, joint="curve")
                else:
                    draw.line(ring, fill=(*rgb, 255), width=3 * s, joint="curve")
    return layer, kinds


def render_overview(thumbnail: np.ndarray, thumbnail_downsample: float, mpp: tuple[float, float],
                    regions: Sequence[RegionLike] = (), density: DensityOverlay | None = None,
                    max_size: int = 1100) -> Overview:
    """Draw the overview picture; the output's longest side is ``max_size`` pixels.

    thumbnail_downsample: level-0 pixels per thumbnail pixel; mpp: (x, y) µm per level-0 pixel.
    Region geometry is in slide µm; ``density.downsample`` is level-0 pixels per raster pixel.
    """
    base = display_grey(thumbnail)
    th, tw = base.shape[:2]
    zoom = max_size / max(th, tw)
    size = (max(1, round(tw * zoom)), max(1, round(th * zoom)))
    px_level0 = thumbnail_downsample / zoom  # level-0 pixels per output pixel
    picture = Image.fromarray(base).resize(size, Image.Resampling.LANCZOS).convert("RGBA")
    density_max = None
    if density is not None and float(np.nanmax(density.values, initial=0.0)) > 0:
        layer, density_max = _density_layer(density, size, px_level0)
        picture.alpha_composite(layer)
    kinds: tuple[str, ...] = ()
    if regions:
        mpp_mean = (mpp[0] + mpp[1]) / 2.0
        if abs(mpp[0] - mpp[1]) > 1e-3 * mpp_mean:
            raise ValueError(f"non-square pixels {mpp} are not supported by the overview")
        big = (size[0] * SUPERSAMPLE, size[1] * SUPERSAMPLE)
        f = SUPERSAMPLE / (mpp_mean * px_level0)  # supersampled pixels per µm
        layer, kinds = _draw_regions(big, regions, f)
        picture.alpha_composite(layer.resize(size, Image.Resampling.LANCZOS))
    return Overview(
        image=picture.convert("RGB"),
        um_per_px=mpp[0] * px_level0,
        density_max=density_max,
        density_label=density.label if density is not None else "",
        kinds=kinds,
    )
