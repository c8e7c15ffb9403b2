"""Call records to Excel (.xlsx), in bounded memory whatever the row count.

Rows are read in keyset-paginated batches (newest first, by started_at then
id) and written by xlsxwriter in `constant_memory` mode, which flushes each
row to a temporary file as soon as the next begins; the finished workbook is
streamed from disk in chunks and the file removed. Peak memory is one batch
plus xlsxwriter's buffers, not the export.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import xlsxwriter

from appliance.auth.core import Principal
from appliance.tables import CallRecord
from web.domain.calls import services
from web.domain.calls.schemas import CallFilters, status_label
from web.i18n import gettext

BATCH = 2000
CHUNK = 256 * 1024
MAX_ROWS = 1_048_575
"""Excel's row limit, less the header."""

_COLUMNS = [
    CallRecord._meta.primary_key,
    CallRecord.started_at,
    CallRecord.caller,
    CallRecord.caller_area_code,
    CallRecord.caller_region,
    CallRecord.hotline,
    CallRecord.called,
    CallRecord.answered_by,
    CallRecord.agent_id,
    CallRecord.status,
    CallRecord.ring_seconds,
    CallRecord.talk_seconds,
    CallRecord.cause,
    CallRecord.call_id,
]


def headers() -> list[str]:
    return [
        gettext("Start"),
        gettext("Caller"),
        gettext("Area code"),
        gettext("Region"),
        gettext("Hotline"),
        gettext("Called"),
        gettext("Answered by"),
        gettext("Agent ID"),
        gettext("Status"),
        gettext("Ring (s)"),
        gettext("Talk (s)"),
        gettext("Cause"),
        "Call-ID",
    ]


async def _batches(
    principal: Principal, filters: CallFilters
) -> AsyncIterator[list[dict[str, Any]]]:
    conditions = services.where_clauses(principal, filters)
    pk = CallRecord._meta.primary_key
    last: tuple[datetime, int] | None = None
    sent = 0
    while sent < MAX_ROWS:
        query = CallRecord.select(*_COLUMNS).order_by(CallRecord.started_at, pk, ascending=False)
        where: list[Any] = list(conditions)
        if last is not None:
            where.append(
                (CallRecord.started_at < last[0])
                | ((CallRecord.started_at == last[0]) & (pk < last[1]))
            )
        if where:
            query = query.where(*where)
        rows = await query.limit(min(BATCH, MAX_ROWS - sent))
        if not rows:
            return
        yield rows
        sent += len(rows)
        last = (rows[-1]["started_at"], rows[-1]["id"])


async def write_xlsx(principal: Principal, filters: CallFilters, timezone: str) -> str:
    """Write the workbook to a temporary file; returns its path."""
    zone = ZoneInfo(timezone)
    fd, path = tempfile.mkstemp(prefix="linebox-calls-", suffix=".xlsx")
    os.close(fd)
    workbook = xlsxwriter.Workbook(
        path, {"constant_memory": True, "tmpdir": tempfile.gettempdir(), "in_memory": False}
    )
    try:
        sheet = workbook.add_worksheet(gettext("Calls"))
        bold = workbook.add_format({"bold": True})
        sheet.write_row(0, 0, headers(), bold)
        sheet.set_column(0, 0, 20)
        sheet.set_column(1, 7, 14)
        sheet.freeze_panes(1, 0)
        r = 1
        labels: dict[str, str] = {}
        async for rows in _batches(principal, filters):
            for row in rows:
                status = row["status"]
                if status not in labels:
                    labels[status] = status_label(status)
                sheet.write_row(
                    r,
                    0,
                    (
                        row["started_at"].astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
                        row["caller"],
                        row["caller_area_code"],
                        row["caller_region"],
                        row["hotline"],
                        row["called"],
                        row["answered_by"],
                        row["agent_id"],
                        labels[status],
                        row["ring_seconds"],
                        row["talk_seconds"],
                        row["cause"],
                        row["call_id"],
                    ),
                )
                r += 1
        await asyncio.to_thread(workbook.close)
    except BaseException:
        os.unlink(path)
        raise
    return path


async def stream_file(path: str) -> AsyncIterator[bytes]:
    """The file in chunks; it is unlinked at once (the open handle keeps it
    readable), so an interrupted download leaves nothing behind."""
    f = open(path, "rb")  # noqa: SIM115 - closed in finally
    try:
        os.unlink(path)
        while chunk := await asyncio.to_thread(f.read, CHUNK):
            yield chunk
    finally:
        f.close()
