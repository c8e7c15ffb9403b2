"""SRTP where the phone offers it: an extension's phone that insists on SRTP
(baresip's `mediaenc=srtp-mand`, SDES keys in `a=crypto`) calls the hotline,
which sends the call out through the carrier's trunk. rtpengine ends the
SRTP on the phone's leg: the phone gets RTP/SAVP with rtpengine's own key,
the trunk plain RTP/AVP with no key, and the audio crosses both ways."""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import Appliance
from tests.integration.test_softphone import received, received_pcma, tone_share
from tests.integration.test_transcoding import (
    PHONE_HZ,
    TRUNK_HZ,
    extension_phone,
    heard,
    linebox,  # noqa: F401 (the fixture)
    out_port,  # noqa: F401 (the fixture)
    tone,
    trunk_phone,
)

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def sip_capture(app: Appliance, *ports: int) -> Iterator[Path]:
    """A capture of the SIP that reaches the given UDP ports."""
    pcap = app.root / f"sip-{'-'.join(map(str, ports))}.pcap"
    wanted = " or ".join(f"dst port {port}" for port in ports)
    tcpdump = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-n", "-U", "-s", "0", "-w", str(pcap), f"udp and ({wanted})"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    try:
        yield pcap
    finally:
        tcpdump.terminate()
        tcpdump.wait(5)


def audio_lines(pcap: Path) -> list[tuple[str, bool]]:
    """Each SDP's audio transport in the captured SIP, in order, and whether
    the SDP carried an `a=crypto` key."""
    found = []
    for sdp in pcap.read_bytes().split(b"\r\n\r\nv=0")[1:]:
        text = sdp.decode(errors="replace")
        protocol = re.search(r"m=audio \d+ (\S+)", text)
        assert protocol, text
        found.append((protocol.group(1), "a=crypto:" in text.split("v=0")[0]))
    return found


def packets(pcap: Path) -> int:
    """How many packets a (microsecond, classic) capture holds."""
    data, count, pos = pcap.read_bytes(), 0, 24
    while pos + 16 <= len(data):
        pos += 16 + int.from_bytes(data[pos + 8 : pos + 12], "little")
        count += 1
    return count


def test_srtp_phone_calls_out_through_a_plain_rtp_trunk(
    linebox: Appliance,  # noqa: F811
    out_port: int,  # noqa: F811
) -> None:
    phone_says, trunk_says = linebox.root / "phone.wav", linebox.root / "trunk.wav"
    tone(phone_says, PHONE_HZ, 60)
    tone(trunk_says, TRUNK_HZ, 60)
    with contextlib.ExitStack() as stack:
        trunk = stack.enter_context(trunk_phone(linebox, out_port, trunk_says))
        phone = stack.enter_context(
            extension_phone(
                linebox,
                "1001",
                "ext-1001-secret",
                phone_says,
                "PCMA",
                ("g711", "srtp"),
                account_params=";mediaenc=srtp-mand",
            )
        )
        sip = stack.enter_context(sip_capture(linebox, phone.sip_port, out_port))
        to_phone = stack.enter_context(received(linebox, phone))
        to_trunk = stack.enter_context(received(linebox, trunk))
        phone.command("dial", f"sip:4001234567@{linebox.sip}")
        call_id = phone.wait_event("CALL_ESTABLISHED", timeout=15)["id"]
        trunk.wait_event("CALL_ESTABLISHED", timeout=5)
        time.sleep(4)
        phone.command("hangup")
        phone.wait_event("CALL_CLOSED", timeout=10)
        trunk.wait_event("CALL_CLOSED", timeout=10)

    assert linebox.record(call_id)["status"] == "answered"
    # The offer to the trunk: plain RTP, no key; the answer to the phone:
    # SRTP with a key (rtpengine's, not the trunk's: the trunk sent none).
    assert audio_lines(sip) == [("RTP/AVP", False), ("RTP/SAVP", True)], audio_lines(sip)
    # Media flowed both ways: the trunk got the phone's tone as plain PCMA,
    # the phone decrypted and decoded the trunk's.
    second = 8000
    trunk_heard = received_pcma(to_trunk, linebox.root / "trunk-heard.wav")
    assert len(trunk_heard) >= 3 * second, len(trunk_heard) / second
    window = trunk_heard[-second - second // 2 : -second // 2]
    assert tone_share(window, PHONE_HZ) > 0.8, tone_share(window, PHONE_HZ)
    # What reached the phone was encrypted: its payloads are no tone as PCMA,
    # and the phone, having decrypted them, heard the trunk.
    assert packets(to_phone) >= 150, packets(to_phone)
    raw = received_pcma(to_phone, linebox.root / "phone-raw.wav")
    assert tone_share(raw[-second - second // 2 : -second // 2], TRUNK_HZ) < 0.05
    phone_heard, rate = heard(phone)
    assert len(phone_heard) >= 3 * rate, len(phone_heard) / rate
    window = phone_heard[-rate - rate // 2 : -rate // 2]
    assert tone_share(window, TRUNK_HZ, rate) > 0.8, tone_share(window, TRUNK_HZ, rate)
    assert call_id not in linebox.ng().list_calls()
