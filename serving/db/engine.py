"""Open the cases database and bring its schema up to date.

SQLite is the embedded default (a file, WAL journal, foreign keys on); PostgreSQL is selected
by a `postgresql+psycopg://` URL. Migrations are Alembic's, run in code so that `triage serve`
and `triage db upgrade` need no alembic.ini.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class Database:
    """An engine and its session factory; one per process."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.engine = open_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def backend(self) -> str:
        return self.url.get_backend_name()

    def session(self) -> Session:
        return self.sessions()

    def upgrade(self) -> None:
        """Apply every migration not yet applied (a no-op on an up-to-date database)."""
        upgrade(self.engine)

    def check(self) -> str | None:
        """None when the database answers, else why not (for `/readyz`)."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as error:
            original = getattr(error, "orig", None) or error
            return f"{type(original).__name__}: {str(original).strip()[:200]}"
        return None

    def dispose(self) -> None:
        self.engine.dispose()


def open_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    # A database that stops answering must not hang the requests that try to record.
    connect_args = (
        {"connect_timeout": 3} if parsed.get_backend_name() == "postgresql" else {}
    )
    return create_engine(
        parsed, pool_pre_ping=True, pool_timeout=5, connect_args=connect_args
    )


def _sqlite_engine(url) -> Engine:
    if url.database and url.database != ":memory:":
        _private_file(Path(url.database))
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": 30}
    )

    @event.listens_for(engine, "connect")
    def _pragmas(connection, _record) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def _private_file(path: Path) -> None:
    """Create the database file readable only by its owner: it holds complaint text.

    SQLite gives its -wal and -shm files the database file's permissions.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    logger.info("database schema is at %s", revision)
