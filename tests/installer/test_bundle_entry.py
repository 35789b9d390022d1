"""installer/bundle_entry.py: the bundle's one program runs the command named by how it was started.

Run here unfrozen, through links named like the bundle's commands, in a fresh interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENTRY = ROOT / "installer" / "bundle_entry.py"


def _run(link: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([sys.executable, str(link), *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_dispatches_on_the_name_it_was_started_as(tmp_path: Path) -> None:
    core = tmp_path / "hoechstscore-core"
    retrain = tmp_path / "hoechstscore-retrain"
    core.symlink_to(ENTRY)
    retrain.symlink_to(ENTRY)
    version = _run(core, "--version")
    assert version.returncode == 0 and version.stdout.startswith("HoechstScore "), version.stderr
    helped = _run(retrain, "--help")
    assert helped.returncode == 0 and "--resume" in helped.stdout, helped.stderr


def test_bundle_info_says_where_python_runs(tmp_path: Path) -> None:
    app = tmp_path / "hoechstscore"
    app.symlink_to(ENTRY)
    info = _run(app, "--bundle-info")
    assert info.returncode == 0, info.stderr
    lines = dict(line.split(": ", 1) for line in info.stdout.splitlines())
    assert lines["sys.executable"] == sys.executable and lines["frozen"] == "False"
    assert lines["cuda available"] in ("True", "False") and lines["qt"][0].isdigit()
