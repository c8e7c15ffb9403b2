from __future__ import annotations

import json
from typing import Any

import msgspec

from appliance.auth.core import Principal
from appliance.errors import NotFound
from appliance.routing.compile import publish_from_db
from appliance.sitefile.schema import GroupConfig
from appliance.tables import Group, Tenant
from web.auth import scoped
from web.domain.groups.schemas import GroupCreate, GroupOut, GroupUpdate, Queue
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


class GroupNotFound(NotFound):
    error_id = "group-not-found"


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _out(row: dict[str, Any], slug: str) -> GroupOut:
    queue = _json(row["queue"])
    return GroupOut(
        tenant=slug,
        name=row["name"],
        strategy=row["strategy"],
        ring_timeout=row["ring_timeout"],
        members=list(_json(row["members"]) or []),
        announce_agent_id=row["announce_agent_id"],
        survey=row["survey"],
        queue=None if queue is None else msgspec.convert(queue, Queue),
        sticky_days=row["sticky_days"],
    )


def _values(g: GroupConfig) -> dict[Any, Any]:
    """The row's columns as `linebox apply` writes them."""
    queue = None
    if g.queue is not None:
        queue = {k: v for k, v in msgspec.to_builtins(g.queue).items() if v is not None}
    return {
        Group.strategy: g.strategy,
        Group.ring_timeout: g.ring_timeout,
        Group.members: json.dumps(g.members, ensure_ascii=False),
        Group.announce_agent_id: g.announce_agent_id,
        Group.survey: g.survey,
        Group.queue: json.dumps(queue, ensure_ascii=False),
        Group.sticky_days: g.sticky_days,
    }


async def list_groups(principal: Principal) -> list[GroupOut]:
    query = Group.select().order_by(Group.tenant, Group.position, Group.name)
    conditions = scoped(principal, Group.tenant, [])
    if conditions:
        query = query.where(*conditions)
    slugs = {r["id"]: r["slug"] for r in await Tenant.select(Tenant._meta.primary_key, Tenant.slug)}
    return [_out(row, slugs.get(row["tenant"], "")) for row in await query]


async def get_group(principal: Principal, name: str, tenant: str | None = None) -> GroupOut:
    row, slug = await named_row(principal, Group, name, tenant, GroupNotFound)
    return _out(row, slug)


async def create_group(principal: Principal, data: GroupCreate) -> GroupOut:
    tenant_id, slug = await tenant_for(principal, data.tenant)
    given = msgspec.to_builtins(data)
    given.pop("tenant", None)
    what = f"group {data.name}"
    config = convert(given, GroupConfig, what)
    async with write_lock():
        edit = await edit_tenant(tenant_id, slug)
        if any(g.name == config.name for g in edit.tenant.groups):
            raise InvalidChange(what, [Problem(key="name", message=f"{config.name!r} exists")])
        edit.tenant.groups.append(config)
        edit.check(what, "groups", len(edit.tenant.groups) - 1)
        values = {
            Group.tenant: tenant_id,
            Group.name: config.name,
            Group.position: await next_position(Group, tenant_id),
            **_values(config),
        }
        await Group.insert(Group(**{column._meta.name: v for column, v in values.items()}))
    await publish_from_db()
    return await get_group(principal, config.name, slug)


async def update_group(
    principal: Principal, name: str, data: GroupUpdate, tenant: str | None = None
) -> GroupOut:
    what = f"group {name}"
    async with write_lock():
        row, slug = await named_row(principal, Group, name, tenant, GroupNotFound)
        edit = await edit_tenant(row["tenant"], slug)
        groups = edit.tenant.groups
        i = next(i for i, g in enumerate(groups) if g.name == name)
        merged = msgspec.to_builtins(groups[i])
        merged.update(msgspec.to_builtins(data.given()))
        merged["name"] = name  # the name is the group: destinations refer to it
        groups[i] = convert(merged, GroupConfig, what)
        edit.check(what, "groups", i)
        await Group.update(_values(groups[i])).where(Group._meta.primary_key == row["id"])
    await publish_from_db()
    return await get_group(principal, name, slug)


async def delete_group(principal: Principal, name: str, tenant: str | None = None) -> None:
    async with write_lock():
        row, slug = await named_row(principal, Group, name, tenant, GroupNotFound)
        edit = await edit_tenant(row["tenant"], slug)
        uses = uses_of(edit.tenant, destination=f"group:{name}")
        if uses:
            raise InUse(f"group {name}", uses)
        await Group.delete().where(Group._meta.primary_key == row["id"])
    await publish_from_db()
