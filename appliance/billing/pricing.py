"""Prices and billing settings. Money is integer fen, never float."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

DEFAULT_STEP_SECONDS = 6
DEFAULT_GRACE_DAYS = 3


@dataclass(frozen=True)
class BillingSettings:
    """A tenant's `billing` JSON with its defaults (see appliance/sitefile/apply.py)."""

    rates_fen_per_minute: dict[str, int] = field(default_factory=dict)
    """Per destination kind (`tel`, `ext`); a kind without a rate is free."""
    step_seconds: int = DEFAULT_STEP_SECONDS
    low_balance_fen: int | None = None
    suspend_below_fen: int | None = None
    grace_days: int = DEFAULT_GRACE_DAYS
    """Days a suspended tenant keeps its numbers before they are due for reclaim."""

    @classmethod
    def of(cls, raw: dict[str, Any] | None) -> BillingSettings:
        raw = raw or {}

        def fen(key: str) -> int | None:
            return None if raw.get(key) is None else int(raw[key])

        rates = raw.get("rates_fen_per_minute") or {}
        return cls(
            rates_fen_per_minute={k: int(v) for k, v in rates.items()},
            step_seconds=int(raw.get("step_seconds") or DEFAULT_STEP_SECONDS),
            low_balance_fen=fen("low_balance_fen"),
            suspend_below_fen=fen("suspend_below_fen"),
            grace_days=int(raw.get("grace_days", DEFAULT_GRACE_DAYS)),
        )


def price_fen(talk_seconds: int, rate_fen_per_minute: int, step_seconds: int) -> int:
    """The cost of `talk_seconds` at a per-minute rate billed in steps: the
    talk time is rounded up to whole steps, and the price of those steps up
    to a whole fen. 61 s at 60 fen/min in 6 s steps is 11 steps, 66 fen."""
    if talk_seconds <= 0 or rate_fen_per_minute <= 0:
        return 0
    step = max(1, step_seconds)
    steps = -(-talk_seconds // step)
    return -(-(steps * step * rate_fen_per_minute) // 60)


def call_cost(billing: BillingSettings, answered_kind: str, talk_seconds: int) -> tuple[int, int]:
    """(cost in fen, the rate used) of a call answered by `answered_kind`."""
    rate = billing.rates_fen_per_minute.get(answered_kind, 0) if answered_kind else 0
    return price_fen(talk_seconds, rate, billing.step_seconds), rate


def month_of(when: dt.datetime, timezone: str) -> str:
    """The billing month (`YYYY-MM`) of an instant: months run from the 1st
    00:00 to the last day 24:00 in the tenant's time zone."""
    return when.astimezone(ZoneInfo(timezone)).strftime("%Y-%m")


def month_start(when: dt.datetime, timezone: str) -> dt.datetime:
    local = when.astimezone(ZoneInfo(timezone))
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
