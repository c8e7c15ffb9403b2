"""The one huey instance, built from settings: SqliteHuey in the data directory
by default, RedisHuey when `LINEBOX_REDIS_URL` is set.

Kamailio's processes enqueue call events through it. huey creates its tables
when the instance is built and closes that connection again, so Kamailio can
import this before it forks: each process opens its own connection on first
use.
"""

from __future__ import annotations

from huey import Huey, RedisHuey, SqliteHuey
from huey.storage import SqliteStorage

from appliance import settings as settings_mod


class DurableSqliteStorage(SqliteStorage):
    """WAL with synchronous=NORMAL: an enqueue costs a write, not an fsync.

    In WAL mode NORMAL keeps the queue consistent across a crash of any
    process; only a power loss can lose the last moments of events, which
    the record sweep closes (see docs/architecture.md)."""

    def _create_connection(self):  # type: ignore[no-untyped-def]
        conn = super()._create_connection()
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn


class LineboxSqliteHuey(SqliteHuey):
    storage_class = DurableSqliteStorage


def make_huey() -> Huey:
    settings = settings_mod.get()
    if settings.queue.redis_url:
        return RedisHuey("linebox", url=settings.queue.redis_url)
    settings.paths.data_dir.mkdir(parents=True, exist_ok=True)
    return LineboxSqliteHuey(
        "linebox", filename=str(settings.paths.queue_file), journal_mode="wal", timeout=10
    )


huey = make_huey()
