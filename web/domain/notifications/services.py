"""Where a tenant's notices go (appliance.notify.outbox decides it from
`Tenant.notify`), the gateways they leave by, and the notices sent."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from appliance.auth.core import Principal
from appliance.billing.settle import load_tenant
from appliance.notify.outbox import MISSED_CALL_INTERVAL_S
from appliance.sitefile.schema import Notify
from appliance.tables import Gateway, Notice, Tenant
from web.domain.notifications.schemas import (
    Destination,
    GatewayOut,
    NoticeList,
    NoticeOut,
    NoticeRoute,
    Notifications,
    NotifyUpdate,
)
from web.errors import InvalidRequest
from web.sitecheck import convert, edit_tenant, tenant_for, write_lock

NOTICE_STATES = ("pending", "sending", "retrying", "sent", "failed")
RECENT = 20
TO_BOTH = ("voicemail", "low_balance", "capped", "suspended", "reclaim")
"""Notices sent by SMS and e-mail alike (`outbox.to_tenant`)."""


def _gateway(row: dict[str, Any], principal: Principal) -> GatewayOut:
    if not row["enabled"]:
        status = "disabled"
    elif row["last_error_at"] and (
        row["last_ok_at"] is None or row["last_error_at"] > row["last_ok_at"]
    ):
        status = "failing"
    elif row["last_ok_at"]:
        status = "ok"
    else:
        status = "unused"
    return GatewayOut(
        channel=row["channel"],
        kind=row["kind"],
        enabled=row["enabled"],
        status=status,
        last_ok_at=row["last_ok_at"],
        last_error_at=row["last_error_at"],
        last_error=row["last_error"] if principal.is_operator else "",
    )


def _notice(row: dict[str, Any]) -> NoticeOut:
    return NoticeOut(**{f: row[f] for f in NoticeOut.__struct_fields__})


def parse_state(value: str | None) -> str | None:
    if not value:
        return None
    if value not in NOTICE_STATES:
        raise InvalidRequest("state", f"{value!r} is not one of {', '.join(NOTICE_STATES)}")
    return value


async def notices(
    principal: Principal, tenant: str | None, state: str | None, limit: int, offset: int
) -> NoticeList:
    tenant_id, _ = await tenant_for(principal, tenant)
    where: list[Any] = [Notice.tenant == tenant_id]
    if state:
        where.append(Notice.state == state)
    rows = (
        await Notice.select(*(getattr(Notice, f) for f in NoticeOut.__struct_fields__))
        .where(*where)
        .order_by(Notice.created_at, Notice._meta.primary_key, ascending=False)
        .limit(limit)
        .offset(offset)
    )
    total = await Notice.count().where(*where)
    return NoticeList(items=[_notice(r) for r in rows], total=total, limit=limit, offset=offset)


async def notifications(principal: Principal, tenant: str | None) -> Notifications:
    tenant_id, slug = await tenant_for(principal, tenant)
    row = await load_tenant(tenant_id)
    notify = (row or {}).get("notify") or {}
    sms, email = str(notify.get("sms") or ""), str(notify.get("email") or "")
    both = [Destination(channel=c, to=t) for c, t in (("sms", sms), ("email", email)) if t]
    missed = bool(notify.get("missed_call_sms"))
    gateways = await Gateway.select().order_by(Gateway.channel)
    return Notifications(
        tenant=slug,
        sms=sms,
        email=email,
        missed_call_sms=missed,
        missed_call_interval_s=int(notify.get("missed_call_interval_s", MISSED_CALL_INTERVAL_S)),
        # As appliance.notify.outbox sends them: the missed-call SMS only
        # when switched on; the rest to every address the tenant has.
        routes=[
            NoticeRoute(
                kind="missed_call",
                destinations=[Destination(channel="sms", to=sms)] if missed and sms else [],
            ),
            *(NoticeRoute(kind=kind, destinations=both) for kind in TO_BOTH),
        ],
        gateways=[_gateway(g, principal) for g in gateways],
        recent=(await notices(principal, slug, None, RECENT, 0)).items,
    )


def settings_of(n: Notifications) -> dict[str, Any]:
    return {"sms": n.sms, "email": n.email, "missed_call_sms": n.missed_call_sms}


async def update_notify(
    principal: Principal, tenant: str | None, data: NotifyUpdate
) -> tuple[dict[str, Any], Notifications]:
    """Change where the tenant's notices go, as `[tenants.notify]` would;
    returns the settings before and the result."""
    async with write_lock():
        tenant_id, slug = await tenant_for(principal, tenant)
        before = await notifications(principal, slug)
        edit = await edit_tenant(tenant_id, slug)
        merged = msgspec.to_builtins(edit.tenant.notify) if edit.tenant.notify else {}
        for key, value in data.given().items():
            merged[key] = value.strip() if isinstance(value, str) else value
        merged = {k: v for k, v in merged.items() if v not in (None, "")}
        edit.tenant.notify = convert(merged, Notify, "notify")
        edit.check("notify", "notify")
        row = await load_tenant(tenant_id)
        stored = dict((row or {}).get("notify") or {})
        for key in ("sms", "email", "missed_call_sms"):
            stored.pop(key, None)
        stored.update(merged)  # keeps keys the site file does not set
        await Tenant.update({Tenant.notify: json.dumps(stored, ensure_ascii=False)}).where(
            Tenant._meta.primary_key == tenant_id
        )
    return settings_of(before), await notifications(principal, slug)
