"""The routing rules applied by real Kamailio: who rings, in what order, and
when; fallback chains and their cap; screening; sticky memory across a
restart; a plan published during a call."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import Appliance, appliance

PASSWORD = "ext-{}-secret"

SITE = (
    """
[[trunks]]
name = "carrier"
host = "{trunk}"
dids = ["4001000001", "4001000002", "4001000003", "4001000004", "4001000005", "4001000006"]

[[tenants]]
slug = "acme"
name = "Acme"
"""
    + "".join(
        f"""
[[tenants.extensions]]
number = "{n}"
password = "ext-{n}-secret"
agent_id = "8{n[1:]}"
"""
        for n in ("1001", "1002", "1003", "1004", "1005", "1006")
    )
    + """
[[tenants.groups]]
name = "all"
strategy = "ring_all"
ring_timeout = 10
members = ["ext:1001", "ext:1002"]

[[tenants.groups]]
name = "even"
strategy = "round_robin"
ring_timeout = 10
members = ["ext:1001", "ext:1002"]

[[tenants.groups]]
name = "memory"
strategy = "sticky"
ring_timeout = 10
members = ["ext:1001", "ext:1002"]

[[tenants.hotlines]]
number = "4001000001"
name = "ring all"
  [[tenants.hotlines.routes]]
  to = "group:all"

[[tenants.hotlines]]
number = "4001000002"
name = "even"
  [[tenants.hotlines.routes]]
  to = "group:even"

[[tenants.hotlines]]
number = "4001000003"
name = "sticky"
  [[tenants.hotlines.routes]]
  to = "group:memory"

[[tenants.hotlines]]
number = "4001000004"
name = "chains"
blocked_regions = ["新疆维吾尔自治区"]
  [[tenants.hotlines.routes]]
  to = "ext:1001"
  [tenants.hotlines.fallback]
  busy = ["ext:1002", "ext:1003", "ext:1004", "ext:1005"]
  no_answer = ["ext:1006"]

[[tenants.hotlines]]
number = "4001000005"
name = "vip"
whitelist = ["139*"]
anonymous = "reject"
  [[tenants.hotlines.routes]]
  to = "ext:1001"

[[tenants.hotlines]]
number = "4001000006"
name = "after hours"
schedule_override = "night"
  [[tenants.hotlines.routes]]
  when = { schedule = "!office" }
  to = "ext:1002"
  [[tenants.hotlines.routes]]
  to = "ext:1001"

[[tenants.schedules]]
name = "office"
weekly = ["mon-sun 00:00-24:00"]
"""
)


@pytest.fixture
def linebox(tmp_path: Path) -> Iterator[Appliance]:
    with appliance(tmp_path, SITE) as app:
        yield app


def test_ring_all_rings_every_member_at_once_and_cancels_the_rest(linebox: Appliance) -> None:
    silent = linebox.agent("1001", PASSWORD.format("1001"), scenario="agent_no_answer.xml")
    answers = linebox.agent("1002", PASSWORD.format("1002"))
    result = linebox.call("4001000001")
    assert result.result == "RESULT 200", result.output
    record = linebox.record(result.call_id)
    assert (record["answered_by"], record["agent_id"]) == ("1002", "8002")
    [rang_silent], [rang_answer] = silent.invites(), answers.invites()
    assert abs(rang_silent - rang_answer) < 0.5
    assert [kind for kind, _ in silent.events()] == ["INVITE", "CANCEL"]


def test_round_robin_rings_who_answered_fewest_calls_today_first(linebox: Appliance) -> None:
    first = linebox.agent("1001", PASSWORD.format("1001"), calls=2)
    second = linebox.agent("1002", PASSWORD.format("1002"), calls=2)
    answered = []
    for _ in range(2):
        result = linebox.call("4001000002")
        assert result.result == "RESULT 200", result.output
        answered.append(linebox.record(result.call_id)["answered_by"])
    assert answered == ["1001", "1002"]
    assert len(first.invites()) == len(second.invites()) == 1


def test_sticky_caller_reaches_the_same_agent_after_a_kamailio_restart(
    linebox: Appliance,
) -> None:
    busy = linebox.agent("1001", PASSWORD.format("1001"), scenario="agent_busy.xml")
    second = linebox.agent("1002", PASSWORD.format("1002"), calls=2)
    result = linebox.call("4001000003", caller="13912345678")
    assert linebox.record(result.call_id)["answered_by"] == "1002"
    stored = wait_for_sticky(linebox, "acme:13912345678")
    assert stored.startswith("ext:1002@")

    linebox.restart_kamailio()
    for agent in (busy, second):  # phones re-register after the restart
        assert (
            linebox.register(
                agent.extension, PASSWORD.format(agent.extension), contact_port=agent.port
            ).result
            == "RESULT 200"
        )
    result = linebox.call("4001000003", caller="+8613912345678")
    assert result.result == "RESULT 200", result.output
    assert linebox.record(result.call_id)["answered_by"] == "1002"
    assert len(busy.invites()) == 1  # rung for the first call only
    assert len(second.invites()) == 2


def wait_for_sticky(app: Appliance, key: str, timeout: float = 10) -> str:
    db = app.settings.paths.data_dir / "linebox.sqlite"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(db, timeout=10) as conn:
            row = conn.execute(
                "SELECT key_value FROM sticky_memory WHERE key_name = ?", (key,)
            ).fetchone()
        if row:
            return str(row[0])
        time.sleep(0.1)
    raise AssertionError(f"no sticky memory for {key}")


def test_busy_chain_is_capped_at_three_forwards(linebox: Appliance) -> None:
    agents = [
        linebox.agent(n, PASSWORD.format(n), scenario="agent_busy.xml")
        for n in ("1001", "1002", "1003", "1004", "1005")
    ]
    result = linebox.call("4001000004")
    assert result.result == "RESULT 486"
    rung = [len(a.invites()) for a in agents]
    assert rung == [1, 1, 1, 1, 0]  # the route's 1001, then 3 forwards; never 1005
    assert linebox.record(result.call_id)["status"] == "busy"


def test_no_answer_goes_to_the_no_answer_chain(linebox: Appliance) -> None:
    silent = linebox.agent("1001", PASSWORD.format("1001"), scenario="agent_no_answer.xml")
    linebox.agent("1006", PASSWORD.format("1006"))
    result = linebox.call("4001000004")
    assert result.result == "RESULT 200", result.output
    assert linebox.record(result.call_id)["answered_by"] == "1006"
    assert [kind for kind, _ in silent.events()] == ["INVITE", "CANCEL"]


def test_caller_from_a_blocked_region_hears_busy(linebox: Appliance) -> None:
    linebox.agent("1001", PASSWORD.format("1001"))
    result = linebox.call("4001000004", caller="09911234567")  # Urumqi, Xinjiang
    assert result.result == "RESULT 486"
    record = linebox.record(result.call_id)
    assert (record["status"], record["caller_region"]) == ("busy", "新疆维吾尔自治区 乌鲁木齐市")


@pytest.mark.parametrize(
    ("caller", "expected"),
    [("13912345678", "RESULT 200"), ("13812345678", "RESULT 603"), ("anonymous", "RESULT 433")],
)
def test_whitelist_only_hotline_and_withheld_numbers(
    linebox: Appliance, caller: str, expected: str
) -> None:
    linebox.agent("1001", PASSWORD.format("1001"))
    assert linebox.call("4001000005", caller=caller).result == expected


def test_night_switch_sends_calls_to_the_after_hours_route(linebox: Appliance) -> None:
    linebox.agent("1002", PASSWORD.format("1002"))
    result = linebox.call("4001000006")
    assert linebox.record(result.call_id)["answered_by"] == "1002"


def test_a_plan_published_during_a_call_does_not_drop_it(linebox: Appliance) -> None:
    linebox.agent("1001", PASSWORD.format("1001"))
    caller = linebox.call_async("4001000005", caller="13912345678")
    time.sleep(1.5)  # answered and talking
    changed = SITE.replace('name = "vip"', 'name = "vip line"')
    assert "~ hotline 4001000005: name" in linebox.apply(changed).stdout
    assert caller.wait(30) == 0
    [started] = linebox.records()
    record = linebox.record(str(started["call_id"]))
    assert (record["status"], record["talk_seconds"]) == ("answered", 3)
