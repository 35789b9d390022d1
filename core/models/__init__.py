"""Models: the model card, the architecture registry, and safe weight files."""

from core.models.card import CARD_FILE, CARD_VERSION, WEIGHTS_FILE, ModelCard, load_card
from core.models.registry import ARCHITECTURES, build_model
from core.models.weights import load_weights, save_model, sha256_file

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
