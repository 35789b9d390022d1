"""The case store: cases, slides, analyses, cells, regions, scores, reports and their audit log.

::

    from core.store import CaseStore
    with CaseStore.open(url) as store:          # url None: cases.db in the user's data folder
        case = store.create_case("S24-1234", patient_id="P-77")
        slide = store.add_slide(case.id, "/slides/S24-1234.czi", mpp=(0.227, 0.227))
        run = store.start_analysis(case.id, slide.id, model_name=..., model_sha256=..., parameters={},
                                   device="cuda", precision="fp16")
        store.save_cells(run.id, cells)          # cell table, CONTRACTS.md "Cell table"
        store.finish_analysis(run.id, summary={"n_cells": len(cells)})
        store.sign_case(case.id, "Dr Jones")     # final from now on; store.new_version(case.id) to amend

SQLAlchemy 2 ORM (:mod:`.models`), schema created and upgraded on open by the Alembic migrations
shipped in ``migrations/`` (:mod:`.engine`), SQLite by default and any SQLAlchemy URL otherwise.
Every method is one transaction with its audit row (:mod:`.audit`); results are frozen records
(:mod:`.records`); cells are column blobs (:mod:`.cells_codec`). Errors are
:class:`core.errors.StoreError`.
"""

from core.store.engine import default_url
from core.store.records import (
    AnalysisRecord,
    AnalysisStatus,
    AuditEntry,
    CaseRecord,
    CaseStatus,
    RegionData,
    RegionRecord,
    ReportRecord,
    ScoreRecord,
    SlideRecord,
    UserRecord,
)
from core.store.store import CaseStore

__all__ = [
    "AnalysisRecord",
    "AnalysisStatus",
    "AuditEntry",
    "CaseRecord",
    "CaseStatus",
    "CaseStore",
    "RegionData",
    "RegionRecord",
    "ReportRecord",
    "ScoreRecord",
    "SlideRecord",
    "UserRecord",
    "default_url",
]
