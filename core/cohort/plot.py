"""The cohort summary plot (PNG): each case's density per marker group and region, one dot per case.

Drawn with Pillow (already a dependency through scikit-image and the reports) rather than adding
matplotlib for one figure. One column per parameter (CD3_CT, CD3_IM, ...; the tissue densities
when no case has regions), dots jittered sideways, the median as a bar, on a square-root axis,
since densities span two orders of magnitude across a cohort. Units are spelt out: Pillow's
default font has no "²".
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from core.scores import COHORT_PARAMETERS

TISSUE_PARAMETERS = ("CD3_Tissue", "CD8_Tissue", "CD20_Tissue")
#: Column colours by marker (CD3 green, CD8 magenta, CD20 cyan), as on the report.
MARKER_RGB = {"CD3": (60, 170, 60), "CD8": (200, 60, 160), "CD20": (40, 150, 200)}
W_COL, H_PLOT, LEFT, TOP, BOTTOM = 110, 360, 70, 40, 60


def _nice_ticks(vmax: float) -> list[float]:
    step = 10 ** math.floor(math.log10(vmax)) if vmax > 0 else 1.0
    ticks = [0.0]
    while ticks[-1] < vmax:
        ticks.append(ticks[-1] + step)
    return ticks if len(ticks) <= 8 else ticks[:: math.ceil(len(ticks) / 8)]


def summary_plot(table: pd.DataFrame, path: Path, title: str = "Cohort densities, cells per square mm") -> Path:
    """Write the plot of ``table`` (:func:`core.cohort.table.cohort_table`) to ``path``."""
    columns = [c for c in COHORT_PARAMETERS if c in table.columns and table[c].notna().any()]
    if not columns:
        columns = [c for c in TISSUE_PARAMETERS if c in table.columns]
    values = {c: pd.to_numeric(table[c], errors="coerce").dropna().to_numpy(float) if c in table.columns
              else np.empty(0) for c in columns}
    vmax = max([float(v.max()) for v in values.values() if v.size] + [1.0])
    ticks = _nice_ticks(vmax)
    top_value = max(ticks[-1], vmax)
    width = LEFT + W_COL * max(len(columns), 1) + 20
    image = Image.new("RGB", (width, TOP + H_PLOT + BOTTOM), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()

    def y_of(v: float) -> float:
        return TOP + H_PLOT * (1 - math.sqrt(max(v, 0.0) / top_value))

    n_done = int((table.get("status", pd.Series(dtype=str)) == "done").sum())
    draw.text((LEFT, 10), f"{title}; {n_done} of {len(table)} cases", fill="black", font=font)
    for t in ticks:
        y = y_of(t)
        draw.line([(LEFT - 4, y), (width - 20, y)], fill=(225, 225, 225))
        draw.text((4, y - 6), f"{t:g}", fill="black", font=font)
    draw.line([(LEFT, TOP), (LEFT, TOP + H_PLOT)], fill="black")
    rng = np.random.default_rng(0)  # fixed jitter: the same table gives the same picture
    for i, col in enumerate(columns):
        x0 = LEFT + W_COL * i + W_COL / 2
        colour = MARKER_RGB.get(col.split("_")[0], (90, 90, 90))
        for v in values[col]:
            x, y = x0 + rng.uniform(-W_COL * 0.3, W_COL * 0.3), y_of(v)
            draw.ellipse([(x - 3, y - 3), (x + 3, y + 3)], fill=colour)
        if values[col].size:
            y = y_of(float(np.median(values[col])))
            draw.line([(x0 - W_COL * 0.38, y), (x0 + W_COL * 0.38, y)], fill="black", width=2)
        draw.text((x0 - 30, TOP + H_PLOT + 8), col, fill="black", font=font)
        draw.text((x0 - 30, TOP + H_PLOT + 24), f"n={values[col].size}", fill=(90, 90, 90), font=font)
    draw.text((LEFT, TOP + H_PLOT + 42), "bar: median; axis: square root of density", fill=(90, 90, 90), font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
