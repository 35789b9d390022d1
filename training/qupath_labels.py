"""Import the labels a lab already has: QuPath cell detections (GeoJSON) and TileExporter label PNGs.

A lab that classified its cells in QuPath (StarDist + intensity thresholds, as the paper did) should
not have to label again. Classes map as the paper's export did (:data:`QUPATH_CLASSES`): 'CD8' is
CD8_CD3LO, 'CD3' is CD3, 'CD20' is CD20, 'CD8: CD3' is CD8_CD3HI; every other class, double
positives with CD20 included ('CD20: CD3', 'CD8: CD20', …), and unclassified cells are background
("other"), like the paper's TileExporter labels 5-7.

Outputs are the labeller's (:mod:`training.label`): ``<slide>-cells.csv`` (one row per cell, the
same columns where QuPath measured them) and ``<slide>-labels.npy`` (level-0 class mask), so the
rest of the path does not care where the labels came from. ``python -m training.qupath_labels``:

    python -m training.qupath_labels --detections slide-detections.geojson --slide slide.ome.tif --out labels/
    python -m training.qupath_labels --tiles tiles/ --out labels/
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.lib.format import open_memmap
from PIL import Image, ImageDraw
from scipy import ndimage as ndi

from core.classes import CLASS_NAMES, class_index
from core.errors import CoreError
from core.slides import open_slide
from training.config import LabelConfig
from training.errors import LabelError
from training.tiles import find_tiles, read_label_png

#: QuPath class name -> our class; anything else (double positives with CD20, unclassified) -> other.
QUPATH_CLASSES: dict[str, str] = {"CD8": "CD8_CD3LO", "CD3": "CD3", "CD20": "CD20", "CD8: CD3": "CD8_CD3HI"}
_MEANS = {"mean_hoechst": ("H3342", "Hoechst", "DAPI"), "mean_cd20": ("FITC", "AF488"), "mean_cd8": ("Cy3",),
          "mean_cd3": ("AF751", "AF750")}


def map_class(name: str | None) -> str:
    """Our class for a QuPath classification name (spaces around ':' ignored)."""
    if not name:
        return "other"
    norm = ": ".join(part.strip() for part in str(name).split(":"))
    return QUPATH_CLASSES.get(norm, "other")


def _rings(geom: dict) -> list[np.ndarray]:
    """Exterior rings (x, y level-0 px) of a GeoJSON Polygon or MultiPolygon."""
    kind, coords = geom.get("type"), geom.get("coordinates") or []
    polys = [coords] if kind == "Polygon" else coords if kind == "MultiPolygon" else []
    return [np.asarray(p[0], dtype=np.float64) for p in polys if p and len(p[0]) >= 3]


def read_detections(path: str | Path) -> tuple[pd.DataFrame, list[list[np.ndarray]]]:
    """Cells of a QuPath detections GeoJSON: a table (x_px, y_px, class_name, class_id, qupath_class,
    mean_* where measured) and each cell's polygon rings (level-0 px), in the same order."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise LabelError(f"Cannot read QuPath detections {p}: {err}. Export them with File > Export objects "
                         "as GeoJSON.") from None
    feats = doc.get("features", []) if isinstance(doc, dict) else doc
    rows, rings = [], []
    for f in feats:
        props = f.get("properties") or {}
        if props.get("objectType", "detection") not in ("cell", "detection"):
            continue
        rr = _rings(f.get("geometry") or {})
        if not rr:
            continue
        ring = rr[0]
        cls = (props.get("classification") or {}).get("name")
        ours = map_class(cls)
        meas = props.get("measurements") or {}
        if isinstance(meas, list):  # QuPath 0.2 wrote [{"name":…, "value":…}]
            meas = {m.get("name"): m.get("value") for m in meas}
        row = {"x_px": float(ring[:, 0].mean()), "y_px": float(ring[:, 1].mean()), "qupath_class": cls or "",
               "class_name": ours, "class_id": class_index(ours)}
        for col, names in _MEANS.items():
            val = next((meas[f"Cell: {n} mean"] for n in names if f"Cell: {n} mean" in meas), None)
            row[col] = float(val) if val is not None else float("nan")
        rows.append(row)
        rings.append(rr)
    if not rows:
        raise LabelError(f"{p} holds no cell detections with polygons; export the detections, not annotations.")
    return pd.DataFrame(rows), rings


def rasterise(table: pd.DataFrame, rings: list[list[np.ndarray]], out: np.ndarray, x0: int = 0, y0: int = 0,
              block: int = 4096) -> None:
    """Paint each positive cell's class into ``out`` ((h, w) uint8, level-0 px from (x0, y0)), block by block."""
    h, w = out.shape
    pos = np.flatnonzero(table["class_id"].to_numpy() > 0)
    boxes = np.array([[r[:, 0].min(), r[:, 1].min(), r[:, 0].max(), r[:, 1].max()] for rr in rings for r in rr[:1]])
    for by in range(0, h, block):
        for bx in range(0, w, block):
            bw, bh = min(block, w - bx), min(block, h - by)
            gx, gy = x0 + bx, y0 + by
            hit = pos[(boxes[pos, 2] >= gx) & (boxes[pos, 0] < gx + bw) & (boxes[pos, 3] >= gy) & (boxes[pos, 1] < gy + bh)]
            if len(hit) == 0:
                continue
            img = Image.new("L", (bw, bh), 0)
            draw = ImageDraw.Draw(img)
            ids = table["class_id"].to_numpy()
            for i in hit:
                for r in rings[i]:
                    draw.polygon([(x - gx, y - gy) for x, y in r], fill=int(ids[i]))
            part = np.asarray(img)
            region = out[by : by + bh, bx : bx + bw]
            np.copyto(region, part, where=part > 0)


def import_detections(detections: str | Path, slide_path: str | Path, out_dir: str | Path,
                      mpp: float | None = None) -> tuple[Path, Path]:
    """Write ``<slide>-cells.csv`` and ``<slide>-labels.npy`` for a whole slide from QuPath detections."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table, rings = read_detections(detections)
    with open_slide(slide_path, mpp=(mpp, mpp) if mpp else None) as slide:
        slide_mpp = float(np.mean(slide.require_mpp()))
        w, h = slide.dimensions
    stem = Path(slide_path).name.split(".")[0]
    mask_path = out / f"{stem}-labels.npy"
    mask = open_memmap(str(mask_path), mode="w+", dtype=np.uint8, shape=(h, w))
    rasterise(table, rings, mask)
    mask.flush()
    del mask
    table.insert(2, "x_um", table["x_px"] * slide_mpp)
    table.insert(3, "y_um", table["y_px"] * slide_mpp)
    cells_path = out / f"{stem}-cells.csv"
    table.to_csv(cells_path, index=False)
    return cells_path, mask_path


def cells_from_label_png(png: Path, cfg: LabelConfig, mpp: float) -> pd.DataFrame:
    """One row per labelled cell of a TileExporter label PNG (connected pixels of one class):
    x_px, y_px, x_um, y_um (tile frame), class_name, class_id. Touching cells of one class count once."""
    classes = read_label_png(png, cfg)
    rows = []
    for cid in range(1, len(CLASS_NAMES)):
        comps, n = ndi.label(classes == cid)
        if n == 0:
            continue
        cy, cx = np.asarray(ndi.center_of_mass(np.ones_like(comps), comps, range(1, n + 1))).T
        rows.append(pd.DataFrame({"x_px": cx, "y_px": cy, "class_id": cid}))
    df = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame({"x_px": [], "y_px": [], "class_id": []})
    df["x_um"], df["y_um"] = df["x_px"] * mpp, df["y_px"] * mpp
    df["class_name"] = [CLASS_NAMES[int(c)] for c in df["class_id"]]
    return df


def import_tiles(folder: str | Path, out_dir: str | Path, cfg: LabelConfig | None = None) -> list[Path]:
    """``<tile>-cells.csv`` for every tile of a TileExporter folder (classes via ``[tile_labels]``)."""
    cfg = cfg or LabelConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for tif, png in find_tiles(Path(folder)):
        with open_slide(tif) as slide:
            mpp = float(np.mean(slide.require_mpp()))
        path = out / f"{png.name[: -len('-labelled.png')]}-cells.csv"
        cells_from_label_png(png, cfg, mpp).to_csv(path, index=False)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.qupath_labels",
                                description="Import QuPath labels: cell detections GeoJSON of a whole slide, or "
                                "TileExporter tiles, as the labeller's cell tables and label masks.")
    p.add_argument("--detections", type=Path, help="QuPath detections GeoJSON (level-0 px of --slide)")
    p.add_argument("--slide", type=Path, help="the slide the detections belong to")
    p.add_argument("--tiles", type=Path, help="a TileExporter folder (<name>.tif + <name>-labelled.png)")
    p.add_argument("--mpp", type=float, default=None, help="pixel size in µm for a slide whose file lacks one")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    args = p.parse_args(argv)
    try:
        if args.detections is not None:
            if args.slide is None:
                raise LabelError("--detections needs --slide (the slide they were made on, for its size and mpp).")
            cells, mask = import_detections(args.detections, args.slide, args.out, args.mpp)
            print(f"Wrote {cells} and {mask}")
        if args.tiles is not None:
            written = import_tiles(args.tiles, args.out)
            print(f"Wrote {len(written)} tile cell tables to {args.out}")
        if args.detections is None and args.tiles is None:
            raise LabelError("Give --detections with --slide, or --tiles.")
    except CoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
