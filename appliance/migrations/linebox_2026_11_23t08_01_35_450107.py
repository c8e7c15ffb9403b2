from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Varchar

ID = "2026-11-23T08:01:35:450107"
VERSION = "1.38.0"
DESCRIPTION = "True"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="linebox", description=DESCRIPTION
    )

    manager.alter_column(
        table_class_name="CallRecord",
        tablename="call_record",
        column_name="caller_area_code",
        db_column_name="caller_area_code",
        params={"index": True},
        old_params={"index": False},
        column_class=Varchar,
        old_column_class=Varchar,
        schema=None,
    )

    return manager
