"""Settling a call once its record is closed: price it, charge the prepaid
balance, count it against the hotline's monthly caps, and write the notices
it causes (missed call, low balance, suspension, cap reached).

Runs inside the transaction that closes the record and marks it `billed`, so
a retried or redelivered event never charges twice, and a worker killed in
the middle leaves either all of it or none of it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from appliance import settings as settings_mod
from appliance.billing.pricing import BillingSettings, call_cost, month_of
from appliance.notify import outbox
from appliance.worker.effects import Effects

MISSED_STATUSES = ("missed", "busy", "cancelled")
"""Calls the business did not take: these send the missed-call SMS."""
UNCOUNTED_STATUSES = ("capped", "suspended")
"""Calls refused because of a cap or suspension do not count against the cap."""


async def timezone_of(tenant: dict[str, Any] | None) -> str:
    from appliance.tables import ApplianceSetting

    if tenant and tenant.get("timezone"):
        return str(tenant["timezone"])
    row = (
        await ApplianceSetting.select(ApplianceSetting.value)
        .where(ApplianceSetting.key == "timezone")
        .output(load_json=True)
        .first()
    )
    if row and isinstance(row["value"], str) and row["value"]:
        return row["value"]
    return settings_mod.get().timezone


async def load_tenant(tenant_id: int) -> dict[str, Any] | None:
    from appliance.tables import Tenant

    row: dict[str, Any] | None = (
        await Tenant.select()
        .where(Tenant._meta.primary_key == tenant_id)
        .output(load_json=True)
        .first()
    )
    return row


async def settle(record: Any, now: dt.datetime) -> Effects:
    """Settle a closed call record (a `CallRecord` object the caller saves)."""
    from appliance.tables import Tenant

    effects = Effects()
    if record.billed:
        return effects
    record.billed = True
    tenant = await load_tenant(record.tenant) if record.tenant else None
    if tenant is None:
        record.cost_fen = 0
        return effects
    billing = BillingSettings.of(tenant["billing"])
    tz = await timezone_of(tenant)
    cost, _rate = call_cost(billing, record.answered_kind, int(record.talk_seconds))
    record.cost_fen = cost
    balance = int(tenant["balance_fen"])
    if cost:
        await Tenant.update(
            {Tenant.balance_fen: Tenant.balance_fen - cost}, use_auto_update=False
        ).where(Tenant._meta.primary_key == tenant["id"])
        row = (
            await Tenant.select(Tenant.balance_fen)
            .where(Tenant._meta.primary_key == tenant["id"])
            .first()
        )
        balance = int(row["balance_fen"]) if row else balance - cost

    if record.kind == "hotline" and record.hotline:
        effects.merge(await count_usage(record, tenant, cost, tz, now))
        if record.status in MISSED_STATUSES:
            effects.notices.extend(
                await outbox.missed_call(
                    tenant=tenant,
                    call_id=record.call_id,
                    caller=record.caller,
                    hotline=record.hotline,
                    started_at=record.started_at,
                    timezone=tz,
                    now=now,
                )
            )
    if cost:
        effects.merge(await check_balance(tenant, billing, balance, now, cause=record.call_id))
    return effects


async def count_usage(
    record: Any, tenant: dict[str, Any], cost: int, tz: str, now: dt.datetime
) -> Effects:
    from appliance.tables import Hotline, MonthlyUsage

    effects = Effects()
    month = month_of(record.started_at, tz)
    key = f"{record.hotline}|{month}"
    counted = 0 if record.status in UNCOUNTED_STATUSES else 1
    usage = await MonthlyUsage.objects().where(MonthlyUsage.key == key).first()
    if usage is None:
        usage = MonthlyUsage(
            key=key, tenant=tenant["id"], hotline=record.hotline, month=month, calls=0, cost_fen=0
        )
    usage.calls += counted
    usage.cost_fen += cost
    await usage.save()

    if month != month_of(now, tz):
        return effects  # a late record of last month does not cap this one
    hotline = await Hotline.select().where(Hotline.number == record.hotline).first()
    if hotline is None or hotline["service_state"] != "active":
        return effects
    reached = []
    if hotline["monthly_call_cap"] is not None and usage.calls >= hotline["monthly_call_cap"]:
        reached.append(f"{usage.calls} calls (cap {hotline['monthly_call_cap']})")
    if (
        hotline["monthly_cost_cap_fen"] is not None
        and usage.cost_fen >= hotline["monthly_cost_cap_fen"]
    ):
        reached.append(
            f"{outbox.yuan(usage.cost_fen)} yuan "
            f"(cap {outbox.yuan(hotline['monthly_cost_cap_fen'])})"
        )
    if reached:
        await Hotline.update({Hotline.service_state: "capped"}).where(
            Hotline._meta.primary_key == hotline["id"]
        )
        effects.need_republish(f"hotline {hotline['number']} capped: {', '.join(reached)}")
        effects.notices.extend(
            await outbox.to_tenant(
                tenant=tenant,
                key=f"capped:{hotline['number']}:{month}",
                kind="capped",
                subject=f"热线 {hotline['number']} 已达本月上限",
                body=(
                    f"【linebox】热线 {hotline['number']} 本月已达上限（{'，'.join(reached)}），"
                    "新的来电将被拒接，下月1日自动恢复。"
                ),
                now=now,
            )
        )
    return effects


async def check_balance(
    tenant: dict[str, Any], billing: BillingSettings, balance: int, now: dt.datetime, cause: str
) -> Effects:
    """React to a new balance: low-balance notice once per dip, suspension
    below `suspend_below`, restoration and re-arming on top-up."""
    from appliance.tables import Tenant

    effects = Effects()
    tid = tenant["id"]
    low, floor = billing.low_balance_fen, billing.suspend_below_fen
    if low is not None and balance < low and not tenant["low_balance_noticed"]:
        await Tenant.update({Tenant.low_balance_noticed: True}).where(
            Tenant._meta.primary_key == tid
        )
        effects.notices.extend(
            await outbox.to_tenant(
                tenant=tenant,
                key=f"low_balance:{tid}:{cause}",
                kind="low_balance",
                subject="余额不足提醒",
                body=(
                    f"【linebox】{tenant['name']} 的账户余额为 {outbox.yuan(balance)} 元，"
                    f"已低于 {outbox.yuan(low)} 元，请及时充值。"
                ),
                now=now,
            )
        )
    elif tenant["low_balance_noticed"] and (low is None or balance >= low):
        await Tenant.update({Tenant.low_balance_noticed: False}).where(
            Tenant._meta.primary_key == tid
        )

    if floor is not None and balance < floor and not tenant["suspended"]:
        await Tenant.update({Tenant.suspended: True, Tenant.suspended_at: now}).where(
            Tenant._meta.primary_key == tid
        )
        effects.need_republish(f"tenant {tenant['slug']} suspended: balance {balance} fen")
        effects.notices.extend(
            await outbox.to_tenant(
                tenant=tenant,
                key=f"suspended:{tid}:{cause}",
                kind="suspended",
                subject="热线已暂停服务",
                body=(
                    f"【linebox】{tenant['name']} 的账户余额为 {outbox.yuan(balance)} 元，"
                    f"低于 {outbox.yuan(floor)} 元，热线已暂停服务；充值后自动恢复。"
                    f"{billing.grace_days} 天内未充值，号码将被回收。"
                ),
                now=now,
            )
        )
    elif tenant["suspended"] and (floor is None or balance >= floor):
        await Tenant.update({Tenant.suspended: False, Tenant.suspended_at: None}).where(
            Tenant._meta.primary_key == tid
        )
        effects.need_republish(f"tenant {tenant['slug']} restored: balance {balance} fen")
    return effects
