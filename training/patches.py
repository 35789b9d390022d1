"""Cut labelled Hoechst patches from mIF slides and QuPath TileExporter folders, cached on disk.

Each source (one slide, or one tile folder) becomes a cache entry ``<out>/cache/<name>-<key>/``:
``images.npy`` (N, P, P) raw Hoechst (slide dtype, or float32 when resampled), ``labels.npy``
(N, P, P) uint8 class masks, ``centroids.npz`` (patch, y, x, class, cell id and ``owned`` of each
cell centroid inside a patch, for per-cell metrics), ``owned.npy`` (N, 4: y0, y1, x0, x1 in patch
px, the part of each patch nearer its centre than any neighbour's: these windows do not overlap, so
a cell is ``owned`` by exactly one patch and counted once), ``boxes.npy`` (N, 4: x0, y0, x1, y1 of
each patch in level-0 px of its source slide, NaN when a tile's name lacks QuPath coordinates),
``patch_tile.npy`` (tile index of each patch, -1 for slides; names in meta ``tile_names``),
``patch_pixels.npy`` (N, C label pixels per class), ``cells.csv`` (slides) and ``meta.json``. The key hashes the
file, its size and mtime, the label config and the patch settings, so epochs, resumed runs and
re-runs never re-read or re-label a slide, and a changed threshold never reuses stale labels.
Patches are stored raw and normalised when loaded (:func:`core.normalise.normalise_patch`), exactly
as inference normalises a tile.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from collections.abc import Generator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.format import open_memmap
from skimage.filters import threshold_otsu
from skimage.measure import label as cc_label
from skimage.measure import regionprops

from core.classes import CLASS_NAMES
from core.progress import CancelToken, Progress
from core.slides import open_slide
from training.config import LabelConfig
from training.errors import LabelError
from training.labeller import label_slide
from training.segment import segment_nuclei, smooth
from training.tiles import TileImage, find_tiles, read_tile

#: Patches of slides are labelled once and then resampled to the model's pixel size.
CACHE_VERSION = 2


@dataclass(frozen=True)
class PatchParams:
    """Patch geometry: ``size`` px at ``mpp`` µm/px, neighbours overlapping by ``overlap`` (0-<1).

    ``min_tissue_fraction``: a slide patch is kept when at least this fraction of its pixels is
    above the labeller's nucleus threshold (so empty glass never reaches training).
    """

    size: int = 256
    overlap: float = 0.5
    mpp: float = 0.227
    min_tissue_fraction: float = 0.005

    @property
    def stride(self) -> int:
        return max(1, int(round(self.size * (1.0 - self.overlap))))


@dataclass(frozen=True)
class CacheEntry:
    """A finished cache entry; ``slides``: the slide name of each ``slide_id`` in ``patch_slide.npy``."""

    path: Path
    name: str
    kind: str
    slides: tuple[str, ...]
    n: int
    meta: dict[str, Any]


def grid(length: int, window: float, stride: float) -> list[float]:
    """Window starts covering [0, length): regular steps, the last one flush with the end."""
    if length <= window:
        return [0.0]
    n = int(math.ceil((length - window) / stride))
    starts = [min(i * stride, length - window) for i in range(n + 1)]
    return sorted(set(starts))


def owned_bounds(starts: list[float], window: float) -> list[tuple[float, float]]:
    """Per window start, the interval [lo, hi) of positions nearer its centre than any neighbour's.

    Neighbouring windows overlap (50 % by default), these intervals do not: they tile the axis,
    so every position belongs to exactly one window.
    """
    centres = [s + window / 2 for s in starts]
    mids = [(a + b) / 2 for a, b in zip(centres, centres[1:], strict=False)]
    return list(zip([-math.inf, *mids], [*mids, math.inf], strict=True))


#: QuPath TileExporter names: ``Slide [x=1024,y=0,w=512,h=512]`` (level-0 px of the source slide).
_TILE_COORDS = re.compile(r"\[x=(-?\d+),y=(-?\d+),w=(\d+),h=(\d+)")


def tile_coords(name: str) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) of a tile in its slide's level-0 px, from a TileExporter name; None if absent."""
    m = _TILE_COORDS.search(name)
    if m is None:
        return None
    x, y, w, h = (int(v) for v in m.groups())
    return x, y, w, h


def slide_name_of(path: Path) -> str:
    """``/data/Lung 3.ome.tif`` -> ``'Lung 3'``: the name --holdout-slides refers to."""
    return path.name.split(".")[0]


def unique_names(paths: list[Path]) -> list[str]:
    """Slide names, prefixed with their folder where two files share one (phantoms: p1/mif, p2/mif)."""
    names = [slide_name_of(p) for p in paths]
    return [f"{p.parent.name}-{n}" if names.count(n) > 1 else n for p, n in zip(paths, names, strict=True)]


def _cache_key(parts: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _file_id(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def load_entry(path: Path) -> CacheEntry | None:
    meta_path = path / "meta.json"
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    if not meta.get("complete") or meta.get("cache_version") != CACHE_VERSION:
        return None
    return CacheEntry(path, meta["name"], meta["kind"], tuple(meta["slides"]), int(meta["n"]), meta)


class _Writer:
    """Appends patches to memory-mapped .npy files of a known maximum length, then trims them."""

    def __init__(self, d: Path, capacity: int, size: int, dtype: np.dtype) -> None:
        self.d, self.n = d, 0
        cap = max(1, capacity)
        self.images = open_memmap(d / "images.tmp.npy", "w+", dtype, (cap, size, size))
        self.labels = open_memmap(d / "labels.tmp.npy", "w+", np.uint8, (cap, size, size))
        self.slide_ids: list[int] = []
        self.origins: list[tuple[float, float]] = []
        self.owned: list[tuple[int, int, int, int]] = []
        self.boxes: list[tuple[float, float, float, float]] = []
        self.tiles: list[int] = []
        self.patch_pixels: list[np.ndarray] = []
        self.cents: list[np.ndarray] = []
        self.pixels = np.zeros(len(CLASS_NAMES), dtype=np.int64)

    def add(self, image: np.ndarray, label: np.ndarray, slide_id: int, origin: tuple[float, float],
            cents: np.ndarray, owned: tuple[int, int, int, int], box: tuple[float, float, float, float],
            tile: int = -1) -> None:
        """``cents``: rows (y, x, class, cell id, owned 0/1) in patch px; ``owned``: (y0, y1, x0, x1) in patch px."""
        self.images[self.n] = image
        self.labels[self.n] = label
        self.slide_ids.append(slide_id)
        self.origins.append(origin)
        self.owned.append(owned)
        self.boxes.append(box)
        self.tiles.append(tile)
        if len(cents):
            self.cents.append(np.column_stack([np.full(len(cents), self.n), cents]))
        counts = np.bincount(label.ravel(), minlength=len(CLASS_NAMES))[: len(CLASS_NAMES)]
        self.patch_pixels.append(counts)
        self.pixels += counts
        self.n += 1

    def finish(self) -> None:
        for name, arr in (("images", self.images), ("labels", self.labels)):
            arr.flush()
            out = open_memmap(self.d / f"{name}.npy", "w+", arr.dtype, (self.n, *arr.shape[1:]))
            for i in range(0, self.n, 256):
                j = min(i + 256, self.n)
                out[i:j] = arr[i:j]
            out.flush()
            del out
        del self.images, self.labels
        for name in ("images", "labels"):
            (self.d / f"{name}.tmp.npy").unlink()
        np.save(self.d / "patch_slide.npy", np.asarray(self.slide_ids, dtype=np.int32))
        np.save(self.d / "origins.npy", np.asarray(self.origins, dtype=np.float64).reshape(-1, 2))
        np.save(self.d / "owned.npy", np.asarray(self.owned, dtype=np.int32).reshape(-1, 4))
        np.save(self.d / "boxes.npy", np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4))
        np.save(self.d / "patch_tile.npy", np.asarray(self.tiles, dtype=np.int32))
        np.save(self.d / "patch_pixels.npy", np.asarray(self.patch_pixels, dtype=np.int64).reshape(-1, len(CLASS_NAMES)))
        c = np.concatenate(self.cents) if self.cents else np.zeros((0, 6), dtype=np.int64)
        np.savez(self.d / "centroids.npz", patch=c[:, 0].astype(np.int32), y=c[:, 1].astype(np.int32),
                 x=c[:, 2].astype(np.int32), cls=c[:, 3].astype(np.uint8), cell=c[:, 4].astype(np.int64),
                 owned=c[:, 5].astype(bool))


def _nearest(mask: np.ndarray, x0: float, y0: float, factor: float, size: int) -> np.ndarray:
    """Nearest-neighbour resample of a label mask window (level-0 px) to size² output px; zeros outside."""
    h, w = mask.shape
    xs = np.floor(x0 + (np.arange(size) + 0.5) * factor).astype(np.int64)
    ys = np.floor(y0 + (np.arange(size) + 0.5) * factor).astype(np.int64)
    out = np.zeros((size, size), dtype=np.uint8)
    vx, vy = (xs >= 0) & (xs < w), (ys >= 0) & (ys < h)
    if vx.any() and vy.any():
        sub = np.asarray(mask[ys[vy].min() : ys[vy].max() + 1, xs[vx].min() : xs[vx].max() + 1])
        out[np.ix_(vy, vx)] = sub[np.ix_(ys[vy] - ys[vy].min(), xs[vx] - xs[vx].min())]
    return out


def _owned_px(bounds: tuple[float, float], start: float, factor: float, size: int) -> tuple[int, int]:
    """An owned interval of source px as patch px, clipped to the patch."""
    lo = 0 if bounds[0] == -math.inf else int(np.clip(math.ceil((bounds[0] - start) / factor), 0, size))
    hi = size if bounds[1] == math.inf else int(np.clip(math.ceil((bounds[1] - start) / factor), 0, size))
    return lo, hi


def _prepare(cache_root: Path, name: str, key: str) -> tuple[Path, CacheEntry | None]:
    d = cache_root / f"{name}-{key}"
    entry = load_entry(d)
    if entry is None and d.exists():
        shutil.rmtree(d)  # an interrupted extraction: start that source again
    return d, entry


def slide_patches(
    path: str | Path,
    cfg: LabelConfig,
    params: PatchParams,
    cache_root: str | Path,
    mpp: float | None = None,
    cancel: CancelToken | None = None,
    name: str | None = None,
) -> Generator[Progress, None, CacheEntry]:
    """Label one mIF slide and cut its tissue patches at ``params.mpp`` (cached; see module doc).

    ``name``: the slide's name in splits and the card (default: file name up to the first '.').
    """
    cancel = cancel or CancelToken()
    path = Path(path)
    name = name or slide_name_of(path)
    key = _cache_key({"v": CACHE_VERSION, "file": _file_id(path), "cfg": cfg.to_dict(),
                      "params": asdict(params), "mpp": mpp})
    d, entry = _prepare(Path(cache_root), name, key)
    if entry is not None:
        return entry
    with open_slide(path, mpp=(mpp, mpp) if mpp else None) as slide:
        slide.require_mpp()
        d.mkdir(parents=True)
        result = yield from label_slide(slide, cfg, mask_path=d / "mask.npy", cancel=cancel)
        if result.cells.empty:  # training on a slide without cells would teach "all background"
            raise LabelError(f"No cells were found in {path.name}: " + " ".join(result.warnings))
        result.cells.to_csv(d / "cells.csv", index=False)
        factor = params.mpp / result.mpp
        window = params.size * factor
        w, h = slide.dimensions
        xs, ys = grid(w, window, params.stride * factor), grid(h, window, params.stride * factor)
        own_x, own_y = owned_bounds(xs, window), owned_bounds(ys, window)
        resample = abs(factor - 1.0) > 1e-3
        hi = slide.channel_index(cfg.channels.lookup("hoechst"))
        writer = _Writer(d, len(xs) * len(ys), params.size, np.dtype(np.float32) if resample else slide.dtype)
        cells = result.cells.sort_values("x_px")
        cx, cy, cc = (cells[k].to_numpy() for k in ("x_px", "y_px", "class_id"))
        ids = cells.index.to_numpy()
        total = len(xs) * len(ys)
        for k, (iy, ix) in enumerate((iy, ix) for iy in range(len(ys)) for ix in range(len(xs))):
            if k % 32 == 0:
                cancel.check()
                yield Progress(k, total, f"Cutting patches of {name}: {k} of {total}")
            x0, y0 = round(xs[ix]), round(ys[iy])
            if resample:
                img = slide.read_region_at_mpp((x0, y0), (params.size, params.size), params.mpp, channels=[hi])[0]
            else:
                img = slide.read_region((x0, y0), 0, (params.size, params.size), channels=[hi])[0]
            if np.mean(img > result.hoechst_threshold) < params.min_tissue_fraction:
                continue
            lab = _nearest(result.mask, x0, y0, factor, params.size)
            a, b = np.searchsorted(cx, [x0, x0 + window])
            inside = np.arange(a, b)[(cy[a:b] >= y0) & (cy[a:b] < y0 + window)]
            (ox0, ox1), (oy0, oy1) = own_x[ix], own_y[iy]
            own = (cx[inside] >= ox0) & (cx[inside] < ox1) & (cy[inside] >= oy0) & (cy[inside] < oy1)
            cents = np.column_stack([((cy[inside] - y0) / factor).astype(np.int64),
                                     ((cx[inside] - x0) / factor).astype(np.int64), cc[inside], ids[inside], own])
            owned = (*_owned_px(own_y[iy], y0, factor, params.size), *_owned_px(own_x[ix], x0, factor, params.size))
            writer.add(img, lab, 0, (x0, y0), cents, owned, (x0, y0, x0 + window, y0 + window))
        writer.finish()
    # The level-0 mask (1 byte per pixel, GBs for a whole slide) has served its purpose: the
    # patches carry their labels. `python -m training.label` keeps it for inspection.
    del result.mask
    (d / "mask.npy").unlink(missing_ok=True)
    counts = result.cells["class_name"].value_counts()
    meta = {
        "cache_version": CACHE_VERSION, "complete": True, "name": name, "kind": "slide", "slides": [name],
        "source": str(path), "n": writer.n, "slide_mpp": result.mpp, "source_mpp": result.mpp, "mpp": params.mpp,
        "hoechst_threshold": result.hoechst_threshold, "channels": result.channels,
        "cells": {c: int(counts.get(c, 0)) for c in CLASS_NAMES},
        "pixels": {c: int(v) for c, v in zip(CLASS_NAMES, writer.pixels, strict=True)},
    }
    (d / "meta.json").write_text(json.dumps(meta, indent=2))
    return CacheEntry(d, name, "slide", (name,), writer.n, meta)


def _tile_cents(label: np.ndarray, image: np.ndarray | None = None, mpp: float = 0.0,
                cfg: LabelConfig | None = None) -> np.ndarray:
    """(y, x, class) of the cells of a tile: no cell table exists, so each connected component of a
    positive class in the label image is a cell, and, given the Hoechst ``image``, every nucleus
    segmented where the label is 0 is an 'other' cell (so that false positives on it count).
    """
    rows = []
    for c in range(1, len(CLASS_NAMES)):
        for r in regionprops(cc_label(label == c, connectivity=1)):
            rows.append((int(r.centroid[0]), int(r.centroid[1]), c))
    if image is not None and cfg is not None and float(image.max()) > float(image.min()):
        smoothed = smooth(image, mpp, cfg.segmentation)
        nuclei = segment_nuclei(image, mpp, cfg.segmentation, float(threshold_otsu(smoothed)))
        for r in regionprops(nuclei):
            y, x = int(r.centroid[0]), int(r.centroid[1])
            if label[y, x] == 0 and not (label[r.slice][r.image] > 0).mean() > 0.5:
                rows.append((y, x, 0))
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def tile_patches(
    folder: str | Path,
    cfg: LabelConfig,
    params: PatchParams,
    cache_root: str | Path,
    mpp: float | None = None,
    cancel: CancelToken | None = None,
) -> Generator[Progress, None, CacheEntry]:
    """Patches from a QuPath TileExporter folder (see :mod:`training.tiles`), grouped by source slide.

    Per-cell metrics for tiles use the connected components of each positive class in the label
    image as cells, plus the nuclei segmented on Hoechst where the label is 0 as 'other' cells.
    Tile names keep their QuPath coordinates, so tiles and regions of one slide can be held out.
    """
    cancel = cancel or CancelToken()
    folder = Path(folder)
    pairs = find_tiles(folder)
    name = folder.name
    key = _cache_key({"v": CACHE_VERSION, "files": [_file_id(p) for pair in pairs for p in pair],
                      "labels": cfg.tile_labels, "hoechst": cfg.channels.hoechst, "params": asdict(params), "mpp": mpp,
                      "seg": asdict(cfg.segmentation)})
    d, entry = _prepare(Path(cache_root), name, key)
    if entry is not None:
        return entry
    d.mkdir(parents=True)
    tiles: list[TileImage] = []
    cap = 0
    for k, (tif, png) in enumerate(pairs):
        cancel.check()
        tile = read_tile(tif, png, cfg, params.mpp, mpp)
        tiles.append(tile)
        cap += len(grid(tile.image.shape[1], params.size, params.stride)) * len(grid(tile.image.shape[0], params.size, params.stride))
        yield Progress(k + 1, len(pairs), f"Reading tile {k + 1} of {len(pairs)}")
    with open_slide(pairs[0][0], mpp=(mpp, mpp) if mpp else None) as first:
        source_mpp = float(np.mean(first.require_mpp()))
    dtype = np.result_type(*[t.image.dtype for t in tiles])
    writer = _Writer(d, cap, params.size, dtype)
    slides = sorted({t.slide for t in tiles})
    cells = np.zeros(len(CLASS_NAMES), dtype=np.int64)
    next_id = 0
    for t_index, tile in enumerate(tiles):
        cancel.check()
        img, lab = tile.image, tile.label
        coords = tile_coords(tile.name)
        # level-0 px of the source slide per model px (the name's w over the tile's width here)
        scale = coords[2] / img.shape[1] if coords else math.nan
        ox, oy = (coords[0], coords[1]) if coords else (math.nan, math.nan)
        ph, pw = max(0, params.size - img.shape[0]), max(0, params.size - img.shape[1])
        if ph or pw:
            img = np.pad(img, ((0, ph), (0, pw)), mode="edge")
            lab = np.pad(lab, ((0, ph), (0, pw)))
        found = _tile_cents(tile.label, tile.image, params.mpp, cfg)
        cells += np.bincount(found[:, 2], minlength=len(CLASS_NAMES))[: len(CLASS_NAMES)]
        cents_all = np.column_stack([found, np.arange(next_id, next_id + len(found))])
        next_id += len(found)
        ys, xs = grid(img.shape[0], params.size, params.stride), grid(img.shape[1], params.size, params.stride)
        own_y, own_x = owned_bounds(ys, params.size), owned_bounds(xs, params.size)
        for iy, y0 in enumerate(ys):
            for ix, x0 in enumerate(xs):
                y, x = int(y0), int(x0)
                patch = img[y : y + params.size, x : x + params.size]
                if patch.max() <= patch.min():
                    continue
                sel = ((cents_all[:, 0] >= y) & (cents_all[:, 0] < y + params.size)
                       & (cents_all[:, 1] >= x) & (cents_all[:, 1] < x + params.size))
                c = cents_all[sel]
                own = ((c[:, 0] >= own_y[iy][0]) & (c[:, 0] < own_y[iy][1])
                       & (c[:, 1] >= own_x[ix][0]) & (c[:, 1] < own_x[ix][1]))
                cents = np.column_stack([c[:, 0] - y, c[:, 1] - x, c[:, 2], c[:, 3], own])
                owned = (*_owned_px(own_y[iy], y, 1.0, params.size), *_owned_px(own_x[ix], x, 1.0, params.size))
                box = (ox + x * scale, oy + y * scale, ox + (x + params.size) * scale, oy + (y + params.size) * scale)
                writer.add(patch, lab[y : y + params.size, x : x + params.size], slides.index(tile.slide), (x, y),
                           cents, owned, box, t_index)
    writer.finish()
    meta = {
        "cache_version": CACHE_VERSION, "complete": True, "name": name, "kind": "tiles", "slides": slides,
        "source": str(folder), "n": writer.n, "mpp": params.mpp, "source_mpp": source_mpp, "tiles": len(tiles),
        "tile_names": [t.name for t in tiles],
        "cells": {c: int(v) for c, v in zip(CLASS_NAMES, cells, strict=True)},
        "pixels": {c: int(v) for c, v in zip(CLASS_NAMES, writer.pixels, strict=True)},
    }
    (d / "meta.json").write_text(json.dumps(meta, indent=2))
    return CacheEntry(d, name, "tiles", tuple(slides), writer.n, meta)


def read_cells(entry: CacheEntry) -> pd.DataFrame | None:
    p = entry.path / "cells.csv"
    return pd.read_csv(p) if p.is_file() else None

