"""Errors of the training pipeline; all are :class:`~core.errors.CoreError`, so the CLIs print them as one line."""

from __future__ import annotations

from core.errors import CoreError


class LabelError(CoreError):
    """Labels cannot be made or read: no cells found, unreadable or out-of-range label images."""


class DatasetError(CoreError):
    """No usable training data (no slides, no patches with tissue, an empty split)."""


class TrainingError(CoreError):
    """Training cannot start or resume (output directory taken, checkpoint mismatch, bad option)."""
