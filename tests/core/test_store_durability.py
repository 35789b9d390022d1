"""Nothing is lost: a writer killed with SIGKILL mid-save, and two processes writing one SQLite file.

Kill design: a child process saves 1,000,000 cells (33 MB, ten chunk rows) in one transaction.
SQLite's page cache is 2 MB, so the uncommitted pages spill into the WAL file long before COMMIT;
the parent kills the child with SIGKILL at three points: while the WAL is still growing
(``mid_write``), inside the engine's ``commit`` event with every row written but COMMIT not yet
sent (``before_commit``, deterministic), and after ``save_cells`` returned (``after_commit``).
Then it opens the file: ``PRAGMA integrity_check`` is "ok", foreign keys hold, and the analysis
has either all its cells and the audit row, or none of either.

Two-writer design: two child processes wait on a start file, then both open a fresh database
(racing to create the schema) and each writes 50 cases, each followed by an update (a transaction
that reads then writes, the case that fails with "database is locked" without BEGIN IMMEDIATE).
Both must exit 0, and all 100 cases with their 200 audit rows must be there.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from store_fixtures import ROOT, child_env

from core.store import CaseStore

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

CHILD = str(Path(__file__).with_name("store_fixtures.py"))
N_CELLS = 1_000_000


def _wait_for_line(proc: subprocess.Popen[str], prefix: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(prefix):
            return line.strip()
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"child never printed {prefix!r}; stderr: {proc.stderr.read() if proc.stderr else ''}")


def _check_file(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


@pytest.mark.parametrize("mode", ["mid_write", "before_commit", "after_commit"])
def test_kill_during_save_loses_nothing_or_everything(tmp_path: Path, mode: str) -> None:
    db = tmp_path / "cases.db"
    wal = Path(f"{db}-wal")
    proc = subprocess.Popen(
        [sys.executable, CHILD, "save_cells", f"sqlite:///{db}", str(N_CELLS), mode],
        cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        analysis_id = int(_wait_for_line(proc, "ANALYSIS").split()[1])
        if mode == "mid_write":
            start = wal.stat().st_size
            deadline = time.monotonic() + 60
            while wal.stat().st_size < start + 4_000_000 and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.001)
        else:
            _wait_for_line(proc, "COMMITTING" if mode == "before_commit" else "SAVED")
        wal_at_kill = wal.stat().st_size
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert wal_at_kill > 4_000_000  # cell pages had reached the file when the process died
    _check_file(db)
    with CaseStore.open(f"sqlite:///{db}") as store:
        cells = store.load_cells(analysis_id)
        n_cells = store.get_analysis(analysis_id).n_cells
        saves = [e for e in store.audit_entries() if e.action == "save_cells"]
    assert len(cells) in (0, N_CELLS)
    print(f"{mode}: WAL {wal_at_kill / 1e6:.1f} MB at kill, {len(cells)} cells visible after")
    if mode == "before_commit":
        assert len(cells) == 0
    if mode == "after_commit":
        assert len(cells) == N_CELLS
    if len(cells) == 0:
        assert n_cells is None and saves == []
    else:
        assert n_cells == N_CELLS and [e.after["n_cells"] for e in saves] == [N_CELLS]
    _check_file(db)


def test_two_processes_write_one_sqlite_file(tmp_path: Path) -> None:
    db = tmp_path / "cases.db"
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, CHILD, "create_cases", f"sqlite:///{db}", tag, "50", str(go)],
            cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for tag in ("A", "B")
    ]
    for proc in procs:
        _wait_for_line(proc, "READY")  # both have imported everything and poll for the start file
    go.touch()
    results = [p.communicate(timeout=240) for p in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err[-3000:]
        assert "DONE" in out and "locked" not in err
    _check_file(db)
    with CaseStore.open(f"sqlite:///{db}") as store:
        cases = store.find_cases("")
        entries = store.audit_entries()
    assert sorted(c.accession for c in cases) == sorted(f"{t}-{i:03d}" for t in "AB" for i in range(50))
    assert all(c.notes == f"written by {c.accession[0]}" for c in cases)
    assert len(entries) == 200
    writers = [e.who for e in entries]
    switches = sum(a != b for a, b in zip(writers, writers[1:], strict=False))
    assert switches >= 3, "the two writers did not overlap, so this test proved nothing"
    assert {(e.who, e.action) for e in entries} == {
        (f"user-{t}", a) for t in "AB" for a in ("create", "update")
    }
