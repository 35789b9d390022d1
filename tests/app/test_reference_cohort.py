"""The window scores against the lab's reference cohort in use, and its chart follows that cohort."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from shapely.geometry import box

from core.regions import Region, RegionSet
from core.scores import COHORT_PARAMETERS, ReferenceCohort, score_case


def _cells(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(0, 500, n), rng.uniform(0, 500, n)
    names = rng.choice(["CD3", "CD8_CD3HI", "CD20", "other"], n)
    return pd.DataFrame({"x_px": x / 0.5, "y_px": y / 0.5, "x_um": x, "y_um": y, "class_name": names,
                         "class_id": [["other", "CD8_CD3LO", "CD3", "CD20", "CD8_CD3HI"].index(c) for c in names]})


CT_IM = [Region(kind="tumour_centre", geometry=box(0, 0, 250, 500)),
         Region(kind="invasive_margin", geometry=box(250, 0, 500, 500))]


def test_scores_follow_the_cohort_in_use(window, slide_path: Path, tmp_path: Path) -> None:  # noqa: ANN001
    assert window.cases.open_slide_file(slide_path, "T-COHORT")
    session = window.session
    for r in CT_IM:
        session.regions.add(Region(kind=r.kind, geometry=r.geometry))
    session.set_cells(_cells(400, 1), None)
    # No reference case yet and no imported table: densities, but no silent demo cohort.
    assert session.cohort is None and not window.score_panel.cohort_values
    assert session.scores is not None
    assert not session.scores.immunoscore_like.evaluable and not session.scores.t_and_b.evaluable
    assert "no reference cohort" in (session.scores.immunoscore_like.reason or "")

    # Three other cases flagged as reference (with saved scores) become the cohort.
    store = session.store
    for i in range(3):
        case = store.create_case(f"REF-{i}", is_reference=True)
        s = score_case(_cells(300 + 100 * i, 10 + i), RegionSet(CT_IM), None)
        store.save_scores(case.id, s.to_dict(), provenance=s.provenance.to_dict())
    session.rescore()
    assert session.scores is not None
    scored = session.scores.immunoscore_like
    assert scored.cohort_name == "Lab reference cases" and scored.cohort_n == 3
    assert scored.evaluable and session.scores.t_and_b.evaluable
    assert window.score_panel.cohort_values["CD3_CT"].size == 3
    assert "Lab reference cases (n=3, version" in window.score_panel.headline.text()

    # An imported table set in the settings replaces it, and the chart follows (not the first one loaded).
    table = ReferenceCohort("Imported", pd.DataFrame({p: np.arange(1.0, 8.0) for p in COHORT_PARAMETERS}))
    window.settings.analysis.cohort_csv = str(table.to_csv(tmp_path / "imported.csv"))
    window.settings_controller.apply_to_session()
    session.rescore()
    assert session.scores is not None and session.scores.immunoscore_like.cohort_name == "Imported"
    assert window.score_panel.cohort_values["CD3_CT"].size == 7
