"""The routing decision: `decide(plan, facts, now)` on plans built from the
structs, asserting on what the caller would get (SIP code, who rings, in what
order, for how long) and on the trace an operator reads."""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter
from zoneinfo import ZoneInfo

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.numbers import region_of
from appliance.routing.compile import parse_weekly
from appliance.routing.decide import (
    MAX_HOTLINE_HOPS,
    Decision,
    Facts,
    Target,
    decide,
)
from appliance.routing.plan import (
    Condition,
    ExtensionPlan,
    GroupPlan,
    HotlinePlan,
    Plan,
    RoutePlan,
    SchedulePlan,
    ScheduleRange,
    TenantPlan,
    TrunkPlan,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
UTC = dt.UTC

HOTLINE = "4001000001"
SECOND = "4001000002"
BEIJING_MOBILE = "13800138000"
HANGZHOU_FIXED = "057188886666"
URUMQI_FIXED = "09918888666"

# 2026-03-06 is a Friday; 09:00 UTC is 17:00 in Shanghai.
FRIDAY_17_SHANGHAI = dt.datetime(2026, 3, 6, 9, 0, tzinfo=UTC)


def shanghai(day: dt.date, hhmm: str) -> dt.datetime:
    """A moment given as Shanghai wall-clock time, expressed in UTC (as Kamailio
    passes it)."""
    hour, minute = (int(x) for x in hhmm.split(":"))
    local = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI)
    return local.astimezone(UTC)


FRIDAY = dt.date(2026, 3, 6)
SATURDAY = dt.date(2026, 3, 7)
NATIONAL_DAY = dt.date(2026, 10, 1)  # a Thursday
THURSDAY_BEFORE = dt.date(2026, 9, 24)


def weekly(*entries: str) -> tuple[ScheduleRange, ...]:
    return tuple(r for entry in entries for r in parse_weekly(entry))


GROUPS = {
    "sales": GroupPlan(
        name="sales",
        ring_timeout=25,
        members=("ext:8001", "ext:8002", "tel:13900000000"),
    ),
    "support": GroupPlan(
        name="support",
        strategy="round_robin",
        ring_timeout=15,
        members=("ext:8001", "ext:8002", "ext:8003"),
    ),
    "vip": GroupPlan(
        name="vip", strategy="sticky", ring_timeout=30, members=("ext:8001", "ext:8002", "ext:8003")
    ),
    "zhejiang": GroupPlan(name="zhejiang", members=("ext:8003",)),
}
SCHEDULES = {
    "office": SchedulePlan(name="office", ranges=weekly("mon-fri 08:30-17:30")),
    "office_cn": SchedulePlan(
        name="office_cn", ranges=weekly("mon-fri 08:30-17:30"), holidays="cn"
    ),
    "night": SchedulePlan(name="night", ranges=weekly("fri 22:00-06:00")),
}
EXTENSIONS = {
    number: ExtensionPlan(number=number, tenant=tenant, ha1="0" * 32)
    for number, tenant in (("8001", "acme"), ("8002", "acme"), ("8003", "acme"), ("9001", "globex"))
}


def hotline(number: str = HOTLINE, **fields: object) -> HotlinePlan:
    fields.setdefault("routes", (RoutePlan(to="group:sales"),))
    return HotlinePlan(number=number, tenant=str(fields.pop("tenant", "acme")), **fields)  # type: ignore[arg-type]


def make_plan(*hotlines: HotlinePlan) -> Plan:
    hotlines = hotlines or (hotline(),)
    return Plan(
        version="test",
        compiled_at=0.0,
        domain="linebox.local",
        hotlines={h.number: h for h in hotlines},
        extensions=EXTENSIONS,
        tenants={
            "acme": TenantPlan(slug="acme", groups=GROUPS, schedules=SCHEDULES),
            "globex": TenantPlan(slug="globex"),
        },
        trunks=(
            TrunkPlan(
                name="carrier",
                gateways=("127.0.0.1:5090",),
                sources=("127.0.0.1:5090",),
                dids=tuple(h.number for h in hotlines),
            ),
            TrunkPlan(name="other-carrier", gateways=("10.0.0.9",), sources=("10.0.0.9",)),
        ),
    )


def call(
    plan: Plan,
    called: str = HOTLINE,
    caller: str = BEIJING_MOBILE,
    now: dt.datetime = FRIDAY_17_SHANGHAI,
    **facts: object,
) -> Decision:
    """A call as Kamailio would describe it: from the carrier trunk unless
    `trunk` or `caller_extension` say otherwise."""
    if "caller_extension" not in facts:
        facts.setdefault("trunk", "carrier")
    facts.setdefault("region", region_of(caller))
    return decide(plan, Facts(called=called, caller=caller, **facts), now)  # type: ignore[arg-type]


def rung(decision: Decision) -> list[tuple[str, str, int]]:
    return [(t.kind, t.number, t.timeout) for t in decision.ring]


def assert_rejected(decision: Decision, code: int) -> None:
    assert (decision.action, decision.sip_code) == ("reject", code), decision.trace
    assert decision.trace[-1].startswith(f"reject {code} ")


# --- who may call what ----------------------------------------------------------


def test_unknown_number_is_rejected_with_404() -> None:
    decision = call(make_plan(), called="4009999999")

    assert_rejected(decision, 404)
    assert decision.reason == "Not Found"


def test_hotline_from_its_trunk_rings_the_group_members_in_order_with_group_timeout() -> None:
    decision = call(make_plan())

    assert decision.action == "ring"
    assert (decision.tenant, decision.hotline, decision.target) == ("acme", HOTLINE, "group:sales")
    assert decision.strategy == "sequential"
    assert rung(decision) == [("ext", "8001", 25), ("ext", "8002", 25), ("tel", "13900000000", 25)]
    assert {t.via for t in decision.ring} == {"group:sales"}


def test_hotline_from_a_trunk_that_does_not_list_it_is_rejected_with_404() -> None:
    assert_rejected(call(make_plan(), trunk="other-carrier"), 404)


def test_hotline_reached_through_a_did_its_trunk_maps_to_it_rings() -> None:
    plan = make_plan()
    mapped = msgspec.structs.replace(plan.trunks[1], did_map={"02158881234": HOTLINE}, dids=())
    plan = msgspec.structs.replace(plan, trunks=(plan.trunks[0], mapped))
    assert call(plan, trunk="other-carrier").action == "ring"


def test_hotline_from_an_unknown_trunk_name_is_rejected_with_404() -> None:
    assert_rejected(call(make_plan(), trunk="no-such-carrier"), 404)


def test_call_from_neither_trunk_nor_extension_is_forbidden_with_403() -> None:
    assert_rejected(call(make_plan(), trunk=""), 403)


def test_call_from_an_extension_the_plan_does_not_know_is_forbidden_with_403() -> None:
    assert_rejected(call(make_plan(), caller="7777", caller_extension="7777"), 403)


def test_authenticated_extension_may_call_a_hotline() -> None:
    decision = call(make_plan(), caller="8002", caller_extension="8002")

    assert decision.action == "ring"
    assert decision.target == "group:sales"


def test_authenticated_extension_may_call_an_extension_of_its_own_tenant() -> None:
    decision = call(make_plan(), called="8002", caller="8001", caller_extension="8001")

    assert decision.action == "ring"
    assert (decision.tenant, decision.target, decision.caller) == ("acme", "ext:8002", "8001")
    assert rung(decision) == [("ext", "8002", 50)]
    assert decision.hotline == ""


def test_extension_of_another_tenant_is_not_found_404() -> None:
    decision = call(make_plan(), called="8002", caller="9001", caller_extension="9001")

    assert_rejected(decision, 404)


def test_extension_cannot_be_called_from_a_trunk() -> None:
    assert_rejected(call(make_plan(), called="8001"), 404)


def test_disabled_hotline_is_rejected_with_480() -> None:
    decision = call(make_plan(hotline(enabled=False)))

    assert_rejected(decision, 480)
    assert decision.reason == "Temporarily Unavailable"
    assert decision.hotline == HOTLINE


@pytest.mark.parametrize(
    ("state", "reason"),
    [("suspended", "Service Suspended"), ("capped", "Monthly Cap Reached")],
)
def test_suspended_or_capped_hotline_refuses_new_calls(state: str, reason: str) -> None:
    decision = call(make_plan(hotline(state=state)))

    assert_rejected(decision, 480)
    assert decision.reason == reason
    assert decision.tenant == "acme"


# --- screening ------------------------------------------------------------------


@pytest.mark.parametrize("caller", ["13300000000", "+8613300000000", "008613300000000"])
def test_blacklisted_number_is_declined_with_603_however_it_is_written(caller: str) -> None:
    decision = call(make_plan(hotline(blacklist=("13300000000",))), caller=caller)

    assert_rejected(decision, 603)
    assert decision.caller == "13300000000"
    assert "caller is blacklisted" in decision.trace


@pytest.mark.parametrize("caller", [HANGZHOU_FIXED, "+8657188886666", "0086057188886666"])
def test_blacklisted_prefix_is_declined_with_603(caller: str) -> None:
    assert_rejected(call(make_plan(hotline(blacklist=("0571*",))), caller=caller), 603)


@pytest.mark.parametrize("caller", ["13300000001", "01062345678", "+8610571888866"])
def test_callers_next_to_the_blacklist_get_through(caller: str) -> None:
    plan = make_plan(hotline(blacklist=("13300000000", "0571*")))

    assert call(plan, caller=caller).action == "ring"


@pytest.mark.parametrize(
    ("caller", "action"),
    [
        (BEIJING_MOBILE, "ring"),
        ("+8613800138000", "ring"),
        (HANGZHOU_FIXED, "ring"),
        ("13900000000", "reject"),
        ("anonymous", "reject"),
    ],
)
def test_whitelist_only_hotline_takes_only_listed_callers(caller: str, action: str) -> None:
    plan = make_plan(hotline(whitelist=(BEIJING_MOBILE, "0571*")))

    decision = call(plan, caller=caller)

    assert decision.action == action
    if action == "reject":
        assert_rejected(decision, 603)


@pytest.mark.parametrize(
    ("blocked", "caller"),
    [
        pytest.param("新疆维吾尔自治区", URUMQI_FIXED, id="autonomous-region"),
        pytest.param("浙江省", HANGZHOU_FIXED, id="province"),
        pytest.param("杭州市", "+8657188886666", id="city"),
        pytest.param("0571", HANGZHOU_FIXED, id="area-code"),
        pytest.param("北京市", BEIJING_MOBILE, id="mobile-province"),
    ],
)
def test_caller_from_a_blocked_region_hears_busy_486(blocked: str, caller: str) -> None:
    decision = call(make_plan(hotline(blocked_regions=(blocked,))), caller=caller)

    assert_rejected(decision, 486)
    assert any(line.startswith("caller region ") and blocked in line for line in decision.trace)


def test_caller_from_elsewhere_is_not_blocked_by_a_region_rule() -> None:
    plan = make_plan(hotline(blocked_regions=("新疆维吾尔自治区", "0571")))

    assert call(plan, caller=BEIJING_MOBILE).action == "ring"
    assert call(plan, caller="02088886666").action == "ring"


def test_pin_hotline_asks_for_the_pin_until_it_was_entered() -> None:
    plan = make_plan(hotline(pin="2468", record=True))

    asking = call(plan)
    through = call(plan, pin_ok=True)

    assert (asking.action, asking.target, asking.record) == ("pin", "pin", True)
    assert asking.ring == ()
    assert through.action == "ring"
    assert through.target == "group:sales"


def test_blacklist_is_checked_before_the_pin() -> None:
    plan = make_plan(hotline(pin="2468", blacklist=(BEIJING_MOBILE,)))

    assert_rejected(call(plan, pin_ok=False), 603)


# --- routes and schedules ---------------------------------------------------------


def test_first_matching_route_wins() -> None:
    plan = make_plan(
        hotline(
            routes=(
                RoutePlan(when=Condition(regions=("浙江省",)), to="group:zhejiang"),
                RoutePlan(to="group:sales"),
                RoutePlan(to="voicemail"),
            )
        )
    )

    from_beijing = call(plan, caller=BEIJING_MOBILE)
    from_hangzhou = call(plan, caller=HANGZHOU_FIXED)

    assert (from_beijing.route, from_beijing.target) == ("route 2", "group:sales")
    assert (from_hangzhou.route, from_hangzhou.target) == ("route 1", "group:zhejiang")


def test_no_matching_route_is_rejected_with_480() -> None:
    plan = make_plan(
        hotline(routes=(RoutePlan(when=Condition(schedule="office"), to="group:sales"),))
    )

    decision = call(plan, now=shanghai(SATURDAY, "10:00"))

    assert_rejected(decision, 480)
    assert "no route matches" in decision.trace


OFFICE_THEN_VOICEMAIL = (
    RoutePlan(when=Condition(schedule="office"), to="group:sales"),
    RoutePlan(to="voicemail"),
)
OUT_OF_HOURS_FIRST = (
    RoutePlan(when=Condition(schedule="!office"), to="voicemail"),
    RoutePlan(to="group:sales"),
)


def test_friday_17_00_in_shanghai_is_inside_office_hours() -> None:
    decision = call(make_plan(hotline(routes=OFFICE_THEN_VOICEMAIL)), now=FRIDAY_17_SHANGHAI)

    assert decision.target == "group:sales"


@pytest.mark.parametrize(
    ("hhmm", "open_"),
    [("08:29", False), ("08:30", True), ("17:29", True), ("17:30", False)],
)
def test_office_hours_open_and_close_on_the_minute(hhmm: str, open_: bool) -> None:
    now = shanghai(FRIDAY, hhmm)

    with_schedule = call(make_plan(hotline(routes=OFFICE_THEN_VOICEMAIL)), now=now)
    negated = call(make_plan(hotline(routes=OUT_OF_HOURS_FIRST)), now=now)

    assert with_schedule.target == ("group:sales" if open_ else "voicemail")
    assert negated.target == ("group:sales" if open_ else "voicemail")


def test_schedule_is_read_in_the_hotlines_time_zone() -> None:
    # 09:45 UTC: 17:45 in Shanghai (closed), 15:45 in Urumqi (open).
    now = dt.datetime(2026, 3, 6, 9, 45, tzinfo=UTC)
    shanghai_line = hotline(HOTLINE, routes=OFFICE_THEN_VOICEMAIL)
    urumqi_line = hotline(SECOND, routes=OFFICE_THEN_VOICEMAIL, timezone="Asia/Urumqi")
    plan = make_plan(shanghai_line, urumqi_line)

    assert call(plan, called=HOTLINE, now=now).target == "voicemail"
    assert call(plan, called=SECOND, now=now).target == "group:sales"


@pytest.mark.parametrize(
    ("day", "hhmm", "inside"),
    [
        (FRIDAY, "21:59", False),
        (FRIDAY, "22:00", True),
        (FRIDAY, "23:59", True),
        (SATURDAY, "00:00", True),
        (SATURDAY, "05:59", True),
        (SATURDAY, "06:00", False),
        (dt.date(2026, 3, 5), "23:00", False),  # Thursday: the range starts on Fridays
    ],
)
def test_overnight_range_runs_past_midnight(day: dt.date, hhmm: str, inside: bool) -> None:
    routes = (
        RoutePlan(when=Condition(schedule="night"), to="group:support"),
        RoutePlan(to="voicemail"),
    )

    decision = call(make_plan(hotline(routes=routes)), now=shanghai(day, hhmm))

    assert decision.target == ("group:support" if inside else "voicemail")


def test_chinese_public_holiday_closes_a_schedule_with_the_cn_calendar() -> None:
    routes = (
        RoutePlan(when=Condition(schedule="office_cn"), to="group:sales"),
        RoutePlan(to="voicemail"),
    )
    plan = make_plan(hotline(routes=routes))

    assert call(plan, now=shanghai(THURSDAY_BEFORE, "10:00")).target == "group:sales"
    assert call(plan, now=shanghai(NATIONAL_DAY, "10:00")).target == "voicemail"


def test_make_up_working_day_opens_a_weekday_schedule_with_the_cn_calendar() -> None:
    # Sunday 2026-09-20 is worked in exchange for Tuesday 2026-10-06 off.
    routes = (
        RoutePlan(when=Condition(schedule="office_cn"), to="group:sales"),
        RoutePlan(to="voicemail"),
    )
    plan = make_plan(hotline(routes=routes))

    assert call(plan, now=shanghai(dt.date(2026, 9, 20), "10:00")).target == "group:sales"
    assert call(plan, now=shanghai(dt.date(2026, 9, 20), "18:00")).target == "voicemail"
    # The day off it pays for is closed, and an ordinary Sunday stays closed.
    assert call(plan, now=shanghai(dt.date(2026, 10, 6), "10:00")).target == "voicemail"
    assert call(plan, now=shanghai(dt.date(2026, 9, 27), "10:00")).target == "voicemail"


def test_holiday_does_not_close_a_schedule_without_a_calendar() -> None:
    plan = make_plan(hotline(routes=OFFICE_THEN_VOICEMAIL))

    assert call(plan, now=shanghai(NATIONAL_DAY, "10:00")).target == "group:sales"


def test_unknown_schedule_counts_as_outside() -> None:
    routes = (
        RoutePlan(when=Condition(schedule="nonexistent"), to="group:sales"),
        RoutePlan(to="voicemail"),
    )

    assert call(make_plan(hotline(routes=routes))).target == "voicemail"


@pytest.mark.parametrize(
    ("caller", "target"),
    [
        pytest.param(HANGZHOU_FIXED, "group:zhejiang", id="by-area-code"),
        pytest.param("+8657112345678", "group:zhejiang", id="by-area-code-international"),
        pytest.param(URUMQI_FIXED, "group:support", id="by-province"),
        pytest.param(BEIJING_MOBILE, "group:sales", id="by-city"),
        pytest.param("02088886666", "voicemail", id="no-region-rule"),
        pytest.param("anonymous", "voicemail", id="unknown-region"),
    ],
)
def test_region_routes_send_callers_by_where_they_call_from(caller: str, target: str) -> None:
    routes = (
        RoutePlan(when=Condition(regions=("0571",)), to="group:zhejiang"),
        RoutePlan(when=Condition(regions=("新疆维吾尔自治区", "西藏自治区")), to="group:support"),
        RoutePlan(when=Condition(regions=("北京市",)), to="group:sales"),
        RoutePlan(to="voicemail"),
    )

    assert call(make_plan(hotline(routes=routes)), caller=caller).target == target


def test_region_and_schedule_must_both_hold() -> None:
    routes = (
        RoutePlan(when=Condition(schedule="office", regions=("浙江省",)), to="group:zhejiang"),
        RoutePlan(to="group:sales"),
    )
    plan = make_plan(hotline(routes=routes))

    weekday, weekend = shanghai(FRIDAY, "10:00"), shanghai(SATURDAY, "10:00")

    assert call(plan, caller=HANGZHOU_FIXED, now=weekday).target == "group:zhejiang"
    assert call(plan, caller=HANGZHOU_FIXED, now=weekend).target == "group:sales"
    assert call(plan, caller=BEIJING_MOBILE, now=weekday).target == "group:sales"


# --- splits -------------------------------------------------------------------------


def split_plan(split: tuple[tuple[str, int], ...]) -> Plan:
    return make_plan(hotline(routes=(RoutePlan(split=split),)))


def picks(plan: Plan, sequences: range) -> list[str]:
    return [call(plan, sequence=n).target for n in sequences]


@st.composite
def splits(draw: st.DrawFn) -> tuple[tuple[str, int], ...]:
    cuts = sorted(draw(st.lists(st.integers(1, 99), unique=True, max_size=4)))
    bounds = [0, *cuts, 100]
    return tuple((f"ext:80{i:02d}", b - a) for i, (a, b) in enumerate(itertools.pairwise(bounds)))


@settings(max_examples=60, deadline=None)
@given(split=splits(), start=st.integers(0, 10**9))
def test_split_is_exact_over_any_100_consecutive_calls(
    split: tuple[tuple[str, int], ...], start: int
) -> None:
    counts = Counter(picks(split_plan(split), range(start, start + 100)))

    assert counts == Counter(dict(split))


def test_70_30_split_is_interleaved_not_in_blocks() -> None:
    sequence = picks(split_plan((("ext:8001", 70), ("ext:8002", 30))), range(300))

    longest = {
        dest: max(len(list(run)) for d, run in itertools.groupby(sequence) if d == dest)
        for dest in ("ext:8001", "ext:8002")
    }
    assert longest["ext:8001"] <= 4
    assert longest["ext:8002"] == 1
    # Any ten calls in a row share out close to 7:3.
    assert all(2 <= sequence[i : i + 10].count("ext:8002") <= 4 for i in range(291))


def test_split_destination_is_rung_like_any_other() -> None:
    decision = call(split_plan((("group:support", 50), ("tel:13900000000", 50))), sequence=1)

    assert decision.action == "ring"
    assert decision.route == "route 1"
    assert decision.trace[-2] == f"route 1 matches → {decision.target}"


# --- destinations -----------------------------------------------------------------


def test_menu_destination_hands_the_call_to_the_menu() -> None:
    decision = call(make_plan(hotline(routes=(RoutePlan(to="menu:main"),), record=True)))

    assert (decision.action, decision.target, decision.route) == ("menu", "menu:main", "route 1")
    assert decision.record is True
    assert decision.ring == ()


def test_voicemail_destination_goes_to_voicemail() -> None:
    decision = call(make_plan(hotline(routes=(RoutePlan(to="voicemail"),))))

    assert (decision.action, decision.target) == ("voicemail", "voicemail")


def test_single_extension_destination_rings_it_for_50_seconds() -> None:
    decision = call(make_plan(hotline(routes=(RoutePlan(to="ext:8003"),))))

    assert rung(decision) == [("ext", "8003", 50)]


def test_group_that_does_not_exist_has_nothing_to_ring_480() -> None:
    decision = call(make_plan(hotline(routes=(RoutePlan(to="group:nobody"),))))

    assert_rejected(decision, 480)
    assert "group:nobody has nothing to ring" in decision.trace


def test_hotline_destination_follows_another_hotline_of_the_same_tenant() -> None:
    first = hotline(HOTLINE, routes=(RoutePlan(to=f"hotline:{SECOND}"),))
    second = hotline(SECOND, routes=(RoutePlan(to="group:support"),))

    decision = call(make_plan(first, second))

    assert decision.action == "ring"
    assert decision.hotline == HOTLINE  # the number the caller dialled
    assert decision.target == "group:support"
    assert f"follow hotline:{SECOND}" in decision.trace


def test_followed_hotline_applies_its_own_screening() -> None:
    first = hotline(HOTLINE, routes=(RoutePlan(to=f"hotline:{SECOND}"),))
    second = hotline(SECOND, blacklist=(BEIJING_MOBILE,))

    assert_rejected(call(make_plan(first, second)), 603)


def test_hotline_destination_of_another_tenant_is_not_followed() -> None:
    first = hotline(HOTLINE, routes=(RoutePlan(to=f"hotline:{SECOND}"),))
    foreign = hotline(SECOND, tenant="globex")

    decision = call(make_plan(first, foreign))

    assert_rejected(decision, 480)
    assert f"hotline:{SECOND} cannot be followed" in decision.trace


def test_hotlines_forwarding_to_each_other_stop_after_a_bounded_number_of_hops() -> None:
    first = hotline(HOTLINE, routes=(RoutePlan(to=f"hotline:{SECOND}"),))
    second = hotline(SECOND, routes=(RoutePlan(to=f"hotline:{HOTLINE}"),))

    decision = call(make_plan(first, second))

    assert_rejected(decision, 480)
    assert sum(line.startswith("follow hotline:") for line in decision.trace) == MAX_HOTLINE_HOPS


# --- ring strategies and fallbacks ------------------------------------------------


@pytest.mark.parametrize(
    ("sequence", "order"),
    [
        (0, ["8001", "8002", "8003"]),
        (1, ["8002", "8003", "8001"]),
        (2, ["8003", "8001", "8002"]),
        (3, ["8001", "8002", "8003"]),
        (1000, ["8002", "8003", "8001"]),
    ],
)
def test_round_robin_starts_with_the_next_member_on_each_call(
    sequence: int, order: list[str]
) -> None:
    decision = call(make_plan(hotline(routes=(RoutePlan(to="group:support"),))), sequence=sequence)

    assert decision.strategy == "round_robin"
    assert rung(decision) == [("ext", n, 15) for n in order]


def test_sticky_group_rings_the_callers_last_agent_first() -> None:
    plan = make_plan(hotline(routes=(RoutePlan(to="group:vip"),)))

    yesterday = FRIDAY_17_SHANGHAI.timestamp() - 86400
    decision = call(plan, sticky_agent="ext:8003", sticky_at=yesterday)

    assert decision.strategy == "sticky"
    assert rung(decision) == [("ext", "8003", 30), ("ext", "8001", 30), ("ext", "8002", 30)]


def test_sticky_memory_older_than_the_groups_sticky_days_is_forgotten() -> None:
    plan = make_plan(hotline(routes=(RoutePlan(to="group:vip"),)))
    long_ago = FRIDAY_17_SHANGHAI.timestamp() - 31 * 86400

    decision = call(plan, sticky_agent="ext:8003", sticky_at=long_ago)

    assert [n for _, n, _ in rung(decision)] == ["8001", "8002", "8003"]


def test_round_robin_rings_whoever_answered_fewest_calls_today_first() -> None:
    plan = make_plan(hotline(routes=(RoutePlan(to="group:support"),)))
    counts = {"ext:8001": 7, "ext:8002": 2}

    decision = call(plan, answered_today=counts, sequence=0)

    assert [n for _, n, _ in rung(decision)] == ["8003", "8002", "8001"]
    # Equal counts take turns with the hotline's call sequence.
    firsts = {rung(call(plan, answered_today={}, sequence=i))[0][1] for i in range(3)}
    assert firsts == {"8001", "8002", "8003"}


def test_sticky_group_keeps_its_order_when_the_sticky_agent_is_not_a_member() -> None:
    plan = make_plan(hotline(routes=(RoutePlan(to="group:vip"),)))

    assert [n for _, n, _ in rung(call(plan, sticky_agent="ext:9001"))] == ["8001", "8002", "8003"]
    assert [n for _, n, _ in rung(call(plan))] == ["8001", "8002", "8003"]


def test_busy_and_no_answer_fallbacks_expand_to_targets() -> None:
    plan = make_plan(
        hotline(
            fallback_busy=("ext:8003", "tel:13900000000"),
            fallback_no_answer=("group:support", "ext:8003"),
        )
    )

    decision = call(plan, sequence=0)

    assert decision.busy == (
        Target("ext", "8003", 20, "ext:8003"),
        Target("tel", "13900000000", 20, "tel:13900000000"),
    )
    assert decision.no_answer == (
        Target("ext", "8001", 15, "group:support"),
        Target("ext", "8002", 15, "group:support"),
        Target("ext", "8003", 15, "group:support"),
        Target("ext", "8003", 20, "ext:8003"),
    )


def test_voicemail_ends_a_fallback_chain() -> None:
    plan = make_plan(hotline(fallback_busy=("ext:8003", "voicemail", "ext:8002")))

    decision = call(plan)

    assert decision.busy == (
        Target("ext", "8003", 20, "ext:8003"),
        Target("voicemail", "", 0, "voicemail"),
    )


# --- the trace ----------------------------------------------------------------------


def test_trace_tells_an_operator_why_the_call_went_where_it_did() -> None:
    plan = make_plan(hotline(routes=OFFICE_THEN_VOICEMAIL))

    decision = call(plan, caller="+8613800138000", now=shanghai(SATURDAY, "10:00"))

    assert decision.trace == (
        f"hotline {HOTLINE} of tenant acme, caller 13800138000",
        "route 1 skipped: Sat 10:00 is outside schedule office",
        "route 2 matches → voicemail",
    )


def test_trace_of_a_rung_call_names_targets_and_timeouts() -> None:
    decision = call(make_plan())

    assert decision.trace[-1] == (
        "ring sequential: ext:8001/25s, ext:8002/25s, tel:13900000000/25s"
    )


def test_trace_of_a_region_skip_names_the_callers_region() -> None:
    routes = (
        RoutePlan(when=Condition(regions=("0571",)), to="group:zhejiang"),
        RoutePlan(to="voicemail"),
    )

    decision = call(make_plan(hotline(routes=routes)), caller=URUMQI_FIXED)

    assert (
        "route 1 skipped: caller region 新疆维吾尔自治区/乌鲁木齐市/0991 is not in 0571"
        in decision.trace
    )


# --- anonymous callers, area codes, day/night switch, holiday overrides -----------


@pytest.mark.parametrize("caller", ["", "anonymous", "Anonymous", "unknown"])
def test_withheld_number_is_refused_with_433_only_where_the_hotline_says_so(caller: str) -> None:
    refusing = make_plan(hotline(anonymous="reject"))
    assert_rejected(call(refusing, caller=caller), 433)
    assert call(make_plan(hotline()), caller=caller).action == "ring"


def test_area_code_entry_blocks_every_fixed_line_of_that_city_and_nothing_else() -> None:
    plan = make_plan(hotline(blacklist=("0571",)))
    assert_rejected(call(plan, caller="057188888888"), 603)
    assert_rejected(call(plan, caller="+8657188888888"), 603)
    assert call(plan, caller="057288888888").action == "ring"
    assert call(plan, caller="13957100000").action == "ring"  # no suffix or infix rules


@pytest.mark.parametrize(("override", "target"), [("day", "group:sales"), ("night", "voicemail")])
def test_day_night_switch_overrides_every_schedule(override: str, target: str) -> None:
    plan = make_plan(hotline(routes=OFFICE_THEN_VOICEMAIL, schedule_override=override))
    for moment in (shanghai(FRIDAY, "10:00"), shanghai(SATURDAY, "23:00")):
        decision = call(plan, now=moment)
        assert decision.target == target
    if override == "night":
        assert "route 1 skipped: the hotline is switched to night mode" in call(plan).trace


def test_operator_overrides_close_a_working_day_and_reopen_a_holiday() -> None:
    routes = (
        RoutePlan(when=Condition(schedule="office_cn"), to="group:sales"),
        RoutePlan(to="voicemail"),
    )
    plain = make_plan(hotline(routes=routes))
    overridden = msgspec.structs.replace(
        plain, holiday_overrides={FRIDAY.isoformat(): "closed", NATIONAL_DAY.isoformat(): "open"}
    )
    assert call(plain, now=shanghai(FRIDAY, "10:00")).target == "group:sales"
    assert call(overridden, now=shanghai(FRIDAY, "10:00")).target == "voicemail"
    assert call(plain, now=shanghai(NATIONAL_DAY, "10:00")).target == "voicemail"
    assert call(overridden, now=shanghai(NATIONAL_DAY, "10:00")).target == "group:sales"


# --- toll fraud -------------------------------------------------------------------


@pytest.mark.parametrize(
    "number", ["0085212345678", "+14155550100", "16801234", "1795113912345678"]
)
def test_numbers_abroad_and_premium_numbers_are_never_rung_unless_allowed(number: str) -> None:
    routes = (RoutePlan(to=f"tel:{number}"),)
    plan = make_plan(hotline(routes=routes))
    decision = call(plan)
    assert_rejected(decision, 480)
    assert any("refused" in line for line in decision.trace)

    allowed = msgspec.structs.replace(
        plan,
        tenants={
            slug: msgspec.structs.replace(t, international=True, premium=True)
            for slug, t in plan.tenants.items()
        },
    )
    assert call(allowed).action == "ring"


def test_a_mobile_through_the_trunk_is_an_ordinary_destination() -> None:
    plan = make_plan(hotline(routes=(RoutePlan(to="tel:13912345678"),)))
    assert rung(call(plan)) == [("tel", "13912345678", 50)]


def test_a_full_recordings_volume_pauses_recording_but_not_calls() -> None:
    plan = make_plan(hotline(record=True))
    assert call(plan).record
    paused = msgspec.structs.replace(plan, recording_paused=True)
    decision = call(paused)
    assert (decision.action, decision.record) == ("ring", False)
