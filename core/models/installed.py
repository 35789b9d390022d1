"""Installed models: the user's models folder, listing it, and installing a trained model into it.

``python -m training.retrain --install`` and the app's model chooser meet here. A model is a folder
``<models_dir>/<name>/`` holding ``model.json`` and ``model.safetensors``. Installing verifies the
weights against the card's sha256 before copying, and copies into a temporary folder that is
renamed at the end, so the models folder never holds a half-copied model. Listing is cheap (cards
only, no hashing: ``load_weights`` verifies the hash when a model is actually loaded) and reports
broken folders instead of failing on them, so one bad folder never hides the good ones.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

import platformdirs

from core.errors import CoreError, ModelCardError, ModelLoadError
from core.models.card import CARD_FILE, WEIGHTS_FILE, ModelCard, load_card
from core.models.weights import sha256_file

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,99}$")


def models_dir() -> Path:
    """``platformdirs.user_data_dir("HoechstScore")/models`` (not created here)."""
    return Path(platformdirs.user_data_dir("HoechstScore")) / "models"


def check_model_dir(path: str | Path) -> ModelCard:
    """The card of a complete model folder; raises ModelCardError/ModelLoadError saying what is wrong."""
    p = Path(path)
    card = load_card(p)
    weights = p / WEIGHTS_FILE
    if not weights.is_file() or weights.stat().st_size == 0:
        raise ModelLoadError(f"{p} has a model card but no weights ({WEIGHTS_FILE}).")
    return card


def find_models(extra_dirs: Iterable[str | Path] = ()) -> tuple[list[tuple[Path, ModelCard]], list[tuple[Path, str]]]:
    """(valid models, broken folders with the reason) in the models dir and ``extra_dirs``.

    Each directory is either a model folder itself or a folder of model folders.
    """
    valid: list[tuple[Path, ModelCard]] = []
    broken: list[tuple[Path, str]] = []
    roots = [models_dir(), *[Path(d) for d in extra_dirs]]
    seen: set[Path] = set()
    for root in roots:
        if not root.is_dir():
            continue
        candidates = [root] if (root / CARD_FILE).exists() else sorted(d for d in root.iterdir() if d.is_dir())
        for d in candidates:
            key = d.resolve()
            if key in seen or d.name.endswith(".installing"):
                continue
            seen.add(key)
            try:
                valid.append((d, check_model_dir(d)))
            except CoreError as err:
                broken.append((d, str(err)))
    return valid, broken


def list_models(extra_dirs: Iterable[str | Path] = ()) -> list[tuple[Path, ModelCard]]:
    """(folder, card) of every valid model; broken folders are logged as warnings and skipped."""
    valid, broken = find_models(extra_dirs)
    for path, reason in broken:
        log.warning("Skipping model folder %s: %s", path, reason)
    return valid


def install_model(src: str | Path, name: str | None = None, force: bool = False) -> Path:
    """Copy the model in ``src`` into ``models_dir()/<name>`` (name: the card's name by default).

    Refuses weights that do not match their card, names that are not plain folder names, and an
    existing model of that name unless ``force``. Returns the installed folder.
    """
    src = Path(src)
    card = check_model_dir(src)
    digest = sha256_file(src / WEIGHTS_FILE)
    if digest != card.weights_sha256:
        raise ModelLoadError(
            f"Cannot install {src}: its weights do not match the card (sha256 {digest[:12]}… ≠ "
            f"{card.weights_sha256[:12] or 'none'}…). Re-export the model."
        )
    name = name or card.name
    if not _NAME.match(name) or name in (".", ".."):
        raise ModelCardError(
            f"Model name {name!r} cannot be a folder name; use letters, digits, '.', '_', '-' or spaces (≤ 100)."
        )
    target = models_dir() / name
    if target.exists() and not force:
        raise ModelCardError(f"A model named {name!r} is already installed at {target}; use --force to replace it.")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f"{name}.installing"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    for f in (CARD_FILE, WEIGHTS_FILE):
        shutil.copy2(src / f, tmp / f)
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    return target
