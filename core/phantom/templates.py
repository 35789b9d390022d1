"""Banks of pre-rendered nuclei, stamped onto blocks instead of rendering cells per pixel.

Each template holds a nucleus's Hoechst image (chromatin texture, mean 1 over the nucleus), its
cell mask (nucleus + 1 µm, what the paper's QuPath measurement averaged over) and a membrane
profile for marker stains (mean 1 over the cell mask), so a cell's marker mean is its amplitude.

Lymphocyte subtypes share one size and brightness distribution and differ only in chromatin
texture, the paper's finding: CD8_CD3LO coarse bright chromocentres; CD3 fine curved stripes;
CD20 smooth with a bright peripheral rim; CD8_CD3HI fine granules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import ndimage as ndi

#: Orientation bins of elongated templates (tumour, stromal) over 180 degrees.
N_BINS = 18
LYMPH_TEXTURES = ("CD8_CD3LO", "CD3", "CD20", "CD8_CD3HI")


@dataclass
class Template:
    """One nucleus; arrays share a shape; (cy, cx) is the nucleus centroid in template pixels."""

    nucleus: np.ndarray
    cell_mask: np.ndarray
    membrane: np.ndarray | None
    cy: float
    cx: float
    area_px: float


@dataclass
class Bank:
    lymph: dict[str, list[Template]] = field(default_factory=dict)
    tumour: list[list[Template]] = field(default_factory=list)  # [bin][k]
    stromal: list[list[Template]] = field(default_factory=list)
    macrophage: list[Template] = field(default_factory=list)
    max_half: int = 0
    #: every template, in this order: lymph (by LYMPH_TEXTURES), macrophage, tumour, stromal bins
    flat: list[Template] = field(default_factory=list)

    def offsets(self) -> dict[str, int]:
        """Index in ``flat`` of the first template of each group (``tumour3`` = tumour bin 3)."""
        out: dict[str, int] = {}
        i = 0
        for kind in LYMPH_TEXTURES:
            out[kind] = i
            i += len(self.lymph[kind])
        out["macrophage"] = i
        i += len(self.macrophage)
        for k, ts in enumerate(self.tumour):
            out[f"tumour{k}"] = i
            i += len(ts)
        for k, ts in enumerate(self.stromal):
            out[f"stromal{k}"] = i
            i += len(ts)
        return out


def _shape(rng: np.random.Generator, a: float, b: float, theta: float, harm: float, bend: float,
           pad: float) -> tuple[np.ndarray, np.ndarray]:
    """Coverage (anti-aliased 0..1) and signed distance to the edge (px, >0 inside) of an
    irregular, optionally bent ellipse with semi-axes a, b (px) rotated by theta."""
    half = int(math.ceil(max(a, b) * (1 + 2 * harm) + pad + 2))
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float32)
    c, s = math.cos(theta), math.sin(theta)
    u = xx * c + yy * s
    v = -xx * s + yy * c - bend * (u / a) ** 2 * b
    phi = np.arctan2(v / b, u / a)
    rho = np.hypot(u / a, v / b)
    edge = np.ones_like(rho)
    for k in range(2, 6):
        edge += harm * rng.standard_normal() / k * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
    r_dir = a * b / np.sqrt((b * np.cos(phi)) ** 2 + (a * np.sin(phi)) ** 2)
    dist = (edge - rho) * r_dir
    return np.clip(dist + 0.5, 0, 1), dist


def _g(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    n = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return n / (n.std() + 1e-9)


def _blobs(rng: np.random.Generator, dist: np.ndarray, k: int, sigma: float, inset: float) -> np.ndarray:
    """k Gaussian spots at random positions at least ``inset`` px inside the edge."""
    out = np.zeros(dist.shape, np.float32)
    ys, xs = np.nonzero(dist > inset)
    if len(ys) == 0:
        ys, xs = np.nonzero(dist >= dist.max())
    yy, xx = np.mgrid[: dist.shape[0], : dist.shape[1]]
    for i in rng.integers(0, len(ys), k):
        sg = sigma * rng.uniform(0.8, 1.25)
        out += rng.uniform(0.7, 1.3) * np.exp(-((yy - ys[i]) ** 2 + (xx - xs[i]) ** 2) / (2 * sg * sg))
    return out


def _lymph_texture(kind: str, rng: np.random.Generator, dist: np.ndarray, px: float) -> np.ndarray:
    shape = dist.shape
    if kind == "CD8_CD3LO":  # coarse chromocentres
        t = 0.45 + 1.1 * _blobs(rng, dist, int(rng.integers(3, 7)), 0.55 * px, 0.9 * px)
        t += 0.05 * _g(rng, shape, 0.8)
    elif kind == "CD3":  # fine curved stripes (the paper's "small, curved features")
        n = _g(rng, shape, 0.33 * px) - 0.8 * _g(rng, shape, 0.75 * px)
        n /= n.std() + 1e-9
        t = 0.5 + 0.9 * np.exp(-((n / 0.45) ** 2))
    elif kind == "CD20":  # smooth, peripheral rim
        t = 0.78 + 0.05 * _g(rng, shape, 1.2 * px)
        t += 0.6 * np.exp(-(((dist - 0.45 * px) / (0.35 * px)) ** 2))
    else:  # CD8_CD3HI: fine granules
        n = np.clip(_g(rng, shape, 0.2 * px), 0, None) ** 1.5
        t = 0.5 + 0.55 * n
    return t.astype(np.float32)


def _finish(rng: np.random.Generator, cov: np.ndarray, dist: np.ndarray, tex: np.ndarray, px: float,
            membrane: str | None) -> Template:
    """Normalise texture × coverage, build cell mask and membrane profile."""
    rho = np.clip(1 - dist / (dist.max() + 1e-6), 0, 1)
    nuc = cov * tex * (1.0 - 0.12 * rho**2)  # slightly domed: thicker in the middle
    mask = cov > 0.5
    nuc = (nuc / nuc[mask].mean()).astype(np.float32)
    cell = dist > -1.0 * px
    mem = None
    if membrane == "ring":
        ring = np.exp(-(((-dist) - 0.35 * px) / (0.38 * px)) ** 2) + 0.12 * cov
        ring *= np.clip(1 + 0.35 * _g(rng, dist.shape, 0.8 * px), 0.2, None)
        mem = (ring / ring[cell].mean()).astype(np.float32)
    elif membrane == "cytoplasm":  # macrophage: broad granular autofluorescent cytoplasm
        cyto = np.clip((3.5 * px - (-dist)) / px, 0, 1) * (1 - 0.6 * cov)
        cyto *= np.clip(0.6 + 0.6 * _g(rng, dist.shape, 0.35 * px), 0, None)
        mem = (cyto / (cyto[cell].mean() + 1e-6)).astype(np.float32)
        cell = cell | (cyto > 0.05)
    ys, xs = np.nonzero(mask)
    w = nuc[ys, xs]
    return Template(nuc, cell, mem, float((ys * w).sum() / w.sum()), float((xs * w).sum() / w.sum()),
                    float(mask.sum()))


def _lymph(kind: str, rng: np.random.Generator, px: float) -> Template:
    d = rng.normal(7.0, 0.55) * px  # shared diameter distribution, µm -> px
    e = rng.uniform(1.0, 1.18)
    a, b = d / 2 * math.sqrt(e), d / 2 / math.sqrt(e)
    cov, dist = _shape(rng, a, b, rng.uniform(0, np.pi), 0.05, 0.0, 2.2 * px)
    return _finish(rng, cov, dist, _lymph_texture(kind, rng, dist, px), px, "ring")


def _tumour(rng: np.random.Generator, px: float, theta: float) -> Template:
    scale = math.exp(rng.normal(0, 0.14))  # pleomorphism
    length, width = rng.uniform(10.5, 16.5) * scale, rng.uniform(6.0, 8.5) * scale
    cov, dist = _shape(rng, length / 2 * px, width / 2 * px, theta, 0.10, rng.uniform(-0.15, 0.15), 1.5 * px)
    shape = dist.shape
    tex = 0.55 + 0.2 * _g(rng, shape, 0.6 * px) + 0.1 * _g(rng, shape, 0.22 * px)
    tex += 0.35 * np.exp(-(((dist - 0.35 * px) / (0.5 * px)) ** 2))
    nucleoli = _blobs(rng, dist, int(rng.integers(1, 4)), rng.uniform(0.45, 0.8) * px, 1.5 * px)
    tex *= 1 - 0.55 * np.clip(nucleoli, 0, 1)
    return _finish(rng, cov, dist, np.clip(tex, 0.05, None), px, None)


def _stromal(rng: np.random.Generator, px: float, theta: float) -> Template:
    length, width = rng.uniform(11.0, 21.0), rng.uniform(2.6, 4.4)
    cov, dist = _shape(rng, length / 2 * px, width / 2 * px, theta, 0.06, rng.uniform(-0.8, 0.8), 1.5 * px)
    tex = 0.85 + 0.12 * _g(rng, dist.shape, 0.3 * px)
    return _finish(rng, cov, dist, np.clip(tex, 0.1, None), px, None)


def _macrophage(rng: np.random.Generator, px: float) -> Template:
    a, b = rng.uniform(4.0, 5.0) * px, rng.uniform(2.6, 3.4) * px
    th = rng.uniform(0, np.pi)
    cov, dist = _shape(rng, a, b, th, 0.05, rng.uniform(0.3, 0.6), 4.5 * px)
    tex = 0.8 + 0.12 * _g(rng, dist.shape, 0.5 * px)
    return _finish(rng, cov, dist, tex, px, "cytoplasm")


@lru_cache(maxsize=4)
def build_bank(seed: int, mpp: float, n_lymph: int = 160, n_per_bin: int = 14) -> Bank:
    """All templates for one phantom (cached: tests make several small phantoms per seed)."""
    rng = np.random.default_rng([seed, 2])
    px = 1.0 / mpp
    bank = Bank()
    for kind in LYMPH_TEXTURES:
        bank.lymph[kind] = [_lymph(kind, rng, px) for _ in range(n_lymph)]
    for k in range(N_BINS):
        th = (k + 0.5) * np.pi / N_BINS
        bank.tumour.append([_tumour(rng, px, th) for _ in range(n_per_bin)])
        bank.stromal.append([_stromal(rng, px, th) for _ in range(max(6, n_per_bin * 2 // 3))])
    bank.macrophage = [_macrophage(rng, px) for _ in range(40)]
    every = [t for ts in bank.lymph.values() for t in ts] + bank.macrophage
    every += [t for ts in bank.tumour + bank.stromal for t in ts]
    bank.max_half = max(max(t.nucleus.shape) for t in every) // 2 + 1
    bank.flat = every
    return bank


def orientation_bin(theta: np.ndarray) -> np.ndarray:
    """Orientation bin of angles (radians, any range; axes, so theta and theta+pi agree)."""
    t = np.mod(theta, np.pi)
    return np.minimum((t / np.pi * N_BINS).astype(np.int64), N_BINS - 1)
