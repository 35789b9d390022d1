"""Small blood vessels: lumens lined by endothelial nuclei and filled with red blood cells.

Red blood cells have no nucleus (so no Hoechst and no row in cells.csv) but glow in FITC and
Cy3; next to a lymphocyte they raise its marker means, one of the ways real mIF labelling errs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.spatial import cKDTree

from core.phantom.layout import Layout

#: Red-blood-cell autofluorescence (counts at the disc centre) in Hoechst, FITC, Cy3, AF750.
RBC_SIGNAL = np.array([25.0, 2600.0, 1900.0, 200.0], np.float32)
RBC_RADIUS_UM = 3.6


@dataclass
class Vessels:
    """Elliptic lumens in level-0 px: centre (x, y), semi-axes a >= b, rotation theta."""

    x: np.ndarray
    y: np.ndarray
    a: np.ndarray
    b: np.ndarray
    theta: np.ndarray

    def __len__(self) -> int:
        return len(self.x)


def place_vessels(seed: int, mpp: float, lay: Layout) -> Vessels:
    """Capillaries and venules in stroma (tumour septa included), not in glands or holes."""
    rng = np.random.default_rng([seed, 8])
    stroma = (lay.tissue_map > 0) & (lay.epithelium == 0) & (lay.lumen == 0)
    lam = np.where(lay.tumour_map > 0, 80.0, 60.0) * stroma
    pix_mm2 = (lay.map_px * mpp / 1000.0) ** 2
    counts = rng.poisson(lam * pix_mm2)
    rows, cols = np.nonzero(counts)
    rows, cols = np.repeat(rows, counts[rows, cols]), np.repeat(cols, counts[rows, cols])
    x = (cols + rng.uniform(size=len(cols))) * lay.map_px
    y = (rows + rng.uniform(size=len(rows))) * lay.map_px
    a = np.clip(6.0 * np.exp(0.45 * rng.standard_normal(len(x))), 3.5, 22.0) / mpp
    b = a / rng.uniform(1.0, 2.2, len(x))
    b = np.maximum(b, 3.2 / mpp)
    theta = rng.uniform(0, np.pi, len(x))
    # whole lumen in stroma (check a ring of points), vessels apart from each other
    ok = np.ones(len(x), bool)
    for ang in np.linspace(0, 2 * np.pi, 8, endpoint=False):
        px = x + a * math.cos(ang)
        py = y + a * math.sin(ang)
        ok &= lay.sample(stroma.astype(np.float32), px, py, order=0) > 0.5
    x, y, a, b, theta = x[ok], y[ok], a[ok], b[ok], theta[ok]
    if len(x) > 1:
        pairs = cKDTree(np.column_stack([x, y])).query_pairs(2 * float(a.max()) + 12 / mpp, output_type="ndarray")
        d = np.hypot(x[pairs[:, 0]] - x[pairs[:, 1]], y[pairs[:, 0]] - y[pairs[:, 1]])
        clash = d < a[pairs[:, 0]] + a[pairs[:, 1]] + 10 / mpp
        keep = np.ones(len(x), bool)
        keep[pairs[clash, 1]] = False
        x, y, a, b, theta = x[keep], y[keep], a[keep], b[keep], theta[keep]
    return Vessels(x, y, a, b, theta)


def inside(v: Vessels, x: np.ndarray, y: np.ndarray, pad_px: float = 0.0) -> np.ndarray:
    """Whether points lie inside any lumen (grown by ``pad_px``)."""
    out = np.zeros(len(x), bool)
    if len(v) == 0 or len(x) == 0:
        return out
    tree = cKDTree(np.column_stack([x, y]))
    for i, near in enumerate(tree.query_ball_point(np.column_stack([v.x, v.y]), v.a + pad_px)):
        if not near:
            continue
        near = np.asarray(near)
        dx, dy = x[near] - v.x[i], y[near] - v.y[i]
        c, s = math.cos(v.theta[i]), math.sin(v.theta[i])
        u, w = dx * c + dy * s, -dx * s + dy * c
        out[near[(u / (v.a[i] + pad_px)) ** 2 + (w / (v.b[i] + pad_px)) ** 2 < 1]] = True
    return out


def endothelium(v: Vessels, mpp: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat nuclei along each wall: positions (level-0 px) and their tangent angles."""
    rng = np.random.default_rng([seed, 9])
    xs, ys, ts = [], [], []
    off = 1.2 / mpp
    for i in range(len(v)):
        a, b = v.a[i] + off, v.b[i] + off
        perim = math.pi * (3 * (a + b) - math.sqrt((3 * a + b) * (a + 3 * b)))
        n = max(2, int(round(perim * mpp / 22.0)))
        t = (np.arange(n) + rng.uniform(0, 1)) / n * 2 * np.pi + rng.normal(0, 0.15, n)
        ex, ey = a * np.cos(t), b * np.sin(t)
        c, s = math.cos(v.theta[i]), math.sin(v.theta[i])
        xs.append(v.x[i] + ex * c - ey * s)
        ys.append(v.y[i] + ex * s + ey * c)
        ts.append(np.arctan2(b * np.cos(t), -a * np.sin(t)) + v.theta[i])
    if not xs:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ts)


def red_cells(v: Vessels, i: int, seed: int, mpp: float) -> tuple[np.ndarray, np.ndarray]:
    """Centres (level-0 px) of the red blood cells in lumen ``i``; same for every block."""
    rng = np.random.default_rng([seed, 10, i])
    r = RBC_RADIUS_UM / mpp
    n = int(rng.uniform(0.35, 1.0) * v.a[i] * v.b[i] / (r * r))
    u = rng.uniform(-1, 1, (max(n, 1) * 3, 2))
    u = u[(u**2).sum(1) < 1][:n]
    ea, eb = max(v.a[i] - 0.6 * r, 0.5), max(v.b[i] - 0.6 * r, 0.5)
    px, py = u[:, 0] * ea, u[:, 1] * eb
    c, s = math.cos(v.theta[i]), math.sin(v.theta[i])
    return v.x[i] + px * c - py * s, v.y[i] + px * s + py * c


@lru_cache(maxsize=4)
def rbc_template(mpp: float) -> np.ndarray:
    """A red blood cell: biconcave disc, brighter rim than centre (central pallor)."""
    r = RBC_RADIUS_UM / mpp
    half = int(math.ceil(r + 2))
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    rr = np.hypot(yy, xx)
    disc = np.clip(r - rr + 0.5, 0, 1)
    return (disc * (1 - 0.45 * np.exp(-((rr / (0.45 * r)) ** 2)))).astype(np.float32)


def lumen_polygon(v: Vessels, i: int, n: int = 28) -> list[tuple[float, float]]:
    """Outline of lumen ``i`` as a polygon in level-0 px."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ex, ey = v.a[i] * np.cos(t), v.b[i] * np.sin(t)
    c, s = math.cos(v.theta[i]), math.sin(v.theta[i])
    return list(zip((v.x[i] + ex * c - ey * s).tolist(), (v.y[i] + ex * s + ey * c).tolist(), strict=True))
