"""The app's saved settings: one typed object with sections, a schema version and migrations.

Stored as one JSON document in QSettings (key ``settings``), beside Qt's own window geometry and
dock state (binary, keys ``window/geometry`` and ``window/state``). Core never reads these: the
app passes values in (model folder, device, IM half-width, database URL, lab name and logo).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

SCHEMA_VERSION = 3
MAX_RECENT = 10


@dataclass
class AnalysisSection:
    """model_dir: "" = core's default model; device: "auto", "cpu" or "cuda"; IM half-width in µm.

    precision: "fp32" (default: the same numbers on every computer), "bf16", "fp16" (CUDA only) or
    "auto" (the device default of core.models.precision: fp32 on a CPU, bf16/fp16 on CUDA).
    """

    model_dir: str = ""
    device: str = "auto"
    precision: str = "fp32"
    im_half_width_um: float = 500.0
    cohort_csv: str = ""


@dataclass
class StoreSection:
    """database_url: "" = cases.db in the user's data folder (core.store default)."""

    database_url: str = ""


@dataclass
class ReportSection:
    lab_name: str = "Research laboratory"
    lab_address: str = ""
    logo_path: str = ""


@dataclass
class SlidesSection:
    """nuclear_channel: channel-name set (``channel_set_key``) -> the channel chosen as Hoechst/DAPI;
    last_folder: where file dialogs open next."""

    nuclear_channel: dict[str, str] = field(default_factory=dict)
    last_folder: str = ""


@dataclass
class RecentSection:
    cases: list[str] = field(default_factory=list)   # accession numbers, newest first
    slides: list[str] = field(default_factory=list)  # paths, newest first


@dataclass
class AppSettings:
    """Everything the app remembers between sessions."""

    schema_version: int = SCHEMA_VERSION
    analysis: AnalysisSection = field(default_factory=AnalysisSection)
    store: StoreSection = field(default_factory=StoreSection)
    report: ReportSection = field(default_factory=ReportSection)
    recent: RecentSection = field(default_factory=RecentSection)
    slides: SlidesSection = field(default_factory=SlidesSection)

    def remember(self, kind: str, value: str) -> None:
        """Put ``value`` first in the recent ``kind`` list ("cases" or "slides")."""
        items = [v for v in getattr(self.recent, kind) if v != value]
        setattr(self.recent, kind, [value, *items][:MAX_RECENT])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AppSettings:
        """Build from a (migrated) dict; unknown keys are dropped, missing ones get defaults."""
        data = migrate(dict(data))
        sections = {f.name: f.type for f in fields(cls) if f.name != "schema_version"}
        kwargs: dict[str, Any] = {}
        for name, default in ((n, getattr(cls(), n)) for n in sections):
            raw = data.get(name) or {}
            known = {f.name for f in fields(type(default))}
            kwargs[name] = type(default)(**{k: v for k, v in raw.items() if k in known})
        return cls(schema_version=SCHEMA_VERSION, **kwargs)


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v1 kept everything flat (``model_dir``, ``im_width_um``, ``db_url``, ``lab_name``, ``recent``)."""
    return {
        "schema_version": 2,
        "analysis": {"model_dir": data.get("model_dir", ""), "device": data.get("device", "auto"),
                     "im_half_width_um": float(data.get("im_width_um", 500.0))},
        "store": {"database_url": data.get("db_url", "")},
        "report": {"lab_name": data.get("lab_name", "Research laboratory")},
        "recent": {"cases": list(data.get("recent", []))},
    }


def _v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    """v2's precision "auto" meant a timing race at model load; v3 pins fp32 unless a lab chose otherwise."""
    analysis = dict(data.get("analysis") or {})
    if analysis.get("precision", "auto") == "auto":
        analysis["precision"] = "fp32"
    return {**data, "schema_version": 3, "analysis": analysis}


MIGRATIONS = {1: _v1_to_v2, 2: _v2_to_v3}


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Upgrade a settings dict step by step to SCHEMA_VERSION (a newer one is read as far as known)."""
    version = int(data.get("schema_version", 1))
    while version < SCHEMA_VERSION:
        data = MIGRATIONS[version](data)
        version = int(data["schema_version"])
    return data


class SettingsStore:
    """Loads and saves :class:`AppSettings` and the window layout in a QSettings."""

    def __init__(self, qsettings: QSettings | None = None) -> None:
        self.qsettings = qsettings or QSettings("HoechstScore", "HoechstScore")

    def load(self) -> AppSettings:
        raw = self.qsettings.value("settings", "")
        try:
            data = json.loads(raw) if isinstance(raw, str | bytes) and raw else {}
        except (TypeError, ValueError):
            data = {}
        return AppSettings.from_dict(data) if data else AppSettings()

    def save(self, settings: AppSettings) -> None:
        self.qsettings.setValue("settings", json.dumps(settings.to_dict()))
        self.qsettings.sync()

    def save_window(self, geometry: QByteArray, state: QByteArray) -> None:
        self.qsettings.setValue("window/geometry", geometry)
        self.qsettings.setValue("window/state", state)
        self.qsettings.sync()

    def window(self) -> tuple[QByteArray | None, QByteArray | None]:
        return self.qsettings.value("window/geometry"), self.qsettings.value("window/state")
