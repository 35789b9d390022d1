"""How well the engine's cell calls match a phantom's true cells (per-class precision/recall/F1).

Each detected lymphocyte is matched to the nearest true cell within ``--radius`` µm (default 4)
one-to-one, greedily by distance. A detection counts as a true positive for its class when its
matched true cell has the same type; unmatched detections and wrong-type matches are false
positives of the called class; true cells of a class with no correct detection are false negatives.
"other" cells are not called by the engine and are only used as possible matches.

    python benchmarks/engine_vs_truth.py --phantom DIR [--model DIR] [--cells CELLS.csv] [--threads N]

Without ``--cells`` the slide ``DIR/hoechst.ome.tif`` is analysed first with the model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from core.classes import CLASS_NAMES, POSITIVE_CLASSES


def match(detected: pd.DataFrame, truth: pd.DataFrame, radius_um: float) -> dict[str, dict[str, float]]:
    """Per-class precision/recall/F1 of ``detected`` (x_um, y_um, class_name) against ``truth`` (type)."""
    tree = cKDTree(truth[["x_um", "y_um"]].to_numpy())
    pts = detected[["x_um", "y_um"]].to_numpy()
    dist, idx = tree.query(pts, k=4, distance_upper_bound=radius_um) if len(pts) else (np.zeros((0, 4)), None)
    pairs = sorted(
        (d, i, j) for i, (ds, js) in enumerate(zip(dist, idx, strict=False)) for d, j in zip(ds, js, strict=False)
        if np.isfinite(d)
    )
    det_to_true: dict[int, int] = {}
    used: set[int] = set()
    for _, i, j in pairs:
        if i not in det_to_true and j not in used:
            det_to_true[i] = j
            used.add(j)
    called = (detected["class_name"] if "class_name" in detected else detected["type"]).to_numpy()
    true_type = truth["type"].to_numpy()
    out: dict[str, dict[str, float]] = {}
    for c in POSITIVE_CLASSES:
        name = CLASS_NAMES[c]
        det_c = np.flatnonzero(called == name)
        tp = sum(1 for i in det_c if i in det_to_true and true_type[det_to_true[i]] == name)
        n_true = int((true_type == name).sum())
        p = tp / len(det_c) if len(det_c) else float("nan")
        r = tp / n_true if n_true else float("nan")
        f = 2 * p * r / (p + r) if p + r > 0 else 0.0
        out[name] = {"precision": p, "recall": r, "f1": f, "detected": len(det_c), "true": n_true, "tp": tp}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phantom", type=Path, required=True, help="phantom directory (hoechst.ome.tif, cells.csv)")
    ap.add_argument("--model", type=Path, default=None, help="model directory (default: the demo model)")
    ap.add_argument("--cells", type=Path, default=None, help="an existing cell table to score instead")
    ap.add_argument("--radius", type=float, default=4.0, help="matching radius in µm (default 4)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads")
    args = ap.parse_args()
    truth = pd.read_csv(args.phantom / "cells.csv")
    if args.cells is not None:
        detected = pd.read_csv(args.cells)
    else:
        from core.engine import AnalysisParams, analyse_slide
        from core.models.runtime import default_model_dir, load_model
        from core.progress import run_to_completion
        from core.slides import open_slide

        model = load_model(args.model or default_model_dir())
        with open_slide(args.phantom / "hoechst.ome.tif") as slide:
            job = analyse_slide(slide, model, AnalysisParams(torch_threads=args.threads))
            result = run_to_completion(job)
        detected = result.cells
        print(f"analysed in {result.summary.seconds:.0f} s: {len(detected)} cells")
    scores = match(detected, truth, args.radius)
    print(f"{'class':<10} {'precision':>9} {'recall':>7} {'F1':>6} {'called':>7} {'true':>6}")
    for name, s in scores.items():
        print(f"{name:<10} {s['precision']:9.3f} {s['recall']:7.3f} {s['f1']:6.3f} {s['detected']:7d} {s['true']:6d}")
    print(json.dumps(scores))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
