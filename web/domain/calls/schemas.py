from __future__ import annotations

from datetime import datetime

import msgspec

CALL_STATUSES: dict[str, str] = {
    "ringing": "ringing",
    "talking": "talking",
    "answered": "answered",
    "missed": "missed",
    "busy": "busy",
    "rejected": "rejected",
    "cancelled": "cancelled",
    "failed": "failed",
}
"""Every status a call record can have, with the label the pages show
(translated by `status_label`)."""


def status_label(status: str) -> str:
    from web.i18n import gettext

    labels = {
        "ringing": gettext("ringing"),
        "talking": gettext("talking"),
        "answered": gettext("answered"),
        "missed": gettext("missed"),
        "busy": gettext("busy"),
        "rejected": gettext("rejected"),
        "cancelled": gettext("cancelled"),
        "failed": gettext("failed"),
    }
    return labels.get(status, status)


class CallRecordOut(msgspec.Struct, kw_only=True):
    """One call (通话记录). Times are RFC 3339 in UTC."""

    call_id: str
    """The SIP Call-ID of the caller's leg."""
    hotline: str
    """The 400 number called; empty for an internal call."""
    caller: str
    caller_area_code: str
    caller_region: str
    """Province and city of the caller's number, when known."""
    called: str
    kind: str
    """`hotline` or `internal`."""
    route: str
    """The routing rule that decided where the call went."""
    answered_by: str
    """The extension that answered; empty when nobody did."""
    agent_id: str
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    status: str
    """ringing, talking, answered, missed, busy, rejected, cancelled or failed."""
    sip_code: int
    cause: str
    talk_seconds: int
    ring_seconds: int


class CallRecordList(msgspec.Struct, kw_only=True):
    items: list[CallRecordOut]
    """Newest first."""
    total: int
    """How many records match the filters, across all pages; counted up to
    10,000 (`total_exact` is false beyond)."""
    total_exact: bool = True
    limit: int
    offset: int


class CallFilters(msgspec.Struct, kw_only=True):
    """Which call records to list; None means "any"."""

    status: str | None = None
    hotline: str | None = None
    caller: str | None = None
    caller_prefix: str | None = None
    since: datetime | None = None
    """Inclusive, timezone-aware."""
    until: datetime | None = None
    """Exclusive, timezone-aware."""
    agent: str | None = None
    """The extension that answered."""
    region: str | None = None
    """An area code (0571) or the start of the region (浙江, 浙江 杭州)."""
