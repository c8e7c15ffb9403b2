"""A report's tables as Excel workbooks (.xlsx), one sheet each. A report
has at most a year of days, 24 hours and a few hundred regions or agents,
so the workbook is built in memory by openpyxl's write-only mode."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from openpyxl import Workbook

from web.domain.reports.schemas import Report
from web.i18n import gettext


def _sat(value: float | None) -> Any:
    return "" if value is None else value


def table(report: Report, kind: str) -> tuple[str, list[str], Iterable[list[Any]]]:
    """(sheet title, header, rows) of one of the report's tables."""
    if kind == "daily":
        return (
            gettext("Calls by day"),
            [gettext("Day"), gettext("Number of calls"), gettext("Answered"), gettext("Busy"),
             gettext("No answer"), gettext("Talk (s)")],
            ([r.day, r.calls, r.answered, r.busy, r.no_answer, r.talk_seconds]
             for r in report.by_day),
        )  # fmt: skip
    if kind == "hourly":
        return (
            gettext("Calls by hour"),
            [gettext("Hour"), gettext("Number of calls"), gettext("Answered")],
            ([f"{r.hour:02d}:00", r.calls, r.answered] for r in report.by_hour),
        )
    if kind == "regions":
        return (
            gettext("Calls by region"),
            [gettext("Region"), gettext("Number of calls"), gettext("Answered")],
            ([r.region or gettext("unknown"), r.calls, r.answered] for r in report.by_region),
        )
    if kind == "agents":
        return (
            gettext("Agents"),
            [gettext("Agent ID"), gettext("Name"), gettext("Answered"), gettext("Talk (s)"),
             gettext("Average talk (s)"), gettext("Satisfaction"), gettext("Surveys")],
            ([a.agent_id, a.name, a.answered, a.talk_seconds, a.average_talk_seconds,
              _sat(a.satisfaction), a.surveys] for a in report.by_agent),
        )  # fmt: skip
    t = report.totals
    return (
        gettext("Summary"),
        [gettext("Item"), gettext("Value")],
        [
            [gettext("From"), report.since],
            [gettext("Until"), report.until],
            [gettext("Hotline"), report.hotline or gettext("all")],
            [gettext("Number of calls"), t.calls],
            [gettext("Answered"), t.answered],
            [gettext("Busy"), t.busy],
            [gettext("No answer"), t.no_answer],
            [gettext("Other"), t.other],
            [gettext("Talk (s)"), t.talk_seconds],
            [gettext("Average talk (s)"), t.average_talk_seconds],
            [gettext("Satisfaction"), _sat(t.satisfaction)],
            [gettext("Surveys"), t.surveys],
            [gettext("Cost (yuan)"), t.cost],
        ],
    )


def xlsx(report: Report, kind: str) -> bytes:
    title, header, rows = table(report, kind)
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title[:31])
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
