"""The cell table: one row per detected cell, the columns every part of HoechstScore agrees on.

Coordinates: ``x_px, y_px`` are continuous level-0 pixel coordinates (pixel ``k`` spans
``[k, k + 1)``, so the centre of the top-left pixel is 0.5), as QuPath uses; ``x_um, y_um`` are the
same point in slide µm (level-0 px × the slide's mpp). ``probability`` is the mean softmax
probability of the cell's class over the pixels that chose it (0–1); ``confidence`` (0–1) is the
share of the nucleus's probability mass that voted for that class (1 = every pixel of the nucleus
called it with certainty; NaN for cells from sources without it, e.g. an imported GeoJSON or a
case stored before it existed); ``area_um2`` is its area in µm².
QuPath GeoJSON export of cells lives in :mod:`core.regions.geojson` (``write_cells_geojson``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from core.classes import CLASS_NAMES

#: Columns of the cell table, in order.
CELL_COLUMNS: tuple[str, ...] = (
    "x_px", "y_px", "x_um", "y_um", "class_name", "class_id", "probability", "area_um2", "confidence",
)  # fmt: skip
#: Columns written to ``cells.csv`` (class_id is implied by class_name).
CSV_COLUMNS: tuple[str, ...] = ("x_px", "y_px", "x_um", "y_um", "class_name", "probability", "area_um2", "confidence")


def empty_cell_table() -> pd.DataFrame:
    """A cell table with no rows and the right column dtypes."""
    return make_cell_table([], [], [], [], [], (1.0, 1.0))


def make_cell_table(
    x_px: Sequence[float] | np.ndarray,
    y_px: Sequence[float] | np.ndarray,
    class_id: Sequence[int] | np.ndarray,
    probability: Sequence[float] | np.ndarray,
    area_um2: Sequence[float] | np.ndarray,
    mpp: tuple[float, float],
    class_names: Sequence[str] = CLASS_NAMES,
    confidence: Sequence[float] | np.ndarray | None = None,
) -> pd.DataFrame:
    """Build a cell table from level-0 centroids; ``mpp`` = (x, y) µm per level-0 pixel;
    ``confidence`` None = unknown (NaN)."""
    x = np.asarray(x_px, dtype=np.float64)
    y = np.asarray(y_px, dtype=np.float64)
    cid = np.asarray(class_id, dtype=np.int64)
    names = np.asarray(class_names, dtype=object)[cid] if len(cid) else np.asarray([], dtype=object)
    return pd.DataFrame(
        {
            "x_px": x,
            "y_px": y,
            "x_um": x * float(mpp[0]),
            "y_um": y * float(mpp[1]),
            "class_name": pd.Series(names, dtype=object),
            "class_id": cid,
            "probability": np.asarray(probability, dtype=np.float64),
            "area_um2": np.asarray(area_um2, dtype=np.float64),
            "confidence": np.full(len(x), np.nan) if confidence is None else np.asarray(confidence, dtype=np.float64),
        },
        columns=list(CELL_COLUMNS),
    )


def concat_cell_tables(tables: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate cell tables (e.g. one per block) into one with a fresh 0..n-1 index."""
    parts = [t for t in tables if len(t)]
    if not parts:
        return empty_cell_table()
    return pd.concat(parts, ignore_index=True)[list(CELL_COLUMNS)]


def count_by_class(cells: pd.DataFrame, class_names: Sequence[str] = CLASS_NAMES) -> dict[str, int]:
    """Number of cells per class name (every class listed, zeros included) except class 0 (other)."""
    counts = cells["class_name"].value_counts() if len(cells) else pd.Series(dtype=int)
    return {name: int(counts.get(name, 0)) for name in class_names[1:]}


def write_cells_csv(cells: pd.DataFrame, path: str | Path) -> Path:
    """Write ``cells.csv`` (columns :data:`CSV_COLUMNS`, 3 decimals for coordinates)."""
    path = Path(path)
    columns = [c for c in CSV_COLUMNS if c in cells.columns]
    cells[columns].to_csv(path, index=False, float_format="%.4f")
    return path
