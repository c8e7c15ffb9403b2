"""Writing and reading the audit log from the web app.

Controllers write an entry in one line, after the change succeeded:

    await audit.log(request, "update", f"hotline:{number}", changes=diff(before, after))

`log` takes the actor, the tenant and the client's address from the request
(`appliance.audit.record` is the same without a request, for the command
line and workers). Reading is scoped like everything else: an operator sees
every entry, an owner their tenant's only.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from litestar import Request

from appliance import audit
from appliance.auth.core import Principal
from appliance.tables import AuditEntry, Tenant
from web.auth import scoped
from web.domain.audit.schemas import AuditEntryList, AuditEntryOut
from web.errors import InvalidRequest

KEEP = object()
"""`tenant=` default: the acting user's tenant."""


def client_address(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else ""


async def log(
    request: Request[Any, Any, Any],
    action: str,
    target: str = "",
    *,
    changes: Mapping[str, Any] | None = None,
    detail: Mapping[str, Any] | None = None,
    tenant: Any = KEEP,
    actor: str | None = None,
) -> None:
    """Write one audit entry for the request's user (see appliance.audit.record).

    `tenant` defaults to the user's own; an operator acting on a tenant's
    object passes that tenant (id or slug) so its owner sees the change."""
    principal = request.scope.get("user")
    if actor is None:
        actor = principal.login if isinstance(principal, Principal) else ""
    if tenant is KEEP:
        tenant = principal.tenant_id if isinstance(principal, Principal) else None
    extra = dict(detail or {})
    if isinstance(principal, Principal) and principal.via == "token":
        extra.setdefault("via", "api-token")
    await audit.record(
        action,
        actor=actor,
        source=client_address(request),
        target=target,
        tenant=tenant,
        changes=changes,
        detail=extra,
    )


def _parse_time(name: str, value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidRequest(name, f"{value!r} is not an ISO 8601 date-time") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


async def list_entries(
    principal: Principal,
    *,
    action: str | None = None,
    actor: str | None = None,
    target: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> AuditEntryList:
    conditions: list[Any] = []
    if action:
        conditions.append(AuditEntry.action == action)
    if actor:
        conditions.append(AuditEntry.actor == actor)
    if target:
        conditions.append(AuditEntry.target == target)
    start, end = _parse_time("since", since), _parse_time("until", until)
    if start:
        conditions.append(AuditEntry.at >= start)
    if end:
        conditions.append(AuditEntry.at < end)
    conditions = scoped(principal, AuditEntry.tenant, conditions)
    query = (
        AuditEntry.select()
        .order_by(AuditEntry.at, ascending=False)
        .order_by(AuditEntry._meta.primary_key, ascending=False)
    )
    count = AuditEntry.count()
    if conditions:
        query = query.where(*conditions)
        count = count.where(*conditions)
    rows = await query.limit(limit).offset(offset)
    slugs = {r["id"]: r["slug"] for r in await Tenant.select(Tenant._meta.primary_key, Tenant.slug)}
    items = [
        AuditEntryOut(
            id=r["id"],
            at=r["at"],
            tenant=slugs.get(r["tenant"], "") if r["tenant"] is not None else "",
            actor=r["actor"],
            source=r["source"],
            action=r["action"],
            target=r["target"],
            detail=json.loads(r["detail"]) if isinstance(r["detail"], str) else r["detail"],
        )
        for r in rows
    ]
    return AuditEntryList(items=items, total=await count, limit=limit, offset=offset)
