"""Compile the routing plan from the database and publish it."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import time
from pathlib import Path
from typing import Any

from appliance import settings as settings_mod
from appliance.routing.plan import (
    Condition,
    ExtensionPlan,
    GroupPlan,
    HotlinePlan,
    MenuPlan,
    Plan,
    RoutePlan,
    SchedulePlan,
    ScheduleRange,
    TenantPlan,
    TrunkPlan,
    digest_ha1,
    new_version,
    publish,
)
from appliance.tables import (
    ApplianceSetting,
    Extension,
    Group,
    Hotline,
    Menu,
    Prompt,
    Schedule,
    Tenant,
    Trunk,
)

log = logging.getLogger(__name__)

DEFAULT_QUEUE_WAIT = 60
"""Seconds a group's queue holds a caller when the site file names no `max_wait`."""

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(
    r"^(?P<days>[a-z]{3}(?:-[a-z]{3})?(?:,[a-z]{3}(?:-[a-z]{3})?)*)\s+"
    r"(?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2})$"
)


class ScheduleSyntaxError(ValueError):
    pass


def parse_weekly(entry: str) -> list[ScheduleRange]:
    """`mon-fri 08:30-17:30` → one range per weekday. `end` may be 24:00; a
    range that ends before it starts runs past midnight into the next day."""
    m = _RANGE.match(entry.strip().lower())
    if not m:
        raise ScheduleSyntaxError(f"{entry!r} is not a weekly range like 'mon-fri 08:30-17:30'")
    start, end = _minutes(m["start"], entry), _minutes(m["end"], entry)
    if start == end:
        raise ScheduleSyntaxError(f"{entry!r} is an empty range")
    days: list[int] = []
    for part in m["days"].split(","):
        first, _, last = part.partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            raise ScheduleSyntaxError(f"{entry!r}: unknown weekday in {part!r} (use mon…sun)")
        a = WEEKDAYS.index(first)
        b = WEEKDAYS.index(last) if last else a
        days.extend(i % 7 for i in range(a, b + 1 + (7 if b < a else 0)))  # fri-mon wraps
    ranges = []
    for day in days:
        if end > start:
            ranges.append(ScheduleRange(day, start, end))
        else:  # overnight: 22:00-06:00
            ranges.append(ScheduleRange(day, start, 24 * 60))
            ranges.append(ScheduleRange((day + 1) % 7, 0, end))
    return ranges


def _minutes(hhmm: str, entry: str) -> int:
    h, m = (int(x) for x in hhmm.split(":"))
    if h > 24 or m > 59 or (h == 24 and m):
        raise ScheduleSyntaxError(f"{entry!r}: {hhmm} is not a time of day")
    return h * 60 + m


def _trunk_plan(row: dict[str, Any], setid: int) -> TrunkPlan:
    gateways = tuple(_json(row["gateways"]) or ()) or ((row["host"],) if row["host"] else ())
    sources = tuple(_json(row["inbound"]) or ()) or tuple(filter(None, map(_source, gateways)))
    return TrunkPlan(
        name=row["name"],
        gateways=gateways,
        sources=sources,
        setid=setid,
        transport=row["transport"] or "udp",
        dids=tuple(_json(row["dids"]) or ()),
        did_map=dict(_json(row["did_map"]) or {}),
        max_calls=row["max_calls"] or 0,
        strip_prefix=row["strip_prefix"] or "",
        add_prefix=row["add_prefix"] or "",
        codecs=tuple(_json(row["codecs"]) or ()) or ("PCMA", "PCMU"),
    )


def _source(gateway: str) -> str:
    """Where calls from a gateway come from: the address `host` names and,
    when it names one, the port. A gateway named by DNS is no source: the
    site file must name the carrier's addresses in `inbound` then."""
    if gateway.startswith("["):
        address, _, rest = gateway[1:].partition("]")
        port = rest[1:]
    else:
        address, _, port = gateway.partition(":")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return ""
    return f"{address}:{port}" if port else address


def _json(value: Any) -> Any:
    # piccolo returns JSON columns as text unless asked to load them.
    if isinstance(value, str):
        import json

        return json.loads(value)
    return value


async def compile_plan() -> Plan:
    """Read every table routing needs and build the plan."""
    settings = settings_mod.get()
    realm = settings.sip.domain
    appliance = {
        r["key"]: _json(r["value"])
        for r in await ApplianceSetting.select(ApplianceSetting.key, ApplianceSetting.value)
    }
    default_tz = appliance.get("timezone") or settings.timezone

    tenants = await Tenant.select().order_by(Tenant.position)
    slug_of = {t["id"]: t["slug"] for t in tenants}
    tz_of = {t["id"]: t["timezone"] or default_tz for t in tenants}
    suspended = {t["id"] for t in tenants if t["suspended"]}
    outbound = {t["slug"]: _json(t["outbound"]) or {} for t in tenants}

    schedules: dict[str, dict[str, SchedulePlan]] = {t["slug"]: {} for t in tenants}
    for s in await Schedule.select().order_by(Schedule.position):
        ranges: list[ScheduleRange] = []
        for entry in _json(s["weekly"]):
            ranges.extend(parse_weekly(entry))
        schedules[slug_of[s["tenant"]]][s["name"]] = SchedulePlan(
            name=s["name"], ranges=tuple(ranges), holidays=s["holidays"]
        )

    prompts: dict[str, dict[str, str]] = {t["slug"]: {} for t in tenants}
    for p in await Prompt.select().order_by(Prompt.position):
        path = Path(p["file"]) if p["file"] else None
        prompts[slug_of[p["tenant"]]][p["name"]] = str(path) if path and path.is_file() else ""

    groups: dict[str, dict[str, GroupPlan]] = {t["slug"]: {} for t in tenants}
    for g in await Group.select().order_by(Group.position):
        slug = slug_of[g["tenant"]]
        queue = _json(g["queue"]) or {}
        groups[slug][g["name"]] = GroupPlan(
            name=g["name"],
            strategy=g["strategy"],
            ring_timeout=g["ring_timeout"],
            members=tuple(_json(g["members"])),
            announce_agent_id=g["announce_agent_id"],
            survey=g["survey"],
            sticky_days=g["sticky_days"],
            queue_wait=int(queue.get("max_wait") or DEFAULT_QUEUE_WAIT) if queue else 0,
            queue_music=prompts[slug].get(queue.get("music") or "", ""),
        )

    menus: dict[str, dict[str, MenuPlan]] = {t["slug"]: {} for t in tenants}
    for m in await Menu.select().order_by(Menu.position):
        slug = slug_of[m["tenant"]]
        menus[slug][m["name"]] = MenuPlan(
            name=m["name"],
            prompt=prompts[slug].get(m["prompt"], "") if m["prompt"] else "",
            timeout=m["timeout"],
            retries=m["retries"],
            dial_extensions=m["dial_extensions"],
            keys=dict(_json(m["keys"]) or {}),
            on_timeout=m["on_timeout"],
        )

    extensions = {
        e["number"]: ExtensionPlan(
            number=e["number"],
            tenant=slug_of[e["tenant"]],
            ha1=digest_ha1(e["number"], realm, e["sip_password"]),
            name=e["name"],
            agent_id=e["agent_id"],
            ringback=prompts[slug_of[e["tenant"]]].get(e["ringback"], "") if e["ringback"] else "",
        )
        for e in await Extension.select().order_by(Extension.position)
    }

    hotlines: dict[str, HotlinePlan] = {}
    for h in await Hotline.select().order_by(Hotline.position):
        fallback = _json(h["fallback"]) or {}
        hotlines[h["number"]] = HotlinePlan(
            number=h["number"],
            tenant=slug_of[h["tenant"]],
            name=h["name"],
            timezone=h["timezone"] or tz_of[h["tenant"]],
            enabled=h["enabled"],
            schedule_override=h["schedule_override"],
            anonymous=h["anonymous"],
            caller_id=h["caller_id"],
            state="suspended" if h["tenant"] in suspended else h["service_state"],
            ringback=h["ringback"],
            record=h["record"],
            pin=h["pin"],
            blacklist=tuple(_json(h["blacklist"])),
            whitelist=tuple(_json(h["whitelist"])),
            blocked_regions=tuple(_json(h["blocked_regions"])),
            routes=tuple(_route_plan(r) for r in _json(h["routes"])),
            fallback_busy=tuple(fallback.get("busy", ())),
            fallback_no_answer=tuple(fallback.get("no_answer", ())),
        )

    rows = await Trunk.select().order_by(Trunk.position)
    trunks = tuple(_trunk_plan(t, setid) for setid, t in enumerate(rows, start=1))

    return Plan(
        version=new_version(),
        compiled_at=time.time(),
        domain=settings.sip.domain,
        hotlines=hotlines,
        extensions=extensions,
        tenants={
            slug: TenantPlan(
                slug=slug,
                groups=groups[slug],
                schedules=schedules[slug],
                menus=menus[slug],
                prompts=prompts[slug],
                international=bool(outbound[slug].get("international", False)),
                premium=bool(outbound[slug].get("premium", False)),
                max_outbound=int(outbound[slug].get("max_calls", 10)),
                max_outbound_minutes=int(outbound[slug].get("max_minutes_per_hour", 300)),
            )
            for slug in slug_of.values()
        },
        trunks=trunks,
        holiday_overrides=dict(appliance.get("holiday_overrides") or {}),
        recording_paused=bool(appliance.get("recording_paused")),
    )


def _route_plan(raw: dict[str, Any]) -> RoutePlan:
    when = raw.get("when")
    return RoutePlan(
        when=Condition(schedule=when.get("schedule", ""), regions=tuple(when.get("regions", ())))
        if when
        else None,
        to=raw.get("to", ""),
        split=tuple((dest, int(pct)) for dest, pct in (raw.get("split") or {}).items()),
    )


async def publish_from_db(path: Path | None = None) -> Plan:
    """Compile the plan from the database and publish it; Kamailio picks it up
    on its next call."""
    plan = await compile_plan()
    await asyncio.to_thread(prepare_announcements, plan)
    publish(plan, path)
    return plan


def prepare_announcements(plan: Plan) -> None:
    """Render the agent-ID announcement (工号播报) of every agent in a group
    that announces, so no call waits for sox when an agent answers. Quick
    when they exist; one that cannot be made is logged, and the call then
    goes without it."""
    from appliance.media.prompts import PromptError
    from appliance.media.stock import agent_id_announcement

    wanted: set[str] = set()
    for tenant in plan.tenants.values():
        for group in tenant.groups.values():
            if group.announce_agent_id:
                for member in group.members:
                    extension = plan.extensions.get(member.removeprefix("ext:"))
                    if member.startswith("ext:") and extension and extension.agent_id:
                        wanted.add(extension.agent_id)
    for agent_id in sorted(wanted):
        try:
            agent_id_announcement(agent_id)
        except (PromptError, OSError) as exc:
            log.warning("agent-ID announcement %s: %s", agent_id, exc)
