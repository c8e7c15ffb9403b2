from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.params import Parameter
from litestar.response import File, Template

from appliance.audit import diff
from appliance.errors import LineboxError
from web.auth import CurrentUser
from web.dependencies import AppSettings
from web.domain.admin import services
from web.domain.admin.schemas import (
    BackupCreate,
    BackupOut,
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
)
from web.domain.audit.services import log as audit_log
from web.errors import BAD_REQUEST, error_response_spec
from web.i18n import gettext

OPERATORS = {"roles": ("operator",)}
Req = Request[Any, Any, Any]
SlugParam = Annotated[str, Parameter(description="The tenant's slug", max_length=64)]
NameParam = Annotated[str, Parameter(description="The trunk's name", max_length=64)]
UserIdParam = Annotated[int, Parameter(ge=1, le=2**62, description="The user's id")]
NumberParam = Annotated[str, Parameter(description="The hotline number", max_length=20)]


def _not_found(what: str, error_id: str) -> dict[int, Any]:
    return {**BAD_REQUEST, 404: error_response_spec(f"No such {what} (`{error_id}`)")}


# --- what the API and the pages both do: the change, then its audit entry ----------


async def create_tenant(request: Req, by: str, data: TenantCreate) -> TenantOut:
    out = await services.create_tenant(data, by)
    await audit_log(
        request, "create", f"tenant:{out.slug}", changes=diff(None, out), tenant=out.slug
    )
    return out


async def suspend_tenant(request: Req, slug: str, suspended: bool) -> TenantOut:
    out, changed = await services.set_suspended(slug, suspended)
    if changed:
        await audit_log(
            request, "suspend" if suspended else "resume", f"tenant:{slug}", tenant=slug
        )
    return out


async def top_up(request: Req, by: str, slug: str, data: TopUp) -> TopUpOut:
    out = await services.top_up(slug, data, by)
    if not out.duplicate:
        await audit_log(
            request,
            "topup",
            f"tenant:{slug}",
            detail={
                "amount": out.amount,
                "balance": out.balance,
                "ref": out.ref,
                "note": data.note,
            },
            tenant=slug,
        )
    return out


async def assign_number(request: Req, data: NumberAssign) -> NumberOut:
    out = await services.assign_number(data)
    await audit_log(
        request, "create", f"hotline:{out.number}", changes=diff(None, out), tenant=out.tenant
    )
    return out


async def delete_number(request: Req, number: str) -> None:
    gone = await services.delete_number(number)
    await audit_log(
        request, "delete", f"hotline:{number}", changes=diff(gone, None), tenant=gone.tenant
    )


async def create_trunk(request: Req, data: TrunkCreate) -> TrunkOut:
    out = await services.create_trunk(data)
    await audit_log(request, "create", f"trunk:{out.name}", changes=diff(None, out), tenant=None)
    return out


async def update_trunk(request: Req, name: str, data: TrunkUpdate) -> TrunkOut:
    before, after = await services.update_trunk(name, data)
    await audit_log(request, "update", f"trunk:{name}", changes=diff(before, after), tenant=None)
    return after


async def delete_trunk(request: Req, name: str) -> None:
    gone = await services.delete_trunk(name)
    await audit_log(request, "delete", f"trunk:{name}", changes=diff(gone, None), tenant=None)


def _user_tenant(user: UserOut) -> str | None:
    return user.tenant or None


async def create_user(request: Req, data: UserCreate) -> UserOut:
    out = await services.create_user(data)
    await audit_log(
        request, "create", f"user:{out.login}", changes=diff(None, out), tenant=_user_tenant(out)
    )
    return out


async def update_user(request: Req, user_id: int, data: UserUpdate) -> UserOut:
    before, after = await services.update_user(user_id, data)
    changes = diff(before, after)
    if changes:
        await audit_log(
            request, "update", f"user:{after.login}", changes=changes, tenant=_user_tenant(after)
        )
    return after


async def reset_password(request: Req, user_id: int, data: PasswordReset) -> UserOut:
    out = await services.reset_password(user_id, data)
    await audit_log(request, "password_reset", f"user:{out.login}", tenant=_user_tenant(out))
    return out


async def lock_user(request: Req, by_user_id: int, user_id: int, locked: bool) -> UserOut:
    out, changed = await services.set_locked(user_id, locked, by_user_id)
    if changed:
        await audit_log(
            request, "lock" if locked else "unlock", f"user:{out.login}", tenant=_user_tenant(out)
        )
    return out


async def create_backup(request: Req, settings: Any, recordings: bool) -> BackupOut:
    out = await services.create_backup(settings, recordings)
    await audit_log(
        request,
        "backup",
        f"backup:{out.name}",
        detail={"size": out.size, "recordings": recordings},
        tenant=None,
    )
    return out


async def delete_backup(request: Req, settings: Any, name: str) -> None:
    services.delete_backup(settings, name)
    await audit_log(request, "delete", f"backup:{name}", tenant=None)


def backup_file(settings: Any, name: str) -> File:
    return File(
        services.backup_path(settings, name),
        filename=name,
        media_type="application/gzip",
        headers={"Cache-Control": "no-store"},
    )


# --- API -------------------------------------------------------------------------


class TenantAdminController(Controller):
    path = "/api/v1/admin/tenants"
    tags = ("admin",)
    opt = OPERATORS

    @get("/", operation_id="adminListTenants", summary="Every tenant with balance and state")
    async def list_tenants(self) -> list[TenantOut]:
        return await services.list_tenants()

    @post(
        "/",
        operation_id="adminCreateTenant",
        summary="A new tenant (checked by the site file's rules)",
        responses=BAD_REQUEST,
    )
    async def create(self, request: Req, principal: CurrentUser, data: TenantCreate) -> TenantOut:
        return await create_tenant(request, principal.login, data)

    @get(
        "/{slug:str}",
        operation_id="adminGetTenant",
        summary="One tenant",
        responses=_not_found("tenant", "tenant-not-found"),
    )
    async def get_tenant(self, slug: SlugParam) -> TenantOut:
        return await services.get_tenant(slug)

    @post(
        "/{slug:str}/suspend",
        operation_id="adminSuspendTenant",
        summary="Suspend a tenant: its hotlines refuse calls from the next call on",
        status_code=200,
        responses=_not_found("tenant", "tenant-not-found"),
    )
    async def suspend(self, request: Req, slug: SlugParam) -> TenantOut:
        return await suspend_tenant(request, slug, True)

    @post(
        "/{slug:str}/resume",
        operation_id="adminResumeTenant",
        summary="Resume a suspended tenant",
        status_code=200,
        responses=_not_found("tenant", "tenant-not-found"),
    )
    async def resume(self, request: Req, slug: SlugParam) -> TenantOut:
        return await suspend_tenant(request, slug, False)

    @post(
        "/{slug:str}/topups",
        operation_id="adminTopUp",
        summary="Book a top-up into the tenant's prepaid balance",
        description="Booked in the ledger with who did it; a top-up that lifts the balance "
        "over the suspension threshold restores the tenant's hotlines.",
        status_code=200,
        responses=_not_found("tenant", "tenant-not-found"),
    )
    async def top_up(
        self, request: Req, principal: CurrentUser, slug: SlugParam, data: TopUp
    ) -> TopUpOut:
        return await top_up(request, principal.login, slug, data)


class NumberAdminController(Controller):
    path = "/api/v1/admin/numbers"
    tags = ("admin",)
    opt = OPERATORS

    @get(
        "/",
        operation_id="adminListNumbers",
        summary="Every hotline number with its tenant, trunk and number class (号码分类)",
    )
    async def list_numbers(self) -> list[NumberOut]:
        return await services.list_numbers()

    @post(
        "/",
        operation_id="adminAssignNumber",
        summary="Give a tenant a new hotline number (no routes yet)",
        responses=_not_found("tenant", "tenant-not-found"),
    )
    async def assign(self, request: Req, data: NumberAssign) -> NumberOut:
        return await assign_number(request, data)

    @delete(
        "/{number:str}",
        operation_id="adminDeleteNumber",
        summary="Take a hotline number away (refused while a trunk or a route names it)",
        responses=_not_found("hotline", "hotline-not-found"),
    )
    async def remove(self, request: Req, number: NumberParam) -> None:
        await delete_number(request, number)


class TrunkAdminController(Controller):
    path = "/api/v1/admin/trunks"
    tags = ("admin",)
    opt = OPERATORS

    @get("/", operation_id="adminListTrunks", summary="The carrier SIP trunks")
    async def list_trunks(self) -> list[TrunkOut]:
        return await services.list_trunks()

    @post(
        "/",
        operation_id="adminCreateTrunk",
        summary="A new trunk (checked by the site file's rules)",
        responses=BAD_REQUEST,
    )
    async def create(self, request: Req, data: TrunkCreate) -> TrunkOut:
        return await create_trunk(request, data)

    @get(
        "/{name:str}",
        operation_id="adminGetTrunk",
        summary="One trunk",
        responses=_not_found("trunk", "trunk-not-found"),
    )
    async def get_trunk(self, name: NameParam) -> TrunkOut:
        return await services.get_trunk(name)

    @patch(
        "/{name:str}",
        operation_id="adminUpdateTrunk",
        summary="Change a trunk's host or numbers",
        responses=_not_found("trunk", "trunk-not-found"),
    )
    async def update(self, request: Req, name: NameParam, data: TrunkUpdate) -> TrunkOut:
        return await update_trunk(request, name, data)

    @delete(
        "/{name:str}",
        operation_id="adminDeleteTrunk",
        summary="Delete a trunk",
        responses=_not_found("trunk", "trunk-not-found"),
    )
    async def remove(self, request: Req, name: NameParam) -> None:
        await delete_trunk(request, name)


class UserAdminController(Controller):
    path = "/api/v1/admin/users"
    tags = ("admin",)
    opt = OPERATORS

    @get("/", operation_id="adminListUsers", summary="Every user of the portal")
    async def list_users(self) -> list[UserOut]:
        return await services.list_users()

    @post("/", operation_id="adminCreateUser", summary="A new user", responses=BAD_REQUEST)
    async def create(self, request: Req, data: UserCreate) -> UserOut:
        return await create_user(request, data)

    @get(
        "/{user_id:int}",
        operation_id="adminGetUser",
        summary="One user",
        responses=_not_found("user", "user-not-found"),
    )
    async def get_user(self, user_id: UserIdParam) -> UserOut:
        return await services.get_user(user_id)

    @patch(
        "/{user_id:int}",
        operation_id="adminUpdateUser",
        summary="Change a user's role",
        responses=_not_found("user", "user-not-found"),
    )
    async def update(self, request: Req, user_id: UserIdParam, data: UserUpdate) -> UserOut:
        return await update_user(request, user_id, data)

    @post(
        "/{user_id:int}/password",
        operation_id="adminResetPassword",
        summary="Set a new password; the user's sessions end",
        status_code=200,
        responses=_not_found("user", "user-not-found"),
    )
    async def reset(self, request: Req, user_id: UserIdParam, data: PasswordReset) -> UserOut:
        return await reset_password(request, user_id, data)

    @post(
        "/{user_id:int}/lock",
        operation_id="adminLockUser",
        summary="Lock a user out: no login, sessions end, API tokens revoked",
        status_code=200,
        responses=_not_found("user", "user-not-found"),
    )
    async def lock(self, request: Req, principal: CurrentUser, user_id: UserIdParam) -> UserOut:
        return await lock_user(request, principal.user_id, user_id, True)

    @post(
        "/{user_id:int}/unlock",
        operation_id="adminUnlockUser",
        summary="Let a locked user (or one locked by failed logins) log in again",
        status_code=200,
        responses=_not_found("user", "user-not-found"),
    )
    async def unlock(self, request: Req, principal: CurrentUser, user_id: UserIdParam) -> UserOut:
        return await lock_user(request, principal.user_id, user_id, False)


BackupNameParam = Annotated[str, Parameter(description="The archive's file name", max_length=240)]


class BackupAdminController(Controller):
    path = "/api/v1/admin/backups"
    tags = ("admin",)
    opt = OPERATORS

    @get("/", operation_id="adminListBackups", summary="The backups kept on the appliance")
    async def list_backups(self, settings: AppSettings) -> list[BackupOut]:
        return services.list_backups(settings)

    @post(
        "/",
        operation_id="adminCreateBackup",
        summary="Back up the database, prompts, voicemail and (optionally) recordings",
        responses=BAD_REQUEST,
    )
    async def create(self, request: Req, settings: AppSettings, data: BackupCreate) -> BackupOut:
        return await create_backup(request, settings, data.recordings)

    @get(
        "/{name:str}",
        operation_id="adminDownloadBackup",
        summary="Download a backup (`linebox restore` reads it)",
        media_type="application/gzip",
        responses=_not_found("backup", "backup-not-found"),
    )
    async def download(self, settings: AppSettings, name: BackupNameParam) -> File:
        return backup_file(settings, name)

    @delete(
        "/{name:str}",
        operation_id="adminDeleteBackup",
        summary="Delete a backup",
        responses=_not_found("backup", "backup-not-found"),
    )
    async def remove(self, request: Req, settings: AppSettings, name: BackupNameParam) -> None:
        await delete_backup(request, settings, name)


class HealthAdminController(Controller):
    path = "/api/v1/admin/health"
    tags = ("admin",)
    opt = OPERATORS

    @get(
        "/",
        operation_id="adminSystemHealth",
        summary="The components' health, `linebox doctor`'s checks and the trunk gateways' state",
    )
    async def health(self, settings: AppSettings) -> SystemHealth:
        return await services.system_health(settings)


# --- pages -----------------------------------------------------------------------


def _form_value(form: Any, name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def _lines(text: str) -> list[str]:
    return [x for x in text.replace(",", " ").replace("，", " ").split() if x]


def _trunk_form(form: Any) -> dict[str, Any]:
    """A trunk's keys from the trunk form; ValueError says what is wrong."""
    max_calls = _form_value(form, "max_calls") or "0"
    if not max_calls.isdigit() or len(max_calls) > 9:
        raise ValueError(f"max_calls: {max_calls!r} is not a number of calls")
    did_map = {}
    for pair in _lines(_form_value(form, "did_map")):
        did, sep, hotline = pair.partition("=")
        if not sep or not did or not hotline:
            raise ValueError(f"did_map: {pair!r} is not number=hotline")
        did_map[did] = hotline
    return {
        "host": _form_value(form, "host"),
        "gateways": _lines(_form_value(form, "gateways")),
        "inbound": _lines(_form_value(form, "inbound")),
        "transport": _form_value(form, "transport") or "udp",
        "dids": _lines(_form_value(form, "dids")),
        "did_map": did_map,
        "max_calls": int(max_calls),
        "strip_prefix": _form_value(form, "strip_prefix"),
        "add_prefix": _form_value(form, "add_prefix"),
        "codecs": _lines(_form_value(form, "codecs")) or ["PCMA", "PCMU"],
    }


SECTIONS = ("tenants", "numbers", "trunks", "users", "backups", "health")


class AdminPageController(Controller):
    path = "/admin"
    include_in_schema = False
    opt = OPERATORS

    async def _page(
        self,
        section: str,
        settings: Any,
        *,
        status: int = 200,
        message: str = "",
        error: str = "",
        **extra: Any,
    ) -> Template:
        context: dict[str, Any] = {"section": section, "message": message, "error": error}
        if section == "tenants":
            context["tenants"] = await services.list_tenants()
        elif section == "numbers":
            context["numbers"] = await services.list_numbers()
            context["tenants"] = await services.list_tenants()
        elif section == "trunks":
            context["trunks"] = await services.list_trunks()
        elif section == "users":
            context["users"] = await services.list_users()
            context["tenants"] = await services.list_tenants()
        elif section == "backups":
            context["backups"] = services.list_backups(settings)
        elif section == "health":
            context["health"] = await services.system_health(settings)
        context.update(extra)
        return Template(f"admin/{section}.html", context=context, status_code=status)

    async def _do(self, section: str, settings: Any, action: Any, done: str) -> Template:
        try:
            await action
        except (LineboxError, msgspec.ValidationError) as exc:
            detail = exc.detail if isinstance(exc, LineboxError) else str(exc)
            if isinstance(exc, LineboxError) and exc.details.get("errors"):
                detail = "\n".join(
                    f"{e['key']}: {e['message']}" if e.get("key") else e["message"]
                    for e in exc.details["errors"]
                )
            status = (
                404
                if isinstance(exc, LineboxError) and exc.error_id.endswith("-not-found")
                else 400
            )
            return await self._page(section, settings, status=status, error=detail)
        return await self._page(section, settings, message=done)

    @get("/", operation_id="adminPage")
    async def index(self, settings: AppSettings) -> Template:
        return await self._page("tenants", settings)

    @get([f"/{section}" for section in SECTIONS], operation_id="adminSectionPage")
    async def section(self, request: Req, settings: AppSettings) -> Template:
        return await self._page(request.url.path.rstrip("/").rsplit("/", 1)[-1], settings)

    @post("/tenants", operation_id="adminTenantsForm", status_code=200)
    async def tenants_form(
        self, request: Req, principal: CurrentUser, settings: AppSettings
    ) -> Template:
        form = await request.form()
        action, slug = _form_value(form, "action"), _form_value(form, "slug")
        if action == "create":
            data = TenantCreate(
                slug=slug,
                name=_form_value(form, "name"),
                timezone=_form_value(form, "timezone"),
                opening_balance=_form_value(form, "opening_balance") or None,
            )
            work: Any = create_tenant(request, principal.login, data)
            done = gettext("Tenant %(slug)s created.") % {"slug": slug}
        elif action in ("suspend", "resume"):
            work = suspend_tenant(request, slug, action == "suspend")
            done = (
                gettext("Tenant %(slug)s suspended.")
                if action == "suspend"
                else gettext("Tenant %(slug)s resumed.")
            ) % {"slug": slug}
        elif action == "topup":
            data_t = TopUp(amount=_form_value(form, "amount"), note=_form_value(form, "note"))
            work = top_up(request, principal.login, slug, data_t)
            done = gettext("Top-up booked for %(slug)s.") % {"slug": slug}
        else:
            return await self._page("tenants", settings, status=400, error="unknown action")
        return await self._do("tenants", settings, work, done)

    @post("/numbers", operation_id="adminNumbersForm", status_code=200)
    async def numbers_form(self, request: Req, settings: AppSettings) -> Template:
        form = await request.form()
        action, number = _form_value(form, "action"), _form_value(form, "number")
        if action == "assign":
            data = NumberAssign(
                number=number, tenant=_form_value(form, "tenant"), name=_form_value(form, "name")
            )
            work: Any = assign_number(request, data)
            done = gettext("Hotline %(number)s assigned.") % {"number": number}
        elif action == "delete":
            work = delete_number(request, number)
            done = gettext("Hotline %(number)s removed.") % {"number": number}
        else:
            return await self._page("numbers", settings, status=400, error="unknown action")
        return await self._do("numbers", settings, work, done)

    @post("/trunks", operation_id="adminTrunksForm", status_code=200)
    async def trunks_form(self, request: Req, settings: AppSettings) -> Template:
        form = await request.form()
        action, name = _form_value(form, "action"), _form_value(form, "name")
        if action in ("create", "update"):
            try:
                keys = _trunk_form(form)
            except ValueError as exc:
                return await self._page("trunks", settings, status=400, error=str(exc))
        if action == "create":
            work: Any = create_trunk(request, TrunkCreate(name=name, **keys))
            done = gettext("Trunk %(name)s created.") % {"name": name}
        elif action == "update":
            work = update_trunk(request, name, TrunkUpdate(**keys))
            done = gettext("Trunk %(name)s saved.") % {"name": name}
        elif action == "delete":
            work = delete_trunk(request, name)
            done = gettext("Trunk %(name)s deleted.") % {"name": name}
        else:
            return await self._page("trunks", settings, status=400, error="unknown action")
        return await self._do("trunks", settings, work, done)

    @post("/users", operation_id="adminUsersForm", status_code=200)
    async def users_form(
        self, request: Req, principal: CurrentUser, settings: AppSettings
    ) -> Template:
        form = await request.form()
        action = _form_value(form, "action")
        raw_id = _form_value(form, "id")
        user_id = int(raw_id) if raw_id.isdigit() and len(raw_id) < 18 else 0
        if action == "create":
            data = UserCreate(
                login=_form_value(form, "login"),
                password=str(form.get("password", "")),
                role=_form_value(form, "role") or "owner",
                tenant=_form_value(form, "tenant"),
            )
            work: Any = create_user(request, data)
            done = gettext("User %(login)s created.") % {"login": data.login}
        elif action == "password":
            work = reset_password(
                request, user_id, PasswordReset(password=str(form.get("password", "")))
            )
            done = gettext("Password set; the user's sessions ended.")
        elif action in ("lock", "unlock"):
            work = lock_user(request, principal.user_id, user_id, action == "lock")
            done = gettext("User locked.") if action == "lock" else gettext("User unlocked.")
        elif action == "role":
            work = update_user(request, user_id, UserUpdate(role=_form_value(form, "role")))
            done = gettext("Role changed.")
        else:
            return await self._page("users", settings, status=400, error="unknown action")
        return await self._do("users", settings, work, done)

    @post("/backups", operation_id="adminBackupsForm", status_code=200)
    async def backups_form(self, request: Req, settings: AppSettings) -> Template:
        form = await request.form()
        action = _form_value(form, "action")
        if action == "create":
            work: Any = create_backup(request, settings, form.get("recordings") == "on")
            done = gettext("Backup made.")
        elif action == "delete":
            work = delete_backup(request, settings, _form_value(form, "name"))
            done = gettext("Backup deleted.")
        else:
            return await self._page("backups", settings, status=400, error="unknown action")
        return await self._do("backups", settings, work, done)
