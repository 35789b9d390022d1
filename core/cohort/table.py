"""The cohort table: one row per case, read back from the case folders (``cohort.parquet``, ``cohort.csv``).

Rows are built from the files in each case folder (summary.json, scores.json, done.json), not
from what the workers returned, so a re-run that skips every case writes the same table, and the
table always says what the folders hold. Columns: the case and its status (done / failed / not
run, with the error), tissue and analysed areas (mm²), cell counts per class, per region (CT, IM,
Tumour) its area, counts and densities per marker group (cells/mm², columns named as the
reference cohort's, e.g. ``CD8_CT``), densities in the analysed tissue (``CD8_Tissue``), the
Immunoscore-like and the T-and-B score, each with whether it is near a category cut. The CSV
works as a reference cohort for ``core score``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from core.classes import DEFAULT_MARKER_GROUPS
from core.cohort.case import read_done
from core.cohort.manifest import CohortCase
from core.engine.summary import AnalysisSummary
from core.jsontypes import JSONDict, JSONValue
from core.scores import parameter_name

REGIONS = ("CT", "IM", "Tumour")


def _json(path: Path) -> JSONDict:
    try:
        data: JSONValue = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _get(data: JSONValue, *path: str) -> JSONValue:
    """``data[path[0]][path[1]]...`` of stored JSON; None where a key is missing or a value on the
    way is not an object (a file written by an older version lacks newer fields)."""
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _scores_columns(scores: JSONDict) -> JSONDict:
    row: JSONDict = {}
    regions = _get(scores, "densities", "regions")
    by_region = {str(r.get("region")): r for r in regions if isinstance(r, dict)} if isinstance(regions, list) else {}
    for region in REGIONS:
        data = by_region.get(region)
        row[f"area_mm2_{region}"] = _get(data, "area_mm2")
        for group in DEFAULT_MARKER_GROUPS:
            row[f"count_{parameter_name(group, region)}"] = _get(data, "counts", group)
            row[parameter_name(group, region)] = _get(data, "densities", group)
    is_ = _get(scores, "immunoscore_like")
    tb = _get(scores, "t_and_b")
    row.update({
        "is_evaluable": _get(is_, "evaluable"), "is_label": _get(is_, "label"), "is_level": _get(is_, "level"),
        "is_category": _get(is_, "category"), "is_mean_percentile": _get(is_, "mean_percentile"),
        "tb_evaluable": _get(tb, "evaluable"), "tb_label": _get(tb, "label"), "tb_score": _get(tb, "value"),
        "tb_category": _get(tb, "category"),
        # True when the counting error alone could change the category (core.scores.near_cut); None
        # when not evaluable or scored before this was recorded.
        "is_near_cut": _get(is_, "category_range", "near_cut"),
        "tb_near_cut": _get(tb, "category_range", "near_cut"),
        "reference_cohort": _get(is_, "cohort", "name"),
    })
    return row


def case_row(case: CohortCase, folder: Path, key: str, error: str | None = None) -> JSONDict:
    """The table row of one case from its folder; ``error`` from this run when it failed."""
    done = read_done(folder)
    finished = done is not None and done.get("key") == key
    row: JSONDict = {
        "case_id": case.case_id,
        "status": "done" if finished else ("failed" if error else "not run"),
        "error": None if finished else error,
        "reference": case.reference,
        "slide": str(case.slide),
        "regions": None if case.regions is None else str(case.regions),
    }
    if done is None or not finished:
        return row
    summary = AnalysisSummary.from_dict(_json(folder / "summary.json"))
    counts, analysed = summary.counts, summary.analysed_area_mm2
    row.update({
        "model": summary.model, "model_sha256": summary.model_sha256,
        "device": done.get("device"), "precision": done.get("precision"), "seconds": done.get("seconds"),
        "tissue_area_mm2": summary.tissue_area_mm2, "analysed_area_mm2": analysed,
        "total_cells": summary.total_cells,
        **{f"cells_{name}": n for name, n in counts.items()},
    })
    for group, classes in DEFAULT_MARKER_GROUPS.items():
        n = sum(counts.get(c, 0) for c in classes)
        row[parameter_name(group, "Tissue")] = n / analysed if analysed else None
    scores = _json(folder / "scores.json")
    if scores:
        row.update(_scores_columns(scores))
    return row


def cohort_table(cases: Iterable[CohortCase], out_dir: Path, keys: Mapping[str, str],
                 errors: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per case, in manifest order (see the module docstring for the columns)."""
    errors = errors or {}
    rows = [case_row(c, out_dir / c.case_id, keys[c.case_id], errors.get(c.case_id)) for c in cases]
    return pd.DataFrame.from_records(rows)


def write_table(table: pd.DataFrame, out_dir: Path) -> tuple[Path, Path]:
    """``cohort.parquet`` (typed, via pyarrow) and ``cohort.csv``; returns both paths."""
    parquet, csv = out_dir / "cohort.parquet", out_dir / "cohort.csv"
    table.to_parquet(parquet, index=False, engine="pyarrow")
    table.to_csv(csv, index=False)
    return parquet, csv
