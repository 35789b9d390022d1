"""Read QuPath TileExporter folders: ``<name>.tif`` (multichannel ImageJ TIFF) + ``<name>-labelled.png``.

This is how the paper's training data left QuPath: the label PNG holds 8-bit class indices
(0 background, 1 'CD8', 2 'CD3', 3 'CD20', 4 'CD8: CD3', 5-7 CD20 double positives), mapped to
our classes by ``[tile_labels]`` in the config. QuPath names tiles ``Slide [x=..,y=..,w=..,h=..]``,
so the text before `` [`` is taken as the slide name: holding out a slide works for tiles too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from core.classes import class_index
from core.slides import open_slide
from training.config import LabelConfig
from training.errors import LabelError

LABEL_SUFFIX = "-labelled.png"


@dataclass(frozen=True)
class TileImage:
    """One tile at the model's pixel size: Hoechst ``image`` (h, w) and class ``label`` (h, w) uint8."""

    slide: str
    name: str
    image: np.ndarray
    label: np.ndarray


def slide_name(tile_stem: str) -> str:
    """``'Lung 3 [x=0,y=512,w=512,h=512]'`` -> ``'Lung 3'``."""
    return tile_stem.split(" [", 1)[0].strip() or tile_stem


def find_tiles(folder: Path) -> list[tuple[Path, Path]]:
    """(tif, png) pairs of a TileExporter folder; raises LabelError for an empty folder or orphans."""
    if not folder.is_dir():
        raise LabelError(f"Tile folder {folder} does not exist or is not a folder.")
    pngs = sorted(folder.glob(f"*{LABEL_SUFFIX}"))
    pairs, orphans = [], []
    for png in pngs:
        stem = png.name[: -len(LABEL_SUFFIX)]
        tif = next((folder / f"{stem}{ext}" for ext in (".tif", ".tiff", ".ome.tif") if (folder / f"{stem}{ext}").is_file()), None)
        if tif is None:
            orphans.append(png.name)
        else:
            pairs.append((tif, png))
    if orphans:
        raise LabelError(
            f"Label image(s) without their tile TIFF in {folder}: {', '.join(orphans[:5])}"
            f"{' …' if len(orphans) > 5 else ''}. Each <name>{LABEL_SUFFIX} needs <name>.tif beside it."
        )
    if not pairs:
        raise LabelError(f"No '<name>.tif' + '<name>{LABEL_SUFFIX}' pairs in {folder} (a QuPath TileExporter folder).")
    return pairs


def read_label_png(path: Path, cfg: LabelConfig) -> np.ndarray:
    """Class indices (uint8) from a TileExporter label PNG, mapped through ``cfg.tile_labels``."""
    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "P", "I", "I;16"):
                raise LabelError(
                    f"Label image {path.name} has mode {im.mode}; expected 8-bit class indices (QuPath "
                    "TileExporter 'labelled' PNG, one channel)."
                )
            raw = np.asarray(im)
    except (OSError, UnidentifiedImageError, SyntaxError) as err:
        raise LabelError(f"Cannot read label image {path}: {err}") from None
    lut = np.full(max(256, int(raw.max()) + 1), 255, dtype=np.uint8)
    for value, name in cfg.tile_labels.items():
        lut[value] = class_index(name)
    mapped = lut[raw]
    if (mapped == 255).any():
        bad = sorted(int(v) for v in np.unique(raw[mapped == 255]))
        raise LabelError(
            f"Label image {path.name} has value(s) {', '.join(map(str, bad[:10]))} outside the label mapping "
            f"(known values: {', '.join(map(str, sorted(cfg.tile_labels)))}). Add them to [tile_labels] in the config."
        )
    return mapped


def read_tile(tif: Path, png: Path, cfg: LabelConfig, model_mpp: float, mpp: float | None = None) -> TileImage:
    """Read one tile pair and resample both to ``model_mpp`` (linear image, nearest labels)."""
    label = read_label_png(png, cfg)
    with open_slide(tif, mpp=(mpp, mpp) if mpp else None) as slide:
        tile_mpp = float(np.mean(slide.require_mpp()))
        hi = slide.channel_index(cfg.channels.lookup("hoechst"))
        w, h = slide.dimensions
        if label.shape != (h, w):
            raise LabelError(
                f"Label image {png.name} is {label.shape[1]}x{label.shape[0]} px but its tile is {w}x{h}; "
                "export tiles and labels at the same downsample."
            )
        factor = model_mpp / tile_mpp
        if abs(factor - 1.0) <= 1e-3:
            image = slide.read_region((0, 0), 0, (w, h), channels=[hi])[0]
        else:
            ow, oh = max(1, int(round(w / factor))), max(1, int(round(h / factor)))
            image = slide.read_region_at_mpp((0, 0), (ow, oh), model_mpp, channels=[hi])[0]
            ys = np.minimum(h - 1, np.floor((np.arange(oh) + 0.5) * factor).astype(np.int64))
            xs = np.minimum(w - 1, np.floor((np.arange(ow) + 0.5) * factor).astype(np.int64))
            label = label[np.ix_(ys, xs)]
    stem = png.name[: -len(LABEL_SUFFIX)]
    return TileImage(slide_name(stem), stem, np.ascontiguousarray(image), np.ascontiguousarray(label))
