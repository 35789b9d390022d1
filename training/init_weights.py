"""The model a fine-tuning run starts from (``retrain --init``).

A lab with a few dozen labelled tiles gets further by adapting a model that already finds nuclei
than by learning everything from random weights: the encoder's edge and texture filters carry over,
and only the marker calls must be relearnt. The starting model is loaded with the same checks as
for inference (safetensors only, sha256 against its card, strict architecture match), so a run can
never start from a file that is not what its card says.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from core.classes import CLASS_NAMES
from core.errors import ModelLoadError
from core.models import ModelCard


@dataclass(frozen=True)
class InitWeights:
    """Verified weights (float32 state dict) of the starting model, its card and where it came from."""

    path: Path
    card: ModelCard
    state: dict[str, torch.Tensor]


def find_init_dir(spec: str | Path) -> Path:
    """The model folder ``spec`` names: ``demo`` (the shipped model), a folder holding model.json,
    or the name of an installed model."""
    from core.models.installed import models_dir
    from core.models.runtime import default_model_dir

    text = str(spec)
    if text == "demo":
        return default_model_dir()
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    installed = models_dir() / text
    if installed.is_dir():
        return installed
    raise ModelLoadError(
        f"--init {text!r}: no such model folder and no installed model of that name (installed models live in "
        f"{models_dir()}). Give the folder that holds model.json and model.safetensors, or 'demo'."
    )


def resolve_init(spec: str | Path) -> InitWeights:
    """Load and check the starting model: same classes and one input channel as this program trains."""
    from core.models.weights import load_weights

    path = find_init_dir(spec)
    module, card = load_weights(path)
    if tuple(card.classes) != tuple(CLASS_NAMES):
        raise ModelLoadError(
            f"--init {path}: its classes {', '.join(card.classes)} differ from the ones trained here "
            f"({', '.join(CLASS_NAMES)}); start from a HoechstScore model or train from scratch."
        )
    if card.in_channels != 1:
        raise ModelLoadError(f"--init {path}: it reads {card.in_channels} channels; retrain trains one (Hoechst).")
    return InitWeights(path, card, {k: v.detach().clone() for k, v in module.state_dict().items()})
