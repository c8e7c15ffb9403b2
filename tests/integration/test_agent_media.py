"""Media around the agent: the agent-ID announcement (工号播报) on answer,
and the satisfaction survey (满意度调查) when the agent hangs up first.

What each side received is read from the RTP payloads captured on the
loopback: the agent's phone (sipp) sends the G.711 A-law audio of sipp's
`g711a.pcap`, byte for byte, so any payload from that file reaching the
caller is the agent's voice, and anything else is linebox's."""

from __future__ import annotations

import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.media import stock
from appliance.routing.ivr import wav_seconds
from tests.integration.harness import Appliance, SippResult, appliance, free_port_block
from tests.integration.test_ivr import call_keying

pytestmark = pytest.mark.integration

SITE = """
[[trunks]]
name = "carrier"
host = "{trunk}"
dids = ["4001234567", "4001000002", "4001000003"]

[[tenants]]
slug = "acme"
name = "Acme"

[[tenants.extensions]]
number = "1001"
password = "ext-1001-secret"
agent_id = "8001"

[[tenants.groups]]
name = "sales"
members = ["ext:1001"]
announce_agent_id = true

[[tenants.groups]]
name = "quiet"
members = ["ext:1001"]

[[tenants.groups]]
name = "asks"
members = ["ext:1001"]
survey = true

[[tenants.hotlines]]
number = "4001000003"
  [[tenants.hotlines.routes]]
  to = "group:asks"

[[tenants.hotlines]]
number = "4001234567"
  [[tenants.hotlines.routes]]
  to = "group:sales"

[[tenants.hotlines]]
number = "4001000002"
  [[tenants.hotlines.routes]]
  to = "group:quiet"
"""

AGENT_AUDIO = Path("/usr/share/sip-tester/g711a.pcap")
ALAW_SILENCE = frozenset({0xD5, 0x55})


def rtp_payloads(pcap: Path) -> list[tuple[float, bytes]]:
    """(time, RTP payload) of each audio packet (not RFC 4733) in a capture
    of Ethernet frames (tcpdump on `lo`, or sipp's own captures)."""
    data = pcap.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
    found, offset = [], 24
    while offset + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack(endian + "IIII", data[offset : offset + 16])
        frame = data[offset + 16 : offset + 16 + caplen]
        offset += 16 + caplen
        if len(frame) < 14 + 20 + 8 + 12 or frame[12:14] != b"\x08\x00":
            continue
        ihl = (frame[14] & 0x0F) * 4
        udp = frame[14 + ihl :]
        rtp = udp[8:]
        if len(rtp) < 12 or rtp[0] >> 6 != 2:
            continue
        if rtp[1] & 0x7F != 8:  # PCMA audio only
            continue
        header = 12 + 4 * (rtp[0] & 0x0F)
        found.append((sec + frac / (1e9 if nano else 1e6), bytes(rtp[header:])))
    return found


def agent_voice() -> set[bytes]:
    """The payloads of the agent's audio that are not silence."""
    return {p for _, p in rtp_payloads(AGENT_AUDIO) if set(p) - ALAW_SILENCE}


def capture(app: Appliance, port: int, name: str) -> tuple[subprocess.Popen[bytes], Path]:
    pcap = app.root / f"{name}-{port}.pcap"
    proc = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-n", "-U", "-w", str(pcap), "udp", "and", "dst", "port",
         str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(0.5)
    return proc, pcap


@pytest.fixture
def linebox(tmp_path: Path) -> Iterator[Appliance]:
    with appliance(tmp_path, SITE) as app:
        yield app


def test_the_caller_hears_the_agent_id_and_the_agent_hears_silence_meanwhile(
    linebox: Appliance,
) -> None:
    agent_media = free_port_block(4)
    caller_media = free_port_block(4)
    agent = linebox.agent("1001", "ext-1001-secret", media_port=agent_media)
    to_caller, caller_pcap = capture(linebox, caller_media, "caller")
    to_agent, agent_pcap = capture(linebox, agent_media, "agent")
    try:
        # The caller stays 9 s: the announcement, then the agent.
        result = call_keying(linebox, "4001234567", "", caller_media, talk_ms=9000)
    finally:
        for proc in (to_caller, to_agent):
            proc.terminate()
            proc.wait(5)
    assert result.result == "RESULT 200", result.output
    assert linebox.record(result.call_id)["agent_id"] == "8001"

    announcement = stock.agent_id_announcement("8001", root=linebox.settings.paths.data_dir
                                               / "prompts" / "_stock")  # fmt: skip
    seconds = wav_seconds(str(announcement))
    assert seconds > 1.5
    voice = agent_voice()
    heard = rtp_payloads(caller_pcap)
    assert heard, "the caller received no audio"
    (_, _invited), *_ = agent.events()
    answered = heard[0][0]
    during = [p for t, p in heard if answered < t < answered + seconds - 0.5]
    after = [p for t, p in heard if t > answered + seconds + 0.5]
    # The announcement, not the agent's voice, while it plays…
    assert len(during) >= 25 * (seconds - 0.5), len(during)
    assert not voice.intersection(during)
    assert sum(1 for p in during if set(p) - ALAW_SILENCE) > len(during) / 2
    # …then the agent, byte for byte.
    assert voice.intersection(after), "the caller never heard the agent"

    # The caller's sipp sends the same g711a.pcap: none of it reached the
    # agent while the announcement played, all of it after.
    sent = rtp_payloads(agent_pcap)
    early = [p for t, p in sent if answered < t < answered + seconds - 0.5]
    assert not voice.intersection(early), "the agent heard the caller during the announcement"
    reached = [round(t - answered, 2) for t, p in sent if p in voice]
    assert [t for t in reached if t > seconds + 0.5], (seconds, reached[:3], reached[-3:])


def test_a_group_without_announcement_connects_at_once(linebox: Appliance) -> None:
    caller_media = free_port_block(4)
    linebox.agent("1001", "ext-1001-secret")
    to_caller, caller_pcap = capture(linebox, caller_media, "caller")
    try:
        result = linebox.call("4001000002", media_port=caller_media)
    finally:
        to_caller.terminate()
        to_caller.wait(5)
    assert result.result == "RESULT 200", result.output
    voice = agent_voice()
    heard = rtp_payloads(caller_pcap)
    first_second = [p for t, p in heard if t < heard[0][0] + 1]
    assert voice.intersection(first_second)


SURVEYED_CALLER = """<?xml version="1.0" encoding="UTF-8" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<!-- generated by tests/integration/test_agent_media.py: a caller who talks,
     hears the agent hang up, and {what} -->
<scenario name="surveyed caller">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:13800138000@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:13800138000@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=caller 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8 101
      a=rtpmap:8 PCMA/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15

    ]]>
  </send>
  <recv response="100" optional="true" />
  <recv response="180" optional="true" />
  <recv response="183" optional="true" />
  <recv response="200" rrs="true" />
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:13800138000@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      [routes]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <nop><action><exec play_pcap_audio="/usr/share/sip-tester/g711a.pcap" /></action></nop>
  <pause milliseconds="5500" />
{ending}
</scenario>
"""

SCORES_2 = """  <nop><action>
    <exec play_pcap_audio="/usr/share/sip-tester/dtmf_2833_2.pcap" />
  </action></nop>
  <recv request="BYE">
    <action><log message="RESULT BYE" /></action>
  </recv>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
"""

HANGS_UP = """  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:13800138000@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      [routes]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200">
    <action><log message="RESULT 200" /></action>
  </recv>
"""


def surveyed_call(app: Appliance, number: str, ending: str, what: str) -> tuple[str, str]:
    scenario = app.root / f"surveyed-{what.split()[0]}.xml"
    scenario.write_text(SURVEYED_CALLER.format(ending=ending, what=what), "utf-8")
    result = app._run_sipp(
        str(scenario), app.trunk_port, "-s", number, "-mi", "127.0.0.1",
        "-mp", str(free_port_block(4)), timeout=40,
    )  # fmt: skip
    return result.result, result.call_id


def test_survey_after_the_agent_hangs_up_stores_the_score_and_ends_the_call(
    linebox: Appliance,
) -> None:
    linebox.agent("1001", "ext-1001-secret", scenario="agent_hangs_up.xml")
    result, call_id = surveyed_call(linebox, "4001000003", SCORES_2, "scores 2")
    assert result == "RESULT BYE"  # linebox hung up on the caller after the thanks
    deadline = time.monotonic() + 10
    while linebox.record(call_id)["survey_score"] is None:
        assert time.monotonic() < deadline, linebox.record(call_id)
        time.sleep(0.2)
    record = linebox.record(call_id)
    assert (record["status"], record["answered_by"], record["survey_score"]) == (
        "answered",
        "1001",
        2,
    )
    assert "callee" in str(record["cause"])
    assert call_id not in linebox.ng().list_calls()


def test_a_caller_who_hangs_up_during_the_survey_leaves_no_score(linebox: Appliance) -> None:
    linebox.agent("1001", "ext-1001-secret", scenario="agent_hangs_up.xml")
    result, call_id = surveyed_call(linebox, "4001000003", HANGS_UP, "hangs up")
    assert result == "RESULT 200"
    time.sleep(1)
    record = linebox.record(call_id)
    assert (record["status"], record["survey_score"]) == ("answered", None)
    assert call_id not in linebox.ng().list_calls()


WAITS_FOR_BYE = """  <recv request="BYE">
    <action><log message="RESULT BYE" /></action>
  </recv>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
"""


def test_a_message_is_cut_at_its_maximum_length(tmp_path: Path) -> None:
    site = (
        SITE.replace('dids = ["4001234567"', 'dids = ["4001000009", "4001234567"')
        + """
[[tenants.hotlines]]
number = "4001000009"
  [[tenants.hotlines.routes]]
  to = "voicemail"
"""
    )
    overrides = {"LINEBOX_MEDIA_VOICEMAIL_MAX_SECONDS": "3"}
    with appliance(tmp_path, site, overrides=overrides) as app:
        scenario = SURVEYED_CALLER.replace('  <pause milliseconds="5500" />\n', "")
        path = app.root / "long-message.xml"
        path.write_text(scenario.format(ending=WAITS_FOR_BYE, what="talks on"), "utf-8")
        started = time.monotonic()
        result = app._run_sipp(
            str(path), app.trunk_port, "-s", "4001000009", "-mi", "127.0.0.1",
            "-mp", str(free_port_block(4)), timeout=40,
        )  # fmt: skip
        assert result.result == "RESULT BYE", result.output
        assert time.monotonic() - started < 15
        record = app.record(result.call_id)
        assert record["status"] == "voicemail"
        assert 2 <= int(str(record["talk_seconds"])) <= 6, record
        assert result.call_id not in app.ng().list_calls()


QUEUE_SITE = """
[[trunks]]
name = "carrier"
host = "{trunk}"
dids = ["4001000004", "4001000005"]

[[tenants]]
slug = "acme"
name = "Acme"

[[tenants.extensions]]
number = "1003"
password = "ext-1003-secret"

[[tenants.groups]]
name = "service"
members = ["ext:1003"]
ring_timeout = 10
queue = { max_wait = 20 }

[[tenants.groups]]
name = "short"
members = ["ext:1003"]
ring_timeout = 10
queue = { max_wait = 4 }

[[tenants.hotlines]]
number = "4001000004"
  [[tenants.hotlines.routes]]
  to = "group:service"

[[tenants.hotlines]]
number = "4001000005"
  [[tenants.hotlines.routes]]
  to = "group:short"
  [tenants.hotlines.fallback]
  busy = ["voicemail"]
"""


def test_a_caller_waits_in_the_queue_until_the_agent_is_free(tmp_path: Path) -> None:
    with appliance(tmp_path, QUEUE_SITE) as app:
        busy = app.agent("1003", "ext-1003-secret", scenario="agent_busy.xml")
        outcome: list[SippResult] = []
        caller = threading.Thread(
            target=lambda: outcome.append(call_keying(app, "4001000004", "", talk_ms=1000))
        )
        started = time.monotonic()
        caller.start()
        deadline = time.monotonic() + 10
        while not busy.events():
            assert time.monotonic() < deadline, "the agent was never rung"
            time.sleep(0.1)
        # The agent was busy: the caller waits with music. Two seconds later
        # the agent is free (a phone that answers registers for 1003).
        time.sleep(2)
        free = app.agent("1003", "ext-1003-secret")
        caller.join(40)
        assert outcome and outcome[0].result == "RESULT 200", outcome
        (_, rung_again), *_ = free.events()
        assert rung_again - busy.events()[0][1] >= 2
        record = app.record(outcome[0].call_id)
        assert (record["status"], record["answered_by"]) == ("answered", "1003")
        assert time.monotonic() - started < 30


def test_the_queue_gives_up_after_max_wait_to_the_busy_fallback(tmp_path: Path) -> None:
    with appliance(tmp_path, QUEUE_SITE) as app:
        app.agent("1003", "ext-1003-secret", scenario="agent_busy.xml", calls=5)
        started = time.monotonic()
        result = call_keying(app, "4001000005", "", talk_ms=1000)
        waited = time.monotonic() - started
        assert result.result == "RESULT 200", result.output
        assert app.record(result.call_id)["status"] == "voicemail"
        assert 4 <= waited < 15, waited
