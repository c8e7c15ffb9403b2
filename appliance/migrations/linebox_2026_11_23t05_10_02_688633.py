from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Varchar
from piccolo.columns.indexes import IndexMethod

ID = "2026-11-23T05:10:02:688633"
VERSION = "1.38.0"
DESCRIPTION = "call_record.recording_error"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="linebox", description=DESCRIPTION)

    manager.add_column(
        table_class_name="CallRecord",
        tablename="call_record",
        column_name="recording_error",
        db_column_name="recording_error",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 255,
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    return manager
