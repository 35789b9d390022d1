"""Run a cohort on Dask: one task per case, on a LocalCluster or any Dask cluster.

Dask rather than a process pool of our own: the same code then runs on one machine, on Slurm
(dask-jobqueue), Kubernetes or a cloud cluster, with a dashboard, and a worker that dies (out of
memory, a node lost) has its case rescheduled on another worker by the scheduler. Cases already
done with the same key are not submitted. Each task writes only its own case folder; the table,
the plot (and the store merge, :mod:`core.cohort.store`) are written here, by the one driver.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from core.cohort.case import CohortSettings, case_key, is_done, run_case
from core.cohort.manifest import CohortCase
from core.cohort.plot import summary_plot
from core.cohort.table import cohort_table, write_table
from core.jsontypes import JSONDict, as_str
from core.progress import CancelToken, Progress

if TYPE_CHECKING:  # distributed is imported only where a cohort runs
    from distributed import Client, Future, LocalCluster

#: How often (s) the driver looks at the cancel token while waiting for the next case.
POLL_S = 0.5


@dataclass(frozen=True)
class CohortResult:
    """What a cohort run left: the table and its files, and which cases ran, were skipped or failed."""

    table: pd.DataFrame
    parquet: Path
    csv: Path
    plot: Path
    done: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    failed: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)


def default_workers() -> int:
    """One worker per GPU; on CPU one per 4 cores (PyTorch uses the cores of its worker), at least 1."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.device_count()
    return max(1, (os.cpu_count() or 1) // 4)


def local_cluster(workers: int | None = None) -> LocalCluster:
    """A LocalCluster of ``workers`` processes with one task thread each (a model per process)."""
    from distributed import LocalCluster

    n = workers or default_workers()
    # Any free port: the scheduler's HTTP server starts even without bokeh, and 8787 may be taken.
    return LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0")


def dashboard_link(client: Client, local: bool) -> str | None:
    """The Dask dashboard's address, or None when there is none (bokeh missing on a local cluster)."""
    if local and importlib.util.find_spec("bokeh") is None:
        return None
    return client.dashboard_link if "dashboard" in client.scheduler_info().get("services", {}) else None


def with_threads(settings: CohortSettings, workers: int) -> CohortSettings:
    """Settings whose PyTorch threads share this machine's cores between ``workers`` local workers."""
    threads = max(1, (os.cpu_count() or 1) // max(workers, 1))
    return replace(settings, params=replace(settings.params, torch_threads=threads))


def _failure(future: Future[JSONDict], case: CohortCase) -> str:
    """The per-case message of a task that did not return (its worker died too often, or cancelled)."""
    from distributed import KilledWorker

    if future.status == "cancelled":
        return f"{case.case_id}: cancelled"
    err = future.exception()
    if isinstance(err, KilledWorker):
        return (f"{case.case_id}: the worker process running it died several times (out of memory?); "
                "check the workers' logs, give workers more memory, and run the cohort again.")
    return f"{case.case_id}: {type(err).__name__}: {err}"


def run_cohort(
    cases: Sequence[CohortCase],
    out_dir: str | Path,
    settings: CohortSettings,
    client: Client,
    cancel: CancelToken | None = None,
) -> Generator[Progress, None, CohortResult]:
    """Run every case not yet done on the Dask ``client``; yields a Progress per finished case.

    Returns the :class:`CohortResult` after writing ``cohort.parquet``, ``cohort.csv`` and
    ``cohort.png`` into ``out_dir``. A failed case is recorded in the table and does not stop the
    others. On cancel (or Ctrl-C) the cases still queued are cancelled and Cancelled (or
    KeyboardInterrupt) propagates; finished cases keep their folders, interrupted ones their
    checkpoints, so the next run goes on from there.
    """
    from distributed import wait

    cancel = cancel or CancelToken()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keys = {c.case_id: case_key(c, settings) for c in cases}
    skipped = [c.case_id for c in cases if is_done(out / c.case_id, keys[c.case_id])]
    todo = [c for c in cases if c.case_id not in skipped]
    total, count = len(cases), len(skipped)
    yield Progress(count, total, f"{len(skipped)} case(s) done before, {len(todo)} to run")
    futures = {client.submit(run_case, c, str(out), settings, key=f"cohort-{c.case_id}-{keys[c.case_id]}",
                             pure=False): c for c in todo}
    done: list[str] = []
    failed: dict[str, str] = {}
    pending = set(futures)
    try:
        while pending:
            cancel.check()
            try:
                finished = wait(list(pending), timeout=POLL_S, return_when="FIRST_COMPLETED").done
            except TimeoutError:
                continue
            for future in finished:
                pending.discard(future)
                case = futures[future]
                if future.status == "finished":
                    outcome = future.result()
                    if outcome["status"] == "failed":
                        failed[case.case_id] = as_str(outcome["error"])
                    elif outcome["status"] == "skipped":  # finished by another run meanwhile
                        skipped.append(case.case_id)
                    else:
                        done.append(case.case_id)
                else:
                    failed[case.case_id] = _failure(future, case)
                count += 1
                state = "failed" if case.case_id in failed else "done"
                yield Progress(count, total, f"{case.case_id} {state}")
    finally:
        if pending:
            client.cancel(list(pending))
    table = cohort_table(cases, out, keys, failed)
    parquet, csv = write_table(table, out)
    plot = summary_plot(table, out / "cohort.png")
    return CohortResult(table, parquet, csv, plot, tuple(done), tuple(skipped), failed, keys)
