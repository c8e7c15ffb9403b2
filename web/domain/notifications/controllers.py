"""Notifications (通知): where notices go, the gateways' status and the notices
sent; the REST API and the page, read-only."""

from __future__ import annotations

from typing import Annotated, Any
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, Request, get, patch, post
from litestar.params import Parameter
from litestar.response import Template

from appliance.audit import diff
from appliance.errors import LineboxError
from appliance.tables import Tenant
from web.auth import CurrentUser
from web.dependencies import AppSettings
from web.domain.audit.services import log as audit_log
from web.domain.notifications import services
from web.domain.notifications.schemas import NoticeList, Notifications, NotifyUpdate
from web.errors import BAD_REQUEST, error_response_spec
from web.i18n import gettext
from web.sitecheck import InvalidChange

OWNERS = {"roles": ("operator", "owner")}
ERRORS = {
    **BAD_REQUEST,
    404: error_response_spec("No such tenant of yours (`tenant-not-found`)"),
}
TenantParam = Annotated[
    str | None,
    Parameter(description="The tenant's slug; operators of several tenants must give it"),
]


class NotificationController(Controller):
    path = "/api/v1/notifications"
    tags = ("notifications",)
    opt = OWNERS

    @get(
        "/",
        operation_id="getNotifications",
        summary="Where notices go, the gateways' status and the latest notices",
        responses=ERRORS,
    )
    async def get_notifications(
        self, principal: CurrentUser, tenant: TenantParam = None
    ) -> Notifications:
        return await services.notifications(principal, tenant)

    @patch(
        "/",
        operation_id="updateNotifications",
        summary="Change where the tenant's notices go",
        description="Checked like the site file's `[tenants.notify]`: `invalid-change` "
        "names each problem (`sms`, `email`, `missed_call_sms`); nothing changes then.",
        responses=ERRORS,
    )
    async def update_notifications(
        self,
        request: Request[Any, Any, Any],
        principal: CurrentUser,
        data: NotifyUpdate,
        tenant: TenantParam = None,
    ) -> Notifications:
        before, after = await services.update_notify(principal, tenant, data)
        await audited(request, before, after)
        return after

    @get(
        "/notices",
        operation_id="listNotices",
        summary="The notices sent to the tenant, newest first",
        responses=ERRORS,
    )
    async def list_notices(
        self,
        principal: CurrentUser,
        tenant: TenantParam = None,
        show: Annotated[
            str | None,
            Parameter(
                query="state",
                description="Only notices in this state: " + ", ".join(services.NOTICE_STATES),
            ),
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=500, description="Notices per page")] = 50,
        offset: Annotated[int, Parameter(ge=0, le=10**9, description="Notices to skip")] = 0,
    ) -> NoticeList:
        return await services.notices(principal, tenant, services.parse_state(show), limit, offset)


async def audited(
    request: Request[Any, Any, Any], before: dict[str, Any], after: Notifications
) -> None:
    await audit_log(
        request,
        "update",
        "notify",
        changes=diff(before, services.settings_of(after)),
        tenant=after.tenant,
    )


def labels() -> dict[str, str]:
    return {
        "missed_call": gettext("Missed call SMS"),
        "voicemail": gettext("New voicemail"),
        "low_balance": gettext("Low balance"),
        "capped": gettext("Monthly cap reached"),
        "suspended": gettext("Hotlines suspended"),
        "reclaim": gettext("Numbers due for reclaim"),
        "alert": gettext("Alert"),
        "sms": gettext("SMS"),
        "email": gettext("E-mail"),
        "ok": gettext("working"),
        "failing": gettext("failing"),
        "unused": gettext("not used yet"),
        "disabled": gettext("disabled"),
        "pending": gettext("waiting"),
        "sending": gettext("sending"),
        "retrying": gettext("retrying"),
        "sent": gettext("sent"),
        "failed": gettext("failed"),
    }


class NotificationPageController(Controller):
    path = "/notifications"
    include_in_schema = False
    opt = OWNERS

    async def _render(
        self, principal: Any, settings: Any, tenant: str | None, status: int = 200, **extra: Any
    ) -> Template:
        tenants: list[str] = []
        if principal.is_operator:
            tenants = [r["slug"] for r in await Tenant.select(Tenant.slug).order_by(Tenant.slug)]
        context: dict[str, Any] = {"tenants": tenants, "tenant": tenant or "", "n": None}
        try:
            n = await services.notifications(principal, tenant)
        except LineboxError as exc:
            if exc.error_id != "invalid-request" or not principal.is_operator:
                raise
            # An operator of several tenants chooses one first.
            return Template("notifications/index.html", context={**context, "choose": True})
        zone = ZoneInfo(settings.timezone)

        def local(moment: Any) -> str:
            return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") if moment else "—"

        context.update(n=n, labels=labels(), local=local, errors=[], message="", form=None)
        context.update(extra)
        return Template("notifications/index.html", context=context, status_code=status)

    @get("/", operation_id="notificationsPage")
    async def notifications_page(
        self,
        principal: CurrentUser,
        settings: AppSettings,
        tenant: Annotated[str | None, Parameter(query="tenant")] = None,
    ) -> Template:
        return await self._render(principal, settings, tenant)

    @post("/", operation_id="notificationsSave", status_code=200)
    async def notifications_save(
        self,
        request: Request[Any, Any, Any],
        principal: CurrentUser,
        settings: AppSettings,
        tenant: Annotated[str | None, Parameter(query="tenant")] = None,
    ) -> Template:
        form = await request.form()

        def text(name: str) -> str:
            value = form.get(name, "")
            return value.strip() if isinstance(value, str) else ""

        update = NotifyUpdate(
            sms=text("sms"),
            email=text("email"),
            missed_call_sms=form.get("missed_call_sms") == "on",
        )
        try:
            before, after = await services.update_notify(principal, tenant, update)
        except InvalidChange as exc:
            return await self._render(
                principal,
                settings,
                tenant,
                400,
                errors=exc.details.get("errors") or [],
                form=msgspec.to_builtins(update),
            )
        await audited(request, before, after)
        return await self._render(
            principal, settings, tenant, message=gettext("Saved. The next notice goes there.")
        )
