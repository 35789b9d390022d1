"""Seamless random fields defined on global slide coordinates.

Blocks are rendered independently, so every random texture that spans block borders (fibres,
diffuse background, illumination, pixel noise) must be a function of the global pixel position
and the seed only. Value noise hashes integer lattice points (no stored state), and pixel noise
is drawn per fixed 64-px unit from a generator keyed by (seed, channel, unit), so a pixel gets
the same value whichever block renders it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xC2B2AE3D27D4EB4F)
_M3 = np.uint64(0x165667B19E3779F9)
_F1 = np.uint64(0xBF58476D1CE4E5B9)
_F2 = np.uint64(0x94D049BB133111EB)
#: Side of the units pixel noise is drawn in (block margins are multiples of it).
NOISE_UNIT = 64


def _hash01(ix: np.ndarray, iy: np.ndarray, salt: int) -> np.ndarray:
    """Uniform [0, 1) float32 from integer lattice coordinates (splitmix64 finaliser)."""
    with np.errstate(over="ignore"):
        h = ix.astype(np.uint64) * _M1 ^ iy.astype(np.uint64) * _M2 ^ np.uint64(salt & 0xFFFFFFFF) * _M3
        h ^= h >> np.uint64(30)
        h *= _F1
        h ^= h >> np.uint64(27)
        h *= _F2
        h ^= h >> np.uint64(31)
    return ((h >> np.uint64(40)).astype(np.float32)) * np.float32(1.0 / (1 << 24))


def value_noise(u: np.ndarray, v: np.ndarray, salt: int) -> np.ndarray:
    """Smooth noise in [-1, 1] at continuous lattice coordinates (u, v), lattice step 1."""
    iu = np.floor(u)
    iv = np.floor(v)
    fu = (u - iu).astype(np.float32)
    fv = (v - iv).astype(np.float32)
    fu = fu * fu * (3 - 2 * fu)
    fv = fv * fv * (3 - 2 * fv)
    iu = iu.astype(np.int64)
    iv = iv.astype(np.int64)
    a = _hash01(iu, iv, salt)
    b = _hash01(iu + 1, iv, salt)
    c = _hash01(iu, iv + 1, salt)
    d = _hash01(iu + 1, iv + 1, salt)
    top = a + (b - a) * fu
    bot = c + (d - c) * fu
    return (top + (bot - top) * fv) * 2 - 1


def coarse_grid(x0: int, y0: int, w: int, h: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Global coordinates of the pixels at multiples of ``step`` covering [x0, x0+w] x [y0, y0+h]
    (x0, y0 multiples of ``step``); the inputs of :func:`upsample`."""
    xs = np.arange(x0, x0 + w + step, step, dtype=np.float64)
    ys = np.arange(y0, y0 + h + step, step, dtype=np.float64)
    return np.meshgrid(xs, ys)


def upsample(a: np.ndarray, step: int, h: int, w: int) -> np.ndarray:
    """Linear interpolation of a field sampled on :func:`coarse_grid` to every pixel (h, w).

    Each output pixel depends only on the global samples around it, so blocks that share
    pixels agree exactly.
    """
    a = a.astype(np.float32, copy=False)

    def axis(n: int) -> tuple[np.ndarray, np.ndarray]:
        i = np.arange(n)
        return i // step, ((i % step) / step).astype(np.float32)

    iy, ty = axis(h)
    ix, tx = axis(w)
    rows = a[iy] * (1 - ty)[:, None] + a[iy + 1] * ty[:, None]
    return rows[:, ix] * (1 - tx) + rows[:, ix + 1] * tx


def fbm(x: np.ndarray, y: np.ndarray, scale: float, salt: int, octaves: int = 3) -> np.ndarray:
    """Fractal value noise (roughly [-1, 1]) with features of ``scale`` (units of x, y) and finer."""
    total = np.zeros(x.shape, np.float32)
    amp, norm = 1.0, 0.0
    s = scale
    for k in range(octaves):
        total += amp * value_noise(x / s, y / s, salt + 7919 * k)
        norm += amp
        amp *= 0.5
        s *= 0.5
    return total / norm


def salt(seed: int, k: int) -> int:
    """Salt of field ``k`` of a phantom's value noise."""
    return (seed * 1_000_003 + k * 7_777) & 0xFFFFFFFF


#: Salt index of the collagen field (shared by the renderer and stromal-nucleus orientation).
COLLAGEN = 1
#: Spacing of collagen fibres (µm) and the scale (µm) of their large-scale flow.
FIBRE_SPACING_UM = 3.2
FLOW_SCALE_UM = 150.0


def collagen_phase(x_um: np.ndarray, y_um: np.ndarray, sd_um: np.ndarray, salt: int,
                   spacing_um: float = FIBRE_SPACING_UM, warp_um: float = 4.0, warp_scale_um: float = 15.0,
                   warp_salt: int = 3) -> np.ndarray:
    """Fibre index: collagen fibres run along its contour lines (one fibre per unit).

    A smooth potential, so fibres never cross or end abruptly; near the tumour it follows the
    signed distance to the border, so fibres wrap around the tumour as in a desmoplastic rim.
    Layers with the same ``salt`` share the large-scale flow and differ in spacing and waviness.
    """
    flow = FLOW_SCALE_UM * fbm(x_um, y_um, FLOW_SCALE_UM, salt, octaves=2).astype(np.float64)
    near = np.exp(-((sd_um / 120.0) ** 2))
    warp = warp_um * fbm(x_um, y_um, warp_scale_um, salt + warp_salt, octaves=2)
    return (near * sd_um * 1.5 + (1 - near) * flow + warp) / spacing_um


def collagen_theta(x_um: np.ndarray, y_um: np.ndarray, sd_fn: Callable[[np.ndarray, np.ndarray], np.ndarray],
                   salt: int) -> np.ndarray:
    """Local fibre direction (radians) at points: along the contours of :func:`collagen_phase`.
    ``sd_fn(x_um, y_um)`` gives the signed distance (µm) to the tumour border there."""
    h = 0.5

    def ph(dx: float, dy: float) -> np.ndarray:
        return collagen_phase(x_um + dx, y_um + dy, sd_fn(x_um + dx, y_um + dy), salt)

    gx = ph(h, 0) - ph(-h, 0)
    gy = ph(0, h) - ph(0, -h)
    return np.arctan2(gy, gx) + np.pi / 2


def pixel_noise(
    seed: int, channel: int, x0: int, y0: int, w: int, h: int, unit: int = NOISE_UNIT
) -> np.ndarray:
    """Standard normal float32 noise for the global window; x0, y0, w, h multiples of ``unit``."""
    out = np.empty((h, w), np.float32)
    for j in range(h // unit):
        for i in range(w // unit):
            key = (seed, 101 + channel, (y0 // unit) + j + (1 << 20), (x0 // unit) + i + (1 << 20))
            rng = np.random.default_rng(key)
            out[j * unit : (j + 1) * unit, i * unit : (i + 1) * unit] = rng.standard_normal(
                (unit, unit), dtype=np.float32
            )
    return out


def illumination(x: np.ndarray, y: np.ndarray, size: int, seed: int, field_px: int = 1900) -> np.ndarray:
    """Multiplicative gain: slow drift (±8%) across the slide times camera-field vignetting (−6%).

    The scanner stitches camera fields, each darker at its corners; the period is one field.
    """
    rng = np.random.default_rng([seed, 77])
    ph = rng.uniform(0, 2 * np.pi, 4)
    kx, ky = rng.uniform(0.6, 1.6, 2) * 2 * np.pi / size
    drift = 1.0 + 0.05 * np.sin(kx * x + ph[0]) * np.cos(ky * y + ph[1]) + 0.03 * np.sin(
        0.7 * kx * (x + y) + ph[2]
    )
    fx = (np.mod(x, field_px) / field_px) - 0.5
    fy = (np.mod(y, field_px) / field_px) - 0.5
    vignette = 1.0 - 0.12 * (fx * fx + fy * fy)
    return (drift * vignette).astype(np.float32)
