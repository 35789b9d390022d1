"""Where the cells of a phantom are, what they are and how bright they stain.

Cells are drawn once for the whole slide (a few hundred bytes each, cheap even at 40000²) as
inhomogeneous Poisson processes over the layout maps, then thinned Matérn-II style so nuclei
crowd without piling up (lymphocytes win over tumour cells, tumour cells over fibroblasts).
Marker amplitudes straddle the labelling thresholds of :mod:`core.phantom.params`: most cells
are clearly positive or negative, a few percent land near a threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from core.phantom import noise, realism
from core.phantom.layout import Layout, contains
from core.phantom.params import COMPARTMENTS, TYPES, PhantomParams, lymphocyte_density
from core.phantom.templates import LYMPH_TEXTURES, Bank, orientation_bin
from core.phantom.vessels import Vessels, endothelium, inside

#: Kinds of cell (all but lymphocytes are type "other").
KINDS = ("tumour", "stromal", "macrophage", "lymphocyte")
_TLS_MIX = {"CD8_CD3LO": 0.12, "CD3": 0.22, "CD20": 0.63, "CD8_CD3HI": 0.03}
#: Equal-area radius (µm) of each kind for crowding, and the overlap allowed between two.
_RADIUS_UM = {"tumour": 4.8, "stromal": 2.6, "macrophage": 4.2, "lymphocyte": 3.5}


@dataclass
class Cells:
    """One entry per cell. x, y: nucleus centroid in level-0 px; ix, iy: template top-left;
    tid: index into ``Bank.flat``; amp: (N, 4) Hoechst and marker amplitudes in counts."""

    x: np.ndarray
    y: np.ndarray
    ix: np.ndarray
    iy: np.ndarray
    tid: np.ndarray
    kind: np.ndarray
    type: np.ndarray
    compartment: np.ndarray
    area_um2: np.ndarray
    amp: np.ndarray

    def __len__(self) -> int:
        return len(self.x)


def _poisson(rng: np.random.Generator, lam_per_mm2: np.ndarray, layout: Layout, mpp: float) -> tuple[np.ndarray, np.ndarray]:
    """Inhomogeneous Poisson points over a map of densities (cells/mm²) -> level-0 px."""
    pix_mm2 = (layout.map_px * mpp / 1000.0) ** 2
    counts = rng.poisson(np.clip(lam_per_mm2, 0, None) * pix_mm2)
    rows, cols = np.nonzero(counts)
    n = counts[rows, cols]
    rows = np.repeat(rows, n)
    cols = np.repeat(cols, n)
    x = (cols + rng.uniform(size=len(cols))) * layout.map_px
    y = (rows + rng.uniform(size=len(rows))) * layout.map_px
    return x, y


def _lymph_density(p: PhantomParams, lay: Layout, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Lymphocyte and lymphoid-aggregate (TLS) densities in cells/mm² on the map grid."""
    d_ct, d_im = lymphocyte_density(p.infiltration_ct), lymphocyte_density(p.infiltration_im)
    d_st = 0.3 * d_ct + 15.0
    w = p.im_half_width
    sd = lay.signed_dist_um
    tum = lay.tumour_map > 0
    # inside the tumour most lymphocytes sit in the stroma between glands, few in epithelium
    where = np.where(lay.epithelium > 0, 0.45, np.where(lay.lumen > 0, 0.0, 2.0))
    core = tum & (sd < -w)
    ref = core if core.any() else tum
    # Normalise so the reference area averages 1; on tiny slides that area can be all lumen (mean 0),
    # where dividing would blow the density up past what a Poisson draw accepts, so leave it as is.
    ref_mean = float(where[ref].mean()) if ref.any() else 0.0
    if ref_mean > 0.1:
        where = where / ref_mean
    base = np.where(tum, d_ct * where, d_st * np.where(lay.lumen > 0, 0.0, 1.0))
    band = 1.0 / (1.0 + (np.abs(sd) / w) ** 10)
    band_target = d_im * np.where(tum, where, 1.0)
    lam = base + (band_target - base) * band
    n = lam.shape[0]
    from scipy import ndimage as ndi  # local: only needed here

    patch = ndi.gaussian_filter(rng.standard_normal((n, n)).astype(np.float32), 60.0 / (lay.map_px * p.mpp))
    # Centre before scaling: on a small map the smoothed field's mean is not ~0 and exp() would explode.
    patch = np.exp(0.45 * (patch - patch.mean()) / (patch.std() + 1e-9) - 0.10)
    lam = lam * patch * lay.tissue_map
    # tertiary lymphoid structures just outside the border, more of them in hot margins
    tls = np.zeros_like(lam)
    border_mm = lay.tumour.length * p.mpp / 1000.0
    n_tls = int(rng.poisson(p.infiltration_im * 0.6 * border_mm))
    cand = np.argwhere((sd > 0.2 * w) & (sd < 1.2 * w) & (lay.tissue_map > 0))
    yy, xx = np.mgrid[:n, :n]
    res_um = lay.map_px * p.mpp
    for _ in range(min(n_tls, len(cand))):
        cy, cx = cand[rng.integers(len(cand))]
        r = min(rng.uniform(50, 110), 0.3 * w) / res_um
        tls += 6000.0 * np.exp(-(((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r)) ** 2)
    return lam.astype(np.float32), (tls * lay.tissue_map).astype(np.float32)


def _thin(x: np.ndarray, y: np.ndarray, r_px: np.ndarray, mark: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """Matérn-II thinning: drop the higher-mark cell of every pair closer than the allowed gap."""
    if len(x) < 2:
        return np.ones(len(x), bool)
    tree = cKDTree(np.column_stack([x, y]))
    pairs = tree.query_pairs(r=2 * float(r_px.max()), output_type="ndarray")
    i, j = pairs[:, 0], pairs[:, 1]
    d = np.hypot(x[i] - x[j], y[i] - y[j])
    clash = d < (r_px[i] + r_px[j]) * np.minimum(factor[i], factor[j])
    loser = np.where(mark[i[clash]] > mark[j[clash]], i[clash], j[clash])
    keep = np.ones(len(x), bool)
    keep[loser] = False
    return keep


def _ln(rng: np.random.Generator, median: float, sigma: float, n: int) -> np.ndarray:
    return median * np.exp(sigma * rng.standard_normal(n))


def place_cells(p: PhantomParams, lay: Layout, bank: Bank, vessels: Vessels | None = None) -> Cells:
    """Draw all cells of phantom ``p``; deterministic for its seed."""
    rng = np.random.default_rng([p.seed, 3])
    tum = lay.tumour_map > 0
    septa = tum & (lay.epithelium == 0) & (lay.lumen == 0)
    outside = (lay.tissue_map > 0) & ~tum
    lam_lym, lam_tls = _lymph_density(p, lay, rng)
    n = lam_lym.shape[0]
    if p.realism == "real":  # own generator: the clean stream below stays as it was
        near = np.abs(lay.signed_dist_um) < 2.0 * p.im_half_width
        lam_lym = lam_lym + realism.cluster_density(p.seed, p.mpp, n, lay.map_px, lay.tissue_map, near)
    from scipy import ndimage as ndi

    cellular = ndi.gaussian_filter(rng.standard_normal((n, n)).astype(np.float32), 120.0 / (lay.map_px * p.mpp))
    cellular = np.exp(0.5 * (cellular - cellular.mean()) / (cellular.std() + 1e-9) - 0.125)  # loose to cellular
    dens = {
        "tumour": 26000.0 * lay.epithelium,
        "stromal": (1000.0 * outside + 2200.0 * septa) * np.clip(lay.fibre_density, 0.3, 1) * cellular,
        "macrophage": 90.0 * (outside | septa),
        "lymphocyte": lam_lym + lam_tls,
    }
    xs, ys, ks = [], [], []
    for k, kind_name in enumerate(KINDS):
        x, y = _poisson(rng, dens[kind_name], lay, p.mpp)
        xs.append(x)
        ys.append(y)
        ks.append(np.full(len(x), k, np.int8))
    x, y, kind = np.concatenate(xs), np.concatenate(ys), np.concatenate(ks)
    endo_theta = np.zeros(0)
    if vessels is not None and len(vessels):
        keep = ~inside(vessels, x, y, 2.0 / p.mpp)
        x, y, kind = x[keep], y[keep], kind[keep]
        ex, ey, endo_theta = endothelium(vessels, p.mpp, p.seed)
        x, y = np.concatenate([x, ex]), np.concatenate([y, ey])
        kind = np.concatenate([kind, np.full(len(ex), 1, np.int8)])
    endo = np.zeros(len(x), bool)
    endo[len(x) - len(endo_theta) :] = True
    # TLS membership (for the B-cell-rich subtype mix), decided before thinning
    tls_frac = lay.sample(lam_tls, x, y) / np.maximum(lay.sample(dens["lymphocyte"], x, y), 1e-6)
    in_tls = (kind == 3) & (rng.uniform(size=len(x)) < tls_frac)
    r_px = np.array([_RADIUS_UM[k] for k in KINDS])[kind] / p.mpp
    mark = kind.choose([2.0, 3.0, 1.0, 0.0]) + rng.uniform(size=len(x)) - 5.0 * endo
    factor = np.array([0.68, 0.55, 0.85, 0.9])[kind]
    keep = _thin(x, y, r_px, mark, factor)
    keep &= contains(lay.tissue, x, y)
    x, y, kind, in_tls = x[keep], y[keep], kind[keep], in_tls[keep]
    endo_theta = endo_theta[keep[endo]]
    endo = endo[keep]
    n = len(x)
    # types and templates
    ctype = np.zeros(n, np.int8)
    lym = np.nonzero(kind == 3)[0]
    subs = list(LYMPH_TEXTURES)
    mix = np.array([p.mix[s] for s in subs])
    tls_mix = np.array([_TLS_MIX[s] for s in subs])
    u = rng.uniform(size=len(lym))
    sub = np.where(in_tls[lym], np.searchsorted(np.cumsum(tls_mix), u), np.searchsorted(np.cumsum(mix), u))
    sub = np.minimum(sub, 3)
    ctype[lym] = np.array([TYPES.index(s) for s in subs])[sub]
    off = bank.offsets()
    tid = np.zeros(n, np.int64)
    for s, name in enumerate(subs):
        idx = lym[sub == s]
        tid[idx] = off[name] + rng.integers(0, len(bank.lymph[name]), len(idx))
    idx = np.nonzero(kind == 2)[0]
    tid[idx] = off["macrophage"] + rng.integers(0, len(bank.macrophage), len(idx))
    def sd_fn(xu: np.ndarray, yu: np.ndarray) -> np.ndarray:
        return lay.sample(lay.signed_dist_um, xu / p.mpp, yu / p.mpp)

    for k_name, group in (("tumour", bank.tumour), ("stromal", bank.stromal)):
        idx = np.nonzero(kind == KINDS.index(k_name))[0]
        if k_name == "tumour":
            theta = lay.sample(lay.epi_theta, x[idx], y[idx], order=0)
        else:
            theta = noise.collagen_theta(x[idx] * p.mpp, y[idx] * p.mpp, sd_fn, noise.salt(p.seed, noise.COLLAGEN))
            theta[endo[idx]] = endo_theta
        theta = theta + rng.normal(0, 0.2, len(idx))
        b = orientation_bin(theta)
        per = len(group[0])
        tid[idx] = np.array([off[f"{k_name}{i}"] for i in range(len(group))])[b] + rng.integers(0, per, len(idx))
    cy = np.array([t.cy for t in bank.flat])[tid]
    cx = np.array([t.cx for t in bank.flat])[tid]
    ix = np.round(x - cx).astype(np.int64)
    iy = np.round(y - cy).astype(np.int64)
    x, y = ix + cx, iy + cy
    area = np.array([t.area_px for t in bank.flat])[tid] * p.mpp**2
    amp = _amplitudes(rng, kind, ctype)
    if p.realism == "real":
        amp = realism.adjust_amplitudes(p.seed, p.mpp, x, y, kind, amp, p.nuclear_contrast)
    comp = np.full(n, -1, np.int8)
    for c, geom in enumerate((lay.comp.centre, lay.comp.margin, lay.comp.stroma)):
        comp[(comp < 0) & contains(geom, x, y)] = c
    ok = comp >= 0
    order = np.lexsort((x[ok], y[ok]))
    sel = np.nonzero(ok)[0][order]
    return Cells(x[sel], y[sel], ix[sel], iy[sel], tid[sel], kind[sel], ctype[sel], comp[sel], area[sel], amp[sel])


def _amplitudes(rng: np.random.Generator, kind: np.ndarray, ctype: np.ndarray) -> np.ndarray:
    """(N, 4) amplitudes: Hoechst nucleus mean above background; marker mean over the cell."""
    n = len(kind)
    amp = np.zeros((n, 4), np.float32)
    hoechst = {0: (2500.0, 0.28), 1: (3000.0, 0.2), 2: (2300.0, 0.2), 3: (4300.0, 0.16)}
    for k, (med, sg) in hoechst.items():
        m = kind == k
        amp[m, 0] = _ln(rng, med, sg, int(m.sum()))
    t = np.asarray(TYPES, dtype=object)[ctype]
    cd20 = t == "CD20"
    cd8 = (t == "CD8_CD3LO") | (t == "CD8_CD3HI")
    cd3hi = (t == "CD3") | (t == "CD8_CD3HI")
    lo = t == "CD8_CD3LO"
    mac = kind == 2
    amp[cd20, 1] = _ln(rng, 7000.0, 0.35, int(cd20.sum()))
    amp[mac, 1] = _ln(rng, 2400.0, 0.5, int(mac.sum()))
    amp[cd8, 2] = _ln(rng, 6500.0, 0.35, int(cd8.sum()))
    amp[mac, 2] = _ln(rng, 800.0, 0.5, int(mac.sum()))
    amp[cd3hi, 3] = _ln(rng, 3300.0, 0.3, int(cd3hi.sum()))
    amp[lo, 3] = _ln(rng, 1150.0, 0.18, int(lo.sum()))
    return amp


def compartment_names(c: np.ndarray) -> np.ndarray:
    return np.asarray(COMPARTMENTS, dtype=object)[c]
