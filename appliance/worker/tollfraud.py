"""Toll-fraud alerts: a tenant's calls out through the trunk crossed its
ceiling of minutes per hour (`[tenants.outbound] max_minutes_per_hour`).

Kamailio counts the minutes and refuses further calls out until the clock
hour ends (kamailio/kemi.py, `count_outbound`); when a call's end crosses the
ceiling it hands `outbound_minutes` to the worker through its journal, once
per tenant and hour. The worker logs a WARNING and sends the tenant's notice
addresses and the operator's alert address (the e-mail gateway's
`alerts_to`) an `alert` notice, once per tenant and hour whatever retries.
"""

from __future__ import annotations

import datetime as dt
import logging

from appliance.notify import outbox
from appliance.worker.queue import huey

log = logging.getLogger(__name__)


async def alert(tenant_slug: str, hour: int, minutes: int, ceiling: int) -> list[int]:
    """Write the alert notices for `tenant_slug` in the clock hour `hour`
    (unix time // 3600); the ids of those written (none twice)."""
    from appliance.billing.settle import timezone_of
    from appliance.tables import Gateway, Tenant
    from appliance.worker.effects import transaction

    started = dt.datetime.fromtimestamp(hour * 3600, dt.UTC)
    log.warning(
        "ALERT tenant %s: %d minutes out through the trunk since %s, ceiling %d per hour: "
        "further calls out refused until the hour ends",
        tenant_slug,
        minutes,
        started.isoformat(),
        ceiling,
    )
    key = f"alert:outbound_minutes:{tenant_slug}:{hour}"
    async with transaction():
        tenant = await Tenant.select().where(Tenant.slug == tenant_slug).output(load_json=True)
        if not tenant:
            return []
        row = tenant[0]
        when = outbox.local_time(started, await timezone_of(row))
        subject = f"linebox: {row['name']} 呼出分钟数超限，已暂停呼出"
        body = (
            f"【linebox】{row['name']} 自 {when} 起经中继呼出 {minutes} 分钟，"
            f"超过每小时 {ceiling} 分钟的上限，本小时内的其余呼出已被拒绝。"
            "如非本企业所为，请立即检查分机密码。"
        )
        ids = await outbox.to_tenant(
            tenant=row,
            key=key,
            kind="alert",
            subject=subject,
            body=body,
            now=dt.datetime.now(dt.UTC),
        )
        email = (
            await Gateway.select(Gateway.config)
            .where(Gateway.channel == "email")
            .output(load_json=True)
            .first()
        )
        operator = ((email or {}).get("config") or {}).get("alerts_to", "")
        notice = await outbox.add(
            key=f"{key}:operator",
            tenant=row["id"],
            kind="alert",
            channel="email",
            to=operator,
            subject=subject,
            body=body,
        )
        if notice:
            ids.append(notice)
    return ids


@huey.task(retries=5, retry_delay=1)
def outbound_minutes(tenant_slug: str, hour: int, minutes: int, ceiling: int) -> None:
    """Kamailio's report that `tenant_slug` crossed its minutes per hour."""
    from piccolo.utils.sync import run_sync

    from appliance.worker.effects import Effects, apply_effects

    async def run() -> None:
        await apply_effects(Effects(notices=await alert(tenant_slug, hour, minutes, ceiling)))

    run_sync(run())
