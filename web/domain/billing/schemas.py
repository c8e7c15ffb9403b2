from __future__ import annotations

from datetime import date, datetime

import msgspec


class Rate(msgspec.Struct, kw_only=True):
    kind: str
    """What answered: `ext` (an extension) or `tel` (a phone number)."""
    per_minute: str
    """Yuan per minute, e.g. "0.12"."""


class LedgerOut(msgspec.Struct, kw_only=True):
    """Money into the balance (充值记录)."""

    at: datetime
    kind: str
    """`opening`, `topup` or `adjust`."""
    amount: str
    """Yuan; an adjustment may be negative."""
    balance_after: str
    by: str
    note: str


class DayCost(msgspec.Struct, kw_only=True):
    day: date
    calls: int
    cost: str


class MonthCost(msgspec.Struct, kw_only=True):
    month: str
    """`2026-03`, in the tenant's time zone."""
    calls: int
    cost: str
    """What the month's calls took from the balance (月扣费)."""


class Billing(msgspec.Struct, kw_only=True):
    """A tenant's prepaid account (计费), read-only. Amounts are yuan strings."""

    tenant: str
    name: str
    timezone: str
    balance: str
    suspended: bool
    """Hotlines refuse calls until a top-up lifts the balance."""
    low_balance: str | None
    """A notice goes out when the balance falls below this."""
    suspend_below: str | None
    step_seconds: int
    """Talk time is billed in steps of this many seconds."""
    rates: list[Rate]
    year: int
    daily: list[DayCost]
    """The year's days with calls, oldest first."""
    monthly: list[MonthCost]
    """The year's months with calls, oldest first."""
    ledger: list[LedgerOut]
    """The latest bookings, newest first."""


class LedgerList(msgspec.Struct, kw_only=True):
    items: list[LedgerOut]
    """Newest first."""
    total: int
    limit: int
    offset: int
