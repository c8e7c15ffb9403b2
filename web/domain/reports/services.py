"""Reports (统计报表) from the daily aggregates (`CallStat`, kept by
appliance.worker.reports): they are read here, never recomputed from the
call records, so a year's report costs a few grouped queries."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

from piccolo.query.functions.aggregate import Sum

from appliance.auth.core import Principal
from appliance.sitefile.schema import format_money
from appliance.tables import CallStat, Extension
from web.auth import scoped
from web.domain.reports.schemas import AgentRow, DayRow, HourRow, RegionRow, Report, Totals
from web.errors import InvalidRequest
from web.sitecheck import tenant_for

MAX_DAYS = 366
DEFAULT_DAYS = 30
_NUMBER = re.compile(r"^[0-9]{3,20}\Z")
_SUMMED = (
    "calls",
    "answered",
    "busy",
    "no_answer",
    "talk_seconds",
    "cost_fen",
    "survey_count",
    "survey_sum",
)


def parse_range(since: str | None, until: str | None, timezone: str) -> tuple[dt.date, dt.date]:
    """Local days, inclusive; by default the last 30 days up to today."""

    def day(key: str, value: str | None) -> dt.date | None:
        if not value:
            return None
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            raise InvalidRequest(key, f"{value!r} is not a date (2026-03-31)") from None

    last = day("until", until) or dt.datetime.now(ZoneInfo(timezone)).date()
    first = day("since", since) or last - dt.timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise InvalidRequest("since", f"{first} is after the end of the range ({last})")
    if (last - first).days >= MAX_DAYS:
        raise InvalidRequest("since", f"a report covers at most {MAX_DAYS} days")
    return first, last


def parse_hotline(value: str | None) -> str:
    if not value:
        return ""
    if not _NUMBER.match(value.strip()):
        raise InvalidRequest("hotline", f"{value!r} is not a hotline number (4001234567)")
    return value.strip()


async def _where(
    principal: Principal, tenant: str | None, first: dt.date, last: dt.date, hotline: str
) -> list[Any]:
    conditions: list[Any] = scoped(
        principal, CallStat.tenant, [CallStat.day >= first, CallStat.day <= last]
    )
    if tenant or not principal.is_operator:
        tenant_id, _ = await tenant_for(principal, tenant)
        conditions.append(CallStat.tenant == tenant_id)
    if hotline:
        conditions.append(CallStat.hotline == hotline)
    return conditions


async def _grouped(by: Any, where: list[Any]) -> list[dict[str, Any]]:
    sums = [Sum(getattr(CallStat, name)).as_alias(name) for name in _SUMMED]
    query = CallStat.select(*([by] if by is not None else []), *sums).where(*where)
    if by is not None:
        query = query.group_by(by)
    rows = await query
    return [{k: (v or 0) if k in _SUMMED else v for k, v in r.items()} for r in rows]


def _average(total: int, count: int) -> int:
    return round(total / count) if count else 0


def _satisfaction(row: dict[str, Any]) -> float | None:
    return round(row["survey_sum"] / row["survey_count"], 2) if row["survey_count"] else None


def _day(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def province(region: str) -> str:
    """`浙江 杭州` → `浙江`; a municipality (`北京`) is its own province."""
    return region.split()[0] if region.strip() else ""


async def report(
    principal: Principal,
    first: dt.date,
    last: dt.date,
    hotline: str = "",
    tenant: str | None = None,
) -> Report:
    where = await _where(principal, tenant, first, last, hotline)
    total = (await _grouped(None, where))[0]

    days = {_day(r["day"]): r for r in await _grouped(CallStat.day, where)}
    by_day = []
    for i in range((last - first).days + 1):
        d = first + dt.timedelta(days=i)
        r = days.get(d, {})
        by_day.append(
            DayRow(
                day=d,
                calls=r.get("calls", 0),
                answered=r.get("answered", 0),
                busy=r.get("busy", 0),
                no_answer=r.get("no_answer", 0),
                talk_seconds=r.get("talk_seconds", 0),
            )
        )

    hours = {int(r["hour"]): r for r in await _grouped(CallStat.hour, where)}
    by_hour = [
        HourRow(
            hour=h,
            calls=hours.get(h, {}).get("calls", 0),
            answered=hours.get(h, {}).get("answered", 0),
        )
        for h in range(24)
    ]

    provinces: dict[str, list[int]] = {}
    for r in await _grouped(CallStat.region, where):
        counts = provinces.setdefault(province(r["region"] or ""), [0, 0])
        counts[0] += r["calls"]
        counts[1] += r["answered"]
    by_region = [
        RegionRow(region=name, calls=c, answered=a)
        for name, (c, a) in sorted(provinces.items(), key=lambda kv: (-kv[1][0], kv[0]))
        if c
    ]

    agent_rows = [r for r in await _grouped(CallStat.agent_id, where) if r["agent_id"]]
    names: dict[str, str] = {}
    if agent_rows:
        ext_where: list[Any] = scoped(
            principal,
            Extension.tenant,
            [Extension.agent_id.is_in([r["agent_id"] for r in agent_rows])],
        )
        for e in await Extension.select(Extension.agent_id, Extension.name).where(*ext_where):
            names.setdefault(e["agent_id"], e["name"])
    by_agent = sorted(
        (
            AgentRow(
                agent_id=r["agent_id"],
                name=names.get(r["agent_id"], ""),
                answered=r["answered"],
                talk_seconds=r["talk_seconds"],
                average_talk_seconds=_average(r["talk_seconds"], r["answered"]),
                satisfaction=_satisfaction(r),
                surveys=r["survey_count"],
            )
            for r in agent_rows
        ),
        key=lambda a: (-a.answered, a.agent_id),
    )

    return Report(
        since=first,
        until=last,
        hotline=hotline,
        totals=Totals(
            calls=total["calls"],
            answered=total["answered"],
            busy=total["busy"],
            no_answer=total["no_answer"],
            other=max(0, total["calls"] - total["answered"] - total["busy"] - total["no_answer"]),
            talk_seconds=total["talk_seconds"],
            average_talk_seconds=_average(total["talk_seconds"], total["answered"]),
            satisfaction=_satisfaction(total),
            surveys=total["survey_count"],
            cost=format_money(total["cost_fen"]),
        ),
        by_day=by_day,
        by_hour=by_hour,
        by_region=by_region,
        by_agent=by_agent,
    )
