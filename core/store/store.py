"""CaseStore: the one entry point to the case database for the app, the CLI and the report.

Each public method is one transaction: it either happens completely, with its audit row, or not
at all. Methods return frozen records (:mod:`core.store.records`), never ORM objects. Work that
needs no database (fingerprinting a slide, encoding cells, hashing a PDF) is done before the
transaction, so a write holds the SQLite write lock as briefly as possible.

A store is safe to share between threads (each call uses its own session) and between
processes (SQLite WAL and busy timeout, ``BEGIN IMMEDIATE`` for writes, retry when still busy).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Self, TypeVar

import pandas as pd
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from core.classes import CLASS_NAMES, class_table_of
from core.errors import StoreError
from core.store import _analyses, _cases, _results, _users, cells_codec
from core.store.audit import os_user
from core.store.engine import SQLITE_BEGIN, default_url, make_engine, upgrade_to_head
from core.store.records import (
    AnalysisRecord,
    AnalysisStatus,
    AuditEntry,
    CaseRecord,
    RegionData,
    RegionRecord,
    ReportRecord,
    ScoreRecord,
    SlideRecord,
    UserRecord,
)

T = TypeVar("T")
_ATTEMPTS = 4  # a write still busy after the 10 s busy timeout is retried this many times in all
_RETRY_PGCODES = {"40001", "40P01"}  # PostgreSQL serialization failure, deadlock


def _is_transient(err: OperationalError) -> bool:
    text = str(err.orig).lower()
    pgcode = getattr(err.orig, "pgcode", None)
    return "database is locked" in text or "database is busy" in text or pgcode in _RETRY_PGCODES


class CaseStore:
    """Cases, slides, analyses, cells, regions, scores, reports and the audit log.

    Open with :meth:`open`; close with :meth:`close` or use as a context manager.
    """

    def __init__(self, engine: Engine, *, user: str | None = None) -> None:
        """Wraps an engine from :func:`core.store.engine.make_engine` already at the newest schema."""
        self._engine = engine
        self._write_engine = engine.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
        self._user = user or os_user()

    @classmethod
    def open(cls, url: str | None = None, *, user: str | None = None) -> Self:
        """Opens (creating and migrating as needed) the database at ``url``.

        url: any SQLAlchemy URL; None opens ``cases.db`` in the user's data folder.
        user: the name written as ``who`` in the audit log; default the OS user.
        """
        engine = make_engine(url or default_url())
        try:
            upgrade_to_head(engine)
        except StoreError:
            engine.dispose()
            raise
        except SQLAlchemyError as err:
            engine.dispose()
            reason = getattr(err, "orig", None) or err
            raise StoreError(f"Cannot open the case database {engine.url.render_as_string()}: {reason}") from err
        return cls(engine, user=user)

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return self._engine.url.render_as_string()

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def user(self) -> str:
        return self._user

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions ---------------------------------------------------------------------------

    def _run(self, fn: Callable[[Session], T], *, write: bool) -> T:
        engine = self._write_engine if write else self._engine
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with Session(engine, expire_on_commit=False) as session, session.begin():
                    return fn(session)
            except OperationalError as err:
                if _is_transient(err) and attempt < _ATTEMPTS:
                    time.sleep(0.05 * attempt)
                    continue
                raise StoreError(f"The case database {self.url} is not available: {err.orig}") from err
            except IntegrityError as err:
                raise StoreError(f"The case database refused the change: {err.orig}") from err
            except SQLAlchemyError as err:
                raise StoreError(f"Case database error: {err}") from err
        raise AssertionError("unreachable")

    def _read(self, fn: Callable[[Session], T]) -> T:
        return self._run(fn, write=False)

    def _write(self, fn: Callable[[Session], T]) -> T:
        return self._run(fn, write=True)

    # -- cases ----------------------------------------------------------------------------------

    def create_case(
        self, accession: str, *, patient_id: str | None = None, notes: str = "", is_reference: bool = False
    ) -> CaseRecord:
        """A new draft case, version 1. StoreError if the accession exists already."""
        return self._write(lambda s: _cases.create_case(s, self._user, accession, patient_id or None, notes, is_reference))

    def get_case(self, case_id: int) -> CaseRecord:
        return self._read(lambda s: _cases.get_case(s, case_id))

    def get_case_by_accession(self, accession: str, version: int | None = None) -> CaseRecord:
        """The given version of a case, or its newest version when ``version`` is None."""
        return self._read(lambda s: _cases.get_case_by_accession(s, accession, version))

    def case_versions(self, case_id: int) -> list[CaseRecord]:
        """All versions of the case ``case_id`` belongs to, oldest first."""
        return self._read(lambda s: _cases.case_versions(s, case_id))

    def find_cases(self, text: str = "", *, latest_only: bool = True, include_hidden: bool = True) -> list[CaseRecord]:
        """Cases whose accession, patient id or notes contain ``text`` (case-insensitive);
        ``include_hidden`` False leaves out cases taken off the list (:meth:`set_hidden`)."""
        return self._read(lambda s: _cases.find_cases(s, text, latest_only, include_hidden))

    def set_hidden(self, case_id: int, hidden: bool) -> CaseRecord:
        """Hide all versions of a case from the case list (or show them again); audited, nothing deleted."""
        return self._write(lambda s: _cases.set_hidden(s, self._user, case_id, hidden))

    def list_reference_cases(self, *, signed_only: bool = False) -> list[CaseRecord]:
        """The reference cohort: per accession, the newest version flagged as reference."""
        return self._read(lambda s: _cases.list_reference_cases(s, signed_only))

    def update_case(self, case_id: int, *, notes: str | None = None, patient_id: str | None = None,
                    patient_name: str | None = None, patient_birth_date: str | None = None) -> CaseRecord:
        """Changes the given fields of a draft (None: unchanged; "" clears a patient field)."""
        fields: dict[str, object] = {}
        if notes is not None:
            fields["notes"] = notes
        for name, value in (("patient_id", patient_id), ("patient_name", patient_name),
                            ("patient_birth_date", patient_birth_date)):
            if value is not None:
                fields[name] = value.strip() or None
        return self._write(lambda s: _cases.update_case(s, self._user, case_id, fields))

    def set_reference(self, case_id: int, is_reference: bool) -> CaseRecord:
        """Adds a case to or removes it from the reference cohort; allowed on signed cases too."""
        return self._write(lambda s: _cases.set_reference(s, self._user, case_id, is_reference))

    def sign_case(self, case_id: int, user: str) -> CaseRecord:
        """Signs off a draft: from then on it is final (see :meth:`new_version`)."""
        return self._write(lambda s: _cases.sign_case(s, self._user, case_id, user))

    def sign_as(self, case_id: int, username: str, secret: str, meaning: str = _users.DEFAULT_MEANING) -> CaseRecord:
        """Signs off a draft as the lab user ``username`` after checking their password or PIN.

        ``meaning``: the statement the signer approves, stored with the signature and printed.
        StoreError (one message for unknown user and wrong secret) when the check fails.
        """
        return self._write(lambda s: _users.sign_as(s, case_id, username, secret, meaning))

    def add_user(self, username: str, display_name: str, secret: str) -> UserRecord:
        """Adds a lab user who can sign; ``secret`` (password or PIN, 4+ characters) is stored as an
        argon2 hash only."""
        return self._write(lambda s: _users.add_user(s, self._user, username, display_name, secret))

    def list_users(self) -> list[UserRecord]:
        """The active lab users, by login name."""
        return self._read(_users.list_users)

    def check_user(self, username: str, secret: str) -> UserRecord:
        """The user if ``secret`` is their password or PIN; StoreError otherwise."""
        return self._write(lambda s: _users.user_record(_users.check(s, username, secret)))

    def new_version(self, case_id: int) -> CaseRecord:
        """A new draft of a signed case: shares its slides and analyses, copies regions and scores."""
        return self._write(lambda s: _cases.new_version(s, self._user, case_id))

    def audit_entries(self, case_id: int | None = None, *, since: datetime | None = None) -> list[AuditEntry]:
        """Audit rows of one case (all cases when None), oldest first; ``since``: aware datetime."""
        return self._read(lambda s: _cases.audit_entries(s, case_id, since))

    # -- slides, analyses, cells ----------------------------------------------------------------

    def add_slide(
        self,
        case_id: int,
        path: str | Path,
        *,
        mpp: tuple[float, float] | None,
        channels: Iterable[str] = (),
        is_synthetic: bool = False,
        fingerprint: str | None = None,
        size_bytes: int | None = None,
        mpp_source: str | None = None,
    ) -> SlideRecord:
        """Adds a slide file to a draft case; a slide already in the case is returned as it is.

        mpp: (x, y) µm per level-0 pixel, None when uncalibrated. fingerprint/size_bytes: give both
        to skip reading the file (default: :func:`core.fingerprint.slide_fingerprint` of the file). mpp_source: where
        the pixel size came from ("file", or e.g. "entered by the user"), kept as provenance.
        """
        path = Path(path).expanduser().absolute()
        if fingerprint is None or size_bytes is None:
            identity = _analyses.read_fingerprint(path)
            fingerprint, size_bytes = identity.sha256, identity.size
        names = [str(c) for c in channels]
        return self._write(
            lambda s: _analyses.add_slide(
                s, self._user, case_id, str(path), fingerprint, size_bytes, mpp, names, is_synthetic, mpp_source
            )
        )

    def list_slides(self, case_id: int) -> list[SlideRecord]:
        return self._read(lambda s: _analyses.list_slides(s, case_id))

    def get_slide(self, slide_id: int) -> SlideRecord:
        return self._read(lambda s: _analyses.get_slide(s, slide_id))

    def start_analysis(
        self,
        case_id: int,
        slide_id: int,
        *,
        model_name: str,
        model_sha256: str,
        parameters: Mapping[str, object],
        device: str,
        precision: str,
    ) -> AnalysisRecord:
        """Records that a model run on a slide of a draft case has started (status running)."""
        params = dict(parameters)
        return self._write(
            lambda s: _analyses.start_analysis(
                s, self._user, case_id, slide_id, model_name, model_sha256, params, device, precision
            )
        )

    def finish_analysis(
        self, analysis_id: int, *, status: str = AnalysisStatus.FINISHED, summary: Mapping[str, object] | None = None
    ) -> AnalysisRecord:
        """Ends a running analysis: status "finished", "failed" or "cancelled"; it is final then."""
        try:
            final = AnalysisStatus(status)
        except ValueError:
            raise StoreError(f"Unknown analysis status {status!r}; use finished, failed or cancelled.") from None
        data = None if summary is None else dict(summary)
        return self._write(lambda s: _analyses.finish_analysis(s, self._user, analysis_id, final, data))

    def list_analyses(self, case_id: int) -> list[AnalysisRecord]:
        return self._read(lambda s: _analyses.list_analyses(s, case_id))

    def get_analysis(self, analysis_id: int) -> AnalysisRecord:
        return self._read(lambda s: _analyses.get_analysis(s, analysis_id))

    def save_cells(self, analysis_id: int, cells: pd.DataFrame, classes: Sequence[str] = CLASS_NAMES) -> AnalysisRecord:
        """Saves the cell table of a running analysis, replacing cells saved before, in one transaction.

        cells: needs x_um, y_um (slide µm), class_id, probability, area_um2 (µm²); other columns
        (x_px, y_px, class_name) are rebuilt on load from these, the slide's mpp and the class
        table. classes: the model card's class names (index -> name), which the analysis's summary
        must record too (``classes``, as the engine's summary does) for :meth:`load_cells`.
        """
        chunks = list(cells_codec.encode_chunks(cells_codec.columns_from_frame(cells, classes)))
        return self._write(lambda s: _analyses.save_cells(s, self._user, analysis_id, chunks))

    def load_cells(self, analysis_id: int) -> pd.DataFrame:
        """The cell table of an analysis (columns of CONTRACTS.md "Cell table"; empty if none saved),
        class names from the class table its summary records (the paper's for older analyses)."""
        (mpp, chunks), summary = self._read(
            lambda s: (_analyses.cell_chunks(s, analysis_id), _analyses.get_analysis(s, analysis_id).summary))
        columns = cells_codec.decode_chunks(chunks, f"analysis {analysis_id}")
        return cells_codec.frame_from_columns(columns, mpp, class_table_of(summary).names)

    # -- regions, scores, reports ---------------------------------------------------------------

    def save_regions(self, case_id: int, regions: Iterable[RegionData | Mapping[str, object] | object]
                     ) -> list[RegionRecord]:
        """Makes the draft case's regions exactly ``regions`` (geometry WKT in slide µm).

        Takes :class:`RegionData`, mappings with its keys, or objects such as core.regions.Region.
        """
        data = [_results.coerce_region(r) for r in regions]
        return self._write(lambda s: _results.save_regions(s, self._user, case_id, data))

    def load_regions(self, case_id: int) -> list[RegionRecord]:
        return self._read(lambda s: _results.load_regions(s, case_id))

    def save_scores(
        self,
        case_id: int,
        result: Mapping[str, object],
        *,
        provenance: Mapping[str, object],
        analysis_id: int | None = None,
    ) -> ScoreRecord:
        """Adds score results (JSON-able; NaN is kept as None) with how they were computed."""
        return self._write(
            lambda s: _results.save_scores(s, self._user, case_id, result, provenance, analysis_id)
        )

    def load_scores(self, case_id: int) -> list[ScoreRecord]:
        """All saved score results of a case version, oldest first (the last is the current one)."""
        return self._read(lambda s: _results.load_scores(s, case_id))

    def save_report(self, case_id: int, *, pdf: bytes | None = None, path: str | Path | None = None) -> ReportRecord:
        """Records a printed report: its PDF bytes, its file path, or both; pinned by sha256."""
        if pdf is not None:
            content = pdf
        elif path is not None:
            try:
                content = Path(path).read_bytes()
            except OSError as err:
                raise StoreError(f"Cannot read report {path}: {err.strerror or err}.") from err
        else:
            raise StoreError("save_report needs the PDF bytes or the path of the PDF file.")
        sha256 = hashlib.sha256(content).hexdigest()
        where = None if path is None else str(Path(path).expanduser().absolute())
        return self._write(
            lambda s: _results.save_report(s, self._user, case_id, pdf, where, sha256, len(content))
        )

    def list_reports(self, case_id: int) -> list[ReportRecord]:
        return self._read(lambda s: _results.list_reports(s, case_id))

    def load_report_pdf(self, report_id: int) -> bytes:
        """The PDF of a report, checked against its sha256 (StoreError if missing or altered)."""
        pdf, path, sha256 = self._read(lambda s: _results.report_content(s, report_id))
        if pdf is None:
            try:
                pdf = Path(path or "").read_bytes()
            except OSError as err:
                raise StoreError(f"The PDF of report {report_id} ({path}) cannot be read: {err.strerror or err}.") from err
        if hashlib.sha256(pdf).hexdigest() != sha256:
            raise StoreError(f"The PDF of report {report_id} ({path or 'in the database'}) was altered since it was saved.")
        return pdf
