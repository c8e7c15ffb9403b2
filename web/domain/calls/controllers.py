from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from litestar import Controller, Request, get
from litestar.di import Provide
from litestar.params import Parameter
from litestar.response import File, Redirect, Stream, Template

from web.auth import CurrentUser
from web.dependencies import AppSettings
from web.domain.calls import export, services
from web.domain.calls.schemas import (
    CALL_STATUSES,
    CallFilters,
    CallRecordList,
    CallRecordOut,
    status_label,
)
from web.errors import BAD_REQUEST, InvalidRequest, error_response_spec

PAGE_SIZE = 100
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def call_filters(
    settings: AppSettings,
    status: Annotated[
        str | None,
        Parameter(description="One of: " + ", ".join(CALL_STATUSES)),
    ] = None,
    hotline: Annotated[str | None, Parameter(description="The 400 number called, exactly")] = None,
    caller: Annotated[
        str | None,
        Parameter(description="The caller's number exactly, or its start followed by `*` (`138*`)"),
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
    agent: Annotated[
        str | None, Parameter(description="The extension that answered, exactly")
    ] = None,
    region: Annotated[
        str | None,
        Parameter(description="The caller's area code (0571) or region start (浙江, 浙江 杭州)"),
    ] = None,
) -> CallFilters:
    """The filters every call-record route shares (list, export, page)."""
    exact, prefix = services.parse_caller(caller)
    return CallFilters(
        status=services.parse_status(status),
        hotline=hotline or None,
        caller=exact,
        caller_prefix=prefix,
        since=services.parse_datetime("since", since, settings.timezone),
        until=services.parse_datetime("until", until, settings.timezone),
        agent=agent or None,
        region=services.parse_region(region),
    )


FILTERS = {"filters": Provide(call_filters)}
FILTER_NAMES = ("status", "hotline", "caller", "since", "until", "agent", "region")


class CallController(Controller):
    path = "/api/v1/calls"
    tags = ("calls",)
    dependencies = FILTERS

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
        filters: CallFilters,
        limit: Annotated[
            int, Parameter(ge=1, le=500, description="Records per page, 1 to 500")
        ] = 50,
        offset: Annotated[int, Parameter(ge=0, le=10**9, description="Records to skip")] = 0,
    ) -> CallRecordList:
        return await services.list_calls(principal, filters, limit=limit, offset=offset)

    @get(
        "/export.xlsx",
        operation_id="exportCalls",
        summary="The call records matching the filters, as an Excel workbook",
        description="Streams every matching record (up to Excel's 1,048,575 rows), "
        "newest first, with the same filters as listCalls.",
        responses={400: error_response_spec("A filter is invalid (`invalid-request`)")},
        media_type=XLSX,
    )
    async def export_calls(
        self, principal: CurrentUser, settings: AppSettings, filters: CallFilters
    ) -> Stream:
        path = await export.write_xlsx(principal, filters, settings.timezone)
        stamp = datetime.now(ZoneInfo(settings.timezone)).strftime("%Y%m%d-%H%M")
        return Stream(
            export.stream_file(path),
            media_type=XLSX,
            headers={
                "Content-Disposition": f'attachment; filename="calls-{stamp}.xlsx"',
                "Cache-Control": "no-store",
            },
        )

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

    @get(
        "/{call_id:str}/recording",
        operation_id="getCallRecording",
        summary="The call's recording (audio), to listen to or download",
        responses={
            **BAD_REQUEST,
            404: error_response_spec("No such call or no recording (`recording-not-found`)"),
        },
        media_type="audio/wav",
    )
    async def get_recording(
        self,
        principal: CurrentUser,
        settings: AppSettings,
        call_id: Annotated[str, Parameter(description="The SIP Call-ID")],
    ) -> File:
        path = await services.recording_path(principal, settings, call_id)
        return File(path, filename=path.name, content_disposition_type="inline")


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
        "call_id": call.call_id,
    }


class CallPageController(Controller):
    path = "/calls"
    include_in_schema = False
    dependencies = FILTERS

    @get("/", operation_id="callsPage")
    async def calls_page(
        self,
        request: Request[Any, Any, Any],
        principal: CurrentUser,
        settings: AppSettings,
        offset: Annotated[int, Parameter(ge=0, le=10**9)] = 0,
    ) -> Template:
        zone = ZoneInfo(settings.timezone)
        query = {k: v for k, v in request.query_params.items() if k in FILTER_NAMES and v}
        try:
            filters = await call_filters(settings, **query)  # type: ignore[arg-type]
            error = ""
        except (InvalidRequest, TypeError) as exc:
            filters, error = CallFilters(), getattr(exc, "detail", str(exc))
        page = await services.list_calls(principal, filters, limit=PAGE_SIZE, offset=offset)
        recorded = await services.recorded([c.call_id for c in page.items])
        qs = urlencode(query)
        return Template(
            template_name="calls/list.html",
            context={
                "calls": [_row(call, zone) for call in page.items],
                "recorded": recorded,
                "total": page.total if page.total_exact else f"{page.total:,}+",
                "more": offset + len(page.items) < page.total or not page.total_exact,
                "shown": len(page.items),
                "offset": offset,
                "page_size": PAGE_SIZE,
                "query": query,
                "qs": qs,
                "statuses": {k: status_label(k) for k in CALL_STATUSES},
                "error": error,
                "timezone": settings.timezone,
                "now": datetime.now(zone).strftime("%Y-%m-%d %H:%M:%S"),
            },
            status_code=400 if error else 200,
        )


@get("/", operation_id="home", include_in_schema=False)
async def home() -> Redirect:
    # The call list is the only page so far; a dashboard will take its place.
    return Redirect("/dashboard")
