"""CaseSession: the open case as a QObject over core's case layer (:mod:`core.case`).

Holds no widget and no workflow of its own: opening reads a :class:`core.case.OpenCase`
(:func:`core.case.open_case`), scoring is :func:`core.case.score_and_record`, the exported cells'
region column is :func:`core.case.cell_regions`. What it adds is the app's state and its signals:
every region change is saved to the store at once (the store writes the audit row) and the
scores are recomputed; a signed case is read-only (edits need a new version). The widgets
follow it through its Qt signals.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from PySide6.QtCore import QObject, Signal

from core.case import OpenCase
from core.case.opened import analysis_summary
from core.engine.summary import AnalysisSummary
from core.errors import RegionError, StoreError
from core.jsontypes import JSONDict
from core.regions import RegionChange, RegionKind, RegionSet
from core.store import CaseRecord, CaseStore, SlideRecord
from core.store.records import AnalysisRecord, AuditEntry

if TYPE_CHECKING:
    from core.report import ReportSettings
    from core.scores import CaseScores, ReferenceCohort
    from core.slides import Slide

log = logging.getLogger(__name__)


class CaseSession(QObject):
    """The case being worked on. Signals carry no payload: read the attributes.

    The case as read from the store is one frozen :class:`OpenCase` (``opened``); the attributes
    ``case``, ``slide_record``, ``slide``, ``regions``, ``cells``, ``analysis`` and ``scores`` read
    it, and each change (cells of a new analysis, new scores, a signature) replaces it.
    """

    case_changed = Signal()      # case opened/closed, signed, reference flag, new version
    regions_changed = Signal()
    cells_changed = Signal()     # whole table replaced
    scores_changed = Signal()

    def __init__(self, database_url: str = "", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.database_url = database_url
        self._store: CaseStore | None = None
        self.opened: OpenCase | None = None
        self._no_regions = RegionSet()
        #: The summary of the analysis the shown cells came from (typed; defaults when none).
        self.summary = AnalysisSummary()
        self._scores_result: JSONDict | None = None  # the shown scores as stored (JSON)
        self.score_warnings: list[str] = []
        self.interrupted: list[int] = []  # analyses found left running by a stopped process, now closed
        self.im_half_width_um = 500.0
        self.cohort_csv: str = ""   # the lab's imported cohort table; "" = the store's reference cases
        self.cohort: ReferenceCohort | None = None  # the cohort the shown scores used (None: none yet)
        self.channel: str | None = None  # the nuclear channel the analysis reads; None: the model's role
        self._suspend_save = False

    # --- the open case, read from ``opened`` ------------------------------------------------------
    @property
    def case(self) -> CaseRecord | None:
        return self.opened.case if self.opened is not None else None

    @case.setter
    def case(self, case: CaseRecord) -> None:
        """The same case as the store now has it (signed, hidden, new patient fields...)."""
        if self.opened is not None:
            self.opened = dataclasses.replace(self.opened, case=case)

    @property
    def slide_record(self) -> SlideRecord | None:
        return self.opened.slide_record if self.opened is not None else None

    @property
    def slide(self) -> Slide | None:
        return self.opened.slide if self.opened is not None else None

    @property
    def regions(self) -> RegionSet:
        return self.opened.regions if self.opened is not None else self._no_regions

    @property
    def cells(self) -> pd.DataFrame | None:
        return self.opened.cells if self.opened is not None else None

    @property
    def analysis(self) -> AnalysisRecord | None:
        """The stored analysis the shown cells came from (None: none, or cells not from the store)."""
        return self.opened.analysis if self.opened is not None else None

    @property
    def scores(self) -> CaseScores | None:
        return self.opened.scores if self.opened is not None else None

    # --- store ----------------------------------------------------------------------------------
    @property
    def store(self) -> CaseStore:
        if self._store is None:
            self._store = CaseStore.open(self.database_url or None)
        return self._store

    def set_database_url(self, url: str) -> None:
        """Use another case database (closes the open case and the old connection)."""
        self.close()
        self.database_url = url

    def close(self) -> None:
        self.close_case()
        if self._store is not None:
            self._store.close()
            self._store = None

    # --- opening ----------------------------------------------------------------------------------
    def create_case(self, slide_path: str | Path, accession: str, mpp: tuple[float, float] | None = None, *,
                    mpp_source: str = "file", channel: str | None = None) -> None:
        """Open a slide as a new draft case ``accession``.

        mpp: the pixel size the user gave for an uncalibrated file, ``mpp_source`` how they gave it
        (kept with the slide as provenance); channel: the nuclear channel chosen by the user.
        """
        from core.report.synthetic import phantom_mark
        from core.slides import open_slide

        slide = open_slide(slide_path, mpp=mpp)
        try:
            slide.require_mpp()
            if channel is not None:
                slide.channel_index(channel)  # a name the slide does not have fails here, not mid-analysis
            case = self.store.create_case(accession)
            record = self.store.add_slide(case.id, slide_path, mpp=slide.mpp, channels=slide.channel_names,
                                          mpp_source=mpp_source if mpp is not None else "file",
                                          is_synthetic=phantom_mark(slide_path) is not None)
        except BaseException:
            slide.close()
            raise
        self._show(OpenCase(case=case, slide_record=record, slide=slide, regions=self._bounded_regions(slide),
                            analysis=None, cells=None, score_record=None, scores=None))
        self.channel = channel
        self.scores_changed.emit()

    def open_case(self, case_id: int) -> None:
        """Open a stored case (:func:`core.case.open_case`): its slide, regions, latest finished
        analysis and scores; runs a crashed process left "running" are closed first."""
        from core.case import open_case

        opened = open_case(self.store, case_id, close_stale_runs=True)
        self._show(opened)
        self.interrupted = list(opened.interrupted)
        self._scores_result = opened.score_record.result if opened.score_record is not None else None
        if opened.cells is not None:  # the tissue it found, then scores: saved only when they differ
            self.set_cells(opened.cells, opened.analysis)
        self.channel = opened.channel
        self.scores_changed.emit()

    @staticmethod
    def _bounded_regions(slide: Slide) -> RegionSet:
        w, h = slide.dimensions
        mx, my = slide.require_mpp()
        return RegionSet(bounds_um=(w * mx, h * my))

    def _show(self, opened: OpenCase) -> None:
        self.close_case()
        self.opened = opened
        self.summary = opened.summary
        opened.regions.changed.connect(self._on_regions_changed)
        self.case_changed.emit()
        self.regions_changed.emit()
        self.cells_changed.emit()
        self.scores_changed.emit()

    def close_case(self) -> None:
        if self.opened is not None and self.opened.slide is not None:
            self.opened.slide.close()
        self.opened = None
        self.summary = AnalysisSummary()
        self._scores_result, self.cohort, self.channel = None, None, None
        self.score_warnings = []
        self._no_regions = RegionSet()

    @property
    def read_only(self) -> bool:
        return self.case is not None and self.case.is_signed

    # --- regions ----------------------------------------------------------------------------------
    def check_editable(self) -> None:
        if self.case is None:
            raise RegionError("Open a slide or a case before drawing regions.")
        if self.read_only:
            raise StoreError(f"Case {self.case.accession} is signed and read-only. "
                             "Use Case › New version to amend it.")

    def _on_regions_changed(self, change: RegionChange) -> None:
        if not self._suspend_save and self.case is not None and not self.read_only:
            self.store.save_regions(self.case.id, list(self.regions))
            log.info("Regions of %s saved (%s)", self.case.accession, change.action)
        self.regions_changed.emit()
        self.rescore()

    def replace_ct_im_by_derived(self) -> list[str]:
        self.check_editable()
        return self.regions.replace_ct_im_by_derived(self.im_half_width_um, author=self.store.user)

    def _mpp(self) -> tuple[float, float]:
        if self.slide is None:
            raise RegionError("Open a slide or a case first.")
        return self.slide.require_mpp()

    def import_geojson(self, path: str | Path) -> list[str]:
        from core.regions import read_regions_geojson

        self.check_editable()
        found = read_regions_geojson(path, self._mpp(), bounds_um=self.regions.bounds_um)
        return found.warnings + self.regions.reset([*self.regions, *found.regions])

    def export_geojson(self, path: str | Path) -> Path:
        from core.regions import write_regions_geojson

        written: Path = write_regions_geojson(list(self.regions), path, self._mpp())
        return written

    # --- cells and scores -------------------------------------------------------------------------
    def set_cells(self, cells: pd.DataFrame, analysis: AnalysisRecord | None,
                  summary: AnalysisSummary | None = None) -> None:
        """Show the cells of ``analysis`` (None: cells not from the store; ``summary`` then says what
        made them); a case without a Tissue region gets the tissue it found (so the derived IM is
        clipped to tissue), then everything is rescored."""
        from core.case import adopt_detected_tissue

        if self.opened is None:
            raise StoreError("Open a slide or a case before showing cells.")
        self.opened = dataclasses.replace(self.opened, cells=cells, analysis=analysis)
        self.summary = summary if summary is not None else analysis_summary(analysis)
        self.cells_changed.emit()
        if not self.read_only and self.slide is not None and self.slide.is_calibrated:
            adopt_detected_tissue(self.regions, self.summary, self.slide.require_mpp(), author=self.store.user)
        self.rescore()

    def export_cells_csv(self, path: str | Path) -> Path:
        """The cells as CSV with the scored region of each (:func:`core.case.cell_regions`)."""
        from core.case import write_case_cells_csv

        if self.cells is None:
            raise StoreError("There are no cells yet: run the analysis first.")
        return write_case_cells_csv(self.cells, self.regions, self.im_half_width_um, path)

    def cell_regions(self) -> list[str]:
        """Per cell, the scored region its centre lies in ("CT", "IM", "Tumour", "Excluded" or ""),
        on the CT/IM the scores count in (:func:`core.case.cell_regions`)."""
        from core.case import cell_regions

        cells = self.cells if self.cells is not None else pd.DataFrame({"x_um": [], "y_um": []})
        return cell_regions(cells, self.regions, self.im_half_width_um)

    def reference_cohort(self) -> ReferenceCohort | None:
        """The cohort the open case is scored against, read afresh (flags may change at any time).

        The imported table (settings) if set; the SYNTHETIC demo cohort only for demo cases; else
        the cases flagged as reference in the store, this case left out. None when there is none.
        """
        from core.demo import DEMO_COHORT, is_demo_case
        from core.scores import ReferenceCohort, cohort_from_store

        if self.cohort_csv:
            return ReferenceCohort.from_csv(self.cohort_csv)
        if self.case is not None and is_demo_case(self.case.accession):
            return ReferenceCohort.from_csv(DEMO_COHORT)
        found: ReferenceCohort | None = cohort_from_store(
            self.store, exclude_accession=self.case.accession if self.case else None)
        return found

    def rescore(self) -> None:
        """Score the cells in the regions against the reference cohort; store when editable."""
        from core.case import score_and_record

        if self.opened is None or self.cells is None or self.case is None or not (
            self.regions.of_kind(RegionKind.TUMOUR) or self.regions.of_kind(RegionKind.TUMOUR_CENTRE)
            or self.regions.of_kind(RegionKind.INVASIVE_MARGIN)
        ):
            return
        self.cohort = self.reference_cohort()
        analysis = self.analysis
        recorded = score_and_record(
            self.store, self.case.id, self.cells, self.regions, self.cohort, self.im_half_width_um,
            model_name=analysis.model_name if analysis is not None else None,
            model_sha256=analysis.model_sha256 if analysis is not None else None,
            analysis_id=analysis.id if analysis is not None else None,
            editable=not self.read_only, previous=self._scores_result or {})
        self.score_warnings = list(recorded.scores.warnings)
        self._scores_result = recorded.result
        self.opened = dataclasses.replace(self.opened, scores=recorded.scores)
        self.scores_changed.emit()

    def analysis_parameters(self) -> dict[str, object]:
        """Provenance the app adds to an analysis record: the pixel size and where it came from,
        and the nuclear channel read (the engine parameters are added by the job)."""
        record = self.slide_record
        mpp = list(self.slide.require_mpp()) if self.slide is not None else None
        source = (record.mpp_source if record is not None else None) or "file"
        return {"pixel_size": {"mpp_um": mpp, "source": source},
                "nuclear_channel": self.channel or "found by name (Hoechst/DAPI)"}

    # --- case actions ------------------------------------------------------------------------------
    def _open_case_record(self) -> CaseRecord:
        if self.case is None:
            raise StoreError("Open a case first.")
        return self.case

    def sign(self, username: str, secret: str, meaning: str) -> None:
        """Sign the open case as lab user ``username`` (PIN checked by the store)."""
        from core.case import close_interrupted

        case = self._open_case_record()
        close_interrupted(self.store, case.id)
        self.case = self.store.sign_as(case.id, username, secret, meaning)
        self.case_changed.emit()

    def update_patient(self, patient_id: str, patient_name: str, birth_date: str) -> None:
        """Save the patient fields of the open draft (audited)."""
        self.check_editable()
        self.case = self.store.update_case(self._open_case_record().id, patient_id=patient_id,
                                           patient_name=patient_name, patient_birth_date=birth_date)
        self.case_changed.emit()

    def versions(self) -> list[CaseRecord]:
        return self.store.case_versions(self.case.id) if self.case is not None else []

    def audit_log(self) -> tuple[list[AuditEntry], dict[int, int]]:
        """Audit rows of every version of the open case, oldest first, and case id -> version."""
        versions = self.versions()
        entries = [e for v in versions for e in self.store.audit_entries(v.id)]
        return sorted(entries, key=lambda e: e.id), {v.id: v.version for v in versions}

    def new_version(self) -> None:
        new = self.store.new_version(self._open_case_record().id)
        self.open_case(new.id)

    def set_reference(self, flag: bool) -> None:
        self.case = self.store.set_reference(self._open_case_record().id, flag)
        self.case_changed.emit()

    def render_report(self, settings: ReportSettings) -> bytes:
        from core.report import render_report
        from core.report.from_store import report_data_from_store

        pdf: bytes = render_report(report_data_from_store(self.store, self._open_case_record().id), settings)
        return pdf

    def save_report(self, pdf: bytes, path: str | Path) -> Path:
        path = Path(path)
        path.write_bytes(pdf)
        if not self.read_only:
            self.store.save_report(self._open_case_record().id, pdf=pdf, path=path)
        return path
