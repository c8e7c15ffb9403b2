"""Fixtures every suite may use: settings and a database of the test's own.

`tests/unit/test_web_calls.py` and `test_health.py` keep their own variants."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from piccolo.apps.migrations.tables import Migration
from piccolo.engine.base import Engine

from appliance import db
from appliance import settings as settings_mod
from appliance.settings import Settings
from appliance.tables import TABLES


@pytest.fixture
def tmp_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings whose data directory (plan file, SQLite database) is `tmp_path`;
    the process's previous settings come back after the test."""
    monkeypatch.setattr(settings_mod, "_current", settings_mod._current)
    # A missing config file keeps a developer's /etc/linebox/linebox.toml (or
    # the appliance's own) out of the test: the realm in digest hashes is ours.
    environ = {
        "LINEBOX_DATA_DIR": str(tmp_path),
        "LINEBOX_CONFIG": str(tmp_path / "absent.toml"),
    }
    settings = settings_mod.load(environ=environ)
    settings_mod.override(settings)
    return settings


@pytest.fixture
def database(tmp_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """An empty, migrated SQLite database in the test's data directory, with
    every table pointed at it; the tables' previous engines come back after."""
    previous = {table: table._meta.db for table in TABLES}
    monkeypatch.setattr(db, "_engine", db._engine)
    engine = db.configure(tmp_settings.database_url)
    # Imported only now, so that its import-time `db.engine()` finds this engine.
    from appliance import piccolo_conf

    # piccolo migrates `piccolo_conf.DB` and records what ran through its
    # `Migration` table, which keeps the first engine it saw: point both here.
    monkeypatch.setattr(piccolo_conf, "DB", engine)
    monkeypatch.setattr(Migration._meta, "db", engine)
    db.migrate()
    yield engine
    for table, engine_before in previous.items():
        table._meta.db = engine_before
