"""Errors raised by core. Each message names the failing value and the way out.

Core raises; it never opens dialogs or exits. The app and the CLIs catch :class:`CoreError` and
show ``str(err)`` to the user as it is, so every message is written for a lab user.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class CoreError(Exception):
    """Base class of every error core raises on purpose."""


class Cancelled(CoreError):
    """A long job stopped because its cancel token was set."""

    def __init__(self, message: str = "Cancelled by the user.") -> None:
        super().__init__(message)


class SlideError(CoreError):
    """A slide cannot be opened or read."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"Cannot open slide {self.path.name}: {reason}")


class SlideOpenError(SlideError):
    """The file is missing, not an image, corrupt or in an unsupported layout."""


class UncalibratedError(SlideError):
    """The slide has no pixel size; densities and model inference refuse it."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(
            path,
            "the file has no pixel size (µm per pixel). Enter the pixel size of the scan "
            "(e.g. 0.227 µm for a 20x Axioscan) before measuring or analysing it.",
        )


class ChannelNotFoundError(SlideError):
    """A requested channel (by name or role) is not in the slide."""

    def __init__(self, path: str | Path, wanted: str, available: Sequence[str]) -> None:
        self.wanted = wanted
        self.available = list(available)
        names = ", ".join(repr(n) for n in self.available) or "none"
        super().__init__(
            path,
            f"no channel matches {wanted!r}. Channels in this slide: {names}. "
            "Choose one of them explicitly (e.g. --channel NAME or a channel map).",
        )


class ModelCardError(CoreError):
    """A model card is missing, malformed, or describes something we cannot build."""


class ModelLoadError(CoreError):
    """Model weights are missing, altered (hash mismatch), or not loadable safely."""


class RegionError(CoreError):
    """A region's geometry is invalid, empty, or outside the slide."""


class ScoreError(CoreError):
    """A score cannot be computed (e.g. no reference cohort)."""


class StoreError(CoreError):
    """The case store refused an operation (e.g. editing a signed case)."""


class ConfigError(CoreError):
    """A configuration value or key is invalid; the message lists the valid ones."""


class ResourceError(CoreError):
    """A file shipped with HoechstScore (demo model, reference cohort, logo) cannot be found."""
