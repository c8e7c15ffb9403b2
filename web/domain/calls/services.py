from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from piccolo.columns.combination import Where

from appliance.auth.core import Principal
from appliance.errors import NotFound
from appliance.settings import Settings
from appliance.tables import CallRecord
from web.auth import scoped
from web.domain.calls.schemas import CALL_STATUSES, CallFilters, CallRecordList, CallRecordOut
from web.errors import InvalidRequest

_FIELDS = tuple(CallRecordOut.__struct_fields__)
_COLUMNS = [getattr(CallRecord, name) for name in _FIELDS]

# "+08:00" typed into a URL unencoded arrives as " 08:00".
_SPACED_OFFSET = re.compile(r" (\d{2}(:?\d{2})?)$")


class CallNotFound(NotFound):
    error_id = "call-not-found"


def parse_status(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if value not in CALL_STATUSES:
        raise InvalidRequest("status", f"{value!r} is not one of {', '.join(CALL_STATUSES)}")
    return value


def parse_caller(value: str | None) -> tuple[str | None, str | None]:
    """`13800138000` matches that number exactly, `138*` every number starting with 138."""
    if value is None or value == "":
        return None, None
    if not value.endswith("*"):
        return value, None
    prefix = value[:-1]
    if not prefix or any(c in prefix for c in "%_*"):
        raise InvalidRequest(
            "caller", f"{value!r}: give a number, or the start of one followed by '*' (138*)"
        )
    return None, prefix


def parse_region(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    value = value.strip()
    if any(c in value for c in "%_") or len(value) > 64:
        raise InvalidRequest("region", f"{value!r}: give an area code (0571) or a region (浙江)")
    return value


def parse_datetime(key: str, value: str | None, timezone: str) -> datetime | None:
    """An ISO 8601 date or date-time; without an offset it is in the appliance's
    time zone, as a person reading the portal's clock would mean it."""
    if value is None or value == "":
        return None
    text = _SPACED_OFFSET.sub(r"+\1", value.strip())
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(
            key, f"{value!r} is not an ISO 8601 date-time (2026-01-31T09:00:00+08:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone))
    return moment


def visible(principal: Principal) -> list[Where]:
    """The calls a principal may see: their tenant's (all for an operator);
    an agent only the calls their own extension answered."""
    conditions: list[Any] = scoped(principal, CallRecord.tenant, [])
    if principal.role == "agent":
        conditions.append(CallRecord.answered_by == (principal.extension or "\0"))
    return conditions


def where_clauses(principal: Principal, filters: CallFilters) -> list[Where]:
    conditions: list[Any] = visible(principal)
    if filters.status is not None:
        conditions.append(CallRecord.status == filters.status)
    if filters.hotline is not None:
        conditions.append(CallRecord.hotline == filters.hotline)
    if filters.caller is not None:
        conditions.append(CallRecord.caller == filters.caller)
    if filters.caller_prefix is not None:
        # A range, not LIKE: SQLite's LIKE is case-insensitive and cannot use
        # the index on caller; the range can (on PostgreSQL too).
        prefix = filters.caller_prefix
        conditions.append(CallRecord.caller >= prefix)
        conditions.append(CallRecord.caller < prefix[:-1] + chr(ord(prefix[-1]) + 1))
    if filters.since is not None:
        conditions.append(CallRecord.started_at >= filters.since)
    if filters.until is not None:
        conditions.append(CallRecord.started_at < filters.until)
    if filters.agent is not None:
        conditions.append(CallRecord.answered_by == filters.agent)
    if filters.region is not None:
        if filters.region.isdigit():
            conditions.append(CallRecord.caller_area_code == filters.region)  # indexed
        else:
            conditions.append(CallRecord.caller_region.like(filters.region + "%"))
    return conditions


async def list_calls(
    principal: Principal, filters: CallFilters, limit: int, offset: int
) -> CallRecordList:
    conditions = where_clauses(principal, filters)
    query = (
        CallRecord.select(*_COLUMNS)
        .order_by(CallRecord.started_at, CallRecord._meta.primary_key, ascending=False)
        .limit(limit)
        .offset(offset)
    )
    if conditions:
        query = query.where(*conditions)
    rows = await query
    total, exact = await count_matching(conditions)
    return CallRecordList(
        items=[CallRecordOut(**row) for row in rows],
        total=total,
        total_exact=exact,
        limit=limit,
        offset=offset,
    )


COUNT_CAP = 10_000
"""Counted exactly up to here; beyond, the page says "10,000+": counting a
year of a busy tenant's calls for every page view would read them all."""


async def count_matching(conditions: list[Where]) -> tuple[int, bool]:
    """How many records match, at most COUNT_CAP + 1 read; (count, exact)."""
    matching = CallRecord.select(CallRecord._meta.primary_key).limit(COUNT_CAP + 1)
    if conditions:
        matching = matching.where(*conditions)
    found = len(await matching.output(as_list=True))
    return min(found, COUNT_CAP), found <= COUNT_CAP


async def get_call(principal: Principal, call_id: str) -> CallRecordOut:
    row = (
        await CallRecord.select(*_COLUMNS)
        .where(CallRecord.call_id == call_id, *visible(principal))
        .first()
    )
    if row is None:
        raise CallNotFound(f"no call record with Call-ID {call_id!r}", {"call_id": call_id})
    return CallRecordOut(**row)


class RecordingNotFound(NotFound):
    error_id = "recording-not-found"


async def recording_path(principal: Principal, settings: Settings, call_id: str) -> Path:
    """The call's recording file, when the call is the principal's and has one."""
    column = CallRecord._meta.get_column_by_name("recording") if _HAS_RECORDING else None
    row = None
    if column is not None:
        row = (
            await CallRecord.select(column)
            .where(CallRecord.call_id == call_id, *visible(principal))
            .first()
        )
    if not row or not row["recording"]:
        raise RecordingNotFound(f"no recording of call {call_id!r}", {"call_id": call_id})
    path = Path(row["recording"])
    if not path.is_absolute():
        path = settings.paths.data_dir / path
    # Only files inside the data directory are ever served.
    path = path.resolve()
    if not path.is_relative_to(settings.paths.data_dir.resolve()) or not path.is_file():
        raise RecordingNotFound(f"the recording of call {call_id!r} is gone", {"call_id": call_id})
    return path


_HAS_RECORDING = any(c._meta.name == "recording" for c in CallRecord._meta.columns)


async def recorded(call_ids: list[str]) -> set[str]:
    """Which of these calls have a recording (the page shows a player for those)."""
    if not _HAS_RECORDING or not call_ids:
        return set()
    column = CallRecord._meta.get_column_by_name("recording")
    rows = await CallRecord.select(CallRecord.call_id).where(
        CallRecord.call_id.is_in(call_ids), column != ""
    )
    return {r["call_id"] for r in rows}
