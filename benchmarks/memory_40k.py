"""Peak memory of a whole-slide analysis of a 40000 x 40000 px slide (target: < 3 GB RSS).

Writes (once) a procedural 40000² single-channel OME-TIFF pyramid: glass everywhere except a
full-width band of nucleus-like texture, so the engine holds its widest rows of tiles while only
a few hundred tiles need the model. Then runs ``analyse_slide`` with the default-architecture
U-Net (random weights; memory and speed do not depend on them) and prints peak RSS.

Run: .venv/bin/python benchmarks/memory_40k.py [--out /tmp/engine_dev/big] [--band 384] [--stand-in instant]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

from core.engine import AnalysisParams, analyse_slide
from core.engine.bench import peak_rss_mb, reset_peak_rss
from core.models import ModelCard, build_model, save_model
from core.models.runtime import load_model
from core.progress import run_to_completion
from core.slides import open_slide

SIZE = 40_000
TILE = 256
MPP = 0.227
GLASS = 200


def _tile(level: int, ty: int, tx: int, band: tuple[int, int]) -> np.ndarray:
    ds = 2**level
    y0, x0 = ty * TILE * ds, tx * TILE * ds
    if y0 + TILE * ds <= band[0] or y0 >= band[1]:
        return np.full((TILE, TILE), GLASS, np.uint16)
    yy, xx = np.mgrid[0:TILE, 0:TILE].astype(np.float32) * ds
    yy += y0
    xx += x0
    nuclei = (np.sin(xx / 6.0) * np.sin(yy / 7.0 + xx / 40.0)) > 0.6
    img = np.where(nuclei, 3000, 600).astype(np.uint16)
    img[(yy < band[0]) | (yy >= band[1])] = GLASS
    return img


def write_slide(path: Path, band: tuple[int, int], levels: int = 5) -> Path:
    meta = {"axes": "YX", "Channel": {"Name": ["Hoechst"]}, "PhysicalSizeX": MPP, "PhysicalSizeY": MPP}
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tw:
        for level in range(levels):
            n = -(-SIZE // (TILE * 2**level))
            side = -(-SIZE // 2**level)
            tiles = (_tile(level, ty, tx, band) for ty in range(n) for tx in range(n))
            res = {"resolution": (1e4 / MPP / 2**level,) * 2, "resolutionunit": "CENTIMETER"}
            kw = {"subifds": levels - 1, "metadata": meta} if level == 0 else {"subfiletype": 1}
            tw.write(tiles, shape=(side, side), dtype=np.uint16, tile=(TILE, TILE), compression="zlib",
                     photometric="minisblack", **res, **kw)  # fmt: skip
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "hoechstscore-big")
    ap.add_argument("--band", type=int, default=384, help="height of the tissue band in px")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--stand-in", choices=("instant", "sleep", "compute"), default=None, dest="stand_in",
                    help="a stand-in model instead of the U-Net: wide tissue bands in minutes")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    band = (SIZE // 2, SIZE // 2 + args.band)
    slide_path = args.out / f"big-{SIZE}-band{args.band}.ome.tif"
    if not slide_path.exists():
        t0 = time.perf_counter()
        write_slide(slide_path, band)
        print(f"wrote {slide_path} ({slide_path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.0f} s")
    torch.manual_seed(0)
    card = ModelCard(name="random-unet-resnet34", synthetic=True)
    with tempfile.TemporaryDirectory() as tmp:
        save_model(build_model(card), card, tmp)
        model = load_model(tmp, device="cpu", precision="fp32")
        if args.stand_in:
            from core.engine.standin import standin_model

            model = standin_model(card, args.stand_in)
        reset_peak_rss()
        base = peak_rss_mb()
        with open_slide(slide_path) as slide:
            t0 = time.perf_counter()
            result = run_to_completion(analyse_slide(slide, model, AnalysisParams(batch_size=args.batch_size)))
            seconds = time.perf_counter() - t0
    s = result.summary
    print(json.dumps({
        "slide_px": SIZE, "tiles_in_grid": s.tiles_in_grid, "tiles_analysed": s.tiles_analysed,
        "tissue_area_mm2": round(result.tissue_area_mm2, 3), "seconds": round(seconds, 1),
        "rss_before_mb": round(base), "peak_rss_mb": round(peak_rss_mb()),
        "class_map_shape": list(result.class_map.shape), "density_mb": round(result.density.nbytes / 1e6),
        "cells": len(result.cells), "tiles_per_s": round(s.tiles_analysed / seconds, 1),
        "stage_ms_per_tile": {k: round(v, 2) for k, v in s.stage_ms_per_tile.items()},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
