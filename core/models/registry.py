"""Build a network from its model card through a registry of architectures (STYLE.md §6)."""

from __future__ import annotations

from collections.abc import Callable

import segmentation_models_pytorch as smp
import torch

from core.errors import ModelCardError
from core.models.card import ModelCard


def build_unet(card: ModelCard) -> torch.nn.Module:
    # encoder_weights=None always: no pretrained weights are ever downloaded.
    try:
        return smp.Unet(
            encoder_name=card.encoder,
            encoder_weights=None,
            in_channels=card.in_channels,
            classes=card.n_classes,
        )
    except (KeyError, ValueError) as err:
        raise ModelCardError(f"Cannot build a U-Net with encoder {card.encoder!r}: {err}") from None


ARCHITECTURES: dict[str, Callable[[ModelCard], torch.nn.Module]] = {"unet": build_unet}


def build_model(card: ModelCard) -> torch.nn.Module:
    """An untrained network of the card's architecture; raises ModelCardError for unknown names."""
    try:
        builder = ARCHITECTURES[card.architecture]
    except KeyError:
        raise ModelCardError(
            f"Unknown architecture {card.architecture!r} in the model card; known: {', '.join(sorted(ARCHITECTURES))}."
        ) from None
    return builder(card)
