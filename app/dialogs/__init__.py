"""Dialogs: brightness/contrast, settings, report preview."""
