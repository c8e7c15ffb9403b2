"""Billing housekeeping: a new month lifts the monthly caps; a tenant
suspended longer than its grace period is due for reclaim of its numbers.
Top-ups: `appliance.billing.ledger.book` (and the `top_up` task here)."""

from __future__ import annotations

import datetime as dt
import logging

from huey import crontab

from appliance.worker.queue import huey

log = logging.getLogger(__name__)


async def lift_caps(now: dt.datetime | None = None) -> list[str]:
    """Make capped hotlines active again when their usage this month (in the
    tenant's time zone) is below their caps: at the new month, or after an
    owner raised a cap."""
    from appliance.billing.pricing import month_of
    from appliance.billing.settle import load_tenant, timezone_of
    from appliance.tables import Hotline, MonthlyUsage
    from appliance.worker.effects import Effects, apply_effects, transaction

    now = now or dt.datetime.now(dt.UTC)
    lifted = []
    effects = Effects()
    async with transaction():
        for hotline in await Hotline.select().where(Hotline.service_state == "capped"):
            tenant = await load_tenant(hotline["tenant"])
            month = month_of(now, await timezone_of(tenant))
            usage = (
                await MonthlyUsage.objects()
                .where(MonthlyUsage.key == f"{hotline['number']}|{month}")
                .first()
            )
            calls, cost = (usage.calls, usage.cost_fen) if usage else (0, 0)
            over = (
                hotline["monthly_call_cap"] is not None and calls >= hotline["monthly_call_cap"]
            ) or (
                hotline["monthly_cost_cap_fen"] is not None
                and cost >= hotline["monthly_cost_cap_fen"]
            )
            if not over:
                await Hotline.update({Hotline.service_state: "active"}).where(
                    Hotline._meta.primary_key == hotline["id"]
                )
                effects.need_republish(f"hotline {hotline['number']} below its caps in {month}")
                lifted.append(hotline["number"])
    await apply_effects(effects)
    return lifted


async def reclaim_due(now: dt.datetime | None = None) -> list[str]:
    """Tenants suspended for longer than their grace period (`billing.grace_days`,
    3 by default): the operator and the owner are told once that the numbers
    are due for reclaim. Reclaiming a 400 number is the carrier's act; the
    appliance keeps refusing the calls meanwhile."""
    from appliance.billing.pricing import BillingSettings
    from appliance.notify import outbox
    from appliance.tables import Tenant
    from appliance.worker.effects import Effects, apply_effects, transaction

    now = now or dt.datetime.now(dt.UTC)
    due = []
    effects = Effects()
    async with transaction():
        tenants = await Tenant.select().where(Tenant.suspended == True).output(load_json=True)  # noqa: E712
        for tenant in tenants:
            grace = BillingSettings.of(tenant["billing"]).grace_days
            since = tenant["suspended_at"]
            if since is None or now - since < dt.timedelta(days=grace):
                continue
            due.append(tenant["slug"])
            effects.notices.extend(
                await outbox.to_tenant(
                    tenant=tenant,
                    key=f"reclaim:{tenant['id']}:{since.isoformat()}",
                    kind="reclaim",
                    subject="号码即将回收",
                    body=(
                        f"【linebox】{tenant['name']} 已停机超过 {grace} 天，热线号码将被回收；"
                        "请尽快充值。"
                    ),
                    now=now,
                )
            )
    await apply_effects(effects)
    return due


@huey.periodic_task(crontab(minute="*/5"))
def billing_housekeeping() -> None:
    from piccolo.utils.sync import run_sync

    lifted = run_sync(lift_caps())
    if lifted:
        log.info("monthly caps lifted: %s", ", ".join(lifted))
    due = run_sync(reclaim_due())
    if due:
        log.warning("suspended past their grace period: %s", ", ".join(due))


@huey.task(retries=3, retry_delay=2)
def top_up(tenant: str, amount_fen: int, by: str, ref: str, note: str = "") -> int:
    """Book a top-up (what the portal and the API call); returns the balance."""
    from piccolo.utils.sync import run_sync

    from appliance.billing.ledger import book

    return run_sync(book(tenant, amount_fen, by=by, ref=ref, note=note)).balance_after_fen
