"""A case whose scores are easy to work out by hand, shared by the near-cut tests (scores, report, app).

Two 100 µm squares (0.01 mm² each: one cell is 100 cells/mm²) drawn as CT and IM, and a cohort with
every parameter at 100, 200, ..., 1000 cells/mm²: k cells in a square sit at percentile 10k − 5.
"""

from __future__ import annotations

import pandas as pd
from shapely.geometry import box

from core.regions import Region, RegionSet
from core.scores import COHORT_PARAMETERS, ReferenceCohort

CT, IM = box(0, 0, 100, 100), box(200, 0, 300, 100)
STEPS_COHORT = ReferenceCohort("steps", pd.DataFrame({p: [100.0 * i for i in range(1, 11)] for p in COHORT_PARAMETERS}))


def squares() -> RegionSet:
    """CT and IM as drawn regions."""
    return RegionSet([Region(kind="tumour_centre", geometry=CT), Region(kind="invasive_margin", geometry=IM)])


def cells_in_ct_and_im(n_cd8: int, n_cd20: int = 0) -> pd.DataFrame:
    """``n_cd8`` CD8_CD3LO cells (CD3+ and CD8+) and ``n_cd20`` CD20 cells in each of CT and IM."""
    rows = []
    for x0 in (0.0, 200.0):
        rows += [(x0 + 5 + 8 * i, 20.0, "CD8_CD3LO") for i in range(n_cd8)]
        rows += [(x0 + 5 + 8 * i, 60.0, "CD20") for i in range(n_cd20)]
    return pd.DataFrame(rows, columns=["x_um", "y_um", "class_name"])
