"""Schedules (工作时间): list, create, edit the weekly hours and the holiday
calendar, delete while no hotline route follows them."""

from __future__ import annotations

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
from web.auth import CurrentUser
from web.domain.audit.services import log as audit_log
from web.domain.schedules import services
from web.domain.schedules.schemas import ScheduleCreate, ScheduleOut, ScheduleUpdate
from web.errors import BAD_REQUEST, error_response_spec
from web.i18n import gettext

NOT_FOUND = {404: error_response_spec("No such schedule of yours (`schedule-not-found`)")}
NameParam = Annotated[str, Parameter(description="The schedule's name, e.g. office")]
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


class ScheduleController(Controller):
    path = "/api/v1/schedules"
    tags = ("schedules",)
    opt = ADMINS

    @get("/", operation_id="listSchedules", summary="The schedules the user may manage")
    async def list_schedules(self, principal: CurrentUser) -> list[ScheduleOut]:
        return await services.list_schedules(principal)

    @post(
        "/",
        operation_id="createSchedule",
        summary="New opening hours",
        description="Each weekly entry is checked like the site file's (`weekly[1]`: "
        "`'mon-fri 9-18' is not …`); `invalid-change` lists each problem.",
        responses={**BAD_REQUEST, 404: error_response_spec("No such tenant (`tenant-not-found`)")},
    )
    async def create_schedule(
        self, request: AnyRequest, principal: CurrentUser, data: ScheduleCreate
    ) -> Response[ScheduleOut]:
        created = await services.create_schedule(principal, data)
        await audited(request, "create", None, created)
        return Response(created, status_code=201)

    @get(
        "/{name:str}",
        operation_id="getSchedule",
        summary="One schedule",
        responses={**BAD_REQUEST, **NOT_FOUND},
    )
    async def get_schedule(
        self, principal: CurrentUser, name: NameParam, tenant: TenantParam = None
    ) -> ScheduleOut:
        return await services.get_schedule(principal, name, tenant)

    @patch(
        "/{name:str}",
        operation_id="updateSchedule",
        summary="Change the hours or the holiday calendar; takes effect on the next call",
        responses={**BAD_REQUEST, **NOT_FOUND},
    )
    async def update_schedule(
        self,
        request: AnyRequest,
        principal: CurrentUser,
        name: NameParam,
        data: ScheduleUpdate,
        tenant: TenantParam = None,
    ) -> ScheduleOut:
        before = await services.get_schedule(principal, name, tenant)
        after = await services.update_schedule(principal, name, data, tenant)
        await audited(request, "update", before, after)
        return after

    @delete(
        "/{name:str}",
        operation_id="deleteSchedule",
        summary="Delete a schedule",
        description="Refused (`invalid-change`) while a hotline route follows it.",
        responses={**BAD_REQUEST, **NOT_FOUND},
    )
    async def delete_schedule(
        self,
        request: AnyRequest,
        principal: CurrentUser,
        name: NameParam,
        tenant: TenantParam = None,
    ) -> None:
        before = await services.get_schedule(principal, name, tenant)
        await services.delete_schedule(principal, name, tenant)
        await audited(request, "delete", before, None)


# --- pages -----------------------------------------------------------------------


class ScheduleForm(msgspec.Struct, kw_only=True):
    name: str = ""
    tenant: str = ""
    weekly: str = ""
    holidays: str = ""


async def audited(
    request: AnyRequest, action: str, before: ScheduleOut | None, after: ScheduleOut | None
) -> None:
    """The audit log's entry for a change that was made."""
    obj = after or before
    assert obj is not None
    await audit_log(
        request, action, f"schedule:{obj.name}", changes=diff(before, after), tenant=obj.tenant
    )


def _errors(exc: LineboxError) -> list[dict[str, str]]:
    return exc.details.get("errors") or [{"key": "", "message": exc.detail}]


def calendars() -> dict[str, str]:
    return {
        "": gettext("none: the weekly hours every week"),
        "cn": gettext("China: closed on public holidays, open on make-up working days"),
    }


class SchedulePageController(Controller):
    path = "/schedules"
    include_in_schema = False
    opt = ADMINS

    async def _list(self, principal: Principal, status: int = 200, **context: Any) -> Template:
        base: dict[str, Any] = {
            "schedules": await services.list_schedules(principal),
            "form": ScheduleForm(),
            "calendars": calendars(),
            "errors": [],
        }
        base.update(context)
        return Template("schedules/list.html", context=base, status_code=status)

    async def _detail(
        self, principal: Principal, name: str, tenant: str | None, status: int = 200, **context: Any
    ) -> Template:
        base: dict[str, Any] = {
            "s": await services.get_schedule(principal, name, tenant),
            "calendars": calendars(),
            "errors": [],
            "message": "",
        }
        base.update(context)
        return Template("schedules/detail.html", context=base, status_code=status)

    @get("/", operation_id="schedulesPage")
    async def schedules_page(self, principal: CurrentUser) -> Template:
        return await self._list(principal)

    @post("/", operation_id="scheduleCreate", status_code=303)
    async def schedule_create(
        self, request: AnyRequest, principal: CurrentUser, data: Annotated[ScheduleForm, FORM]
    ) -> Response[Any]:
        try:
            schedule = await services.create_schedule(
                principal,
                ScheduleCreate(
                    name=data.name.strip(),
                    weekly=data.weekly.splitlines(),
                    holidays=data.holidays,
                    tenant=data.tenant.strip() or None,
                ),
            )
        except LineboxError as exc:
            return await self._list(principal, 400, form=data, errors=_errors(exc))
        await audited(request, "create", None, schedule)
        return Redirect(
            f"/schedules/{quote(schedule.name)}?tenant={schedule.tenant}", status_code=303
        )

    @get("/{name:str}", operation_id="schedulePage")
    async def schedule_page(
        self, principal: CurrentUser, name: str, tenant: str | None = None
    ) -> Template:
        return await self._detail(principal, name, tenant)

    @post("/{name:str}", operation_id="scheduleSave", status_code=200)
    async def schedule_save(
        self,
        request: AnyRequest,
        principal: CurrentUser,
        name: str,
        data: Annotated[ScheduleForm, FORM],
        tenant: str | None = None,
    ) -> Template:
        before = await services.get_schedule(principal, name, tenant)  # 404 first
        try:
            after = await services.update_schedule(
                principal,
                name,
                ScheduleUpdate(weekly=data.weekly.splitlines(), holidays=data.holidays),
                tenant,
            )
        except LineboxError as exc:
            return await self._detail(principal, name, tenant, 400, errors=_errors(exc))
        await audited(request, "update", before, after)
        return await self._detail(
            principal,
            name,
            tenant,
            message=gettext("Saved. The next call follows the new settings."),
        )

    @post("/{name:str}/delete", operation_id="scheduleDelete", status_code=303)
    async def schedule_delete(
        self, request: AnyRequest, principal: CurrentUser, name: str, tenant: str | None = None
    ) -> Response[Any]:
        before = await services.get_schedule(principal, name, tenant)
        try:
            await services.delete_schedule(principal, name, tenant)
        except LineboxError as exc:
            if exc.error_id.endswith("not-found"):
                raise
            return await self._detail(principal, name, tenant, 400, errors=_errors(exc))
        await audited(request, "delete", before, None)
        return Redirect("/schedules", status_code=303)
