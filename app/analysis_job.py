"""The app's analysis job: load the model, then core's analyse-and-record, as one generator.

:func:`core.analysis.analyse_and_record` does the work (its :class:`~core.engine.BlockDone`
progress carries each block's cells, which the view shows as they come); this only adds loading the
chosen model and the app's checkpoint folder, so an analysis interrupted by a crash resumes.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import platformdirs

from core.progress import CancelToken, Progress


@dataclass(frozen=True)
class AnalysisOutcome:
    """What a finished analysis left in the store."""

    analysis_id: int
    cells: pd.DataFrame
    model_name: str
    model_sha256: str
    summary: dict[str, Any]


def checkpoint_dir() -> Path:
    """Where unfinished analyses keep their finished blocks (per slide, model and parameters)."""
    return Path(platformdirs.user_cache_dir("HoechstScore", appauthor=False)) / "checkpoints"


def engine_params(channel: str | None = None) -> Any:
    """The engine parameters the app analyses with; ``channel``: the nuclear channel the user chose
    (None: the model card's role, found by name).

    One core is left to the event loop: with every core busy in torch the UI stalled for 0.7 s.
    """
    from core.engine import AnalysisParams

    return AnalysisParams(torch_threads=max(1, (os.cpu_count() or 2) - 1), channel=channel)


def analysis_job(
    store: Any, case_id: int, slide_id: int, slide: Any, model_dir: Path, *, device: str | None,
    precision: str | None, cancel: CancelToken, channel: str | None = None,
    provenance: dict[str, Any] | None = None,
) -> Generator[Progress, None, AnalysisOutcome]:
    """Analyse ``slide`` (an open core Slide) with the model in ``model_dir`` and store the result.

    channel: the nuclear channel to read; provenance: recorded beside the engine parameters
    (pixel size and its source, see ``CaseSession.analysis_parameters``).
    """
    import dataclasses

    from app.workers import freeze_long_lived
    from core.analysis import analyse_and_record, jsonable
    from core.errors import CoreError
    from core.models import load_card
    from core.models.inference import load_for_inference

    try:
        name = f" “{load_card(model_dir).name}”"
    except CoreError:  # load_model below says what is wrong with the folder
        name = ""
    yield Progress(0, 0, f"Loading the model{name}…")
    params = engine_params(channel)
    # the runtime rule of `core analyse`, so the app and the CLI count the same cells on one computer
    model = load_for_inference(model_dir, device, precision, threads=params.torch_threads)
    freeze_long_lived()  # torch and the model are here for good: keep them out of full GC passes
    cancel.check()
    parameters = {"engine": jsonable(dataclasses.asdict(params)), **(provenance or {})}
    recorded = yield from analyse_and_record(store, case_id, slide_id, slide, model, params, parameters=parameters,
                                             cancel=cancel, checkpoint_dir=checkpoint_dir())
    card = model.card
    summary = recorded.summary  # as stored: with the tissue mask the case's Tissue region comes from
    return AnalysisOutcome(recorded.analysis_id, recorded.result.cells, card.name, card.weights_sha256, summary)
