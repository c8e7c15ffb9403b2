"""Sticky agent memory (来电转接记忆): who last answered a caller, per tenant.

Kamailio keeps it in its shared `sticky` htable and asks the worker to store
each new memory in the `sticky_memory` table, whose columns are the ones
Kamailio's htable module loads at start: the memory survives a restart of
Kamailio, or of the whole appliance."""

from __future__ import annotations

import time

from appliance.numbers import normalize
from appliance.worker.queue import huey

# Kamailio forgets a memory after a year; each group decides how long it
# trusts one (GroupPlan.sticky_days).
KEEP_SECONDS = 365 * 86400


def key(tenant: str, caller: str) -> str:
    return f"{tenant}:{normalize(caller)}"


def value(member: str, at: float) -> str:
    return f"{member}@{int(at)}"


def parse(raw: object) -> tuple[str, float]:
    """`ext:1001@1795400000` → (`ext:1001`, 1795400000.0); anything else → ('', 0)."""
    if not isinstance(raw, str) or "@" not in raw:
        return "", 0.0
    member, _, at = raw.rpartition("@")
    try:
        return member, float(at)
    except ValueError:
        return "", 0.0


@huey.task(retries=5, retry_delay=1)
def remember(memory_key: str, member: str, at: float) -> None:
    """Store a memory where Kamailio loads its `sticky` htable from."""
    from piccolo.utils.sync import run_sync

    run_sync(store(memory_key, member, at))


async def store(memory_key: str, member: str, at: float) -> None:
    from appliance.tables import StickyMemory

    expires = int(at) + KEEP_SECONDS
    async with StickyMemory._meta.db.transaction():
        row = await StickyMemory.objects().where(StickyMemory.key_name == memory_key).first()
        if row is None:
            row = StickyMemory(key_name=memory_key)
        elif parse(row.key_value)[1] > at:
            return  # a newer memory is already stored (tasks may run out of order)
        row.key_value = value(member, at)
        row.expires = expires
        await row.save()


async def forget_expired(now: float | None = None) -> int:
    from appliance.tables import StickyMemory

    now = time.time() if now is None else now
    gone = (
        await StickyMemory.delete()
        .where(StickyMemory.expires < int(now))
        .returning(StickyMemory.key_name)
    )
    return len(gone)
