"""The PDF report: content (read back with pypdf), a rendered page that is not blank, byte identity.

The inputs are hand-built but real: shapely regions in µm derived the way the scores derive CT and
IM, a thumbnail with nucleus-like texture, a density raster.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pypdf import PdfReader
from shapely.geometry import Point

from core.regions.region import Region, RegionKind
from core.report import (
    RESEARCH_ONLY,
    SYNTHETIC_BANNER,
    CohortSummary,
    DensityOverlay,
    ImmunoscoreSummary,
    ModelSummary,
    QCSummary,
    RegionStat,
    ReportData,
    ReportSettings,
    ScoreComponent,
    Signature,
    TBSummary,
    render_overview,
    render_report,
    write_report,
)

MPP = 0.227
SIZE_PX = 4096
THUMB_DS = 8.0
SHA = "3f9a1c0e5b7d22aa4e6f8091bc3d5e7f00112233445566778899aabbccddeeff"


def _thumbnail(seed: int = 0) -> np.ndarray:
    """A 512² Hoechst-like uint16 thumbnail: an elliptical tissue section with nucleus texture."""
    rng = np.random.default_rng(seed)
    n = SIZE_PX // int(THUMB_DS)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    tissue = ((xx - n / 2) / (0.46 * n)) ** 2 + ((yy - n / 2) / (0.40 * n)) ** 2 < 1
    img = np.zeros((n, n), np.float32)
    idx = rng.integers(0, n, size=(6000, 2))
    img[idx[:, 0], idx[:, 1]] = rng.uniform(2000, 9000, size=6000)
    img = np.asarray(Image.fromarray(img).resize((n // 2, n // 2)).resize((n, n), Image.Resampling.BILINEAR))
    return ((img + 600) * tissue).astype(np.uint16)


def make_data(synthetic: bool = True, signed: bool = False, evaluable: bool = True, cohort_n: int = 120
              ) -> ReportData:
    """A complete report input as a case with a tumour, CT, IM and an exclusion would give."""
    centre = (SIZE_PX * MPP / 2, SIZE_PX * MPP / 2)
    tumour = Point(centre).buffer(260.0).simplify(1.0)
    tumour = tumour.union(Point(centre[0] + 180, centre[1] - 120).buffer(150.0))
    im = tumour.exterior.buffer(100.0)
    ct = tumour.difference(im)
    excl = Point(centre[0] - 70, centre[1] + 60).buffer(45.0)
    regions = [Region(kind=RegionKind.TUMOUR, geometry=tumour), Region(kind=RegionKind.INVASIVE_MARGIN, geometry=im),
               Region(kind=RegionKind.TUMOUR_CENTRE, geometry=ct), Region(kind=RegionKind.EXCLUSION, geometry=excl)]
    n = SIZE_PX // 32
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    r = np.hypot(xx - n / 2, yy - n / 2) * 32 * MPP
    tissue = np.asarray(Image.fromarray(_thumbnail() > 0).resize((n, n)))
    density = ((1500 * np.exp(-((r - 300) / 110) ** 2) + 150) * tissue).astype(np.float32)
    stats = [
        RegionStat("Tumour centre (CT)", "CT", 0.212, {"CD3+": 131, "CD8+": 52, "CD20+": 9},
                   {"CD3+": 617.9, "CD8+": 245.3, "CD20+": 42.5}),
        RegionStat("Invasive margin (IM)", "IM", 0.331, {"CD3+": 602, "CD8+": 251, "CD20+": 118},
                   {"CD3+": 1818.7, "CD8+": 758.3, "CD20+": 356.5}),
    ]
    if evaluable:
        immunoscore = ImmunoscoreSummary(
            evaluable=True, mean_percentile=58.6, label="IS2", category="Intermediate", level=2,
            components=[ScoreComponent("CD3+ CT", 617.9, 41.0), ScoreComponent("CD3+ IM", 1818.7, 77.5),
                        ScoreComponent("CD8+ CT", 245.3, 45.8), ScoreComponent("CD8+ IM", 758.3, 70.0)])
        tb = TBSummary(evaluable=True, score=3, category="High", components=[
            ScoreComponent("CD8+ CT", 245.3, cutoff=260.0, high=False),
            ScoreComponent("CD8+ IM", 758.3, cutoff=512.0, high=True),
            ScoreComponent("CD20+ CT", 42.5, cutoff=30.1, high=True),
            ScoreComponent("CD20+ IM", 356.5, cutoff=210.0, high=True)])
    else:
        reason = "No invasive margin region: the IM densities are missing."
        immunoscore = ImmunoscoreSummary(evaluable=False, reason=reason)
        tb = TBSummary(evaluable=False, reason=reason)
    return ReportData(
        case_id="DEMO-0001", case_label="Phantom colon section", slide_name="demo_phantom.ome.tif",
        slide_id="sha256:51be0c7a9d13", report_date=datetime(2025, 1, 15, 9, 30, tzinfo=UTC),
        created_at=datetime(2025, 1, 15, 9, 0, tzinfo=UTC), analysed_at=datetime(2025, 1, 15, 9, 12, tzinfo=UTC),
        operator="A. Analyst", thumbnail=_thumbnail(), thumbnail_downsample=THUMB_DS, mpp=(MPP, MPP),
        regions=regions, density=DensityOverlay(density, 32.0, "CD3+"), region_stats=stats,
        immunoscore=immunoscore, tb_score=tb,
        cohort=CohortSummary("Demo reference cohort", cohort_n, synthetic=True,
                             description="Synthetic densities shipped with HoechstScore."),
        model=ModelSummary("hoechst-unet-demo", "0.1.0", SHA, created="2025-01-10", synthetic=True,
                           metrics={"Per-pixel F1 (mean)": 0.842, "Per-cell F1 (mean)": 0.901}),
        qc=QCSummary(mpp=(MPP, MPP), tissue_area_mm2=0.611,
                     region_fractions={"Tumour centre (CT)": 0.981, "Invasive margin (IM)": 0.954},
                     items=[("Cells detected", "4,211"), ("Device", "cpu, fp32")]),
        synthetic=synthetic, im_half_width_um=100.0,
        signature=Signature("Dr P. Pathologist", datetime(2025, 1, 16, 14, 5, tzinfo=UTC)) if signed else None,
        software_version="0.1.0",
    )


SETTINGS = ReportSettings(lab_name="Institute of Tissue Pathology", operator="B. Printer")


def _text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


@pytest.fixture(scope="module")
def synthetic_pdf() -> bytes:
    return render_report(make_data(), SETTINGS)


def test_text_has_identifiers_results_cohort_and_model(synthetic_pdf: bytes) -> None:
    text = _text(synthetic_pdf)
    for expected in ("Institute of Tissue Pathology", "DEMO-0001", "demo_phantom.ome.tif", "A. Analyst",
                     "B. Printer", "2025-01-15", "1,819", "758", "618", "42.5", "IS2", "Intermediate", "58.6",
                     "Demo reference cohort", "n = 120", SHA[:12], "hoechst-unet-demo", "0.901",
                     "3 of 4 Hi", "High", "0.2270", "98.1 %", RESEARCH_ONLY, "Not signed", "Page 2 of 2"):
        assert expected in text, expected
    assert SYNTHETIC_BANNER in text
    assert "Immunoscore®" not in text and "®" not in text


def test_two_pages_a4(synthetic_pdf: bytes) -> None:
    reader = PdfReader(io.BytesIO(synthetic_pdf))
    assert len(reader.pages) == 2
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (595, 842)
    assert reader.metadata is not None and reader.metadata.creation_date_raw.startswith("D:20250115093000")


def test_banner_absent_for_real_slide_and_signature_shown() -> None:
    text = _text(render_report(make_data(synthetic=False, signed=True), SETTINGS))
    assert SYNTHETIC_BANNER not in text
    assert "Dr P. Pathologist" in text and "2025-01-16 14:05" in text


def test_not_evaluable_and_small_cohort_are_stated() -> None:
    text = _text(render_report(make_data(evaluable=False, cohort_n=12), SETTINGS))
    assert text.count("Not evaluable") == 2
    assert "No invasive margin region" in text
    assert "only n = 12 cases" in text


def test_byte_identical_twice(synthetic_pdf: bytes) -> None:
    assert render_report(make_data(), SETTINGS) == synthetic_pdf
    assert render_report(replace(make_data(), case_id="DEMO-0002"), SETTINGS) != synthetic_pdf


def test_logo_path_used_and_missing_logo_refused(tmp_path: Path) -> None:
    logo = tmp_path / "lab.png"
    Image.new("RGB", (40, 40), (200, 30, 30)).save(logo)
    assert render_report(make_data(), replace(SETTINGS, logo_path=logo)).startswith(b"%PDF")
    with pytest.raises(FileNotFoundError, match="nope.png"):
        render_report(make_data(), replace(SETTINGS, logo_path=tmp_path / "nope.png"))


def test_overview_draws_regions_and_density() -> None:
    data = make_data()
    ov = render_overview(data.thumbnail, data.thumbnail_downsample, data.mpp, data.regions, data.density,
                         max_size=600)
    assert ov.image.size == (600, 600)
    assert ov.kinds == ("exclusion", "invasive_margin", "tumour_centre", "tumour")
    assert ov.density_max == 2000.0
    assert ov.um_per_px == pytest.approx(SIZE_PX * MPP / 600)
    px = np.asarray(ov.image).astype(int)
    assert px.std() > 10
    # The centre of the image is CT tissue, the CT outline is violet somewhere.
    assert ((px[..., 0] > 80) & (px[..., 2] > 120) & (px[..., 1] < 90)).sum() > 100


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm (poppler-utils) is not installed")
def test_page_one_renders_not_blank(tmp_path: Path, synthetic_pdf: bytes) -> None:
    pdf = write_report(tmp_path / "r.pdf", make_data(), SETTINGS)
    assert pdf.read_bytes() == synthetic_pdf
    subprocess.run(["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "p")],
                   check=True, timeout=60)
    page = np.asarray(Image.open(next(tmp_path.glob("p*.png"))).convert("RGB")).astype(int)
    assert page.shape[0] > page.shape[1]
    ink = (page.sum(axis=2) < 600).mean()
    assert 0.03 < ink < 0.6, ink
    # The red synthetic banner is on the page.
    assert ((page[..., 0] > 150) & (page[..., 1] < 70) & (page[..., 2] < 70)).sum() > 200


def test_same_bytes_in_a_fresh_interpreter(synthetic_pdf: bytes, tmp_path: Path) -> None:
    """No process state (hash seed, reportlab counters, font caches) leaks into the bytes."""
    import hashlib
    import os
    import sys

    code = ("import sys, hashlib; sys.path.insert(0, sys.argv[1]); from test_report import make_data, SETTINGS; "
            "from core.report import render_report; print(hashlib.sha256(render_report(make_data(), SETTINGS)).hexdigest())")
    env = dict(os.environ, PYTHONHASHSEED="4242")
    out = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent)], capture_output=True, text=True,
                         check=True, timeout=120, env=env, cwd=Path(__file__).parents[2])
    assert out.stdout.strip() == hashlib.sha256(synthetic_pdf).hexdigest()


def test_overview_without_cells_has_no_density_scale() -> None:
    data = make_data()
    empty = DensityOverlay(np.zeros((8, 8), np.float32), 512.0, "CD3+")
    ov = render_overview(data.thumbnail, data.thumbnail_downsample, data.mpp, (), empty, max_size=200)
    assert ov.density_max is None and ov.density_label == "CD3+" and ov.kinds == ()
    text = _text(render_report(replace(data, density=empty, regions=()), SETTINGS))
    assert "No CD3+ cells" in text and "No regions" in text


def test_near_cut_notes_keep_two_pages_with_the_overview_on_page_one() -> None:
    """Notes under both scores make page 1 taller: the overview gives way instead of moving the
    cohort, model and QC to a third page."""
    import dataclasses

    data = make_data()
    note = "with each cell count 10% (at least one cell) lower or higher it would be {} or {}"
    data = dataclasses.replace(
        data, immunoscore=dataclasses.replace(data.immunoscore, near_cut=note.format("IS2 (Intermediate)", "IS3 (High)")),
        tb_score=dataclasses.replace(data.tb_score, near_cut=note.format("2 (Low)", "4 (High)")))
    pages = PdfReader(io.BytesIO(render_report(data, SETTINGS))).pages
    assert len(pages) == 2
    first = " ".join(pages[0].extract_text().split())
    assert first.count("Near a category cut") == 2 and "IS2 (Intermediate) or IS3 (High)" in first
    assert "Overview" in first and "Page 1 of 2" in first

