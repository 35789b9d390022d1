"""The app's look: Fusion with a dark palette (slides are dark; a bright frame dazzles next to them)."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

_COLOURS = {
    QPalette.ColorRole.Window: "#2b2e33",
    QPalette.ColorRole.WindowText: "#e6e6e6",
    QPalette.ColorRole.Base: "#202327",
    QPalette.ColorRole.AlternateBase: "#2f3338",
    QPalette.ColorRole.Text: "#e6e6e6",
    QPalette.ColorRole.Button: "#363a40",
    QPalette.ColorRole.ButtonText: "#e6e6e6",
    QPalette.ColorRole.Highlight: "#3d7bd9",
    QPalette.ColorRole.HighlightedText: "#ffffff",
    QPalette.ColorRole.ToolTipBase: "#363a40",
    QPalette.ColorRole.ToolTipText: "#e6e6e6",
    QPalette.ColorRole.PlaceholderText: "#8a8f98",
    QPalette.ColorRole.Link: "#6fb7ff",
}

_SHEET = """
QDockWidget::title { background: #33373d; padding: 5px 8px; font-weight: bold; }
QGroupBox { border: 1px solid #454a52; border-radius: 4px; margin-top: 14px; padding-top: 6px; }
QGroupBox::title { subcontrol-origin: margin; left: 8px; padding: 0 4px; color: #b9c0ca; }
QToolBar { spacing: 4px; padding: 3px; border: none; }
QToolButton:checked { background: #3d7bd9; border-radius: 3px; }
QTableWidget { gridline-color: #3b4047; }
QHeaderView::section { background: #33373d; padding: 4px; border: none; }
QStatusBar QLabel { color: #c8ccd2; padding: 0 6px; }
"""


def apply_style(app: QApplication) -> None:
    app.setStyle("Fusion")
    palette = QPalette()
    for role, colour in _COLOURS.items():
        palette.setColor(role, QColor(colour))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#777"))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor("#777"))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText, QColor("#777"))
    app.setPalette(palette)
    app.setStyleSheet(_SHEET)
