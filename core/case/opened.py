"""The open case: one frozen record of what a stored case holds, read in one place.

QuPath's ``ImageData`` is one typed object for an open image that its GUI, scripts and batch
runner all hold. Here that object is :class:`OpenCase` (case, slide record, open slide, regions,
latest finished analysis, its cells, the latest scores), built by :func:`open_case` and held by
the app's CaseSession and the report alike. The small readers it is built from (the newest
finished analysis, the stored regions as Regions) are the only ones: the demo and the cohort
runner use them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import shapely.wkt

from core.case.recording import close_interrupted
from core.engine.summary import AnalysisSummary
from core.errors import StoreError
from core.regions import Region, RegionKind, RegionSet
from core.store.records import AnalysisRecord, AnalysisStatus, CaseRecord, ScoreRecord, SlideRecord

if TYPE_CHECKING:
    import pandas as pd

    from core.scores import CaseScores
    from core.slides import Slide
    from core.store import CaseStore


def analysis_summary(analysis: AnalysisRecord | None) -> AnalysisSummary:
    """A stored analysis's summary as the engine's typed record (all defaults for None or none stored)."""
    return AnalysisSummary.from_dict(analysis.summary or {}) if analysis is not None else AnalysisSummary()


def finished_analyses(store: CaseStore, case_id: int) -> list[AnalysisRecord]:
    """The finished analyses of a case, in the order they were started."""
    return [a for a in store.list_analyses(case_id) if a.status is AnalysisStatus.FINISHED]


def newest_finished(analyses: list[AnalysisRecord]) -> AnalysisRecord | None:
    """The newest finished one of ``analyses`` (by finishing time, then id); None when none is."""
    done = [a for a in analyses if a.status is AnalysisStatus.FINISHED]
    return max(done, key=lambda a: (a.finished_at or a.started_at, a.id)) if done else None


def latest_finished_analysis(store: CaseStore, case_id: int) -> AnalysisRecord | None:
    """The newest finished analysis of a case (by finishing time, then id); None when none is."""
    return newest_finished(store.list_analyses(case_id))


def stored_regions(store: CaseStore, case_id: int) -> list[Region]:
    """The regions stored for a case as Regions (every field the store keeps: kind, geometry, name,
    author, id, extra). Stored geometries that are not areas (or empty) are left out."""
    out = []
    for r in store.load_regions(case_id):
        geometry = shapely.wkt.loads(r.geometry_wkt)
        if geometry.geom_type in ("Polygon", "MultiPolygon") and not geometry.is_empty:
            out.append(Region(kind=RegionKind(r.kind), geometry=geometry, name=r.name, author=r.author,
                              id=r.id, extra=r.extra))
    return out


def analysis_channel(analyses: list[AnalysisRecord]) -> str | None:
    """The nuclear channel the newest of ``analyses`` that names one read (None: found by name)."""
    for a in sorted(analyses, key=lambda a: a.id, reverse=True):
        engine = (a.parameters or {}).get("engine")
        channel = engine.get("channel") if isinstance(engine, dict) else None
        if isinstance(channel, str):
            return channel
    return None


@dataclass(frozen=True)
class OpenCase:
    """What a stored case holds, as one record (the fields are read once, when it is opened).

    slide_record: the slide of the latest finished analysis, else the case's first slide;
    slide: that slide opened (None when opened without it, see :func:`open_case`);
    regions: the stored regions (bounded by the slide when it is open); analysis: the latest
    finished analysis (None: not analysed yet) and ``cells`` its cells; score_record/scores: the
    latest stored scores, raw and typed; channel: the nuclear channel the newest analysis read;
    interrupted: analyses found left running by a stopped process and closed as failed now.
    """

    case: CaseRecord
    slide_record: SlideRecord
    slide: Slide | None
    regions: RegionSet
    analysis: AnalysisRecord | None
    cells: pd.DataFrame | None
    score_record: ScoreRecord | None
    scores: CaseScores | None
    channel: str | None = None
    interrupted: tuple[int, ...] = ()

    @property
    def summary(self) -> AnalysisSummary:
        """The latest finished analysis's stored summary, typed (all defaults when there is none)."""
        return analysis_summary(self.analysis)


def open_case(store: CaseStore, case_id: int, *, with_slide: bool = True,
              close_stale_runs: bool = False) -> OpenCase:
    """Read case ``case_id`` from ``store`` as an :class:`OpenCase`.

    with_slide: open the slide file too (the app views it; the report reads its thumbnail itself
    and draws without it when the file has moved). close_stale_runs: first close the analyses a
    crashed or killed process left "running" (:func:`core.case.recording.close_interrupted`; they
    would block signing for ever); never on a signed case, which is read only.
    Raises StoreError when the case has no slide; SlideError when its file cannot be opened.
    """
    from core.scores import CaseScores

    case = store.get_case(case_id)
    slides = store.list_slides(case_id)
    if not slides:
        raise StoreError(f"Case {case.accession} has no slide: open a slide to add one.")
    interrupted = tuple(close_interrupted(store, case_id)) if close_stale_runs and not case.is_signed else ()
    analyses = store.list_analyses(case_id)  # read once: the latest finished one and the channel
    analysis = newest_finished(analyses)
    record = next((s for s in slides if analysis is not None and s.id == analysis.slide_id), slides[0])
    slide = None
    bounds = None
    if with_slide:
        from core.slides import open_slide

        slide = open_slide(record.path, mpp=record.mpp)
        if slide.is_calibrated:
            (w, h), (mx, my) = slide.dimensions, slide.require_mpp()
            bounds = (w * mx, h * my)
    try:
        regions = RegionSet(stored_regions(store, case_id), bounds_um=bounds)
        cells = store.load_cells(analysis.id) if analysis is not None else None
        stored = store.load_scores(case_id)
    except BaseException:
        if slide is not None:
            slide.close()
        raise
    last = stored[-1] if stored else None
    return OpenCase(
        case=case, slide_record=record, slide=slide, regions=regions, analysis=analysis, cells=cells,
        score_record=last, scores=CaseScores.from_dict(last.result) if last is not None else None,
        channel=analysis_channel(analyses), interrupted=interrupted,
    )
