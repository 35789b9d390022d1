"""Case operations: create, find, edit, sign, version; each runs inside the caller's transaction.

Functions here take an open :class:`Session` whose transaction :class:`core.store.CaseStore`
owns, and add the audit row of every change to it. Signed cases refuse every edit except the
two that are not case content: reference-cohort membership (``set_reference``; the cohort is
chosen among finished cases) and printed reports (``save_report``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import ColumnElement, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from core.errors import StoreError
from core.store import audit
from core.store.models import (
    Analysis,
    AuditLog,
    Case,
    CaseAnalysis,
    CaseSlide,
    RegionRow,
    Score,
    utcnow,
)
from core.store.records import AnalysisStatus, AuditEntry, CaseRecord, CaseStatus


def case_record(case: Case) -> CaseRecord:
    return CaseRecord(
        id=case.id,
        accession=case.accession,
        patient_id=case.patient_id,
        notes=case.notes,
        is_reference=case.is_reference,
        version=case.version,
        status=CaseStatus(case.status),
        parent_case_id=case.parent_case_id,
        created_at=case.created_at,
        updated_at=case.updated_at,
        signed_by=case.signed_by,
        signed_at=case.signed_at,
        patient_name=case.patient_name,
        patient_birth_date=case.patient_birth_date,
        signature_meaning=case.signature_meaning,
        is_hidden=bool(case.is_hidden),
    )


def case_state(case: Case) -> dict[str, object]:
    """The audited fields of a case."""
    return {
        "accession": case.accession,
        "patient_id": case.patient_id,
        "notes": case.notes,
        "is_reference": case.is_reference,
        "version": case.version,
        "status": case.status,
        "parent_case_id": case.parent_case_id,
        "signed_by": case.signed_by,
        "signed_at": case.signed_at,
        "patient_name": case.patient_name,
        "patient_birth_date": case.patient_birth_date,
        "signature_meaning": case.signature_meaning,
    }


def load_case(session: Session, case_id: int, *, for_update: bool = False) -> Case:
    """The case row, locked against concurrent writers when ``for_update`` (PostgreSQL)."""
    case = session.get(Case, case_id, with_for_update=for_update)
    if case is None:
        raise StoreError(f"No case with id {case_id} in the case database.")
    return case


def describe(case: Case) -> str:
    return f"Case {case.accession} (version {case.version})"


def require_draft(case: Case, doing: str) -> None:
    """Raises StoreError when ``case`` is signed: signed cases are final."""
    if case.status == CaseStatus.SIGNED:
        when = f"{case.signed_at:%Y-%m-%d %H:%M} UTC" if case.signed_at else "earlier"
        raise StoreError(
            f"{describe(case)} was signed by {case.signed_by} on {when} and cannot be changed "
            f"({doing}). Make a new version of the case to amend it."
        )


def touch(case: Case) -> None:
    case.updated_at = utcnow()


def create_case(
    session: Session, who: str, accession: str, patient_id: str | None, notes: str, is_reference: bool
) -> CaseRecord:
    accession = accession.strip()
    if not accession:
        raise StoreError("A case needs an accession number (e.g. the pathology lab number).")
    if session.scalar(select(exists().where(Case.accession == accession))):
        raise StoreError(
            f"A case with accession {accession!r} already exists. Open it, or make a new version of it."
        )
    now = utcnow()
    case = Case(
        accession=accession,
        patient_id=patient_id,
        notes=notes,
        is_reference=is_reference,
        version=1,
        status=CaseStatus.DRAFT,
        parent_case_id=None,
        created_at=now,
        updated_at=now,
    )
    session.add(case)
    session.flush()
    audit.record(session, who, "create", "case", case.id, case.id, None, case_state(case))
    return case_record(case)


def update_case(
    session: Session, who: str, case_id: int, fields: Mapping[str, object]
) -> CaseRecord:
    case = load_case(session, case_id, for_update=True)
    require_draft(case, "editing " + ", ".join(fields))
    before = case_state(case)
    for name, value in fields.items():
        setattr(case, name, value)
    if case_state(case) != before:
        touch(case)
        audit.record(session, who, "update", "case", case.id, case.id, before, case_state(case))
    return case_record(case)


def set_reference(session: Session, who: str, case_id: int, flag: bool) -> CaseRecord:
    case = load_case(session, case_id, for_update=True)
    if case.is_reference != flag:
        before = case_state(case)
        case.is_reference = flag
        audit.record(session, who, "set_reference", "case", case.id, case.id, before, case_state(case))
    return case_record(case)


def sign_case(session: Session, who: str, case_id: int, user: str) -> CaseRecord:
    case = load_case(session, case_id, for_update=True)
    require_draft(case, "signing it again")
    if not user.strip():
        raise StoreError("Signing a case needs the name of the person who signs it.")
    running = session.scalars(
        select(Analysis.id)
        .join(CaseAnalysis, CaseAnalysis.analysis_id == Analysis.id)
        .where(CaseAnalysis.case_id == case.id, Analysis.status == AnalysisStatus.RUNNING)
    ).all()
    if running:
        raise StoreError(
            f"{describe(case)} cannot be signed while analysis {running[0]} is still running. "
            "Wait for it to finish or cancel it."
        )
    before = case_state(case)
    case.status = CaseStatus.SIGNED
    case.signed_by = user.strip()
    case.signed_at = utcnow()
    touch(case)
    audit.record(session, who, "sign", "case", case.id, case.id, before, case_state(case))
    return case_record(case)


def set_hidden(session: Session, who: str, case_id: int, hidden: bool) -> CaseRecord:
    """Take every version of a case off the case list, or put it back; allowed on signed cases
    (the list is not case content). Nothing is deleted."""
    case = load_case(session, case_id, for_update=True)
    for version in session.scalars(select(Case).where(Case.accession == case.accession)):
        if bool(version.is_hidden) != hidden:
            version.is_hidden = hidden
            audit.record(session, who, "hide" if hidden else "unhide", "case", version.id, version.id, None,
                         {"is_hidden": hidden})
    return case_record(case)


def _is_latest() -> ColumnElement[bool]:
    """True for a case version that has no newer version."""
    child = aliased(Case)
    return ~exists().where(child.parent_case_id == Case.id)


def new_version(session: Session, who: str, case_id: int) -> CaseRecord:
    old = load_case(session, case_id, for_update=True)
    if old.status != CaseStatus.SIGNED:
        raise StoreError(f"{describe(old)} is still a draft: edit it directly, no new version is needed.")
    child = session.scalar(select(Case).where(Case.parent_case_id == old.id))
    if child is not None:
        raise StoreError(f"{describe(old)} already has a newer version ({child.version}); amend that one.")
    top = session.scalar(select(func.max(Case.version)).where(Case.accession == old.accession)) or 0
    now = utcnow()
    new = Case(
        accession=old.accession,
        patient_id=old.patient_id,
        patient_name=old.patient_name,
        patient_birth_date=old.patient_birth_date,
        notes=old.notes,
        is_reference=old.is_reference,
        version=top + 1,
        status=CaseStatus.DRAFT,
        parent_case_id=old.id,
        created_at=now,
        updated_at=now,
    )
    session.add(new)
    session.flush()
    slide_ids = session.scalars(select(CaseSlide.slide_id).where(CaseSlide.case_id == old.id)).all()
    analysis_ids = session.scalars(select(CaseAnalysis.analysis_id).where(CaseAnalysis.case_id == old.id)).all()
    session.add_all(CaseSlide(case_id=new.id, slide_id=i) for i in slide_ids)
    session.add_all(CaseAnalysis(case_id=new.id, analysis_id=i) for i in analysis_ids)
    regions = session.scalars(select(RegionRow).where(RegionRow.case_id == old.id).order_by(RegionRow.id)).all()
    for r in regions:
        session.add(
            RegionRow(
                case_id=new.id, uid=r.uid, slide_id=r.slide_id, kind=r.kind, name=r.name, author=r.author,
                geometry_wkt=r.geometry_wkt, extra=dict(r.extra), created_at=r.created_at, updated_at=r.updated_at,
            )
        )
    scores = session.scalars(select(Score).where(Score.case_id == old.id).order_by(Score.id)).all()
    for sc in scores:
        session.add(
            Score(
                case_id=new.id, analysis_id=sc.analysis_id, result=dict(sc.result), provenance=dict(sc.provenance),
                created_at=sc.created_at, created_by=sc.created_by,
            )
        )
    session.flush()
    copied = {
        "copied_from_case_id": old.id,
        "slides": len(slide_ids),
        "analyses": len(analysis_ids),
        "regions": len(regions),
        "scores": len(scores),
    }
    audit.record(session, who, "new_version", "case", new.id, new.id, None, case_state(new) | copied)
    audit.record(session, who, "superseded", "case", old.id, old.id, None, {"new_case_id": new.id})
    return case_record(new)


def get_case(session: Session, case_id: int) -> CaseRecord:
    return case_record(load_case(session, case_id))


def get_case_by_accession(session: Session, accession: str, version: int | None) -> CaseRecord:
    query = select(Case).where(Case.accession == accession)
    query = query.where(Case.version == version) if version is not None else query.where(_is_latest())
    case = session.scalar(query)
    if case is None:
        which = f" version {version}" if version is not None else ""
        raise StoreError(f"No case with accession {accession!r}{which} in the case database.")
    return case_record(case)


def case_versions(session: Session, case_id: int) -> list[CaseRecord]:
    accession = load_case(session, case_id).accession
    rows = session.scalars(select(Case).where(Case.accession == accession).order_by(Case.version))
    return [case_record(c) for c in rows]


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def find_cases(session: Session, text: str, latest_only: bool, include_hidden: bool = True) -> list[CaseRecord]:
    query = select(Case) if include_hidden else select(Case).where(Case.is_hidden.is_(False))
    if text.strip():
        pattern = _like(text.strip())
        query = query.where(
            or_(
                Case.accession.ilike(pattern, escape="\\"),
                Case.patient_id.ilike(pattern, escape="\\"),
                Case.notes.ilike(pattern, escape="\\"),
            )
        )
    if latest_only:
        query = query.where(_is_latest())
    return [case_record(c) for c in session.scalars(query.order_by(Case.accession, Case.version))]


def list_reference_cases(session: Session, signed_only: bool) -> list[CaseRecord]:
    """Per accession, the newest version flagged as reference (and signed, if ``signed_only``)."""
    query = select(Case).where(Case.is_reference.is_(True))
    if signed_only:
        query = query.where(Case.status == CaseStatus.SIGNED)
    newest: dict[str, Case] = {}
    for case in session.scalars(query.order_by(Case.accession, Case.version)):
        newest[case.accession] = case
    return [case_record(c) for c in newest.values()]


def audit_entries(session: Session, case_id: int | None, since: datetime | None) -> list[AuditEntry]:
    query = select(AuditLog).order_by(AuditLog.id)
    if case_id is not None:
        query = query.where(AuditLog.case_id == case_id)
    if since is not None:
        query = query.where(AuditLog.at >= since)
    return [
        AuditEntry(
            id=a.id, at=a.at, who=a.who, action=a.action, entity=a.entity, entity_id=a.entity_id,
            case_id=a.case_id, before=a.before, after=a.after,
        )
        for a in session.scalars(query)
    ]
