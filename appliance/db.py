"""The database engine and migrations.

SQLite (WAL) in the data directory by default, PostgreSQL when
`LINEBOX_DATABASE_URL` says so. piccolo finds the engine through
`appliance.piccolo_conf`; tests and `linebox` commands call `configure()`
to point every table at the engine of the settings in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sqlite3
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

from piccolo.engine.base import Engine
from piccolo.engine.sqlite import SQLiteEngine

from appliance import settings as settings_mod
from appliance.errors import SettingsError
from appliance.tables import TABLES

os.environ.setdefault("PICCOLO_CONF", "appliance.piccolo_conf")

_engine: Engine | None = None


def sqlite_path(url: str) -> Path | None:
    """The file of a `sqlite:///…` URL, or None for another database."""
    # sqlite:///relative/path, sqlite:////absolute/path (as SQLAlchemy writes them)
    if url.startswith("sqlite:///"):
        return Path(unquote(url[len("sqlite:///") :]))
    return None


class LineboxSQLiteEngine(SQLiteEngine):
    """piccolo's SQLite engine with the pragmas linebox relies on, set on
    every connection (SQLite keeps them per connection)."""

    async def get_connection(self):  # type: ignore[no-untyped-def]
        connection = await super().get_connection()
        # WAL + NORMAL: a commit is a write to the log, not an fsync; the
        # database stays consistent on power loss, losing at most the last
        # commits, which the worker's queue redelivers.
        await connection.execute("PRAGMA synchronous = NORMAL")
        await connection.execute("PRAGMA busy_timeout = 30000")
        return connection


def make_engine(url: str) -> Engine:
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _prepare_sqlite(path)
        # A generous busy timeout: the web app and the worker write concurrently.
        return LineboxSQLiteEngine(path=str(path), timeout=30)
    parsed = urlparse(url)
    if parsed.scheme in ("postgresql", "postgres"):
        from piccolo.engine.postgres import PostgresEngine

        return PostgresEngine(config={"dsn": url})
    raise SettingsError(f"database url {url!r}: use sqlite:///path or postgresql://…")


def _prepare_sqlite(path: Path) -> None:
    # WAL lets readers (the portal) run while the worker writes. journal_mode is
    # stored in the file, so setting it once is enough; synchronous=NORMAL in WAL
    # keeps the database consistent on power loss and may lose only the last
    # transactions before it, which the worker's queue redelivers.
    with sqlite3.connect(path, timeout=30) as conn:
        conn.execute("PRAGMA journal_mode=WAL")


def configure(url: str | None = None) -> Engine:
    """Point every table at the engine for `url` (default: the settings')."""
    global _engine
    url = url or settings_mod.get().database_url
    engine = make_engine(url)
    for table in TABLES:
        table._meta.db = engine
    # piccolo's migration runner reads the engine from piccolo_conf and keeps
    # its bookkeeping table bound to the first engine it saw: follow along,
    # or a second configure() in one process would migrate the old database.
    from piccolo.apps.migrations.tables import Migration

    Migration._meta.db = engine
    conf = sys.modules.get("appliance.piccolo_conf")
    if conf is not None:
        conf.DB = engine  # type: ignore[attr-defined]
    _engine = engine
    return engine


def engine() -> Engine:
    return _engine or configure()


async def migrate_async() -> None:
    """Bring the schema up to date with piccolo's migrations (idempotent)."""
    from piccolo.apps.migrations.commands.forwards import run_forwards

    engine()
    chatter = io.StringIO()  # piccolo prints its progress; keep it for errors only
    with contextlib.redirect_stdout(chatter):
        response = await run_forwards(app_name="linebox", migration_id="all", fake=False)
    if not response.success:
        raise SettingsError(f"database migration failed: {response.message}\n{chatter.getvalue()}")


def migrate() -> None:
    asyncio.run(migrate_async())
