"""The one huey instance, built from settings: SqliteHuey in the data directory
by default, RedisHuey when `LINEBOX_REDIS_URL` is set.

Kamailio's processes enqueue call events through it. huey creates its tables
when the instance is built and closes that connection again, so Kamailio can
import this before it forks: each process opens its own connection on first
use.

huey's stock storages delete a message when a worker takes it, so a worker
killed while running a task (kill -9, OOM, power) would lose that task. Here a
taken message is moved to a "claimed" list in the same step and removed only
once the task has run (or been rescheduled for a retry). A consumer that
starts puts back the claims of consumers on this host that are no longer
alive. Tasks are idempotent, so a task that was running when its worker died
runs again and changes nothing twice.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any, ClassVar

from huey import Huey, RedisHuey, SqliteHuey
from huey import signals as S
from huey.storage import RedisStorage, SqliteStorage

from appliance import settings as settings_mod

log = logging.getLogger(__name__)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DurableSqliteStorage(SqliteStorage):
    """WAL with synchronous=NORMAL: an enqueue costs a write, not an fsync.

    In WAL mode NORMAL keeps the queue consistent across a crash of any
    process; only a power loss can lose the last moments of events, which
    the record sweep closes (see docs/architecture.md)."""

    table_claimed = (
        "create table if not exists claimed ("
        "id integer not null primary key, queue text not null, data blob not null, "
        "pid integer not null, claimed_at real not null)"
    )
    ddl: ClassVar[list[str]] = [*SqliteStorage.ddl, table_claimed]

    def _create_connection(self):  # type: ignore[no-untyped-def]
        conn = super()._create_connection()
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def dequeue(self) -> bytes | None:
        with self.db(commit=True) as curs:
            curs.execute(
                "select id, data from task where queue = ? order by priority desc, id limit 1",
                (self.name,),
            )
            found = curs.fetchone()
            if found is None:
                return None
            tid, data = found
            curs.execute("delete from task where id = ?", (tid,))
            curs.execute(
                "insert into claimed (queue, data, pid, claimed_at) values (?, ?, ?, ?)",
                (self.name, data, os.getpid(), time.time()),
            )
            return bytes(data)

    def ack(self, data: bytes) -> None:
        self.sql(
            "delete from claimed where id = (select id from claimed "
            "where queue = ? and data = ? limit 1)",
            (self.name, data),
            commit=True,
        )

    def recover(self) -> int:
        """Put back the messages claimed by consumers that died."""
        with self.db(commit=True) as curs:
            curs.execute("select id, data, pid from claimed where queue = ?", (self.name,))
            dead = [(cid, data) for cid, data, pid in curs.fetchall() if not _alive(pid)]
            for cid, data in dead:
                curs.execute(
                    "insert into task (queue, data, priority) values (?, ?, 0)", (self.name, data)
                )
                curs.execute("delete from claimed where id = ?", (cid,))
        return len(dead)

    def claimed_size(self) -> int:
        return int(
            self.sql("select count(*) from claimed where queue = ?", (self.name,), results=True)[0][
                0
            ]
        )


class AckingRedisStorage(RedisStorage):
    """The reliable-queue pattern: BRPOPLPUSH into a list per consumer process,
    LREM when done."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.host = socket.gethostname()

    def _claimed_key(self, pid: int | None = None) -> str:
        return f"{self.queue_key}.claimed.{self.host}.{pid or os.getpid()}"

    def dequeue(self) -> bytes | None:
        try:
            data = self.conn.brpoplpush(
                self.queue_key, self._claimed_key(), timeout=self.read_timeout
            )
        except (ConnectionError, TimeoutError):
            return None
        return data  # type: ignore[no-any-return]

    def ack(self, data: bytes) -> None:
        self.conn.lrem(self._claimed_key(), 1, data)

    def recover(self) -> int:
        moved = 0
        for key in self.conn.scan_iter(match=f"{self.queue_key}.claimed.{self.host}.*"):
            pid = int(key.rsplit(b".", 1)[1])
            if _alive(pid):
                continue
            while self.conn.rpoplpush(key, self.queue_key) is not None:
                moved += 1
        return moved

    def claimed_size(self) -> int:
        return sum(
            self.conn.llen(key)
            for key in self.conn.scan_iter(match=f"{self.queue_key}.claimed.{self.host}.*")
        )


class _Acking:
    """Acknowledge a message once its task has run, not when it is taken."""

    storage: Any
    _recovered = False
    _recover_lock = threading.Lock()

    def dequeue(self):  # type: ignore[no-untyped-def]
        data = self.storage.dequeue()
        if data is None:
            return None
        task = self.deserialize_task(data)  # type: ignore[attr-defined]
        task._linebox_claim = data
        return task

    def execute(self, task, timestamp=None):  # type: ignore[no-untyped-def]
        try:
            return super().execute(task, timestamp)  # type: ignore[misc]
        finally:
            claim = getattr(task, "_linebox_claim", None)
            # A task interrupted by shutdown did not finish: leave its claim
            # for the next consumer to put back.
            if claim is not None and not getattr(task, "_linebox_interrupted", False):
                self.storage.ack(claim)

    def recover_claims(self) -> int:
        with self._recover_lock:
            if self._recovered or not hasattr(self.storage, "recover"):
                return 0
            self._recovered = True
            moved = int(self.storage.recover())
        if moved:
            log.warning("put back %d task(s) a dead worker had taken", moved)
        return moved


class LineboxSqliteHuey(_Acking, SqliteHuey):
    storage_class = DurableSqliteStorage


class LineboxRedisHuey(_Acking, RedisHuey):
    storage_class = AckingRedisStorage


def make_huey() -> Huey:
    settings = settings_mod.get()
    instance: Huey
    if settings.queue.redis_url:
        instance = LineboxRedisHuey("linebox", url=settings.queue.redis_url)
    else:
        settings.paths.data_dir.mkdir(parents=True, exist_ok=True)
        instance = LineboxSqliteHuey(
            "linebox", filename=str(settings.paths.queue_file), journal_mode="wal", timeout=10
        )

    @instance.signal(S.SIGNAL_INTERRUPTED)
    def _interrupted(signal: str, task: Any, *args: Any) -> None:
        task._linebox_interrupted = True

    @instance.on_startup()
    def _recover() -> None:
        instance.recover_claims()  # type: ignore[attr-defined]

    return instance


huey = make_huey()
