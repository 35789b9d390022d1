"""CaseSession: the open case, its slide, regions, cells and scores, kept in step with the case store.

Holds no widget. Every region change is saved to the store at once (the store writes the audit
row) and the scores are recomputed; a signed case is read-only (edits need a new version). The
widgets follow it through its Qt signals.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
import shapely.wkt
from PySide6.QtCore import QObject, Signal

from core.errors import RegionError, StoreError
from core.regions import Region, RegionChange, RegionKind, RegionSet
from core.store import CaseRecord, CaseStore, SlideRecord

log = logging.getLogger(__name__)


class CaseSession(QObject):
    """The case being worked on. Signals carry no payload: read the attributes."""

    case_changed = Signal()      # case opened/closed, signed, reference flag, new version
    regions_changed = Signal()
    cells_changed = Signal()     # whole table replaced
    scores_changed = Signal()

    def __init__(self, database_url: str = "", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.database_url = database_url
        self._store: CaseStore | None = None
        self.case: CaseRecord | None = None
        self.slide_record: SlideRecord | None = None
        self.slide: Any = None
        self.regions = RegionSet()
        self.cells: pd.DataFrame | None = None
        self.analysis: dict[str, Any] = {}   # id, model_name, model_sha256, summary
        self.scores: dict[str, Any] | None = None
        self.score_warnings: list[str] = []
        self.interrupted: list[int] = []  # analyses found left running by a stopped process, now closed
        self.im_half_width_um = 500.0
        self.cohort_csv: str = ""   # the lab's imported cohort table; "" = the store's reference cases
        self.cohort: Any = None      # the ReferenceCohort the shown scores used (None: none yet)
        self.channel: str | None = None  # the nuclear channel the analysis reads; None: the model's role
        self._suspend_save = False

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
        from core.slides import open_slide

        slide = open_slide(slide_path, mpp=mpp)
        slide.require_mpp()
        if channel is not None:
            slide.channel_index(channel)  # a name the slide does not have fails here, not mid-analysis
        case = self.store.create_case(accession)
        from core.report.synthetic import phantom_mark

        record = self.store.add_slide(case.id, slide_path, mpp=slide.mpp, channels=slide.channel_names,
                                      mpp_source=mpp_source if mpp is not None else "file",
                                      is_synthetic=phantom_mark(slide_path) is not None)
        self._show(case, record, slide)
        self.channel = channel

    def open_case(self, case_id: int) -> None:
        """Open a stored case: its first slide, regions, latest finished analysis and scores."""
        from core.slides import open_slide

        case = self.store.get_case(case_id)
        slides = self.store.list_slides(case_id)
        if not slides:
            raise StoreError(f"Case {case.accession} has no slide: open a slide to add one.")
        record = slides[0]
        slide = open_slide(record.path, mpp=record.mpp)
        self._show(case, record, slide)
        regions = []
        for r in self.store.load_regions(case_id):
            geometry = shapely.wkt.loads(r.geometry_wkt)
            if geometry.geom_type in ("Polygon", "MultiPolygon") and not geometry.is_empty:
                regions.append(Region(kind=RegionKind(r.kind), geometry=geometry, name=r.name, author=r.author,
                                      id=r.id, extra=r.extra))
        self._suspend_save = True
        try:
            self.regions.reset(regions)
        finally:
            self._suspend_save = False
        from core.analysis import close_interrupted

        # Runs left "running" by a crashed or killed HoechstScore would block signing for ever.
        self.interrupted = [] if case.is_signed else close_interrupted(self.store, case_id)
        # The stored scores first: setting the cells re-scores, and saves only what differs from them.
        stored = self.store.load_scores(case_id)
        self.scores = stored[-1].result if stored else None
        done = [a for a in self.store.list_analyses(case_id) if str(a.status) == "finished"]
        if done:
            a = max(done, key=lambda a: (a.finished_at or a.started_at, a.id))
            self.set_cells(self.store.load_cells(a.id), {"id": a.id, "model_name": a.model_name,
                                                         "model_sha256": a.model_sha256, "summary": a.summary or {}})
        analyses = sorted(self.store.list_analyses(case_id), key=lambda a: a.id)
        channels = [(a.parameters.get("engine") or {}).get("channel") for a in analyses]
        self.channel = next((c for c in reversed(channels) if isinstance(c, str)), None)
        self.scores_changed.emit()

    def _show(self, case: CaseRecord, record: SlideRecord, slide: Any) -> None:
        self.close_case()
        self.case, self.slide_record, self.slide = case, record, slide
        w, h = slide.dimensions
        mx, my = slide.require_mpp()
        self.regions = RegionSet(bounds_um=(w * mx, h * my))
        self.regions.changed.connect(self._on_regions_changed)
        self.case_changed.emit()
        self.regions_changed.emit()
        self.cells_changed.emit()
        self.scores_changed.emit()

    def close_case(self) -> None:
        if self.slide is not None:
            self.slide.close()
        self.case = self.slide_record = self.slide = None
        self.cells, self.scores, self.analysis, self.cohort = None, None, {}, None
        self.channel = None
        self.regions = RegionSet()

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

    def import_geojson(self, path: str | Path) -> list[str]:
        from core.regions import read_regions_geojson

        self.check_editable()
        found = read_regions_geojson(path, self.slide.require_mpp(), bounds_um=self.regions.bounds_um)
        return found.warnings + self.regions.reset([*self.regions, *found.regions])

    def export_geojson(self, path: str | Path) -> Path:
        from core.regions import write_regions_geojson

        return write_regions_geojson(list(self.regions), path, self.slide.require_mpp())

    # --- cells and scores -------------------------------------------------------------------------
    def set_cells(self, cells: pd.DataFrame, analysis: dict[str, Any]) -> None:
        """Show an analysis's cells; a case without a Tissue region gets the tissue it found (so
        the derived IM is clipped to tissue), then everything is rescored."""
        from core.analysis import adopt_detected_tissue

        self.cells, self.analysis = cells, analysis
        self.cells_changed.emit()
        if not self.read_only and self.slide is not None and self.slide.is_calibrated:
            adopt_detected_tissue(self.regions, analysis.get("summary") or {}, self.slide.require_mpp(),
                                  author=self.store.user)
        self.rescore()

    def export_cells_csv(self, path: str | Path) -> Path:
        from core.cells import write_cells_csv

        if self.cells is None:
            raise StoreError("There are no cells yet: run the analysis first.")
        path = write_cells_csv(self.cells, path)
        table = pd.read_csv(path)
        table["region"] = self.cell_regions()
        table.to_csv(path, index=False, float_format="%.4f")
        return path

    def cell_regions(self) -> list[str]:
        """Per cell, the scored region its centre lies in, in the words of the report: "CT", "IM",
        "Excluded" (inside an exclusion), "Tumour" (tumour without CT/IM) or "" (none)."""
        import numpy as np
        import shapely

        cells = self.cells if self.cells is not None else pd.DataFrame({"x_um": [], "y_um": []})
        x, y = cells["x_um"].to_numpy(float), cells["y_um"].to_numpy(float)
        out = np.full(len(cells), "", dtype=object)
        for kind, label in ((RegionKind.TUMOUR, "Tumour"), (RegionKind.INVASIVE_MARGIN, "IM"),
                            (RegionKind.TUMOUR_CENTRE, "CT"), (RegionKind.EXCLUSION, "Excluded")):
            parts = [r.geometry for r in self.regions if r.kind is kind]
            if parts:  # later kinds win: CT/IM over the whole tumour, exclusions over everything
                out[shapely.contains_xy(shapely.union_all(parts), x, y)] = label
        return list(out)

    def reference_cohort(self) -> Any:
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
        return cohort_from_store(self.store, exclude_accession=self.case.accession if self.case else None)

    def rescore(self) -> None:
        """Score the cells in the regions against the reference cohort; store when editable."""
        from core.analysis import score_and_record

        if self.cells is None or self.case is None or not self.regions.of_kind(RegionKind.TUMOUR) and not (
            self.regions.of_kind(RegionKind.TUMOUR_CENTRE) or self.regions.of_kind(RegionKind.INVASIVE_MARGIN)
        ):
            return
        self.cohort = self.reference_cohort()
        recorded = score_and_record(
            self.store, self.case.id, self.cells, self.regions, self.cohort,
            self.im_half_width_um, model_name=self.analysis.get("model_name"),
            model_sha256=self.analysis.get("model_sha256"), analysis_id=self.analysis.get("id"),
            editable=not self.read_only, previous=self.scores or {})
        self.score_warnings = list(recorded.scores.warnings)
        self.scores = recorded.result
        self.scores_changed.emit()

    def analysis_parameters(self) -> dict[str, Any]:
        """Provenance the app adds to an analysis record: the pixel size and where it came from,
        and the nuclear channel read (the engine parameters are added by the job)."""
        record = self.slide_record
        mpp = list(self.slide.require_mpp()) if self.slide is not None else None
        source = (record.mpp_source if record is not None else None) or "file"
        return {"pixel_size": {"mpp_um": mpp, "source": source},
                "nuclear_channel": self.channel or "found by name (Hoechst/DAPI)"}

    # --- case actions ------------------------------------------------------------------------------
    def sign(self, username: str, secret: str, meaning: str) -> None:
        """Sign the open case as lab user ``username`` (PIN checked by the store)."""
        from core.analysis import close_interrupted

        close_interrupted(self.store, self.case.id)  # type: ignore[union-attr]
        self.case = self.store.sign_as(self.case.id, username, secret, meaning)  # type: ignore[union-attr]
        self.case_changed.emit()

    def update_patient(self, patient_id: str, patient_name: str, birth_date: str) -> None:
        """Save the patient fields of the open draft (audited)."""
        self.check_editable()
        self.case = self.store.update_case(self.case.id, patient_id=patient_id,  # type: ignore[union-attr]
                                           patient_name=patient_name, patient_birth_date=birth_date)
        self.case_changed.emit()

    def versions(self) -> list[CaseRecord]:
        return self.store.case_versions(self.case.id) if self.case is not None else []

    def audit_log(self) -> tuple[list[Any], dict[int, int]]:
        """Audit rows of every version of the open case, oldest first, and case id -> version."""
        versions = self.versions()
        entries = [e for v in versions for e in self.store.audit_entries(v.id)]
        return sorted(entries, key=lambda e: e.id), {v.id: v.version for v in versions}

    def new_version(self) -> None:
        new = self.store.new_version(self.case.id)  # type: ignore[union-attr]
        self.open_case(new.id)

    def set_reference(self, flag: bool) -> None:
        self.case = self.store.set_reference(self.case.id, flag)  # type: ignore[union-attr]
        self.case_changed.emit()

    def render_report(self, settings: Any) -> bytes:
        from core.report import render_report
        from core.report.from_store import report_data_from_store

        return render_report(report_data_from_store(self.store, self.case.id), settings)  # type: ignore[union-attr]

    def save_report(self, pdf: bytes, path: str | Path) -> Path:
        path = Path(path)
        path.write_bytes(pdf)
        if not self.read_only:
            self.store.save_report(self.case.id, pdf=pdf, path=path)  # type: ignore[union-attr]
        return path
