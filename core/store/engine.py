"""Database URL, engine, SQLite connection settings and migration to the newest schema.

SQLite is the default (one file per user, or a shared file on a lab drive); any SQLAlchemy URL
works (PostgreSQL is tested). Why the SQLite settings, set on every new connection:

- ``journal_mode=WAL``: readers never block the writer, and a killed process leaves the file
  consistent (uncommitted WAL frames are ignored on the next open).
- ``synchronous=FULL``: a committed case survives a power cut, not only a crash; a commit costs
  one extra fsync, negligible next to what a user saves.
- ``foreign_keys=ON``: SQLite does not check foreign keys unless asked, per connection.
- ``busy_timeout``: a second process waits up to 10 s for the write lock instead of failing.
- Write transactions start with ``BEGIN IMMEDIATE`` (the driver's own BEGIN is switched off): a
  transaction that reads and then writes would otherwise fail at once with "database is locked"
  when another process wrote in between, whatever the busy timeout.

Core never reads environment variables (STYLE.md §6): the app and CLI pass the URL.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import platformdirs
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.engine import Connection

from core.errors import StoreError

#: Alembic's script directory; ships inside the package (pyproject package-data).
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_MS = 10_000
#: Execution option read by the ``begin`` listener: "DEFERRED" (reads) or "IMMEDIATE" (writes).
SQLITE_BEGIN = "hoechstscore_sqlite_begin"
#: Serialises concurrent migrations on PostgreSQL (pg_advisory_xact_lock key; any constant).
_PG_MIGRATION_LOCK = 0x486F6563


def default_url() -> str:
    """SQLite file ``cases.db`` in the user's data folder (created on first open)."""
    folder = Path(platformdirs.user_data_dir("HoechstScore", appauthor=False))
    return f"sqlite:///{folder / 'cases.db'}"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; for SQLite, creates the folder and installs the settings above."""
    try:
        parsed = make_url(url)
    except Exception as err:  # sqlalchemy raises ArgumentError, but a bad str can raise others
        raise StoreError(f"Invalid database URL {url!r}: {err}. Example: sqlite:////path/to/cases.db") from err
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        try:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"Cannot create the folder for the case database {database}: {err}") from err
    engine = create_engine(parsed)
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    dbapi_connection.isolation_level = None  # the "begin" listener below emits BEGIN itself
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        _use_wal(cursor)
        cursor.execute("PRAGMA synchronous = FULL")
    finally:
        cursor.close()


def _use_wal(cursor: sqlite3.Cursor) -> None:
    """Switch the file to WAL (persistent: a no-op once done). Switching needs the file to itself,
    and SQLite answers "database is locked" at once, without waiting out the busy timeout, when a
    second program opens a new database at the same moment; so that one retries for as long as the
    busy timeout would have waited."""
    if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _sqlite_on_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations; no ``alembic.ini`` needed."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise StoreError(f"The store's migrations have {len(heads)} heads ({heads}); expected exactly one.")
    return heads[0]


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade_to_head(engine: Engine) -> None:
    """Bring the database to the newest schema in one transaction (no-op when it is there).

    Concurrent openers are serialised (SQLite: the write lock of BEGIN IMMEDIATE; PostgreSQL: an
    advisory lock), and Alembic reads the current revision inside that transaction, so two
    programs opening a new database at once cannot both create the tables.
    """
    head = head_revision()
    if current_revision(engine) == head:
        return
    config = alembic_config()
    with engine.connect().execution_options(**{SQLITE_BEGIN: "IMMEDIATE"}) as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        config.attributes["connection"] = conn
        try:
            command.upgrade(config, "head")
        except CommandError as err:  # e.g. a revision from a newer HoechstScore
            raise StoreError(
                f"Cannot update the case database {engine.url.render_as_string()}: {err}. "
                "It may have been written by a newer version of HoechstScore; update this one."
            ) from err
    if current_revision(engine) != head:
        raise StoreError(f"Migrating the case database to schema {head} failed; it is at {current_revision(engine)}.")
