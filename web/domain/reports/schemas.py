from __future__ import annotations

from datetime import date

import msgspec

REPORTS = ("summary", "daily", "hourly", "regions", "agents")
"""What `exportReport` can write, one sheet each."""


class Totals(msgspec.Struct, kw_only=True):
    calls: int
    answered: int
    busy: int
    no_answer: int
    """Nobody answered (missed) or the caller hung up while it rang."""
    other: int
    """Refused, failed, sent to voicemail or a menu."""
    talk_seconds: int
    average_talk_seconds: int
    """Per answered call."""
    satisfaction: float | None
    """The average survey score (满意度), None without any."""
    surveys: int
    cost: str
    """Yuan, e.g. "12.30"."""


class DayRow(msgspec.Struct, kw_only=True):
    day: date
    calls: int
    answered: int
    busy: int
    no_answer: int
    talk_seconds: int


class HourRow(msgspec.Struct, kw_only=True):
    hour: int
    """0 to 23, local time."""
    calls: int
    answered: int


class RegionRow(msgspec.Struct, kw_only=True):
    region: str
    """The caller's province (or municipality); empty when unknown."""
    calls: int
    answered: int


class AgentRow(msgspec.Struct, kw_only=True):
    agent_id: str
    """The agent's ID (工号)."""
    name: str
    """The name of the extension with that ID, when there is one."""
    answered: int
    talk_seconds: int
    average_talk_seconds: int
    satisfaction: float | None
    surveys: int


class Report(msgspec.Struct, kw_only=True):
    """Calls between two local days, inclusive, from the daily aggregates
    (recomputed every 15 minutes, so today's figures may lag that much)."""

    since: date
    until: date
    hotline: str
    """Only this 400 number; empty for all."""
    totals: Totals
    by_day: list[DayRow]
    """Every day of the range, oldest first (days without calls are zeros)."""
    by_hour: list[HourRow]
    """Hours 0 to 23."""
    by_region: list[RegionRow]
    """Most calls first."""
    by_agent: list[AgentRow]
    """Agents with an ID who answered, most answered first."""
