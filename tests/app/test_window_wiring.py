"""The window's wiring: every shortcut reaches its controller, the layer choices survive another
slide, and no controller holds the window (they get their parts in the constructor)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QKeySequence

from app.viewer import ToolMode

#: Every shortcut of the window and the menu entry it belongs to (QuPath's keys where it has one).
SHORTCUTS = {
    "D": "Show &cells", "A": "Show &regions", "F": "&Fill regions", "H": "Density &map",
    "M": "Move", "S": "Select", "P": "Polygon", "R": "Rectangle", "B": "Brush",
    "Ctrl+P": "&Report…", "Ctrl+,": "&Settings…", "Ctrl+R": "&Run analysis", "Ctrl+0": "Zoom to &fit",
    "Shift+C": "&Brightness && contrast…", "Shift+X": "Explain the call under the cursor",
}
STANDARD = {"open_slide_action": QKeySequence.StandardKey.Open, "quit_action": QKeySequence.StandardKey.Quit,
            "undo_action": QKeySequence.StandardKey.Undo, "redo_action": QKeySequence.StandardKey.Redo,
            "delete_action": QKeySequence.StandardKey.Delete}


def test_every_shortcut_is_on_its_action(window) -> None:  # noqa: ANN001
    actions = window.actions()
    by_key = {a.shortcut().toString(): a.text() for a in actions if not a.shortcut().isEmpty()}
    for key, text in SHORTCUTS.items():
        assert by_key.get(key) == text, key
    for name, standard in STANDARD.items():  # the platform's keys (Quit has none on some)
        assert getattr(window, name).shortcut().toString() == QKeySequence(standard).toString(), name


def test_keys_toggle_layers_and_tools_and_the_choices_survive_another_slide(qtbot, window, slide_path: Path) -> None:  # noqa: ANN001
    assert window.cases.open_slide_file(slide_path, "T-WIRING-1")
    window.activateWindow()
    window.view.setFocus()
    qtbot.keyClick(window.view, Qt.Key.Key_D)  # hide the cells, as the user presses it
    assert not window.cells_action.isChecked() and not window.layers_panel.cells_box.isChecked()
    assert not window.view.cells.isVisible()
    qtbot.keyClick(window.view, Qt.Key.Key_P)
    assert window.view.tool_mode is ToolMode.POLYGON and window.tool_actions[ToolMode.POLYGON].isChecked()
    qtbot.keyClick(window.view, Qt.Key.Key_M)
    assert window.view.tool_mode is ToolMode.MOVE
    window.layers_panel.regions_box.setChecked(False)  # the dock's box drives the action and the layer
    assert not window.regions_action.isChecked() and not window.view.regions.visible

    assert window.cases.open_slide_file(slide_path, "T-WIRING-2")  # a new slide: new layers, same choices
    assert window.windowTitle().startswith("T-WIRING-2 v1")
    assert not window.view.cells.isVisible() and not window.view.regions.visible
    assert window.viewer.cells_visible is False and window.viewer.regions_visible is False
    window.regions_action.trigger()
    assert window.view.regions.visible and window.layers_panel.regions_box.isChecked()


def test_no_controller_holds_the_window(window) -> None:  # noqa: ANN001
    controllers = [window.prompts, window.viewer, window.channels, window.regions, window.cases, window.analysis,
                   window.results, window.signing, window.report, window.settings_controller, window.saliency]
    assert len({type(c) for c in controllers}) == len(controllers)
    for controller in controllers:
        assert isinstance(controller, QObject) and controller.parent() is window  # kept alive by the window
        held = [name for name, value in vars(controller).items() if value is window]
        # Prompts shows dialogs over the window and the saliency controller watches it for Esc; those
        # hold it as the widget they need, never to call into it.
        assert held in ([], ["widget"], ["host"]), (type(controller).__name__, held)
