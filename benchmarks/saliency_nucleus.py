"""How much of HiPe's saliency lies in the nucleus of the cell being explained (paper section 5).

The paper found that "the most salient regions ... cluster in the nuclei of the salient cells". This
measures it on a phantom slide the model was not trained on (default seed 101, 2048 px), with truth.

Procedure:

1. Generate the phantom (or reuse it in ``--work``) and read its truth (``cells.csv``).
2. Visit true lymphocytes (type ≠ other) in a seeded random order, skipping those within half a
   patch of the slide edge. For each, :func:`core.saliency.prepare` reads the model's patch centred
   on the true centroid and takes the predicted cell there (4-connected component of the predicted
   class, snapping up to 2 µm). It counts as **correctly called** when the component is at least
   the engine's smallest cell (``AnalysisParams.min_cell_area_um2``: smaller slivers never reach
   the cell table), and the true cell nearest to its centroid lies within 4 µm and has the
   predicted class as its type.
3. For the first N correctly called cells, run cell-mode HiPe (output = mean probability of the
   cell's class over the cell's predicted pixels; fade perturbation; 4 initial cells) and measure,
   with S = the (patch_size × patch_size) saliency map of that run:

   - ``inside``    = S summed over the cell's predicted component / S summed over the whole patch;
   - ``inside_1um`` = the same with the component dilated by 1 µm (a disc; SPEC's cell expansion);
   - ``area_share`` = the component's area / the patch area: what ``inside`` would be if saliency
     were spread evenly (the no-information baseline);
   - ``rank``      = of the K most salient pixels (K = the component's area), the fraction inside it
     (:func:`core.saliency.rank_inside`, "relevance rank accuracy"): where the strongest evidence is;
     an even or random spread gives ``area_share``;
   - ``inside_finest`` = ``inside`` for the finest depth HiPe refined to (its depth map alone):
     the smallest windows, so the least smeared evidence;
   - ``n_masks``   = forward passes HiPe used, and ``seconds`` its wall time.

Note that even a model that looks only at the nucleus cannot reach inside = 1: HiPe spreads each
window's drop over the whole window, and windows overlapping the nucleus border extend outside it.

Run: ``.venv/bin/python benchmarks/saliency_nucleus.py [--model DIR] [--n 20] [--size 2048]``.
Prints one line per cell and the mean/median of each measure; ``--json`` writes them too.
``--accept-any`` skips the truth check (only for smoke tests with an untrained model).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.spatial import cKDTree

from core.engine import AnalysisParams
from core.errors import CoreError
from core.models.runtime import default_model_dir, load_model
from core.phantom import PhantomParams, generate_phantom
from core.progress import run_to_completion
from core.saliency import explain_job, mass_inside, prepare
from core.slides import open_slide

MATCH_UM = 4.0
KEYS = ("inside", "inside_1um", "rank", "inside_finest", "area_share", "n_masks", "seconds")
DILATE_UM = 1.0


def phantom(work: Path, size: int, seed: int) -> Path:
    """The Hoechst slide of the phantom in ``work`` (generated once per size and seed)."""
    out = work / f"phantom-{size}-seed{seed}"
    if not (out / "phantom.json").exists():
        print(f"Generating the phantom (size {size}, seed {seed}) in {out} …", flush=True)
        run_to_completion(generate_phantom(PhantomParams(size=size, seed=seed), out))
    return out


def finest_inside(depth_maps: np.ndarray, mask: np.ndarray) -> float:
    """:func:`mass_inside` of the deepest depth map that holds any saliency."""
    filled = [d for d in range(len(depth_maps)) if float(depth_maps[d].sum()) > 0]
    return mass_inside(depth_maps[filled[-1]], mask) if filled else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None, help=f"model folder (default {default_model_dir()})")
    ap.add_argument("--device", choices=("cpu", "cuda"), default=None)
    ap.add_argument("--n", type=int, default=20, help="correctly called lymphocytes to explain")
    ap.add_argument("--size", type=int, default=2048, help="phantom size in pixels")
    ap.add_argument("--phantom-seed", type=int, default=101, help="phantom seed (not one used in training)")
    ap.add_argument("--seed", type=int, default=0, help="order in which cells are visited")
    ap.add_argument("--work", type=Path, default=Path("build/benchmarks"), help="where the phantom is kept")
    ap.add_argument("--demo-slide", action="store_true",
                    help="use the app's demo slide (python -m core demo-case makes it) instead of --size/--phantom-seed")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--accept-any", action="store_true", help="no truth check (smoke test, untrained model)")
    ap.add_argument("--json", type=Path, default=None, help="also write the per-cell results here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model or default_model_dir(), device=args.device, precision="fp32")
    card = model.card
    min_px = int(np.ceil(AnalysisParams().min_cell_area_um2 / card.mpp**2))
    if args.demo_slide:
        from core.demo import demo_dir

        folder = demo_dir()
        if not (folder / "phantom.json").exists():
            print(f"No demo slide in {folder}: run `python -m core demo-case --out DIR` first.")
            return 2
    else:
        folder = phantom(args.work, args.size, args.phantom_seed)
    truth = pd.read_csv(folder / "cells.csv")
    tree = cKDTree(truth[["x_px", "y_px"]].to_numpy())
    rng = np.random.default_rng(args.seed)
    rows = []
    tried = 0
    with open_slide(folder / "hoechst.ome.tif") as slide:
        mx, my = slide.require_mpp()
        w, h = slide.dimensions
        margin_x, margin_y = card.patch_size / 2 * card.mpp / mx, card.patch_size / 2 * card.mpp / my
        lymph = truth[(truth["type"] != "other") & truth["x_px"].between(margin_x, w - margin_x)
                      & truth["y_px"].between(margin_y, h - margin_y)]
        print(f"Model {card.name!r} on {model.device}; phantom {folder.name}: {len(lymph)} lymphocytes "
              f"away from the edges", flush=True)
        for i in rng.permutation(len(lymph)):
            if len(rows) >= args.n:
                break
            cell = lymph.iloc[int(i)]
            tried += 1
            try:
                ctx = prepare(model, slide, float(cell.x_px), float(cell.y_px), cell=True)
            except CoreError:  # no cell predicted there: a miss
                continue
            assert ctx.cell_mask is not None and ctx.cell_class is not None
            r, c = np.nonzero(ctx.cell_mask)
            if r.size < min_px:  # a sliver the engine would not list as a cell
                continue
            cx, cy = ctx.patch.to_level0(c.mean() + 0.5, r.mean() + 0.5)
            dist_px, j = tree.query((cx, cy))
            called = ctx.class_names[ctx.cell_class]
            if not args.accept_any and (dist_px * mx > MATCH_UM or truth.iloc[int(j)]["type"] != called):
                continue
            t0 = time.perf_counter()
            expl = run_to_completion(explain_job(model, ctx, [ctx.cell_class]))
            res = expl.maps[ctx.cell_class]
            row = {"id": int(cell.id), "type": cell.type, "called": called, "x_px": round(cx, 1), "y_px": round(cy, 1),
                   "area_px": int(r.size), "inside": expl.inside_fraction(ctx.cell_class),
                   "inside_1um": expl.inside_fraction(ctx.cell_class, DILATE_UM),
                   "area_share": float(ctx.cell_mask.mean()), "rank": expl.rank_fraction(ctx.cell_class),
                   "inside_finest": finest_inside(res.depth_maps, ctx.cell_mask), "n_masks": res.n_masks,
                   "seconds": time.perf_counter() - t0}
            rows.append(row)
            print(f"{len(rows):3d}. cell {row['id']:6d} {called:10s} area {row['area_px']:4d} px  inside "
                  f"{row['inside']:.3f}  within 1 µm {row['inside_1um']:.3f}  rank {row['rank']:.3f}  finest depth "
                  f"{row['inside_finest']:.3f}  (even spread {row['area_share']:.4f})  "
                  f"{row['n_masks']:5d} passes  {row['seconds']:.1f} s", flush=True)
    if not rows:
        print(f"No correctly called lymphocyte among {tried} tried: is this a trained model?")
        return 1
    df = pd.DataFrame(rows)
    print(f"\n{len(df)} cells explained ({tried} tried; correctly called: {len(df) / tried:.0%}); "
          f"model {card.name!r}{' (synthetic)' if card.synthetic else ''}, patch {card.patch_size} px at {card.mpp} µm")
    for key in KEYS:
        print(f"  {key:13s} mean {df[key].mean():10.3f}   median {df[key].median():10.3f}")
    if args.json:
        summary = {k: {"mean": float(df[k].mean()), "median": float(df[k].median())}
                   for k in KEYS}
        doc = {"model": card.name, "sha256": card.weights_sha256, "device": str(model.device),
               "phantom": folder.name, "tried": tried, "cells": rows, "summary": summary}
        args.json.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
