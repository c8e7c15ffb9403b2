from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import SmallInt, Varchar
from piccolo.columns.indexes import IndexMethod

ID = "2026-11-23T04:17:57:532339"
VERSION = "1.38.0"
DESCRIPTION = "True"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="linebox", description=DESCRIPTION)

    manager.add_column(
        table_class_name="Group",
        tablename="ring_group",
        column_name="sticky_days",
        db_column_name="sticky_days",
        column_class_name="SmallInt",
        column_class=SmallInt,
        params={
            "default": 30,
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

    manager.add_column(
        table_class_name="Hotline",
        tablename="hotline",
        column_name="anonymous",
        db_column_name="anonymous",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 8,
            "default": "allow",
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

    manager.add_column(
        table_class_name="Hotline",
        tablename="hotline",
        column_name="schedule_override",
        db_column_name="schedule_override",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 8,
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
