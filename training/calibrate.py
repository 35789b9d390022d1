"""Threshold calibration: text histograms of cell means, suggested thresholds, and QC mosaics.

Method for suggestions (documented in ``--help``): Otsu's threshold on log10 of the per-cell mean
intensity of each marker. Marker intensities are roughly log-normal with a dim negative and a
bright positive population; Otsu on the log scale finds the split between them without a model
fit (a 2-Gaussian mixture needs scikit-learn, which the product does not ship) and is
deterministic. It is a starting point: with very few positive cells (e.g. <2 %) Otsu drifts into
the negative population, which is why the histogram and the QC mosaics are there to check it.
AF750 is judged per population, because CD8+ cells carry dim CD3 (the CD8_CD3LO class) and would
make a third mode: ``cd3`` is suggested among the CD8− cells, ``cd3_hi`` among the CD8+ cells (CD8
by the current ``cd8`` threshold, so the suggestion matches the histogram shown).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw
from skimage.filters import threshold_otsu
from skimage.segmentation import expand_labels, find_boundaries

from core.classes import CLASS_COLOURS, CLASS_NAMES
from core.slides import Slide
from training.config import CHANNEL_ROLES, MARKER_ROLES, LabelConfig, Thresholds
from training.segment import segment_nuclei

_MARKER_LABEL = {
    "cd20": "CD20 (FITC)",
    "cd8": "CD8 (Cy3)",
    "cd3": "CD3 (AF750, CD8- cells)",
    "cd3_hi": "CD3 high (AF750, CD8+ cells)",
}


def _log_otsu(values: np.ndarray) -> float | None:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size < 10:
        return None
    logs = np.log10(v)
    if float(logs.max()) - float(logs.min()) < 1e-6:
        return None
    return float(round(10 ** threshold_otsu(logs, nbins=256)))


def suggest_thresholds(cells: pd.DataFrame, current: Thresholds) -> dict[str, float | None]:
    """Suggested threshold per key of :class:`Thresholds` (None where there are too few cells)."""
    cd8_pos = cells["mean_cd8"].to_numpy() >= current.cd8
    cd3 = cells["mean_cd3"].to_numpy()
    return {
        "cd20": _log_otsu(cells["mean_cd20"].to_numpy()),
        "cd8": _log_otsu(cells["mean_cd8"].to_numpy()),
        "cd3": _log_otsu(cd3[~cd8_pos]),
        "cd3_hi": _log_otsu(cd3[cd8_pos]),
    }


def text_histogram(values: np.ndarray, marks: dict[str, float], bins: int = 24, width: int = 50) -> str:
    """A log10-binned histogram as text lines, marking the bins that hold each threshold."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        return "  (no cells with a positive mean)"
    lo, hi = np.log10(v.min()), np.log10(v.max())
    for m in marks.values():
        if m and m > 0:
            lo, hi = min(lo, np.log10(m)), max(hi, np.log10(m))
    hi = max(hi, lo + 1e-3)
    edges = np.linspace(lo, hi * (1 + 1e-9), bins + 1)
    counts, _ = np.histogram(np.log10(v), bins=edges)
    scale = width / max(1, counts.max())
    lines = []
    for k in range(bins):
        a, b = 10 ** edges[k], 10 ** edges[k + 1]
        here = [f"{name} {m:.0f}" for name, m in marks.items() if m and a <= m < b]
        bar = "#" * int(round(counts[k] * scale))
        note = f"  <- {', '.join(here)}" if here else ""
        lines.append(f"  {a:>9.0f}-{b:<9.0f} {counts[k]:>7d} {bar}{note}")
    return "\n".join(lines)


def calibration_report(cells: pd.DataFrame, current: Thresholds) -> tuple[str, dict[str, float | None]]:
    """Readable report (histograms, current and suggested thresholds, positives) and the suggestions."""
    sugg = suggest_thresholds(cells, current)
    parts = [
        "Suggested thresholds: Otsu on log10 cell means (cd3: among CD8- cells, cd3_hi: among CD8+ cells). "
        "Check them against the QC mosaics before use.",
    ]
    cd8_pos = cells["mean_cd8"].to_numpy() >= current.cd8
    for key in (*MARKER_ROLES, "cd3_hi"):
        role = "cd3" if key == "cd3_hi" else key
        vals = cells[f"mean_{role}"].to_numpy()
        if key == "cd3_hi":
            vals = vals[cd8_pos]
        elif key == "cd3":
            vals = vals[~cd8_pos]
        cur = float(getattr(current, key))
        s = sugg[key]
        pos_cur = int((vals >= cur).sum())
        s_txt = "n/a (too few cells)" if s is None else f"{s:.0f} ({int((vals >= s).sum())} positive)"
        parts.append(
            f"\n{_MARKER_LABEL[key]}: {len(vals)} cells; current {cur:.0f} ({pos_cur} positive); suggested {s_txt}"
        )
        parts.append(text_histogram(vals, {"current": cur, "suggested": s or 0.0}))
    return "\n".join(parts), sugg


def _display(a: np.ndarray, hi: float) -> np.ndarray:
    return (np.clip(a / max(hi, 1e-6), 0, 1) * 255).astype(np.uint8)


def write_qc_mosaics(
    slide: Slide,
    cells: pd.DataFrame,
    cfg: LabelConfig,
    channels: dict[str, int],
    hoechst_threshold: float,
    out_dir: str | Path,
    per_class: int = 24,
    window_um: float = 16.0,
    seed: int = 0,
) -> list[Path]:
    """One PNG per class: sampled cells as strips Hoechst | CD20 | CD8 | CD3, cell outline in the class colour.

    Marker panels are scaled 0 → 2× the threshold, so a cell exactly at threshold is mid-grey:
    positives look bright, negatives dark, and borderline cells are easy to spot by eye.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mpp = float(np.mean(slide.require_mpp()))
    win = int(round(window_um / mpp)) | 1
    half = win // 2
    scale = max(1, 64 // win + 1)
    rng = np.random.default_rng(seed)
    order = [channels[r] for r in CHANNEL_ROLES]
    t = cfg.thresholds
    ranges = {"cd20": 2 * t.cd20, "cd8": 2 * t.cd8, "cd3": 2 * t.cd3}
    written = []
    for cid, name in enumerate(CLASS_NAMES):
        sub = cells[cells["class_id"] == cid]
        if len(sub) == 0:
            continue
        pick = sub.iloc[np.sort(rng.choice(len(sub), size=min(per_class, len(sub)), replace=False))]
        strips = []
        colour = tuple(int(CLASS_COLOURS[cid][i : i + 2], 16) for i in (1, 3, 5))
        for _, row in pick.iterrows():
            x, y = int(round(row["x_px"])), int(round(row["y_px"]))
            stack = slide.read_region((x - half, y - half), 0, (win, win), channels=order).astype(np.float32)
            nuc = segment_nuclei(stack[0], mpp, cfg.segmentation, hoechst_threshold)
            cell = expand_labels(nuc, distance=max(0, int(round(cfg.segmentation.cell_expansion_um / mpp))))
            outline = find_boundaries(cell == cell[half, half], mode="inner") if cell[half, half] else None
            hmax = float(np.percentile(stack[0], 99.5)) or 1.0
            panels = [_display(stack[0], hmax)] + [_display(stack[1 + k], ranges[r]) for k, r in enumerate(MARKER_ROLES)]
            rgb = [np.repeat(p[..., None], 3, axis=2) for p in panels]
            if outline is not None:
                for p in rgb:
                    p[outline] = colour
            strip = np.concatenate([np.pad(p, ((1, 1), (1, 1), (0, 0)), constant_values=40) for p in rgb], axis=1)
            strips.append(np.kron(strip, np.ones((scale, scale, 1), dtype=np.uint8)))
        cols = 3
        rows = [strips[i : i + cols] for i in range(0, len(strips), cols)]
        sh, sw = strips[0].shape[:2]
        grid = np.full((len(rows) * (sh + 4) + 20, cols * (sw + 8), 3), 20, dtype=np.uint8)
        for r, row_strips in enumerate(rows):
            for c, s in enumerate(row_strips):
                grid[20 + r * (sh + 4) : 20 + r * (sh + 4) + sh, c * (sw + 8) : c * (sw + 8) + sw] = s
        img = Image.fromarray(grid)
        ImageDraw.Draw(img).text(
            (4, 4), f"{name}: {len(pick)} of {len(sub)} cells. Hoechst | CD20 | CD8 | CD3 (0-2x threshold)",
            fill=(255, 255, 255),
        )
        path = out / f"qc-{name}.png"
        img.save(path)
        written.append(path)
    return written
