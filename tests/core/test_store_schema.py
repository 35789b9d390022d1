"""The store's schema comes from its Alembic migrations, matches the ORM, and ships in the package."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from store_fixtures import ROOT

from core.errors import StoreError
from core.store import CaseStore, default_url
from core.store.engine import alembic_config, current_revision, head_revision, make_engine
from core.store.models import Base

pytest_plugins = ["store_fixtures"]  # store, store_url, slide_file, pg_server

TABLES = {
    "alembic_version", "analyses", "audit_log", "case_analyses", "case_slides", "cases", "cell_chunks",
    "regions", "reports", "scores", "slides", "users",
}


def test_open_migrates_a_new_database_to_head(store: CaseStore) -> None:
    assert head_revision() == "0002"
    assert current_revision(store.engine) == "0002"
    assert set(inspect(store.engine).get_table_names()) == TABLES


def test_orm_metadata_matches_the_migrated_schema(store: CaseStore) -> None:
    with store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diffs == []


def test_downgrade_and_upgrade_again(store_url: str) -> None:
    CaseStore.open(store_url).close()
    engine = make_engine(store_url)
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    with CaseStore.open(store_url) as store:
        assert store.create_case("AGAIN").id == 1


def test_sqlite_connection_settings(tmp_path: Path) -> None:
    with CaseStore.open(f"sqlite:///{tmp_path / 'c.db'}") as store, store.engine.connect() as conn:
        pragma = {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar() for name in
                  ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")}
    assert pragma == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 10_000, "synchronous": 2}


def test_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    CaseStore.open(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(StoreError, match="newer version of HoechstScore"):
        CaseStore.open(f"sqlite:///{path}")


def test_default_url_and_bad_url() -> None:
    assert default_url().startswith("sqlite:///") and default_url().endswith("cases.db")
    with pytest.raises(StoreError, match="Invalid database URL"):
        CaseStore.open("not a url")


def test_migrations_work_from_an_installed_wheel(tmp_path: Path) -> None:
    """Builds a wheel from pyproject.toml + core/, installs it into a folder by unzipping, and opens a
    store from there in a fresh interpreter that cannot see the source tree."""
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copy(ROOT / "setup.py", source)  # lists the packages
    (source / "resources").mkdir()  # the shipped files' package, without its 28 MB (tests/core/test_resources.py)
    shutil.copy(ROOT / "resources" / "__init__.py", source / "resources")
    shutil.copytree(ROOT / "core", source / "core", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    built = subprocess.run(  # what pip does, without pip's start-up time: PEP 517 build_wheel
        [sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_wheel({str(tmp_path / 'dist')!r})"],
        cwd=source, capture_output=True, text=True, timeout=300,
    )
    if built.returncode != 0 and "No module named 'setuptools'" in built.stderr:
        pytest.skip("building a wheel needs setuptools in the environment")
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "core/store/migrations/env.py" in names
    assert "core/store/migrations/versions/0001_initial.py" in names
    assert "core/store/migrations/versions/0002_users_signatures.py" in names
    assert "hoechstscore_resources/__init__.py" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    script = (
        "import core.store, sys; from core.store import CaseStore;"
        f"assert core.store.__file__.startswith({str(site)!r}), core.store.__file__;"
        f"s = CaseStore.open('sqlite:///{tmp_path / 'installed.db'}'); s.create_case('W-1');"
        "from core.store.engine import current_revision; print(current_revision(s.engine))"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "0002"
