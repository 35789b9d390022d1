"""ORM tables of the case store (SQLAlchemy 2 typed declarative).

The schema is created and changed only by the Alembic migrations in ``migrations/versions``;
``Base.metadata`` is never passed to ``create_all``. A test compares this module with the migrated
database (``compare_metadata``), so a change here without a migration fails the suite.

Why the shape:

- Slides and analyses are shared by reference between versions of a case (link tables
  ``case_slides`` and ``case_analyses``): a new version must not copy millions of cells. Both are
  immutable once written (an analysis once it is no longer running), so sharing is safe.
- Regions and scores are per case version: copied by ``new_version``, then edited in the draft.
- Cells are stored as uncompressed column blobs of up to 100,000 cells (``cell_chunks``), see
  :mod:`core.store.cells_codec` for why.
- Every timestamp is UTC; :class:`UTCDateTime` gives back timezone-aware datetimes on every
  backend (SQLite has no time zones).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.jsontypes import JSONDict

#: Constraint names are fixed so that later migrations (SQLite batch mode) can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend; naive datetimes are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store keeps UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Case(Base):
    """One version of a case; versions of one accession are chained by ``parent_case_id``."""

    __tablename__ = "cases"
    __table_args__ = (
        UniqueConstraint("accession", "version"),
        CheckConstraint("status IN ('draft', 'signed')", name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    accession: Mapped[str] = mapped_column(String(64), index=True)
    patient_id: Mapped[str | None] = mapped_column(String(64), index=True)
    notes: Mapped[str] = mapped_column(Text)
    is_reference: Mapped[bool] = mapped_column(Boolean)
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    parent_case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    signed_by: Mapped[str | None] = mapped_column(String(128))
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # 0002: identify the patient on the report beside the accession; what the signature means.
    patient_name: Mapped[str | None] = mapped_column(String(200))
    patient_birth_date: Mapped[str | None] = mapped_column(String(10))
    signature_meaning: Mapped[str | None] = mapped_column(Text)
    # 0002: hidden from the case list (cases are never deleted: the audit trail must stay whole).
    is_hidden: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Slide(Base):
    """A slide file as it was when added: never updated (a changed file is a new slide row)."""

    __tablename__ = "slides"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    mpp_x: Mapped[float | None] = mapped_column(Float)
    mpp_y: Mapped[float | None] = mapped_column(Float)
    channels: Mapped[list[str]] = mapped_column(JSON)
    is_synthetic: Mapped[bool] = mapped_column(Boolean)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # 0002: where the pixel size came from ("file", or how the user gave it); None before 0002.
    mpp_source: Mapped[str | None] = mapped_column(String(200))


class CaseSlide(Base):
    __tablename__ = "case_slides"

    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    slide_id: Mapped[int] = mapped_column(ForeignKey("slides.id"), primary_key=True, index=True)


class Analysis(Base):
    """One model run on one slide; ``case_id`` is the case version it was started in."""

    __tablename__ = "analyses"
    __table_args__ = (
        CheckConstraint("status IN ('running', 'finished', 'failed', 'cancelled')", name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    slide_id: Mapped[int] = mapped_column(ForeignKey("slides.id"), index=True)
    model_name: Mapped[str] = mapped_column(String(128))
    model_sha256: Mapped[str] = mapped_column(String(64))
    parameters: Mapped[JSONDict] = mapped_column(JSON)
    device: Mapped[str] = mapped_column(String(32))
    precision: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    summary: Mapped[JSONDict | None] = mapped_column(JSON)
    n_cells: Mapped[int | None] = mapped_column(Integer)


class CaseAnalysis(Base):
    __tablename__ = "case_analyses"

    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    analysis_id: Mapped[int] = mapped_column(ForeignKey("analyses.id"), primary_key=True, index=True)


class CellChunk(Base):
    """Up to 100,000 cells of one analysis as column blobs (format: :mod:`core.store.cells_codec`)."""

    __tablename__ = "cell_chunks"

    analysis_id: Mapped[int] = mapped_column(ForeignKey("analyses.id"), primary_key=True)
    chunk_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    n_cells: Mapped[int] = mapped_column(Integer)
    crc32: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class RegionRow(Base):
    """A polygon of a case version in slide µm, as WKT; ``uid`` is the caller's region id.

    The table row only: a region is :class:`core.regions.Region`, read back as
    :class:`core.store.records.RegionRecord`."""

    __tablename__ = "regions"
    __table_args__ = (UniqueConstraint("case_id", "uid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    uid: Mapped[str] = mapped_column(String(64))
    slide_id: Mapped[int | None] = mapped_column(ForeignKey("slides.id"))
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    author: Mapped[str] = mapped_column(String(128))
    geometry_wkt: Mapped[str] = mapped_column(Text)
    extra: Mapped[JSONDict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Score(Base):
    """One saved set of score results with how they were computed; never updated, only added."""

    __tablename__ = "scores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    analysis_id: Mapped[int | None] = mapped_column(ForeignKey("analyses.id"))
    result: Mapped[JSONDict] = mapped_column(JSON)
    provenance: Mapped[JSONDict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(128))


class Report(Base):
    """A printed report: the PDF bytes, or the path of a PDF file, pinned by its sha256."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    pdf: Mapped[bytes | None] = mapped_column(LargeBinary)
    path: Mapped[str | None] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(128))


class AuditLog(Base):
    """Who changed what and when; written in the same transaction as the change itself."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    who: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[int | None] = mapped_column(Integer)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    before: Mapped[JSONDict | None] = mapped_column(JSON)
    after: Mapped[JSONDict | None] = mapped_column(JSON)


class User(Base):
    """A lab user who can sign cases: a login name, the name printed on reports, an argon2 hash of
    the password or PIN (never the secret itself). Added by migration 0002."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("username"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(128))
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
