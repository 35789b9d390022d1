"""Reference cohorts: CSV with name/synthetic header, companion JSON, records, errors; the demo file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.errors import ScoreError
from core.resources import demo_cohort_csv, resource_path
from core.scores import COHORT_PARAMETERS, ReferenceCohort

HEADER = ",".join(COHORT_PARAMETERS)


def test_from_csv_reads_header_name_and_flag(tmp_path: Path) -> None:
    path = tmp_path / "lab.csv"
    path.write_text(
        f"# name: Lab cohort 2024\n# synthetic: false\ncase_id,{HEADER}\nA,1,2,3,4,5,6\nB,7,8,9,10,,12\n"
    )
    c = ReferenceCohort.from_csv(path)
    assert c.name == "Lab cohort 2024" and not c.synthetic and c.n == 2
    assert c.values("CD20_CT").tolist() == [5.0]  # empty cell = missing
    assert c.median("CD3_CT") == 4.0
    assert "case_id" in c.densities.columns
    assert ReferenceCohort.from_csv(path, name="Override").name == "Override"
    assert any("only 2 cases" in w for w in c.warnings)


def test_from_csv_companion_json_and_stem(tmp_path: Path) -> None:
    path = tmp_path / "ref.csv"
    path.write_text(f"{HEADER}\n1,2,3,4,5,6\n")
    assert ReferenceCohort.from_csv(path).name == "ref"
    (tmp_path / "ref.json").write_text(json.dumps({"name": "From JSON", "synthetic": True}))
    c = ReferenceCohort.from_csv(path)
    assert c.name == "From JSON" and c.synthetic and any("SYNTHETIC" in w for w in c.warnings)


def test_columns_missing_misspelt_or_none(tmp_path: Path) -> None:
    """A missing parameter is allowed (scores needing it are not evaluable); a misspelt or no column is not."""
    path = tmp_path / "bad.csv"
    path.write_text("CD3_CT,CD3_IM,cd8_ct\n1,2,3\n")
    with pytest.raises(ScoreError, match="column.s. cd8_ct must be spelt CD8_CT"):
        ReferenceCohort.from_csv(path)
    path.write_text("CD3_CT,CD3_IM\n1,2\n")
    partial = ReferenceCohort.from_csv(path)
    assert partial.n_per_parameter["CD3_CT"] == 1 and partial.n_per_parameter["CD8_CT"] == 0
    assert any("no values for CD8_CT, CD8_IM, CD20_CT, CD20_IM" in w for w in partial.warnings)
    path.write_text("case,density\nA,3\n")
    with pytest.raises(ScoreError) as err:
        ReferenceCohort.from_csv(path)
    assert "has none of the columns (cells/mm²) CD3_CT, CD3_IM, CD8_CT, CD8_IM, CD20_CT, CD20_IM" in str(err.value)


def test_bad_values(tmp_path: Path) -> None:
    with pytest.raises(ScoreError, match="column CD8_IM row 2 is not a number"):
        table = pd.DataFrame({c: [1, "many" if c == "CD8_IM" else 2] for c in COHORT_PARAMETERS})
        ReferenceCohort("x", table)
    with pytest.raises(ScoreError, match="negative"):
        ReferenceCohort("x", pd.DataFrame({c: [-1.0] for c in COHORT_PARAMETERS}))
    with pytest.raises(ScoreError, match="no cases"):
        ReferenceCohort("x", pd.DataFrame({c: [] for c in COHORT_PARAMETERS}))
    with pytest.raises(ScoreError, match="Cannot read reference cohort missing.csv"):
        ReferenceCohort.from_csv(tmp_path / "missing.csv")


def test_from_records_and_to_csv_round_trip(tmp_path: Path) -> None:
    records = [dict.fromkeys(COHORT_PARAMETERS, float(i)) | {"CD20_IM": None} for i in range(40)]
    c = ReferenceCohort.from_records(records, name="Stored reference cases")
    assert c.n == 40 and c.values("CD20_IM").size == 0
    assert c.n_per_parameter["CD3_CT"] == 40 and c.n_per_parameter["CD20_IM"] == 0
    assert any("only 40 cases" in w for w in c.warnings)  # fewer than the recommended 120, with the number
    assert any("no values for CD20_IM" in w for w in c.warnings)
    back = ReferenceCohort.from_csv(c.to_csv(tmp_path / "out.csv"))
    assert back.name == "Stored reference cases" and back.n == 40 and back.version == c.version
    assert np.array_equal(back.values("CD3_IM"), c.values("CD3_IM"))


def test_demo_cohort_is_synthetic_and_plausible() -> None:
    c = ReferenceCohort.from_csv(demo_cohort_csv())
    meta = json.loads(resource_path("reference", "demo_cohort.json").read_text())
    assert c.synthetic and meta["synthetic"] is True and c.name == meta["name"] and c.n == meta["n"] == 150
    d = c.densities
    assert (d["CD3_IM"].median() > d["CD3_CT"].median()) and (d["CD8_IM"].median() > d["CD8_CT"].median())
    assert 50 < d["CD3_CT"].median() < 2000 and (d["CD8_CT"] <= d["CD3_CT"]).all()
