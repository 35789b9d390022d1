"""Write a phantom as QuPath exports it: TileExporter tiles + labelled PNGs, and detections GeoJSON.

A lab's training data leaves QuPath this way (issue #11), so the phantom must too, or the real path
(``training.label`` on tiles, label import, tile-holdout training) is never exercised:

* ``NAME [x=…,y=…,w=…,h=…].tif``: a 5-channel ImageJ TIFF (H3342, FITC, Cy3, Cy5, AF751, uint16,
  axes CYX) with the pixel size in the resolution tags (unit ``micron``) and the channel names in
  ImageJ ``Labels``. x, y, w, h are the tile's region in full-resolution (level-0) pixels, as
  QuPath's ``RegionRequest``; a downsample other than 1 is written first, ``[d=4.405,x=…]``.
* ``NAME [...]-labelled.png``: uint8 class values of QuPath's labelled server over cell ROIs
  (nucleus + 1 µm): 0 background and unclassified cells, 1 'CD8', 2 'CD3', 3 'CD20', 4 'CD8: CD3'.
* ``NAME-detections.geojson``: one QuPath ``cell`` feature per cell (level-0 px), with
  ``classification`` ('CD8', 'CD3', 'CD20', 'CD8: CD3'; none for unclassified cells),
  ``nucleusGeometry`` and ``measurements`` (``Cell: <channel> mean``, areas in µm²).

Classes come from the phantom's truth (``cells.csv`` ``type``): the exports a model is trained
and checked on are then exactly right, and a labeller's error can be measured against them.
The phantom has no Cy5 marker; its Cy5 channel is camera offset, noise and a little Cy3 bleed.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from PIL import Image
from shapely.geometry import Polygon, box, mapping
from skimage.measure import find_contours
from skimage.transform import resize

from core.errors import CoreError
from core.phantom.cells import Cells, place_cells
from core.phantom.layout import build_layout
from core.phantom.params import TYPES, PhantomParams
from core.phantom.templates import build_bank
from core.phantom.vessels import place_vessels
from core.progress import CancelToken, Progress

#: Channel names of the exported tiles, in order (the lab's lung export).
EXPORT_CHANNELS: tuple[str, ...] = ("H3342", "FITC", "Cy3", "Cy5", "AF751")
#: QuPath class name and labelled-PNG value of each truth type ("other" cells are unclassified).
QUPATH_CLASSES: dict[str, tuple[str, int]] = {
    "CD8_CD3LO": ("CD8", 1),
    "CD3": ("CD3", 2),
    "CD20": ("CD20", 3),
    "CD8_CD3HI": ("CD8: CD3", 4),
}
_COLOURS = {"CD8": [255, 200, 0], "CD3": [0, 200, 255], "CD20": [255, 0, 200], "CD8: CD3": [0, 220, 0]}
#: Downsample giving ~1.0 µm/px from the phantom's 0.227 µm/px (the lab's export resolution).
DOWNSAMPLE_1UM = 4.405


@dataclass(frozen=True)
class ExportedTile:
    """One written tile: its files and region in level-0 pixels."""

    tif: Path
    png: Path
    x: int
    y: int
    w: int
    h: int


def tile_name(name: str, downsample: float, x: int, y: int, w: int, h: int) -> str:
    """QuPath TileExporter's base name: ``'name [x=0,y=0,w=512,h=512]'`` (``d=`` first if not 1)."""
    d = "" if abs(downsample - 1.0) < 1e-9 else f"d={downsample:.4g},"
    return f"{name} [{d}x={x},y={y},w={w},h={h}]"


def _read_params(phantom_dir: Path) -> PhantomParams:
    try:
        meta = json.loads((phantom_dir / "phantom.json").read_text())
    except (OSError, ValueError) as err:
        raise CoreError(f"{phantom_dir} is not a phantom folder (phantom.json unreadable: {err}). "
                        "Write one with `python -m core phantom --out DIR`.") from None
    params = dict(meta["params"])
    if params.get("subtype_mix") is not None:
        params["subtype_mix"] = tuple(params["subtype_mix"])
    return PhantomParams(**params)


def _cells(p: PhantomParams) -> Cells:
    """The phantom's cells again (same seed, same cells as cells.csv, with their template ids)."""
    lay = build_layout(p)
    return place_cells(p, lay, build_bank(p.seed, p.mpp), place_vessels(p.seed, p.mpp, lay))


def _type_values(cells: Cells) -> np.ndarray:
    lut = np.zeros(len(TYPES), np.uint8)
    for t, (_, v) in QUPATH_CLASSES.items():
        lut[TYPES.index(t)] = v
    return lut[cells.type]


def _label_region(p: PhantomParams, cells: Cells, values: np.ndarray, x: int, y: int, w: int, h: int) -> np.ndarray:
    """Level-0 label image of a region: each cell's mask (nucleus + 1 µm) painted with its value."""
    bank = build_bank(p.seed, p.mpp)
    out = np.zeros((h, w), np.uint8)
    reach = bank.max_half * 2 + 2
    near = np.nonzero((cells.ix > x - reach) & (cells.ix < x + w) & (cells.iy > y - reach) & (cells.iy < y + h)
                      & (values > 0))[0]
    for c in near:
        m = bank.flat[cells.tid[c]].cell_mask
        oy, ox = int(cells.iy[c]) - y, int(cells.ix[c]) - x
        ya, xa, yb, xb = max(oy, 0), max(ox, 0), min(oy + m.shape[0], h), min(ox + m.shape[1], w)
        if ya < yb and xa < xb:
            sub = m[ya - oy : yb - oy, xa - ox : xb - ox]
            out[ya:yb, xa:xb][sub] = values[c]
    return out


def _cy5(cy3: np.ndarray, seed: int, x: int, y: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 907, x, y])
    v = 300.0 + 0.04 * np.clip(cy3.astype(np.float32) - 330.0, 0, None) + rng.normal(0, 15.0, cy3.shape)
    return np.clip(np.rint(v), 0, 65535).astype(np.uint16)


def _write_imagej(path: Path, image: np.ndarray, mpp: float) -> None:
    tifffile.imwrite(
        path, image, imagej=True, resolution=(1.0 / mpp, 1.0 / mpp),
        metadata={"axes": "CYX", "unit": "micron", "Labels": list(EXPORT_CHANNELS)},
        software="HoechstScore phantom (synthetic), QuPath TileExporter layout",
    )


def export_tiles(
    phantom_dir: str | Path,
    out_dir: str | Path,
    downsample: float = 1.0,
    tile_px: int = 512,
    name: str | None = None,
    min_tissue: float = 0.5,
    max_tiles: int | None = None,
    cancel: CancelToken | None = None,
) -> Generator[Progress, None, list[ExportedTile]]:
    """Write TileExporter tiles of a phantom at ``downsample``; yields progress, returns the tiles.

    ``tile_px``: tile side at the export resolution; tiles on a grid from (0, 0), kept when at
    least ``min_tissue`` of their area is tissue; ``max_tiles`` keeps the tiles with the most
    lymphocytes (labs export immune-rich fields). ``name``: tile name prefix (the image name in
    QuPath), by default the phantom folder's name.
    """
    from core.slides import open_slide

    cancel = cancel or CancelToken()
    src = Path(phantom_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    p = _read_params(src)
    name = name or src.resolve().name
    if not 1.0 <= downsample <= 64.0 or tile_px < 16:
        raise CoreError(f"Downsample {downsample} or tile size {tile_px} px out of range; use 1-64 and >= 16 px.")
    side = int(round(tile_px * downsample))
    cells = _cells(p)
    values = _type_values(cells)
    lay_tissue = build_layout(p).tissue
    boxes = []
    for y in range(0, p.size - side + 1, side):
        for x in range(0, p.size - side + 1, side):
            frac = lay_tissue.intersection(box(x, y, x + side, y + side)).area / (side * side)
            n_lym = int(np.sum((values > 0) & (cells.x >= x) & (cells.x < x + side) & (cells.y >= y) & (cells.y < y + side)))
            if frac >= min_tissue:
                boxes.append((n_lym, x, y))
    if max_tiles is not None:
        boxes = sorted(sorted(boxes, reverse=True)[:max_tiles], key=lambda b: (b[2], b[1]))
    if not boxes:
        raise CoreError(f"No {side} px tile of {src} holds {min_tissue:.0%} tissue; use a smaller --tile-px.")
    mpp = p.mpp * downsample
    written: list[ExportedTile] = []
    with open_slide(src / "mif.ome.tif") as slide:
        for i, (_, x, y) in enumerate(boxes, 1):
            cancel.check()
            raw = slide.read_region((x, y), 0, (side, side))
            lab = _label_region(p, cells, values, x, y, side, side)
            if side != tile_px:
                img = np.stack([resize(c.astype(np.float32), (tile_px, tile_px), order=1, anti_aliasing=True,
                                       preserve_range=True) for c in raw])
                raw = np.clip(np.rint(img), 0, 65535).astype(np.uint16)
                centres = np.minimum(side - 1, np.floor((np.arange(tile_px) + 0.5) * downsample).astype(np.int64))
                lab = lab[np.ix_(centres, centres)]
            image = np.concatenate([raw[:3], _cy5(raw[2], p.seed, x, y)[None], raw[3:4]])
            base = tile_name(name, downsample, x, y, side, side)
            tif, png = out / f"{base}.tif", out / f"{base}-labelled.png"
            _write_imagej(tif, image, mpp)
            Image.fromarray(lab).save(png)
            written.append(ExportedTile(tif, png, x, y, side, side))
            yield Progress(i, len(boxes), f"Tile {i} of {len(boxes)}")
    return written


@lru_cache(maxsize=4096)
def _outline(seed: int, mpp: float, tid: int, nucleus: bool) -> np.ndarray:
    """Polygon (x, y in template pixels) of a template's cell or nucleus mask, simplified."""
    t = build_bank(seed, mpp).flat[tid]
    mask = (t.nucleus > 0.15) if nucleus else t.cell_mask  # nucleus: mean 1 inside, 0 outside
    contours = find_contours(np.pad(mask.astype(np.float32), 1), 0.5)
    if not contours:
        return np.zeros((0, 2))
    ring = max(contours, key=len)[:, ::-1] - 1.0
    poly = Polygon(ring).simplify(0.7)
    return np.asarray(poly.exterior.coords) if not poly.is_empty else np.zeros((0, 2))


def write_detections(phantom_dir: str | Path, path: str | Path) -> Path:
    """Write the phantom's cells as QuPath cell detections (GeoJSON FeatureCollection, level-0 px)."""
    src = Path(phantom_dir)
    p = _read_params(src)
    cells = _cells(p)
    table = pd.read_csv(src / "cells.csv")
    if len(table) != len(cells):
        raise CoreError(f"{src}/cells.csv has {len(table)} cells but its phantom has {len(cells)}; "
                        "the folder was changed after it was written.")
    means = table[["mean_hoechst", "mean_fitc", "mean_cy3", "mean_af750"]].to_numpy(np.float64)
    cy5 = 300.0 + 0.04 * np.clip(means[:, 2] - 330.0, 0, None)
    px2 = p.mpp * p.mpp
    bank = build_bank(p.seed, p.mpp)
    features = []
    for c in range(len(cells)):
        tid = int(cells.tid[c])
        ox, oy = float(cells.ix[c]), float(cells.iy[c])
        cell_ring = _outline(p.seed, p.mpp, tid, False) + (ox, oy)
        nuc_ring = _outline(p.seed, p.mpp, tid, True) + (ox, oy)
        if len(cell_ring) < 4:
            continue
        props: dict = {
            "objectType": "cell",
            "measurements": {
                "Nucleus: Area µm^2": round(float(cells.area_um2[c]), 2),
                "Cell: Area µm^2": round(float(bank.flat[tid].cell_mask.sum() * px2), 2),
                **{f"Cell: {ch} mean": round(float(v), 1) for ch, v in
                   zip(EXPORT_CHANNELS, (means[c, 0], means[c, 1], means[c, 2], cy5[c], means[c, 3]), strict=True)},
            },
        }
        t = TYPES[int(cells.type[c])]
        if t in QUPATH_CLASSES:
            cls = QUPATH_CLASSES[t][0]
            props["classification"] = {"name": cls, "color": _COLOURS[cls]}
        feat = {"type": "Feature", "id": f"cell-{c + 1}",
                "geometry": mapping(Polygon(np.round(cell_ring, 2))), "properties": props}
        if len(nuc_ring) >= 4:
            feat["nucleusGeometry"] = mapping(Polygon(np.round(nuc_ring, 2)))
        features.append(feat)
    out = Path(path)
    out.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return out
