"""The headless install's promise, checked on the pinned dependencies (the full check, a fresh venv
without Qt, is ``tests/headless/check_headless.sh``: about 10 minutes, so not part of ``make test``)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
QT = {"pyside6-essentials", "pyqtgraph", "pytest-qt"}


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[=<>\[ ;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_base_install_has_no_qt_and_dev_still_has_everything() -> None:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    base = _names(project["dependencies"])
    assert not base & QT, f"Qt in the base dependencies: {base & QT}"
    assert {"dask", "distributed", "pyarrow"} <= base  # cohorts run on a headless node
    assert {"pyside6-essentials", "pyqtgraph"} <= _names(extras["app"])
    selves = [r for r in extras["dev"] if r.startswith("hoechstscore[")]
    assert len(selves) == 1 and {"app", "onnx", "postgres"} <= set(selves[0][len("hoechstscore["):-1].split(","))
    assert "pytest-qt" in _names(extras["dev"])
    assert project["scripts"]["hoechstscore"] == "app.launch:main"
