"""Media through rtpengine: the enterprise ringback (企业彩铃) the caller hears
while agents ring, re-anchored to the agent on answer with the caller's media
port unchanged."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import Appliance, appliance

SITE = """
[[trunks]]
name = "carrier"
host = "{trunk}"
dids = ["4001234567", "4001000009", "4001000010"]

[[tenants]]
slug = "acme"
name = "Acme"

[[tenants.extensions]]
number = "1001"
password = "ext-1001-secret"

[[tenants.extensions]]
number = "1002"
password = "ext-1002-secret"

[[tenants.prompts]]
name = "welcome"
file = "welcome.wav"

[[tenants.groups]]
name = "sales"
ring_timeout = 5
members = ["ext:1001", "ext:1002"]

[[tenants.hotlines]]
number = "4001234567"
ringback = "welcome"
record = true
  [[tenants.hotlines.routes]]
  to = "group:sales"

[[tenants.hotlines]]
number = "4001000009"
name = "after hours"
  [[tenants.hotlines.routes]]
  to = "voicemail"

[[tenants.hotlines]]
number = "4001000010"
name = "no answer leaves a message"
  [[tenants.hotlines.routes]]
  to = "ext:1001"
  [tenants.hotlines.fallback]
  no_answer = ["voicemail"]
"""


@pytest.fixture
def linebox(tmp_path: Path) -> Iterator[Appliance]:
    # A 3-second 440 Hz tone stands in for the company's welcome message.
    subprocess.run(
        [
            "sox",
            "-n",
            "-r",
            "8000",
            "-c",
            "1",
            "-b",
            "16",
            str(tmp_path / "welcome.wav"),
            "synth",
            "3",
            "sine",
            "440",
            "gain",
            "-6",
        ],
        check=True,
    )
    with appliance(tmp_path, SITE) as app:
        yield app


def capture(app: Appliance, port: int) -> subprocess.Popen[bytes]:
    pcap = app.root / f"caller-{port}.pcap"
    proc = subprocess.Popen(
        [
            "tcpdump",
            "-i",
            "lo",
            "-n",
            "-U",
            "-w",
            str(pcap),
            "udp",
            "and",
            "dst",
            "port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    return proc


def packets(pcap: Path) -> list[tuple[float, int, int]]:
    """(time, source port, payload length) of each UDP packet in a capture."""
    out = subprocess.run(
        ["tcpdump", "-r", str(pcap), "-n", "-tt", "-q"], capture_output=True, text=True
    ).stdout
    found = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) > 4 and parts[1] == "IP":
            source_port = int(parts[2].rsplit(".", 1)[1])
            found.append((float(parts[0]), source_port, int(parts[-1])))
    return found


def test_caller_hears_the_ringback_then_the_agent_on_the_same_port(linebox: Appliance) -> None:
    silent = linebox.agent("1001", "ext-1001-secret", scenario="agent_no_answer.xml")
    linebox.agent("1002", "ext-1002-secret")
    media_port = 47100
    tcpdump = capture(linebox, media_port)
    try:
        result = linebox.call("4001234567", media_port=media_port)
    finally:
        tcpdump.terminate()
        tcpdump.wait(5)
    assert result.result == "RESULT 200", result.output
    record = linebox.record(result.call_id)
    assert record["answered_by"] == "1002"

    got = [p for p in packets(linebox.root / f"caller-{media_port}.pcap") if p[2] > 100]
    (_, _invited), (_, cancelled) = silent.events()
    ringing = [p for p in got if p[0] < cancelled + 0.3]
    talking = [p for p in got if p[0] > cancelled + 1.0]
    # ~50 packets/s of the welcome tone while 1001 rang for 5 s…
    assert len(ringing) >= 150, len(ringing)
    # …then the agent's audio, from the very same rtpengine port.
    assert talking, "no audio after the answer"
    assert {port for _, port, _ in got} == {got[0][1]}
    # record = true: rtpengine recorded the call from the answer on, and the
    # worker turned it into a stereo WAV linked to the record.
    deadline = time.monotonic() + 20
    while not linebox.record(result.call_id).get("recording"):
        assert time.monotonic() < deadline, linebox.record(result.call_id)
        time.sleep(0.3)
    recorded = linebox.record(result.call_id)
    assert not recorded.get("recording_error"), recorded
    assert Path(str(recorded["recording"])).is_file()


def test_voicemail_answers_records_the_caller_and_leaves_a_voicemail_record(
    linebox: Appliance,
) -> None:
    result = linebox.call("4001000009")
    assert result.result == "RESULT 200", result.output
    record = linebox.record(result.call_id)
    assert (record["status"], record["cause"]) == ("voicemail", "message left")
    assert record["talk_seconds"] >= 2
    deadline = time.monotonic() + 20
    while not linebox.record(result.call_id).get("voicemail"):
        assert time.monotonic() < deadline, linebox.record(result.call_id)
        time.sleep(0.3)
    assert Path(str(linebox.record(result.call_id)["voicemail"])).is_file()
    assert result.call_id not in linebox.ng().list_calls()


def test_unanswered_call_falls_back_to_voicemail(linebox: Appliance) -> None:
    silent = linebox.agent("1001", "ext-1001-secret", scenario="agent_no_answer.xml")
    result = linebox.call("4001000010")
    assert result.result == "RESULT 200", result.output
    assert [kind for kind, _ in silent.events()] == ["INVITE", "CANCEL"]
    record = linebox.record(result.call_id)
    assert record["status"] == "voicemail"
    assert record["ring_seconds"] >= 5
