"""Load the model, analyse a case's slide, record it: the one path of the app and the demo.

:func:`analyse_case_slide` is what a front-end calls (it passes a progress sink, by iterating
the generator, and a cancel token); :func:`analyse_and_record` is its second half for a caller
that already holds a loaded model. The engine's block progress passes through, so a viewer can
draw cells as they come. The analysis is stored through :func:`core.case.recording.recording`.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.case.recording import jsonable_dict, recording
from core.jsontypes import JSONDict
from core.progress import CancelToken, Progress

if TYPE_CHECKING:
    import pandas as pd

    from core.engine import AnalysisParams, AnalysisResult
    from core.engine.summary import AnalysisSummary
    from core.models.runtime import LoadedModel
    from core.slides import Slide
    from core.store import CaseStore
    from core.store.records import AnalysisRecord


@dataclass(frozen=True)
class RecordedAnalysis:
    """A finished, stored analysis: its record as the store holds it (summary with what a report
    needs, e.g. the tissue mask) and the engine's full result (cells, rasters)."""

    record: AnalysisRecord
    result: AnalysisResult

    @property
    def analysis_id(self) -> int:
        return self.record.id

    @property
    def cells(self) -> pd.DataFrame:
        return self.result.cells

    @property
    def summary(self) -> AnalysisSummary:
        """The summary as stored (the engine's, plus the model card and the tissue mask)."""
        from core.case.opened import analysis_summary

        return analysis_summary(self.record)


def engine_parameters(params: AnalysisParams) -> JSONDict:
    """The engine parameters as an analysis stores them (also what decides whether one is re-used)."""
    return jsonable_dict(dataclasses.asdict(params))


def analyse_and_record(
    store: CaseStore,
    case_id: int,
    slide_id: int,
    slide: Slide,
    model: LoadedModel,
    params: AnalysisParams,
    *,
    parameters: Mapping[str, object] | None = None,
    cancel: CancelToken | None = None,
    checkpoint_dir: Path | None = None,
) -> Generator[Progress, None, RecordedAnalysis]:
    """Analyse ``slide`` with ``model`` and store cells and summary as one analysis of the case.

    ``parameters`` is what the store records as the analysis parameters (default: the engine
    parameters). The summary also carries what a later report needs (model card, tissue mask).
    ``checkpoint_dir``: finished blocks are kept there while the run lasts, so a crashed or
    cancelled run resumes; they are removed once the analysis is stored.
    """
    from core.engine import analyse_slide
    from core.tissue_mask import analysis_summary_extras

    card = model.card
    recorded = dict(parameters) if parameters is not None else {"engine": engine_parameters(params)}
    with recording(store, case_id, slide_id, model_name=card.name, model_sha256=card.weights_sha256,
                   parameters=recorded, device=str(model.device), precision=str(model.precision)) as run:
        result = yield from analyse_slide(slide, model, params, cancel=cancel, checkpoint_dir=checkpoint_dir)
        run.save_cells(result.cells, result.summary.classes)
        run.finish_with({**result.summary.to_dict(), **analysis_summary_extras(result, card)})
    key = result.summary.checkpoint_key
    if checkpoint_dir is not None and key:
        # The checkpoint only serves to resume an interrupted run; the store now holds the cells.
        shutil.rmtree(Path(checkpoint_dir) / str(key), ignore_errors=True)
    return RecordedAnalysis(store.get_analysis(run.analysis_id), result)


def analyse_case_slide(
    store: CaseStore,
    case_id: int,
    slide_id: int,
    slide: Slide,
    model_dir: Path,
    params: AnalysisParams,
    *,
    device: str | None = None,
    precision: str | None = None,
    provenance: Mapping[str, object] | None = None,
    cancel: CancelToken | None = None,
    checkpoint_dir: Path | None = None,
    on_loaded: Callable[[LoadedModel], None] | None = None,
) -> Generator[Progress, None, RecordedAnalysis]:
    """Load the model in ``model_dir``, analyse ``slide`` (an open Slide of the case) and record it.

    The model is loaded by the runtime rule of ``core analyse`` (core.models.inference), so the
    app, the demo and the CLI count the same cells on one computer. ``provenance`` is recorded
    beside the engine parameters (e.g. the pixel size and where it came from); ``on_loaded`` runs
    once the model is in memory (the app uses it to keep torch out of full GC passes).
    """
    from core.errors import CoreError
    from core.models import load_card
    from core.models.inference import load_for_inference

    cancel = cancel or CancelToken()
    try:
        name = f" “{load_card(model_dir).name}”"
    except CoreError:  # load_for_inference below says what is wrong with the folder
        name = ""
    yield Progress(0, 0, f"Loading the model{name}…")
    model = load_for_inference(model_dir, device, precision, threads=params.torch_threads)
    if on_loaded is not None:
        on_loaded(model)
    cancel.check()
    parameters = {"engine": engine_parameters(params), **(provenance or {})}
    return (yield from analyse_and_record(store, case_id, slide_id, slide, model, params, parameters=parameters,
                                          cancel=cancel, checkpoint_dir=checkpoint_dir))
