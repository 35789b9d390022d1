"""Settings: schema version, migration of the v1 flat layout, round trip through QSettings."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

from app.settings import SCHEMA_VERSION, AppSettings, SettingsStore, migrate


def test_v1_settings_are_migrated() -> None:
    old = {"model_dir": "/m", "im_width_um": 360, "db_url": "sqlite:///x.db", "lab_name": "Lab", "recent": ["A1"]}
    s = AppSettings.from_dict(old)
    assert s.schema_version == SCHEMA_VERSION
    assert s.analysis.model_dir == "/m" and s.analysis.im_half_width_um == 360.0
    assert s.store.database_url == "sqlite:///x.db" and s.report.lab_name == "Lab"
    assert s.recent.cases == ["A1"]
    assert migrate({"schema_version": SCHEMA_VERSION, "x": 1})["x"] == 1


def test_settings_round_trip_and_recent(tmp_path: Path) -> None:
    store = SettingsStore(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    s = AppSettings()
    for acc in ("A", "B", "A"):
        s.remember("cases", acc)
    s.report.lab_name = "Pathology"
    store.save(s)
    back = store.load()
    assert back.recent.cases == ["A", "B"]
    assert back.report.lab_name == "Pathology"


def test_v2_precision_auto_becomes_fp32_and_a_lab_choice_is_kept() -> None:
    """v2's "auto" was a timing race at load; v3 pins fp32 (same numbers everywhere) unless chosen."""
    assert AppSettings().analysis.precision == "fp32"
    v2 = {"schema_version": 2, "analysis": {"model_dir": "/m", "precision": "auto"}}
    assert AppSettings.from_dict(v2).analysis.precision == "fp32"
    assert AppSettings.from_dict(v2).analysis.model_dir == "/m"
    v2["analysis"]["precision"] = "bf16"
    assert AppSettings.from_dict(v2).analysis.precision == "bf16"


def test_settings_dialog_offers_the_precisions_and_keeps_the_choice(qtbot) -> None:  # noqa: ANN001
    from app.dialogs.settings_dialog import SettingsDialog

    dialog = SettingsDialog(AppSettings())
    qtbot.addWidget(dialog)
    choices = [dialog.precision.itemText(i) for i in range(dialog.precision.count())]
    assert choices == ["auto", "fp32", "bf16", "fp16"] and dialog.precision.currentText() == "fp32"
    dialog.precision.setCurrentText("bf16")
    assert dialog.result_settings().analysis.precision == "bf16"
