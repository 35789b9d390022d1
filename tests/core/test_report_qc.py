"""Helpers of the report: the model card's metrics, summarised (masks and density: test_density_map.py)."""

from __future__ import annotations

import pytest

from core.report.qc import summarise_metrics


def test_metrics_flattened_f1_first() -> None:
    metrics = {"epochs": 100, "test": {"pixel": {"precision_mean": 0.8, "f1_mean": 0.9}, "note": "x",
                                       "centroid": {"f1": {"CD3": 0.7}}}}
    out = summarise_metrics(metrics, limit=3)
    assert list(out) == ["Test / pixel / F1 mean", "Test / centroid / F1 / CD3", "Epochs"]


def test_metrics_of_the_training_tools_summarised_as_f1() -> None:
    per = {"other": {"precision": 1, "recall": 1, "f1": 0.99}, "CD3": {"precision": 0.8, "recall": 0.8, "f1": 0.8},
           "CD20": {"precision": 0.9, "recall": 0.9, "f1": 0.9}, "average": {"precision": 0.85, "recall": 0.85, "f1": 0.85}}
    metrics = {"split": "test", "patches": 1200, "pixel": {"soft": per, "hard": per, "count": {}},
               "centroid": {"soft": per, "hard": per, "count": {}}}
    out = summarise_metrics(metrics)
    assert out["Evaluated on"] == "test split, 1,200 patches"
    assert out["Per-pixel F1, hard, mean"] == pytest.approx(0.85)
    assert out["Per-cell (centroid) F1, hard, by class"] == "CD3 0.80 · CD20 0.90"
    assert list(out)[1] == "Per-pixel F1, hard, mean"


def test_the_per_cell_confidence_interval_is_shown() -> None:
    """The training tools' honest metric comes with a bootstrap interval; a report that printed only
    the point estimate of a few dozen cells would claim more than it knows."""
    per = {"other": {"precision": 1, "recall": 1, "f1": 0.99}, "CD3": {"precision": 0.7, "recall": 0.7, "f1": 0.7}}
    metrics = {"split": "test", "patches": 10, "pixel": {"soft": per, "hard": per},
               "centroid": {"soft": per, "hard": per}, "centroid_ci": {"hard": {"average": [0.615, 0.7296]}}}
    out = summarise_metrics(metrics)
    assert out["Per-cell (centroid) F1, hard, 95% CI"] == "0.61–0.73"
    del metrics["centroid_ci"]
    assert not any("CI" in k for k in summarise_metrics(metrics))


def test_the_per_cell_count_error_is_shown() -> None:
    """F1 can rise while a class is counted far too often; the report shows calls against true cells,
    from the card's count error or, for cards written before it, from recall / precision."""
    per = {"other": {"precision": 1, "recall": 0.9, "f1": 0.95},
           "CD3": {"precision": 0.8, "recall": 0.8, "f1": 0.8},
           "CD20": {"precision": 0.5, "recall": 0.75, "f1": 0.6}}
    metrics = {"split": "test", "patches": 10, "pixel": {"soft": per, "hard": per},
               "centroid": {"soft": per, "hard": per}, "centroid_ci": {"hard": {"average": [0.6, 0.8]}}}
    out = summarise_metrics(metrics)
    assert out["Per-cell (centroid) calls vs true cells, hard"] == "CD3 +0% · CD20 +50%"
    metrics["centroid"]["hard"] = {**per, "CD3": {**per["CD3"], "count_error": -0.125}}
    assert summarise_metrics(metrics)["Per-cell (centroid) calls vs true cells, hard"] == "CD3 -12% · CD20 +50%"
