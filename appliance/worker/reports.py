"""Daily aggregates for reports (呼叫分析): per tenant, hotline, local day,
hour, caller region and agent — calls, answered, busy, no answer, talk time,
cost, satisfaction. Recomputed from the call records (today and yesterday,
every 15 minutes), so late events and survey scores are counted, and
recomputing never doubles anything."""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from typing import Any
from zoneinfo import ZoneInfo

from huey import crontab

from appliance.worker.queue import huey

log = logging.getLogger(__name__)

NO_ANSWER = ("missed", "cancelled")


async def aggregate_day(tenant: dict[str, Any], day: dt.date, timezone: str) -> int:
    """Recompute one local day of one tenant; returns the rows written."""
    from appliance.tables import CallRecord, CallStat
    from appliance.worker.effects import transaction

    tz = ZoneInfo(timezone)
    start = dt.datetime.combine(day, dt.time(), tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz)
    rows = await CallRecord.select(
        CallRecord.hotline,
        CallRecord.started_at,
        CallRecord.status,
        CallRecord.caller_region,
        CallRecord.agent_id,
        CallRecord.talk_seconds,
        CallRecord.cost_fen,
        CallRecord.survey_score,
    ).where(
        (CallRecord.tenant == tenant["id"])
        & (CallRecord.kind == "hotline")
        & (CallRecord.started_at >= start)
        & (CallRecord.started_at < end)
        & CallRecord.status.not_in(["ringing", "talking"])
    )
    stats: dict[tuple[str, int, str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        hour = r["started_at"].astimezone(tz).hour
        s = stats[(r["hotline"], hour, r["caller_region"], r["agent_id"])]
        s["calls"] += 1
        s["answered"] += r["status"] == "answered"
        s["busy"] += r["status"] == "busy"
        s["no_answer"] += r["status"] in NO_ANSWER
        s["talk_seconds"] += r["talk_seconds"]
        s["cost_fen"] += r["cost_fen"]
        if r["survey_score"]:
            s["survey_count"] += 1
            s["survey_sum"] += r["survey_score"]
    async with transaction():
        await CallStat.delete().where((CallStat.tenant == tenant["id"]) & (CallStat.day == day))
        if stats:
            await CallStat.insert(
                *[
                    CallStat(
                        tenant=tenant["id"],
                        hotline=hotline,
                        day=day,
                        hour=hour,
                        region=region,
                        agent_id=agent,
                        **values,  # type: ignore[arg-type]
                    )
                    for (hotline, hour, region, agent), values in stats.items()
                ]
            )
    return len(stats)


async def aggregate_recent(now: dt.datetime | None = None) -> int:
    from appliance.billing.settle import timezone_of
    from appliance.tables import Tenant

    now = now or dt.datetime.now(dt.UTC)
    written = 0
    for tenant in await Tenant.select(Tenant._meta.primary_key, Tenant.timezone):
        tz = await timezone_of(tenant)
        today = now.astimezone(ZoneInfo(tz)).date()
        for day in (today - dt.timedelta(days=1), today):
            written += await aggregate_day(tenant, day, tz)
    return written


@huey.periodic_task(crontab(minute="*/15"))
def daily_aggregates() -> None:
    from piccolo.utils.sync import run_sync

    run_sync(aggregate_recent())
