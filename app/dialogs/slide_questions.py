"""Questions asked when a slide is opened: which channel is the nuclear stain, and the pixel size.

Both answers change every number the app computes, so neither is guessed silently:

- :class:`ChannelDialog` is shown when a multichannel slide has no channel named like Hoechst/DAPI,
  or more than one. The answer is remembered per set of channel names (one scanner's naming), so
  the next slide from the same scanner opens without the question.
- :class:`PixelSizeDialog` starts empty. A value found in the file's metadata or a sidecar is shown
  as a suggestion the user must take on purpose; Enter on an empty field does nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtGui import QDoubleValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.slides import CHANNEL_ALIASES
from core.slides.channels import find_channel


def channel_set_key(names: Sequence[str]) -> str:
    """The settings key of a set of channel names: order and case do not matter."""
    return "|".join(sorted(n.strip().casefold() for n in names))


def nuclear_candidates(names: Sequence[str]) -> list[int]:
    """Indices of channels whose name alone says Hoechst/DAPI (core's aliases)."""
    return [i for i, n in enumerate(names) if find_channel([n], "hoechst", CHANNEL_ALIASES) is not None]


def needs_channel_choice(names: Sequence[str]) -> bool:
    """True when the nuclear channel cannot be told from the names: none or several candidates."""
    return len(names) > 1 and len(nuclear_candidates(names)) != 1


class ChannelDialog(QDialog):
    """Pick the channel the model reads (the nuclear stain: Hoechst or DAPI)."""

    def __init__(self, slide_name: str, names: Sequence[str], preselect: str | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Nuclear channel")
        layout = QVBoxLayout(self)
        found = nuclear_candidates(names)
        why = ("no channel is named Hoechst or DAPI" if not found else
               "several channels could be the nuclear stain")
        text = QLabel(f"<b>{slide_name}</b> has {len(names)} channels and {why}.<br>"
                      "Which one is the nuclear stain (Hoechst or DAPI)? The analysis reads only that channel.")
        text.setWordWrap(True)
        layout.addWidget(text)
        self.combo = QComboBox()
        self.combo.addItems([str(n) for n in names])
        start = names.index(preselect) if preselect in names else (found[0] if found else 0)
        self.combo.setCurrentIndex(start)
        layout.addWidget(self.combo)
        self.remember = QCheckBox("Use this channel for every slide with these channel names")
        self.remember.setChecked(True)
        layout.addWidget(self.remember)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def channel(self) -> str:
        return self.combo.currentText()


def suggested_mpp(path: str | Path) -> tuple[float, str] | None:
    """(µm per pixel, where it was found) from a sidecar JSON beside the slide, or None.

    Looked for: ``<slide name>.json`` or ``phantom.json`` with an ``mpp`` number (what the phantom
    and many export scripts write). Only a suggestion: the user confirms it.
    """
    p = Path(path)
    stem = p.name.split(".")[0]
    for sidecar in (p.with_name(stem + ".json"), p.with_name("phantom.json")):
        try:
            value = json.loads(sidecar.read_text(encoding="utf-8")).get("mpp")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, list | tuple) and value:
            value = value[0]
        if isinstance(value, int | float) and 0.01 <= float(value) <= 10:
            return float(value), sidecar.name
    return None


class PixelSizeDialog(QDialog):
    """Ask the pixel size of an uncalibrated slide; empty until the user types or takes a value."""

    def __init__(self, slide_name: str, suggestion: tuple[float, str] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Pixel size")
        layout = QVBoxLayout(self)
        text = QLabel(f"<b>{slide_name}</b> does not say its pixel size. Every density depends on it: "
                      "enter the scanner's µm per pixel at full resolution (see the scan's report).")
        text.setWordWrap(True)
        layout.addWidget(text)
        self.edit = QLineEdit()
        self.edit.setPlaceholderText("µm per pixel, e.g. as the scanner reports it")
        validator = QDoubleValidator(0.01, 10.0, 5, self.edit)
        validator.setNotation(QDoubleValidator.Notation.StandardNotation)
        self.edit.setValidator(validator)
        layout.addWidget(self.edit)
        self.suggestion = suggestion
        self.use_suggestion = QPushButton()
        if suggestion is not None:
            self.use_suggestion.setText(f"Use {suggestion[0]:g} µm (found in {suggestion[1]})")
            self.use_suggestion.clicked.connect(self._take_suggestion)
            layout.addWidget(self.use_suggestion)
        self.source = "entered by the user"
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.edit.textChanged.connect(self._update)
        self._update()

    def _take_suggestion(self) -> None:
        assert self.suggestion is not None
        self.edit.setText(f"{self.suggestion[0]:g}")
        self.source = f"suggested by {self.suggestion[1]}, confirmed by the user"

    def _update(self, _text: str = "") -> None:
        ok = self.edit.hasAcceptableInput()
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ok)
        if self.suggestion is not None and self.edit.text() != f"{self.suggestion[0]:g}":
            self.source = "entered by the user"

    def accept(self) -> None:
        if self.edit.hasAcceptableInput():
            super().accept()

    def value(self) -> float:
        return float(self.edit.text())
