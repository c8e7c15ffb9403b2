"""Notifications (通知): where notices go, the gateways' status and the notices
sent; the REST API and the page, read-only."""

from __future__ import annotations

from typing import Annotated, Any
from zoneinfo import ZoneInfo

from litestar import Controller, get
from litestar.params import Parameter
from litestar.response import Template

from appliance.errors import LineboxError
from appliance.tables import Tenant
from web.auth import CurrentUser
from web.dependencies import AppSettings
from web.domain.notifications import services
from web.domain.notifications.schemas import NoticeList, Notifications
from web.errors import BAD_REQUEST, error_response_spec
from web.i18n import gettext

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

    @get("/", operation_id="notificationsPage")
    async def notifications_page(
        self,
        principal: CurrentUser,
        settings: AppSettings,
        tenant: Annotated[str | None, Parameter(query="tenant")] = None,
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
            return Template("notifications/index.html", context={**context, "choose": True})
        zone = ZoneInfo(settings.timezone)

        def local(moment: Any) -> str:
            return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") if moment else "—"

        context.update(n=n, labels=labels(), local=local)
        return Template("notifications/index.html", context=context)
