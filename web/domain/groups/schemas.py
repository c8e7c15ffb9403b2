from __future__ import annotations

from typing import Any

import msgspec


class Queue(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """Callers wait here with music while every member is busy (排队)."""

    max_wait: int | None = None
    """Seconds, 1 to 3600."""
    music: str | None = None
    """A prompt's name."""


class GroupOut(msgspec.Struct, kw_only=True):
    """Destinations rung together under one strategy (呼叫组)."""

    tenant: str
    name: str
    strategy: str
    """sequential, random, round_robin, ring_all or sticky (来电转接记忆)."""
    ring_timeout: int
    """Seconds each member rings (5 to 300)."""
    members: list[str]
    """`ext:1001`, `tel:13800138000` or `hotline:4001234567`, in order."""
    announce_agent_id: bool
    """Callers hear the answering agent's ID (工号) first."""
    survey: bool
    """Callers are asked to rate the call after the agent hangs up (满意度评价)."""
    queue: Queue | None
    sticky_days: int
    """`sticky`: how long a caller is remembered."""


class GroupCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    """Letters, digits, '-' and '_'; referred to as `group:<name>`."""
    members: list[str]
    strategy: str = "sequential"
    ring_timeout: int = 20
    announce_agent_id: bool = False
    survey: bool = False
    queue: Queue | None = None
    sticky_days: int = 30
    tenant: str | None = None
    """The tenant's slug: operators name it when the appliance serves several."""


class GroupUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Fields to change; a field left out keeps its value. `members` replaces
    the whole list; `queue: null` removes the queue."""

    members: list[str] | msgspec.UnsetType = msgspec.UNSET
    strategy: str | msgspec.UnsetType = msgspec.UNSET
    ring_timeout: int | msgspec.UnsetType = msgspec.UNSET
    announce_agent_id: bool | msgspec.UnsetType = msgspec.UNSET
    survey: bool | msgspec.UnsetType = msgspec.UNSET
    queue: Queue | msgspec.UnsetType | None = msgspec.UNSET
    sticky_days: int | msgspec.UnsetType = msgspec.UNSET

    def given(self) -> dict[str, Any]:
        return {
            f: getattr(self, f)
            for f in self.__struct_fields__
            if getattr(self, f) is not msgspec.UNSET
        }
