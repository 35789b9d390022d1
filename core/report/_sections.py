"""The report's sections as platypus flowables, one function per section.

Each function takes the :class:`ReportData` (and the frame width in points) and returns
flowables; the page furniture (header, banner, footer) is in :mod:`core.report.pdf`.
"""

from __future__ import annotations

from collections.abc import Sequence

from reportlab.lib import colors
from reportlab.lib.units import mm
from reportlab.platypus import Flowable, KeepTogether, Paragraph, Spacer, Table, TableStyle

from core.report._figures import OverviewFigure, PercentileScale
from core.report._styles import (
    BODY,
    BOX_TITLE,
    CELL,
    CELL_HEAD,
    CELL_HEAD_CENTRE,
    CELL_HEAD_RIGHT,
    CELL_RIGHT,
    H2,
    LABEL,
    RESULT,
    SMALL,
    WARN,
    esc,
    fmt_area,
    fmt_count,
    fmt_date,
    fmt_density,
    fmt_fraction,
    fmt_percentile,
)
from core.report.colours import BRAND, MUTED, RULE, TINT, marker_colour
from core.report.data import MIN_COHORT_SIZE, ReportData, ReportSettings, ScoreComponent
from core.report.overview import Overview

_GRID = [
    ("LINEBELOW", (0, 0), (-1, 0), 0.8, colors.HexColor(BRAND)),
    ("LINEBELOW", (0, 1), (-1, -1), 0.35, colors.HexColor(RULE)),
    ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
    ("TOPPADDING", (0, 0), (-1, -1), 2.2),
    ("BOTTOMPADDING", (0, 0), (-1, -1), 2.2),
    ("LEFTPADDING", (0, 0), (-1, -1), 3),
    ("RIGHTPADDING", (0, 0), (-1, -1), 3),
]


def _p(text: str, style=CELL) -> Paragraph:  # noqa: ANN001 - a ParagraphStyle
    return Paragraph(text, style)


def _heading(text: str) -> Paragraph:
    return Paragraph(esc(text), H2)


def _marker(marker: str) -> str:
    """A marker name in its colour, bold (table headers)."""
    return f'<font color="{marker_colour(marker)}">{esc(marker)}</font>'


def identification(data: ReportData, settings: ReportSettings, width: float) -> list[Flowable]:
    """Who, what, when: case and slide identifiers, dates, people, signature state."""
    status = (f"Signed by {esc(data.signature.signed_by)}" if data.signature else "Not signed")
    patient = ", ".join(esc(v) for v in (data.patient_name, f"born {data.patient_birth_date}"
                                         if data.patient_birth_date else "") if v)
    left = [
        ("Case", f"<b>{esc(data.case_id)}</b>" + (f" – {esc(data.case_label)}" if data.case_label else "")),
        ("Patient ID", esc(data.patient_id) if data.patient_id else "–"),
        ("Patient", patient or "–"),
        ("Slide", esc(data.slide_name)),
        ("Slide ID", esc(data.slide_id) if data.slide_id else "–"),
        ("Analysed by", esc(data.operator) if data.operator else "–"),
    ]
    right = [
        ("Printed", esc(fmt_date(settings.printed_at))),
        ("Printed by", esc(settings.operator) if settings.operator else "–"),
        ("Results of", esc(fmt_date(data.report_date))),
        ("Case created", esc(fmt_date(data.created_at))),
        ("Analysed", esc(fmt_date(data.analysed_at))),
        ("Status", status + (f", {esc(fmt_date(data.signature.signed_at))}" if data.signature else "")),
    ]
    rows = [[_p(a, LABEL), _p(b), _p(c, LABEL), _p(d)] for (a, b), (c, d) in zip(left, right, strict=True)]
    t = Table(rows, colWidths=[22 * mm, width / 2 - 22 * mm, 24 * mm, width / 2 - 24 * mm])
    t.setStyle(TableStyle([
        ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor(TINT)),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 1.6),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.6),
        ("LEFTPADDING", (0, 0), (-1, -1), 4),
        ("TOPPADDING", (0, 0), (-1, 0), 4),
        ("BOTTOMPADDING", (0, -1), (-1, -1), 4),
    ]))
    return [t]


def _component_table(rows: list[list], widths: Sequence[float], right_from: int = 1) -> Table:
    t = Table(rows, colWidths=list(widths))
    t.setStyle(TableStyle([*_GRID, ("ALIGN", (right_from, 0), (-1, -1), "RIGHT")]))
    return t


def _not_evaluable(reason: str) -> list[Flowable]:
    return [_p("Not evaluable", RESULT), Spacer(1, 1.5 * mm),
            _p(esc(reason or "The score could not be computed."), WARN)]


def _near_cut(sentence: str) -> list[Flowable]:
    """A warning under a score whose category the counting error could change (core.scores.near_cut)."""
    return [_p(f"Near a category cut: {esc(sentence)}.", WARN)] if sentence else []


def _immunoscore_box(data: ReportData, width: float) -> list[Flowable]:
    out: list[Flowable] = [_p("Immunoscore-like (IS)", BOX_TITLE), Spacer(1, 1.5 * mm)]
    result = data.immunoscore
    if result is None or not result.evaluable:
        return out + _not_evaluable(result.reason if result else "No reference cohort was selected.")
    out += [
        _p(f"{esc(result.label)} · {esc(result.category)}", RESULT),
        _p(f"Mean percentile <b>{fmt_percentile(result.mean_percentile)}</b> of the reference cohort", SMALL),
        *_near_cut(result.near_cut),
        Spacer(1, 1 * mm),
        PercentileScale(result.mean_percentile or 0.0, width),
    ]
    rows = [[_p("Density", CELL_HEAD), _p("cells/mm²", CELL_HEAD_RIGHT), _p("Percentile", CELL_HEAD_RIGHT)]]
    rows += [[_p(_marker_label(c)), _p(fmt_density(c.density), CELL_RIGHT),
              _p(fmt_percentile(c.percentile), CELL_RIGHT)] for c in result.components]
    out.append(_component_table(rows, [width * 0.40, width * 0.30, width * 0.30]))
    return out


def _marker_label(c: ScoreComponent) -> str:
    """"CD3+ CT" with the marker part in its colour."""
    marker, _, rest = c.label.partition(" ")
    return f"{_marker(marker)} {esc(rest)}" if rest else _marker(marker)


def _tb_box(data: ReportData, width: float) -> list[Flowable]:
    out: list[Flowable] = [_p("T-and-B score", BOX_TITLE), Spacer(1, 1.5 * mm)]
    result = data.tb_score
    if result is None or not result.evaluable:
        return out + _not_evaluable(result.reason if result else "No reference cohort was selected.")
    out += [
        _p(f"{result.score} of 4 Hi · {esc(result.category)}", RESULT),
        _p(f"Cut-off per density: {esc(result.cutoff_rule)}; 0–2 Hi = Low, 3–4 Hi = High", SMALL),
        *_near_cut(result.near_cut),
        Spacer(1, 2 * mm),
    ]
    rows = [[_p("Density", CELL_HEAD), _p("cells/mm²", CELL_HEAD_RIGHT), _p("Cut-off", CELL_HEAD_RIGHT),
             _p("Hi/Lo", CELL_HEAD_RIGHT)]]
    for c in result.components:
        hilo = "–" if c.high is None else ("<b>Hi</b>" if c.high else "Lo")
        rows.append([_p(_marker_label(c)), _p(fmt_density(c.density), CELL_RIGHT),
                     _p(fmt_density(c.cutoff), CELL_RIGHT), _p(hilo, CELL_RIGHT)])
    out.append(_component_table(rows, [width * 0.31, width * 0.25, width * 0.25, width * 0.19]))
    return out


def scores(data: ReportData, width: float) -> list[Flowable]:
    """The two score boxes side by side."""
    gap = 5 * mm
    inner = (width - gap) / 2 - 8 * mm
    t = Table([[_immunoscore_box(data, inner), "", _tb_box(data, inner)]],
              colWidths=[(width - gap) / 2, gap, (width - gap) / 2])
    t.setStyle(TableStyle([
        ("BOX", (0, 0), (0, 0), 0.8, colors.HexColor(RULE)),
        ("BOX", (2, 0), (2, 0), 0.8, colors.HexColor(RULE)),
        ("LINEABOVE", (0, 0), (0, 0), 2.2, colors.HexColor(BRAND)),
        ("LINEABOVE", (2, 0), (2, 0), 2.2, colors.HexColor(BRAND)),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), 4 * mm),
        ("RIGHTPADDING", (0, 0), (-1, -1), 4 * mm),
        ("TOPPADDING", (0, 0), (-1, -1), 3 * mm),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 3 * mm),
        ("LEFTPADDING", (1, 0), (1, 0), 0),
        ("RIGHTPADDING", (1, 0), (1, 0), 0),
    ]))
    return [_heading("Results"), t]


def region_table(data: ReportData, width: float) -> list[Flowable]:
    """Area, count and density of each marker in each scored region."""
    markers = list(data.markers)
    head1 = [_p("Region", CELL_HEAD), _p("Area", CELL_HEAD_RIGHT)]
    head2 = [_p("", CELL_HEAD), _p("mm²", CELL_HEAD_RIGHT)]
    for m in markers:
        head1 += [_p(f"<b>{_marker(m)}</b>", CELL_HEAD_CENTRE), ""]
        head2 += [_p("cells", CELL_HEAD_RIGHT), _p("cells/mm²", CELL_HEAD_RIGHT)]
    rows = [head1, head2]
    for s in data.region_stats:
        row = [_p(esc(s.label)), _p(fmt_area(s.area_mm2), CELL_RIGHT)]
        for m in markers:
            row += [_p(fmt_count(s.counts.get(m)), CELL_RIGHT), _p(f"<b>{fmt_density(s.densities.get(m))}</b>", CELL_RIGHT)]
        rows.append(row)
    if not data.region_stats:
        rows.append([_p("No scored region (draw a tumour outline, or CT and IM).", WARN)] + [""] * (1 + 2 * len(markers)))
    first, area = 44 * mm, 18 * mm
    per = (width - first - area) / (2 * len(markers))
    t = Table(rows, colWidths=[first, area] + [per * 0.8, per * 1.2] * len(markers), repeatRows=2)
    style = [
        ("LINEBELOW", (0, 1), (-1, 1), 0.8, colors.HexColor(BRAND)),
        ("LINEBELOW", (0, 2), (-1, -1), 0.35, colors.HexColor(RULE)),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("TOPPADDING", (0, 0), (-1, -1), 2.4),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2.4),
        ("BACKGROUND", (0, 0), (-1, 1), colors.HexColor(TINT)),
    ]
    for i in range(len(markers)):
        c0 = 2 + 2 * i
        style += [("SPAN", (c0, 0), (c0 + 1, 0)), ("LINEBEFORE", (c0, 0), (c0, -1), 0.35, colors.HexColor(RULE))]
    if not data.region_stats:
        style.append(("SPAN", (0, 2), (-1, 2)))
    t.setStyle(TableStyle(style))
    note = _p("Densities are cells of each marker group per mm² of the region, exclusions removed. "
              "CD3+ = CD3+ (CD8−), CD8+ CD3 low and CD8+ CD3 high cells; CD8+ = CD8+ CD3 low and CD8+ CD3 high; "
              "CD20+ = CD20+ cells.", SMALL)
    return [KeepTogether([_heading("Cell densities by region"), t, Spacer(1, 1.5 * mm), note])]


def overview(ov: Overview, width: float, max_height: float) -> list[Flowable]:
    """The thumbnail with density overlay and region outlines (``ov``, rendered once by the caller,
    who may try several heights), legend and scale bar."""
    caption = _p("Hoechst channel (inverted), cell-density overlay and regions. Scale bar in slide µm.", SMALL)
    return [KeepTogether([_heading("Overview"), OverviewFigure(ov, width, max_height), Spacer(1, 1 * mm), caption])]


def _kv_table(rows: Sequence[tuple[str, str]], width: float, label_w: float) -> Table:
    t = Table([[_p(esc(k), LABEL), _p(v)] for k, v in rows], colWidths=[label_w, width - label_w])
    t.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LINEBELOW", (0, 0), (-1, -1), 0.35, colors.HexColor(RULE)),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
        ("LEFTPADDING", (0, 0), (-1, -1), 2),
    ]))
    return t


def cohort_and_model(data: ReportData, width: float) -> list[Flowable]:
    """Reference cohort and model, side by side."""
    half = (width - 6 * mm) / 2
    cohort: list[Flowable] = [_p("Reference cohort", BOX_TITLE), Spacer(1, 1 * mm)]
    if data.cohort is None:
        cohort.append(_p("None selected: scores based on percentiles are not evaluable.", WARN))
    else:
        c = data.cohort
        cases = f"n = {c.n}" + (f" ({c.n_min} with every value)" if c.n_min is not None and c.n_min < c.n else "")
        rows = [("Name", f"<b>{esc(c.name)}</b>"), ("Cases", cases),
                ("Data", "Synthetic (demo)" if c.synthetic else "Laboratory cases")]
        if c.version:
            rows.append(("Version", esc(f"{c.version}" + (f", {c.date}" if c.date else ""))))
        if c.description:
            rows.append(("Description", esc(c.description)))
        cohort.append(_kv_table(rows, half, 22 * mm))
        if c.too_small:
            cohort += [Spacer(1, 1.5 * mm), _p(
                f"Warning: the reference cohort has only n = {min(c.n, c.n_min or c.n)} cases (fewer than {MIN_COHORT_SIZE}); "
                "percentiles and cut-offs are unstable. About 120 cases are recommended.", WARN)]
        if c.synthetic:
            cohort += [Spacer(1, 1.5 * mm), _p("Synthetic cohort: percentiles do not refer to real patients.", WARN)]
    model: list[Flowable] = [_p("Model", BOX_TITLE), Spacer(1, 1 * mm)]
    if data.model is None:
        model.append(_p("No model information.", WARN))
    else:
        m = data.model
        rows = [("Name", f"<b>{esc(m.name)}</b>"), ("Version", esc(m.version or "–")),
                ("Training data", "Synthetic (phantom slides)" if m.synthetic else "Laboratory slides"),
                ("Weights sha256", f'<font face="Courier">{esc(m.sha256_short or "–")}</font>')]
        if m.created:
            rows.append(("Created", esc(m.created)))
        for k, v in m.metrics.items():
            rows.append((k, esc(f"{v:.3f}" if isinstance(v, float) else v)))
        if not m.metrics:
            rows.append(("Validation", "No metrics in the model card."))
        model.append(_kv_table(rows, half, 36 * mm))
    t = Table([[cohort, "", model]], colWidths=[half, 6 * mm, half])
    t.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0),
                           ("RIGHTPADDING", (0, 0), (-1, -1), 0)]))
    return [_heading("Reference cohort and model"), t]


def quality(data: ReportData, width: float) -> list[Flowable]:
    """Pixel size, analysed area, analysed fraction of each region, warnings."""
    q = data.qc
    rows: list[tuple[str, str]] = [("Pixel size", f"{q.mpp[0]:.4f} × {q.mpp[1]:.4f} µm per pixel (level 0)")]
    if q.tissue_area_mm2 is not None:
        rows.append(("Tissue analysed", f"{fmt_area(q.tissue_area_mm2)} mm²"))
    for label, frac in q.region_fractions.items():
        rows.append((f"{label} analysed", fmt_fraction(frac)))
    rows += [(k, esc(v)) for k, v in q.items]
    if data.synthetic_reasons:
        rows.append(("Synthetic data", esc("; ".join(data.synthetic_reasons))))
    out: list[Flowable] = [_heading("Quality control"), _kv_table(rows, width, 48 * mm)]
    for w in q.warnings:
        out += [Spacer(1, 1 * mm), _p(f"Warning: {esc(w)}", WARN)]
    if data.notes:
        out += [_heading("Notes"), _p(esc(data.notes), BODY)]
    return out


def method(data: ReportData) -> list[Flowable]:
    """How the numbers were made, in a few sentences a reader can check against the paper."""
    band = (f"a band of {data.im_half_width_um:g} µm on each side of the tumour border"
            if data.im_half_width_um else "a band centred on the tumour border")
    done = " ".join(esc(s) for s in data.method_steps)
    regions = (f"The invasive margin (IM) is {band}; the tumour centre (CT) is the tumour minus the IM. "
               if not data.method_steps else "")
    text = (
        "Cells were detected and classified from the Hoechst (DNA) channel alone by a U-Net into CD3, "
        "CD8+ CD3 low, CD8+ CD3 high, CD20 and other cells (after <i>Hoechst is all you need</i>). "
        f"{done + ' ' if done else ''}{regions}<b>Immunoscore-like:</b> the CD3+ and CD8+ densities in CT and IM are ranked against "
        "the reference cohort; the mean of the four percentiles gives IS0 (0–10), IS1 (10–25), "
        "IS2 (25–70), IS3 (70–95) or IS4 (95–100), reported as Low (up to 25), Intermediate (up to 70) "
        "or High. It is a research re-implementation, not a vendor assay. <b>T-and-B score:</b> CD8+ and "
        "CD20+ densities in CT and IM are each Hi or Lo against the cohort cut-off; the score is the "
        "number of Hi (0–4), 0–2 Low and 3–4 High. A missing region makes a score not evaluable."
    )
    return [_heading("Method"), _p(text, SMALL)]


def signature(data: ReportData, width: float) -> list[Flowable]:
    """Signature lines, filled in when the case is signed."""
    sig = data.signature
    name = esc(sig.signed_by) if sig else ""
    meaning = [Spacer(1, 1.5 * mm), _p(f"Meaning of the signature: {esc(sig.meaning)}", SMALL)] if sig and sig.meaning else []
    when = esc(fmt_date(sig.signed_at)) if sig else ""
    rows = [[_p(name), "", _p(when), "", _p("")],
            [_p("Reviewed and signed by", LABEL), "", _p("Date", LABEL), "", _p("Signature", LABEL)]]
    t = Table(rows, colWidths=[width * 0.36, 6 * mm, width * 0.22, 6 * mm, width * 0.42 - 12 * mm],
              rowHeights=[12 * mm, None])
    t.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, 0), "BOTTOM"),
        ("LINEBELOW", (0, 0), (0, 0), 0.7, colors.HexColor(MUTED)),
        ("LINEBELOW", (2, 0), (2, 0), 0.7, colors.HexColor(MUTED)),
        ("LINEBELOW", (4, 0), (4, 0), 0.7, colors.HexColor(MUTED)),
        ("LEFTPADDING", (0, 0), (-1, -1), 0),
    ]))
    state = ("This case was signed in HoechstScore; the record cannot be changed after signing."
             if sig else "This case is not signed; results may still change.")
    return [KeepTogether([_heading("Signature"), t, *meaning, Spacer(1, 2 * mm), _p(state, SMALL)])]
