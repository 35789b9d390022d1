"""Build a :class:`ReportData` from a stored case: the one path behind ``python -m core report`` and
the demo, so the report of a case is the same whoever prints it and whenever.

What the store holds is read as it is: the case and its dates, the latest finished analysis
(cells, its summary with the model card and the tissue mask), the regions and the latest scores
(``CaseScores.to_dict()``). The thumbnail comes from the slide file; when the file has moved, the
overview is drawn on white and the report says so. The report date is the date of the last change
the report shows (or the signing date), never "now", so that a re-print is byte-identical.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import shapely

from core import __version__
from core.density_map import analysed_density
from core.errors import CoreError, SlideError
from core.jsontypes import JSONDict, JSONMapping, as_list, as_mapping, opt_float, opt_int
from core.regions import Region, RegionKind, RegionSet
from core.regions.kinds import region_title
from core.report.data import (
    CohortSummary,
    ImmunoscoreSummary,
    ModelSummary,
    QCSummary,
    RegionStat,
    ReportData,
    ScoreComponent,
    Signature,
    TBSummary,
)
from core.report.qc import summarise_metrics
from core.report.synthetic import synthetic_reasons
from core.scores import (
    IS_PARAMETERS,
    TB_PARAMETERS,
    CaseScores,
    DensityTable,
    ImmunoscoreLikeResult,
    TAndBResult,
)
from core.tissue_mask import decode_mask, fraction_in_mask

if TYPE_CHECKING:
    import pandas as pd

    from core.store import CaseStore
    from core.store.records import AnalysisRecord, SlideRecord

#: Order of the density table's rows, by the scores' short names (titles: core.regions.kinds).
ROW_ORDER = ("CT", "IM", "Tumour")


def _param_label(parameter: str) -> str:
    """ "CD3_CT" -> "CD3+ CT"."""
    marker, _, region = parameter.partition("_")
    return f"{marker}+ {region}"


def _thumbnail(path: str, mpp: tuple[float, float], size: int,
               channel: str | int = "hoechst") -> tuple[np.ndarray, float, tuple[int, int]] | None:
    """(nuclear-channel thumbnail, level-0 px per thumbnail px, level-0 size) or None if unreadable.

    channel: the channel the analysis read (the user's choice on a multichannel slide)."""
    from core.slides import open_slide  # slide readers load lazily: only when a report is made

    try:
        with open_slide(path, mpp=mpp) as slide:
            thumb = slide.thumbnail(max_size=size, channels=[slide.channel_index(channel)])
            dims = slide.dimensions
    except (SlideError, OSError):
        return None
    return thumb, dims[0] / thumb.shape[-1], dims


def _extent_um(cells: pd.DataFrame, regions: Sequence[Region]) -> tuple[float, float]:
    """Slide extent (µm) guessed from the cells and regions when the slide file is missing."""
    xs = [float(cells["x_um"].max())] if len(cells) else []
    ys = [float(cells["y_um"].max())] if len(cells) else []
    for r in regions:
        xs.append(r.geometry.bounds[2])
        ys.append(r.geometry.bounds[3])
    return (max(xs, default=1000.0) * 1.02, max(ys, default=1000.0) * 1.02)


def _scored_regions(regions: list[Region], provenance: JSONMapping) -> list[Region]:
    """The stored regions, plus CT and IM derived as the scores derived them when none is stored."""
    kinds = {r.kind for r in regions}
    width = opt_float(provenance.get("im_half_width_um"))
    if RegionKind.TUMOUR not in kinds or kinds & {RegionKind.TUMOUR_CENTRE, RegionKind.INVASIVE_MARGIN} or not width:
        return regions
    from core.scores import drawn_or_derived_ct_im

    sr = drawn_or_derived_ct_im(RegionSet(regions), width)
    extra = [Region(kind=k, geometry=g) for k, g in
             ((RegionKind.TUMOUR_CENTRE, sr.ct), (RegionKind.INVASIVE_MARGIN, sr.im)) if g is not None]
    return regions + extra


def _sentence(reason: str | None) -> str:
    """A score's reason as a sentence: "no IM region (...)" -> "No IM region (...)."."""
    text = (reason or "the reason was not recorded").strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _near_cut(result: ImmunoscoreLikeResult | TAndBResult) -> str:
    """The sentence saying the counting error could change the category; "" when it could not."""
    span = result.category_range
    return span.describe() if span is not None and span.near_cut else ""


def _immunoscore(result: ImmunoscoreLikeResult | None) -> ImmunoscoreSummary:
    if result is None:
        return ImmunoscoreSummary(evaluable=False, reason="No scores were saved for this case.")
    if not result.evaluable:
        return ImmunoscoreSummary(evaluable=False, reason=_sentence(result.reason))
    return ImmunoscoreSummary(
        evaluable=True, mean_percentile=result.mean_percentile, label=result.label,
        category=result.category or "", level=result.level, near_cut=_near_cut(result),
        components=[ScoreComponent(_param_label(p), result.values.get(p), result.percentiles.get(p))
                    for p in IS_PARAMETERS],
    )


def _cutoff_rule(sources: Mapping[str, str]) -> str:
    kinds = {"median" if s.startswith("median") else s for s in sources.values()}
    if kinds == {"median"}:
        return "cohort median"
    return next(iter(kinds)) if len(kinds) == 1 else "cohort median or set by the lab (see table)"


def _tb(result: TAndBResult | None) -> TBSummary:
    if result is None:
        return TBSummary(evaluable=False, reason="No scores were saved for this case.")
    rule = _cutoff_rule(result.cutoff_sources)
    if not result.evaluable:
        return TBSummary(evaluable=False, reason=_sentence(result.reason), cutoff_rule=rule)
    calls = result.calls
    return TBSummary(
        evaluable=True, score=result.score, category=result.category or "", cutoff_rule=rule,
        near_cut=_near_cut(result),
        components=[ScoreComponent(_param_label(p), result.values.get(p), cutoff=result.cutoffs.get(p),
                                   high=None if p not in calls else calls[p] == "Hi") for p in TB_PARAMETERS],
    )


def _region_stats(densities: DensityTable | None) -> list[RegionStat]:
    order = {k: i for i, k in enumerate(ROW_ORDER)}
    rows = sorted(densities.regions if densities is not None else (), key=lambda r: order.get(r.region, len(order)))
    return [RegionStat(region_title(r.region), r.region, r.area_mm2, dict(r.counts), dict(r.densities))
            for r in rows]


def _cohort(scores: CaseScores | None) -> CohortSummary | None:
    """The cohort as the scores recorded it (name, n, values per parameter, version, date)."""
    if scores is None:
        return None
    prov, counts = scores.provenance, scores.immunoscore_like.cohort_n_per_parameter
    name = scores.immunoscore_like.cohort_name or scores.t_and_b.cohort_name or prov.cohort_name
    if not name:
        return None
    n = prov.cohort_n if prov.cohort_n is not None else scores.immunoscore_like.cohort_n
    return CohortSummary(name=str(name), n=int(n or 0), synthetic=bool(prov.cohort_synthetic),
                         version=prov.cohort_version or "", date=prov.cohort_date or "",
                         n_min=min(counts.values()) if counts else None)


def _installed_card(sha256: str) -> JSONDict:
    """The card of an installed (or the shipped demo) model with these weights, for analyses stored
    without their card; {} when none matches."""
    try:
        from core.models.installed import list_models
        from core.resources import resource_path

        demo = resource_path("models")
        for _, card in list_models(extra_dirs=(demo,)):
            if sha256 and card.weights_sha256 == sha256:
                return card.to_dict()
    except CoreError:
        pass
    return {}


def _model(analysis: AnalysisRecord) -> ModelSummary:
    from core.case.opened import analysis_summary

    summary = analysis_summary(analysis)
    card: Mapping[str, object] = summary.model_card or _installed_card(analysis.model_sha256)
    version = card.get("version") or card.get("code_version") or ""
    return ModelSummary(
        name=str(card.get("name") or analysis.model_name), version=str(version),
        sha256=analysis.model_sha256 or str(card.get("weights_sha256", "")),
        created=str(card.get("created", ""))[:10],
        synthetic=bool(card.get("synthetic", summary.model_synthetic)),
        metrics=summarise_metrics(as_mapping(card.get("metrics"))),
    )


def _operator(store: CaseStore, analysis: AnalysisRecord) -> str:
    """Who started the analysis: its audit row is under the case version it was started in, which
    for a later version is an earlier case id (analyses are shared, not copied)."""
    for entry in store.audit_entries(analysis.case_id):
        if entry.entity == "analysis" and entry.entity_id == analysis.id and entry.action == "start":
            return entry.who
    return ""


def _qc(analysis: AnalysisRecord, mpp: tuple[float, float], regions: list[Region], warnings: list[str]) -> QCSummary:
    summary = analysis.summary or {}  # as stored: a key it lacks is left out of the list
    fractions: dict[str, float] = {}
    if "tissue_mask" in summary:
        mask, ds = decode_mask(as_mapping(summary["tissue_mask"]))
        for kind in (RegionKind.TUMOUR_CENTRE, RegionKind.INVASIVE_MARGIN, RegionKind.TUMOUR):
            parts = [r.geometry for r in regions if r.kind is kind]
            if parts:
                f = fraction_in_mask(shapely.union_all(parts), mask, ds, mpp)
                if f is not None:
                    fractions[kind.label] = f
    items: list[tuple[str, str]] = [("Cells detected", f"{int(analysis.n_cells or 0):,}")]
    tiles, grid = opt_int(summary.get("tiles_analysed")), opt_int(summary.get("tiles_in_grid"))
    if tiles is not None:
        items.append(("Tiles analysed", f"{tiles:,} of {'?' if grid is None else f'{grid:,}'}"))
    items.append(("Device, precision", f"{analysis.device}, {analysis.precision}"))
    seconds = opt_float(summary.get("seconds"))
    if seconds is not None:
        items.append(("Analysis time", f"{seconds:.0f} s"))
    return QCSummary(mpp=mpp, tissue_area_mm2=opt_float(summary.get("tissue_area_mm2")), region_fractions=fractions,
                     items=items, warnings=tuple(dict.fromkeys(warnings)))


def _method_steps(analysis: AnalysisRecord, slide: SlideRecord, provenance: JSONMapping, model: ModelSummary,
                  cohort: CohortSummary | None) -> list[str]:
    """What was done for this case, in sentences, from the stored records (not from defaults)."""
    params = analysis.parameters or {}
    channel = (analysis.summary or {}).get("channel") or as_mapping(params.get("engine")).get("channel") or "Hoechst"
    pixel = as_mapping(params.get("pixel_size"))
    source = pixel.get("source") or slide.mpp_source or "read from the slide file"
    source = "read from the slide file" if source == "file" else source
    steps = [f"The model read the channel “{channel}” of the slide, at a pixel size {source}.",
             f"Model {model.name}" + (f" (weights sha256 {model.sha256_short})" if model.sha256_short else "")
             + f" ran on {analysis.device} in {analysis.precision} precision."]
    kinds = {r.get("kind") for r in as_list(provenance.get("regions")) if isinstance(r, Mapping)}
    width = opt_float(provenance.get("im_half_width_um"))
    source_regions = str(provenance.get("region_source") or "")
    if source_regions.startswith("derived") and width:
        clip = ("clipped to the tissue region and the slide" if "tissue" in kinds
                else "clipped to the slide only (no tissue region was present)")
        steps.append(f"The invasive margin (IM) was derived from the tumour outline as a band of {width:g} µm on "
                     f"each side of the border, {clip}; the tumour centre (CT) is the tumour minus the IM.")
    elif source_regions:
        steps.append("The tumour centre (CT) and invasive margin (IM) were drawn by hand.")
    if "exclusion" in kinds:
        steps.append("Exclusion regions were removed from every scored region.")
    if cohort is not None:
        steps.append(f"Percentiles and cut-offs refer to the reference cohort “{cohort.name}” (n = {cohort.n}"
                     + (", synthetic" if cohort.synthetic else "") + ").")
    return steps


def report_data_from_store(store: CaseStore, case_id: int, *, thumbnail_size: int = 1024,
                           density_marker: str = "CD3+") -> ReportData:
    """Everything the report of case ``case_id`` shows, read from ``store`` as the open case
    (:func:`core.case.open_case`: latest finished analysis, its slide and cells, regions, scores).

    Raises CoreError when the case has no finished analysis or its slide has no pixel size.
    """
    from core.case import open_case

    opened = open_case(store, case_id, with_slide=False)  # the thumbnail is read below, or drawn without
    case, analysis, slide = opened.case, opened.analysis, opened.slide_record
    if analysis is None or opened.cells is None:
        raise CoreError(f"Case {case_id} has no finished analysis: analyse its slide before printing a report.")
    if slide.mpp is None:
        raise CoreError(f"Slide {Path(slide.path).name} has no pixel size; no report can state densities.")
    mpp = (float(slide.mpp[0]), float(slide.mpp[1]))
    cells = opened.cells
    last, typed = opened.score_record, opened.scores
    provenance = (as_mapping(last.provenance) or as_mapping(last.result.get("provenance"))) if last else {}
    summary = opened.summary
    regions = _scored_regions(list(opened.regions), provenance)
    # Cohort warnings are shown with the cohort; the rest (regions, slide) under quality control.
    cohort_warnings = set(typed.immunoscore_like.warnings) if typed else set()
    warnings = [w for w in (typed.warnings if typed else ()) if w not in cohort_warnings]
    if last is not None and last.analysis_id not in (None, analysis.id):
        warnings.append(f"The scores were computed from analysis {last.analysis_id}, not from the latest "
                        f"analysis {analysis.id}: score the case again.")
    warnings += list(summary.warnings or ())  # the slide-vs-model check
    channel = summary.channel or as_mapping(analysis.parameters.get("engine")).get("channel")
    thumb = _thumbnail(slide.path, mpp, thumbnail_size, channel if isinstance(channel, str) else "hoechst")
    if thumb is None:
        warnings.append(f"The slide file {slide.path} cannot be read: the overview is drawn without the slide.")
        extent = _extent_um(cells, regions)
        ds = max(extent) / mpp[0] / thumbnail_size
        shape = (max(1, round(extent[1] / mpp[1] / ds)), max(1, round(extent[0] / mpp[0] / ds)))
        thumbnail = np.zeros(shape, dtype=np.uint16)
    else:
        thumbnail, ds, dims = thumb
        extent = (dims[0] * mpp[0], dims[1] * mpp[1])
    dates = [d for d in (analysis.finished_at, last.created_at if last else None,
                         *(r.updated_at for r in store.load_regions(case_id))) if d is not None]
    report_date: datetime = case.signed_at if case.is_signed and case.signed_at else max(dates)
    model = _model(analysis)
    cohort = _cohort(typed)
    reasons = synthetic_reasons(slide.path, bool(slide.is_synthetic), model.synthetic,
                                bool(provenance.get("cohort_synthetic")))
    return ReportData(
        case_id=case.accession + (f" (version {case.version})" if case.version > 1 else ""),
        patient_id=case.patient_id or "", slide_name=Path(slide.path).name, slide_id=f"sha256 {slide.fingerprint[:16]}",
        report_date=report_date, created_at=case.created_at, analysed_at=analysis.finished_at,
        operator=_operator(store, analysis), thumbnail=thumbnail, thumbnail_downsample=ds, mpp=mpp,
        regions=regions, density=analysed_density(cells, extent, mpp, density_marker, analysis.summary or {}),
        region_stats=_region_stats(typed.densities if typed else None),
        immunoscore=_immunoscore(typed.immunoscore_like if typed else None),
        tb_score=_tb(typed.t_and_b if typed else None), cohort=cohort, model=model,
        qc=_qc(analysis, mpp, regions, warnings), synthetic=bool(reasons), synthetic_reasons=reasons,
        signature=Signature(case.signed_by or "", case.signed_at, case.signature_meaning or "")
        if case.is_signed and case.signed_at else None,
        im_half_width_um=opt_float(provenance.get("im_half_width_um")), software_version=__version__, notes=case.notes or "",
        patient_name=case.patient_name or "", patient_birth_date=case.patient_birth_date or "",
        method_steps=_method_steps(analysis, slide, provenance, model, cohort),
    )
