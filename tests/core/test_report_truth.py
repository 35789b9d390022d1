"""The report of a stored case tells the truth: print time, signer and meaning, analyst on a later
version, patient fields, SYNTHETIC by content, the method as done, the model/slide check warnings."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pypdf
import pytest
import tifffile

from core.report import ReportSettings, render_report
from core.report.from_store import report_data_from_store
from core.store import CaseStore


def _slide(path: Path, phantom: bool) -> Path:
    rng = np.random.default_rng(1)
    data = rng.integers(0, 3000, (2, 256, 256), dtype=np.uint16)
    extra = {"software": "HoechstScore phantom"} if phantom else {}
    tifffile.imwrite(path, data, ome=True, metadata={"axes": "CYX", "Channel": {"Name": ["FITC", "Nuclei"]}},
                     resolution=(1e4 / 0.5, 1e4 / 0.5), resolutionunit="CENTIMETER", **extra)
    return path


def _text(pdf: bytes) -> str:
    return "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages)


def _case(store: CaseStore, slide: Path, accession: str) -> int:
    case = store.create_case(accession)
    store.update_case(case.id, patient_id="P-9", patient_name="Doe, John", patient_birth_date="1950-01-31")
    rec = store.add_slide(case.id, slide, mpp=(0.5, 0.5), channels=["FITC", "Nuclei"], mpp_source="entered by the user")
    run = store.start_analysis(case.id, rec.id, model_name="lab-model", model_sha256="ab" * 32,
                               parameters={"engine": {"channel": "Nuclei"},
                                           "pixel_size": {"mpp_um": [0.5, 0.5], "source": "entered by the user"}},
                               device="cpu", precision="fp32")
    cells = pd.DataFrame({"x_um": [10.0, 20.0], "y_um": [10.0, 30.0], "class_id": [1, 3],
                          "probability": [0.9, 0.8], "area_um2": [30.0, 28.0]})
    store.save_cells(run.id, cells)
    store.finish_analysis(run.id, summary={"channel": "Nuclei", "model_card": {"name": "lab-model", "synthetic": False},
                                           "warnings": ["The slide's pixel size is 2.2× the model's."]})
    return case.id


@pytest.fixture
def store(tmp_path: Path):  # noqa: ANN201
    with CaseStore.open(f"sqlite:///{tmp_path / 'c.db'}", user="analyst1") as s:
        yield s


def test_header_people_patient_method_and_warnings(store: CaseStore, tmp_path: Path) -> None:
    case_id = _case(store, _slide(tmp_path / "lab.ome.tif", phantom=False), "R-1")
    store.add_user("jdoe", "Dr Jane Doe", "2468")
    store.sign_as(case_id, "jdoe", "2468", "Approval: final result.")
    v2 = store.new_version(case_id)
    printed = datetime(2026, 12, 2, 9, 41, tzinfo=UTC)
    data = report_data_from_store(store, v2.id)
    text = _text(render_report(data, ReportSettings(operator="Dr Printer", printed_at=printed)))
    assert "2026-12-02 09:41 UTC" in text and "Dr Printer" in text
    assert "analyst1" in text  # the analysis was started in v1; v2 still names who ran it
    assert "Doe, John" in text and "1950-01-31" in text and "P-9" in text
    assert "Nuclei" in text and "entered by the user" in text and "fp32" in text
    assert "2.2× the model" in text
    assert "SYNTHETIC" not in text and not data.synthetic
    v1 = _text(render_report(report_data_from_store(store, case_id), ReportSettings()))
    assert "Dr Jane Doe" in v1 and "Approval: final result." in v1


def test_a_phantom_opened_as_any_file_prints_synthetic(store: CaseStore, tmp_path: Path) -> None:
    case_id = _case(store, _slide(tmp_path / "opened.ome.tif", phantom=True), "R-2")
    data = report_data_from_store(store, case_id)  # recorded as not synthetic, but the file says it is
    assert data.synthetic and "phantom" in data.synthetic_reasons[0]
    assert "SYNTHETIC" in _text(render_report(data, ReportSettings()))


def test_a_category_near_a_cut_is_printed_as_such(store: CaseStore, tmp_path: Path) -> None:
    """3 CD8 cells in each 100 µm square = percentile 25 of the steps cohort: IS1 exactly at the IS1/IS2
    cut, which one more cell crosses. The report says so under the score; a case far from it does not."""
    from core.scores import score_case
    from tests.core._near_cut_case import STEPS_COHORT, cells_in_ct_and_im, squares

    texts = []
    for n, accession in ((3, "R-3"), (6, "R-4")):
        case_id = _case(store, _slide(tmp_path / f"{accession}.ome.tif", phantom=False), accession)
        scores = score_case(cells_in_ct_and_im(n), squares(), STEPS_COHORT)
        store.save_scores(case_id, scores.to_dict(), provenance=scores.provenance.to_dict())
        data = report_data_from_store(store, case_id)
        texts.append(" ".join(_text(render_report(data, ReportSettings())).split()))
    near, far = texts
    assert "IS1 · Low" in near and "Near a category cut" in near and "IS1 (Low) or IS2 (Intermediate)" in near
    assert "IS2 · Intermediate" in far and "Near a category cut" not in far
