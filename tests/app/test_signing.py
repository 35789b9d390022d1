"""Signing as a named lab user with a PIN, the signature's meaning, the guard on signed cases,
versions opened read-only and the audit log: real dialogs answered with real clicks and keys."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QMessageBox, QToolBar

from app.viewer import ToolMode
from tests.app.test_slide_questions import answer, click_ok


def _sign(qtbot, window, pin: str) -> list:  # noqa: ANN001
    def act(dialog) -> None:  # noqa: ANN001
        qtbot.keyClicks(dialog.secret, pin)
        click_ok(qtbot, dialog)
    seen = answer(qtbot, window, act)
    window.signing.sign_case()
    return seen


def _click(qtbot, box: QMessageBox, text: str) -> None:  # noqa: ANN001
    button = next(b for b in box.buttons() if b.text().replace("&", "") == text)
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def _tool_button(window, mode: ToolMode):  # noqa: ANN001, ANN202
    toolbar = window.findChild(QToolBar, "MainToolbar")
    return toolbar.widgetForAction(window.tool_actions[mode])


def test_sign_with_pin_then_new_version_before_any_tool(qtbot, window, slide_path: Path) -> None:  # noqa: ANN001
    assert window.cases.open_slide_file(slide_path, "SIGN-1")
    store = window.session.store
    # No users yet: the app offers to add one, then asks who signs.
    def add(dialog) -> None:  # noqa: ANN001
        for edit, text in ((dialog.username, "jdoe"), (dialog.display_name, "Dr Jane Doe"),
                           (dialog.secret, "2468"), (dialog.again, "2468")):
            qtbot.keyClicks(edit, text)
        click_ok(qtbot, dialog)

    seen = answer(qtbot, window, lambda box: _click(qtbot, box, "Add a lab user…"), add,
                  lambda d: d.reject())  # the sign dialog that follows: cancel
    window.signing.sign_case()
    assert [d.windowTitle() for d in seen] == ["Sign case", "Add a lab user", "Sign case SIGN-1 v1"]
    assert [u.username for u in store.list_users()] == ["jdoe"]
    assert not window.session.read_only

    seen = _sign(qtbot, window, "1111")  # wrong PIN: refused, still a draft
    assert "By signing you state" in seen[0].statement.text()
    assert not window.session.read_only
    assert "wrong" in window.reporter.last_dialog.informativeText()
    _click(qtbot, window.reporter.last_dialog, "OK")
    _sign(qtbot, window, "2468")
    case = window.session.case
    assert case.is_signed and case.signed_by == "Dr Jane Doe" and case.signature_meaning.startswith("Approval")
    assert not window.run_action.isEnabled() and not window.derive_action.isEnabled()
    assert window.view.read_only

    # The polygon tool on a signed case asks first; Cancel leaves the move tool and no polygon tool at all.
    seen = answer(qtbot, window, lambda box: _click(qtbot, box, "Cancel"))
    qtbot.mouseClick(_tool_button(window, ToolMode.POLYGON), Qt.MouseButton.LeftButton)
    assert len(seen) == 1 and "is signed by Dr Jane Doe" in seen[0].text()
    assert window.view.tool_mode is ToolMode.MOVE and window.session.case.id == case.id
    # Again, choosing New version: version 2 opens as a draft and the polygon tool is ready.
    answer(qtbot, window, lambda box: _click(qtbot, box, "New version"))
    qtbot.mouseClick(_tool_button(window, ToolMode.POLYGON), Qt.MouseButton.LeftButton)
    assert window.session.case.version == 2 and not window.session.read_only
    assert window.view.tool_mode is ToolMode.POLYGON

    # Version 1 is still openable, read-only, from Case › Versions….
    def pick_v1(dialog) -> None:  # noqa: ANN001
        dialog.table.selectRow(0)
        click_ok(qtbot, dialog)
    answer(qtbot, window, pick_v1)
    window.signing.versions_dialog()
    assert window.session.case.id == case.id and window.session.read_only
    assert "(signed)" in window.windowTitle()

    # The audit log names who did what.
    rows: list = []

    def read(dialog) -> None:  # noqa: ANN001
        t = dialog.table
        rows.extend([t.item(i, j).text() for j in range(t.columnCount())] for i in range(t.rowCount()))
        dialog.accept()
    answer(qtbot, window, read)
    window.signing.audit_dialog()
    assert any(r[1] == "jdoe" and r[3] == "case signed" for r in rows)
    assert any(r[3].startswith("case signature meaning: Approval") for r in rows)
    assert any(r[2] == "v2" and r[3] == "case new version" for r in rows)


def test_patient_fields_saved_and_locked_when_signed(qtbot, window, slide_path: Path) -> None:  # noqa: ANN001
    assert window.cases.open_slide_file(slide_path, "PAT-1")
    fields = window.case_panel.patient
    qtbot.keyClicks(fields.patient_id, "P-42")
    qtbot.keyClicks(fields.name, "Doe, John")
    qtbot.keyClicks(fields.birth_date, "1950-01-31")
    qtbot.mouseClick(fields.save, Qt.MouseButton.LeftButton)
    stored = window.session.store.get_case(window.session.case.id)
    assert (stored.patient_id, stored.patient_name, stored.patient_birth_date) == ("P-42", "Doe, John", "1950-01-31")
    assert not fields.save.isEnabled()
    window.session.store.add_user("jdoe", "Dr Jane Doe", "2468")
    _sign(qtbot, window, "2468")
    assert fields.patient_id.isReadOnly()


def test_hide_a_case_from_the_list_and_show_it_again(qtbot, window, slide_path: Path) -> None:  # noqa: ANN001
    assert window.cases.open_slide_file(slide_path, "HIDE-1")
    table = window.case_panel.table

    def listed() -> list[str]:
        return [table.item(i, 0).text() for i in range(table.rowCount())]
    assert listed() == ["HIDE-1"]
    window.hide_action.trigger()
    assert listed() == [] and window.hide_action.text() == "Show case in the list"
    box = window.case_panel.show_hidden  # click its tick box (the widget spans the dock, its text does not)
    qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=QPoint(8, box.height() // 2))
    assert listed() == ["HIDE-1"] and "hidden" in table.item(0, 2).text()
    window.hide_action.trigger()
    assert window.session.store.find_cases(include_hidden=False)[0].accession == "HIDE-1"
