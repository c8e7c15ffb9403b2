from __future__ import annotations

import json
from typing import Any

import msgspec

from appliance.auth.core import Principal
from appliance.errors import NotFound
from appliance.routing.compile import publish_from_db
from appliance.sitefile.schema import ScheduleConfig
from appliance.tables import Schedule, Tenant
from web.auth import scoped
from web.domain.schedules.schemas import ScheduleCreate, ScheduleOut, ScheduleUpdate
from web.sitecheck import (
    InUse,
    InvalidChange,
    Problem,
    convert,
    edit_tenant,
    named_row,
    next_position,
    tenant_for,
    uses_of,
    write_lock,
)


class ScheduleNotFound(NotFound):
    error_id = "schedule-not-found"


def _out(row: dict[str, Any], slug: str) -> ScheduleOut:
    weekly = row["weekly"]
    return ScheduleOut(
        tenant=slug,
        name=row["name"],
        weekly=list((json.loads(weekly) if isinstance(weekly, str) else weekly) or []),
        holidays=row["holidays"],
    )


async def list_schedules(principal: Principal) -> list[ScheduleOut]:
    query = Schedule.select().order_by(Schedule.tenant, Schedule.position, Schedule.name)
    conditions = scoped(principal, Schedule.tenant, [])
    if conditions:
        query = query.where(*conditions)
    slugs = {r["id"]: r["slug"] for r in await Tenant.select(Tenant._meta.primary_key, Tenant.slug)}
    return [_out(row, slugs.get(row["tenant"], "")) for row in await query]


async def get_schedule(principal: Principal, name: str, tenant: str | None = None) -> ScheduleOut:
    row, slug = await named_row(principal, Schedule, name, tenant, ScheduleNotFound)
    return _out(row, slug)


def _clean(weekly: list[str]) -> list[str]:
    return [w.strip() for w in weekly if w.strip()]


async def create_schedule(principal: Principal, data: ScheduleCreate) -> ScheduleOut:
    tenant_id, slug = await tenant_for(principal, data.tenant)
    what = f"schedule {data.name}"
    config = convert(
        {"name": data.name.strip(), "weekly": _clean(data.weekly), "holidays": data.holidays},
        ScheduleConfig,
        what,
    )
    async with write_lock():
        edit = await edit_tenant(tenant_id, slug)
        if any(s.name == config.name for s in edit.tenant.schedules):
            raise InvalidChange(what, [Problem(key="name", message=f"{config.name!r} exists")])
        edit.tenant.schedules.append(config)
        edit.check(what, "schedules", len(edit.tenant.schedules) - 1)
        await Schedule.insert(
            Schedule(
                tenant=tenant_id,
                name=config.name,
                weekly=json.dumps(config.weekly, ensure_ascii=False),
                holidays=config.holidays,
                position=await next_position(Schedule, tenant_id),
            )
        )
    await publish_from_db()
    return await get_schedule(principal, config.name, slug)


async def update_schedule(
    principal: Principal, name: str, data: ScheduleUpdate, tenant: str | None = None
) -> ScheduleOut:
    what = f"schedule {name}"
    async with write_lock():
        row, slug = await named_row(principal, Schedule, name, tenant, ScheduleNotFound)
        edit = await edit_tenant(row["tenant"], slug)
        schedules = edit.tenant.schedules
        i = next(i for i, s in enumerate(schedules) if s.name == name)
        merged = msgspec.to_builtins(schedules[i])
        given = data.given()
        if "weekly" in given:
            given["weekly"] = _clean(given["weekly"])
        merged.update(given)
        schedules[i] = convert(merged, ScheduleConfig, what)
        edit.check(what, "schedules", i)
        await Schedule.update(
            {
                Schedule.weekly: json.dumps(schedules[i].weekly, ensure_ascii=False),
                Schedule.holidays: schedules[i].holidays,
            }
        ).where(Schedule._meta.primary_key == row["id"])
    await publish_from_db()
    return await get_schedule(principal, name, slug)


async def delete_schedule(principal: Principal, name: str, tenant: str | None = None) -> None:
    async with write_lock():
        row, slug = await named_row(principal, Schedule, name, tenant, ScheduleNotFound)
        edit = await edit_tenant(row["tenant"], slug)
        uses = uses_of(edit.tenant, schedule=name)
        if uses:
            raise InUse(f"schedule {name}", uses)
        await Schedule.delete().where(Schedule._meta.primary_key == row["id"])
    await publish_from_db()
