"""Reports (统计报表): the REST API, the Excel downloads and the page with charts."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Controller, Request, Response, get
from litestar.params import Parameter
from litestar.response import Template

from appliance.tables import Hotline, Tenant
from web.auth import CurrentUser, scoped
from web.dependencies import AppSettings
from web.domain.reports import export, services
from web.domain.reports.schemas import REPORTS, Report
from web.errors import BAD_REQUEST, InvalidRequest, error_response_spec
from web.i18n import gettext

OWNERS = {"roles": ("operator", "owner")}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ERRORS = {
    **BAD_REQUEST,
    404: error_response_spec("No such tenant of yours (`tenant-not-found`)"),
}
Since = Annotated[
    str | None,
    Parameter(description="The first local day (2026-03-01); default 29 days before `until`"),
]
Until = Annotated[str | None, Parameter(description="The last local day, inclusive; default today")]
HotlineParam = Annotated[str | None, Parameter(description="Only this 400 number")]
TenantParam = Annotated[
    str | None, Parameter(description="The tenant's slug (operators; all tenants when left out)")
]


class ReportController(Controller):
    path = "/api/v1/reports"
    tags = ("reports",)
    opt = OWNERS

    @get(
        "/",
        operation_id="getReport",
        summary="Calls by day, hour, region and agent, with totals, for a range of days",
        description="From the daily aggregates, which the worker recomputes every 15 minutes.",
        responses=ERRORS,
    )
    async def get_report(
        self,
        principal: CurrentUser,
        settings: AppSettings,
        since: Since = None,
        until: Until = None,
        hotline: HotlineParam = None,
        tenant: TenantParam = None,
    ) -> Report:
        first, last = services.parse_range(since, until, settings.timezone)
        return await services.report(
            principal, first, last, services.parse_hotline(hotline), tenant
        )

    @get(
        "/export.xlsx",
        operation_id="exportReport",
        summary="One table of the report as an Excel workbook",
        responses=ERRORS,
        media_type=XLSX,
    )
    async def export_report(
        self,
        principal: CurrentUser,
        settings: AppSettings,
        report: Annotated[str, Parameter(description="One of: " + ", ".join(REPORTS))] = "summary",
        since: Since = None,
        until: Until = None,
        hotline: HotlineParam = None,
        tenant: TenantParam = None,
    ) -> Response[bytes]:
        if report not in REPORTS:
            raise InvalidRequest("report", f"{report!r} is not one of {', '.join(REPORTS)}")
        first, last = services.parse_range(since, until, settings.timezone)
        data = await services.report(
            principal, first, last, services.parse_hotline(hotline), tenant
        )
        name = f"{report}-{first:%Y%m%d}-{last:%Y%m%d}.xlsx"
        return Response(
            export.xlsx(data, report),
            media_type=XLSX,
            headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                "Cache-Control": "no-store",
            },
        )


def _talk(seconds: int) -> str:
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def chart_data(report: Report) -> dict[str, Any]:
    """What reports.js draws, with the labels in the page's language."""
    t = report.totals
    return {
        "labels": {
            "calls": gettext("Number of calls"),
            "answered": gettext("Answered"),
            "busy": gettext("Busy"),
            "no_answer": gettext("No answer"),
            "other": gettext("Other"),
            "talk_minutes": gettext("Talk (min)"),
            "satisfaction": gettext("Satisfaction"),
            "unknown": gettext("unknown"),
        },
        "days": [r.day.isoformat() for r in report.by_day],
        "day_answered": [r.answered for r in report.by_day],
        "day_busy": [r.busy for r in report.by_day],
        "day_no_answer": [r.no_answer for r in report.by_day],
        "day_other": [r.calls - r.answered - r.busy - r.no_answer for r in report.by_day],
        "hour_calls": [r.calls for r in report.by_hour],
        "hour_answered": [r.answered for r in report.by_hour],
        "regions": [r.region for r in report.by_region[:30]],
        "region_calls": [r.calls for r in report.by_region[:30]],
        "region_answered": [r.answered for r in report.by_region[:30]],
        "split": {
            "answered": t.answered,
            "busy": t.busy,
            "no_answer": t.no_answer,
            "other": t.other,
        },
        "agents": [f"{a.agent_id} {a.name}".strip() for a in report.by_agent[:30]],
        "agent_answered": [a.answered for a in report.by_agent[:30]],
        "agent_talk_minutes": [round(a.talk_seconds / 60, 1) for a in report.by_agent[:30]],
    }


class ReportPageController(Controller):
    path = "/reports"
    include_in_schema = False
    opt = OWNERS

    @get("/", operation_id="reportsPage")
    async def reports_page(
        self,
        request: Request[Any, Any, Any],
        principal: CurrentUser,
        settings: AppSettings,
    ) -> Template:
        query = {
            k: v
            for k, v in request.query_params.items()
            if k in ("since", "until", "hotline", "tenant") and v
        }
        error = ""
        try:
            first, last = services.parse_range(
                query.get("since"), query.get("until"), settings.timezone
            )
            hotline = services.parse_hotline(query.get("hotline"))
        except InvalidRequest as exc:
            error = exc.detail
            first, last = services.parse_range(None, None, settings.timezone)
            hotline = ""
        data = await services.report(principal, first, last, hotline, query.get("tenant"))
        tenants: list[str] = []
        if principal.is_operator:
            tenants = [r["slug"] for r in await Tenant.select(Tenant.slug).order_by(Tenant.slug)]
        conditions = scoped(principal, Hotline.tenant, [])
        numbers = Hotline.select(Hotline.number, Hotline.name).order_by(Hotline.number)
        hotlines = await (numbers.where(*conditions) if conditions else numbers)
        shown = {
            "since": data.since.isoformat(),
            "until": data.until.isoformat(),
            "hotline": hotline,
            "tenant": query.get("tenant", ""),
        }
        qs = urlencode({k: v for k, v in shown.items() if v})
        return Template(
            template_name="reports/index.html",
            context={
                "r": data,
                "t": data.totals,
                "talk": _talk(data.totals.talk_seconds),
                "average_talk": _talk(data.totals.average_talk_seconds),
                "agents": [
                    {
                        "a": a,
                        "talk": _talk(a.talk_seconds),
                        "average": _talk(a.average_talk_seconds),
                    }
                    for a in data.by_agent
                ],
                "chart": chart_data(data),
                "tenants": tenants,
                "hotlines": hotlines,
                "tenant": query.get("tenant", ""),
                "qs": qs,
                "error": error,
            },
            status_code=400 if error else 200,
        )
