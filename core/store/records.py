"""Plain frozen records the store returns, never live ORM objects.

A record is a snapshot taken inside the store's transaction: callers (app, CLI, report) can keep
and pass it between threads, and never hit SQLAlchemy's detached-instance or lazy-load errors.
Datetimes are timezone-aware UTC. JSON fields are plain dicts, copies owned by the record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from core.jsontypes import JSONDict

if TYPE_CHECKING:
    from core.scores import CaseScores


class CaseStatus(StrEnum):
    """A draft can be edited; a signed case is final and only readable (see ``new_version``)."""

    DRAFT = "draft"
    SIGNED = "signed"


class AnalysisStatus(StrEnum):
    """Only a running analysis takes cells; the others are final."""

    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class CaseRecord:
    """One version of a case. ``accession`` is shared by all versions of a case."""

    id: int
    accession: str
    patient_id: str | None
    notes: str
    is_reference: bool
    version: int
    status: CaseStatus
    parent_case_id: int | None
    created_at: datetime
    updated_at: datetime
    signed_by: str | None
    signed_at: datetime | None
    patient_name: str | None = None
    patient_birth_date: str | None = None  # "YYYY-MM-DD" as entered
    signature_meaning: str | None = None
    is_hidden: bool = False

    @property
    def is_signed(self) -> bool:
        return self.status == CaseStatus.SIGNED


@dataclass(frozen=True, slots=True)
class SlideRecord:
    """A slide file as added. ``mpp``: (x, y) µm per level-0 pixel, None when uncalibrated."""

    id: int
    path: str
    fingerprint: str
    size_bytes: int
    mpp: tuple[float, float] | None
    channels: tuple[str, ...]
    is_synthetic: bool
    added_at: datetime
    mpp_source: str | None = None  # "file", or how the user gave it; None: not recorded (before 0002)


@dataclass(frozen=True, slots=True)
class AnalysisRecord:
    """One model run on one slide; ``case_id`` is the case version it was started in."""

    id: int
    case_id: int
    slide_id: int
    model_name: str
    model_sha256: str
    parameters: JSONDict
    device: str
    precision: str
    status: AnalysisStatus
    started_at: datetime
    finished_at: datetime | None
    summary: JSONDict | None
    n_cells: int | None


@dataclass(frozen=True, slots=True)
class RegionData:
    """A region as the store takes it: plain values, geometry as WKT in slide µm.

    ``save_regions`` also takes mappings with these keys, or objects with these attributes where
    ``kind`` may be an enum (its ``value`` is stored) and ``geometry`` a shapely geometry.
    """

    id: str
    kind: str
    geometry_wkt: str
    name: str = ""
    author: str = ""
    slide_id: int | None = None
    extra: Mapping[str, object] = field(default_factory=dict)  # made JSON (audit.jsonable) when saved


@dataclass(frozen=True, slots=True)
class RegionRecord:
    """A saved region of one case version; ``id`` is the caller's region id (e.g. a UUID)."""

    id: str
    kind: str
    geometry_wkt: str
    name: str
    author: str
    slide_id: int | None
    extra: JSONDict
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ScoreRecord:
    """Saved score results and how they were computed (model, parameters, reference cohort...)."""

    id: int
    case_id: int
    analysis_id: int | None
    result: JSONDict
    provenance: JSONDict
    created_at: datetime
    created_by: str

    @property
    def scores(self) -> CaseScores:
        """The stored result as core's typed :class:`core.scores.CaseScores` (``from_dict``)."""
        from core.scores import CaseScores  # scores need no store; only this reader needs scores

        return CaseScores.from_dict(self.result)


@dataclass(frozen=True, slots=True)
class ReportRecord:
    """A saved report; the PDF itself comes from ``CaseStore.load_report_pdf``."""

    id: int
    case_id: int
    sha256: str
    size_bytes: int
    path: str | None
    has_pdf: bool
    created_at: datetime
    created_by: str


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit row: ``who`` (OS user) did ``action`` on ``entity`` ``entity_id`` at ``at`` (UTC)."""

    id: int
    at: datetime
    who: str
    action: str
    entity: str
    entity_id: int | None
    case_id: int | None
    before: JSONDict | None
    after: JSONDict | None


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A lab user who can sign: ``username`` to log in, ``display_name`` printed on reports."""

    id: int
    username: str
    display_name: str
    is_active: bool
    created_at: datetime
