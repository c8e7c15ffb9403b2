"""Media around the agent's answer: the agent-ID announcement (工号播报).

What each side received is read from the RTP payloads captured on the
loopback: the agent's phone (sipp) sends the G.711 A-law audio of sipp's
`g711a.pcap`, byte for byte, so any payload from that file reaching the
caller is the agent's voice, and anything else is linebox's."""

from __future__ import annotations

import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.media import stock
from appliance.routing.ivr import wav_seconds
from tests.integration.harness import Appliance, appliance, free_port_block
from tests.integration.test_ivr import call_keying

pytestmark = pytest.mark.integration

SITE = """
[[trunks]]
name = "carrier"
host = "{trunk}"
dids = ["4001234567", "4001000002"]

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
        # The caller talks for 6 s: the announcement, then the agent.
        result = call_keying(linebox, "4001234567", "", caller_media, talk_ms=6000)
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
    assert voice.intersection(p for t, p in sent if t > answered + seconds + 0.5)


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
