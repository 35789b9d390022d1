"""The best per-cell macro-F1 any threshold labeller can reach on a phantom: an upper bound.

The labeller (and the paper's QuPath recipe) calls a cell's class from its mean marker intensities
with one threshold per marker. A realistic phantom draws positives and negatives whose intensities
overlap (dim, varying stain), so even the *true* cell means with the best global thresholds chosen
*on the truth* misclassify some cells. This script measures that bound, so that a labeller's score
is read against what is possible on that phantom rather than against 1.0.

    python benchmarks/label_bound.py phantoms/lung-real/cells.csv --tiles exports/lung/

Prints the bound with its thresholds and per-class F1. ``--tiles`` restricts the truth to the cells
inside the exported tiles (their names carry x, y, w, h in level-0 px); without it, all cells.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pandas as pd

from core.classes import CLASS_NAMES
from training.labelcheck import LYMPHOCYTE_CLASSES
from training.labeller import Thresholds, classify

_TILE = re.compile(r"x=(\d+),y=(\d+),w=(\d+),h=(\d+)\]")


def cells_in_tiles(truth: pd.DataFrame, folder: Path) -> pd.DataFrame:
    """Truth rows whose level-0 centroid lies inside one of the TileExporter tiles in ``folder``."""
    keep = np.zeros(len(truth), dtype=bool)
    x, y = truth["x_px"].to_numpy(), truth["y_px"].to_numpy()
    for tif in sorted(folder.glob("*.tif")):
        m = _TILE.search(tif.stem)
        if m:
            x0, y0, w, h = (int(v) for v in m.groups())
            keep |= (x >= x0) & (x < x0 + w) & (y >= y0) & (y < y0 + h)
    return truth[keep]


def macro_f1(pred: np.ndarray, true: np.ndarray) -> tuple[float, dict[str, float]]:
    """Mean F1 of the lymphocyte classes present in ``true`` (cells are already paired)."""
    per = {}
    for c in LYMPHOCYTE_CLASSES:
        n_true = int((true == c).sum())
        if n_true:
            per[c] = 2 * int(((pred == c) & (true == c)).sum()) / (int((pred == c).sum()) + n_true)
    return (float(np.mean(list(per.values()))) if per else float("nan")), per


def best_thresholds(truth: pd.DataFrame, rounds: int = 3, steps: int = 60) -> tuple[float, Thresholds, dict[str, float]]:
    """Coordinate search over the four thresholds (log-spaced grid per marker) maximising macro-F1."""
    means = {"cd20": truth["mean_fitc"].to_numpy(), "cd8": truth["mean_cy3"].to_numpy(),
             "cd3": truth["mean_af750"].to_numpy()}
    true = truth["type"].to_numpy()
    names = np.asarray(CLASS_NAMES)
    grids = {k: np.geomspace(max(1.0, np.percentile(v, 1)), np.percentile(v, 99.9), steps) for k, v in means.items()}
    grids["cd3_hi"] = grids["cd3"]
    current = {k: float(np.median(g)) for k, g in grids.items()}

    def score(t: dict[str, float]) -> float:
        pred = names[classify(means["cd20"], means["cd8"], means["cd3"], Thresholds(**t))]
        return macro_f1(pred, true)[0]

    best = score(current)
    for _ in range(rounds):
        for key, grid in grids.items():
            for value in grid:
                trial = {**current, key: float(value)}
                s = score(trial)
                if s > best:
                    best, current = s, trial
    pred = names[classify(means["cd20"], means["cd8"], means["cd3"], Thresholds(**current))]
    return best, Thresholds(**current), macro_f1(pred, true)[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("truth", type=Path, help="the phantom's cells.csv")
    p.add_argument("--tiles", type=Path, default=None, help="TileExporter folder: only cells inside its tiles")
    args = p.parse_args()
    truth = pd.read_csv(args.truth)
    if args.tiles is not None:
        truth = cells_in_tiles(truth, args.tiles)
    counts = truth["type"].value_counts().to_dict()
    bound, t, per = best_thresholds(truth)
    print(f"{len(truth)} cells {counts}")
    print(f"Upper bound of a threshold labeller (true cell means, best global thresholds): macro-F1 {bound:.3f}")
    print(f"  at cd20 {t.cd20:.0f}, cd8 {t.cd8:.0f}, cd3 {t.cd3:.0f}, cd3_hi {t.cd3_hi:.0f}; per class "
          + ", ".join(f"{k} {v:.3f}" for k, v in per.items()))


if __name__ == "__main__":
    main()
