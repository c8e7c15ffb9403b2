"""What the operator's admin does. Every change is checked by the site file's
rules (web/sitecheck.py) against the whole configuration, made inside the
same write lock `linebox apply` takes, and re-publishes the routing plan when
calls could route differently. Each service returns what changed, for the
controller's audit entry."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import anyio
import msgspec
from argon2 import PasswordHasher

from appliance.auth import core
from appliance.billing import ledger
from appliance.errors import LineboxError, NotFound
from appliance.numberclass import classify
from appliance.ops import backup, doctor
from appliance.routing.compile import publish_from_db
from appliance.settings import Settings
from appliance.sitefile import apply as apply_mod
from appliance.sitefile.schema import (
    HotlineConfig,
    SiteFile,
    TenantConfig,
    TrunkConfig,
    format_money,
    parse_money,
)
from appliance.tables import (
    ApiToken,
    Hotline,
    Tenant,
    Trunk,
    TrunkStatus,
    User,
    UserAuth,
    WebSession,
)
from web.domain.admin.schemas import (
    BackupOut,
    Finding,
    GatewayState,
    NumberAssign,
    NumberOut,
    PasswordReset,
    SystemHealth,
    TenantCreate,
    TenantOut,
    TopUp,
    TopUpOut,
    TrunkCreate,
    TrunkOut,
    TrunkUpdate,
    UserCreate,
    UserOut,
    UserUpdate,
    given,
)
from web.domain.health.services import health_report
from web.errors import InvalidRequest
from web.sitecheck import (
    InvalidChange,
    Problem,
    TenantNotFound,
    convert,
    current_site,
    problems_under,
    tenant_index,
    write_lock,
)

LOCK_YEARS = 100
"""An operator's lock lasts until an operator lifts it."""
BACKUP_NAME = re.compile(r"^linebox-[A-Za-z0-9._-]{1,200}\.tar\.gz\Z")
_NUMBER = re.compile(r"^[0-9]{3,20}\Z")

_hasher = PasswordHasher()


class TrunkNotFound(NotFound):
    error_id = "trunk-not-found"


class UserNotFound(NotFound):
    error_id = "user-not-found"


class NumberNotFound(NotFound):
    error_id = "hotline-not-found"


class BackupNotFound(NotFound):
    error_id = "backup-not-found"


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _check(site: SiteFile, what: str, *prefix: str | int) -> None:
    problems = problems_under(site, tuple(prefix))
    if problems:
        raise InvalidChange(what, problems)


def _check_new(before: list[Problem], site: SiteFile, what: str) -> None:
    """Refuse a change that leaves the configuration with a problem it did not have."""
    seen = {(p.key, p.message) for p in before}
    new = [p for p in problems_under(site, ()) if (p.key, p.message) not in seen]
    if new:
        raise InvalidChange(what, new)


async def _slugs() -> dict[int, str]:
    return {r["id"]: r["slug"] for r in await Tenant.select(Tenant._meta.primary_key, Tenant.slug)}


async def _tenant(slug: str) -> dict[str, Any]:
    row = await Tenant.select().where(Tenant.slug == slug).first() if slug else None
    if row is None:
        raise TenantNotFound(f"no tenant {slug!r}", {"tenant": slug})
    return row


# --- tenants ---------------------------------------------------------------------


async def list_tenants() -> list[TenantOut]:
    tenants = await Tenant.select().order_by(Tenant.position).order_by(Tenant.slug)
    numbers: dict[int, list[str]] = {}
    for h in await Hotline.select(Hotline.tenant, Hotline.number).order_by(Hotline.number):
        numbers.setdefault(h["tenant"], []).append(h["number"])
    users: dict[int, int] = {}
    for u in await User.select(User.tenant):
        users[u["tenant"]] = users.get(u["tenant"], 0) + 1
    return [
        TenantOut(
            slug=t["slug"],
            name=t["name"],
            timezone=t["timezone"],
            balance=format_money(t["balance_fen"]),
            suspended=t["suspended"],
            hotlines=numbers.get(t["id"], []),
            users=users.get(t["id"], 0),
        )
        for t in tenants
    ]


async def get_tenant(slug: str) -> TenantOut:
    await _tenant(slug)
    return next(t for t in await list_tenants() if t.slug == slug)


def _money(key: str, value: str) -> int:
    try:
        return parse_money(value.strip())
    except (ValueError, AttributeError):
        raise InvalidRequest(key, f'{value!r} is not an amount of yuan like "500.00"') from None


async def create_tenant(data: TenantCreate, by: str) -> TenantOut:
    opening = _money("opening_balance", data.opening_balance) if data.opening_balance else 0
    config = TenantConfig(slug=data.slug.strip(), name=data.name.strip(), timezone=data.timezone)
    async with write_lock():
        site = await current_site()
        site.tenants.append(config)
        _check(site, f"tenant {config.slug}", "tenants", len(site.tenants) - 1)
        last = await Tenant.select(Tenant.position).order_by(Tenant.position, ascending=False)
        await Tenant.insert(
            Tenant(
                slug=config.slug,
                name=config.name,
                timezone=config.timezone,
                position=(last[0]["position"] + 1) if last else 0,
            )
        )
    if opening:
        await ledger.book(config.slug, opening, by=by, kind="opening", note="opening balance")
    return await get_tenant(config.slug)


async def set_suspended(slug: str, suspended: bool) -> tuple[TenantOut, bool]:
    """Suspend (its hotlines refuse calls) or resume a tenant; True when it changed."""
    async with write_lock():
        row = await _tenant(slug)
        changed = row["suspended"] != suspended
        if changed:
            await Tenant.update(
                {
                    Tenant.suspended: suspended,
                    Tenant.suspended_at: dt.datetime.now(dt.UTC) if suspended else None,
                }
            ).where(Tenant._meta.primary_key == row["id"])
    if changed:
        await publish_from_db()
    return await get_tenant(slug), changed


async def top_up(slug: str, data: TopUp, by: str) -> TopUpOut:
    await _tenant(slug)
    amount = _money("amount", data.amount)
    if amount <= 0:
        raise InvalidRequest("amount", "a top-up must be more than 0.00")
    if data.ref is not None and not 1 <= len(data.ref) <= 100:
        raise InvalidRequest("ref", "1 to 100 characters")
    booking = await ledger.book(
        slug,
        amount,
        by=by,
        kind="topup",
        note=data.note[:500],
        ref=f"topup:{data.ref}" if data.ref else None,
    )
    return TopUpOut(
        ref=booking.ref,
        amount=format_money(booking.amount_fen),
        balance=format_money(booking.balance_after_fen),
        duplicate=booking.duplicate,
    )


# --- hotline numbers ---------------------------------------------------------------


async def list_numbers() -> list[NumberOut]:
    slugs = await _slugs()
    trunk_of: dict[str, str] = {}
    for t in await Trunk.select(Trunk.name, Trunk.dids):
        for did in _json(t["dids"]) or []:
            trunk_of[did] = t["name"]
    out = []
    for h in await Hotline.select(Hotline.number, Hotline.tenant, Hotline.name).order_by(
        Hotline.number
    ):
        nc = classify(h["number"])
        out.append(
            NumberOut(
                number=h["number"],
                tenant=slugs.get(h["tenant"], ""),
                name=h["name"],
                number_class=nc.grade,
                number_class_label=nc.label,
                number_pattern=nc.pattern,
                trunk=trunk_of.get(h["number"], ""),
            )
        )
    return out


async def get_number(number: str) -> NumberOut:
    for n in await list_numbers():
        if n.number == number:
            return n
    raise NumberNotFound(f"no hotline {number}", {"number": number})


async def assign_number(data: NumberAssign) -> NumberOut:
    """A new hotline number for a tenant, with no routes yet (its owner sets them)."""
    number = data.number.strip()
    async with write_lock():
        tenant = await _tenant(data.tenant)
        site = await current_site()
        ti = tenant_index(site, tenant["slug"])
        hotline = HotlineConfig(number=number, name=data.name.strip())
        site.tenants[ti].hotlines.append(hotline)
        hi = len(site.tenants[ti].hotlines) - 1
        _check(site, f"hotline {number}", "tenants", ti, "hotlines", hi)
        last = await Hotline.select(Hotline.position).where(Hotline.tenant == tenant["id"])
        position = max((r["position"] for r in last), default=-1) + 1
        values = apply_mod._db_values(
            apply_mod.KINDS["hotline"],
            apply_mod._hotline(hotline, tenant["slug"], position),
            {tenant["slug"]: tenant["id"]},
        )
        await Hotline.insert(Hotline(**values))
    await publish_from_db()
    return await get_number(number)


async def delete_number(number: str) -> NumberOut:
    gone = await get_number(number)
    async with write_lock():
        site = await current_site()
        before = problems_under(site, ())
        for tenant in site.tenants:
            tenant.hotlines = [h for h in tenant.hotlines if h.number != number]
        _check_new(before, site, f"hotline {number}")
        await Hotline.delete().where(Hotline.number == number)
    await publish_from_db()
    return gone


# --- trunks ----------------------------------------------------------------------


TRUNK_KEYS = (
    "host",
    "gateways",
    "inbound",
    "transport",
    "dids",
    "did_map",
    "max_calls",
    "strip_prefix",
    "add_prefix",
    "codecs",
)
"""The trunk's columns a change writes, as the site file names them."""
_TRUNK_JSON = ("gateways", "inbound", "dids", "did_map", "codecs")


def _trunk_out(row: dict[str, Any]) -> TrunkOut:
    return TrunkOut(
        name=row["name"],
        host=row["host"],
        gateways=list(_json(row["gateways"]) or []),
        inbound=list(_json(row["inbound"]) or []),
        transport=row["transport"] or "udp",
        dids=list(_json(row["dids"]) or []),
        did_map=dict(_json(row["did_map"]) or {}),
        max_calls=row["max_calls"],
        strip_prefix=row["strip_prefix"],
        add_prefix=row["add_prefix"],
        codecs=list(_json(row["codecs"]) or []),
    )


def _trunk_values(trunk: TrunkConfig) -> dict[str, Any]:
    """The row's columns for `trunk`, as `linebox apply` writes them."""
    values = apply_mod.trunk_values(trunk)
    return {k: json.dumps(v) if k in _TRUNK_JSON else v for k, v in values.items()}


async def list_trunks() -> list[TrunkOut]:
    rows = await Trunk.select().order_by(Trunk.position).order_by(Trunk.name)
    return [_trunk_out(r) for r in rows]


async def get_trunk(name: str) -> TrunkOut:
    row = await Trunk.select().where(Trunk.name == name).first()
    if row is None:
        raise TrunkNotFound(f"no trunk {name!r}", {"name": name})
    return _trunk_out(row)


def _trunk_config(values: dict[str, Any], name: str) -> TrunkConfig:
    for key in ("host", "transport", "strip_prefix", "add_prefix"):
        if isinstance(values.get(key), str):
            values[key] = values[key].strip()
    for key in ("gateways", "inbound", "codecs"):
        if isinstance(values.get(key), list):
            values[key] = [x.strip() for x in values[key] if x.strip()]
    for key in ("gateways", "inbound"):  # empty: not written
        values[key] = values.get(key) or None
    if values.get("did_map") == {}:
        values["did_map"] = None
    return convert(values, TrunkConfig, f"trunk {name}")


async def create_trunk(data: TrunkCreate) -> TrunkOut:
    values = msgspec.to_builtins(data)
    values["name"] = data.name.strip()
    trunk = _trunk_config(values, values["name"])
    async with write_lock():
        site = await current_site()
        site.trunks.append(trunk)
        _check(site, f"trunk {trunk.name}", "trunks", len(site.trunks) - 1)
        last = await Trunk.select(Trunk.position)
        await Trunk.insert(
            Trunk(
                name=trunk.name,
                position=max((r["position"] for r in last), default=-1) + 1,
                **_trunk_values(trunk),
            )
        )
    await publish_from_db()
    return await get_trunk(trunk.name)


async def update_trunk(name: str, data: TrunkUpdate) -> tuple[TrunkOut, TrunkOut]:
    """(before, after)."""
    before = await get_trunk(name)
    async with write_lock():
        site = await current_site()
        ti = next(i for i, t in enumerate(site.trunks) if t.name == name)
        merged = msgspec.to_builtins(site.trunks[ti])
        merged.update({k: msgspec.to_builtins(v) for k, v in given(data).items()})
        site.trunks[ti] = _trunk_config(merged, name)
        _check(site, f"trunk {name}", "trunks", ti)
        await Trunk.update(
            {getattr(Trunk, k): v for k, v in _trunk_values(site.trunks[ti]).items()}
        ).where(Trunk.name == name)
    await publish_from_db()
    return before, await get_trunk(name)


async def delete_trunk(name: str) -> TrunkOut:
    gone = await get_trunk(name)
    async with write_lock():
        await Trunk.delete().where(Trunk.name == name)
    await publish_from_db()
    return gone


# --- users -----------------------------------------------------------------------


async def _user_row(user_id: int) -> dict[str, Any]:
    row = await User.select().where(User._meta.primary_key == user_id).first()
    if row is None:
        raise UserNotFound(f"no user {user_id}", {"id": user_id})
    return row


async def list_users() -> list[UserOut]:
    slugs = await _slugs()
    auth = {a["user"]: a for a in await UserAuth.select()}
    now = dt.datetime.now(dt.UTC)
    out = []
    for u in await User.select().order_by(User.tenant).order_by(User.login):
        a = auth.get(u["id"]) or {}
        until = a.get("locked_until")
        out.append(
            UserOut(
                id=u["id"],
                login=u["login"],
                role=u["role"],
                tenant=slugs.get(u["tenant"], "") if u["tenant"] is not None else "",
                locked=until is not None and until > now,
                locked_until=until if until is not None and until > now else None,
                totp_enabled=bool(a.get("totp_secret")),
            )
        )
    return out


async def get_user(user_id: int) -> UserOut:
    await _user_row(user_id)
    return next(u for u in await list_users() if u.id == user_id)


def _check_role(role: str, tenant: str) -> None:
    if role not in core.ROLES:
        raise InvalidRequest("role", f"{role!r} is not a role: {' | '.join(core.ROLES)}")
    if role == "operator" and tenant:
        raise InvalidRequest("tenant", "operators belong to no tenant: leave it empty")
    if role != "operator" and not tenant:
        raise InvalidRequest("tenant", f"an {role} belongs to a tenant: give its slug")


def _strong(password: str, login: str) -> None:
    try:
        core.check_password_strength(password, login)
    except LineboxError as exc:
        raise InvalidRequest("password", exc.detail) from None


async def create_user(data: UserCreate) -> UserOut:
    login, tenant_slug = data.login.strip(), data.tenant.strip()
    if not login or len(login) > 255 or any(c.isspace() for c in login):
        raise InvalidRequest("login", f"{data.login!r} is not a login: no spaces, not empty")
    _check_role(data.role, tenant_slug)
    _strong(data.password, login)
    tenant_id = (await _tenant(tenant_slug))["id"] if tenant_slug else None
    password_hash = _hasher.hash(data.password)
    async with write_lock():
        if await User.exists().where(User.login == login):
            raise InvalidRequest("login", f"user {login!r} exists already")
        await User.insert(
            User(tenant=tenant_id, login=login, password_hash=password_hash, role=data.role)
        )
    row = await User.select(User._meta.primary_key).where(User.login == login).first()
    assert row is not None
    return await get_user(row["id"])


async def _other_operators(user_id: int) -> int:
    now = dt.datetime.now(dt.UTC)
    operators = await User.select(User._meta.primary_key).where(
        User.role == "operator", User.tenant.is_null(), User._meta.primary_key != user_id
    )
    ids = [o["id"] for o in operators]
    if not ids:
        return 0
    locked = await UserAuth.select(UserAuth.user).where(
        UserAuth.user.is_in(ids), UserAuth.locked_until > now
    )
    return len(ids) - len(locked)


async def update_user(user_id: int, data: UserUpdate) -> tuple[UserOut, UserOut]:
    """(before, after)."""
    before = await get_user(user_id)
    if isinstance(data.role, str) and data.role != before.role:
        _check_role(data.role, before.tenant)
        if before.role == "operator" and not await _other_operators(user_id):
            raise InvalidRequest("role", "the appliance needs an operator: make another one first")
        await User.update({User.role: data.role}).where(User._meta.primary_key == user_id)
    return before, await get_user(user_id)


async def _end_sessions(user_id: int) -> None:
    await WebSession.delete().where(WebSession.user == user_id)


async def reset_password(user_id: int, data: PasswordReset) -> UserOut:
    row = await _user_row(user_id)
    _strong(data.password, row["login"])
    await User.update({User.password_hash: _hasher.hash(data.password)}).where(
        User._meta.primary_key == user_id
    )
    await UserAuth.update({UserAuth.password_changed_at: dt.datetime.now(dt.UTC)}).where(
        UserAuth.user == user_id
    )
    await _end_sessions(user_id)
    return await get_user(user_id)


async def set_locked(user_id: int, locked: bool, by_user_id: int) -> tuple[UserOut, bool]:
    """Lock (no login; sessions end, API tokens are revoked) or unlock; True when it changed."""
    before = await get_user(user_id)
    if locked and user_id == by_user_id:
        raise InvalidRequest("id", "you cannot lock yourself out")
    if locked and before.role == "operator" and not await _other_operators(user_id):
        raise InvalidRequest("id", "the appliance needs an operator who can log in")
    if before.locked == locked:
        return before, False
    now = dt.datetime.now(dt.UTC)
    await core._auth_row(user_id)
    await UserAuth.update(
        {
            UserAuth.locked_until: now + dt.timedelta(days=365 * LOCK_YEARS) if locked else None,
            UserAuth.failed_logins: 0,
        }
    ).where(UserAuth.user == user_id)
    if locked:
        await _end_sessions(user_id)
        # A locked person's automation stops too; new tokens are theirs to make.
        await ApiToken.update({ApiToken.revoked_at: now}).where(
            ApiToken.user == user_id, ApiToken.revoked_at.is_null()
        )
    else:
        login = (await _user_row(user_id))["login"]
        # Failed-login lock-outs on the typed login end as well.
        from appliance.tables import LoginThrottle

        await LoginThrottle.delete().where(LoginThrottle.identifier == login.lower())
    return await get_user(user_id), True


# --- backups ---------------------------------------------------------------------


def backup_dir(settings: Settings) -> Path:
    return settings.paths.data_dir / "backups"


def _backup_out(path: Path) -> BackupOut:
    st = path.stat()
    return BackupOut(
        name=path.name,
        size=st.st_size,
        created=dt.datetime.fromtimestamp(st.st_mtime, dt.UTC),
    )


def list_backups(settings: Settings) -> list[BackupOut]:
    folder = backup_dir(settings)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_file() and BACKUP_NAME.match(p.name)]
    return sorted((_backup_out(p) for p in found), key=lambda b: b.created, reverse=True)


def backup_path(settings: Settings, name: str) -> Path:
    """The archive called `name`, never a path outside the backup folder."""
    path = backup_dir(settings) / name
    if not BACKUP_NAME.match(name) or not path.is_file():
        raise BackupNotFound(f"no backup {name!r}", {"name": name})
    return path


async def create_backup(settings: Settings, recordings: bool) -> BackupOut:
    folder = backup_dir(settings)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    output = folder / backup.default_name()
    # Reading the whole data directory is slow work: off the event loop.
    await anyio.to_thread.run_sync(lambda: backup.create(settings, output, recordings=recordings))
    return _backup_out(output)


def delete_backup(settings: Settings, name: str) -> BackupOut:
    path = backup_path(settings, name)
    gone = _backup_out(path)
    path.unlink()
    return gone


# --- health ----------------------------------------------------------------------


async def gateway_states() -> list[GatewayState]:
    """Each trunk's gateways in order, with what the OPTIONS probes last found
    (the worker keeps it in `trunk_status`); `up` None: not probed yet."""
    status = {(r["trunk"], r["gateway"]): r for r in await TrunkStatus.select()}
    out = []
    for trunk in await list_trunks():
        for gateway in trunk.gateways or ([trunk.host] if trunk.host else []):
            row = status.get((trunk.name, gateway))
            out.append(
                GatewayState(
                    trunk=trunk.name,
                    gateway=gateway,
                    up=row["up"] if row else None,
                    since=row["since"] if row else None,
                )
            )
    return out


async def system_health(settings: Settings) -> SystemHealth:
    report = await health_report(settings)
    # doctor runs its own event loops and probes with timeouts: in a thread.
    findings = await anyio.to_thread.run_sync(lambda: doctor.run_checks(settings))
    failed = any(f.status == doctor.FAIL for f in findings)
    gateways = await gateway_states()
    down = any(g.up is False for g in gateways)
    return SystemHealth(
        status="degraded" if report.status != "ok" or failed or down else "ok",
        components=msgspec.to_builtins(report.components),
        findings=[
            Finding(name=f.name, status=f.status, detail=f.detail, fix=f.fix) for f in findings
        ],
        gateways=gateways,
    )
