"""pjsua2 (PyPI `pjsua2-python`) phones through linebox, each in its own
process (tests/integration/pjphone.py) with the null audio device.

The carrier's caller is a pjsua2 phone on the trunk's address, the agent a
pjsua2 phone registered as extension 1001 with its digest password. They
talk (each records what it decodes: the other's tone), the agent holds and
resumes by re-INVITE (the caller gets both offers, with rtpengine's address
and ports, sendonly then sendrecv), and a transfer (REFER) is refused 403
while the call goes on. The caller walks a menu with RFC 4733 events or
with SIP INFO (application/dtmf-relay)."""

from __future__ import annotations

import contextlib
import json
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import Appliance, appliance, free_port, free_port_block
from tests.integration.test_softphone import samples, tone, tone_share
from web.domain.extensions import provisioning

pytestmark = pytest.mark.integration

SITE = """
[[trunks]]
name = "carrier"
host = "{trunk}"
dids = ["4001234567", "4007654321", "4001000003"]

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
name = "menu-main"
file = "menu.wav"

[[tenants.menus]]
name = "main"
prompt = "menu-main"
timeout = 3
retries = 0
keys = { "7" = "ext:1001" }

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
  to = "menu:main"

[[tenants.hotlines]]
number = "4007654321"
  [[tenants.hotlines.routes]]
  to = "ext:1001"
"""

MENU_HZ = 600
CALLER_HZ = 1000
AGENT_HZ = 1400
SECOND = 8000


class PjPhone:
    """One pjphone process: `send` a command, `wait` for an event."""

    def __init__(self, home: Path, sip_port: int, speak: Path, *args: str) -> None:
        home.mkdir(parents=True)
        self.home = home
        self.events: list[dict[str, Any]] = []
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.stderr = open(home / "stderr.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.pjphone",
             "--sip-port", str(sip_port), "--rtp-port", str(free_port_block(10)),
             "--speak", str(speak), "--heard-dir", str(home), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            cwd=Path(__file__).parents[2],
        )  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()
        self.wait("ready", timeout=10)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(json.loads(line))
        self._queue.put(None)

    def send(self, cmd: str, **fields: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"cmd": cmd, **fields}) + "\n").encode())
        self.proc.stdin.flush()

    def wait(self, event: str, timeout: float, **match: Any) -> dict[str, Any]:
        """The first `event` (with these fields) seen so far or within
        `timeout`; an error event fails the wait."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for found in self.events[seen:]:
                assert found["event"] != "error", found
                if found["event"] == event and all(found.get(k) == v for k, v in match.items()):
                    return found
            seen = len(self.events)
            left = deadline - time.monotonic()
            try:
                got = self._queue.get(timeout=max(left, 0.01))
            except queue.Empty:
                got = {}
            if got is None:
                raise AssertionError(f"pjphone exited waiting for {event}: {self.log()}")
            if got:
                self.events.append(got)
            elif left <= 0:
                raise AssertionError(f"no {event} {match} in {timeout} s: {self.events}")

    def of(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == event]

    def wait_for(self, event: str, count: int, timeout: float) -> list[dict[str, Any]]:
        """Until `count` events of this kind have come, all of them."""
        deadline = time.monotonic() + timeout
        while len(self.of(event)) < count:
            try:
                got = self._queue.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"{count} {event} not in {timeout} s: {self.events}") from None
            if got is None:
                raise AssertionError(f"pjphone exited waiting for {event}: {self.log()}")
            self.events.append(got)
        return self.of(event)

    def stats(self) -> dict[str, Any]:
        """RTP packets received and sent in the call so far."""
        count = len(self.of("stats")) + 1
        self.send("stats")
        return self.wait_for("stats", count, timeout=5)[-1]

    def heard(self) -> list[Path]:
        return sorted(self.home.glob("heard-*.wav"))

    def log(self) -> str:
        path = self.home / "pjsua2.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.send("quit")
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.stderr.close()


@contextlib.contextmanager
def caller(app: Appliance, speak: Path, *args: str) -> Iterator[PjPhone]:
    """The carrier's caller, on the trunk's address and port."""
    phone = PjPhone(
        app.root / "pj-caller",
        app.trunk_port,
        speak,
        "--id-uri",
        "sip:13800138000@127.0.0.1",
        *args,
    )
    try:
        yield phone
    finally:
        phone.close()


@contextlib.contextmanager
def extension(app: Appliance, number: str, password: str, speak: Path) -> Iterator[PjPhone]:
    """A phone registered as `number` with what the portal tells a person."""
    told = provisioning.phone_settings(app.settings, number, browsed_host="127.0.0.1")
    phone = PjPhone(
        app.root / f"pj-{number}",
        free_port(),
        speak,
        "--id-uri", f"sip:{number}@{told.server}",
        "--registrar", f"sip:{told.server}:{told.port}",
        "--user", number,
        "--password", password,
    )  # fmt: skip
    try:
        phone.wait("reg", timeout=10, code=200)
        yield phone
    finally:
        phone.close()


@pytest.fixture
def linebox(tmp_path: Path) -> Iterator[Appliance]:
    tone(tmp_path / "menu.wav", MENU_HZ, 2.0)
    tone(tmp_path / "caller.wav", CALLER_HZ, 10)
    tone(tmp_path / "agent.wav", AGENT_HZ, 10)
    with appliance(tmp_path, SITE) as app:
        yield app


def media_of(sdp: str) -> tuple[str, int, str]:
    """An offer's connection address, audio port and direction."""
    address = re.search(r"^c=IN IP4 (\S+)", sdp, re.MULTILINE)
    port = re.search(r"^m=audio (\d+)", sdp, re.MULTILINE)
    direction = re.search(r"^a=(sendrecv|sendonly|recvonly|inactive)\s*$", sdp, re.MULTILINE)
    assert address and port, sdp
    return address[1], int(port[1]), direction[1] if direction else "sendrecv"


def assert_hears(path: Path, wanted: int, unwanted: int) -> None:
    heard = samples(path)
    assert len(heard) >= 2 * SECOND, (path, len(heard) / SECOND)
    window = heard[-SECOND - SECOND // 2 : -SECOND // 2]
    assert sum(x * x for x in window) / len(window) > 10_000, f"silence in {path}"
    assert tone_share(window, wanted) > 0.8, (path, wanted, tone_share(window, wanted))
    assert tone_share(window, unwanted) < 0.05


def test_pjsua2_agent_answers_holds_resumes_and_a_transfer_is_refused(
    linebox: Appliance,
) -> None:
    media = range(linebox.settings.media.port_min, linebox.settings.media.port_max + 1)
    with contextlib.ExitStack() as stack:
        agent = stack.enter_context(
            extension(linebox, "1001", "ext-1001-secret", linebox.root / "agent.wav")
        )
        phone = stack.enter_context(caller(linebox, linebox.root / "caller.wav"))
        phone.send("call", uri=f"sip:4007654321@{linebox.sip}")
        agent.wait("incoming", timeout=10)
        agent.send("answer")
        call_id = phone.wait("state", timeout=10, state="CONFIRMED")["call_id"]
        agent.wait("state", timeout=10, state="CONFIRMED")
        time.sleep(3)  # talking
        talked = phone.stats(), agent.stats()

        # Hold and resume: each re-INVITE reaches the caller with an offer
        # that is rtpengine's (its address and ports), not the agent's.
        offers = len(phone.of("offer"))
        agent.send("hold")
        phone.wait_for("offer", offers + 1, timeout=10)
        time.sleep(1)
        agent.send("resume")
        received = phone.wait_for("offer", offers + 2, timeout=10)
        hold_offer, resume_offer = (e["sdp"] for e in received[offers : offers + 2])
        for sdp, direction in ((hold_offer, "sendonly"), (resume_offer, "sendrecv")):
            address, port, got = media_of(sdp)
            assert (address, got) == ("127.0.0.1", direction), sdp
            assert port in media, f"{port} is not rtpengine's ({media}): {sdp}"

        # A blind transfer is refused, the agent's and the caller's alike (the
        # caller's, relayed, would have the agent's phone call a toll number
        # with its own credentials); the call goes on.
        agent.send("xfer", uri=f"sip:1002@{linebox.sip}")
        assert agent.wait("xfer", timeout=10)["code"] == 403
        phone.send("xfer", uri="tel:+8613900139000")
        assert phone.wait("xfer", timeout=10)["code"] == 403
        time.sleep(3)  # talking again after the resume
        after = phone.stats(), agent.stats()
        assert not [
            e for e in phone.of("state") + agent.of("state") if e["state"] == "DISCONNECTED"
        ]
        phone.send("hangup")
        phone.wait("state", timeout=10, state="DISCONNECTED")
        agent.wait("state", timeout=10, state="DISCONNECTED")

    record = linebox.record(call_id)
    assert (record["status"], record["answered_by"]) == ("answered", "1001"), record
    assert [r["call_id"] for r in linebox.records()] == [call_id]
    assert re.search(rf"call {re.escape(call_id)}: REFER to <?sip:1002@", linebox.kamailio_log())
    # RTP both ways (20 ms packets), before the hold and after the resume
    # (pjmedia's counters start again with the stream the re-INVITE makes).
    for stats in (*talked, *after):
        assert stats["rx"] >= 40 * 3 and stats["tx"] >= 40 * 3, stats
    # Each heard the other's tone, after the resume too.
    assert_hears(phone.heard()[-1], AGENT_HZ, CALLER_HZ)
    assert_hears(agent.heard()[-1], CALLER_HZ, AGENT_HZ)
    assert call_id not in linebox.ng().list_calls()


@pytest.mark.parametrize("method", ["rfc2833", "info"])
def test_pjsua2_caller_walks_the_menu(linebox: Appliance, method: str) -> None:
    """The caller hears the menu in early media and keys 7 (ext:1001) as
    RFC 4733 events or as a SIP INFO in the early dialog; without the key
    the menu (no retries) would end the call."""
    with contextlib.ExitStack() as stack:
        agent = stack.enter_context(
            extension(linebox, "1001", "ext-1001-secret", linebox.root / "agent.wav")
        )
        phone = stack.enter_context(caller(linebox, linebox.root / "caller.wav"))
        phone.send("call", uri=f"sip:4001234567@{linebox.sip}")
        call_id = phone.wait("state", timeout=10, state="EARLY")["call_id"]
        phone.wait("media", timeout=10)
        time.sleep(1.5)
        assert not agent.of("incoming"), "the agent rang before any key"
        phone.send("dtmf", digits="7", method=method)
        agent.wait("incoming", timeout=10)
        agent.send("answer")
        phone.wait("state", timeout=10, state="CONFIRMED")
        time.sleep(1)
        if method == "info":
            # Out of the menu, an INFO is the agent's: relayed in dialog.
            phone.send("dtmf", digits="5", method=method)
            agent.wait("dtmf", timeout=5, digit="5")
        agent.send("hangup")
        phone.wait("state", timeout=10, state="DISCONNECTED")

    record = linebox.record(call_id)
    assert (record["status"], record["answered_by"]) == ("answered", "1001"), record
    by_info = f"call {call_id}: key 7 by SIP INFO" in linebox.kamailio_log()
    assert by_info == (method == "info")
    # The early media was the menu's tone.
    early = samples(phone.heard()[0])
    assert tone_share(early[SECOND // 4 : SECOND], MENU_HZ) > 0.8


def send_info(app: Appliance, call_id: str, from_tag: str, kind: str, body: str) -> str:
    """An INFO with a key and no To tag, as a phone may send it before the
    menu's 183 reaches it; the status line of the answer."""
    port = free_port()
    payload = body.encode()
    message = "\r\n".join(
        [
            f"INFO sip:4001234567@{app.sip} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{time.time_ns()};rport",
            "Max-Forwards: 70",
            f"From: <sip:13800138000@127.0.0.1>;tag={from_tag}",
            "To: <sip:4001234567@127.0.0.1>",
            f"Call-ID: {call_id}",
            "CSeq: 99 INFO",
            f"Content-Type: {kind}",
            f"Content-Length: {len(payload)}",
            "",
            "",
        ]
    ).encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", port))
        sock.settimeout(5)
        sock.sendto(message + payload, ("127.0.0.1", app.settings.sip.port))
        while True:
            reply = sock.recv(65536).decode(errors="replace")
            status = reply.split("\r\n", 1)[0]
            if not status.startswith("SIP/2.0 1"):
                return status


def test_an_info_without_to_tag_is_the_callers_by_call_id_and_from_tag(
    linebox: Appliance,
) -> None:
    """Keys by INFO before any To tag: Signal=7 (application/dtmf-relay)
    with another From tag is not the caller's (refused, the menu waits); "7"
    (application/dtmf) with the caller's From tag is key 7, answered 200,
    and the call reaches 1001."""
    with contextlib.ExitStack() as stack:
        agent = stack.enter_context(
            extension(linebox, "1001", "ext-1001-secret", linebox.root / "agent.wav")
        )
        phone = stack.enter_context(caller(linebox, linebox.root / "caller.wav"))
        phone.send("call", uri=f"sip:4001234567@{linebox.sip}")
        call_id = phone.wait("state", timeout=10, state="EARLY")["call_id"]
        sent = (phone.home / "pjsua2.log").read_text(errors="replace")
        from_tag = re.search(r"^From: <?sip:13800138000@127\.0\.0\.1>?;tag=(\S+)", sent, re.M)
        assert from_tag, sent[-3000:]
        forged = send_info(
            linebox, call_id, "not-the-caller", "application/dtmf-relay", "Signal=7\r\n"
        )
        assert not forged.startswith("SIP/2.0 2"), forged
        time.sleep(1)
        assert not agent.of("incoming"), "a key from another From tag counted"
        status = send_info(linebox, call_id, from_tag[1], "application/dtmf", "7")
        assert status == "SIP/2.0 200 OK", status
        agent.wait("incoming", timeout=10)
        agent.send("answer")
        phone.wait("state", timeout=10, state="CONFIRMED")
        phone.send("hangup")
        agent.wait("state", timeout=10, state="DISCONNECTED")

    record = linebox.record(call_id)
    assert (record["status"], record["answered_by"]) == ("answered", "1001"), record


@pytest.mark.slow  # a minute: pjsip's shortest session is 90 s, refreshed at 45 s
def test_session_timer_refresh_passes_through(linebox: Appliance) -> None:
    """The caller asks for a 90 s session (Supported: timer, Session-Expires);
    the agent's phone gets the header, and the refresh at half time goes
    through linebox and is answered 200: the call lives on."""
    with contextlib.ExitStack() as stack:
        agent = stack.enter_context(
            extension(linebox, "1001", "ext-1001-secret", linebox.root / "agent.wav")
        )
        phone = stack.enter_context(
            caller(linebox, linebox.root / "caller.wav", "--session-expires", "90")
        )
        phone.send("call", uri=f"sip:4007654321@{linebox.sip}")
        agent.wait("incoming", timeout=10)
        agent.send("answer")
        call_id = phone.wait("state", timeout=10, state="CONFIRMED")["call_id"]
        time.sleep(52)
        assert not [
            e for e in phone.of("state") + agent.of("state") if e["state"] == "DISCONNECTED"
        ]
        refreshed = phone.stats(), agent.stats()
        phone.send("hangup")
        agent.wait("state", timeout=10, state="DISCONNECTED")

    got = (agent.home / "pjsua2.log").read_text(errors="replace")
    assert re.search(r"^Session-Expires: 90", got, re.M), "no Session-Expires at the agent"
    logs = [(p.home / "pjsua2.log").read_text(errors="replace") for p in (phone, agent)]
    requests = {
        (method, int(cseq))
        for log in logs
        for method, cseq in re.findall(r"Request msg (UPDATE|INVITE)/cseq=(\d+)", log)
    }
    first = min(cseq for method, cseq in requests if method == "INVITE")
    refreshes = requests - {("INVITE", first)}
    assert refreshes, f"no refresh: {requests}"
    # Each refresh crossed linebox both ways: one phone sent it and the
    # other's 200, the other got it and sent the 200.
    for method, cseq in refreshes:
        for log in logs:
            assert f"Response msg 200/{method}/cseq={cseq}" in log, (method, cseq)
    assert all(s["rx"] > 0 for s in refreshed), refreshed
    record = linebox.record(call_id)
    assert (record["status"], record["answered_by"]) == ("answered", "1001"), record


def test_pjsua2_caller_scores_the_survey_by_info(linebox: Appliance) -> None:
    """The agent hangs up first on a group that asks for scores: the caller
    keys 2 by SIP INFO in the dialog the agent answered, linebox takes it as
    the score, thanks and hangs up."""
    with contextlib.ExitStack() as stack:
        agent = stack.enter_context(
            extension(linebox, "1001", "ext-1001-secret", linebox.root / "agent.wav")
        )
        phone = stack.enter_context(caller(linebox, linebox.root / "caller.wav"))
        phone.send("call", uri=f"sip:4001000003@{linebox.sip}")
        agent.wait("incoming", timeout=10)
        agent.send("answer")
        call_id = phone.wait("state", timeout=10, state="CONFIRMED")["call_id"]
        time.sleep(1)
        agent.send("hangup")
        agent.wait("state", timeout=10, state="DISCONNECTED")
        time.sleep(1)
        assert not [e for e in phone.of("state") if e["state"] == "DISCONNECTED"]
        phone.send("dtmf", digits="2", method="info")
        phone.wait("state", timeout=15, state="DISCONNECTED")

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
    assert f"call {call_id}: key 2 by SIP INFO" in linebox.kamailio_log()
