"""Tissue geometry of a phantom: tissue outline, tumour, compartments and coarse maps.

Outlines are exact shapely polygons in level-0 pixels: they are written as the truth, and the
compartment areas in phantom.json are computed from them exactly as a scoring module would
(tumour buffered by ±half-width, clipped to tissue). The coarse maps (a few µm per pixel) only
steer where cells and fibres go; their blockiness never reaches the truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from PIL import Image, ImageDraw
from scipy import ndimage as ndi
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from core.phantom.params import PhantomParams


@dataclass
class Compartments:
    """Compartment polygons in level-0 pixels and their areas in mm²."""

    centre: BaseGeometry
    margin: BaseGeometry
    stroma: BaseGeometry
    areas_mm2: dict[str, float]


def compartments(tumour: BaseGeometry, tissue: BaseGeometry, half_width_px: float, mpp: float) -> Compartments:
    """The SPEC definition: IM = band of ±half-width around the tumour border, clipped to tissue;
    CT = tumour minus the IM; stroma = tissue outside tumour and IM. Inputs in level-0 pixels."""
    outer = tumour.buffer(half_width_px, quad_segs=16)
    inner = tumour.buffer(-half_width_px, quad_segs=16)
    margin = outer.difference(inner).intersection(tissue)
    centre = inner.intersection(tissue)
    stroma = tissue.difference(outer)
    px2mm = (mpp / 1000.0) ** 2
    areas = {
        "tumour_centre": centre.area * px2mm,
        "invasive_margin": margin.area * px2mm,
        "stroma": stroma.area * px2mm,
        "tissue": tissue.area * px2mm,
        "tumour": tumour.intersection(tissue).area * px2mm,
    }
    return Compartments(centre, margin, stroma, areas)


@dataclass
class Layout:
    """Geometry and coarse maps of one phantom. Maps are indexed [row, col] at ``map_px``
    level-0 pixels per map pixel; densities are cells per mm²; distances in µm."""

    tissue: Polygon
    tumour: Polygon
    comp: Compartments
    map_px: float
    tissue_map: np.ndarray
    tumour_map: np.ndarray
    epithelium: np.ndarray  # tumour-cell nucleus zone (gland walls, solid nests)
    lumen: np.ndarray
    fibre_density: np.ndarray  # 0..1, collagen amount (autofluorescence, stromal cells)
    epi_theta: np.ndarray  # radians, long axis of palisading tumour nuclei
    signed_dist_um: np.ndarray  # to the tumour border, positive outside

    def sample(self, m: np.ndarray, x_px: np.ndarray, y_px: np.ndarray, order: int = 1) -> np.ndarray:
        """Value of map ``m`` at level-0 pixel positions (linear interpolation by default)."""
        coords = np.stack([np.asarray(y_px) / self.map_px - 0.5, np.asarray(x_px) / self.map_px - 0.5])
        return ndi.map_coordinates(m, coords, order=order, mode="nearest")


def _star(rng: np.random.Generator, cx: float, cy: float, radius: float, kmax: int, amp: float,
          decay: float, n: int = 720) -> np.ndarray:
    """Vertices of a star-shaped blob: radius modulated by random harmonics (always simple)."""
    theta = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = np.ones(n)
    for k in range(2, kmax + 1):
        r += amp * k ** (-decay) * rng.standard_normal() * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    r = np.maximum(r, 0.35) * radius
    return np.column_stack([cx + r * np.cos(theta), cy + r * np.sin(theta)])


def _outlines(p: PhantomParams, rng: np.random.Generator) -> tuple[Polygon, Polygon]:
    s = float(p.size)
    outer = _star(rng, s / 2 + rng.uniform(-0.02, 0.02) * s, s / 2 + rng.uniform(-0.02, 0.02) * s,
                  0.41 * s, 40, 0.10, 1.3)
    outer[:, 0] = np.clip(outer[:, 0], 0.02 * s, 0.98 * s)
    outer[:, 1] = np.clip(outer[:, 1], 0.02 * s, 0.98 * s)
    body = Polygon(outer).buffer(0)
    cx, cy = s / 2 + rng.uniform(-0.06, 0.06, 2) * s
    tum = _star(rng, cx, cy, 0.27 * s, 24, 0.16, 0.9)
    # a few buds/fingers: infiltrative border
    theta = np.arctan2(tum[:, 1] - cy, tum[:, 0] - cx)
    rad = np.hypot(tum[:, 0] - cx, tum[:, 1] - cy)
    for _ in range(rng.integers(3, 7)):
        t0, wdt = rng.uniform(-np.pi, np.pi), rng.uniform(0.03, 0.09)
        d = np.angle(np.exp(1j * (theta - t0)))
        rad *= 1 + rng.uniform(0.08, 0.2) * np.exp(-((d / wdt) ** 2))
    tum = np.column_stack([cx + rad * np.cos(theta), cy + rad * np.sin(theta)])
    inner = body.buffer(-0.04 * s)
    for _ in range(30):
        tumour = Polygon(tum)
        if inner.contains(tumour):
            break
        tum = np.column_stack([cx + (tum[:, 0] - cx) * 0.95, cy + (tum[:, 1] - cy) * 0.95])
    holes: list[Polygon] = []
    for _ in range(int(rng.integers(2, 6)) * 20):
        if len(holes) >= 5:
            break
        r = rng.uniform(0.012, 0.04) * s
        hx, hy = rng.uniform(0.1, 0.9, 2) * s
        hole = Polygon(_star(rng, hx, hy, r, 6, 0.25, 1.0, 180))
        if body.buffer(-r).contains(hole) and not any(hole.distance(h) < r for h in holes):
            holes.append(hole)
        if len(holes) >= 2 and rng.uniform() < 0.3:
            break
    tissue = body
    for h in holes:
        tissue = tissue.difference(h)
    if not isinstance(tissue, Polygon):  # keep the largest piece (never expected)
        tissue = max(tissue.geoms, key=lambda g: g.area)
    return tissue, Polygon(tum)


def _raster(geom: BaseGeometry, n: int, map_px: float) -> np.ndarray:
    """Rasterise a polygon (with holes) to a float32 0/1 map of n x n pixels."""
    img = Image.new("L", (n, n), 0)
    draw = ImageDraw.Draw(img)
    polys = getattr(geom, "geoms", [geom])
    for poly in polys:
        draw.polygon([tuple(c) for c in np.asarray(poly.exterior.coords) / map_px], fill=1)
        for ring in poly.interiors:
            draw.polygon([tuple(c) for c in np.asarray(ring.coords) / map_px], fill=0)
    return np.asarray(img, dtype=np.float32)


def _smooth_noise(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    f = ndi.gaussian_filter(rng.standard_normal((n, n)).astype(np.float32), sigma, mode="wrap")
    return f / (f.std() + 1e-9)


def build_layout(p: PhantomParams) -> Layout:
    """Draw the outlines and maps of phantom ``p`` (deterministic for its seed)."""
    rng = np.random.default_rng([p.seed, 1])
    tissue, tumour = _outlines(p, rng)
    comp = compartments(tumour, tissue, p.im_half_width / p.mpp, p.mpp)
    res_um = max(4.0, p.side_um / 2048.0)
    map_px = res_um / p.mpp
    n = int(math.ceil(p.size / map_px))
    tissue_map = _raster(tissue, n, map_px)
    tumour_raw = _raster(tumour, n, map_px)
    tumour_map = tumour_raw * tissue_map
    # glands: lumens where a smooth field is high, epithelium a ~25 µm wall around each lumen;
    # solid nests (poorly differentiated areas) where a slower field is high
    f = _smooth_noise(rng, n, 32.0 / res_um)
    solid = (_smooth_noise(rng, n, 110.0 / res_um) > 1.0) & (tumour_map > 0)
    lumen = (f > 1.05) & (tumour_map > 0) & ~solid
    d_lumen = ndi.distance_transform_edt(~lumen) * res_um
    wall = (d_lumen > 0) & (d_lumen < 26.0)
    epithelium = ((wall | solid) & (tumour_map > 0) & ~lumen).astype(np.float32)
    dl = ndi.gaussian_filter(d_lumen.astype(np.float32), 1.0)
    gy, gx = np.gradient(dl)
    epi_theta = np.arctan2(gy, gx).astype(np.float32)  # nuclei point away from the lumen
    inside = ndi.distance_transform_edt(tumour_raw > 0) * res_um  # holes are not tumour border
    outside = ndi.distance_transform_edt(tumour_raw == 0) * res_um
    signed = (outside - inside).astype(np.float32)
    fibre = np.where(tumour_map > 0, 0.8, 1.0) * tissue_map
    fibre = np.where(epithelium > 0, 0.12, fibre)
    fibre = np.where(lumen, 0.03, fibre)
    fibre_density = ndi.gaussian_filter(fibre.astype(np.float32), 0.7)
    return Layout(
        tissue=tissue, tumour=tumour, comp=comp, map_px=map_px, tissue_map=tissue_map,
        tumour_map=tumour_map, epithelium=epithelium, lumen=lumen.astype(np.float32),
        fibre_density=fibre_density, epi_theta=epi_theta,
        signed_dist_um=signed,
    )


def contains(geom: BaseGeometry, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Vectorised point-in-polygon for level-0 pixel positions."""
    shapely.prepare(geom)
    return shapely.contains_xy(geom, x, y)
