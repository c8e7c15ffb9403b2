"""IVR menus (IVR语音导航): list, create, edit the prompt, timeout, retries,
direct extension dialling, keys and the timeout destination; delete while
nothing leads to them."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.params import Parameter
from litestar.response import Redirect, Template

from appliance.audit import diff
from appliance.auth.core import Principal
from appliance.errors import LineboxError
from web.auth import CurrentUser
from web.domain.audit.services import log as audit_log
from web.domain.menus import services
from web.domain.menus.schemas import MenuCreate, MenuOut, MenuUpdate
from web.errors import BAD_REQUEST, error_response_spec
from web.i18n import gettext
from web.sitecheck import InvalidChange, Problem

NOT_FOUND = {404: error_response_spec("No such menu of yours (`menu-not-found`)")}
NameParam = Annotated[str, Parameter(description="The menu's name, e.g. main")]
TenantParam = Annotated[
    str | None,
    Parameter(
        query="tenant",
        description="The tenant's slug, for operators when several tenants have the name",
    ),
]
ADMINS = {"roles": ("operator", "owner")}
AnyRequest = Request[Any, Any, Any]


class MenuController(Controller):
    path = "/api/v1/menus"
    tags = ("menus",)
    opt = ADMINS

    @get("/", operation_id="listMenus", summary="The IVR menus the user may manage")
    async def list_menus(self, principal: CurrentUser) -> list[MenuOut]:
        return await services.list_menus(principal)

    @post(
        "/",
        operation_id="createMenu",
        summary="A new IVR menu; a hotline route reaches it as `menu:<name>`",
        description="Checked by the site file's rules: keys 0-9, * and #, at most 10, each "
        'to a destination of the tenant; `invalid-change` lists each problem (`keys."1"`).',
        responses={**BAD_REQUEST, 404: error_response_spec("No such tenant (`tenant-not-found`)")},
    )
    async def create_menu(
        self, request: AnyRequest, principal: CurrentUser, data: MenuCreate
    ) -> Response[MenuOut]:
        created = await services.create_menu(principal, data)
        await audited(request, "create", None, created)
        return Response(created, status_code=201)

    @get(
        "/{name:str}",
        operation_id="getMenu",
        summary="One IVR menu",
        responses={**BAD_REQUEST, **NOT_FOUND},
    )
    async def get_menu(
        self, principal: CurrentUser, name: NameParam, tenant: TenantParam = None
    ) -> MenuOut:
        return await services.get_menu(principal, name, tenant)

    @patch(
        "/{name:str}",
        operation_id="updateMenu",
        summary="Change an IVR menu; takes effect on the next call",
        responses={**BAD_REQUEST, **NOT_FOUND},
    )
    async def update_menu(
        self,
        request: AnyRequest,
        principal: CurrentUser,
        name: NameParam,
        data: MenuUpdate,
        tenant: TenantParam = None,
    ) -> MenuOut:
        before = await services.get_menu(principal, name, tenant)
        after = await services.update_menu(principal, name, data, tenant)
        await audited(request, "update", before, after)
        return after

    @delete(
        "/{name:str}",
        operation_id="deleteMenu",
        summary="Delete an IVR menu",
        description="Refused (`invalid-change`) while a hotline route, fallback or another "
        "menu's key still leads to it.",
        responses={**BAD_REQUEST, **NOT_FOUND},
    )
    async def delete_menu(
        self,
        request: AnyRequest,
        principal: CurrentUser,
        name: NameParam,
        tenant: TenantParam = None,
    ) -> None:
        before = await services.get_menu(principal, name, tenant)
        await services.delete_menu(principal, name, tenant)
        await audited(request, "delete", before, None)


# --- pages -----------------------------------------------------------------------

FIELD_OF_KEY = {k: {"*": "star", "#": "hash"}.get(k, k) for k in services.KEYS}
"""The form field of each key: `key_1` … `key_star`, `key_hash`."""


def _number(form: Any, key: str, default: int) -> int:
    value = str(form.get(key, "") or "").strip()
    if not value:
        return default
    if not value.isdigit() or len(value) > 4:
        raise InvalidChange(key, [Problem(key=key, message=f"{value!r} is not a whole number")])
    return int(value)


def form_to_update(form: Any) -> MenuUpdate:
    keys = {}
    for key, field in FIELD_OF_KEY.items():
        value = str(form.get(f"key_{field}", "") or "").strip()
        if value:
            keys[key] = value
    return MenuUpdate(
        prompt=str(form.get("prompt", "") or ""),
        timeout=_number(form, "timeout", 5),
        retries=_number(form, "retries", 2),
        dial_extensions=form.get("dial_extensions") == "on",
        keys=keys,
        on_timeout=str(form.get("on_timeout", "") or ""),
    )


async def audited(
    request: AnyRequest, action: str, before: MenuOut | None, after: MenuOut | None
) -> None:
    """The audit log's entry for a change that was made."""
    obj = after or before
    assert obj is not None
    await audit_log(
        request, action, f"menu:{obj.name}", changes=diff(before, after), tenant=obj.tenant
    )


def _errors(exc: LineboxError) -> list[dict[str, str]]:
    return exc.details.get("errors") or [{"key": "", "message": exc.detail}]


def _blank() -> MenuOut:
    return MenuOut(
        tenant="",
        name="",
        prompt="",
        timeout=5,
        retries=2,
        dial_extensions=False,
        keys={},
        on_timeout="",
    )


class MenuPageController(Controller):
    path = "/menus"
    include_in_schema = False
    opt = ADMINS

    async def _list(self, principal: Principal, status: int = 200, **context: Any) -> Template:
        base: dict[str, Any] = {
            "menus": await services.list_menus(principal),
            "m": _blank(),
            "new_name": "",
            "new_tenant": "",
            "fields": FIELD_OF_KEY,
            "prompts": await services.prompt_names(principal, principal.tenant_slug)
            if principal.tenant_slug
            else [],
            "errors": [],
        }
        base.update(context)
        return Template("menus/list.html", context=base, status_code=status)

    async def _detail(
        self,
        principal: Principal,
        name: str,
        tenant: str | None,
        status: int = 200,
        shown: MenuOut | None = None,
        **context: Any,
    ) -> Template:
        menu = await services.get_menu(principal, name, tenant)
        base: dict[str, Any] = {
            "m": shown or menu,
            "name": menu.name,
            "tenant": menu.tenant,
            "fields": FIELD_OF_KEY,
            "prompts": await services.prompt_names(principal, menu.tenant),
            "errors": [],
            "message": "",
        }
        base.update(context)
        return Template("menus/detail.html", context=base, status_code=status)

    @get("/", operation_id="menusPage")
    async def menus_page(self, principal: CurrentUser) -> Template:
        return await self._list(principal)

    @post("/", operation_id="menuCreate", status_code=303)
    async def menu_create(
        self, request: Request[Any, Any, Any], principal: CurrentUser
    ) -> Response[Any]:
        form = await request.form()
        name = str(form.get("name", "") or "").strip()
        tenant = str(form.get("tenant", "") or "").strip()
        try:
            update = form_to_update(form)
            menu = await services.create_menu(
                principal, MenuCreate(name=name, tenant=tenant or None, **update.given())
            )
        except LineboxError as exc:
            return await self._list(
                principal, 400, new_name=name, new_tenant=tenant, errors=_errors(exc)
            )
        await audited(request, "create", None, menu)
        return Redirect(f"/menus/{quote(menu.name)}?tenant={menu.tenant}", status_code=303)

    @get("/{name:str}", operation_id="menuPage")
    async def menu_page(
        self, principal: CurrentUser, name: str, tenant: str | None = None
    ) -> Template:
        return await self._detail(principal, name, tenant)

    @post("/{name:str}", operation_id="menuSave", status_code=200)
    async def menu_save(
        self,
        request: Request[Any, Any, Any],
        principal: CurrentUser,
        name: str,
        tenant: str | None = None,
    ) -> Template:
        menu = await services.get_menu(principal, name, tenant)  # 404 before reading anything
        form = await request.form()
        try:
            update = form_to_update(form)
            after = await services.update_menu(principal, name, update, tenant)
        except LineboxError as exc:
            # Show what was typed, so a slip in one key does not lose the others.
            keys = {k: str(form.get(f"key_{f}", "") or "").strip() for k, f in FIELD_OF_KEY.items()}
            shown = MenuOut(
                tenant=menu.tenant,
                name=menu.name,
                prompt=str(form.get("prompt", "") or ""),
                timeout=menu.timeout,
                retries=menu.retries,
                dial_extensions=form.get("dial_extensions") == "on",
                keys={k: v for k, v in keys.items() if v},
                on_timeout=str(form.get("on_timeout", "") or ""),
            )
            return await self._detail(
                principal, name, tenant, 400, shown=shown, errors=_errors(exc)
            )
        await audited(request, "update", menu, after)
        return await self._detail(
            principal,
            name,
            tenant,
            message=gettext("Saved. The next call follows the new settings."),
        )

    @post("/{name:str}/delete", operation_id="menuDelete", status_code=303)
    async def menu_delete(
        self, request: AnyRequest, principal: CurrentUser, name: str, tenant: str | None = None
    ) -> Response[Any]:
        before = await services.get_menu(principal, name, tenant)
        try:
            await services.delete_menu(principal, name, tenant)
        except LineboxError as exc:
            if exc.error_id.endswith("not-found"):
                raise
            return await self._detail(principal, name, tenant, 400, errors=_errors(exc))
        await audited(request, "delete", before, None)
        return Redirect("/menus", status_code=303)
