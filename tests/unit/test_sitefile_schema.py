"""Checking a site file (appliance.sitefile.schema): every kind of mistake is
reported with its key path and the line it is on, all of them at once."""

from __future__ import annotations

import copy
import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.errors import SiteFileError
from appliance.sitefile.locate import Locator, render
from appliance.sitefile.schema import format_money, parse_money, parse_site

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = (ROOT / "examples" / "site.toml").read_text(encoding="utf-8")
DEMO = (ROOT / "examples" / "demo-site.toml").read_text(encoding="utf-8")

SECOND_TENANT = """
[[tenants]]
slug = "beta"
name = "Beta"

[[tenants.extensions]]
number = "2001"
password = "ext-2001-secret"

[[tenants.groups]]
name = "sales"
members = ["ext:2001"]

[[tenants.hotlines]]
number = "4008000000"
  [[tenants.hotlines.routes]]
  to = "group:sales"
"""


def problems(text: str) -> list[str]:
    with pytest.raises(SiteFileError) as info:
        parse_site(text)
    return info.value.problems


def line_of(text: str, fragment: str) -> int:
    """The line of the first occurrence of `fragment` (1-based)."""
    at = text.index(fragment)
    return text.count("\n", 0, at) + 1


def mutate(old: str, new: str, text: str = EXAMPLE) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def test_the_example_site_file_is_accepted_as_written() -> None:
    site = parse_site(EXAMPLE)
    acme = site.tenants[0]
    assert [e.number for e in acme.extensions] == ["1001", "1002", "1003"]
    assert acme.hotlines[0].routes[2].split == {"menu:main": 70, "group:sales": 30}
    assert acme.menus[0].keys == {"1": "group:sales", "2": "group:service", "9": "voicemail"}


def test_the_demo_site_file_is_accepted() -> None:
    site = parse_site(DEMO)
    assert site.trunks[0].host == "127.0.0.1:5090"
    assert [h.number for h in site.tenants[0].hotlines] == ["4001234567", "4006668888"]


# (what to change, into what, the expected "path: message" start, the text on the expected line)
BAD = [
    pytest.param('name = "sales"', 'name = "sales', "invalid TOML", 'name = "sales', id="syntax"),
    pytest.param(
        "ring_timeout = 20",
        "ringtimeout = 20",
        "tenants[0].groups[1].ringtimeout: unknown key 'ringtimeout' "
        "(did you mean 'ring_timeout'?)",
        "ringtimeout",
        id="unknown-key",
    ),
    pytest.param(
        "[tenants.notify]",
        "[tenants.notifications]",
        "tenants[0].notifications: unknown key",
        "[tenants.notifications]",
        id="unknown-table",
    ),
    pytest.param(
        "ring_timeout = 15",
        'ring_timeout = "15"',
        "tenants[0].groups[0].ring_timeout: expected an integer, got a string",
        'ring_timeout = "15"',
        id="wrong-type",
    ),
    pytest.param(
        'number = "1003"',
        "number = 1003",
        "tenants[0].extensions[2].number: expected a string, got an integer (1003) "
        '(write it in quotes: "1003")',
        "number = 1003",
        id="number-not-quoted",
    ),
    pytest.param(
        'password = "ext-1003-secret"\n',
        "",
        "tenants[0].extensions[2].password: missing required key 'password'",
        '[[tenants.extensions]]\nnumber = "1003"',
        id="missing-key",
    ),
    pytest.param(
        'number = "1002"',
        'number = "1001"',
        "tenants[0].extensions[1].number: extension '1001' is already defined",
        'number = "1001"\nname = "韩梅梅',
        id="duplicate-extension",
    ),
    pytest.param(
        'name = "service"',
        'name = "sales"',
        "tenants[0].groups[1].name: group 'sales' is already defined at tenants[0].groups[0]",
        'name = "sales"\nstrategy = "round_robin"',
        id="duplicate-group",
    ),
    pytest.param(
        'name = "hold-music"',
        'name = "welcome"',
        "tenants[0].prompts[2].name: prompt 'welcome' is already defined",
        'name = "welcome"\nfile',
        id="duplicate-prompt",
    ),
    pytest.param(
        'number = "4006668888"',
        'number = "40066688"',
        "tenants[0].hotlines[1].number: '40066688': 400 and 800 numbers have 10 digits",
        'number = "40066688"',
        id="short-400-number",
    ),
    pytest.param(
        'number = "4006668888"',
        'number = "40a6668888"',
        "tenants[0].hotlines[1].number: '40a6668888' is not a hotline number",
        'number = "40a6668888"',
        id="hotline-not-digits",
    ),
    pytest.param(
        'number = "1001"',
        'number = "1"',
        "tenants[0].extensions[0].number: '1' is not an extension number: 2 to 8 digits",
        'number = "1"',
        id="extension-too-short",
    ),
    pytest.param(
        '"ext:1002", "tel:13912345678"]',
        '"ext:1002", "ext:1009"]',
        "tenants[0].groups[0].members[2]: 'ext:1009' is not an extension of tenant 'acme'",
        '"ext:1009"',
        id="unknown-extension",
    ),
    pytest.param(
        'members = ["ext:1003", "ext:1002"]',
        'members = ["ext:1003", "ext 1002"]',
        "tenants[0].groups[1].members[1]: 'ext 1002' is not a destination",
        '"ext 1002"',
        id="destination-syntax",
    ),
    pytest.param(
        'members = ["ext:1003", "ext:1002"]',
        'members = ["ext:1003", "group:sales"]',
        "tenants[0].groups[1].members[1]: 'group:sales': only ext:, tel:, hotline: "
        "can be used here",
        '"group:sales"]',
        id="group-in-group",
    ),
    pytest.param(
        'on_timeout = "group:service"',
        'on_timeout = "group:servise"',
        "tenants[0].menus[0].on_timeout: 'group:servise' is not a group of tenant 'acme'",
        "on_timeout",
        id="unknown-group",
    ),
    pytest.param(
        '"menu:main" = 70',
        '"menu:mian" = 70',
        "tenants[0].hotlines[0].routes[2].split.\"menu:mian\": 'menu:mian' is not a "
        "menu of tenant 'acme'",
        '"menu:mian"',
        id="unknown-menu",
    ),
    pytest.param(
        'to = "group:sales"\n',
        'to = "hotline:4009999999"\n',
        "tenants[0].hotlines[1].routes[0].to: 'hotline:4009999999' is not a hotline "
        "of tenant 'acme'",
        "hotline:4009999999",
        id="unknown-hotline",
    ),
    pytest.param(
        '"9" = "voicemail"',
        '"9" = "voicemail:1001"',
        "tenants[0].menus[0].keys.\"9\": 'voicemail:1001' is not a destination",
        '"9" = "voicemail:1001"',
        id="voicemail-with-argument",
    ),
    pytest.param(
        'busy = ["tel:13912345678"]',
        'busy = ["tel:139-1234"]',
        "tenants[0].hotlines[0].fallback.busy[0]: 'tel:139-1234': a tel: number is",
        "tel:139-1234",
        id="tel-syntax",
    ),
    pytest.param(
        '"group:sales" = 30',
        '"group:sales" = 20',
        "tenants[0].hotlines[0].routes[2].split: the percentages add up to 90, not 100",
        '"group:sales" = 20',
        id="split-sum",
    ),
    pytest.param(
        '{ "menu:main" = 70, "group:sales" = 30 }',
        '{ "menu:main" = 100, "group:sales" = 0 }',
        'tenants[0].hotlines[0].routes[2].split."group:sales": 0 is not a percentage',
        '"group:sales" = 0',
        id="split-zero",
    ),
    pytest.param(
        '"group:sales" = 30',
        '"group:sales" = 30.0',
        'tenants[0].hotlines[0].routes[2].split."group:sales": expected an integer, got a float',
        '"group:sales" = 30.0',
        id="split-float",
    ),
    pytest.param(
        'to = "group:sales"\n',
        'to = "group:sales"\n  split = { "group:sales" = 100 }\n',
        "tenants[0].hotlines[1].routes[0]: give exactly one of 'to' and 'split'",
        '[[tenants.hotlines.routes]]\n  to = "group:sales"\n  split',
        id="route-to-and-split",
    ),
    pytest.param(
        '"mon-fri 08:30-17:30"',
        '"mon-fry 08:30-17:30"',
        "tenants[0].schedules[0].weekly[0]: 'mon-fry 08:30-17:30': unknown weekday",
        "mon-fry",
        id="weekly-weekday",
    ),
    pytest.param(
        '"sat 08:30-12:00"',
        '"sat 08:30-25:00"',
        "tenants[0].schedules[0].weekly[1]: 'sat 08:30-25:00': 25:00 is not a time",
        "25:00",
        id="weekly-time",
    ),
    pytest.param(
        'schedule = "!office"',
        'schedule = "!offce"',
        "tenants[0].hotlines[0].routes[0].when.schedule: '!offce': 'offce' is not a "
        "schedule of tenant 'acme'",
        "!offce",
        id="unknown-schedule",
    ),
    pytest.param(
        'when = { schedule = "!office" }',
        'when = { schedule = "!office", days = 1 }',
        "tenants[0].hotlines[0].routes[0].when.days: unknown key 'days'",
        "days = 1",
        id="when-unknown-key",
    ),
    pytest.param(
        '"福建省", "海南省"]',
        '"福建省", " "]',
        "tenants[0].hotlines[0].routes[1].when.regions[3]: a region must not be empty",
        '" "]',
        id="empty-region",
    ),
    pytest.param(
        'blocked_regions = ["新疆维吾尔自治区"]',
        'blocked_regions = [""]',
        "tenants[0].hotlines[0].blocked_regions[0]: a region must not be empty",
        'blocked_regions = [""]',
        id="empty-blocked-region",
    ),
    pytest.param(
        'balance = "500.00"',
        'balance = "500.001"',
        "tenants[0].billing.balance: '500.001' is not an amount of yuan",
        '"500.001"',
        id="money-three-decimals",
    ),
    pytest.param(
        'low_balance = "35.00"',
        'low_balance = "-35.00"',
        "tenants[0].billing.low_balance: '-35.00' is not an amount of yuan",
        '"-35.00"',
        id="money-negative",
    ),
    pytest.param(
        'monthly_cost_cap = "3000.00"',
        "monthly_cost_cap = 3000.0",
        "tenants[0].hotlines[0].monthly_cost_cap: expected a string, got a float "
        '(3000.0) (write it in quotes: "3000.00")',
        "3000.0",
        id="money-float",
    ),
    pytest.param(
        'tel = "0.30"',
        'tel = "0,30"',
        "tenants[0].billing.rates_per_minute.tel: '0,30' is not an amount of yuan",
        '"0,30"',
        id="money-comma",
    ),
    pytest.param(
        'strategy = "round_robin"',
        'strategy = "roundrobin"',
        "tenants[0].groups[1].strategy: 'roundrobin' is not a strategy: sequential | "
        "random | round_robin | ring_all | sticky",
        '"roundrobin"',
        id="strategy",
    ),
    pytest.param(
        "ring_timeout = 15",
        "ring_timeout = 3",
        "tenants[0].groups[0].ring_timeout: 3 is out of range: 5 to 300",
        "ring_timeout = 3",
        id="ring-timeout-low",
    ),
    pytest.param(
        "ring_timeout = 20",
        "ring_timeout = 301",
        "tenants[0].groups[1].ring_timeout: 301 is out of range: 5 to 300",
        "ring_timeout = 301",
        id="ring-timeout-high",
    ),
    pytest.param(
        '"9" = "voicemail"',
        '"99" = "voicemail"',
        "tenants[0].menus[0].keys.\"99\": '99' is not a key: one of 0-9, * or #",
        '"99"',
        id="menu-key",
    ),
    pytest.param(
        '"9" = "voicemail" }',
        '"9" = "voicemail", "0" = "voicemail", "3" = "voicemail", "4" = "voicemail", '
        '"5" = "voicemail", "6" = "voicemail", "7" = "voicemail", "8" = "voicemail", '
        '"*" = "voicemail" }',
        "tenants[0].menus[0].keys: 11 keys: a menu has at most 10",
        "keys = {",
        id="menu-too-many-keys",
    ),
    pytest.param(
        "timeout = 5",
        "timeout = 0",
        "tenants[0].menus[0].timeout: 0 is out of range: 1 to 60",
        "timeout = 0",
        id="menu-timeout",
    ),
    pytest.param(
        "retries = 2",
        "retries = 50",
        "tenants[0].menus[0].retries: 50 is out of range: 0 to 10",
        "retries = 50",
        id="menu-retries",
    ),
    pytest.param(
        'prompt = "menu-main"',
        'prompt = "menu-mian"',
        "tenants[0].menus[0].prompt: 'menu-mian' is not a prompt of tenant 'acme'",
        'prompt = "menu-mian"',
        id="unknown-prompt",
    ),
    pytest.param(
        'pin = "2468"',
        'pin = "24"',
        "tenants[0].hotlines[1].pin: '24' is not a PIN: 4 to 8 digits",
        'pin = "24"',
        id="pin",
    ),
    pytest.param(
        '"0571*"]',
        '"*0571"]',
        "tenants[0].hotlines[0].blacklist[1]: '*0571' is not a number or a prefix",
        '"*0571"',
        id="blacklist-suffix",
    ),
    pytest.param(
        'whitelist = ["139*", "138*"]',
        'whitelist = ["139*", "13x*"]',
        "tenants[0].hotlines[1].whitelist[1]: '13x*' is not a number or a prefix",
        '"13x*"',
        id="whitelist-letters",
    ),
    pytest.param(
        'file = "prompts/hold-music.wav"',
        'file = "prompts/hold-music.wav"\ntext = "music"',
        "tenants[0].prompts[2]: give exactly one of 'text' and 'file'",
        '[[tenants.prompts]]\nname = "hold-music"',
        id="prompt-text-and-file",
    ),
    pytest.param(
        'role = "owner"',
        'role = "admin"',
        "tenants[0].users[0].role: 'admin' is not a role: owner | operator | agent",
        'role = "admin"',
        id="role",
    ),
    pytest.param(
        'timezone = "Asia/Shanghai"',
        'timezone = "Asia/Shanghia"',
        "appliance.timezone: 'Asia/Shanghia' is not a time zone",
        "Asia/Shanghia",
        id="timezone",
    ),
    pytest.param(
        'holidays = "cn"            #',
        'holidays = "us"            #',
        "appliance.holidays: 'us' is not a holiday calendar",
        'holidays = "us"',
        id="appliance-holidays",
    ),
    pytest.param(
        'holidays = "cn"\n\n[[tenants.menus]]',
        'holidays = "hk"\n\n[[tenants.menus]]',
        "tenants[0].schedules[0].holidays: 'hk' is not a holiday calendar",
        'holidays = "hk"',
        id="schedule-holidays",
    ),
    pytest.param(
        'host = "127.0.0.1:5090"',
        'host = "127.0.0.1:65536"',
        "trunks[0].host: '127.0.0.1:65536': the port must be a number from 1 to 65535",
        "65536",
        id="trunk-port",
    ),
    pytest.param(
        'host = "127.0.0.1:5090"',
        'host = "sip carrier"',
        "trunks[0].host: 'sip carrier' is not a host",
        "sip carrier",
        id="trunk-host",
    ),
    pytest.param(
        'dids = ["4001234567", "4006668888"]',
        'dids = ["4001234567", "4006668889"]',
        "trunks[0].dids[1]: '4006668889' is not a hotline in this file",
        "4006668889",
        id="did-not-a-hotline",
    ),
    pytest.param(
        'queue = { max_wait = 120, music = "hold-music" }',
        'queue = { max_wait = 120, music = "hold-muzak" }',
        "tenants[0].groups[1].queue.music: 'hold-muzak' is not a prompt of tenant 'acme'",
        "hold-muzak",
        id="queue-music",
    ),
    pytest.param(
        'holidays = "cn"            # Chinese',
        'holidays = "cn"\nholiday_overrides = { "2026-13-01" = "closed" }  # Chinese',
        "appliance.holiday_overrides.\"2026-13-01\": '2026-13-01' is not a date",
        "holiday_overrides",
        id="holiday-override-date",
    ),
    pytest.param(
        "record = true",
        'record = true\nschedule_override = "evening"',
        "tenants[0].hotlines[0].schedule_override: 'evening' must be",
        "schedule_override",
        id="schedule-override",
    ),
    pytest.param(
        "record = true",
        'record = true\nanonymous = "maybe"',
        'tenants[0].hotlines[0].anonymous: \'maybe\' must be "allow" or "reject"',
        "anonymous",
        id="anonymous",
    ),
    pytest.param(
        'strategy = "sticky"',
        'strategy = "sticky"\nsticky_days = 0',
        "tenants[0].groups[0].sticky_days: 0 is out of range: 1 to 365",
        "sticky_days",
        id="sticky-days",
    ),
    pytest.param(
        'busy = ["tel:13912345678"]',
        'busy = ["tel:0085212345678"]',
        "tenants[0].hotlines[0].fallback.busy[0]: 'tel:0085212345678' is a number abroad",
        'busy = ["tel:0085212345678"]',
        id="tel-abroad",
    ),
    pytest.param(
        'busy = ["tel:13912345678"]',
        'busy = ["tel:16801234"]',
        "tenants[0].hotlines[0].fallback.busy[0]: 'tel:16801234' is a premium or special number",
        'busy = ["tel:16801234"]',
        id="tel-premium",
    ),
]


@pytest.mark.parametrize(("old", "new", "expected", "on_line"), BAD)
def test_a_mistake_is_reported_with_its_key_path_and_line(
    old: str, new: str, expected: str, on_line: str
) -> None:
    bad = mutate(old, new)
    line = line_of(bad, on_line)
    found = problems(bad)
    assert any(p.startswith(f"line {line}: {expected}") for p in found), found


def test_tel_destinations_need_a_trunk() -> None:
    start, end = EXAMPLE.index("[[trunks]]"), EXAMPLE.index("[[tenants]]")
    bad = EXAMPLE[:start] + EXAMPLE[end:]
    found = problems(bad)
    members = line_of(bad, '"tel:13912345678"]')
    busy = line_of(bad, 'busy = ["tel:13912345678"]')
    assert (
        f"line {members}: tenants[0].groups[0].members[2]: 'tel:13912345678' needs a trunk "
        "to call out: add a [[trunks]] table" in found
    )
    assert any(
        p.startswith(f"line {busy}: tenants[0].hotlines[0].fallback.busy[0]:") for p in found
    )
    assert len(found) == 2


def test_references_stay_within_their_tenant() -> None:
    text = EXAMPLE + SECOND_TENANT.replace('members = ["ext:2001"]', 'members = ["ext:1001"]')
    found = problems(text)
    line = line_of(text, 'members = ["ext:1001"]')
    assert found == [
        f"line {line}: tenants[1].groups[0].members[0]: 'ext:1001' is not an extension of "
        "tenant 'beta'"
    ]


def test_names_are_per_tenant_but_numbers_are_appliance_wide() -> None:
    parse_site(EXAMPLE + SECOND_TENANT)  # a second group "sales" is fine
    text = EXAMPLE + SECOND_TENANT.replace('"2001"', '"1001"').replace(
        '"ext:2001"', '"ext:1001"'
    ).replace("4008000000", "4001234567")
    found = problems(text)
    ext_line = line_of(text, 'number = "1001"\npassword = "ext-2001-secret"')
    hot_line = text.rindex('number = "4001234567"')
    hot_line = text.count("\n", 0, hot_line) + 1
    assert (
        f"line {ext_line}: tenants[1].extensions[0].number: extension '1001' is already "
        "defined of tenant 'acme'" in found
    )
    assert (
        f"line {hot_line}: tenants[1].hotlines[0].number: hotline '4001234567' is already "
        "defined of tenant 'acme'" in found
    )


@pytest.mark.parametrize("number", ["100", "8000", "80012", "95555", "01012345678", "4001234567"])
def test_internal_and_short_hotline_numbers_are_accepted(number: str) -> None:
    text = mutate('number = "4006668888"', f'number = "{number}"').replace(
        '"4006668888"]', f'"{number}"]'
    )
    if number == "4001234567":
        assert any("already defined" in p for p in problems(text))
    else:
        parse_site(text)


def test_all_problems_are_reported_together_in_line_order() -> None:
    bad = EXAMPLE
    for old, new in [
        ('balance = "500.00"', 'balance = "500.5.0"'),
        ('"ext:1002", "tel:13912345678"]', '"ext:1002", "ext:1009"]'),
        ("ring_timeout = 20", "ringtimeout = 20"),
        ('"group:sales" = 30', '"group:sales" = 20'),
        ('pin = "2468"', 'pin = "x"'),
    ]:
        bad = mutate(old, new, bad)
    found = problems(bad)
    assert len(found) == 5, found
    lines = [int(re.match(r"line (\d+):", p)[1]) for p in found]
    assert lines == sorted(lines)
    assert lines == [
        line_of(bad, s)
        for s in ['"500.5.0"', '"ext:1009"', "ringtimeout", '"group:sales" = 20', 'pin = "x"']
    ]


def test_a_broken_extension_number_does_not_make_its_references_unknown() -> None:
    found = problems(mutate('number = "1003"', "number = 1003"))
    assert len(found) == 1, found


def test_the_error_text_lists_every_problem() -> None:
    bad = mutate("ring_timeout = 15", "ring_timeout = 1")
    bad = mutate('pin = "2468"', 'pin = "1"', bad)
    with pytest.raises(SiteFileError) as info:
        parse_site(bad, "site.toml")
    assert str(info.value).startswith("site.toml: 2 problems:")
    assert info.value.details == {"problems": info.value.problems}


def test_users_need_exactly_one_of_password_and_password_hash() -> None:
    bad = mutate('password = "correct horse battery staple"\n', "")
    line = line_of(bad, "[[tenants.users]]")
    assert problems(bad) == [
        f"line {line}: tenants[0].users[0]: give exactly one of 'password' and 'password_hash'"
    ]
    bad = mutate('password = "correct horse battery staple"', 'password_hash = "md5:abc"')
    assert any("not an argon2 hash" in p for p in problems(bad))


def test_operators_are_top_level_users() -> None:
    text = EXAMPLE.replace(
        "[[tenants]]",
        '[[users]]\nlogin = "ops"\npassword = "operator-secret"\nrole = "operator"\n\n[[tenants]]',
        1,
    )
    assert parse_site(text).users[0].login == "ops"
    found = problems(text.replace('role = "operator"', 'role = "root"', 1))
    assert any("users[0].role: 'root' is not a role: owner | operator | agent" in p for p in found)


def test_an_empty_file_is_an_empty_appliance() -> None:
    site = parse_site("")
    assert site.tenants == [] and site.trunks == []


# --- money ----------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=10**12))
def test_money_round_trips_through_its_yuan_string(fen: int) -> None:
    assert parse_money(format_money(fen)) == fen


@given(st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False))
def test_money_strings_are_exact_fen(amount: Decimal) -> None:
    for text in {f"{amount:.2f}", f"{amount:.2f}".rstrip("0").rstrip(".") or "0"}:
        assert parse_money(text) == int(amount * 100)


@pytest.mark.parametrize(
    "text", ["", "1.", ".5", "1.234", "-1", "+1", "1e3", "１", " 1", "1,00", "NaN", "1\n"]
)
def test_money_refuses_anything_but_plain_yuan(text: str) -> None:
    with pytest.raises(ValueError):
        parse_money(text)


# --- locating keys ----------------------------------------------------------------


def test_locator_finds_keys_tables_and_array_items() -> None:
    loc = Locator(EXAMPLE)
    assert loc.line(("tenants", 0, "billing")) == line_of(EXAMPLE, "[tenants.billing]")
    assert loc.line(("tenants", 0, "hotlines", 1)) == line_of(EXAMPLE, 'number = "4006668888"') - 1
    assert loc.line(("trunks", 0, "dids", 1)) == line_of(EXAMPLE, "dids = ")
    multiline = 'a = [\n  "x",\n  "y",\n]\n'
    assert Locator(multiline).line(("a", 1)) == 3
    # A key that isn't there points at the table that should hold it.
    assert loc.line(("tenants", 0, "groups", 1, "nope")) == line_of(EXAMPLE, 'name = "service"') - 1


def test_render_quotes_keys_that_are_not_bare() -> None:
    assert render(("tenants", 0, "menus", 0, "keys", "1")) == 'tenants[0].menus[0].keys."1"'
    assert render(("split", "menu:main")) == 'split."menu:main"'


# --- robustness -------------------------------------------------------------------

_EXAMPLE_DATA = tomllib.loads(EXAMPLE)


def _leaf_paths(node: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _leaf_paths(v, (*path, k))] + [path]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _leaf_paths(v, (*path, i))] + [path]
    return [path]


_LEAVES = [p for p in _leaf_paths(_EXAMPLE_DATA) if p]
_VALUES = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(
        [
            "ext:1001",
            "tel:+8613800138000",
            "group:sales",
            "voicemail",
            "!office",
            "0571*",
            "4001234567",
            "500.00",
            "",
            "mon-fri 08:30-17:30",
        ]
    ),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(0, 100), max_size=3),
)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(_LEAVES), _VALUES)
def test_any_value_anywhere_is_accepted_or_reported_with_a_line(
    path: tuple[str | int, ...], value: Any
) -> None:
    data = copy.deepcopy(_EXAMPLE_DATA)
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    text = tomlkit.dumps(data)
    try:
        parse_site(text)
    except SiteFileError as exc:
        total = text.count("\n") + 1
        for problem in exc.problems:
            m = re.match(r"line (\d+): ", problem)
            assert m and 1 <= int(m[1]) <= total, problem


def test_a_tenant_may_allow_calls_abroad() -> None:
    allowed = mutate(
        "missed_call_sms = true",
        "missed_call_sms = true\n\n[tenants.outbound]\ninternational = true",
    ).replace('busy = ["tel:13912345678"]', 'busy = ["tel:0085212345678"]')
    assert "tel:0085212345678" in allowed
    parse_site(allowed)  # no SiteFileError


def test_a_hostile_deeply_nested_file_is_refused_cleanly() -> None:
    found = problems("a = " + "[" * 50_000)
    assert found == ["invalid TOML: arrays or tables nested too deeply"]


def test_a_static_address_for_the_appliance_is_checked() -> None:
    good = EXAMPLE.replace(
        'holidays = "cn"            # Chinese',
        'holidays = "cn"\n[appliance.network]\naddress = "192.0.2.10/24"\ngateway = "192.0.2.1"\n#',
    )
    assert parse_site(good).appliance.network.address == "192.0.2.10/24"  # type: ignore[union-attr]
    bad = good.replace('"192.0.2.10/24"', '"192.0.2.300/24"')
    assert any("appliance.network" in p and "192.0.2.300" in p for p in problems(bad))


TRUNK = 'dids = ["4001234567", "4006668888"]\n'


def test_a_trunk_with_gateways_networks_formats_and_a_did_map_passes() -> None:
    text = mutate(
        TRUNK,
        TRUNK
        + 'gateways = ["192.0.2.1:5060", "192.0.2.2", "[2001:db8::1]:5070"]\n'
        + 'inbound = ["192.0.2.0/28", "198.51.100.7"]\n'
        + 'transport = "tcp"\n'
        + 'did_map = { "02158881234" = "4001234567" }\n'
        + "max_calls = 30\n"
        + 'strip_prefix = "+86"\n'
        + 'add_prefix = "0"\n'
        + 'codecs = ["PCMA", "G722"]\n',
    )
    trunk = parse_site(text).trunks[0]
    assert trunk.gateways == ["192.0.2.1:5060", "192.0.2.2", "[2001:db8::1]:5070"]
    assert trunk.did_map == {"02158881234": "4001234567"}


def test_trunk_mistakes_are_each_reported_on_their_line() -> None:
    text = mutate(
        TRUNK,
        TRUNK
        + 'gateways = ["192.0.2.1:99999"]\n'
        + 'inbound = ["192.0.2.0/33"]\n'
        + 'transport = "sctp"\n'
        + 'did_map = { "02158881234" = "4009999999", "4001234567" = "4006668888" }\n'
        + "max_calls = -1\n"
        + 'add_prefix = "0x"\n'
        + 'codecs = ["G729"]\n',
    )
    found = problems(text)
    assert any("gateways[0]" in p and "port" in p for p in found), found
    assert any("inbound[0]" in p and "192.0.2.0/33" in p for p in found), found
    assert any("transport" in p and "'sctp'" in p for p in found), found
    assert any("'4009999999' is not a hotline" in p for p in found), found
    assert any("'4001234567' is a hotline" in p for p in found), found
    assert any("max_calls" in p for p in found), found
    assert any("add_prefix" in p and "'0x'" in p for p in found), found
    assert any("codecs[0]" in p and "'G729'" in p for p in found), found
    assert len(found) == 8, found


def test_a_hotline_shows_the_caller_or_itself() -> None:
    number = 'number = "4001234567"\n'
    assert parse_site(mutate(number, number + 'caller_id = "hotline"\n')).tenants[0].hotlines
    found = problems(mutate(number, number + 'caller_id = "platform"\n'))
    assert any("caller_id" in p and '"caller" or "hotline"' in p for p in found), found
