from __future__ import annotations

import secrets
import string
from typing import Any

import msgspec

from appliance.auth.core import Principal
from appliance.errors import NotFound
from appliance.routing.compile import publish_from_db
from appliance.sitefile.schema import ExtensionConfig, extension_number_problem
from appliance.tables import Extension, Hotline, Tenant, UserAuth
from web.auth import scoped
from web.domain.extensions.schemas import (
    ExtensionCreate,
    ExtensionOut,
    ExtensionSecret,
    ExtensionUpdate,
)
from web.sitecheck import (
    InUse,
    InvalidChange,
    Problem,
    convert,
    edit_tenant,
    tenant_for,
    uses_of,
    write_lock,
)

# Letters and digits a person can read off a screen and type into a phone's
# keypad menu without confusing 0/O or 1/l/I.
_ALPHABET = "".join(c for c in string.ascii_letters + string.digits if c not in "0O1lI")
PASSWORD_LENGTH = 16


class ExtensionNotFound(NotFound):
    error_id = "extension-not-found"


def new_password() -> str:
    """A SIP digest secret: 16 of 57 symbols, about 93 bits."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(PASSWORD_LENGTH))


def _out(row: dict[str, Any], slug: str) -> ExtensionOut:
    return ExtensionOut(
        number=row["number"],
        tenant=slug,
        name=row["name"],
        agent_id=row["agent_id"],
        ringback=row["ringback"],
    )


async def _slugs() -> dict[int, str]:
    return {r["id"]: r["slug"] for r in await Tenant.select(Tenant._meta.primary_key, Tenant.slug)}


async def list_extensions(principal: Principal) -> list[ExtensionOut]:
    query = Extension.select().order_by(Extension.tenant, Extension.position, Extension.number)
    conditions = scoped(principal, Extension.tenant, [])
    if conditions:
        query = query.where(*conditions)
    slugs = await _slugs()
    return [_out(row, slugs.get(row["tenant"], "")) for row in await query]


async def _row(principal: Principal, number: str) -> dict[str, Any]:
    row = None
    if extension_number_problem(number) is None:
        row = (
            await Extension.select()
            .where(Extension.number == number, *scoped(principal, Extension.tenant, []))
            .first()
        )
    if row is None:
        raise ExtensionNotFound(f"no extension {number}", {"number": number})
    return row


async def get_extension(principal: Principal, number: str) -> ExtensionOut:
    row = await _row(principal, number)
    return _out(row, (await _slugs()).get(row["tenant"], ""))


async def create_extension(principal: Principal, data: ExtensionCreate) -> ExtensionSecret:
    tenant_id, slug = await tenant_for(principal, data.tenant)
    number = data.number.strip()
    what = f"extension {number}"
    password = new_password()
    config = convert(
        {
            "number": number,
            "name": data.name.strip(),
            "password": password,
            "agent_id": data.agent_id.strip(),
            "ringback": data.ringback.strip(),
        },
        ExtensionConfig,
        what,
    )
    async with write_lock():
        # Numbers are unique on the whole appliance; whose number it is stays
        # the other tenant's business.
        if await Extension.exists().where(Extension.number == number):
            raise InvalidChange(what, [Problem(key="number", message=f"{number!r} is taken")])
        if await Hotline.exists().where(Hotline.number == number):
            raise InvalidChange(
                what, [Problem(key="number", message=f"{number!r} is a hotline number")]
            )
        edit = await edit_tenant(tenant_id, slug)
        edit.tenant.extensions.append(config)
        edit.check(what, "extensions", len(edit.tenant.extensions) - 1)
        last = (
            await Extension.select(Extension.position)
            .where(Extension.tenant == tenant_id)
            .order_by(Extension.position, ascending=False)
            .first()
        )
        await Extension.insert(
            Extension(
                tenant=tenant_id,
                number=number,
                name=config.name,
                sip_password=password,
                agent_id=config.agent_id,
                ringback=config.ringback,
                position=0 if last is None else last["position"] + 1,
            )
        )
    await publish_from_db()
    return ExtensionSecret(extension=await get_extension(principal, number), sip_password=password)


async def update_extension(
    principal: Principal, number: str, data: ExtensionUpdate
) -> ExtensionOut:
    return await _change(principal, number, {k: v.strip() for k, v in data.given().items()})


async def regenerate_password(principal: Principal, number: str) -> ExtensionSecret:
    password = new_password()
    extension = await _change(principal, number, {"password": password})
    return ExtensionSecret(extension=extension, sip_password=password)


async def _change(principal: Principal, number: str, values: dict[str, str]) -> ExtensionOut:
    what = f"extension {number}"
    async with write_lock():
        row = await _row(principal, number)
        slugs = await _slugs()
        edit = await edit_tenant(row["tenant"], slugs[row["tenant"]])
        extensions = edit.tenant.extensions
        i = next(i for i, e in enumerate(extensions) if e.number == number)
        merged = {**msgspec.to_builtins(extensions[i]), **values}
        extensions[i] = convert(merged, ExtensionConfig, what)
        edit.check(what, "extensions", i)
        new = extensions[i]
        await Extension.update(
            {
                Extension.name: new.name,
                Extension.agent_id: new.agent_id,
                Extension.ringback: new.ringback,
                Extension.sip_password: new.password,
            }
        ).where(Extension._meta.primary_key == row["id"])
    await publish_from_db()
    return await get_extension(principal, number)


async def delete_extension(principal: Principal, number: str) -> None:
    async with write_lock():
        row = await _row(principal, number)
        edit = await edit_tenant(row["tenant"], (await _slugs())[row["tenant"]])
        uses = uses_of(edit.tenant, destination=f"ext:{number}")
        agents = await UserAuth.select(UserAuth.user.login).where(
            UserAuth.extension == number, UserAuth.user.tenant == row["tenant"]
        )
        uses += [
            Problem(key="", message=f"agent {a['user.login']} answers calls on it") for a in agents
        ]
        if uses:
            raise InUse(f"extension {number}", uses)
        await Extension.delete().where(Extension._meta.primary_key == row["id"])
    await publish_from_db()
