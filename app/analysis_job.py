"""The app's analysis job: core's load-analyse-record (:func:`core.case.analyse_case_slide`) with the
app's engine parameters and checkpoint folder.

The work is core's (its :class:`~core.engine.BlockDone` progress carries each block's cells, which
the view shows as they come); this only picks what is the app's: the engine parameters (a core
left to the event loop), the checkpoint folder in the user's cache (so an analysis interrupted by
a crash resumes), and keeping torch out of full GC passes once the model is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs

from core.case import RecordedAnalysis
from core.progress import CancelToken, Progress

if TYPE_CHECKING:
    from core.engine import AnalysisParams
    from core.models.runtime import LoadedModel
    from core.slides import Slide
    from core.store import CaseStore

#: What a finished analysis job returns: the stored analysis and the engine's result.
AnalysisOutcome = RecordedAnalysis


def checkpoint_dir() -> Path:
    """Where unfinished analyses keep their finished blocks (per slide, model and parameters)."""
    return Path(platformdirs.user_cache_dir("HoechstScore", appauthor=False)) / "checkpoints"


def engine_params(channel: str | None = None) -> AnalysisParams:
    """The engine parameters the app analyses with; ``channel``: the nuclear channel the user chose
    (None: the model card's role, found by name).

    One core is left to the event loop: with every core busy in torch the UI stalled for 0.7 s.
    """
    from core.engine import AnalysisParams

    return AnalysisParams(torch_threads=max(1, (os.cpu_count() or 2) - 1), channel=channel)


def _freeze(_model: LoadedModel) -> None:
    from app.workers import freeze_long_lived

    freeze_long_lived()  # torch and the model are here for good: keep them out of full GC passes


def analysis_job(
    store: CaseStore, case_id: int, slide_id: int, slide: Slide, model_dir: Path, *, device: str | None,
    precision: str | None, cancel: CancelToken, channel: str | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> Generator[Progress, None, RecordedAnalysis]:
    """Analyse ``slide`` (an open core Slide) with the model in ``model_dir`` and store the result.

    channel: the nuclear channel to read; provenance: recorded beside the engine parameters
    (pixel size and its source, see ``CaseSession.analysis_parameters``).
    """
    from core.case import analyse_case_slide

    return (yield from analyse_case_slide(
        store, case_id, slide_id, slide, model_dir, engine_params(channel), device=device, precision=precision,
        provenance=provenance, cancel=cancel, checkpoint_dir=checkpoint_dir(), on_loaded=_freeze))
