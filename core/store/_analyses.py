"""Slides, analyses and their cells, inside the caller's transaction (see :mod:`core.store._cases`).

Slides and analyses are shared between versions of a case, so they are never changed once final:
a slide row never, an analysis once it has left the ``running`` status. Cells can be saved only
while their analysis is running, which can only be in a draft case (signing waits for it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from core.errors import SlideError, StoreError
from core.fingerprint import SlideFingerprint, slide_fingerprint
from core.store import audit
from core.store._cases import load_case, require_draft, touch
from core.store.models import Analysis, CaseAnalysis, CaseSlide, CellChunk, Slide, utcnow
from core.store.records import AnalysisRecord, AnalysisStatus, SlideRecord


def read_fingerprint(path: str | Path) -> SlideFingerprint:
    """:func:`core.fingerprint.slide_fingerprint`, with a StoreError (the store's callers expect one)."""
    try:
        return slide_fingerprint(path)
    except SlideError as err:
        raise StoreError(f"Cannot read slide {Path(path).name} to fingerprint it: {err.reason}.") from err


def slide_record(slide: Slide) -> SlideRecord:
    mpp = None if slide.mpp_x is None or slide.mpp_y is None else (slide.mpp_x, slide.mpp_y)
    return SlideRecord(
        id=slide.id, path=slide.path, fingerprint=slide.fingerprint, size_bytes=slide.size_bytes, mpp=mpp,
        channels=tuple(slide.channels), is_synthetic=slide.is_synthetic, added_at=slide.added_at,
        mpp_source=slide.mpp_source,
    )


def analysis_record(a: Analysis) -> AnalysisRecord:
    return AnalysisRecord(
        id=a.id, case_id=a.case_id, slide_id=a.slide_id, model_name=a.model_name,
        model_sha256=a.model_sha256, parameters=dict(a.parameters), device=a.device, precision=a.precision,
        status=AnalysisStatus(a.status), started_at=a.started_at, finished_at=a.finished_at,
        summary=None if a.summary is None else dict(a.summary), n_cells=a.n_cells,
    )


def _check_mpp(mpp: tuple[float, float] | None, path: str) -> None:
    if mpp is not None and not all(isinstance(v, int | float) and math.isfinite(v) and v > 0 for v in mpp):
        raise StoreError(f"Pixel size {mpp} of slide {Path(path).name} is invalid; give (x, y) µm > 0 or None.")


def add_slide(
    session: Session, who: str, case_id: int, path: str, fingerprint: str, size_bytes: int,
    mpp: tuple[float, float] | None, channels: list[str], is_synthetic: bool, mpp_source: str | None = None,
) -> SlideRecord:
    case = load_case(session, case_id, for_update=True)
    require_draft(case, f"adding slide {Path(path).name}")
    _check_mpp(mpp, path)
    mpp_x, mpp_y = (None, None) if mpp is None else (float(mpp[0]), float(mpp[1]))
    wanted = (size_bytes, mpp_x, mpp_y, channels, is_synthetic)
    candidates = session.scalars(select(Slide).where(Slide.fingerprint == fingerprint, Slide.path == path))
    slide = next(
        (s for s in candidates if (s.size_bytes, s.mpp_x, s.mpp_y, list(s.channels), s.is_synthetic) == wanted),
        None,
    )
    if slide is None:
        slide = Slide(
            path=path, fingerprint=fingerprint, size_bytes=size_bytes, mpp_x=mpp_x, mpp_y=mpp_y,
            channels=channels, is_synthetic=is_synthetic, added_at=utcnow(), mpp_source=mpp_source,
        )
        session.add(slide)
        session.flush()
    if session.get(CaseSlide, (case.id, slide.id)) is None:
        session.add(CaseSlide(case_id=case.id, slide_id=slide.id))
        touch(case)
        record = slide_record(slide)
        audit.record(session, who, "add", "slide", slide.id, case.id, None, record)
    return slide_record(slide)


def list_slides(session: Session, case_id: int) -> list[SlideRecord]:
    load_case(session, case_id)
    query = select(Slide).join(CaseSlide).where(CaseSlide.case_id == case_id).order_by(Slide.id)
    return [slide_record(s) for s in session.scalars(query)]


def get_slide(session: Session, slide_id: int) -> SlideRecord:
    slide = session.get(Slide, slide_id)
    if slide is None:
        raise StoreError(f"No slide with id {slide_id} in the case database.")
    return slide_record(slide)


def start_analysis(
    session: Session, who: str, case_id: int, slide_id: int, model_name: str, model_sha256: str,
    parameters: Mapping[str, object], device: str, precision: str,
) -> AnalysisRecord:
    case = load_case(session, case_id, for_update=True)
    require_draft(case, "starting an analysis")
    if session.get(CaseSlide, (case.id, slide_id)) is None:
        raise StoreError(f"Slide {slide_id} is not part of case {case.accession}; add the slide first.")
    analysis = Analysis(
        case_id=case.id, slide_id=slide_id, model_name=model_name, model_sha256=model_sha256,
        parameters=audit.jsonable_object(parameters, "the analysis parameters"), device=device, precision=precision,
        status=AnalysisStatus.RUNNING, started_at=utcnow(), finished_at=None, summary=None, n_cells=None,
    )
    session.add(analysis)
    session.flush()
    session.add(CaseAnalysis(case_id=case.id, analysis_id=analysis.id))
    touch(case)
    record = analysis_record(analysis)
    audit.record(session, who, "start", "analysis", analysis.id, case.id, None, record)
    return record


def _running_analysis(session: Session, analysis_id: int, doing: str) -> Analysis:
    analysis = session.get(Analysis, analysis_id, with_for_update=True)
    if analysis is None:
        raise StoreError(f"No analysis with id {analysis_id} in the case database.")
    if analysis.status != AnalysisStatus.RUNNING:
        raise StoreError(
            f"Analysis {analysis_id} is {analysis.status} and final; {doing} needs a running analysis. "
            "Start a new analysis instead."
        )
    require_draft(load_case(session, analysis.case_id, for_update=True), doing)
    return analysis


def finish_analysis(
    session: Session, who: str, analysis_id: int, status: AnalysisStatus, summary: Mapping[str, object] | None
) -> AnalysisRecord:
    if status == AnalysisStatus.RUNNING:
        raise StoreError("finish_analysis needs a final status: finished, failed or cancelled.")
    analysis = _running_analysis(session, analysis_id, "finishing it")
    before = analysis_record(analysis)
    analysis.status = status
    analysis.finished_at = utcnow()
    analysis.summary = None if summary is None else audit.jsonable_object(summary, "the analysis summary")
    record = analysis_record(analysis)
    audit.record(session, who, "finish", "analysis", analysis.id, analysis.case_id, before, record)
    return record


def list_analyses(session: Session, case_id: int) -> list[AnalysisRecord]:
    load_case(session, case_id)
    query = select(Analysis).join(CaseAnalysis).where(CaseAnalysis.case_id == case_id).order_by(Analysis.id)
    return [analysis_record(a) for a in session.scalars(query)]


def get_analysis(session: Session, analysis_id: int) -> AnalysisRecord:
    analysis = session.get(Analysis, analysis_id)
    if analysis is None:
        raise StoreError(f"No analysis with id {analysis_id} in the case database.")
    return analysis_record(analysis)


def save_cells(
    session: Session, who: str, analysis_id: int, chunks: list[tuple[int, bytes, int]]
) -> AnalysisRecord:
    """Replaces the cells of a running analysis with ``chunks`` (from ``cells_codec.encode_chunks``)."""
    analysis = _running_analysis(session, analysis_id, "saving cells")
    slide = session.get(Slide, analysis.slide_id)
    if slide is None or slide.mpp_x is None:
        raise StoreError(
            f"Slide {analysis.slide_id} of analysis {analysis_id} has no pixel size; cells need a calibrated slide."
        )
    before = {"n_cells": analysis.n_cells}
    session.execute(delete(CellChunk).where(CellChunk.analysis_id == analysis.id))
    if chunks:
        session.execute(
            insert(CellChunk),
            [
                {"analysis_id": analysis.id, "chunk_index": i, "n_cells": n, "crc32": crc, "data": blob}
                for i, (n, blob, crc) in enumerate(chunks)
            ],
        )
    analysis.n_cells = sum(n for n, _, _ in chunks)
    after = {"n_cells": analysis.n_cells, "chunks": len(chunks)}
    audit.record(session, who, "save_cells", "analysis", analysis.id, analysis.case_id, before, after)
    return analysis_record(analysis)


def cell_chunks(session: Session, analysis_id: int) -> tuple[tuple[float, float], list[tuple[int, bytes, int]]]:
    """The slide mpp and the stored chunks of an analysis, in order."""
    analysis = session.get(Analysis, analysis_id)
    if analysis is None:
        raise StoreError(f"No analysis with id {analysis_id} in the case database.")
    slide = session.get(Slide, analysis.slide_id)
    if slide is None or slide.mpp_x is None or slide.mpp_y is None:
        raise StoreError(f"Slide {analysis.slide_id} of analysis {analysis_id} has no pixel size.")
    rows = session.execute(
        select(CellChunk.n_cells, CellChunk.data, CellChunk.crc32)
        .where(CellChunk.analysis_id == analysis_id)
        .order_by(CellChunk.chunk_index)
    ).all()
    return (slide.mpp_x, slide.mpp_y), [(n, data, crc) for n, data, crc in rows]
