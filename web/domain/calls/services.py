from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from piccolo.columns.combination import Where

from appliance.auth.core import Principal
from appliance.errors import NotFound
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


def _conditions(principal: Principal, filters: CallFilters) -> list[Where]:
    conditions: list[Any] = visible(principal)
    if filters.status is not None:
        conditions.append(CallRecord.status == filters.status)
    if filters.hotline is not None:
        conditions.append(CallRecord.hotline == filters.hotline)
    if filters.caller is not None:
        conditions.append(CallRecord.caller == filters.caller)
    if filters.caller_prefix is not None:
        conditions.append(CallRecord.caller.like(filters.caller_prefix + "%"))
    if filters.since is not None:
        conditions.append(CallRecord.started_at >= filters.since)
    if filters.until is not None:
        conditions.append(CallRecord.started_at < filters.until)
    return conditions


async def list_calls(
    principal: Principal, filters: CallFilters, limit: int, offset: int
) -> CallRecordList:
    conditions = _conditions(principal, filters)
    query = (
        CallRecord.select(*_COLUMNS)
        .order_by(CallRecord.started_at, CallRecord._meta.primary_key, ascending=False)
        .limit(limit)
        .offset(offset)
    )
    count = CallRecord.count()
    if conditions:
        query = query.where(*conditions)
        count = count.where(*conditions)
    rows = await query
    total = await count
    return CallRecordList(
        items=[CallRecordOut(**row) for row in rows], total=total, limit=limit, offset=offset
    )


async def get_call(principal: Principal, call_id: str) -> CallRecordOut:
    row = (
        await CallRecord.select(*_COLUMNS)
        .where(CallRecord.call_id == call_id, *visible(principal))
        .first()
    )
    if row is None:
        raise CallNotFound(f"no call record with Call-ID {call_id!r}", {"call_id": call_id})
    return CallRecordOut(**row)
