"""The first call path, end to end through real Kamailio, rtpengine, the
worker and sipp: registration, a hotline call answered with media flowing
through rtpengine, failover on busy and on no answer, refusals, and the one
call record each call leaves."""

from __future__ import annotations

import json
import re
import time
import urllib.request

import httpx

from tests.integration.conftest import PASSWORDS
from tests.integration.harness import Appliance


def rtp_packets_by_leg(app: Appliance, call_id: str, seconds: float = 4.0) -> list[int]:
    """Packets rtpengine received from each leg of the call (polled while the
    call lasts; the highest counts seen)."""
    best: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    ng = app.ng()
    while time.monotonic() < deadline:
        if call_id in ng.list_calls():
            for tag, info in ng.query(call_id).get("tags", {}).items():
                if not info.get("tag"):
                    continue  # the offer's placeholder before the answer names the callee
                packets = sum(
                    stream["stats"]["packets"]
                    for media in info.get("medias", [])
                    for stream in media.get("streams", [])
                    if "RTP" in stream.get("flags", [])
                )
                best[tag] = max(best.get(tag, 0), packets)
        time.sleep(0.2)
    return sorted(best.values())


def test_extension_registers_with_the_right_password(linebox: Appliance) -> None:
    assert linebox.register("1001", PASSWORDS["1001"]).result == "RESULT 200"


def test_wrong_password_and_unknown_user_get_the_same_challenge(linebox: Appliance) -> None:
    wrong = linebox.register("1001", "not-the-password")
    unknown = linebox.register("1999", "not-the-password")
    assert wrong.result == unknown.result == "RESULT 401"
    assert "authentication failed for 1001" in linebox.kamailio_log()


def test_hotline_call_is_answered_by_the_first_agent_with_media_both_ways(
    linebox: Appliance,
) -> None:
    linebox.agent("1001", PASSWORDS["1001"])
    linebox.agent("1002", PASSWORDS["1002"])
    caller = linebox.call_async("4001234567", caller="+8613800138000")
    call_id = None
    deadline = time.monotonic() + 5
    while call_id is None and time.monotonic() < deadline:
        call_id = next((c for c in linebox.ng().list_calls() if c.startswith("lbtest-")), None)
        time.sleep(0.05)
    assert call_id, "the call never reached rtpengine"
    packets = rtp_packets_by_leg(linebox, call_id)
    assert caller.wait(30) == 0
    # Both legs sent ~33 packets/s of the 30 ms G.711 stream for ~3 s.
    assert len(packets) == 2 and min(packets) >= 50, packets

    record = linebox.record(call_id)
    assert record["status"] == "answered"
    assert record["answered_by"] == "1001"
    assert record["agent_id"] == "8001"
    assert record["hotline"] == "4001234567"
    assert record["caller"] == "13800138000"
    assert record["caller_region"] == "北京市 北京市"
    assert record["kind"] == "hotline"
    assert 2 <= record["talk_seconds"] <= 5
    assert record["cause"] == "BYE from caller"
    # The media session is gone once the call is.
    assert call_id not in linebox.ng().list_calls()


def test_extension_calls_the_hotline_with_its_credentials(linebox: Appliance) -> None:
    linebox.agent("1001", PASSWORDS["1001"])
    result = linebox.call_from_extension("4001234567", "1003", PASSWORDS["1003"])
    assert result.result == "RESULT 200", result.output
    record = linebox.record(result.call_id)
    assert (record["kind"], record["caller"], record["answered_by"]) == ("hotline", "1003", "1001")


def test_extension_calls_another_extension_of_its_tenant(linebox: Appliance) -> None:
    linebox.agent("1001", PASSWORDS["1001"])
    result = linebox.call_from_extension("1001", "1003", PASSWORDS["1003"])
    assert result.result == "RESULT 200", result.output
    record = linebox.record(result.call_id)
    assert (record["kind"], record["status"], record["answered_by"]) == (
        "internal",
        "answered",
        "1001",
    )


def test_extension_with_a_wrong_password_cannot_call(linebox: Appliance) -> None:
    linebox.agent("1001", PASSWORDS["1001"])
    result = linebox.call_from_extension("1001", "1003", "not-the-password")
    assert result.result == "RESULT 407"
    assert linebox.records() == []


def test_busy_first_agent_fails_over_to_the_second(linebox: Appliance) -> None:
    linebox.agent("1001", PASSWORDS["1001"], scenario="agent_busy.xml")
    linebox.agent("1002", PASSWORDS["1002"])
    result = linebox.call("4001234567")
    assert result.result == "RESULT 200", result.output
    record = linebox.record(result.call_id)
    assert (record["status"], record["answered_by"]) == ("answered", "1002")


def test_unanswered_first_agent_times_out_and_the_second_answers(linebox: Appliance) -> None:
    silent = linebox.agent("1001", PASSWORDS["1001"], scenario="agent_no_answer.xml")
    linebox.agent("1002", PASSWORDS["1002"])
    started = time.monotonic()
    result = linebox.call("4001234567")
    assert result.result == "RESULT 200", result.output
    # The group's ring timeout is 5 s per destination.
    assert time.monotonic() - started >= 5
    record = linebox.record(result.call_id)
    assert (record["status"], record["answered_by"]) == ("answered", "1002")
    assert record["ring_seconds"] >= 5
    # 1001 rang (180) for the whole ring timeout, then was cancelled.
    (_, invited), (_, cancelled) = silent.events()
    assert 4.8 <= cancelled - invited <= 6


def test_every_agent_busy_gives_the_caller_busy(linebox: Appliance) -> None:
    linebox.agent("1001", PASSWORDS["1001"], scenario="agent_busy.xml")
    linebox.agent("1002", PASSWORDS["1002"], scenario="agent_busy.xml")
    result = linebox.call("4001234567")
    assert result.result == "RESULT 486"
    record = linebox.record(result.call_id)
    assert (record["status"], record["sip_code"]) == ("busy", 486)


def test_no_agent_registered_gives_480_and_a_missed_call(linebox: Appliance) -> None:
    result = linebox.call("4001234567")
    assert result.result == "RESULT 480"
    assert linebox.record(result.call_id)["status"] == "missed"


def test_unknown_number_is_refused_and_never_relayed(linebox: Appliance) -> None:
    linebox.agent("1001", PASSWORDS["1001"])
    for number in ("13912345678", "008613912345678", "1001", "4009999999"):
        result = linebox.call(number)
        assert result.result == "RESULT 404", (number, result.output)
    time.sleep(0.5)
    # Numbers the appliance does not serve belong to no tenant: no record.
    assert linebox.records() == []


def test_unauthenticated_caller_outside_the_trunk_is_challenged(linebox: Appliance) -> None:
    result = linebox.call("4001234567", from_trunk=False)
    assert result.result == "RESULT 407"
    assert linebox.records() == []


def test_blacklisted_caller_is_declined_and_recorded(linebox: Appliance) -> None:
    result = linebox.call("4001234567", caller="13300000000")
    assert result.result == "RESULT 603"
    record = linebox.record(result.call_id)
    assert (record["status"], record["sip_code"]) == ("rejected", 603)


def test_healthz_and_the_call_records_api_see_the_call(linebox_web: Appliance) -> None:
    app = linebox_web
    app.agent("1003", PASSWORDS["1003"])
    result = app.call("4007654321")
    assert result.result == "RESULT 200", result.output
    app.record(result.call_id)
    base = f"http://{app.settings.web.host}:{app.settings.web.port}"

    with urllib.request.urlopen(f"{base}/healthz", timeout=5) as resp:
        health = json.load(resp)
    assert health["status"] == "ok", health
    assert set(health["components"]) >= {"database", "kamailio", "rtpengine", "worker"}

    with httpx.Client(base_url=base, timeout=10, follow_redirects=True) as web:
        assert web.get("/api/v1/calls").status_code == 401  # records need a login
        form = web.get("/login").text
        csrf = re.search(r'name="_csrf" value="([^"]*)"', form)
        assert csrf, form
        login = {
            "login": "owner@acme.example.cn",
            "password": "correct horse battery staple",
            "_csrf": csrf.group(1),
            "next": "/calls",
        }
        page = web.post("/login", data=login).text
        assert "13800138000" in page and "已接听" in page
        calls = web.get("/api/v1/calls", params={"hotline": "4007654321"}).json()
    assert calls["total"] == 1
    assert calls["items"][0]["call_id"] == result.call_id
    assert calls["items"][0]["answered_by"] == "1003"
