"""Figures the report derives from stored results: the model card's metrics, summarised.

The analysed-tissue mask and the density overlay the report also shows live in core
(:mod:`core.tissue_mask`, :mod:`core.density_map`), since the app and the analysis records use them
too; their names are re-exported here for callers of the earlier layout.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from core.density_map import DENSITY_SIGMA_UM, analysed_density, density_from_cells, mask_density
from core.jsontypes import JSONMapping, JSONValue, as_float
from core.tissue_mask import (
    MAX_MASK_SIDE,
    analysis_summary_extras,
    decode_mask,
    encode_mask,
    fraction_in_mask,
)

__all__ = [
    "DENSITY_SIGMA_UM",
    "MAX_MASK_SIDE",
    "analysed_density",
    "analysis_summary_extras",
    "decode_mask",
    "density_from_cells",
    "encode_mask",
    "fraction_in_mask",
    "mask_density",
    "summarise_metrics",
]


def _at(value: JSONValue | JSONMapping, *keys: str) -> JSONValue | JSONMapping:
    """``value[keys[0]][keys[1]]...`` of a card's metrics; None where a key is missing or a value on
    the way is not an object (cards of other tools or older versions lack some)."""
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _cell_classes(scores: JSONValue | JSONMapping) -> Iterator[tuple[str, JSONMapping]]:
    """(class, its measures) for the cell classes of a score table: not background "other", not the
    "average" row."""
    if not isinstance(scores, Mapping):
        return
    for c, v in scores.items():
        if isinstance(v, Mapping) and str(c) not in ("other", "average"):
            yield str(c), v


def _f1_by_class(scores: JSONValue | JSONMapping) -> dict[str, float]:
    return {c: float(f1) for c, v in _cell_classes(scores) if isinstance(f1 := v.get("f1"), int | float)}


def _training_metrics(metrics: JSONMapping) -> dict[str, float | str]:
    """The training tools' layout: {split, patches, pixel|centroid: {hard|soft: {class: {f1, ...}}}}.

    Hard (argmax) F1 first, as the paper's Table 2 reports both: the mean over the cell classes
    (background "other" left out) and each class's F1 in one line.
    """
    out: dict[str, float | str] = {}
    if "split" in metrics:
        patches = metrics.get("patches")
        out["Evaluated on"] = f"{metrics['split']} split" + (f", {patches:,} patches" if isinstance(patches, int) else "")
    for level, word in (("pixel", "Per-pixel"), ("centroid", "Per-cell (centroid)")):
        for kind in ("hard", "soft"):
            f1 = _f1_by_class(_at(metrics, level, kind))
            if not f1:
                continue
            out[f"{word} F1, {kind}, mean"] = sum(f1.values()) / len(f1)
            if kind == "hard":
                out[f"{word} F1, {kind}, by class"] = " · ".join(f"{c} {v:.2f}" for c, v in f1.items())
                ci = _at(metrics, "centroid_ci", "hard", "average") if level == "centroid" else None
                if isinstance(ci, list | tuple) and len(ci) == 2:
                    out[f"{word} F1, {kind}, 95% CI"] = f"{as_float(ci[0]):.2f}–{as_float(ci[1]):.2f}"
                if level == "centroid":
                    errors = _count_error_by_class(_at(metrics, level, kind))
                    if errors:
                        out[f"{word} calls vs true cells, {kind}"] = " · ".join(f"{c} {v:+.0%}" for c, v in errors.items())
    return out


def _count_error_by_class(scores: JSONValue | JSONMapping) -> dict[str, float]:
    """Per cell class, calls / true cells − 1 on the test cells: the bias a density read from this
    model carries, which F1 does not show (a model can gain F1 while calling a class far too often).
    Cards from before the field was written get it from recall / precision, the same ratio."""
    out: dict[str, float] = {}
    for c, v in _cell_classes(scores):
        err, p, r = v.get("count_error"), v.get("precision"), v.get("recall")
        if isinstance(err, int | float):
            out[c] = float(err)
        elif isinstance(p, int | float) and isinstance(r, int | float) and p > 0:
            out[c] = float(r) / float(p) - 1.0
    return out


def summarise_metrics(metrics: JSONMapping, limit: int = 10) -> dict[str, float | str]:
    """The model card's metrics as at most ``limit`` (label, value) pairs for the report.

    The training tools' layout is summarised as F1 means and per-class F1 (see
    :func:`_training_metrics`); any other layout is flattened ("test / per_cell / f1_mean"); numbers only; F1 figures come first,
    then means, then the rest in the card's order.
    """
    known = _training_metrics(metrics)
    if len(known) > 1:
        return dict(list(known.items())[:limit])
    flat: list[tuple[str, float]] = []

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix} / {k}" if prefix else str(k), v)
        elif isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value):
            flat.append((prefix.replace("_", " "), float(value)))

    walk("", metrics)

    def rank(item: tuple[str, float]) -> int:
        key = item[0].lower()
        return 0 if "f1" in key and ("mean" in key or "macro" in key or "average" in key) else (
            1 if "f1" in key else 2)

    ordered = sorted(flat, key=rank)  # stable: the card's order within a rank
    return {_metric_label(k): v for k, v in ordered[:limit]}


def _metric_label(key: str) -> str:
    """ "test / pixel / f1 mean" -> "Test / pixel / F1 mean"."""
    words = [w.upper() if w.lower() in ("f1", "auc", "iou") else w for w in key.split(" ")]
    text = " ".join(words)
    return text[:1].upper() + text[1:]
