"""The piccolo app that owns linebox's tables and migrations."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from appliance.tables import TABLES

APP_CONFIG = AppConfig(
    app_name="linebox",
    migrations_folder_path=str(Path(__file__).parent / "migrations"),
    table_classes=TABLES,
    migration_dependencies=[],
    commands=[],
)
