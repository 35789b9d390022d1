"""Fixtures and child-process helpers for the case store tests (tests/core/test_store*.py).

- ``store_url``/``store``: each test runs against SQLite and, marked ``postgres``, against a real
  throwaway PostgreSQL server started by :func:`pg_server` on loopback in a temporary folder
  (as root, the server runs as the ``postgres`` OS user, which PostgreSQL insists on). When no
  server can be started the PostgreSQL variant skips and says what is missing.
- Run as a script, this file is the child process of the durability tests::

      python tests/core/store_fixtures.py save_cells URL N_CELLS MODE
      python tests/core/store_fixtures.py create_cases URL TAG N GO_FILE

Test modules load it with ``pytest_plugins = ["store_fixtures"]`` (one PostgreSQL server for the
whole run) and import helpers from it, so pytest must not rewrite it: PYTEST_DONT_REWRITE.
"""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # when run as a child script
    sys.path.insert(0, str(ROOT))

from core.store import CaseStore  # noqa: E402

MPP = (0.25, 0.5)


def make_cells(n: int, seed: int = 0) -> pd.DataFrame:
    """A cell table of ``n`` random cells (CONTRACTS.md columns) on a slide of mpp :data:`MPP`."""
    rng = np.random.default_rng(seed)
    x_um = rng.uniform(0, 20_000, n)
    y_um = rng.uniform(0, 20_000, n)
    class_id = rng.integers(0, 5, n)
    from core.classes import CLASS_NAMES

    return pd.DataFrame(
        {
            "x_px": x_um / MPP[0],
            "y_px": y_um / MPP[1],
            "x_um": x_um,
            "y_um": y_um,
            "class_name": np.asarray(CLASS_NAMES, dtype=object)[class_id],
            "class_id": class_id,
            "probability": rng.uniform(0.2, 1.0, n),
            "area_um2": rng.uniform(10, 80, n),
        }
    )


def new_analysis(store: CaseStore, accession: str, slide_file: Path) -> tuple[int, int]:
    """(case id, analysis id) of a new draft case with one slide and a running analysis."""
    case = store.create_case(accession)
    slide = store.add_slide(case.id, slide_file, mpp=MPP, channels=["Hoechst"], is_synthetic=True)
    run = store.start_analysis(
        case.id, slide.id, model_name="unet-test", model_sha256="ab" * 32, parameters={"tile": 256},
        device="cpu", precision="fp32",
    )
    return case.id, run.id


# -- PostgreSQL --------------------------------------------------------------------------------


def _pg_bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    candidates = [Path(found).parent] if found else []
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    candidates += [Path("/usr/local/pgsql/bin")]
    return next((d for d in candidates if (d / "initdb").exists() and (d / "pg_ctl").exists()), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """A throwaway PostgreSQL cluster in a temporary folder, trust auth on 127.0.0.1 only."""

    def __init__(self) -> None:
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            pytest.skip("PostgreSQL test needs the psycopg2 driver (pip install psycopg2-binary)")
        bindir = _pg_bindir()
        if bindir is None:
            pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin")
        self.bindir = bindir
        self.prefix: list[str] = []
        self.folder = Path(tempfile.mkdtemp(prefix="hs-pg-"))
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the postgres user
            import pwd

            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no 'postgres' OS user to run the server as")
            os.chown(self.folder, pw.pw_uid, pw.pw_gid)
            if shutil.which("runuser"):
                self.prefix = ["runuser", "-u", "postgres", "--"]
            elif shutil.which("su"):
                self.prefix = ["su", "postgres", "-s", "/bin/sh", "-c"]
            else:
                pytest.skip("running as root and neither runuser nor su is available to run the server as postgres")
        self.port = _free_port()
        self.data = self.folder / "data"
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        options = f"-k {self.folder} -h 127.0.0.1 -p {self.port} -F -c max_connections=40"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"), "-w", "-t", "60",
                  "-o", options, "start")
        self.admin_url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if self.prefix and self.prefix[-1] == "-c":
            command = [*self.prefix, shlex.join(command)]
        else:
            command = [*self.prefix, *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=self.folder)
        if result.returncode != 0:
            log = self.folder / "server.log"
            detail = (result.stderr or result.stdout).strip()[-500:]
            if log.exists():
                detail += " | server log: " + log.read_text(errors="replace")[-500:]
            self.stop()
            pytest.skip(f"cannot start a PostgreSQL server: {tool} failed: {detail}")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            command = [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]
            if self.prefix and self.prefix[-1] == "-c":
                command = [*self.prefix, shlex.join(command)]
            else:
                command = [*self.prefix, *command]
            subprocess.run(command, capture_output=True, timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)

    def _admin(self, sql: str) -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(sql))
        finally:
            engine.dispose()

    def create_schema(self, name: str) -> str:
        """A URL whose connections see only the new, empty schema ``name`` (its search_path).

        A schema per test instead of a database per test: CREATE DATABASE takes over a second.
        """
        self._admin(f'CREATE SCHEMA "{name}"')
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres?options=-csearch_path%3D{name}"

    def drop_schema(self, name: str) -> None:
        self._admin(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = PgServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database: a SQLite file, or a fresh schema on the test server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cases.db'}"
        return
    server: PgServer = request.getfixturevalue("pg_server")
    name = f"hs_test_{os.getpid()}_{time.monotonic_ns()}"
    url = server.create_schema(name)
    try:
        yield url
    finally:
        server.drop_schema(name)


@pytest.fixture
def store(store_url: str) -> Iterator[CaseStore]:
    with CaseStore.open(store_url, user="tester") as opened:
        yield opened


@pytest.fixture
def slide_file(tmp_path: Path) -> Path:
    path = tmp_path / "slide.ome.tif"
    path.write_bytes(b"II*\x00" + bytes(range(256)) * 20_000)  # 5 MB: first and last MiB differ from middle
    return path


# -- child processes ---------------------------------------------------------------------------


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def _child_save_cells(url: str, n_cells: int, mode: str) -> None:
    """Saves ``n_cells`` in one transaction; ``mode`` says where it stops to be killed.

    before_commit: everything written, sleeps in the engine's ``commit`` event (before COMMIT).
    after_commit: sleeps after save_cells returned. mid_write: no pause; the parent kills it
    when the WAL file grows.
    """
    from sqlalchemy import event

    slide = Path(url.removeprefix("sqlite:///")).with_name("slide.bin")
    slide.write_bytes(b"slide" * 1000)
    store = CaseStore.open(url)
    _case_id, analysis_id = new_analysis(store, "KILL-1", slide)
    cells = make_cells(n_cells, seed=1)
    print(f"ANALYSIS {analysis_id}", flush=True)
    if mode == "before_commit":
        def pause(_conn: object) -> None:
            print("COMMITTING", flush=True)
            time.sleep(600)

        event.listen(store.engine, "commit", pause)
    store.save_cells(analysis_id, cells)
    print("SAVED", flush=True)
    time.sleep(600)


def _child_create_cases(url: str, tag: str, n: int, go_file: str) -> None:
    """Waits for ``go_file``, opens the store (racing the other child to migrate it) and writes."""
    print("READY", flush=True)
    deadline = time.monotonic() + 120
    while not os.path.exists(go_file) and time.monotonic() < deadline:
        time.sleep(0.005)
    store = CaseStore.open(url, user=f"user-{tag}")
    # Second start line: both have opened (one may have waited for the other's migration), so the
    # writes below overlap however the two processes were scheduled until now.
    Path(f"{go_file}-{tag}").touch()
    while len(glob.glob(f"{glob.escape(go_file)}-*")) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    for i in range(n):
        case = store.create_case(f"{tag}-{i:03d}", patient_id=f"P{i}")
        store.update_case(case.id, notes=f"written by {tag}")  # read-then-write transaction
        store.find_cases(tag)
        time.sleep(0.002)  # a user's pace, far faster than a lab's: lets the other writer in between
    store.close()
    print("DONE", flush=True)


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    if command == "save_cells":
        _child_save_cells(rest[0], int(rest[1]), rest[2])
    elif command == "create_cases":
        _child_create_cases(rest[0], rest[1], int(rest[2]), rest[3])
    else:
        raise SystemExit(f"unknown command {command!r}")
