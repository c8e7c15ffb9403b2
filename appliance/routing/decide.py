"""The routing decision: a pure function of (plan, call facts, clock).

It never talks to Kamailio. Kamailio's KEMI glue gathers the facts, calls
`decide()`, and turns the `Decision` into SIP; `linebox simulate` and the
portal's tester call the very same function.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
import re
from collections.abc import Mapping
from zoneinfo import ZoneInfo

import holidays
import msgspec

from appliance.numbers import INTERNATIONAL, SPECIAL, UNKNOWN, Region, kind_of, normalize
from appliance.routing.plan import (
    GroupPlan,
    HotlinePlan,
    Plan,
    RoutePlan,
    SchedulePlan,
    TenantPlan,
)

REJECT, RING, MENU, VOICEMAIL, PIN = "reject", "ring", "menu", "voicemail", "pin"

# Ring time for a destination named on its own (not through a group): long
# enough for someone to reach a single phone, short enough to fail over.
SINGLE_DESTINATION_TIMEOUT = 50
CHAIN_DESTINATION_TIMEOUT = 20
MAX_HOTLINE_HOPS = 3


class Facts(msgspec.Struct, frozen=True):
    """What Kamailio knows about a new call."""

    called: str
    caller: str = ""
    region: Region = UNKNOWN
    trunk: str = ""
    """The trunk the call came in on ('' when not from a trunk)."""
    caller_extension: str = ""
    """The authenticated extension placing the call ('' when none)."""
    sequence: int = 0
    """How many calls this hotline has taken before this one (drives splits
    and ties exactly, not by chance)."""
    answered_today: Mapping[str, int] = {}
    """Calls each destination (`ext:1001`) answered today: round-robin rings
    the least busy first. Kamailio passes a view of its shared counters."""
    sticky_agent: str = ""
    """The destination (`ext:1001`) that last answered this caller."""
    sticky_at: float = 0.0
    """When it did (Unix time)."""
    pin_ok: bool = False


class Target(msgspec.Struct, frozen=True, omit_defaults=True):
    """One thing to try: ring an extension or a number, or hand over to media."""

    kind: str
    """ext | tel | menu | voicemail"""
    number: str = ""
    timeout: int = 0
    via: str = ""
    """The destination this target came from, e.g. `group:sales`."""


class Decision(msgspec.Struct, frozen=True, omit_defaults=True):
    action: str
    target: str = ""
    sip_code: int = 0
    reason: str = ""
    tenant: str = ""
    hotline: str = ""
    route: str = ""
    strategy: str = ""
    ring: tuple[Target, ...] = ()
    busy: tuple[Target, ...] = ()
    """Tried when every `ring` target was busy (遇忙前转)."""
    no_answer: tuple[Target, ...] = ()
    """Tried when `ring` ended without an answer (无应答前转)."""
    record: bool = False
    ringback: str = ""
    """The audio file played to the caller while destinations ring (企业彩铃);
    empty for the plain ring tone."""
    queue_wait: int = 0
    """Seconds the caller may wait with music when every member of the group
    rung is busy (0: no queue)."""
    queue_music: str = ""
    caller: str = ""
    """The caller in national form."""
    trace: tuple[str, ...] = ()


def _reject(code: int, reason: str, trace: list[str], base: Decision | None = None) -> Decision:
    trace.append(f"reject {code} {reason}")
    return msgspec.structs.replace(
        base or Decision(action=REJECT),
        action=REJECT,
        sip_code=code,
        reason=reason,
        trace=tuple(trace),
    )


class _Trace(list[str]):
    """The reasons behind a decision. Kamailio asks for the outcome only
    (`explain=False`), which skips formatting a line per rule passed over."""

    def __init__(self, explain: bool) -> None:
        super().__init__()
        self.explain = explain


def decide(plan: Plan, facts: Facts, now: dt.datetime, explain: bool = True) -> Decision:
    """What to do with a new call; with `explain`, the trace says why, rule
    by rule (the simulator), else only what was decided (Kamailio)."""
    trace = _Trace(explain)
    called = facts.called
    hotline = plan.hotlines.get(called)
    if hotline is not None:
        return _decide_hotline(plan, hotline, facts, now, trace)
    extension = plan.extensions.get(called)
    if extension is not None and facts.caller_extension:
        caller_ext = plan.extensions.get(facts.caller_extension)
        if caller_ext is not None and caller_ext.tenant == extension.tenant:
            trace.append(f"{called} is an extension of tenant {extension.tenant}")
            return Decision(
                action=RING,
                target=f"ext:{called}",
                tenant=extension.tenant,
                strategy="sequential",
                ring=(Target("ext", called, SINGLE_DESTINATION_TIMEOUT, f"ext:{called}"),),
                ringback=extension.ringback,
                caller=facts.caller_extension,
                trace=tuple(trace),
            )
    trace.append(f"{called or '(empty)'} is no hotline or extension this caller may reach")
    return _reject(404, "Not Found", trace)


def decide_destination(
    plan: Plan, facts: Facts, now: dt.datetime, destination: str, explain: bool = True
) -> Decision:
    """What to do with a hotline call sent to `destination` by its caller's
    choice (a menu key, or the menu's `on_timeout`): the same expansion,
    fallbacks and toll checks as a route's destination."""
    trace = _Trace(explain)
    hotline = plan.hotlines.get(facts.called)
    if hotline is None:
        trace.append(f"{facts.called} is no hotline")
        return _reject(404, "Not Found", trace)
    caller = normalize(facts.caller)
    common = Decision(action=REJECT, tenant=hotline.tenant, hotline=hotline.number, caller=caller)
    tenant = plan.tenants.get(hotline.tenant, TenantPlan(slug=hotline.tenant))
    trace.append(f"the caller chose {destination}")
    return _to_destination(plan, tenant, hotline, destination, facts, "menu", trace, common, 0, now)


def _decide_hotline(
    plan: Plan, hotline: HotlinePlan, facts: Facts, now: dt.datetime, trace: _Trace
) -> Decision:
    caller = normalize(facts.caller)
    # Who the call is for: every decision about it carries this.
    common = Decision(action=REJECT, tenant=hotline.tenant, hotline=hotline.number, caller=caller)
    trace.append(
        f"hotline {hotline.number} of tenant {hotline.tenant}, caller {caller or '(anonymous)'}"
    )

    if facts.trunk:
        trunk = next((t for t in plan.trunks if t.name == facts.trunk), None)
        if trunk is None or not (
            hotline.number in trunk.dids or hotline.number in trunk.did_map.values()
        ):
            return _reject(404, "Not Found", trace, common)
    elif facts.caller_extension:
        caller_ext = plan.extensions.get(facts.caller_extension)
        if caller_ext is None:
            return _reject(403, "Forbidden", trace, common)
    else:
        return _reject(403, "Forbidden", trace, common)

    return _route_hotline(plan, hotline, facts, now, trace, hops=0)


def _route_hotline(
    plan: Plan, hotline: HotlinePlan, facts: Facts, now: dt.datetime, trace: _Trace, hops: int
) -> Decision:
    caller = normalize(facts.caller)
    # Who the call is for: every decision about it carries this.
    common = Decision(action=REJECT, tenant=hotline.tenant, hotline=hotline.number, caller=caller)
    if not hotline.enabled:
        trace.append("hotline is switched off")
        return _reject(480, "Temporarily Unavailable", trace, common)
    if hotline.state == "suspended":
        trace.append("service suspended: the account's balance ran out")
        return _reject(480, "Service Suspended", trace, common)
    if hotline.state == "capped":
        trace.append("the hotline reached its monthly cap")
        return _reject(480, "Monthly Cap Reached", trace, common)

    # Screening comes before everything else.
    if not caller.isdigit():
        if hotline.anonymous == "reject":
            trace.append("the caller withholds the number and this hotline refuses that")
            return _reject(433, "Anonymity Disallowed", trace, common)
        trace.append("the caller withholds the number")
    if _listed(caller, hotline.blacklist):
        trace.append("caller is blacklisted")
        return _reject(603, "Decline", trace, common)
    if hotline.whitelist and not _listed(caller, hotline.whitelist):
        trace.append("whitelist-only hotline and the caller is not on it")
        return _reject(603, "Decline", trace, common)
    if hotline.blocked_regions and not frozenset(facts.region.names()).isdisjoint(
        hotline.blocked_regions
    ):
        trace.append(f"caller region {facts.region.label()} is blocked")
        return _reject(486, "Busy Here", trace, common)

    if hotline.pin and not facts.pin_ok:
        trace.append("hotline asks callers for a PIN")
        return msgspec.structs.replace(
            common,
            action=PIN,
            target="pin",
            record=hotline.record and not plan.recording_paused,
            trace=tuple(trace),
        )

    tenant = plan.tenants.get(hotline.tenant, TenantPlan(slug=hotline.tenant))
    local = now.astimezone(_zone(hotline.timezone))
    region_names = frozenset(facts.region.names())
    schedule_seen: dict[str, bool] = {}
    destination = ""
    route_label = ""
    for index, route in enumerate(hotline.routes, start=1):
        when = route.when
        if when is not None:
            if when.schedule:
                negate = when.schedule.startswith("!")
                name = when.schedule.lstrip("!")
                inside = schedule_seen.get(name)
                if inside is None:
                    inside = schedule_seen[name] = _inside(plan, tenant, hotline, name, local)
                if inside == negate:
                    if trace.explain:
                        trace.append(f"route {index} skipped: {_why(hotline, name, inside, local)}")
                    continue
            if when.regions and region_names.isdisjoint(when.regions):
                if trace.explain:
                    trace.append(
                        f"route {index} skipped: caller region "
                        f"{facts.region.label() or 'unknown'} "
                        f"is not in {', '.join(when.regions)}"
                    )
                continue
        route_label = f"route {index}"
        destination = route.to or _split_pick(route, facts.sequence)
        trace.append(f"route {index} matches → {destination}")
        break
    if not destination:
        trace.append("no route matches")
        return _reject(480, "Temporarily Unavailable", trace, common)

    return _to_destination(
        plan, tenant, hotline, destination, facts, route_label, trace, common, hops, now
    )


def _to_destination(
    plan: Plan,
    tenant: TenantPlan,
    hotline: HotlinePlan,
    destination: str,
    facts: Facts,
    route_label: str,
    trace: _Trace,
    common: Decision,
    hops: int,
    now: dt.datetime,
) -> Decision:
    kind, _, name = destination.partition(":")
    if kind == "hotline":
        other = plan.hotlines.get(name)
        if other is None or other.tenant != hotline.tenant or hops >= MAX_HOTLINE_HOPS:
            trace.append(f"{destination} cannot be followed")
            return _reject(480, "Temporarily Unavailable", trace, common)
        trace.append(f"follow {destination}")
        inner = _route_hotline(plan, other, facts, now, trace, hops + 1)
        return msgspec.structs.replace(inner, hotline=hotline.number)
    if kind == "menu":
        return msgspec.structs.replace(
            common,
            action=MENU,
            target=destination,
            route=route_label,
            record=hotline.record and not plan.recording_paused,
            trace=tuple(trace),
        )
    if kind == "voicemail":
        return msgspec.structs.replace(
            common,
            action=VOICEMAIL,
            target="voicemail",
            route=route_label,
            record=hotline.record and not plan.recording_paused,
            trace=tuple(trace),
        )

    ring, strategy = _expand(tenant, destination, facts, SINGLE_DESTINATION_TIMEOUT, now)
    group = tenant.groups.get(name) if kind == "group" else None
    if not ring:
        trace.append(f"{destination} has nothing to ring")
        return _reject(480, "Temporarily Unavailable", trace, common)
    ring = _toll_checked(tenant, ring, trace)
    if not ring:
        return _reject(480, "Temporarily Unavailable", trace, common)
    busy = _toll_checked(tenant, _chain(tenant, hotline.fallback_busy, facts, now), trace)
    no_answer = _toll_checked(tenant, _chain(tenant, hotline.fallback_no_answer, facts, now), trace)
    if trace.explain:
        trace.append(
            f"ring {strategy}: " + ", ".join(f"{t.kind}:{t.number}/{t.timeout}s" for t in ring)
        )
    else:
        trace.append(f"ring {strategy}: {len(ring)} destinations, first {ring[0].number}")
    return msgspec.structs.replace(
        common,
        action=RING,
        target=destination,
        route=route_label,
        strategy=strategy,
        ring=ring,
        busy=busy,
        no_answer=no_answer,
        record=hotline.record and not plan.recording_paused,
        ringback=_ringback(plan, tenant, hotline, kind, name),
        queue_wait=group.queue_wait if group else 0,
        queue_music=group.queue_music if group else "",
        trace=tuple(trace),
    )


def _ringback(plan: Plan, tenant: TenantPlan, hotline: HotlinePlan, kind: str, name: str) -> str:
    """What the caller hears while the destination rings: the hotline's
    ringback, else that of the extension dialled, else the ring tone ('')."""
    if hotline.ringback:
        return tenant.prompts.get(hotline.ringback, "")
    extension = plan.extensions.get(name) if kind == "ext" else None
    return extension.ringback if extension and extension.tenant == hotline.tenant else ""


def _order(group: GroupPlan, facts: Facts, now: dt.datetime) -> list[str]:
    """The group's members in the order its strategy rings them."""
    members = list(group.members)
    n = len(members)
    if not n:
        return members
    if group.strategy == "random":
        random.Random(facts.sequence).shuffle(members)
    elif group.strategy == "round_robin":
        # Fewest calls answered today first (平均分配); equal counts take turns.
        start = facts.sequence % n
        rotated = members[start:] + members[:start]
        return sorted(rotated, key=lambda m: facts.answered_today.get(m, 0))
    elif group.strategy == "sticky":
        fresh = now.timestamp() - facts.sticky_at <= group.sticky_days * 86400
        if facts.sticky_agent in members and fresh:
            members.remove(facts.sticky_agent)
            members.insert(0, facts.sticky_agent)
    return members


def _expand(
    tenant: TenantPlan, destination: str, facts: Facts, single_timeout: int, now: dt.datetime
) -> tuple[tuple[Target, ...], str]:
    kind, _, name = destination.partition(":")
    if kind in ("ext", "tel"):
        return (Target(kind, name, single_timeout, destination),), "sequential"
    if kind == "group":
        group = tenant.groups.get(name)
        if group is None:
            return (), ""
        members = _order(group, facts, now)
        return _targets(tuple(members), group.ring_timeout, destination), group.strategy
    return (), ""


@functools.lru_cache(maxsize=4096)
def _targets(members: tuple[str, ...], timeout: int, via: str) -> tuple[Target, ...]:
    """The targets of a group's members in this order (the same few orders
    recur call after call: made once)."""
    targets = []
    for member in members:
        kind, _, number = member.partition(":")
        if kind in ("ext", "tel"):
            targets.append(Target(kind, number, timeout, via))
    return tuple(targets)


def _chain(
    tenant: TenantPlan, chain: tuple[str, ...], facts: Facts, now: dt.datetime
) -> tuple[Target, ...]:
    targets: list[Target] = []
    for destination in chain:
        kind = destination.partition(":")[0]
        if kind in ("voicemail", "menu"):
            targets.append(Target(kind, destination.partition(":")[2], 0, destination))
            break  # the call is handed over; nothing after it can run
        ring, _ = _expand(tenant, destination, facts, CHAIN_DESTINATION_TIMEOUT, now)
        targets.extend(ring)
    return tuple(targets)


def _toll_checked(
    tenant: TenantPlan, targets: tuple[Target, ...], trace: _Trace
) -> tuple[Target, ...]:
    """Numbers abroad and premium numbers only where the tenant allows them:
    the site file refuses such destinations already; this holds even if a
    plan carries one (toll fraud costs real money)."""
    kept = []
    for target in targets:
        if target.kind == "tel":
            kind = kind_of(target.number)
            if (kind == INTERNATIONAL and not tenant.international) or (
                kind == SPECIAL and not tenant.premium
            ):
                trace.append(f"tel:{target.number} refused: {kind} numbers are not allowed")
                continue
        kept.append(target)
    return tuple(kept)


def _listed(caller: str, entries: tuple[str, ...]) -> bool:
    """Full numbers, prefixes (`139*`) and area codes (`0571`: every fixed
    line of Hangzhou); never suffixes."""
    if not entries:
        return False
    exact, prefixes = _matcher(entries)
    return caller in exact or (bool(prefixes) and caller.startswith(prefixes))


@functools.lru_cache(maxsize=4096)
def _matcher(entries: tuple[str, ...]) -> tuple[frozenset[str], tuple[str, ...]]:
    exact = frozenset(e for e in entries if not e.endswith("*"))
    prefixes = tuple(e[:-1] for e in entries if e.endswith("*"))
    prefixes += tuple(e for e in exact if _is_area_code(e))
    return exact, prefixes


def _is_area_code(entry: str) -> bool:
    return entry.startswith("0") and 3 <= len(entry) <= 4 and entry.isdigit()


def _inside(
    plan: Plan, tenant: TenantPlan, hotline: HotlinePlan, name: str, local: dt.datetime
) -> bool:
    """Is the hotline inside the named schedule now (or switched to day)?"""
    if hotline.schedule_override:
        return hotline.schedule_override == "day"
    schedule = tenant.schedules.get(name)
    return schedule is not None and in_schedule(schedule, local, plan.holiday_overrides)


def _why(hotline: HotlinePlan, name: str, inside: bool, local: dt.datetime) -> str:
    if hotline.schedule_override:
        return f"the hotline is switched to {hotline.schedule_override} mode"
    return f"{local:%a %H:%M} is {'inside' if inside else 'outside'} schedule {name}"


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def in_schedule(
    schedule: SchedulePlan, local: dt.datetime, overrides: Mapping[str, str] | None = None
) -> bool:
    """Is this local time inside the schedule's opening hours?

    With a holiday calendar, public holidays are closed and make-up working
    days (调休, often a weekend day) keep the hours of the weekday whose day
    off they pay for; the operator's overrides close a day or reopen a
    holiday (it then keeps its weekday's hours)."""
    day = local.date()
    weekday = day.weekday()
    if schedule.holidays:
        override = (overrides or {}).get(day.isoformat())
        calendar = _calendar(schedule.holidays, day.year)
        if override == "closed" or (day in calendar.closed and override != "open"):
            return False
        weekday = calendar.make_up.get(day, weekday)
    minute = local.hour * 60 + local.minute
    return any(r.weekday == weekday and r.start <= minute < r.end for r in schedule.ranges)


class _Calendar(msgspec.Struct, frozen=True):
    closed: frozenset[dt.date]
    make_up: dict[dt.date, int]
    """Make-up working day → the weekday whose hours it keeps."""


_SUBSTITUTED = re.compile(r"substituted from (\d{2})/(\d{2})/(\d{4})")


@functools.lru_cache(maxsize=16)
def _calendar(name: str, year: int) -> _Calendar:
    # English names, so the "substituted from MM/DD/YYYY" that pairs a day off
    # with the working day paying for it reads the same whatever the locale.
    days = holidays.country_holidays(name.upper(), years=year, language="en_US")
    make_up: dict[dt.date, int] = {}
    for day_off, title in days.items():
        m = _SUBSTITUTED.search(title)
        if m:
            worked = dt.date(int(m[3]), int(m[1]), int(m[2]))
            make_up[worked] = day_off.weekday()
    for worked in getattr(days, "weekend_workdays", ()):
        if worked.year == year:
            make_up.setdefault(worked, 0)  # paired with no day off: Monday's hours
    return _Calendar(closed=frozenset(days), make_up=make_up)


def _split_pick(route: RoutePlan, sequence: int) -> str:
    """Percentages distributed exactly: within every 100 consecutive calls each
    destination gets exactly its share, interleaved rather than in blocks
    (37 is coprime with 100, so `sequence * 37 % 100` visits every slot once)."""
    slot = (sequence * 37) % 100
    for destination, percent in route.split:
        if slot < percent:
            return destination
        slot -= percent
    return route.split[-1][0] if route.split else ""
