from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from appliance.auth.core import Principal
from appliance.sitefile.schema import format_money
from appliance.tables import CallRecord, Tenant
from web.domain.calls.services import visible
from web.domain.dashboard.schemas import Dashboard, LiveCall

LIVE_STATUSES = ("ringing", "talking")
MISSED = ("missed", "busy", "cancelled")
# A call still "ringing" after this long lost its end event; the record sweep
# closes it, the live view does not show it.
LIVE_WINDOW = dt.timedelta(hours=4)


async def live_calls(principal: Principal) -> list[LiveCall]:
    since = dt.datetime.now(dt.UTC) - LIVE_WINDOW
    rows = (
        await CallRecord.select(*(getattr(CallRecord, f) for f in LiveCall.__struct_fields__))
        .where(
            CallRecord.status.is_in(list(LIVE_STATUSES)),
            CallRecord.started_at >= since,
            *visible(principal),
        )
        .order_by(CallRecord.started_at, ascending=False)
        .limit(200)
    )
    return [LiveCall(**row) for row in rows]


async def dashboard(principal: Principal, timezone: str) -> Dashboard:
    zone = ZoneInfo(timezone)
    midnight = dt.datetime.now(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    where: list[Any] = [CallRecord.started_at >= midnight, *visible(principal)]
    rows = await CallRecord.select(CallRecord.status).where(*where)
    statuses = [r["status"] for r in rows]
    answered = sum(1 for s in statuses if s in ("answered", "talking"))
    missed = sum(1 for s in statuses if s in MISSED)
    finished = sum(1 for s in statuses if s not in ("ringing",))
    balance = None
    if principal.tenant_id is not None:
        tenant = await Tenant.select(Tenant.balance_fen).where(
            Tenant._meta.primary_key == principal.tenant_id
        )
        if tenant:
            balance = format_money(tenant[0]["balance_fen"])
    return Dashboard(
        calls_today=len(statuses),
        answered_today=answered,
        missed_today=missed,
        answer_rate=round(answered / finished, 4) if finished else None,
        balance=balance,
        live=await live_calls(principal),
    )
