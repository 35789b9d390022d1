"""Per-stage cost (ms per tile, one thread, in isolation) of the per-tile pipeline the engine had before
issue #13: each tile read on its own (``read_region_at_mpp``), normalised, run through the instant
stand-in model (``predict_classes``: softmax + max), rastered, blocks extracted and their cell tables made.

    .venv/bin/python benchmarks/pipeline_stages.py --slide <phantom>/hoechst.ome.tif [--tiles 96]

The new engine reports its own per-stage times in ``summary["stage_ms_per_tile"]`` (``core bench``).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from core.engine._extract import extract_block, tile_class_raster
from core.engine._grid import TileGrid
from core.engine._results import cell_table
from core.engine._tissue import detect_tissue, read_overview
from core.engine.params import AnalysisParams
from core.engine.standin import standin_model
from core.models.card import load_card
from core.models.runtime import default_model_dir
from core.normalise import normalise_patch
from core.slides import open_slide


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--slide", type=Path, required=True)
    ap.add_argument("--rows", type=int, default=4, help="tile rows of tissue to time")
    args = ap.parse_args()
    card = load_card(default_model_dir())
    model = standin_model(card)
    p = AnalysisParams()
    patch, context = card.patch_size, card.patch_size // 8
    with open_slide(args.slide) as slide:
        grid = TileGrid.build(slide.dimensions, slide.require_mpp(), card.mpp, patch, context, p.raster_um)
        ch = slide.channel_index(card.input_channel_role)
        sel = grid.tissue_tiles(detect_tissue(read_overview(slide, grid, ch), grid.raster_mpp, p.tissue_min_area_um2, p.tissue_max_hole_um2))
        rows = [int(r) for r in np.flatnonzero(sel.any(axis=1))]
        mid = len(rows) // 2
        rows = rows[max(0, mid - args.rows // 2) : mid - args.rows // 2 + args.rows + 2]
        tiles = [(r, int(c)) for r in rows for c in np.flatnonzero(sel[r])]
        t = dict.fromkeys(("decode", "normalise", "model", "raster", "extraction", "writing"), 0.0)
        outputs = {}
        raw = []
        t0 = time.perf_counter()
        for r, c in tiles:
            raw.append(slide.read_region_at_mpp(grid.read_location(r, c), (patch, patch), card.mpp, [ch]))
        t["decode"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        x = np.stack([normalise_patch(a) for a in raw])
        t["normalise"] = time.perf_counter() - t0
        model.predict_classes(x[:8], crop=context)
        t0 = time.perf_counter()
        labs, probs = [], []
        for i in range(0, len(x), 8):
            lab, pr = model.predict_classes(x[i : i + 8], crop=context)
            labs.append(lab)
            probs.append(pr)
        t["model"] = time.perf_counter() - t0
        lab, prob = np.concatenate(labs), np.concatenate(probs)
        t0 = time.perf_counter()
        for i, key in enumerate(tiles):
            tile_class_raster(lab[i], grid.factor, card.n_classes)
            outputs[key] = (lab[i], prob[i])
        t["raster"] = time.perf_counter() - t0
        inner = rows[1:-1]
        min_px = max(1, int(np.ceil(p.min_cell_area_um2 / card.mpp**2)))
        max_px = int(p.max_cell_area_um2 / card.mpp**2)
        n_inner = sum(1 for r, _ in tiles if r in inner)
        cells = 0
        for r in inner:
            t0 = time.perf_counter()
            cells_raw = extract_block(outputs, r, grid.shape, grid.keep, min_px, max_px)
            t1 = time.perf_counter()
            table = cell_table(cells_raw, grid, card.classes, None)
            t["extraction"] += t1 - t0
            t["writing"] += time.perf_counter() - t1
            cells += len(table)
    print(f"{len(tiles)} tiles ({n_inner} extracted, {cells} cells); load average {os.getloadavg()[0]:.2f}")
    for k, v in t.items():
        n = n_inner if k in ("extraction", "writing") else len(tiles)
        print(f"{k:>10}: {1000 * v / n:6.2f} ms/tile")
    total = sum(1000 * v / (n_inner if k in ("extraction", "writing") else len(tiles)) for k, v in t.items())
    print(f"{'total':>10}: {total:6.2f} ms/tile -> {1000 / total:.0f} tiles/s serial")


if __name__ == "__main__":
    main()
