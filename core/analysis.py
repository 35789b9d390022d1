"""Run the engine on a case's slide and record it in the case store, as one job.

The app, the demo pipeline and the CLI all do the same sequence, so it lives here once: open an
analysis record, run :func:`core.engine.analyse_slide` (its block progress passes through, so a
viewer can draw cells as they come), save the cells, and close the record as finished, or as
cancelled/failed with the reason, so a stored analysis is never left "running" by an error.

A crash, a kill or a power cut can still leave one "running", and a running analysis blocks
signing. So each analysis records which process runs it (host, pid and the process's start time,
under ``parameters["runner"]``), and :func:`close_interrupted` marks as failed those whose process
on this computer has stopped. Runs on other computers (a shared PostgreSQL store) are left alone:
from here one cannot tell a crashed run from a slow one.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import Cancelled
from core.progress import CancelToken, Progress


def jsonable(value: Any) -> Any:
    """Plain JSON values from engine summaries (numpy scalars, tuples, paths)."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


@dataclass(frozen=True)
class RecordedAnalysis:
    """The stored analysis id, the engine's full result (cells, rasters, summary) and the summary
    as stored (the engine's plus what a report needs, e.g. the tissue mask)."""

    analysis_id: int
    result: Any
    summary: dict[str, Any] = field(default_factory=dict)


def analyse_and_record(
    store: Any,
    case_id: int,
    slide_id: int,
    slide: Any,
    model: Any,
    params: Any,
    *,
    parameters: dict[str, Any] | None = None,
    cancel: CancelToken | None = None,
    checkpoint_dir: Path | None = None,
) -> Generator[Progress, None, RecordedAnalysis]:
    """Analyse ``slide`` (an open Slide) with ``model`` (a LoadedModel) and store cells and summary.

    ``parameters`` is what the store records as the analysis parameters (default: the engine
    parameters). The summary also carries what a later report needs (model card, tissue mask).
    ``checkpoint_dir``: finished blocks are kept there while the run lasts, so a crashed or
    cancelled run resumes; they are removed once the analysis is stored.
    """
    import dataclasses

    from core.engine import analyse_slide
    from core.tissue_mask import analysis_summary_extras

    card = model.card
    recorded = dict(parameters) if parameters is not None else {"engine": jsonable(dataclasses.asdict(params))}
    recorded["runner"] = runner_identity()
    run = store.start_analysis(case_id, slide_id, model_name=card.name, model_sha256=card.weights_sha256,
                               parameters=recorded, device=str(model.device), precision=str(model.precision))
    try:
        result = yield from analyse_slide(slide, model, params, cancel=cancel, checkpoint_dir=checkpoint_dir)
        store.save_cells(run.id, result.cells)
    except BaseException as err:
        status = "cancelled" if isinstance(err, KeyboardInterrupt | Cancelled) else "failed"
        store.finish_analysis(run.id, status=status, summary={"error": str(err) or type(err).__name__})
        raise
    summary = {**result.summary.to_dict(), **analysis_summary_extras(result, card)}
    store.finish_analysis(run.id, summary=jsonable(summary))
    key = result.summary.checkpoint_key
    if checkpoint_dir is not None and key:
        # The checkpoint only serves to resume an interrupted run; the store now holds the cells.
        shutil.rmtree(Path(checkpoint_dir) / str(key), ignore_errors=True)
    return RecordedAnalysis(run.id, result, jsonable(summary))


@dataclass(frozen=True)
class RecordedScores:
    """Scores of a case (:class:`core.scores.CaseScores`), their JSON form, and whether a new row was stored."""

    scores: Any
    result: dict[str, Any]
    saved: bool


def score_and_record(
    store: Any,
    case_id: int,
    cells: Any,
    regions: Any,
    cohort: Any,
    im_half_width_um: float,
    model_name: str | None = None,
    model_sha256: str | None = None,
    analysis_id: int | None = None,
    editable: bool = True,
    previous: dict[str, Any] | None = None,
) -> RecordedScores:
    """Score ``cells`` in ``regions`` against ``cohort`` and store the result only if it changed.

    Both the app (after every region edit and on opening a case) and the demo pipeline score a
    case this way. Storing only a *changed* result matters: every stored row is a version in the
    audit trail, and re-opening a case must not pile up identical rows. ``previous`` is the last
    result the caller knows of (the app keeps it in memory); when None, the newest stored one is
    read. The model's name and sha256 and the stored analysis the cells came from go into the
    provenance; ``editable`` False (a signed case) never writes.
    """
    from core.scores import score_case

    scores = score_case(cells, regions, cohort, im_half_width_um=im_half_width_um,
                        model_name=model_name, model_sha256=model_sha256)
    result = jsonable(scores.to_dict())
    if previous is None:
        stored = store.load_scores(case_id)
        previous = stored[-1].result if stored else None
    saved = editable and result != previous
    if saved:
        store.save_scores(case_id, result, provenance=jsonable(scores.provenance.to_dict()),
                          analysis_id=analysis_id)
    return RecordedScores(scores, result, saved)


def runner_identity() -> dict[str, Any]:
    """This process as an analysis records it: host name, pid and the process's start time.

    The start time tells a live run from a new process that happens to reuse a dead run's pid.
    """
    import psutil

    return {"host": socket.gethostname(), "pid": os.getpid(), "process_started": psutil.Process().create_time()}


def runner_alive(runner: dict[str, Any]) -> bool | None:
    """Whether the process in ``runner`` (:func:`runner_identity`) still runs; None if it can't be told.

    None for a run started on another computer, or recorded without a runner (older analyses).
    """
    import psutil

    if not isinstance(runner, dict) or runner.get("host") != socket.gethostname() or "pid" not in runner:
        return None
    try:
        process = psutil.Process(int(runner["pid"]))
        return abs(process.create_time() - float(runner.get("process_started", 0.0))) < 1.0
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:  # another user's live process
        return True


INTERRUPTED = ("Interrupted: the program running it (process {pid} on {host}) stopped before it finished. "
               "Run the analysis again: it resumes from the blocks it had finished.")


def close_interrupted(store: Any, case_id: int) -> list[int]:
    """Mark as failed the analyses of ``case_id`` left "running" by a process that has stopped.

    Only runs recorded by a process on this computer are judged (:func:`runner_alive`); the
    reason stored says what happened and what to do. Returns the ids closed, for the caller to
    tell the user. A signed case cannot hold a running analysis (signing waits for it).
    """
    closed = []
    for analysis in store.list_analyses(case_id):
        if str(analysis.status) != "running":
            continue
        runner = (analysis.parameters or {}).get("runner")
        if runner_alive(runner) is False:
            store.finish_analysis(analysis.id, status="failed",
                                  summary={"error": INTERRUPTED.format(pid=runner["pid"], host=runner["host"])})
            closed.append(analysis.id)
    return closed


def detected_tissue(summary: dict[str, Any], mpp: tuple[float, float], author: str = "HoechstScore") -> Any:
    """The tissue a stored analysis found (its summary's ``tissue_mask``) as a "Tissue" Region in
    slide µm, or None when the summary has no mask or the mask no tissue."""
    from core.regions.raster import tissue_region
    from core.tissue_mask import decode_mask

    if "tissue_mask" not in summary:
        return None
    mask, downsample = decode_mask(summary["tissue_mask"])
    return tissue_region(mask, (downsample * mpp[0], downsample * mpp[1]), author=author)


def adopt_detected_tissue(regions: Any, summary: dict[str, Any], mpp: tuple[float, float],
                          author: str = "HoechstScore") -> list[str]:
    """Give a region set without a Tissue region the tissue the analysis found, and re-derive CT/IM
    that were derived (so the invasive margin is clipped to tissue). Returns the warnings of the
    re-derivation; does nothing (returns []) when a Tissue region exists or none was found.

    Why here and not in the engine: a lab may draw the tissue itself, and a drawn outline wins.
    """
    from core.regions import RegionKind

    if regions.of_kind(RegionKind.TISSUE):
        return []
    tissue = detected_tissue(summary, mpp, author)
    if tissue is None:
        return []
    width = regions.im_half_width_um
    regions.add(tissue)
    return regions.replace_ct_im_by_derived(width, author=author) if width is not None else []
