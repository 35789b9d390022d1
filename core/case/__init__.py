"""The case layer: every workflow on one stored case, written once and typed.

The app, the demo pipeline, the report and the cohort runner all work on cases through here:

- :func:`open_case` -> :class:`OpenCase`: the case, its slide, regions, latest finished analysis,
  cells and scores as one frozen record (``core.case.opened``);
- :func:`recording`: start, save cells, finish or fail one stored analysis (``core.case.recording``),
  and :func:`close_interrupted` for the runs a crash left "running";
- :func:`analyse_case_slide`: load the model, analyse the slide, record it (``core.case.run``);
- :func:`score_and_record` and :func:`cell_regions` / :func:`write_case_cells_csv`: the scores and
  the per-cell region on the same CT/IM (``core.scores.drawn_or_derived_ct_im``) (``core.case.scoring``);
- :func:`adopt_detected_tissue`: the analysis's tissue as the case's Tissue region (``core.case.tissue``).

No Qt here: the app's CaseSession is a thin QObject over this layer.
"""

from core.case.opened import (
    OpenCase,
    analysis_channel,
    finished_analyses,
    latest_finished_analysis,
    open_case,
    stored_regions,
)
from core.case.recording import (
    INTERRUPTED,
    Recording,
    close_interrupted,
    jsonable,
    jsonable_dict,
    recording,
    runner_alive,
    runner_identity,
)
from core.case.run import RecordedAnalysis, analyse_and_record, analyse_case_slide, engine_parameters
from core.case.scoring import RecordedScores, cell_regions, score_and_record, write_case_cells_csv
from core.case.tissue import adopt_detected_tissue, detected_tissue

__all__ = [
    "INTERRUPTED",
    "OpenCase",
    "RecordedAnalysis",
    "RecordedScores",
    "Recording",
    "adopt_detected_tissue",
    "analyse_and_record",
    "analyse_case_slide",
    "analysis_channel",
    "cell_regions",
    "close_interrupted",
    "detected_tissue",
    "engine_parameters",
    "finished_analyses",
    "jsonable",
    "jsonable_dict",
    "latest_finished_analysis",
    "open_case",
    "recording",
    "runner_alive",
    "runner_identity",
    "score_and_record",
    "stored_regions",
    "write_case_cells_csv",
]
