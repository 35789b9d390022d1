"""The life of a stored analysis: start, save cells, finish, or fail with the reason. Written once.

The app, the demo and the cohort runner all store analyses; each does it through
:func:`recording`, so an error, a cancel or a kill between start and finish never leaves a
stored analysis "running" (a running analysis blocks signing). What an error cannot close, a
crash, a kill or a power cut, :func:`close_interrupted` closes later: each analysis records which
process runs it (host, pid and the process's start time, under ``parameters["runner"]``), and
those whose process on this computer has stopped are marked failed. Runs on other computers (a
shared PostgreSQL store) are left alone: from here one cannot tell a crashed run from a slow one.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from core.classes import CLASS_NAMES
from core.errors import Cancelled
from core.jsontypes import JSONDict, JSONValue
from core.store.records import AnalysisRecord, AnalysisStatus

if TYPE_CHECKING:
    import pandas as pd

    from core.store import CaseStore


def jsonable(value: object) -> JSONValue:
    """Plain JSON values from engine summaries (numpy scalars, tuples, paths): what ``json`` would
    parse from ``value`` (numpy scalars as their Python value, anything else unknown as its str)."""
    parsed: JSONValue = json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))
    return parsed


def jsonable_dict(value: Mapping[str, object]) -> JSONDict:
    """:func:`jsonable` of a mapping, typed as the JSON object it gives."""
    parsed = jsonable(dict(value))
    if not isinstance(parsed, dict):  # json turns a dict into a dict; this only narrows the type
        raise TypeError(f"Expected a JSON object, got {type(parsed).__name__}.")
    return parsed


def runner_identity() -> JSONDict:
    """This process as an analysis records it: host name, pid and the process's start time.

    The start time tells a live run from a new process that happens to reuse a dead run's pid.
    """
    import psutil

    return {"host": socket.gethostname(), "pid": os.getpid(), "process_started": psutil.Process().create_time()}


def runner_alive(runner: object) -> bool | None:
    """Whether the process in ``runner`` (:func:`runner_identity`) still runs; None if it can't be told.

    None for a run started on another computer, or recorded without a runner (older analyses).
    """
    import psutil

    if not isinstance(runner, Mapping) or runner.get("host") != socket.gethostname() or "pid" not in runner:
        return None
    try:
        process = psutil.Process(int(runner["pid"]))
        started = float(process.create_time())
        return abs(started - float(runner.get("process_started", 0.0))) < 1.0
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:  # another user's live process
        return True


INTERRUPTED = ("Interrupted: the program running it (process {pid} on {host}) stopped before it finished. "
               "Run the analysis again: it resumes from the blocks it had finished.")


def close_interrupted(store: CaseStore, case_id: int) -> list[int]:
    """Mark as failed the analyses of ``case_id`` left "running" by a process that has stopped.

    Only runs recorded by a process on this computer are judged (:func:`runner_alive`); the
    reason stored says what happened and what to do. Returns the ids closed, for the caller to
    tell the user. A signed case cannot hold a running analysis (signing waits for it).
    """
    closed = []
    for analysis in store.list_analyses(case_id):
        if analysis.status is not AnalysisStatus.RUNNING:
            continue
        runner = (analysis.parameters or {}).get("runner")
        if isinstance(runner, Mapping) and runner_alive(runner) is False:
            store.finish_analysis(analysis.id, status=AnalysisStatus.FAILED,
                                  summary={"error": INTERRUPTED.format(pid=runner["pid"], host=runner["host"])})
            closed.append(analysis.id)
    return closed


class Recording:
    """A stored analysis while it runs (see :func:`recording`): save its cells, give its summary."""

    def __init__(self, store: CaseStore, record: AnalysisRecord) -> None:
        self.store = store
        self.started = record
        self.summary: JSONDict = {}

    @property
    def analysis_id(self) -> int:
        return self.started.id

    def save_cells(self, cells: pd.DataFrame, classes: Sequence[str] = CLASS_NAMES) -> None:
        """``classes``: the class table of the model that made the cells (its card's; the summary
        given to :meth:`finish_with` records it too, for loading)."""
        self.store.save_cells(self.started.id, cells, classes)

    def finish_with(self, summary: Mapping[str, object]) -> None:
        """The summary stored when the block ends without an error (made JSON-plain here)."""
        self.summary = jsonable_dict(summary)


@contextmanager
def recording(store: CaseStore, case_id: int, slide_id: int, *, model_name: str, model_sha256: str,
              parameters: Mapping[str, object], device: str, precision: str) -> Iterator[Recording]:
    """Start a stored analysis; on leaving the block finish it, or close it as failed/cancelled.

    The parameters stored are ``parameters`` plus this process as the runner
    (:func:`runner_identity`), so a run a crash leaves behind can be closed later. Inside the
    block, :meth:`Recording.save_cells` stores the cells and :meth:`Recording.finish_with` the
    summary. An exception (Cancelled and KeyboardInterrupt: "cancelled"; any other: "failed")
    closes the analysis with the error as its summary and is raised on.
    """
    recorded = {**jsonable_dict(parameters), "runner": runner_identity()}
    run = store.start_analysis(case_id, slide_id, model_name=model_name, model_sha256=model_sha256,
                               parameters=recorded, device=device, precision=precision)
    rec = Recording(store, run)
    try:
        yield rec
    except BaseException as err:
        cancelled = isinstance(err, KeyboardInterrupt | Cancelled)
        status = AnalysisStatus.CANCELLED if cancelled else AnalysisStatus.FAILED
        store.finish_analysis(run.id, status=status, summary={"error": str(err) or type(err).__name__})
        raise
    store.finish_analysis(run.id, summary=rec.summary)
