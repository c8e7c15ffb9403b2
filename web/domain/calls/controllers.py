from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from litestar import Controller, get
from litestar.params import Parameter
from litestar.response import Redirect, Template

from web.auth import CurrentUser
from web.dependencies import AppSettings
from web.domain.calls import services
from web.domain.calls.schemas import (
    CALL_STATUSES,
    CallFilters,
    CallRecordList,
    CallRecordOut,
    status_label,
)
from web.errors import BAD_REQUEST, error_response_spec

PAGE_SIZE = 100


class CallController(Controller):
    path = "/api/v1/calls"
    tags = ("calls",)

    @get(
        "/",
        operation_id="listCalls",
        summary="List call records, newest first",
        description="Every filter is optional and they combine with AND.",
        responses={400: error_response_spec("A filter is invalid (`invalid-request`)")},
    )
    async def list_calls(
        self,
        principal: CurrentUser,
        settings: AppSettings,
        status: Annotated[
            str | None,
            Parameter(description="One of: " + ", ".join(CALL_STATUSES)),
        ] = None,
        hotline: Annotated[
            str | None, Parameter(description="The 400 number called, exactly")
        ] = None,
        caller: Annotated[
            str | None,
            Parameter(
                description="The caller's number exactly, or its start followed by `*` (`138*`)"
            ),
        ] = None,
        since: Annotated[
            str | None,
            Parameter(
                description="Calls started at or after this ISO 8601 date-time; without "
                "an offset it is in the appliance's time zone"
            ),
        ] = None,
        until: Annotated[
            str | None,
            Parameter(description="Calls started before this ISO 8601 date-time"),
        ] = None,
        limit: Annotated[
            int, Parameter(ge=1, le=500, description="Records per page, 1 to 500")
        ] = 50,
        offset: Annotated[int, Parameter(ge=0, description="Records to skip")] = 0,
    ) -> CallRecordList:
        exact, prefix = services.parse_caller(caller)
        filters = CallFilters(
            status=services.parse_status(status),
            hotline=hotline or None,
            caller=exact,
            caller_prefix=prefix,
            since=services.parse_datetime("since", since, settings.timezone),
            until=services.parse_datetime("until", until, settings.timezone),
        )
        return await services.list_calls(principal, filters, limit=limit, offset=offset)

    @get(
        "/{call_id:str}",
        operation_id="getCall",
        summary="One call record, by its SIP Call-ID",
        responses={**BAD_REQUEST, 404: error_response_spec("No such call (`call-not-found`)")},
    )
    async def get_call(
        self,
        principal: CurrentUser,
        call_id: Annotated[str, Parameter(description="The SIP Call-ID")],
    ) -> CallRecordOut:
        return await services.get_call(principal, call_id)


def _duration(seconds: int) -> str:
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def _row(call: CallRecordOut, zone: ZoneInfo) -> dict[str, Any]:
    answered = call.answered_at is not None
    return {
        "started": call.started_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
        "started_iso": call.started_at.isoformat(),
        "caller": call.caller,
        "region": call.caller_region or call.caller_area_code,
        "hotline": call.hotline or call.called,
        "answered_by": call.answered_by
        + (f" ({call.agent_id})" if call.answered_by and call.agent_id else ""),
        "status": call.status,
        "status_label": status_label(call.status),
        "talk": _duration(call.talk_seconds) if answered or call.talk_seconds else "",
    }


class CallPageController(Controller):
    path = "/calls"
    include_in_schema = False

    @get("/", operation_id="callsPage")
    async def calls_page(self, principal: CurrentUser, settings: AppSettings) -> Template:
        zone = ZoneInfo(settings.timezone)
        page = await services.list_calls(principal, CallFilters(), limit=PAGE_SIZE, offset=0)
        return Template(
            template_name="calls/list.html",
            context={
                "calls": [_row(call, zone) for call in page.items],
                "total": page.total,
                "shown": len(page.items),
                "timezone": settings.timezone,
                "now": datetime.now(zone).strftime("%Y-%m-%d %H:%M:%S"),
            },
        )


@get("/", operation_id="home", include_in_schema=False)
async def home() -> Redirect:
    # The call list is the only page so far; a dashboard will take its place.
    return Redirect("/dashboard")
