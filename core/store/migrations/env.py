"""Alembic environment of the case store.

The store runs migrations itself (``core.store.engine.upgrade_to_head``) and hands Alembic an
open connection in ``config.attributes["connection"]``, inside a transaction it owns; no
``alembic.ini`` exists. To write the next revision, migrate a scratch database to the current
head, change ``models.py``, then autogenerate against it and review the result::

    from alembic import command
    from core.store.engine import alembic_config, make_engine, upgrade_to_head
    engine = make_engine("sqlite:////tmp/dev.db"); upgrade_to_head(engine)
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.revision(config, message="what changed", autogenerate=True, rev_id="0002")
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from core.store.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(*, url: str | None = None, connection: Connection | None = None, literal_binds: bool = False) -> None:
    context.configure(target_metadata=target_metadata, render_as_batch=True, compare_type=True, url=url,
                      connection=connection, literal_binds=literal_binds)


def run_offline() -> None:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    _configure(url=url, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("Pass a database: alembic -x url=sqlite:////path/to/cases.db ...")
    from core.store.engine import make_engine  # the same SQLite settings as the store

    with make_engine(url).connect() as conn:
        _configure(connection=conn)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
