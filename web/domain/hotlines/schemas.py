from __future__ import annotations

from typing import Any

import msgspec


class When(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """A route's condition; every given key must match."""

    schedule: str | None = None
    """A schedule's name; `!office` matches outside it."""
    regions: list[str] | None = None
    """Provinces, cities or area codes of the caller (`浙江`, `杭州`, `0571`)."""


class Route(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """One rule; give `to` or `split`."""

    when: When | None = None
    to: str | None = None
    """ext:1001, tel:13800138000, group:sales, menu:main, hotline:400…, voicemail."""
    split: dict[str, int] | None = None
    """Destination → percent, adding up to 100."""


class Fallback(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    busy: list[str] | None = None
    """Tried when every destination was busy (遇忙前转)."""
    no_answer: list[str] | None = None
    """Tried when nobody answered (无应答前转)."""


class HotlineOut(msgspec.Struct, kw_only=True):
    """A 400 number and everything that decides where its calls go."""

    number: str
    tenant: str
    """The owning tenant's slug."""
    name: str
    number_class: str
    """号码分类: special (特号), A, B, C or D, from the digits."""
    number_pattern: str
    """The pattern that gave the class (`AABB`, `tail 88`)."""
    enabled: bool
    service_state: str
    """`active`, or `capped` / `suspended` as billing set it."""
    timezone: str
    caller_id: str
    """来电显示 on a mobile or landline rung through the trunk: `caller`, the
    real caller (the hotline goes in Diversion), or `hotline`, the 400 number."""
    ringback: str
    """A prompt name played to callers while they wait."""
    record: bool
    pin: str
    """Callers must key this in first (4 to 8 digits); empty for none."""
    blacklist: list[str]
    """Numbers or prefixes (`0571*`) refused with 603."""
    whitelist: list[str]
    """When given, only these numbers or prefixes may call."""
    blocked_regions: list[str]
    monthly_call_cap: int | None
    monthly_cost_cap: str | None
    """Yuan, e.g. "500.00"."""
    routes: list[Route]
    """The first route whose `when` matches decides; `to` or a percentage `split`."""
    fallback: Fallback
    """Where calls go when the route's destinations are busy or don't answer."""


class HotlineUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Fields to change; a field left out keeps its value. Lists replace the
    whole list. Checked by the same rules as the site file."""

    name: str | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    timezone: str | msgspec.UnsetType = msgspec.UNSET
    caller_id: str | msgspec.UnsetType = msgspec.UNSET
    """`caller` or `hotline`."""
    ringback: str | msgspec.UnsetType = msgspec.UNSET
    record: bool | msgspec.UnsetType = msgspec.UNSET
    pin: str | msgspec.UnsetType = msgspec.UNSET
    blacklist: list[str] | msgspec.UnsetType = msgspec.UNSET
    whitelist: list[str] | msgspec.UnsetType = msgspec.UNSET
    blocked_regions: list[str] | msgspec.UnsetType = msgspec.UNSET
    monthly_call_cap: int | msgspec.UnsetType | None = msgspec.UNSET
    monthly_cost_cap: str | msgspec.UnsetType | None = msgspec.UNSET
    routes: list[Route] | msgspec.UnsetType = msgspec.UNSET
    fallback: Fallback | msgspec.UnsetType | None = msgspec.UNSET

    def given(self) -> dict[str, Any]:
        return {
            f: getattr(self, f)
            for f in self.__struct_fields__
            if getattr(self, f) is not msgspec.UNSET
        }


class SimulateIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A call to imagine."""

    caller: str
    """The caller's number, e.g. 13800138000 or 057188886666."""
    at: str | None = None
    """When, ISO 8601 (`2026-03-07T21:00`); without an offset in the hotline's
    time zone. Default: now."""
    sequence: int = msgspec.field(default=0)
    """The hotline's call count so far (drives percentage splits)."""


class TargetOut(msgspec.Struct, kw_only=True):
    kind: str
    number: str
    timeout: int
    via: str


class SimulateOut(msgspec.Struct, kw_only=True):
    """What the appliance would do, by the very function that routes real calls."""

    action: str
    """reject, ring, menu, voicemail or pin."""
    target: str
    sip_code: int
    """For a reject: the SIP answer the caller gets (603, 486, 404, 480)."""
    reason: str
    route: str
    strategy: str
    ring: list[TargetOut]
    busy: list[TargetOut]
    no_answer: list[TargetOut]
    caller_region: str
    at: str
    """The moment simulated, in the hotline's time zone."""
    trace: list[str]
    """Why, step by step."""
