"""Score a case and record it; say per cell which scored region it is in. Both on one drawn_or_derived_ct_im.

The counts (:func:`core.scores.score_case`) and the ``region`` column of an exported cell table
(:func:`cell_regions`) both take CT and IM from :func:`core.scores.drawn_or_derived_ct_im` (drawn ones, or
derived from the tumour when none is drawn) and both remove the exclusions first, so counting
the exported table by region gives the counts the scores used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from core.case.recording import jsonable_dict
from core.jsontypes import JSONDict, JSONMapping
from core.regions import DEFAULT_IM_HALF_WIDTH_UM, Polygonal, RegionSet
from core.scores import CaseScores, ReferenceCohort, drawn_or_derived_ct_im, score_case

if TYPE_CHECKING:
    from core.store import CaseStore

#: Labels of :func:`cell_regions`, in the words of the report.
CT, IM, TUMOUR, EXCLUDED = "CT", "IM", "Tumour", "Excluded"


@dataclass(frozen=True)
class RecordedScores:
    """Scores of a case, their JSON form as stored, and whether a new row was stored."""

    scores: CaseScores
    result: JSONDict
    saved: bool


def score_and_record(
    store: CaseStore,
    case_id: int,
    cells: pd.DataFrame,
    regions: RegionSet,
    cohort: ReferenceCohort | None,
    im_half_width_um: float,
    *,
    model_name: str | None = None,
    model_sha256: str | None = None,
    analysis_id: int | None = None,
    editable: bool = True,
    previous: JSONMapping | None = None,
) -> RecordedScores:
    """Score ``cells`` in ``regions`` against ``cohort`` and store the result only if it changed.

    Both the app (after every region edit and on opening a case) and the demo pipeline score a
    case this way. Storing only a *changed* result matters: every stored row is a version in the
    audit trail, and re-opening a case must not pile up identical rows. ``previous`` is the last
    result the caller knows of (the app keeps it in memory); when None, the newest stored one is
    read. The model's name and sha256 and the stored analysis the cells came from go into the
    provenance; ``editable`` False (a signed case) never writes.
    """
    scores = score_case(cells, regions, cohort, im_half_width_um=im_half_width_um,
                        model_name=model_name, model_sha256=model_sha256)
    result = jsonable_dict(scores.to_dict())
    if previous is None:
        stored = store.load_scores(case_id)
        previous = stored[-1].result if stored else None
    saved = editable and result != previous
    if saved:
        store.save_scores(case_id, result, provenance=jsonable_dict(scores.provenance.to_dict()),
                          analysis_id=analysis_id)
    return RecordedScores(scores, result, saved)


def cell_regions(cells: pd.DataFrame, regions: RegionSet,
                 im_half_width_um: float = DEFAULT_IM_HALF_WIDTH_UM) -> list[str]:
    """Per cell, the scored region its centre lies in: "CT", "IM", "Tumour" (in the tumour but in
    neither CT nor IM), "Excluded" (inside an exclusion) or "" (none).

    CT and IM are those the scores count in (:func:`core.scores.drawn_or_derived_ct_im`: drawn, else
    derived with ``im_half_width_um``), exclusions removed, and a cell counts when strictly
    inside, as in :func:`core.scores.compute_densities`. CT wins over IM where drawn ones overlap
    (the scores then count such a cell in both).
    """
    from core.scores.density import inside

    x, y = cells["x_um"].to_numpy(np.float64), cells["y_um"].to_numpy(np.float64)
    out = np.full(len(cells), "", dtype=object)
    sr = drawn_or_derived_ct_im(regions, im_half_width_um)
    excluded = sr.exclusions if sr.exclusions is not None and not sr.exclusions.is_empty else None

    def scored(geometry: Polygonal | None) -> Polygonal | None:
        return geometry.difference(excluded) if geometry is not None and excluded is not None else geometry

    for geometry, label in ((sr.tumour, TUMOUR), (sr.im, IM), (sr.ct, CT)):  # later wins
        part = scored(geometry)
        if part is not None:
            out[inside(part, x, y)] = label
    if excluded is not None:
        out[inside(excluded, x, y)] = EXCLUDED
    return [str(v) for v in out]


def write_case_cells_csv(cells: pd.DataFrame, regions: RegionSet, im_half_width_um: float, path: str | Path) -> Path:
    """``cells.csv`` (:func:`core.cells.write_cells_csv` columns) plus each cell's scored ``region``
    (:func:`cell_regions`): the export of the app and the demo."""
    from core.cells import CSV_COLUMNS

    path = Path(path)
    table = cells[[c for c in CSV_COLUMNS if c in cells.columns]].assign(
        region=cell_regions(cells, regions, im_half_width_um))
    table.to_csv(path, index=False, float_format="%.4f")
    return path
