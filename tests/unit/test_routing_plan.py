"""The routing plan: publishing it atomically, each process's reload of it,
compiling it from real database rows, and the weekly-range syntax."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import stat
import threading
from pathlib import Path

import msgspec
import pytest

from appliance.routing.compile import (
    ScheduleSyntaxError,
    compile_plan,
    parse_weekly,
    publish_from_db,
)
from appliance.routing.decide import Facts, decide
from appliance.routing.plan import (
    EMPTY,
    Condition,
    ExtensionPlan,
    GroupPlan,
    HotlinePlan,
    Plan,
    PlanFile,
    RoutePlan,
    SchedulePlan,
    ScheduleRange,
    TenantPlan,
    TrunkPlan,
    decode,
    digest_ha1,
    encode,
    publish,
)
from appliance.settings import Settings
from appliance.tables import (
    Extension,
    Group,
    Hotline,
    Prompt,
    Schedule,
    Tenant,
    Trunk,
)


def plan_with(version: str, hotlines: int = 1) -> Plan:
    """A plan of about `hotlines` × 250 bytes, so big plans take several writes."""
    return Plan(
        version=version,
        compiled_at=1.0,
        domain="linebox.local",
        hotlines={
            f"400{n:07d}": HotlinePlan(
                number=f"400{n:07d}",
                tenant="acme",
                blacklist=("0571*", "13300000000"),
                routes=(
                    RoutePlan(when=Condition(schedule="office"), to="group:sales"),
                    RoutePlan(split=(("ext:8001", 70), ("ext:8002", 30))),
                ),
            )
            for n in range(hotlines)
        },
        tenants={
            "acme": TenantPlan(
                slug="acme",
                groups={"sales": GroupPlan(name="sales", members=("ext:8001",))},
                schedules={
                    "office": SchedulePlan(name="office", ranges=(ScheduleRange(0, 510, 1050),))
                },
            )
        },
        extensions={"8001": ExtensionPlan(number="8001", tenant="acme", ha1="a" * 32)},
        trunks=(
            TrunkPlan(name="carrier", gateways=("127.0.0.1:5090",), sources=("127.0.0.1:5090",)),
        ),
    )


# --- the plan file ----------------------------------------------------------------


def test_plan_survives_encoding_unchanged() -> None:
    plan = plan_with("v1", hotlines=3)

    assert decode(encode(plan)) == plan


def test_plan_file_serves_the_empty_plan_before_anything_is_published(tmp_path: Path) -> None:
    plans = PlanFile(tmp_path / "plan" / "plan.json")

    assert plans.current() is EMPTY
    assert plans.current().hotlines == {}
    assert plans.loads == 0


def test_publish_writes_where_the_settings_say(tmp_settings: Settings) -> None:
    path = publish(plan_with("v1"))

    assert path == tmp_settings.paths.plan_file
    assert decode(path.read_bytes()).version == "v1"


def test_published_plan_is_readable_by_linebox_only(tmp_path: Path) -> None:
    # The plan carries digest hashes: 0640 even when the umask would allow more.
    previous = os.umask(0o002)
    try:
        path = publish(plan_with("v1"), tmp_path / "plan.json")
    finally:
        os.umask(previous)

    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_publish_leaves_no_temporary_files_behind(tmp_path: Path) -> None:
    for n in range(5):
        publish(plan_with(f"v{n}"), tmp_path / "plan.json")

    assert sorted(p.name for p in tmp_path.iterdir()) == ["dispatcher.list", "plan.json"]


def test_the_gateways_are_listed_for_kamailios_dispatcher_in_failover_order(
    tmp_path: Path,
) -> None:
    plan = msgspec.structs.replace(
        plan_with("g"),
        trunks=(
            TrunkPlan(name="a", gateways=("10.0.0.1", "10.0.0.2:5070"), setid=1),
            TrunkPlan(name="b", gateways=("carrier.example.cn",), setid=2, transport="tls"),
        ),
    )
    publish(plan, tmp_path / "plan.json")

    assert (tmp_path / "dispatcher.list").read_text().splitlines()[1:] == [
        "1 sip:10.0.0.2:5070 0 0 trunk=a",
        "1 sip:10.0.0.1 0 1 trunk=a",
        "2 sip:carrier.example.cn;transport=tls 0 0 trunk=b",
    ]


def test_publish_is_atomic_for_a_reader_in_another_thread(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    small, large = plan_with("small"), plan_with("large", hotlines=1500)
    assert len(encode(large)) > 250_000  # many pages: a torn write would show
    publish(small, path)
    done = threading.Event()

    def publish_many() -> None:
        try:
            for n in range(40):
                publish(large if n % 2 == 0 else small, path)
        finally:
            done.set()

    writer = threading.Thread(target=publish_many)
    writer.start()
    plans = PlanFile(path)
    seen: set[str] = set()
    reads = 0
    try:
        while not done.is_set() or reads == 0:
            # decode() raises on an empty or truncated file.
            seen.add(decode(path.read_bytes()).version)
            seen.add(plans.current().version)
            reads += 1
    finally:
        writer.join()

    assert seen == {"small", "large"}
    assert decode(path.read_bytes()).version == "small"


def test_plan_file_reloads_after_publish_and_not_otherwise(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    plans = PlanFile(path)
    publish(plan_with("v1"), path)

    first = [plans.current().version for _ in range(5)]
    loads_after_first = plans.loads
    publish(plan_with("v2"), path)
    second = [plans.current().version for _ in range(5)]

    assert first == ["v1"] * 5
    assert loads_after_first == 1
    assert second == ["v2"] * 5
    assert plans.loads == 2


def test_plan_file_picks_up_a_republished_identical_plan(tmp_path: Path) -> None:
    # Same content, same size: the new file's identity still differs.
    path = tmp_path / "plan.json"
    plans = PlanFile(path)
    publish(plan_with("same"), path)
    plans.current()

    publish(plan_with("same"), path)
    plans.current()

    assert plans.loads == 2


def test_plan_file_keeps_its_plan_when_the_file_goes_away(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    plans = PlanFile(path)
    publish(plan_with("v1"), path)
    plans.current()

    path.unlink()

    assert plans.current().version == "v1"
    assert plans.loads == 1


def test_trunk_matches_its_source_port_or_any_port_when_it_names_none() -> None:
    plan = Plan(
        version="t",
        compiled_at=0.0,
        domain="",
        trunks=(
            TrunkPlan(name="fixed", gateways=("10.0.0.1:5090",), sources=("10.0.0.1:5090",)),
            TrunkPlan(name="any", gateways=("10.0.0.2",), sources=("10.0.0.2",)),
            TrunkPlan(
                name="net", gateways=("10.1.0.1",), sources=("192.0.2.0/28", "2001:db8::/64")
            ),
        ),
    )

    assert plan.trunk_for_source("10.0.0.1", 5090).name == "fixed"  # type: ignore[union-attr]
    assert plan.trunk_for_source("10.0.0.1", 5060) is None
    assert plan.trunk_for_source("10.0.0.2", 40000).name == "any"  # type: ignore[union-attr]
    assert plan.trunk_for_source("10.0.0.3", 5060) is None
    assert plan.trunk_for_source("192.0.2.14", 5060).name == "net"  # type: ignore[union-attr]
    assert plan.trunk_for_source("192.0.2.16", 5060) is None
    assert plan.trunk_for_source("2001:db8::7", 5060).name == "net"  # type: ignore[union-attr]
    assert plan.trunk_for_source("not-an-address", 5060) is None


def test_numbers_are_dialled_in_the_carriers_format() -> None:
    trunk = TrunkPlan(
        name="c", gateways=("10.0.0.1",), strip_prefix="+86", add_prefix="0", transport="tcp"
    )

    assert trunk.dial("+8613800138000") == "013800138000"
    assert trunk.dial("13800138000") == "013800138000"
    assert trunk.uri("+8613800138000", "10.0.0.2:5070") == (
        "sip:013800138000@10.0.0.2:5070;transport=tcp"
    )
    assert TrunkPlan(name="u", gateways=("g",)).uri("02158881234", "g") == "sip:02158881234@g"


def test_called_numbers_reach_their_hotline_through_the_did_map_or_national_form() -> None:
    trunk = TrunkPlan(name="c", gateways=("10.0.0.1",), did_map={"02158881234": "4001234567"})
    plan = Plan(
        version="t",
        compiled_at=0.0,
        domain="",
        hotlines={"4001234567": HotlinePlan(number="4001234567", tenant="acme")},
        trunks=(trunk,),
    )

    assert plan.hotline_for("4001234567", trunk) == "4001234567"
    assert plan.hotline_for("02158881234", trunk) == "4001234567"
    assert plan.hotline_for("02158881234", None) == "02158881234"  # only over that trunk
    assert plan.hotline_for("+864001234567", None) == "4001234567"
    assert plan.hotline_for("864001234567", trunk) == "4001234567"
    assert plan.hotline_for("4009999999", trunk) == "4009999999"


def test_digest_ha1_is_md5_of_user_realm_password() -> None:
    assert digest_ha1("8001", "linebox.local", "s3cret") == (
        hashlib.md5(b"8001:linebox.local:s3cret").hexdigest()
    )


# --- compiling from the database --------------------------------------------------


def insert(row: object) -> int:
    return type(row).insert(row).run_sync()[0]["id"]  # type: ignore[attr-defined]


@pytest.fixture
def site(database: object, tmp_path: Path) -> dict[str, int]:
    """One tenant with extensions, a group, a schedule, prompts and a hotline,
    a second tenant in Urumqi, and two trunks, as rows in the database."""
    acme = insert(Tenant(slug="acme", name="Acme", timezone="Asia/Shanghai", position=0))
    west = insert(Tenant(slug="west", name="West", timezone="Asia/Urumqi", position=1))
    insert(
        Extension(tenant=acme, number="8001", name="Li Lei", sip_password="s3cret", agent_id="007")
    )
    insert(Extension(tenant=acme, number="8002", sip_password="hunter2", position=1))
    insert(Trunk(name="carrier", host="127.0.0.1:5090", dids=["4001000001"]))
    insert(Trunk(name="backup", host="carrier.example.cn", dids=["4001000002"], position=1))
    insert(
        Group(
            tenant=acme,
            name="sales",
            strategy="round_robin",
            ring_timeout=25,
            members=["ext:8001", "ext:8002"],
        )
    )
    insert(
        Schedule(
            tenant=acme,
            name="office",
            weekly=["mon-fri 08:30-17:30", "sat 09:00-12:00"],
            holidays="cn",
        )
    )
    greeting = tmp_path / "greeting.wav"
    greeting.write_bytes(b"RIFF")
    insert(Prompt(tenant=acme, name="greeting", file=str(greeting)))
    insert(Prompt(tenant=acme, name="unrecorded", file="", position=1))
    insert(Prompt(tenant=acme, name="lost", file=str(tmp_path / "lost.wav"), position=2))
    insert(
        Hotline(
            tenant=acme,
            number="4001000001",
            name="Sales line",
            record=True,
            blacklist=["0571*"],
            blocked_regions=["新疆维吾尔自治区"],
            routes=[
                {"when": {"schedule": "office"}, "to": "group:sales"},
                {"when": {"schedule": "!office", "regions": ["北京市"]}, "to": "voicemail"},
                {"split": {"ext:8001": 70, "ext:8002": 30}},
            ],
            fallback={"busy": ["voicemail"], "no_answer": ["ext:8002", "voicemail"]},
        )
    )
    insert(Hotline(tenant=west, number="4001000002", enabled=False, position=1))
    return {"acme": acme, "west": west}


def compile_now() -> Plan:
    return asyncio.run(compile_plan())


def test_compiled_extensions_carry_the_digest_ha1(site: dict[str, int]) -> None:
    plan = compile_now()

    assert plan.domain == "linebox.local"
    assert plan.extensions["8001"] == ExtensionPlan(
        number="8001",
        tenant="acme",
        ha1=hashlib.md5(b"8001:linebox.local:s3cret").hexdigest(),
        name="Li Lei",
        agent_id="007",
    )
    assert plan.extensions["8002"].ha1 == hashlib.md5(b"8002:linebox.local:hunter2").hexdigest()


def test_compiled_trunks_take_their_gateways_and_sources_from_host(site: dict[str, int]) -> None:
    carrier, backup = compile_now().trunks

    assert carrier == TrunkPlan(
        name="carrier",
        gateways=("127.0.0.1:5090",),
        sources=("127.0.0.1:5090",),
        setid=1,
        dids=("4001000001",),
    )
    # A gateway named by DNS is no source: the site file names `inbound`.
    assert backup == TrunkPlan(
        name="backup", gateways=("carrier.example.cn",), sources=(), setid=2, dids=("4001000002",)
    )


def test_compiled_schedules_are_parsed_into_weekday_ranges(site: dict[str, int]) -> None:
    office = compile_now().tenants["acme"].schedules["office"]

    assert office.holidays == "cn"
    assert office.ranges == (
        *(ScheduleRange(day, 8 * 60 + 30, 17 * 60 + 30) for day in range(5)),
        ScheduleRange(5, 9 * 60, 12 * 60),
    )


def test_compiled_hotline_keeps_screening_routes_and_fallbacks(site: dict[str, int]) -> None:
    plan = compile_now()
    sales = plan.hotlines["4001000001"]

    assert (sales.tenant, sales.name, sales.record, sales.enabled) == (
        "acme",
        "Sales line",
        True,
        True,
    )
    assert sales.blacklist == ("0571*",)
    assert sales.blocked_regions == ("新疆维吾尔自治区",)
    assert sales.routes == (
        RoutePlan(when=Condition(schedule="office"), to="group:sales"),
        RoutePlan(when=Condition(schedule="!office", regions=("北京市",)), to="voicemail"),
        RoutePlan(split=(("ext:8001", 70), ("ext:8002", 30))),
    )
    assert sales.fallback_busy == ("voicemail",)
    assert sales.fallback_no_answer == ("ext:8002", "voicemail")
    assert plan.tenants["acme"].groups["sales"] == GroupPlan(
        name="sales", strategy="round_robin", ring_timeout=25, members=("ext:8001", "ext:8002")
    )


def test_compiled_hotline_without_a_time_zone_takes_its_tenants(site: dict[str, int]) -> None:
    plan = compile_now()

    assert plan.hotlines["4001000001"].timezone == "Asia/Shanghai"
    assert plan.hotlines["4001000002"].timezone == "Asia/Urumqi"
    assert plan.hotlines["4001000002"].enabled is False


def test_compiled_prompts_name_only_audio_that_exists(site: dict[str, int], tmp_path: Path) -> None:
    prompts = compile_now().tenants["acme"].prompts

    assert prompts == {"greeting": str(tmp_path / "greeting.wav"), "unrecorded": "", "lost": ""}


def test_bad_weekly_range_in_the_database_stops_compilation(site: dict[str, int]) -> None:
    insert(Schedule(tenant=site["acme"], name="broken", weekly=["weekdays 9-5"], position=1))

    with pytest.raises(ScheduleSyntaxError, match="'weekdays 9-5' is not a weekly range"):
        compile_now()


def test_plan_published_from_the_database_routes_a_call(
    site: dict[str, int], tmp_settings: Settings
) -> None:
    plans = PlanFile(tmp_settings.paths.plan_file)

    published = asyncio.run(publish_from_db())
    plan = plans.current()
    friday_10_in_shanghai = dt.datetime(2026, 3, 6, 2, 0, tzinfo=dt.UTC)

    decision = decide(
        plan,
        Facts(called="4001000001", caller="+8613800138000", trunk="carrier", sequence=1),
        friday_10_in_shanghai,
    )

    assert plan == published
    assert decision.action == "ring"
    assert [t.number for t in decision.ring] == ["8002", "8001"]
    assert [t.timeout for t in decision.ring] == [25, 25]
    assert decision.record is True


# --- the weekly-range syntax ------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "ranges"),
    [
        pytest.param(
            "mon-fri 08:30-17:30",
            [(day, 510, 1050) for day in range(5)],
            id="weekdays",
        ),
        pytest.param("sat 09:00-12:00", [(5, 540, 720)], id="one-day"),
        pytest.param(
            "mon,wed,fri 9:00-17:00", [(0, 540, 1020), (2, 540, 1020), (4, 540, 1020)], id="list"
        ),
        pytest.param(
            "fri-mon 10:00-11:00",
            [(4, 600, 660), (5, 600, 660), (6, 600, 660), (0, 600, 660)],
            id="wraps-past-sunday",
        ),
        pytest.param("mon 00:00-24:00", [(0, 0, 1440)], id="whole-day"),
        pytest.param("sun 22:00-06:00", [(6, 1320, 1440), (0, 0, 360)], id="overnight-into-monday"),
        pytest.param("  MON-FRI 08:30-17:30  ", [(d, 510, 1050) for d in range(5)], id="case"),
    ],
)
def test_weekly_ranges_parse_to_one_range_per_weekday(
    entry: str, ranges: list[tuple[int, int, int]]
) -> None:
    assert parse_weekly(entry) == [ScheduleRange(*r) for r in ranges]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        pytest.param(
            "weekdays 9-5", "is not a weekly range like 'mon-fri 08:30-17:30'", id="not-a-range"
        ),
        pytest.param("", "is not a weekly range like", id="empty"),
        pytest.param("mon-fri 08:30", "is not a weekly range like", id="no-end"),
        pytest.param("mon-fri 08:30 - 17:30", "is not a weekly range like", id="spaced-dash"),
        pytest.param("sat,sun, 10:00-16:00", "is not a weekly range like", id="trailing-comma"),
        pytest.param("xyz 09:00-10:00", "unknown weekday in 'xyz' (use mon…sun)", id="unknown-day"),
        pytest.param("mon-fry 09:00-10:00", "unknown weekday in 'mon-fry'", id="typo-day"),
        pytest.param("mon 25:00-26:00", "25:00 is not a time of day", id="hour-25"),
        pytest.param("mon 09:60-10:00", "09:60 is not a time of day", id="minute-60"),
        pytest.param("mon 09:00-24:30", "24:30 is not a time of day", id="past-24"),
        pytest.param("mon 09:00-09:00", "is an empty range", id="empty-range"),
    ],
)
def test_bad_weekly_range_says_what_is_wrong(entry: str, message: str) -> None:
    with pytest.raises(ScheduleSyntaxError) as raised:
        parse_weekly(entry)

    assert repr(entry) in str(raised.value)
    assert message in str(raised.value)
