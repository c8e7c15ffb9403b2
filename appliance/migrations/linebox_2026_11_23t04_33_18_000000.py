"""Call records: composite indexes for the portal's call list of one tenant
(filter by date range and status, newest first). Plain SQL that SQLite and
PostgreSQL both accept."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-23T04:33:18:000000"
VERSION = "1.38.0"
DESCRIPTION = "call_record indexes for the tenant call list"

INDEXES = {
    "call_record_tenant_started": "call_record (tenant, started_at)",
    "call_record_tenant_status_started": "call_record (tenant, status, started_at)",
}


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="linebox", description=DESCRIPTION)

    async def create() -> None:
        from appliance.tables import CallRecord

        for name, on in INDEXES.items():
            await CallRecord.raw(f"CREATE INDEX IF NOT EXISTS {name} ON {on}")

    async def drop() -> None:
        from appliance.tables import CallRecord

        for name in INDEXES:
            await CallRecord.raw(f"DROP INDEX IF EXISTS {name}")

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    return manager
