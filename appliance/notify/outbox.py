"""Writing notices: call these inside the transaction that causes them."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from appliance.tables import Notice

MISSED_CALL_INTERVAL_S = 600
"""At most one missed-call SMS per caller and tenant in this many seconds
(`notify.missed_call_interval_s` overrides it): a caller who redials in a loop
sends the owner one message, not fifty."""


async def add(
    *,
    key: str,
    tenant: int | None,
    kind: str,
    channel: str,
    to: str,
    body: str,
    subject: str = "",
    caller: str = "",
    attachment: str = "",
    now: dt.datetime | None = None,
) -> int | None:
    """Write a notice unless one with `key` exists; its id, or None."""
    if not to:
        return None
    if await Notice.exists().where(Notice.key == key):
        return None
    now = now or dt.datetime.now(dt.UTC)
    row = Notice(
        key=key,
        tenant=tenant,
        kind=kind,
        channel=channel,
        to=to,
        caller=caller,
        subject=subject,
        body=body,
        attachment=attachment,
        state="pending",
        created_at=now,
        next_attempt_at=now,
    )
    inserted = await Notice.insert(row)
    return int(inserted[0]["id"])


def local_time(when: dt.datetime, timezone: str) -> str:
    return when.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M:%S")


def yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


async def missed_call(
    *,
    tenant: dict[str, Any],
    call_id: str,
    caller: str,
    hotline: str,
    started_at: dt.datetime,
    timezone: str,
    now: dt.datetime,
) -> list[int]:
    """The missed-call SMS to the tenant's number, rate-limited per caller."""
    notify = tenant.get("notify") or {}
    to = notify.get("sms") or ""
    if not notify.get("missed_call_sms") or not to:
        return []
    interval = int(notify.get("missed_call_interval_s", MISSED_CALL_INTERVAL_S))
    if caller and interval > 0:
        recent = await Notice.exists().where(
            (Notice.tenant == tenant["id"])
            & (Notice.kind == "missed_call")
            & (Notice.caller == caller)
            & (Notice.created_at > now - dt.timedelta(seconds=interval))
        )
        if recent:
            return []
    body = (
        f"【未接来电】{caller or '未知号码'} 于 {local_time(started_at, timezone)} "
        f"拨打 {hotline}，未接通，请及时回电。"
    )
    notice = await add(
        key=f"missed:{call_id}:sms",
        tenant=tenant["id"],
        kind="missed_call",
        channel="sms",
        to=to,
        body=body,
        caller=caller,
        now=now,
    )
    return [notice] if notice else []


async def to_tenant(
    *,
    tenant: dict[str, Any],
    key: str,
    kind: str,
    subject: str,
    body: str,
    now: dt.datetime,
    attachment: str = "",
    caller: str = "",
) -> list[int]:
    """The same notice by SMS and by e-mail, to whichever the tenant has."""
    notify = tenant.get("notify") or {}
    ids = []
    for channel, to in (("sms", notify.get("sms")), ("email", notify.get("email"))):
        if to:
            notice = await add(
                key=f"{key}:{channel}",
                tenant=tenant["id"],
                kind=kind,
                channel=channel,
                to=to,
                subject=subject,
                body=body,
                caller=caller,
                attachment=attachment if channel == "email" else "",
                now=now,
            )
            if notice:
                ids.append(notice)
    return ids
