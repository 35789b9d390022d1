"""A one-look PNG of a phantom so a person can judge its realism.

Top row, the whole slide: Hoechst; markers (FITC green, Cy3 orange, AF750 magenta); truth
(cell types coloured, tumour outline red, invasive-margin band yellow). Bottom row, the same
three at full resolution for a crop straddling the tumour border. Reads the written files back.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
import zarr
from PIL import Image, ImageDraw
from shapely.geometry import shape

from core.classes import CLASS_COLOURS, CLASS_NAMES

PANEL = 640
#: Display ranges (counts) of FITC, Cy3 and AF750 in the composite, around their thresholds.
MARKER_RANGES = ((500.0, 9000.0), (350.0, 8000.0), (260.0, 4000.0))
MARKER_RGB = ((0.1, 1.0, 0.1), (1.0, 0.55, 0.0), (1.0, 0.0, 1.0))


def _stretch(a: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    a = a.astype(np.float32)
    if lo is None or hi is None:
        lo, hi = np.percentile(a, [1.0, 99.7])
    return np.clip((a - lo) / max(hi - lo, 1e-6), 0, 1)


def _grey(h: np.ndarray) -> Image.Image:
    return Image.fromarray((_stretch(h) * 255).astype(np.uint8)).convert("RGB")


def _composite(m: np.ndarray) -> Image.Image:
    rgb = np.zeros((*m.shape[1:], 3), np.float32)
    for ch in range(3):
        v = _stretch(m[ch], *MARKER_RANGES[ch])
        rgb += v[..., None] * np.asarray(MARKER_RGB[ch], np.float32)
    return Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8))


def _hex(c: str) -> tuple[int, int, int]:
    return int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16)


def _truth(base: np.ndarray, cells: pd.DataFrame, x0: float, y0: float, scale: float,
           tumour, margin_lines, radius: float) -> Image.Image:
    img = Image.fromarray((_stretch(base) * 110).astype(np.uint8)).convert("RGB")
    draw = ImageDraw.Draw(img)
    colours = dict(zip(CLASS_NAMES, CLASS_COLOURS, strict=True))
    for t in CLASS_NAMES:
        sub = cells[cells.type == t]
        col = (90, 90, 90) if t == "other" else _hex(colours[t])
        r = radius * (0.6 if t == "other" else 1.0)
        for x, y in zip((sub.x_px - x0) * scale, (sub.y_px - y0) * scale, strict=True):
            draw.ellipse([x - r, y - r, x + r, y + r], fill=col)

    def line(geom, colour, width):
        for g in getattr(geom, "geoms", [geom]):
            rings = [g.exterior, *g.interiors] if g.geom_type == "Polygon" else [g]
            for ring in rings:
                pts = [((x - x0) * scale, (y - y0) * scale) for x, y in ring.coords]
                draw.line(pts, fill=colour, width=width)

    for g in margin_lines:
        line(g, (230, 210, 0), 2)
    line(tumour, (230, 30, 30), 3)
    return img


def write_preview(out_dir: str | Path, png: str | Path, crop: int = 900) -> Path:
    """Render the 3x2 preview of the phantom in ``out_dir`` to ``png``; returns its path."""
    out = Path(out_dir)
    meta = json.loads((out / "phantom.json").read_text())
    cells = pd.read_csv(out / "cells.csv")
    tumour = shape(json.loads((out / "tumour.geojson").read_text())["features"][0]["geometry"])
    tissue = shape(json.loads((out / "tissue.geojson").read_text())["features"][0]["geometry"])
    w_px = meta["im_half_width_um"] / meta["mpp"]
    bands = [tumour.buffer(w_px).intersection(tissue).boundary, tumour.buffer(-w_px).boundary]
    size = meta["size"]
    with tifffile.TiffFile(out / "mif.ome.tif") as tf:
        levels = tf.series[0].levels
        low = levels[-1].asarray()
        store = tf.series[0].aszarr(level=0)
        z = zarr.open_array(store, mode="r")
        # crop centred on the tumour border, where the invasive margin is
        bx, by = tumour.exterior.interpolate(0.3, normalized=True).coords[0]
        cx0 = int(np.clip(bx - crop / 2, 0, max(0, size - crop)))
        cy0 = int(np.clip(by - crop / 2, 0, max(0, size - crop)))
        hi = np.asarray(z[:, cy0 : cy0 + crop, cx0 : cx0 + crop])
        store.close()
    scale_low = low.shape[-1] / size
    top = [
        _grey(low[0]),
        _composite(low[1:]),
        _truth(low[0], cells, 0, 0, scale_low, tumour, bands, 1.2),
    ]
    sub = cells[(cells.x_px >= cx0) & (cells.x_px < cx0 + crop) & (cells.y_px >= cy0) & (cells.y_px < cy0 + crop)]
    bottom = [
        _grey(hi[0]),
        _composite(hi[1:]),
        _truth(hi[0], sub, cx0, cy0, 1.0, tumour, bands, 5.0),
    ]
    mosaic = Image.new("RGB", (3 * PANEL, 2 * PANEL), (255, 255, 255))
    for row, panels in enumerate((top, bottom)):
        for col, im in enumerate(panels):
            mosaic.paste(im.resize((PANEL, PANEL), Image.Resampling.LANCZOS), (col * PANEL, row * PANEL))
    draw = ImageDraw.Draw(mosaic)
    draw.text((8, 8), f"SYNTHETIC phantom seed {meta['seed']} size {size}", fill=(255, 255, 0))
    png = Path(png)
    mosaic.save(png)
    return png
