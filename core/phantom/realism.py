"""The "real" phantom style: what real Hoechst + mIF exports look like and the clean phantom does not.

Measured on a lung-cancer QuPath export (issue #11): nuclei only 4-8 background standard deviations
above an uneven background, out-of-focus patches, dense clusters of touching lymphocytes, marker
positives dimmer than the paper's thresholds (CD8/Cy3 median about 3000 against 4000, CD3/AF750
about 3160 against 2200, CD20/FITC about 4400 against 5000) and varying between slides and across
a slide, autofluorescent debris, and a marker that is rare on some slides. A labeller with the
paper's fixed thresholds fails on it, which is the point: only calibration makes it work.

Everything here is drawn from generators keyed by ``(seed, 9xx)`` or from global-coordinate noise,
so the clean style's random streams, and therefore its bytes, are untouched. Truth stays exact:
``cells.csv`` ``type`` is what each cell was drawn as, whatever its measured intensities.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage as ndi

from core.jsontypes import JSONDict
from core.phantom import noise

#: Styles of phantom; "clean" is the original (bytes unchanged), "real" adds this module's troubles.
REALISM: tuple[str, ...] = ("clean", "real")
#: Median cell-mean of positive cells per marker channel (FITC, Cy3, AF750) in the "real" style.
POSITIVE_MEDIANS: dict[str, float] = {"FITC": 4400.0, "Cy3": 3000.0, "AF750": 3160.0}
#: Typical measured cell mean of a negative cell per channel (camera offset + tissue background):
#: a positive's amplitude is its measured median minus this.
_BASELINE = np.array([1000.0, 500.0, 300.0], np.float32)
#: Clean medians of the same positives (core.phantom.cells._amplitudes), to scale from.
_CLEAN_MEDIANS = np.array([7000.0, 6500.0, 3300.0], np.float32)
#: Hoechst background of the real style: diffuse level (counts) and extra read noise (counts).
HOECHST_BACKGROUND = 900.0
HOECHST_READ_NOISE = 45.0
#: Amplitude of the µm-scale Hoechst background texture (counts per unit of fbm, SD about 0.35):
#: unlike pixel noise it survives export at 1 µm/px, where real tiles still show 4-8 SDs.
HOECHST_TEXTURE = 260.0
HOECHST_TEXTURE_UM = 2.5
#: SD of Hoechst tissue background that nucleus amplitudes are scaled against (the texture, which
#: dominates at 1 µm/px; at 0.227 µm/px pixel noise adds to it).
HOECHST_BG_SD = 95.0
_SALT_FOCUS, _SALT_HOECHST, _SALT_MARKER, _SALT_UNEVEN, _SALT_TEXTURE = 901, 902, 903, 904, 908


@dataclass(frozen=True)
class Style:
    """Per-slide draws of the real style (written into phantom.json)."""

    contrast: float  # median nucleus contrast of lymphocytes, in background SDs
    marker_scale: tuple[float, float, float]  # slide factor on FITC, Cy3, AF750 positives
    cd20_fraction: float  # CD20 share of lymphocytes outside aggregates (rare on some slides)
    debris_per_mm2: float
    out_of_focus_fraction: float

    def to_json(self) -> JSONDict:
        data: JSONDict = asdict(self)
        return data


def slide_style(seed: int) -> Style:
    """The style of the slide with this seed: slides differ as staining runs do."""
    rng = np.random.default_rng([seed, 900])
    contrast = float(rng.uniform(4.5, 7.0))  # drawn in this order: the same seed gives the same style
    fitc, cy3, af750 = (float(v) for v in np.exp(rng.normal(0.0, 0.12, 3)))
    return Style(
        contrast=contrast,
        marker_scale=(fitc, cy3, af750),
        cd20_fraction=float(rng.choice([0.02, 0.05, 0.12])),
        debris_per_mm2=float(rng.uniform(20.0, 60.0)),
        out_of_focus_fraction=float(rng.uniform(0.08, 0.18)),
    )


def subtype_mix(seed: int, mix: dict[str, float]) -> dict[str, float]:
    """The lymphocyte mix with this slide's CD20 share (the rest keeps its proportions)."""
    cd20 = slide_style(seed).cd20_fraction
    rest = {k: v for k, v in mix.items() if k != "CD20"}
    total = sum(rest.values())
    out = {k: v / total * (1.0 - cd20) for k, v in rest.items()}
    out["CD20"] = cd20
    return {k: out[k] for k in mix}


def _field(x_px: np.ndarray, y_px: np.ndarray, mpp: float, seed: int, salt: int, scale_um: float) -> np.ndarray:
    """Smooth noise in about [-1, 1] at level-0 positions, features of ``scale_um``."""
    return noise.fbm(np.asarray(x_px) * mpp, np.asarray(y_px) * mpp, scale_um, noise.salt(seed, salt), 2)


def channel_factors(seed: int) -> np.ndarray:
    """Gain of the real style's FITC, Cy3 and AF750 relative to the clean phantom's (dimmer channels)."""
    target = np.array([POSITIVE_MEDIANS[c] for c in ("FITC", "Cy3", "AF750")], np.float32)
    return (target - _BASELINE) / _CLEAN_MEDIANS * np.asarray(slide_style(seed).marker_scale, np.float32)


def adjust_amplitudes(seed: int, mpp: float, x: np.ndarray, y: np.ndarray, kind: np.ndarray,
                      amp: np.ndarray, contrast: float | None = None) -> np.ndarray:
    """Real-style amplitudes from clean ones: dim nuclei, dimmer and varying marker positives.

    Hoechst: every nucleus scaled so lymphocytes sit at ``contrast`` background SDs, varying by
    about ±30 % over a few hundred µm (tiles of one slide differ). Markers: positives scaled to
    :data:`POSITIVE_MEDIANS` times the slide factor times a smooth field (±25 %); the dim CD3 of
    CD8_CD3LO cells scales with AF750, so the CD3-hi split moves with the stain. ``contrast``
    replaces the slide's drawn contrast.
    """
    st = slide_style(seed)
    c = st.contrast if contrast is None else float(contrast)
    out = amp.copy()
    h_field = np.exp(0.30 * _field(x, y, mpp, seed, _SALT_HOECHST, 350.0))
    lymph_median = 4300.0  # clean lymphocyte Hoechst median (cells._amplitudes)
    out[:, 0] = amp[:, 0] * (c * HOECHST_BG_SD / lymph_median) * h_field
    m_field = np.exp(0.25 * _field(x, y, mpp, seed, _SALT_MARKER, 500.0))
    factor = channel_factors(seed)
    lymph = kind == 3
    for k in range(3):
        out[lymph, 1 + k] = amp[lymph, 1 + k] * factor[k] * m_field[lymph]
    # macrophage autofluorescence is seen through the same dimmer channels
    mac = kind == 2
    for k in range(3):
        out[mac, 1 + k] = amp[mac, 1 + k] * factor[k]
    return out.astype(np.float32)


def cluster_density(seed: int, mpp: float, n: int, map_px: float, tissue: np.ndarray,
                    near_tumour: np.ndarray) -> np.ndarray:
    """Extra lymphocytes (cells/mm² on the layout map) in dense clusters of touching nuclei."""
    rng = np.random.default_rng([seed, 905])
    res_um = map_px * mpp
    cand = np.argwhere(near_tumour & (tissue > 0))
    out = np.zeros((n, n), np.float32)
    if len(cand) == 0:
        return out
    side_mm = n * res_um / 1000.0
    k = int(rng.poisson(6.0 * side_mm * side_mm)) + 1
    yy, xx = np.mgrid[:n, :n]
    for _ in range(min(k, len(cand))):
        cy, cx = cand[rng.integers(len(cand))]
        r = rng.uniform(20.0, 45.0) / res_um
        out += 14000.0 * np.exp(-(((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r)))
    return out * (tissue > 0)


@dataclass
class Debris:
    """Autofluorescent debris: centres (level-0 px), radii (px), amplitudes (N, 4) per channel."""

    x: np.ndarray
    y: np.ndarray
    r: np.ndarray
    amp: np.ndarray

    def __len__(self) -> int:
        return len(self.x)


def place_debris(seed: int, mpp: float, size: int) -> Debris:
    """Poisson-scattered specks, bright in every marker channel and faint in Hoechst, anywhere on
    the slide (real slides have them on glass too)."""
    st = slide_style(seed)
    rng = np.random.default_rng([seed, 906])
    area_mm2 = (size * mpp / 1000.0) ** 2
    n = int(rng.poisson(st.debris_per_mm2 * area_mm2))
    x = rng.uniform(0, size, n)
    y = rng.uniform(0, size, n)
    r = rng.uniform(0.8, 3.0, n) / mpp
    base = np.exp(rng.normal(np.log(6000.0), 0.6, n))
    amp = np.column_stack([0.15 * base, base * rng.uniform(0.6, 1.4, n), base * rng.uniform(0.6, 1.4, n),
                           0.6 * base * rng.uniform(0.6, 1.4, n)]).astype(np.float32)
    return Debris(x, y, r, amp)


def add_background(sig: np.ndarray, seed: int, mpp: float, ex0: int, ey0: int, tissue: np.ndarray) -> None:
    """Uneven Hoechst background: a diffuse level varying ±40 % over ~300 µm plus a glass floor,
    and a µm-scale texture on tissue (what keeps 1 µm/px exports at 4-8 SDs)."""
    _, eh, ew = sig.shape
    step = 16
    gx, gy = noise.coarse_grid(ex0, ey0, ew, eh, step)
    uneven = 1.0 + 0.4 * _field(gx, gy, mpp, seed, _SALT_UNEVEN, 300.0)
    level = noise.upsample(uneven, step, eh, ew)
    sig[0] += HOECHST_BACKGROUND * level * (0.35 + 0.65 * tissue)
    fine = 2
    fx, fy = noise.coarse_grid(ex0, ey0, ew, eh, fine)
    tex = noise.upsample(_field(fx, fy, mpp, seed, _SALT_TEXTURE, HOECHST_TEXTURE_UM), fine, eh, ew)
    sig[0] += HOECHST_TEXTURE * tex * tissue * level


def stamp_debris(sig: np.ndarray, debris: Debris, ex0: int, ey0: int) -> None:
    """Add the debris near this extended block (Gaussian specks, exact in global coordinates)."""
    _, eh, ew = sig.shape
    reach = 3.0 * debris.r
    near = np.nonzero((debris.x + reach > ex0) & (debris.x - reach < ex0 + ew)
                      & (debris.y + reach > ey0) & (debris.y - reach < ey0 + eh))[0]
    for i in near:
        rr = float(reach[i])
        xa, xb = max(0, int(debris.x[i] - rr) - ex0), min(ew, int(debris.x[i] + rr) + 1 - ex0)
        ya, yb = max(0, int(debris.y[i] - rr) - ey0), min(eh, int(debris.y[i] + rr) + 1 - ey0)
        if xa >= xb or ya >= yb:
            continue
        yy, xx = np.mgrid[ya:yb, xa:xb]
        d2 = (xx + ex0 - debris.x[i]) ** 2 + (yy + ey0 - debris.y[i]) ** 2
        blob = np.exp(-d2 / (2.0 * float(debris.r[i]) ** 2)).astype(np.float32)
        for ch in range(4):
            sig[ch, ya:yb, xa:xb] += debris.amp[i, ch] * blob


def defocus(sig: np.ndarray, seed: int, mpp: float, ex0: int, ey0: int) -> None:
    """Blur every channel where the out-of-focus field is on (patches of ~100 µm)."""
    st = slide_style(seed)
    _, eh, ew = sig.shape
    step = 16
    gx, gy = noise.coarse_grid(ex0, ey0, ew, eh, step)
    f = _field(gx, gy, mpp, seed, _SALT_FOCUS, 120.0)
    # fbm is roughly N(0, 0.35): the quantile of the wanted area fraction
    cut = 0.35 * math.sqrt(2.0) * _erfinv(1.0 - 2.0 * st.out_of_focus_fraction)
    w = np.clip((f - cut) / 0.08, 0.0, 1.0)
    if not w.any():
        return
    wu = noise.upsample(w, step, eh, ew)
    sigma = 1.3 / mpp
    for ch in range(sig.shape[0]):
        blurred = ndi.gaussian_filter(sig[ch], sigma, truncate=3.0, mode="nearest")
        sig[ch] += wu * (blurred - sig[ch])


def _erfinv(y: float) -> float:
    """Inverse error function (Winitzki's approximation, ample for a quantile)."""
    a = 0.147
    ln = math.log(1.0 - y * y)
    t = 2.0 / (math.pi * a) + ln / 2.0
    return math.copysign(math.sqrt(math.sqrt(t * t - ln / a) - t), y)
