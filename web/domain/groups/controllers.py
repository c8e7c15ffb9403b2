"""Groups (群组/呼叫组): list, create, edit strategy, timeout, members, agent-ID
announcement, survey and queue; delete while nothing points at them."""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import quote

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import Redirect, Template

from appliance.audit import diff
from appliance.auth.core import Principal
from appliance.errors import LineboxError
from appliance.sitefile.schema import STRATEGIES
from web.auth import CurrentUser
from web.domain.audit.services import log as audit_log
from web.domain.groups import services
from web.domain.groups.schemas import GroupCreate, GroupOut, GroupUpdate, Queue
from web.errors import BAD_REQUEST, error_response_spec
from web.i18n import gettext
from web.sitecheck import InvalidChange, Problem

NOT_FOUND = {404: error_response_spec("No such group of yours (`group-not-found`)")}
NameParam = Annotated[str, Parameter(description="The group's name, e.g. sales")]
TenantParam = Annotated[
    str | None,
    Parameter(
        query="tenant",
        description="The tenant's slug, for operators when several tenants have the name",
    ),
]
FORM = Body(media_type=RequestEncodingType.URL_ENCODED)
ADMINS = {"roles": ("operator", "owner")}
AnyRequest = Request[Any, Any, Any]


class GroupController(Controller):
    path = "/api/v1/groups"
    tags = ("groups",)
    opt = ADMINS

    @get("/", operation_id="listGroups", summary="The groups the user may manage")
    async def list_groups(self, principal: CurrentUser) -> list[GroupOut]:
        return await services.list_groups(principal)

    @post(
        "/",
        operation_id="createGroup",
        summary="A new group; takes effect on the next call",
        description="Checked by the site file's rules, toll-fraud limits on `tel:` members "
        "included; `invalid-change` lists each problem by key (`members[1]`).",
        responses={**BAD_REQUEST, 404: error_response_spec("No such tenant (`tenant-not-found`)")},
    )
    async def create_group(
        self, request: AnyRequest, principal: CurrentUser, data: GroupCreate
    ) -> Response[GroupOut]:
        group = await services.create_group(principal, data)
        await audited(request, "create", None, group)
        return Response(group, status_code=201)

    @get(
        "/{name:str}",
        operation_id="getGroup",
        summary="One group",
        responses={**BAD_REQUEST, **NOT_FOUND},
    )
    async def get_group(
        self, principal: CurrentUser, name: NameParam, tenant: TenantParam = None
    ) -> GroupOut:
        return await services.get_group(principal, name, tenant)

    @patch(
        "/{name:str}",
        operation_id="updateGroup",
        summary="Change a group; takes effect on the next call",
        responses={**BAD_REQUEST, **NOT_FOUND},
    )
    async def update_group(
        self,
        request: AnyRequest,
        principal: CurrentUser,
        name: NameParam,
        data: GroupUpdate,
        tenant: TenantParam = None,
    ) -> GroupOut:
        before = await services.get_group(principal, name, tenant)
        after = await services.update_group(principal, name, data, tenant)
        await audited(request, "update", before, after)
        return after

    @delete(
        "/{name:str}",
        operation_id="deleteGroup",
        summary="Delete a group",
        description="Refused (`invalid-change`) while a hotline route, fallback or menu "
        "key still sends calls to it; the errors name each one.",
        responses={**BAD_REQUEST, **NOT_FOUND},
    )
    async def delete_group(
        self,
        request: AnyRequest,
        principal: CurrentUser,
        name: NameParam,
        tenant: TenantParam = None,
    ) -> None:
        before = await services.get_group(principal, name, tenant)
        await services.delete_group(principal, name, tenant)
        await audited(request, "delete", before, None)


# --- pages -----------------------------------------------------------------------

_ITEM = re.compile(r"[\s,，、;；]+")


class GroupForm(msgspec.Struct, kw_only=True):
    name: str = ""
    tenant: str = ""
    strategy: str = "sequential"
    ring_timeout: str = "20"
    members: str = ""
    announce_agent_id: str = ""
    survey: str = ""
    queue_max_wait: str = ""
    queue_music: str = ""
    sticky_days: str = "30"


def _int(value: str, key: str) -> int:
    value = value.strip()
    if not value.isdigit() or len(value) > 6:
        raise InvalidChange(key, [Problem(key=key, message=f"{value!r} is not a whole number")])
    return int(value)


def form_to_update(form: GroupForm) -> GroupUpdate:
    queue = None
    if form.queue_max_wait.strip() or form.queue_music.strip():
        queue = Queue(
            max_wait=_int(form.queue_max_wait, "queue.max_wait")
            if form.queue_max_wait.strip()
            else None,
            music=form.queue_music.strip() or None,
        )
    return GroupUpdate(
        members=[m for m in _ITEM.split(form.members) if m],
        strategy=form.strategy.strip(),
        ring_timeout=_int(form.ring_timeout, "ring_timeout"),
        announce_agent_id=form.announce_agent_id == "on",
        survey=form.survey == "on",
        queue=queue,
        sticky_days=_int(form.sticky_days, "sticky_days"),
    )


def strategies() -> dict[str, str]:
    labels = {
        "sequential": gettext("one after another"),
        "random": gettext("at random"),
        "round_robin": gettext("taking turns"),
        "ring_all": gettext("all at once"),
        "sticky": gettext("the caller's last agent first"),
    }
    return {s: labels.get(s, s) for s in STRATEGIES}


async def audited(
    request: AnyRequest, action: str, before: GroupOut | None, after: GroupOut | None
) -> None:
    """The audit log's entry for a change that was made."""
    obj = after or before
    assert obj is not None
    await audit_log(
        request, action, f"group:{obj.name}", changes=diff(before, after), tenant=obj.tenant
    )


def _errors(exc: LineboxError) -> list[dict[str, str]]:
    return exc.details.get("errors") or [{"key": "", "message": exc.detail}]


class GroupPageController(Controller):
    path = "/groups"
    include_in_schema = False
    opt = ADMINS

    async def _list(self, principal: Principal, status: int = 200, **context: Any) -> Template:
        base: dict[str, Any] = {
            "groups": await services.list_groups(principal),
            "form": GroupForm(),
            "strategies": strategies(),
            "errors": [],
        }
        base.update(context)
        return Template("groups/list.html", context=base, status_code=status)

    async def _detail(
        self,
        principal: Principal,
        name: str,
        tenant: str | None,
        status: int = 200,
        **context: Any,
    ) -> Template:
        base: dict[str, Any] = {
            "g": await services.get_group(principal, name, tenant),
            "strategies": strategies(),
            "errors": [],
            "message": "",
        }
        base.update(context)
        return Template("groups/detail.html", context=base, status_code=status)

    @get("/", operation_id="groupsPage")
    async def groups_page(self, principal: CurrentUser) -> Template:
        return await self._list(principal)

    @post("/", operation_id="groupCreate", status_code=303)
    async def group_create(
        self, request: AnyRequest, principal: CurrentUser, data: Annotated[GroupForm, FORM]
    ) -> Response[Any]:
        try:
            update = form_to_update(data)
            group = await services.create_group(
                principal,
                GroupCreate(
                    name=data.name.strip(),
                    tenant=data.tenant.strip() or None,
                    **{k: v for k, v in update.given().items()},
                ),
            )
        except LineboxError as exc:
            return await self._list(principal, 400, form=data, errors=_errors(exc))
        await audited(request, "create", None, group)
        return Redirect(f"/groups/{quote(group.name)}?tenant={group.tenant}", status_code=303)

    @get("/{name:str}", operation_id="groupPage")
    async def group_page(
        self, principal: CurrentUser, name: str, tenant: str | None = None
    ) -> Template:
        return await self._detail(principal, name, tenant)

    @post("/{name:str}", operation_id="groupSave", status_code=200)
    async def group_save(
        self,
        request: AnyRequest,
        principal: CurrentUser,
        name: str,
        data: Annotated[GroupForm, FORM],
        tenant: str | None = None,
    ) -> Template:
        before = await services.get_group(principal, name, tenant)  # 404 before anything else
        try:
            after = await services.update_group(principal, name, form_to_update(data), tenant)
        except LineboxError as exc:
            return await self._detail(principal, name, tenant, 400, errors=_errors(exc))
        await audited(request, "update", before, after)
        return await self._detail(
            principal,
            name,
            tenant,
            message=gettext("Saved. The next call follows the new settings."),
        )

    @post("/{name:str}/delete", operation_id="groupDelete", status_code=303)
    async def group_delete(
        self, request: AnyRequest, principal: CurrentUser, name: str, tenant: str | None = None
    ) -> Response[Any]:
        before = await services.get_group(principal, name, tenant)
        try:
            await services.delete_group(principal, name, tenant)
        except LineboxError as exc:
            if exc.error_id.endswith("not-found"):
                raise
            return await self._detail(principal, name, tenant, 400, errors=_errors(exc))
        await audited(request, "delete", before, None)
        return Redirect("/groups", status_code=303)
