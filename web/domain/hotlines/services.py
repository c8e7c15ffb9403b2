from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any, cast
from zoneinfo import ZoneInfo

import msgspec

from appliance import settings as settings_mod
from appliance.auth.core import Principal
from appliance.errors import NotFound
from appliance.numberclass import classify
from appliance.numbers import region_of
from appliance.routing.compile import compile_plan, publish_from_db
from appliance.routing.decide import Facts, Target, decide
from appliance.sitefile import apply as apply_mod
from appliance.sitefile.schema import HotlineConfig, format_money
from appliance.tables import Hotline, Tenant
from web.auth import scoped
from web.domain.hotlines.schemas import (
    Fallback,
    HotlineOut,
    HotlineUpdate,
    Route,
    SimulateIn,
    SimulateOut,
    TargetOut,
)
from web.errors import InvalidRequest
from web.sitecheck import InvalidChange, convert, current_site, problems_under, tenant_index

_CALLER = re.compile(r"^\+?[0-9]{3,20}\Z")
_NUMBER = re.compile(r"^[0-9]{3,20}\Z")


class HotlineNotFound(NotFound):
    error_id = "hotline-not-found"


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _out(row: dict[str, Any], slug: str) -> HotlineOut:
    number_class = classify(row["number"])
    cap = row["monthly_cost_cap_fen"]
    return HotlineOut(
        number=row["number"],
        tenant=slug,
        name=row["name"],
        number_class=number_class.grade,
        number_pattern=number_class.pattern,
        enabled=row["enabled"],
        service_state=row["service_state"],
        timezone=row["timezone"],
        caller_id=row["caller_id"],
        ringback=row["ringback"],
        record=row["record"],
        pin=row["pin"],
        blacklist=list(_json(row["blacklist"]) or []),
        whitelist=list(_json(row["whitelist"]) or []),
        blocked_regions=list(_json(row["blocked_regions"]) or []),
        monthly_call_cap=row["monthly_call_cap"],
        monthly_cost_cap=None if cap is None else format_money(cap),
        routes=msgspec.convert(_json(row["routes"]) or [], list[Route]),
        fallback=msgspec.convert(_json(row["fallback"]) or {}, Fallback),
    )


async def _slugs() -> dict[int, str]:
    return {r["id"]: r["slug"] for r in await Tenant.select(Tenant._meta.primary_key, Tenant.slug)}


async def list_hotlines(principal: Principal) -> list[HotlineOut]:
    query = Hotline.select().order_by(Hotline.tenant, Hotline.position, Hotline.number)
    conditions = scoped(principal, Hotline.tenant, [])
    if conditions:
        query = query.where(*conditions)
    if principal.role == "agent":
        return []
    slugs = await _slugs()
    return [_out(row, slugs.get(row["tenant"], "")) for row in await query]


async def _row(principal: Principal, number: str) -> dict[str, Any]:
    row = None
    if _NUMBER.match(number) and principal.role != "agent":
        row = (
            await Hotline.select()
            .where(Hotline.number == number, *scoped(principal, Hotline.tenant, []))
            .first()
        )
    if row is None:
        raise HotlineNotFound(f"no hotline {number}", {"number": number})
    return row


async def get_hotline(principal: Principal, number: str) -> HotlineOut:
    row = await _row(principal, number)
    return _out(row, (await _slugs()).get(row["tenant"], ""))


async def update_hotline(principal: Principal, number: str, data: HotlineUpdate) -> HotlineOut:
    row = await _row(principal, number)
    slug = (await _slugs())[row["tenant"]]
    site = await current_site()
    ti = tenant_index(site, slug)
    tenant = site.tenants[ti]
    hi = next(i for i, h in enumerate(tenant.hotlines) if h.number == number)
    merged = msgspec.to_builtins(tenant.hotlines[hi])
    for key, value in data.given().items():
        merged[key] = msgspec.to_builtins(value)
    merged["number"] = number  # the number is the hotline; an operator changes it
    what = f"hotline {number}"
    hotline = convert(merged, HotlineConfig, what)
    tenant.hotlines[hi] = hotline
    problems = problems_under(site, ("tenants", ti, "hotlines", hi))
    if problems:
        raise InvalidChange(what, problems)
    values = apply_mod._db_values(
        apply_mod.KINDS["hotline"], apply_mod._hotline(hotline, slug, hi), {slug: row["tenant"]}
    )
    for key in ("number", "tenant", "position"):
        values.pop(key, None)
    async with Hotline._meta.db.transaction():
        await Hotline.update(cast(Any, values)).where(
            Hotline.number == number, Hotline.tenant == row["tenant"]
        )
    await publish_from_db()
    return await get_hotline(principal, number)


def _targets(targets: tuple[Target, ...]) -> list[TargetOut]:
    return [TargetOut(kind=t.kind, number=t.number, timeout=t.timeout, via=t.via) for t in targets]


async def simulate(principal: Principal, number: str, data: SimulateIn) -> SimulateOut:
    await _row(principal, number)  # 404 for a hotline the principal may not see
    caller = data.caller.strip()
    if not _CALLER.match(caller):
        raise InvalidRequest("caller", f"{data.caller!r} is not a phone number: 3 to 20 digits")
    if not 0 <= data.sequence <= 10**9:
        raise InvalidRequest("sequence", "must be from 0 to 1000000000")
    plan = await compile_plan()
    hotline = plan.hotlines.get(number)
    zone = ZoneInfo(
        hotline.timezone if hotline and hotline.timezone else settings_mod.get().timezone
    )
    when = dt.datetime.now(zone)
    if data.at:
        try:
            when = dt.datetime.fromisoformat(data.at.strip())
        except ValueError:
            raise InvalidRequest(
                "at", f"{data.at!r} is not an ISO 8601 date-time (2026-03-07T21:00)"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=zone)
        when = when.astimezone(zone)
    trunk = next((t.name for t in plan.trunks if number in t.dids), "")
    region = region_of(caller)
    facts = Facts(
        called=number,
        caller=caller,
        region=region,
        trunk=trunk,
        caller_extension="" if trunk else caller,
        sequence=data.sequence,
    )
    d = decide(plan, facts, when)
    return SimulateOut(
        action=d.action,
        target=d.target,
        sip_code=d.sip_code,
        reason=d.reason,
        route=d.route,
        strategy=d.strategy,
        ring=_targets(d.ring),
        busy=_targets(d.busy),
        no_answer=_targets(d.no_answer),
        caller_region=region.label().replace("/", " "),
        at=when.isoformat(timespec="minutes"),
        trace=list(d.trace),
    )
