from __future__ import annotations

from typing import Any

import msgspec


class ScheduleOut(msgspec.Struct, kw_only=True):
    """Named weekly opening hours; a hotline route follows one with
    `when.schedule` (`!name` matches outside them)."""

    tenant: str
    name: str
    weekly: list[str]
    """Ranges like `mon-fri 09:00-18:00` or `sat 09:00-12:00`."""
    holidays: str
    """`cn`: closed on China's public holidays, open on their make-up working
    days; empty: the weekly hours every week."""


class ScheduleCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    weekly: list[str]
    holidays: str = ""
    tenant: str | None = None
    """The tenant's slug: operators name it when the appliance serves several."""


class ScheduleUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Fields to change; `weekly` replaces the whole list."""

    weekly: list[str] | msgspec.UnsetType = msgspec.UNSET
    holidays: str | msgspec.UnsetType = msgspec.UNSET

    def given(self) -> dict[str, Any]:
        return {
            f: getattr(self, f)
            for f in self.__struct_fields__
            if getattr(self, f) is not msgspec.UNSET
        }
