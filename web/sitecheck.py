"""Portal edits are checked by the site file's rules (appliance.sitefile.schema),
so a change made in a browser is refused for exactly the reasons a site file
would be: the current state is exported, the edited object replaced in it,
and the checker run over the whole; problems under the edited object are the
user's to fix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from appliance.auth.core import Principal
from appliance.errors import LineboxError, NotFound
from appliance.sitefile import apply as apply_mod
from appliance.sitefile.export import export_site
from appliance.sitefile.locate import KeyPath, render
from appliance.sitefile.schema import Problems, SiteFile, TenantConfig, _Checker, parse_site
from appliance.tables import Tenant
from web.auth import scoped
from web.errors import InvalidRequest


class Problem(msgspec.Struct, kw_only=True):
    key: str
    """Where, relative to the object: `routes[0].to`, `blacklist[2]`."""
    message: str


class InvalidChange(LineboxError):
    """The change breaks a rule; `details["errors"]` lists each problem."""

    error_id = "invalid-change"

    def __init__(self, what: str, problems: list[Problem]) -> None:
        self.problems = problems
        text = "; ".join(f"{p.key}: {p.message}" if p.key else p.message for p in problems)
        super().__init__(
            f"{what}: {text}",
            {"errors": [{"key": p.key, "message": p.message} for p in problems]},
        )


async def current_site() -> SiteFile:
    return parse_site(await export_site(), "the appliance's configuration")


def problems_under(site: SiteFile, prefix: KeyPath) -> list[Problem]:
    problems = Problems()
    _Checker(site, problems).run()
    out = []
    for path, message in problems.items:
        if path[: len(prefix)] == tuple(prefix):
            out.append(Problem(key=render(path[len(prefix) :]), message=message))
    return out


def tenant_index(site: SiteFile, slug: str) -> int:
    for i, tenant in enumerate(site.tenants):
        if tenant.slug == slug:
            return i
    raise LineboxError(f"tenant {slug!r} is not in the configuration")


def convert(value: Any, kind: type[Any], what: str) -> Any:
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        raise InvalidChange(what, [Problem(key="", message=str(exc))]) from None


# --- changing one tenant's objects (extensions, groups, schedules, menus) --------


class TenantNotFound(NotFound):
    error_id = "tenant-not-found"


async def tenant_for(principal: Principal, slug: str | None) -> tuple[int, str]:
    """The tenant (id, slug) a change is for: an owner's own; an operator names
    one, or need not when the appliance serves a single tenant. A tenant the
    principal may not see is not found, the same as one that does not exist."""
    if not principal.is_operator:
        own = (
            await Tenant.select(Tenant.slug)
            .where(Tenant._meta.primary_key == principal.tenant_id)
            .first()
        )
        if own is None or principal.role == "agent" or (slug and slug != own["slug"]):
            raise TenantNotFound(f"no tenant {slug or ''}".strip(), {"tenant": slug or ""})
        return int(principal.tenant_id or 0), own["slug"]
    query = Tenant.select(Tenant._meta.primary_key, Tenant.slug)
    rows = await (query.where(Tenant.slug == slug) if slug else query)
    if not rows:
        raise TenantNotFound(f"no tenant {slug}", {"tenant": slug})
    if len(rows) > 1:
        raise InvalidRequest("tenant", "the appliance serves several tenants: name one (its slug)")
    return rows[0]["id"], rows[0]["slug"]


@dataclass
class TenantEdit:
    """The whole configuration as the site file sees it, to change one tenant's objects."""

    site: SiteFile
    index: int
    slug: str
    tenant_id: int

    @property
    def tenant(self) -> TenantConfig:
        return self.site.tenants[self.index]

    def check(self, what: str, *under: str | int) -> None:
        """Raise InvalidChange with the problems under the tenant's `under` path."""
        problems = problems_under(self.site, ("tenants", self.index, *under))
        if problems:
            raise InvalidChange(what, problems)


async def edit_tenant(tenant_id: int, slug: str) -> TenantEdit:
    site = await current_site()
    return TenantEdit(site, tenant_index(site, slug), slug, tenant_id)


def write_lock() -> Any:
    """The transaction a portal change reads, checks and writes in: the same
    write lock as `linebox apply`, so two changes never interleave."""
    return apply_mod._transaction(False)


def uses_of(tenant: TenantConfig, destination: str = "", schedule: str = "") -> list[Problem]:
    """What of the tenant still points at `destination` (`group:sales`) or at
    the schedule `schedule`: deleting it would leave them pointing at nothing."""
    out: list[Problem] = []

    def found(key: str, text: str) -> None:
        out.append(Problem(key=key, message=text))

    for hi, h in enumerate(tenant.hotlines):
        for i, route in enumerate(h.routes):
            where = render(("hotlines", hi, "routes", i))
            if destination and (route.to == destination or destination in (route.split or {})):
                found(where, f"hotline {h.number}, route {i + 1}, sends calls to {destination}")
            if schedule and route.when and route.when.schedule in (schedule, "!" + schedule):
                found(
                    f"{where}.when",
                    f"hotline {h.number}, route {i + 1}, follows schedule {schedule}",
                )
        if destination and h.fallback is not None:
            for key in ("busy", "no_answer"):
                if destination in (getattr(h.fallback, key) or ()):
                    found(
                        render(("hotlines", hi, "fallback", key)),
                        f"hotline {h.number} falls back to {destination}",
                    )
    if destination:
        for mi, m in enumerate(tenant.menus):
            for key, dest in m.keys.items():
                if dest == destination:
                    found(
                        render(("menus", mi, "keys", key)),
                        f"key {key} of menu {m.name} leads to {destination}",
                    )
            if m.on_timeout == destination:
                found(
                    render(("menus", mi, "on_timeout")), f"menu {m.name} times out to {destination}"
                )
        for gi, g in enumerate(tenant.groups):
            if destination in g.members:
                found(
                    render(("groups", gi, "members", g.members.index(destination))),
                    f"group {g.name} rings {destination}",
                )
    return out


class InUse(InvalidChange):
    """A delete refused because other objects still point at the object."""

    def __init__(self, what: str, uses: list[Problem]) -> None:
        super().__init__(f"{what} is still in use; change these first", uses)


async def named_row(
    principal: Principal, table: Any, name: str, tenant: str | None, not_found: type[NotFound]
) -> tuple[dict[str, Any], str]:
    """The row of a tenant's named object (group, schedule, menu) and its
    tenant's slug. Names are unique within a tenant: an operator names the
    tenant (`?tenant=`) when several have one by that name."""
    conditions = scoped(principal, table.tenant, [table.name == name])
    if tenant:
        conditions.append(table.tenant.slug == tenant)
    rows = (
        []
        if principal.role == "agent"
        else await table.select(
            table.all_columns(), table.tenant.slug.as_alias("tenant_slug")
        ).where(*conditions)
    )
    if not rows:
        raise not_found(f"no {table._meta.tablename.removeprefix('ring_')} {name}", {"name": name})
    if len(rows) > 1:
        raise InvalidRequest("tenant", f"several tenants have {name!r}: name one (its slug)")
    return rows[0], rows[0]["tenant_slug"]


async def next_position(table: Any, tenant_id: int) -> int:
    last = (
        await table.select(table.position)
        .where(table.tenant == tenant_id)
        .order_by(table.position, ascending=False)
        .first()
    )
    return 0 if last is None else int(last["position"]) + 1
