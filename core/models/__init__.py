"""Models: the model card, the architecture registry, and safe weight files.

Names are loaded on first use (PEP 562), so code that only needs the card (the CLI's argument
parser, the app's model list) does not pay for importing torch and segmentation_models_pytorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_WHERE = {
    "CARD_FILE": "card",
    "CARD_VERSION": "card",
    "WEIGHTS_FILE": "card",
    "ModelCard": "card",
    "load_card": "card",
    "ARCHITECTURES": "registry",
    "build_model": "registry",
    "load_weights": "weights",
    "save_model": "weights",
    "sha256_file": "weights",
}

__all__ = [
    "ARCHITECTURES",
    "CARD_FILE",
    "CARD_VERSION",
    "WEIGHTS_FILE",
    "ModelCard",
    "build_model",
    "load_card",
    "load_weights",
    "save_model",
    "sha256_file",
]

if TYPE_CHECKING:
    from core.models.card import CARD_FILE, CARD_VERSION, WEIGHTS_FILE, ModelCard, load_card
    from core.models.registry import ARCHITECTURES, build_model
    from core.models.weights import load_weights, save_model, sha256_file


def __getattr__(name: str) -> object:  # the names above, imported on first use
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'core.models' has no attribute {name!r}")
    return getattr(importlib.import_module(f"core.models.{module}"), name)
