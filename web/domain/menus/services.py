from __future__ import annotations

import json
from typing import Any

import msgspec

from appliance.auth.core import Principal
from appliance.errors import NotFound
from appliance.routing.compile import publish_from_db
from appliance.sitefile.locate import render
from appliance.sitefile.schema import MenuConfig
from appliance.tables import Menu, Prompt, Tenant
from web.auth import scoped
from web.domain.menus.schemas import MenuCreate, MenuOut, MenuUpdate
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

KEYS = "123456789*0#"
"""In the order of a phone's keypad."""


class MenuNotFound(NotFound):
    error_id = "menu-not-found"


def _out(row: dict[str, Any], slug: str) -> MenuOut:
    keys = row["keys"]
    return MenuOut(
        tenant=slug,
        name=row["name"],
        prompt=row["prompt"],
        timeout=row["timeout"],
        retries=row["retries"],
        dial_extensions=row["dial_extensions"],
        keys=dict((json.loads(keys) if isinstance(keys, str) else keys) or {}),
        on_timeout=row["on_timeout"],
    )


def _values(m: MenuConfig) -> dict[Any, Any]:
    return {
        Menu.prompt: m.prompt,
        Menu.timeout: m.timeout,
        Menu.retries: m.retries,
        Menu.dial_extensions: m.dial_extensions,
        Menu.keys: json.dumps(m.keys, ensure_ascii=False),
        Menu.on_timeout: m.on_timeout,
    }


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    """Keys in keypad order, whitespace trimmed (a pasted ` ext:1001`)."""
    if "keys" in values:
        keys = {k.strip(): v.strip() for k, v in values["keys"].items()}
        values["keys"] = dict(
            sorted(keys.items(), key=lambda kv: KEYS.find(kv[0]) if kv[0] in KEYS else 99)
        )
    for name in ("prompt", "on_timeout"):
        if isinstance(values.get(name), str):
            values[name] = values[name].strip()
    return values


async def list_menus(principal: Principal) -> list[MenuOut]:
    query = Menu.select().order_by(Menu.tenant, Menu.position, Menu.name)
    conditions = scoped(principal, Menu.tenant, [])
    if conditions:
        query = query.where(*conditions)
    slugs = {r["id"]: r["slug"] for r in await Tenant.select(Tenant._meta.primary_key, Tenant.slug)}
    return [_out(row, slugs.get(row["tenant"], "")) for row in await query]


async def prompt_names(principal: Principal, tenant: str) -> list[str]:
    """The tenant's prompts, for the menu page to offer."""
    query = Prompt.select(Prompt.name).where(
        *scoped(principal, Prompt.tenant, [Prompt.tenant.slug == tenant])
    )
    return [r["name"] for r in await query.order_by(Prompt.position)]


async def get_menu(principal: Principal, name: str, tenant: str | None = None) -> MenuOut:
    row, slug = await named_row(principal, Menu, name, tenant, MenuNotFound)
    return _out(row, slug)


async def create_menu(principal: Principal, data: MenuCreate) -> MenuOut:
    tenant_id, slug = await tenant_for(principal, data.tenant)
    given = _clean(msgspec.to_builtins(data))
    given.pop("tenant", None)
    given["name"] = given["name"].strip()
    what = f"menu {given['name']}"
    config = convert(given, MenuConfig, what)
    async with write_lock():
        edit = await edit_tenant(tenant_id, slug)
        if any(m.name == config.name for m in edit.tenant.menus):
            raise InvalidChange(what, [Problem(key="name", message=f"{config.name!r} exists")])
        edit.tenant.menus.append(config)
        edit.check(what, "menus", len(edit.tenant.menus) - 1)
        values = {
            Menu.tenant: tenant_id,
            Menu.name: config.name,
            Menu.position: await next_position(Menu, tenant_id),
            **_values(config),
        }
        await Menu.insert(Menu(**{column._meta.name: v for column, v in values.items()}))
    await publish_from_db()
    return await get_menu(principal, config.name, slug)


async def update_menu(
    principal: Principal, name: str, data: MenuUpdate, tenant: str | None = None
) -> MenuOut:
    what = f"menu {name}"
    async with write_lock():
        row, slug = await named_row(principal, Menu, name, tenant, MenuNotFound)
        edit = await edit_tenant(row["tenant"], slug)
        menus = edit.tenant.menus
        i = next(i for i, m in enumerate(menus) if m.name == name)
        merged = msgspec.to_builtins(menus[i])
        merged.update(_clean(msgspec.to_builtins(data.given())))
        menus[i] = convert(merged, MenuConfig, what)
        edit.check(what, "menus", i)
        await Menu.update(_values(menus[i])).where(Menu._meta.primary_key == row["id"])
    await publish_from_db()
    return await get_menu(principal, name, slug)


async def delete_menu(principal: Principal, name: str, tenant: str | None = None) -> None:
    async with write_lock():
        row, slug = await named_row(principal, Menu, name, tenant, MenuNotFound)
        edit = await edit_tenant(row["tenant"], slug)
        own = render(("menus", next(i for i, m in enumerate(edit.tenant.menus) if m.name == name)))
        # A key of the menu that leads back to the menu itself goes with it.
        uses = [
            use
            for use in uses_of(edit.tenant, destination=f"menu:{name}")
            if not use.key.startswith(own + ".")
        ]
        if uses:
            raise InUse(f"menu {name}", uses)
        await Menu.delete().where(Menu._meta.primary_key == row["id"])
    await publish_from_db()
