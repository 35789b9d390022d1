"""Export a trained model: ``model.safetensors`` + a filled ``model.json`` card, and the output-dir rules.

The card is what the app shows and the report cites, so it records where the model came from:
slides and split, label thresholds, counts per class, held-out metrics, the settings, and whether
the training data was synthetic (any phantom slide makes the model synthetic). Weights may be
saved as float16 to halve the file (the shipped demo model must stay under 50 MB).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import torch

from core import __version__
from core.models import CARD_FILE, WEIGHTS_FILE, ModelCard, save_model
from training.checkpoint import CHECKPOINT_DIR
from training.errors import TrainingError


def code_version() -> str:
    """Package version plus the git commit when run from a checkout (for the card's provenance)."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        sha = rev.stdout.strip() if rev.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{__version__}+{sha}" if sha else __version__


def check_out_dir(out: Path, force: bool, resume: bool) -> None:
    """Refuse to overwrite a model or an unfinished run unless asked; with ``force`` clear the old run.

    The patch cache (``cache/``) survives ``--force``: its keys include the label settings, so it
    can never feed stale labels to a new run.
    """
    has_model = (out / CARD_FILE).exists() or (out / WEIGHTS_FILE).exists()
    has_run = (out / CHECKPOINT_DIR).exists()
    if resume:  # continuing (or extending with a larger --epochs) re-exports the model at the end
        return
    if (has_model or has_run) and not force:
        what = "a model (model.json)" if has_model else "an unfinished training run (checkpoint/)"
        raise TrainingError(
            f"Output folder {out} already holds {what}. Use --force to replace it, --resume to continue a run, "
            "or choose another --out."
        )
    if force:
        for name in (CARD_FILE, WEIGHTS_FILE, "metrics.json", "log.json", "log.csv", "run.json"):
            (out / name).unlink(missing_ok=True)
        for name in (CHECKPOINT_DIR, f"{CHECKPOINT_DIR}.tmp", f"{CHECKPOINT_DIR}.old", "debug"):
            if (out / name).exists():
                shutil.rmtree(out / name)


def export_model(
    model: torch.nn.Module,
    out: Path,
    name: str,
    encoder: str,
    patch_size: int,
    mpp: float,
    weights_dtype: str,
    synthetic: bool,
    training: dict[str, Any],
    metrics: dict[str, Any],
    description: str = "",
) -> ModelCard:
    """Write the model and its card into ``out``; returns the final card (with sha256)."""
    card = ModelCard(
        name=name,
        encoder=encoder,
        patch_size=patch_size,
        mpp=mpp,
        synthetic=synthetic,
        code_version=code_version(),
        description=description,
        training=json.loads(json.dumps(training, default=str)),
        metrics=json.loads(json.dumps(metrics, default=str)),
    )
    card.validate()
    return save_model(model, card, out, weights_dtype=weights_dtype)


def summary_metrics(evaluation: dict[str, Any], split: str) -> dict[str, Any]:
    """The card's metrics: per-class soft/hard precision, recall, F1 and count error per pixel and per cell (centroid),
    the per-cell bootstrap 95 % intervals, and each slide's per-cell macro F1 with its interval."""
    out: dict[str, Any] = {"split": split, "patches": evaluation["patches"]}
    for level in ("pixel", "centroid"):
        sc = evaluation[level]
        out[level] = {
            kind: {c: {k: round(float(v[k]), 4) for k in ("precision", "recall", "f1", "count_error", "count_error_abs")
                       if v.get(k) is not None} for c, v in sc[kind].items()}
            for kind in ("soft", "hard")
        }
        out[level]["count"] = sc["count"]
    if "centroid_ci" in evaluation:
        out["centroid_ci"] = evaluation["centroid_ci"]
    out["per_slide"] = {
        s: {"cells": v["centroid"]["count"], "f1_hard": round(float(v["centroid"]["hard"]["average"]["f1"]), 4),
            "f1_soft": round(float(v["centroid"]["soft"]["average"]["f1"]), 4),
            **({"ci_hard": v["centroid_ci"]["hard"].get("average")} if "centroid_ci" in v else {})}
        for s, v in evaluation.get("per_slide", {}).items()
    }
    return out
