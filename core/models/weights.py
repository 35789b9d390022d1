"""Weights on disk: safetensors only, pinned by sha256 in the card. Never a pickle, never torch.load."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from core import __version__
from core.errors import ModelLoadError
from core.models.card import WEIGHTS_FILE, ModelCard, load_card
from core.models.registry import build_model

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_model(
    model: torch.nn.Module, card: ModelCard, directory: str | Path, weights_dtype: str = "float32"
) -> ModelCard:
    """Write ``model.safetensors`` and ``model.json`` into ``directory``; returns the final card.

    ``weights_dtype`` "float16"/"bfloat16" halves the file (the shipped demo model must stay
    under 50 MB); weights are cast back to float32 on load.
    """
    if weights_dtype not in _DTYPES:
        raise ValueError(f"weights_dtype must be one of {', '.join(_DTYPES)}, not {weights_dtype!r}")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    state = {
        k: (v.detach().to("cpu").to(_DTYPES[weights_dtype]) if v.is_floating_point() else v.detach().cpu())
        .contiguous()
        for k, v in model.state_dict().items()
    }
    weights = out / WEIGHTS_FILE
    save_file(state, str(weights), metadata={"format": "pt", "architecture": card.architecture})
    final = dataclasses.replace(
        card,
        weights_sha256=sha256_file(weights),
        weights_dtype=weights_dtype,
        created=card.created or datetime.now(UTC).replace(microsecond=0).isoformat(),
        code_version=card.code_version or __version__,
    )
    final.save(out)
    return final


def load_weights(directory: str | Path) -> tuple[torch.nn.Module, ModelCard]:
    """Build the network from the card and load verified weights (float32, CPU, eval mode).

    Refuses weights whose sha256 differs from the card's, and anything that is not safetensors.
    """
    directory = Path(directory)
    card = load_card(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelLoadError(f"Model weights {weights} are missing; the model directory is incomplete.")
    digest = sha256_file(weights)
    if not card.weights_sha256:
        raise ModelLoadError(f"The model card in {directory} has no weights_sha256; refusing unverified weights.")
    if digest != card.weights_sha256:
        raise ModelLoadError(
            f"Model weights {weights} do not match their card (sha256 {digest[:12]}… ≠ {card.weights_sha256[:12]}…). "
            "The file was altered or belongs to another model; reinstall the model."
        )
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelLoadError(f"{weights} is not a readable safetensors file ({err}).") from None
    module = build_model(card)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise ModelLoadError(f"Weights in {weights} do not fit the card's architecture: {first}") from None
    module.eval()
    return module, card
