"""Measure the labeller against known truth (the phantom's ``cells.csv``): per-class precision/recall.

A model cannot be better than its labels, so the labeller's own error is worth knowing. Labelled
cells are matched one-to-one to true cells by nearest centroid within ``max_dist_um`` (greedy,
closest pairs first). For class c: precision = labelled-as-c cells matched to a true c cell ÷
labelled-as-c cells; recall = the same matches ÷ true c cells. Unmatched cells count against both
(a missed nucleus lowers recall, a spurious one lowers precision).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from core.classes import CLASS_NAMES
from training.errors import LabelError


def read_truth(path: str | Path) -> pd.DataFrame:
    """The phantom's cell table (columns x_um, y_um, type)."""
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError) as err:
        raise LabelError(f"Cannot read the truth table {path}: {err}") from None
    missing = {"x_um", "y_um", "type"} - set(df.columns)
    if missing:
        raise LabelError(f"Truth table {path} lacks column(s) {', '.join(sorted(missing))}.")
    return df


def match_cells(labelled: np.ndarray, truth: np.ndarray, max_dist: float) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one nearest-centroid matches (index arrays into labelled, truth), closest first."""
    if len(labelled) == 0 or len(truth) == 0:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    tree = cKDTree(truth)
    pairs = tree.query_ball_point(labelled, r=max_dist)
    cand = [(float(np.hypot(*(labelled[i] - truth[j]))), i, j) for i, js in enumerate(pairs) for j in js]
    cand.sort()
    used_l: set[int] = set()
    used_t: set[int] = set()
    li, ti = [], []
    for _, i, j in cand:
        if i not in used_l and j not in used_t:
            used_l.add(i)
            used_t.add(j)
            li.append(i)
            ti.append(j)
    return np.asarray(li, dtype=int), np.asarray(ti, dtype=int)


def compare_to_truth(cells: pd.DataFrame, truth: pd.DataFrame, max_dist_um: float = 3.0) -> pd.DataFrame:
    """Per-class table (index: class name, plus 'detection') of precision, recall, f1 and counts.

    ``cells``: labeller output (x_um, y_um, class_name); ``truth``: x_um, y_um, type.
    """
    la = cells[["x_um", "y_um"]].to_numpy(dtype=np.float64)
    ta = truth[["x_um", "y_um"]].to_numpy(dtype=np.float64)
    li, ti = match_cells(la, ta, max_dist_um)
    lab = cells["class_name"].to_numpy()
    tru = truth["type"].to_numpy()
    rows = {}
    for name in CLASS_NAMES:
        tp = int(np.sum((lab[li] == name) & (tru[ti] == name)))
        n_l = int(np.sum(lab == name))
        n_t = int(np.sum(tru == name))
        p = tp / n_l if n_l else float("nan")
        r = tp / n_t if n_t else float("nan")
        f = 2 * p * r / (p + r) if n_l and n_t and (p + r) > 0 else float("nan")
        rows[name] = {"precision": p, "recall": r, "f1": f, "labelled": n_l, "true": n_t, "correct": tp}
    n = len(li)
    rows["detection"] = {
        "precision": n / len(la) if len(la) else float("nan"),
        "recall": n / len(ta) if len(ta) else float("nan"),
        "f1": 2 * n / (len(la) + len(ta)) if len(la) + len(ta) else float("nan"),
        "labelled": len(la),
        "true": len(ta),
        "correct": n,
    }
    return pd.DataFrame.from_dict(rows, orient="index")


def format_comparison(table: pd.DataFrame) -> str:
    lines = [f"{'class':<12} {'precision':>9} {'recall':>7} {'f1':>6} {'labelled':>9} {'true':>7} {'correct':>8}"]
    for name, r in table.iterrows():
        lines.append(
            f"{name:<12} {r['precision']:>9.3f} {r['recall']:>7.3f} {r['f1']:>6.3f} "
            f"{int(r['labelled']):>9d} {int(r['true']):>7d} {int(r['correct']):>8d}"
        )
    return "\n".join(lines)


#: Lymphocyte classes whose F1 the macro-F1 averages ("other" is the background, not a target).
LYMPHOCYTE_CLASSES: tuple[str, ...] = tuple(c for c in CLASS_NAMES if c != "other")
_TILE_RE = re.compile(r"\[(?:d=([0-9.]+),)?x=(-?\d+),y=(-?\d+),w=(\d+),h=(\d+)\]")


def macro_f1(table: pd.DataFrame, classes: tuple[str, ...] = LYMPHOCYTE_CLASSES) -> float:
    """Mean per-class F1 (from the counts of :func:`compare_to_truth`) over classes present in the truth."""
    f1s = []
    for name in classes:
        r = table.loc[name]
        if r["true"] == 0:
            continue
        denom = r["labelled"] + r["true"]
        f1s.append(2 * r["correct"] / denom if denom else 0.0)
    return float(np.mean(f1s)) if f1s else float("nan")


def tile_truth(cells: pd.DataFrame, truth: pd.DataFrame, name: str, dims: tuple[int, int], mpp: float,
               border_um: float = 5.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cells and truth in one frame: for a TileExporter tile (``name`` ends in ``[x=…,y=…,w=…,h=…]``)
    the truth (level-0 ``x_px``/``y_px`` of the whole slide) is moved into the tile's µm frame, and
    cells of both within ``border_um`` of the tile edge are dropped (cut by the edge, their centroids
    differ). Other slides are returned unchanged."""
    m = _TILE_RE.search(name)
    if m is None:
        return cells, truth
    x0, y0, w, h = (int(v) for v in m.groups()[1:])
    d = w / dims[0]
    if {"x_px", "y_px"} <= set(truth.columns):
        tx, ty = truth["x_px"].to_numpy(), truth["y_px"].to_numpy()
    else:
        tx, ty = truth["x_um"].to_numpy() / (mpp / d), truth["y_um"].to_numpy() / (mpp / d)
    tr = truth.copy()
    tr["x_um"], tr["y_um"] = (tx - x0) / d * mpp, (ty - y0) / d * mpp
    wu, hu = dims[0] * mpp, dims[1] * mpp

    def inner(df: pd.DataFrame) -> pd.DataFrame:
        x, y = df["x_um"].to_numpy(), df["y_um"].to_numpy()
        return df[(x >= border_um) & (x < wu - border_um) & (y >= border_um) & (y < hu - border_um)]

    return inner(cells), inner(tr)
