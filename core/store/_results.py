"""Regions, scores and reports of a case version, inside the caller's transaction.

Regions and scores belong to one case version (``new_version`` copies them). Scores and reports
are only ever added, never changed, so a signed case keeps exactly what it was signed with.
Reports may be added to a signed case: printing the signed report is what signing is for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import shapely
from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from core.errors import StoreError
from core.jsontypes import as_mapping, opt_int
from core.store import audit
from core.store._cases import load_case, require_draft, touch
from core.store.models import CaseAnalysis, CaseSlide, RegionRow, Report, Score, utcnow
from core.store.records import RegionData, RegionRecord, ReportRecord, ScoreRecord

_REGION_FIELDS = ("kind", "name", "author", "slide_id", "geometry_wkt", "extra")


def coerce_region(value: RegionData | Mapping[str, object] | object) -> RegionData:
    """A :class:`RegionData` from itself, a mapping, or an object such as ``core.regions.Region``.

    ``kind`` may be an enum (its value is kept); the geometry may be WKT text (``geometry_wkt``
    or ``geometry``) or a shapely geometry, written as WKT at full precision.
    """
    if isinstance(value, RegionData):
        return value
    def get(key: str) -> object:
        return value.get(key) if isinstance(value, Mapping) else getattr(value, key, None)

    geometry = get("geometry_wkt") or get("geometry")
    if geometry is not None and not isinstance(geometry, str):
        geometry = str(shapely.to_wkt(geometry, rounding_precision=-1))
    kind = get("kind")
    return RegionData(
        id=str(get("id") or ""),
        kind=str(getattr(kind, "value", kind) or ""),
        geometry_wkt=geometry or "",
        name=str(get("name") or ""),
        author=str(get("author") or ""),
        slide_id=opt_int(get("slide_id")),
        extra=dict(as_mapping(get("extra"))),
    )


def _check_region(region: RegionData) -> None:
    label = f"Region {region.name or region.id!r}"
    if not region.id or len(region.id) > 64:
        raise StoreError(f"{label} needs an id of 1 to 64 characters (e.g. a UUID).")
    if not region.kind or len(region.kind) > 32:
        raise StoreError(f"{label} needs a kind (e.g. 'tumour', 'invasive_margin').")
    try:
        geometry = shapely.from_wkt(region.geometry_wkt)
    except shapely.errors.ShapelyError as err:
        raise StoreError(f"{label} has geometry that is not valid WKT: {err}.") from err
    if geometry is None or geometry.is_empty or geometry.geom_type not in ("Polygon", "MultiPolygon"):
        kind = "empty" if geometry is None or geometry.is_empty else geometry.geom_type
        raise StoreError(f"{label} must be a non-empty Polygon or MultiPolygon in µm, not {kind}.")


def region_record(r: RegionRow) -> RegionRecord:
    return RegionRecord(
        id=r.uid, kind=r.kind, geometry_wkt=r.geometry_wkt, name=r.name, author=r.author, slide_id=r.slide_id,
        extra=dict(r.extra), created_at=r.created_at, updated_at=r.updated_at,
    )


def _region_state(r: RegionRow | RegionData) -> dict[str, object]:
    state = {name: getattr(r, name) for name in _REGION_FIELDS}
    state["extra"] = dict(as_mapping(state["extra"]))
    return state


def save_regions(session: Session, who: str, case_id: int, regions: Iterable[RegionData]) -> list[RegionRecord]:
    """Makes the case's regions exactly ``regions``: adds new ids, updates changed, removes missing."""
    case = load_case(session, case_id, for_update=True)
    require_draft(case, "changing its regions")
    wanted: dict[str, RegionData] = {}
    for region in regions:
        _check_region(region)
        if region.id in wanted:
            raise StoreError(f"Region id {region.id!r} appears twice; region ids must be unique in a case.")
        if region.slide_id is not None and session.get(CaseSlide, (case.id, region.slide_id)) is None:
            raise StoreError(f"Region {region.id!r} refers to slide {region.slide_id}, which is not in this case.")
        wanted[region.id] = region
    existing = {r.uid: r for r in session.scalars(select(RegionRow).where(RegionRow.case_id == case.id))}
    now = utcnow()
    changed = False
    for uid, row in existing.items():
        if uid not in wanted:
            audit.record(session, who, "delete", "region", row.id, case.id, {"id": uid} | _region_state(row))
            session.delete(row)
            changed = True
    for uid, region in wanted.items():
        state = _region_state(region) | {"extra": audit.jsonable_object(region.extra, f"region {uid!r} extra")}
        current = existing.get(uid)
        if current is None:
            added = RegionRow(case_id=case.id, uid=uid, created_at=now, updated_at=now, **state)
            session.add(added)
            session.flush()
            audit.record(session, who, "create", "region", added.id, case.id, None, {"id": uid} | state)
            changed = True
        elif _region_state(current) != state:
            before = {"id": uid} | _region_state(current)
            for name, value in state.items():
                setattr(current, name, value)
            current.updated_at = now
            audit.record(session, who, "update", "region", current.id, case.id, before, {"id": uid} | state)
            changed = True
    if changed:
        touch(case)
    session.flush()
    return load_regions(session, case.id)


def load_regions(session: Session, case_id: int) -> list[RegionRecord]:
    load_case(session, case_id)
    rows = session.scalars(select(RegionRow).where(RegionRow.case_id == case_id).order_by(RegionRow.id))
    return [region_record(r) for r in rows]


def score_record(s: Score) -> ScoreRecord:
    return ScoreRecord(
        id=s.id, case_id=s.case_id, analysis_id=s.analysis_id, result=dict(s.result),
        provenance=dict(s.provenance), created_at=s.created_at, created_by=s.created_by,
    )


def save_scores(
    session: Session, who: str, case_id: int, result: Mapping[str, object], provenance: Mapping[str, object],
    analysis_id: int | None,
) -> ScoreRecord:
    case = load_case(session, case_id, for_update=True)
    require_draft(case, "saving scores")
    if analysis_id is not None and session.get(CaseAnalysis, (case.id, analysis_id)) is None:
        raise StoreError(f"Analysis {analysis_id} is not part of case {case.accession}; scores must use its cells.")
    score = Score(
        case_id=case.id, analysis_id=analysis_id, result=audit.jsonable_object(result, "the score results"),
        provenance=audit.jsonable_object(provenance, "the score provenance"), created_at=utcnow(), created_by=who,
    )
    session.add(score)
    session.flush()
    touch(case)
    record = score_record(score)
    audit.record(session, who, "create", "score", score.id, case.id, None, record)
    return record


def load_scores(session: Session, case_id: int) -> list[ScoreRecord]:
    load_case(session, case_id)
    rows = session.scalars(select(Score).where(Score.case_id == case_id).order_by(Score.id))
    return [score_record(s) for s in rows]


def report_record(r: Report, has_pdf: bool) -> ReportRecord:
    return ReportRecord(
        id=r.id, case_id=r.case_id, sha256=r.sha256, size_bytes=r.size_bytes, path=r.path, has_pdf=has_pdf,
        created_at=r.created_at, created_by=r.created_by,
    )


def save_report(
    session: Session, who: str, case_id: int, pdf: bytes | None, path: str | None, sha256: str, size_bytes: int
) -> ReportRecord:
    case = load_case(session, case_id, for_update=True)
    report = Report(
        case_id=case.id, pdf=pdf, path=path, sha256=sha256, size_bytes=size_bytes, created_at=utcnow(),
        created_by=who,
    )
    session.add(report)
    session.flush()
    record = report_record(report, pdf is not None)
    audit.record(session, who, "create", "report", report.id, case.id, None, record)
    return record


def list_reports(session: Session, case_id: int) -> list[ReportRecord]:
    load_case(session, case_id)
    rows = session.execute(
        select(Report, Report.pdf.is_not(None))
        .options(defer(Report.pdf))
        .where(Report.case_id == case_id)
        .order_by(Report.id)
    ).all()
    return [report_record(r, bool(has_pdf)) for r, has_pdf in rows]


def report_content(session: Session, report_id: int) -> tuple[bytes | None, str | None, str]:
    """(pdf bytes or None, path or None, sha256) of a report."""
    row = session.execute(select(Report.pdf, Report.path, Report.sha256).where(Report.id == report_id)).first()
    if row is None:
        raise StoreError(f"No report with id {report_id} in the case database.")
    pdf, path, sha256 = row
    return (None if pdf is None else bytes(pdf)), path, sha256
