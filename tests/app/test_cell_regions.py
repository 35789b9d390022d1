"""The exported cells CSV says, per cell, the region the scores counted it in.

Drawn only a tumour (no CT/IM), the scores derive CT and IM from it (core.scores.drawn_or_derived_ct_im);
the CSV's ``region`` column must follow the same derived CT and IM, so that counting the CSV by
region and marker group gives the counts the scores used. Real SQLite store, real OME-TIFF slide.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from core.classes import DEFAULT_MARKER_GROUPS
from core.regions import Region, RegionKind


def _cells(n: int = 3000, seed: int = 3) -> pd.DataFrame:
    """Random cells over the 512 µm test slide, every class present."""
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(0, 512, n), rng.uniform(0, 512, n)
    names = np.asarray(["other", "CD8_CD3LO", "CD3", "CD20", "CD8_CD3HI"], dtype=object)
    ids = rng.integers(0, 5, n)
    return pd.DataFrame({"x_px": x / 0.5, "y_px": y / 0.5, "x_um": x, "y_um": y, "class_name": names[ids],
                         "class_id": ids, "probability": 0.9, "area_um2": 30.0})


def _csv_counts(table: pd.DataFrame, region: str) -> dict[str, int]:
    inside = table[table["region"] == region]
    return {group: int(inside["class_name"].isin(members).sum()) for group, members in DEFAULT_MARKER_GROUPS.items()}


@pytest.mark.parametrize("exclusion", [False, True], ids=["tumour", "tumour+exclusion"])
def test_csv_region_column_equals_the_scored_regions_when_only_a_tumour_is_drawn(
        qtbot, slide_path: Path, tmp_path: Path, exclusion: bool) -> None:  # noqa: ANN001
    from app.case_session import CaseSession

    session = CaseSession(f"sqlite:///{tmp_path / 'cases.db'}")
    try:
        session.create_case(slide_path, "REGION-CSV-1")
        session.im_half_width_um = 40.0
        session.regions.add(Region(kind=RegionKind.TUMOUR, geometry=box(150, 150, 350, 350), name="Tumour"))
        if exclusion:  # straddles CT and IM: its cells are in neither count
            session.regions.add(Region(kind=RegionKind.EXCLUSION, geometry=box(170, 240, 260, 280), name="Fold"))
        assert not session.regions.of_kind(RegionKind.TUMOUR_CENTRE)  # nothing derived into the set
        session.set_cells(_cells(), None)
        assert session.scores is not None
        counted = {row.region: dict(row.counts) for row in session.scores.densities.regions}
        assert {"CT", "IM"} <= set(counted) and counted["CT"]["CD3+"] > 0 and counted["IM"]["CD3+"] > 0

        table = pd.read_csv(session.export_cells_csv(tmp_path / "cells.csv"), keep_default_na=False)
        assert len(table) == 3000
        for region in ("CT", "IM"):
            assert _csv_counts(table, region) == counted[region], region
        assert (table["region"] == "Excluded").any() == exclusion
    finally:
        session.close()
