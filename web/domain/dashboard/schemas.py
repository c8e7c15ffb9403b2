from __future__ import annotations

from datetime import datetime

import msgspec


class LiveCall(msgspec.Struct, kw_only=True):
    """A call in progress."""

    call_id: str
    hotline: str
    caller: str
    caller_region: str
    answered_by: str
    status: str
    """ringing or talking."""
    started_at: datetime
    answered_at: datetime | None


class Dashboard(msgspec.Struct, kw_only=True):
    """Today (from midnight in the appliance's time zone) at a glance."""

    calls_today: int
    answered_today: int
    missed_today: int
    """Missed, busy or cancelled: callers who reached nobody."""
    answer_rate: float | None
    """Answered / finished calls today, 0 to 1; null before the first call."""
    balance: str | None
    """The prepaid balance in yuan ("123.45"); null for an operator."""
    live: list[LiveCall]
