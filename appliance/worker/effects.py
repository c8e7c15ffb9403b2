"""What a worker transaction leaves to do once it has committed: re-publish
the routing plan (a hotline was capped, a tenant suspended or restored) and
send the notices it wrote to the outbox.

Work that touches the outside world runs after the commit, never inside the
transaction. If the worker dies in between, nothing is lost: the notices are
in the outbox (the sweep sends what is still pending) and the worker
re-publishes the plan when it starts.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class Effects:
    republish: bool = False
    reasons: list[str] = field(default_factory=list)
    notices: list[int] = field(default_factory=list)

    def merge(self, other: Effects) -> None:
        self.republish = self.republish or other.republish
        self.reasons.extend(other.reasons)
        self.notices.extend(other.notices)

    def need_republish(self, reason: str) -> None:
        self.republish = True
        self.reasons.append(reason)


@asynccontextmanager
async def transaction() -> AsyncIterator[Any]:
    """A write transaction. On SQLite it takes the write lock up front
    (IMMEDIATE): two worker threads never deadlock upgrading a read lock."""
    from piccolo.engine.sqlite import SQLiteEngine, TransactionType

    from appliance.tables import CallRecord

    engine = CallRecord._meta.db
    if isinstance(engine, SQLiteEngine):
        async with engine.transaction(transaction_type=TransactionType.immediate) as txn:
            yield txn
    else:
        async with engine.transaction() as txn:
            yield txn


async def apply_effects(effects: Effects) -> None:
    if effects.republish:
        from appliance.routing.compile import publish_from_db

        plan = await publish_from_db()
        log.info("re-published the plan %s: %s", plan.version, "; ".join(effects.reasons))
    if effects.notices:
        from appliance.worker.notices import send_notice

        for notice_id in effects.notices:
            send_notice(notice_id)
