"""A tenant's prepaid account, read-only: the balance and its settings from
`Tenant`, top-ups from `LedgerEntry`, daily costs from the report aggregates
(`CallStat`) and monthly deductions from `MonthlyUsage`, which billing keeps
as it charges each call."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from piccolo.query.functions.aggregate import Sum

from appliance.auth.core import Principal
from appliance.billing.pricing import BillingSettings
from appliance.billing.settle import load_tenant, timezone_of
from appliance.sitefile.schema import format_money
from appliance.tables import CallStat, LedgerEntry, MonthlyUsage
from web.domain.billing.schemas import Billing, DayCost, LedgerList, LedgerOut, MonthCost, Rate
from web.errors import InvalidRequest
from web.sitecheck import tenant_for

LEDGER_ON_PAGE = 20


def _money(fen: int | None) -> str | None:
    return None if fen is None else format_money(fen)


def _ledger(row: dict[str, Any]) -> LedgerOut:
    return LedgerOut(
        at=row["at"],
        kind=row["kind"],
        amount=format_money(row["amount_fen"]),
        balance_after=format_money(row["balance_after_fen"]),
        by=row["by"],
        note=row["note"],
    )


async def ledger(principal: Principal, tenant: str | None, limit: int, offset: int) -> LedgerList:
    tenant_id, _ = await tenant_for(principal, tenant)
    rows = (
        await LedgerEntry.select()
        .where(LedgerEntry.tenant == tenant_id)
        .order_by(LedgerEntry.at, LedgerEntry._meta.primary_key, ascending=False)
        .limit(limit)
        .offset(offset)
    )
    total = await LedgerEntry.count().where(LedgerEntry.tenant == tenant_id)
    return LedgerList(items=[_ledger(r) for r in rows], total=total, limit=limit, offset=offset)


async def billing(principal: Principal, tenant: str | None, year: int | None) -> Billing:
    tenant_id, slug = await tenant_for(principal, tenant)
    row = await load_tenant(tenant_id)
    assert row is not None, "tenant_for found it"
    timezone = await timezone_of(row)
    year = year or dt.datetime.now(ZoneInfo(timezone)).year
    if not 2000 <= year <= 2999:
        raise InvalidRequest("year", f"{year} is not a year from 2000 to 2999")
    settings = BillingSettings.of(row["billing"] if isinstance(row["billing"], dict) else None)

    days = (
        await CallStat.select(
            CallStat.day,
            Sum(CallStat.calls).as_alias("calls"),
            Sum(CallStat.cost_fen).as_alias("cost_fen"),
        )
        .where(
            CallStat.tenant == tenant_id,
            CallStat.day >= dt.date(year, 1, 1),
            CallStat.day <= dt.date(year, 12, 31),
        )
        .group_by(CallStat.day)
        .order_by(CallStat.day)
    )
    months = (
        await MonthlyUsage.select(
            MonthlyUsage.month,
            Sum(MonthlyUsage.calls).as_alias("calls"),
            Sum(MonthlyUsage.cost_fen).as_alias("cost_fen"),
        )
        .where(MonthlyUsage.tenant == tenant_id, MonthlyUsage.month.like(f"{year}-%"))
        .group_by(MonthlyUsage.month)
        .order_by(MonthlyUsage.month)
    )
    latest = await ledger(principal, slug, LEDGER_ON_PAGE, 0)
    return Billing(
        tenant=slug,
        name=row["name"],
        timezone=timezone,
        balance=format_money(row["balance_fen"]),
        suspended=row["suspended"],
        low_balance=_money(settings.low_balance_fen),
        suspend_below=_money(settings.suspend_below_fen),
        step_seconds=settings.step_seconds,
        rates=[
            Rate(kind=kind, per_minute=format_money(fen))
            for kind, fen in sorted(settings.rates_fen_per_minute.items())
        ],
        year=year,
        daily=[
            DayCost(
                day=d["day"] if isinstance(d["day"], dt.date) else dt.date.fromisoformat(d["day"]),
                calls=d["calls"] or 0,
                cost=format_money(d["cost_fen"] or 0),
            )
            for d in days
            if d["calls"]
        ],
        monthly=[
            MonthCost(
                month=m["month"], calls=m["calls"] or 0, cost=format_money(m["cost_fen"] or 0)
            )
            for m in months
        ],
        ledger=latest.items,
    )
