"""The model card: ``model.json``, the description that travels with ``model.safetensors``.

A card is what the app lists, what the report cites and what builds the network: architecture,
classes and colours, the pixel size and patch size it was trained at, its normalisation, a summary
of its training data (with ``training["data_statistics"]``, the Hoechst intensity, contrast and
nucleus-size distributions :mod:`core.models.domain` compares slides with; cards written before
it simply lack the key), its held-out metrics, and the sha256 of its weights. Unknown fields or a
newer card version are refused, so a card written by a future release is never half-understood.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from core.classes import CLASS_COLOURS, CLASS_NAMES
from core.errors import ModelCardError
from core.jsontypes import JSONDict
from core.normalise import NORMALISATION

CARD_VERSION = 1
#: Numeric precisions a model can run in (the runtime picks one per device).
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
CARD_FILE = "model.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class ModelCard:
    """Everything needed to build, run and cite a model. Units: ``mpp`` in µm per pixel."""

    name: str
    architecture: str = "unet"
    encoder: str = "resnet34"
    in_channels: int = 1
    classes: tuple[str, ...] = CLASS_NAMES
    class_colours: tuple[str, ...] = CLASS_COLOURS
    mpp: float = 0.227
    patch_size: int = 256
    normalisation: str = NORMALISATION
    input_channel_role: str = "hoechst"
    weights_sha256: str = ""
    weights_dtype: str = "float32"
    created: str = ""
    code_version: str = ""
    description: str = ""
    synthetic: bool = False
    training: JSONDict = field(default_factory=dict)
    metrics: JSONDict = field(default_factory=dict)
    card_version: int = CARD_VERSION

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def data_statistics(self) -> JSONDict | None:
        """Statistics of the training data (see :func:`core.models.domain.summarise`); None on older cards."""
        stats = self.training.get("data_statistics") if isinstance(self.training, dict) else None
        return stats if isinstance(stats, dict) and stats else None

    def to_dict(self) -> JSONDict:
        d: JSONDict = asdict(self)
        d["classes"] = list(self.classes)
        d["class_colours"] = list(self.class_colours)
        return d

    @classmethod
    def from_dict(cls, data: object, source: str = "model card") -> ModelCard:
        if not isinstance(data, dict):
            raise ModelCardError(f"{source}: expected a JSON object, found {type(data).__name__}.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelCardError(
                f"{source}: unknown field(s) {', '.join(unknown)}. Known fields: {', '.join(sorted(known))}. "
                "The card may come from a newer HoechstScore; update the software or fix the card."
            )
        version = data.get("card_version", CARD_VERSION)
        if version != CARD_VERSION:
            raise ModelCardError(
                f"{source}: card_version {version!r} is not supported (this release reads version "
                f"{CARD_VERSION}). Update HoechstScore or re-export the model."
            )
        if "name" not in data:
            raise ModelCardError(f"{source}: the required field 'name' is missing.")
        values = dict(data)
        for key in ("classes", "class_colours"):
            if key in values:
                values[key] = tuple(values[key])
        try:
            card = cls(**values)
        except TypeError as err:
            raise ModelCardError(f"{source}: {err}") from None
        card.validate(source)
        return card

    def validate(self, source: str = "model card") -> None:
        """Raise ModelCardError for values no model could be built or run with."""
        if len(self.class_colours) != len(self.classes):
            raise ModelCardError(f"{source}: {len(self.classes)} classes but {len(self.class_colours)} colours.")
        if not (0.05 <= float(self.mpp) <= 20.0):
            raise ModelCardError(f"{source}: pixel size {self.mpp} µm is not plausible (expected 0.05–20).")
        if self.patch_size < 32 or self.patch_size % 32:
            raise ModelCardError(f"{source}: patch_size {self.patch_size} must be a multiple of 32, ≥ 32.")
        if self.in_channels != 1:
            raise ModelCardError(f"{source}: in_channels {self.in_channels}; HoechstScore models take 1 channel.")

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / CARD_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return path


def load_card(directory: str | Path) -> ModelCard:
    """Read ``model.json`` from a model directory (or the path of the JSON file itself)."""
    path = Path(directory)
    if path.is_dir():
        path = path / CARD_FILE
    if not path.is_file():
        raise ModelCardError(f"No model card at {path}. A model directory holds {CARD_FILE} and {WEIGHTS_FILE}.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelCardError(f"Model card {path} is not valid JSON: {err}") from None
    return ModelCard.from_dict(data, source=str(path))
