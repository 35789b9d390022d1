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
from typing import Any

import pandas as pd

from core.classes import DEFAULT_MARKER_GROUPS
from core.cohort.case import read_done
from core.cohort.manifest import CohortCase
from core.scores import parameter_name

REGIONS = ("CT", "IM", "Tumour")


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _scores_columns(scores: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    by_region = {r.get("region"): r for r in scores.get("densities", {}).get("regions", [])}
    for region in REGIONS:
        data = by_region.get(region, {})
        row[f"area_mm2_{region}"] = data.get("area_mm2")
        for group in DEFAULT_MARKER_GROUPS:
            row[f"count_{parameter_name(group, region)}"] = data.get("counts", {}).get(group)
            row[parameter_name(group, region)] = data.get("densities", {}).get(group)
    is_ = scores.get("immunoscore_like", {})
    tb = scores.get("t_and_b", {})
    row.update({
        "is_evaluable": is_.get("evaluable"), "is_label": is_.get("label"), "is_level": is_.get("level"),
        "is_category": is_.get("category"), "is_mean_percentile": is_.get("mean_percentile"),
        "tb_evaluable": tb.get("evaluable"), "tb_label": tb.get("label"), "tb_score": tb.get("value"),
        "tb_category": tb.get("category"),
        # True when the counting error alone could change the category (core.scores.near_cut); None
        # when not evaluable or scored before this was recorded.
        "is_near_cut": (is_.get("category_range") or {}).get("near_cut"),
        "tb_near_cut": (tb.get("category_range") or {}).get("near_cut"),
        "reference_cohort": is_.get("cohort", {}).get("name"),
    })
    return row


def case_row(case: CohortCase, folder: Path, key: str, error: str | None = None) -> dict[str, Any]:
    """The table row of one case from its folder; ``error`` from this run when it failed."""
    done = read_done(folder)
    finished = done is not None and done.get("key") == key
    row: dict[str, Any] = {
        "case_id": case.case_id,
        "status": "done" if finished else ("failed" if error else "not run"),
        "error": None if finished else error,
        "reference": case.reference,
        "slide": str(case.slide),
        "regions": None if case.regions is None else str(case.regions),
    }
    if not finished:
        return row
    summary = _json(folder / "summary.json")
    counts = summary.get("counts", {})
    analysed = summary.get("analysed_area_mm2")
    row.update({
        "model": summary.get("model"), "model_sha256": summary.get("model_sha256"),
        "device": done.get("device"), "precision": done.get("precision"), "seconds": done.get("seconds"),
        "tissue_area_mm2": summary.get("tissue_area_mm2"), "analysed_area_mm2": analysed,
        "total_cells": summary.get("total_cells"),
        **{f"cells_{name}": n for name, n in counts.items()},
    })
    for group, classes in DEFAULT_MARKER_GROUPS.items():
        n = sum(int(counts.get(c, 0)) for c in classes)
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
