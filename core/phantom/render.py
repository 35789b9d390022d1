"""Render one block of a phantom: stamp nuclei and membranes, add tissue, optics and camera.

A block is rendered with a margin so blur and cells crossing its border come out the same as
in the neighbouring block; every random field is a function of global coordinates
(:mod:`core.phantom.noise`), so blocks join seamlessly and can be rendered in any order or in
parallel. Per-cell means are measured here, on the final integer pixels, over each cell's
nucleus + 1 µm mask, as the paper's QuPath measurement did.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from PIL import Image, ImageDraw
from scipy import ndimage as ndi
from shapely.geometry import box

from core.phantom import noise, realism, vessels
from core.phantom.cells import Cells
from core.phantom.layout import Layout
from core.phantom.params import PhantomParams
from core.phantom.templates import Bank
from core.phantom.vessels import Vessels

MARGIN = 64
#: Camera offset (counts on empty glass) per channel: Hoechst, FITC, Cy3, AF750.
OFFSET = np.array([210.0, 430.0, 330.0, 250.0], np.float32)
#: Counts per photo-electron (shot noise) and read noise (counts) per channel.
GAIN = np.array([2.5, 3.0, 3.0, 4.0], np.float32)
READ_NOISE = np.array([10.0, 14.0, 14.0, 28.0], np.float32)
#: Optical blur (px at 0.227 µm) per channel; longer wavelengths blur more.
BLUR_UM = np.array([0.2, 0.22, 0.25, 0.3], np.float32)
#: Bleed-through: BLEED[i, j] is the fraction of channel j's signal seen in channel i.
BLEED = np.array(
    [[1, 0, 0, 0], [0.025, 1, 0.01, 0], [0.003, 0.07, 1, 0.01], [0, 0, 0.03, 1]], np.float32
)


@dataclass
class BlockResult:
    """Rendered interior of one block: (4, h, w) uint16, and the means of the cells it owns."""

    bx: int
    by: int
    image: np.ndarray
    cell_ids: np.ndarray
    means: np.ndarray  # (n, 4)


class Renderer:
    """Holds what every block needs; :meth:`render` is thread-safe."""

    def __init__(self, p: PhantomParams, lay: Layout, cells: Cells, bank: Bank, vessels: Vessels) -> None:
        self.p, self.lay, self.cells, self.bank, self.vessels = p, lay, cells, bank, vessels
        b = p.block_size
        self.nbx = (p.size + b - 1) // b
        key = (cells.y // b).astype(np.int64) * self.nbx + (cells.x // b).astype(np.int64)
        self._order = np.argsort(key, kind="stable")
        self._starts = np.searchsorted(key[self._order], np.arange(self.nbx * self.nbx + 1))
        self.tissue = lay.tissue
        shapely.prepare(self.tissue)
        self.real = p.realism == "real"
        self.debris = realism.place_debris(p.seed, p.mpp, p.size) if self.real else None
        self.read_noise = READ_NOISE.copy()
        if self.real:
            self.read_noise[0] = realism.HOECHST_READ_NOISE

    def _gather(self, bx: int, by: int) -> np.ndarray:
        idx = []
        for j in range(max(0, by - 1), min(self.nbx, by + 2)):
            for i in range(max(0, bx - 1), min(self.nbx, bx + 2)):
                k = j * self.nbx + i
                idx.append(self._order[self._starts[k] : self._starts[k + 1]])
        return np.concatenate(idx) if idx else np.zeros(0, np.int64)

    def _tissue_mask(self, ex0: int, ey0: int, ew: int, eh: int) -> np.ndarray:
        win = box(ex0, ey0, ex0 + ew, ey0 + eh)
        if self.tissue.contains(win):
            return np.ones((eh, ew), np.float32)
        clip = self.tissue.intersection(win)
        img = Image.new("L", (ew, eh), 0)
        if not clip.is_empty:
            draw = ImageDraw.Draw(img)
            for poly in getattr(clip, "geoms", [clip]):
                if poly.geom_type != "Polygon":
                    continue
                draw.polygon([(x - ex0, y - ey0) for x, y in poly.exterior.coords], fill=1)
                for ring in poly.interiors:
                    draw.polygon([(x - ex0, y - ey0) for x, y in ring.coords], fill=0)
        return np.asarray(img, np.float32)

    def render(self, bx: int, by: int) -> BlockResult:
        p, cells = self.p, self.cells
        b = p.block_size
        x0, y0 = bx * b, by * b
        w, h = min(b, p.size - x0), min(b, p.size - y0)
        unit = noise.NOISE_UNIT
        ex0, ey0 = x0 - MARGIN, y0 - MARGIN
        ew = -(-(w + 2 * MARGIN) // unit) * unit
        eh = -(-(h + 2 * MARGIN) // unit) * unit
        sig = np.zeros((4, eh, ew), np.float32)
        ids = self._gather(bx, by)
        flat = self.bank.flat
        for c in ids:
            t = flat[cells.tid[c]]
            th, tw = t.nucleus.shape
            oy, ox = int(cells.iy[c]) - ey0, int(cells.ix[c]) - ex0
            ya, xa = max(oy, 0), max(ox, 0)
            yb, xb = min(oy + th, eh), min(ox + tw, ew)
            if ya >= yb or xa >= xb:
                continue
            sl = (slice(ya, yb), slice(xa, xb))
            tsl = (slice(ya - oy, yb - oy), slice(xa - ox, xb - ox))
            a = cells.amp[c]
            sig[0][sl] += a[0] * t.nucleus[tsl]
            if t.membrane is not None:
                m = t.membrane[tsl]
                for ch in (1, 2, 3):
                    if a[ch] > 0:
                        sig[ch][sl] += a[ch] * m
        self._haze(sig)
        lumens = self._vessels(sig, ex0, ey0)
        before = sig[1:].copy() if self.real else None
        self._background(sig, ex0, ey0, lumens)
        if before is not None:  # tissue autofluorescence seen through the real style's dimmer channels
            gain = realism.channel_factors(p.seed)[:, None, None]
            sig[1:] = before + (sig[1:] - before) * gain
        if self.debris is not None:
            realism.add_background(sig, p.seed, p.mpp, ex0, ey0, self._tissue_mask(ex0, ey0, ew, eh))
            realism.stamp_debris(sig, self.debris, ex0, ey0)
            realism.defocus(sig, p.seed, p.mpp, ex0, ey0)
        # optics, bleed-through, illumination, camera
        mixed = np.tensordot(BLEED, sig, axes=1)
        gx, gy = noise.coarse_grid(ex0, ey0, ew, eh, 16)
        gain = noise.upsample(noise.illumination(gx, gy, p.size, p.seed), 16, eh, ew)
        out = np.empty((4, eh, ew), np.float32)
        for ch in range(4):
            s = ndi.gaussian_filter(mixed[ch], BLUR_UM[ch] / p.mpp, truncate=3.0) * gain
            np.maximum(s, 0, out=s)
            sd = np.sqrt(GAIN[ch] * s + self.read_noise[ch] ** 2)
            s += OFFSET[ch] + sd * noise.pixel_noise(p.seed, ch, ex0, ey0, ew, eh)
            out[ch] = s
        img = np.clip(np.rint(out), 0, 65535).astype(np.uint16)
        # measure owned cells on the final pixels
        own = ids[(cells.x[ids] >= x0) & (cells.x[ids] < x0 + w) & (cells.y[ids] >= y0) & (cells.y[ids] < y0 + h)]
        means = np.zeros((len(own), 4), np.float32)
        for k, c in enumerate(own):
            t = flat[cells.tid[c]]
            th, tw = t.cell_mask.shape
            oy, ox = int(cells.iy[c]) - ey0, int(cells.ix[c]) - ex0
            ya, xa = max(oy, 0), max(ox, 0)
            yb, xb = min(oy + th, eh), min(ox + tw, ew)
            mk = t.cell_mask[ya - oy : yb - oy, xa - ox : xb - ox]
            means[k] = img[:, ya:yb, xa:xb][:, mk].mean(axis=1)
        inner = img[:, MARGIN : MARGIN + h, MARGIN : MARGIN + w]
        return BlockResult(bx, by, np.ascontiguousarray(inner), own, means)

    def _haze(self, sig: np.ndarray) -> None:
        """Out-of-focus Hoechst glow around nuclei (a thick section is never all in focus).

        Computed on a 4x coarser grid aligned to global pixels, so blocks agree."""
        _, eh, ew = sig.shape
        ds = sig[0].reshape(eh // 4, 4, ew // 4, 4).mean(axis=(1, 3))
        ds = ndi.gaussian_filter(ds, 2.5 / (4 * self.p.mpp), mode="nearest")
        ds = np.pad(ds, ((0, 1), (0, 1)), mode="edge")
        sig[0] += 0.06 * noise.upsample(ds, 4, eh, ew)

    def _vessels(self, sig: np.ndarray, ex0: int, ey0: int) -> np.ndarray | None:
        """Stamp red blood cells of the lumens near this block; returns the lumen mask or None."""
        v = self.vessels
        _, eh, ew = sig.shape
        near = np.nonzero((v.x + v.a > ex0) & (v.x - v.a < ex0 + ew) & (v.y + v.a > ey0) & (v.y - v.a < ey0 + eh))[0]
        if len(near) == 0:
            return None
        img = Image.new("L", (ew, eh), 0)
        draw = ImageDraw.Draw(img)
        rbc = vessels.rbc_template(self.p.mpp)
        th, tw = rbc.shape
        for i in near:
            draw.polygon([(x - ex0, y - ey0) for x, y in vessels.lumen_polygon(v, int(i))], fill=1)
            rx, ry = vessels.red_cells(v, int(i), self.p.seed, self.p.mpp)
            for cx, cy in zip(rx, ry, strict=True):
                oy, ox = int(round(cy)) - th // 2 - ey0, int(round(cx)) - tw // 2 - ex0
                ya, xa, yb, xb = max(oy, 0), max(ox, 0), min(oy + th, eh), min(ox + tw, ew)
                if ya < yb and xa < xb:
                    patch = rbc[ya - oy : yb - oy, xa - ox : xb - ox]
                    for ch in range(4):
                        sig[ch, ya:yb, xa:xb] += vessels.RBC_SIGNAL[ch] * patch
        return np.asarray(img, np.float32)

    def _background(self, sig: np.ndarray, ex0: int, ey0: int, lumens: np.ndarray | None) -> None:
        """Tissue signal between nuclei: diffuse Hoechst, collagen autofluorescence (FITC most)."""
        p, lay = self.p, self.lay
        _, eh, ew = sig.shape
        tissue = self._tissue_mask(ex0, ey0, ew, eh)
        if lumens is not None:
            tissue *= 1.0 - 0.85 * lumens
        if not tissue.any():
            return
        step = 4
        gx, gy = noise.coarse_grid(ex0, ey0, ew, eh, step)
        xu, yu = gx * p.mpp, gy * p.mpp
        sd = lay.sample(lay.signed_dist_um, gx, gy)
        salt = noise.salt(p.seed, noise.COLLAGEN)
        fine = noise.collagen_phase(xu, yu, sd, salt, 3.2, 4.0, 15.0, 3)
        bundle = noise.collagen_phase(xu, yu, sd, salt, 8.5, 7.0, 32.0, 5)
        b_fine = np.clip(0.35 + 1.4 * noise.fbm(xu, yu, 14.0, noise.salt(p.seed, 2), 2), 0, 1)
        b_bundle = np.clip(0.1 + 1.6 * noise.fbm(xu, yu, 26.0, noise.salt(p.seed, 4), 2), 0, 1)
        mott = noise.fbm(xu, yu, 12.0, noise.salt(p.seed, 3), 2)
        dens = lay.sample(lay.fibre_density, gx, gy)
        epi = lay.sample(lay.epithelium, gx, gy)

        def up(a: np.ndarray) -> np.ndarray:
            return noise.upsample(a, step, eh, ew)

        def waves(phase: np.ndarray, power: int) -> np.ndarray:
            c = 0.5 + 0.5 * np.cos(2 * np.pi * up(phase - np.floor(phase.min())))  # integer shift: exact
            return c**power

        fib_u = (waves(fine, 4) * up(b_fine * dens) + 1.4 * waves(bundle, 6) * up(b_bundle * dens)) * tissue
        mott_u = up(mott)
        dens_u = up(dens) * tissue
        epi_u = up(epi) * tissue
        sig[0] += tissue * (140.0 + 40.0 * mott_u) + 60.0 * dens_u + 70.0 * fib_u
        sig[1] += tissue * (260.0 + 60.0 * mott_u) + 1300.0 * fib_u + 250.0 * dens_u + 280.0 * epi_u
        sig[2] += tissue * (140.0 + 30.0 * mott_u) + 380.0 * fib_u + 90.0 * epi_u
        sig[3] += tissue * (40.0 + 10.0 * mott_u) + 70.0 * fib_u
