"""Cohorts: score hundreds of slides on one machine or a Dask cluster (``python -m core cohort``).

A manifest (:mod:`.manifest`) lists the cases; each case runs as one Dask task (:mod:`.case`)
that writes the files of ``core analyse`` and ``core score`` into its own folder and a done
marker keyed by slide, model and settings, so re-runs skip finished cases and resume interrupted
ones. The driver (:mod:`.run`) collects the cohort table (:mod:`.table`) and plot (:mod:`.plot`)
and, on request, records the cases in the case store as one writer (:mod:`.store`).
"""

from core.cohort.case import CohortSettings, case_key, run_case
from core.cohort.manifest import CohortCase, read_manifest
from core.cohort.run import CohortResult, default_workers, local_cluster, run_cohort, with_threads
from core.cohort.store import MergeResult, merge_into_store
from core.cohort.table import cohort_table

__all__ = [
    "CohortCase",
    "CohortResult",
    "CohortSettings",
    "MergeResult",
    "case_key",
    "cohort_table",
    "default_workers",
    "local_cluster",
    "merge_into_store",
    "read_manifest",
    "run_case",
    "run_cohort",
    "with_threads",
]
