"""A real softphone walks an IVR: baresip (Debian's package, driven over its
ctrl_tcp socket) is the carrier's side of the trunk, calls the hotline, hears
the menu prompt in early media, keys 2 as RFC 4733 telephone events and is
answered by the agent the key names.

baresip has no sound card here: it speaks a WAV file (aufile), plays into
ALSA's null device, and its sndfile filter writes what it decoded from the
network to a WAV that the test analyses. A second baresip registers as the
agent's extension with the settings the portal's provisioning aid shows, and
answers: two real phones talk, also after a re-INVITE and a hold and resume
(keys on baresip's `cons` console: baresip 1.0's hold has no long command for
ctrl_tcp)."""

from __future__ import annotations

import contextlib
import json
import math
import re
import socket
import struct
import subprocess
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.integration.harness import Appliance, appliance, free_port, free_port_block
from tests.integration.test_media import capture
from web.domain.extensions import provisioning

pytestmark = pytest.mark.integration

BARESIP = "/usr/bin/baresip"
MODULES = Path("/usr/lib/baresip/modules")

SITE = """
[[trunks]]
name = "carrier"
host = "{trunk}"
dids = ["4001234567"]

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
retries = 1
keys = { "1" = "ext:1001", "2" = "ext:1002" }

[[tenants.hotlines]]
number = "4001234567"
  [[tenants.hotlines.routes]]
  to = "menu:main"
"""

MENU_HZ = 600
"""The menu prompt: a tone stands in for "sales press 1, service press 2"."""
MENU_SECONDS = 2.0
CALLER_HZ = 1000
"""What the softphone's microphone says (never the menu's tone)."""
AGENT_HZ = 1400
"""What the agent's softphone says."""


def tone(path: Path, hz: int, seconds: float) -> None:
    subprocess.run(
        ["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(path),
         "synth", str(seconds), "sine", str(hz), "gain", "-6"],
        check=True,
    )  # fmt: skip


class Baresip:
    """One baresip process with its own configuration directory and one
    `account` (a line of baresip's accounts file), listening for SIP on
    `sip_port` (UDP, 127.0.0.1) and for commands on a ctrl_tcp port.
    Commands and events are netstring-framed JSON."""

    def __init__(self, home: Path, sip_port: int, account: str, speak: Path) -> None:
        self.home = home
        self.dumps = home / "heard"
        self.dumps.mkdir(parents=True)
        self.ctrl_port = free_port()
        self.cons_port = free_port()
        rtp = free_port_block(10)
        self.rtp_ports = (rtp, rtp + 9)
        (home / "config").write_text(
            "\n".join(
                [
                    "poll_method epoll",
                    f"sip_listen 127.0.0.1:{sip_port}",
                    "net_interface 127.0.0.1",
                    "net_prefer_ipv6 no",
                    f"rtp_ports {rtp}-{rtp + 9}",
                    "rtp_timeout 0",
                    f"audio_source aufile,{speak}",
                    "audio_player alsa,null",
                    "audio_alert alsa,null",
                    "ringback_disabled yes",
                    "menu_bell no",
                    f"module_path {MODULES}",
                    "module g711.so",
                    "module aufile.so",
                    "module alsa.so",
                    "module sndfile.so",
                    f"snd_path {self.dumps}",
                    "module_app account.so",
                    "module_app menu.so",
                    "module_app ctrl_tcp.so",
                    "module cons.so",
                    f"cons_listen 127.0.0.1:{self.cons_port}",
                    f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}",
                    "",
                ]
            )
        )
        (home / "accounts").write_text(f"{account};answermode=manual;audio_codecs=PCMA\n")
        (home / "contacts").write_text("")
        self.log = open(home / "baresip.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [BARESIP, "-f", str(home), "-v"],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=home,
        )
        self.events: list[dict[str, Any]] = []
        self._buffer = b""
        self._token = 0
        try:
            self.sock = self._connect()
        except BaseException:
            self._stop()
            raise

    def _connect(self) -> socket.socket:
        deadline = time.monotonic() + 10
        while True:
            assert self.proc.poll() is None, f"baresip exited: {self.output()}"
            try:
                return socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=1)
            except OSError as err:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"baresip's ctrl_tcp never listened: {self.output()}"
                    ) from err
                time.sleep(0.1)

    def log_text(self) -> str:
        self.log.flush()
        return (self.home / "baresip.log").read_text(errors="replace")

    def output(self) -> str:
        return self.log_text()[-4000:]

    def _read(self, deadline: float) -> dict[str, Any] | None:
        """The next message, or None when the deadline passes first."""
        while True:
            head, colon, rest = self._buffer.partition(b":")
            if colon and len(rest) > int(head):
                body, self._buffer = rest[: int(head)], rest[int(head) + 1 :]
                message: dict[str, Any] = json.loads(body)
                if message.get("event"):
                    self.events.append(message)
                return message
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return None
            assert chunk, f"baresip closed its control socket: {self.output()}"
            self._buffer += chunk

    def command(self, command: str, params: str = "", timeout: float = 5) -> dict[str, Any]:
        self._token += 1
        token = str(self._token)
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        self.sock.sendall(b"%d:%s," % (len(body), body))
        deadline = time.monotonic() + timeout
        while (message := self._read(deadline)) is not None:
            if message.get("response") and message.get("token") == token:
                assert message.get("ok"), f"{command} {params}: {message}"
                return message
        raise AssertionError(f"no answer to {command}: {self.output()}")

    def wait_event(self, kind: str, timeout: float) -> dict[str, Any]:
        """The first `kind` event (CALL_PROGRESS, CALL_ESTABLISHED, …) seen
        so far or within `timeout`; a closed call fails the wait."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if event.get("type") == kind:
                    return event
                if event.get("type") == "CALL_CLOSED" and kind != "CALL_CLOSED":
                    raise AssertionError(f"call closed waiting for {kind}: {event}")
            seen = len(self.events)
            if self._read(deadline) is None:
                raise AssertionError(f"no {kind} in {timeout} s: {self.events}\n{self.output()}")

    def keys(self, keys: str) -> None:
        """Press keys on the phone's console (commands with a key only)."""
        with socket.create_connection(("127.0.0.1", self.cons_port), timeout=2) as console:
            console.sendall(keys.encode())
            time.sleep(0.3)

    def wait_registered(self, timeout: float) -> None:
        """Until the account's registration is answered 200 (its REGISTER_OK
        event may come before the control connection): `reginfo` says "OK",
        coloured (`\\x1b[32mOK \\x1b[;m`), instead of "zzz"."""
        deadline = time.monotonic() + timeout
        while not re.search(r"(\s|m)OK\s", status := self.command("reginfo")["data"]):
            assert time.monotonic() < deadline, f"not registered: {status!r}"
            time.sleep(0.2)

    def heard(self) -> list[Path]:
        """The WAVs of what baresip decoded from the network, in order: one
        per start of the audio stream (the early media, then the answer)."""
        return sorted(self.dumps.glob("dump-*-dec.wav"))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        self._stop()

    def _stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


@contextlib.contextmanager
def softphone(
    app: Appliance, user: str, speak: Path, password: str = "", transport: str = "udp"
) -> Iterator[Baresip]:
    """A carrier's caller on the trunk's address and port (no registration:
    the trunk is trusted by its address), or with `password` a phone that
    registers as extension `user`, set up from what the portal's extension
    page tells a person (the URI its QR code holds), over `transport`."""
    # `make test` installs it; without it this is a setup error, not a skip.
    assert Path(BARESIP).exists(), "baresip is missing: run the tests with `make test`"
    home = app.root / f"baresip-{user}"
    if password:
        told = provisioning.phone_settings(app.settings, user, browsed_host="127.0.0.1")
        assert transport in told.transports, told
        told = msgspec.structs.replace(told, transports=[transport])
        account = f"<{provisioning.sip_uri(told)}>;auth_pass={password};regint=300"
        phone = Baresip(home, free_port(), account, speak)
    else:
        phone = Baresip(home, app.trunk_port, f"<sip:{user}@127.0.0.1>;regint=0", speak)
    try:
        if password:
            phone.wait_registered(timeout=10)
        yield phone
    finally:
        phone.close()


def samples(path: Path) -> list[int]:
    with wave.open(str(path)) as w:
        assert (w.getsampwidth(), w.getnchannels()) == (2, 1), path
        rate = w.getframerate()
        frames = w.readframes(w.getnframes())
    got = [
        int.from_bytes(frames[i : i + 2], "little", signed=True) for i in range(0, len(frames), 2)
    ]
    assert rate == 8000, rate
    return got


def tone_share(window: list[int], hz: float, rate: int = 8000) -> float:
    """How much of the window's energy is at `hz` (Goertzel), 0…1."""
    coeff = 2 * math.cos(2 * math.pi * hz / rate)
    s1 = s2 = 0.0
    for x in window:
        s1, s2 = x + coeff * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    energy = sum(x * x for x in window)
    return 2 * power / (len(window) * energy) if energy else 0.0


def received_pcma(pcap: Path, into: Path) -> list[int]:
    """The PCMA audio (RTP payload type 8) in a capture, decoded by sox."""
    data = pcap.read_bytes()
    assert struct.unpack("<I", data[:4])[0] == 0xA1B2C3D4, "not a microsecond pcap"
    link = {1: 14, 113: 16, 276: 20}[struct.unpack("<I", data[20:24])[0]]
    payload = bytearray()
    pos = 24
    while pos + 16 <= len(data):
        length = struct.unpack("<I", data[pos + 8 : pos + 12])[0]
        ip = data[pos + 16 + link : pos + 16 + length]
        pos += 16 + length
        rtp = ip[(ip[0] & 0x0F) * 4 + 8 :]
        if len(rtp) > 12 and rtp[1] & 0x7F == 8:
            payload += rtp[12:]
    raw = into.with_suffix(".al")
    raw.write_bytes(payload)
    subprocess.run(
        ["sox", "-t", "al", "-r", "8000", "-c", "1", str(raw), "-b", "16", str(into)], check=True
    )
    return samples(into)


@pytest.fixture
def linebox(tmp_path: Path) -> Iterator[Appliance]:
    tone(tmp_path / "menu.wav", MENU_HZ, MENU_SECONDS)
    with appliance(tmp_path, SITE) as app:
        yield app


def test_baresip_hears_the_menu_keys_2_and_reaches_1002(linebox: Appliance) -> None:
    linebox.agent("1001", "ext-1001-secret")
    agent_media = free_port_block(4)
    agent = linebox.agent("1002", "ext-1002-secret", media_port=agent_media)
    speak = linebox.root / "caller.wav"
    tone(speak, CALLER_HZ, 60)
    tcpdump = capture(linebox, agent_media)
    with contextlib.ExitStack() as stack:
        stack.callback(tcpdump.wait, 5)
        stack.callback(tcpdump.terminate)
        phone = stack.enter_context(softphone(linebox, "13800138000", speak))
        phone.command("dial", f"sip:4001234567@{linebox.sip}")
        progress = phone.wait_event("CALL_PROGRESS", timeout=10)
        call_id = progress["id"]
        # The caller listens to the prompt, then keys 2.
        time.sleep(MENU_SECONDS + 0.5)
        assert agent.events() == [], "the agent rang before any key"
        phone.command("sndcode", "2")
        phone.wait_event("CALL_ESTABLISHED", timeout=15)
        time.sleep(3)  # talking
        phone.command("hangup")
        phone.wait_event("CALL_CLOSED", timeout=10)
        early, answered = (samples(path) for path in phone.heard())

    record = linebox.record(call_id)
    assert (record["status"], record["answered_by"]) == ("answered", "1002"), record
    assert [kind for kind, _ in agent.events()] == ["INVITE"]

    # In early media, before the key: the menu's tone, clean (G.711 through
    # rtpengine), and none of what the caller said.
    second = 8000
    assert len(early) >= 1.5 * second, len(early) / second
    prompt = early[second // 4 : second // 4 + second]
    assert tone_share(prompt, MENU_HZ) > 0.8, tone_share(prompt, MENU_HZ)
    assert tone_share(prompt, CALLER_HZ) < 0.05
    # Once answered: the agent's audio (sipp's G.711 capture), not the menu.
    assert len(answered) >= 1.5 * second, len(answered) / second
    talk = answered[-second:]
    assert sum(x * x for x in talk) / len(talk) > 10_000, "silence after the answer"
    assert tone_share(talk, MENU_HZ) < 0.2
    # And the agent heard the softphone: its tone, not the menu's.
    agent_heard = received_pcma(
        linebox.root / f"caller-{agent_media}.pcap", linebox.root / "agent-heard.wav"
    )
    assert len(agent_heard) >= 2 * second, len(agent_heard) / second
    speech = agent_heard[second // 2 : second + second // 2]
    assert tone_share(speech, CALLER_HZ) > 0.8, tone_share(speech, CALLER_HZ)
    assert tone_share(speech, MENU_HZ) < 0.05


@contextlib.contextmanager
def received(app: Appliance, phone: Baresip) -> Iterator[Path]:
    """A capture of the UDP that reaches the phone's RTP ports (what it was
    sent, whatever it does with it)."""
    first, last = phone.rtp_ports
    pcap = app.root / f"received-{phone.home.name}.pcap"
    tcpdump = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-n", "-U", "-w", str(pcap),
         "udp", "and", "dst", "portrange", f"{first}-{last}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(0.5)
    try:
        yield pcap
    finally:
        tcpdump.terminate()
        tcpdump.wait(5)


@pytest.mark.slow  # about 20 s each with the appliance's start
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_two_baresips_talk_through_the_menu_a_re_invite_and_hold(
    linebox: Appliance, transport: str
) -> None:
    """Both ends real: the carrier's caller walks the menu, extension 1002 is
    a baresip that registers with its digest password (over UDP or TCP) and
    answers; each hears the other, also after the caller's re-INVITE and a
    hold and resume (re-INVITEs with sendonly, then sendrecv), and the
    caller's BYE ends both."""
    caller_says, agent_says = linebox.root / "caller.wav", linebox.root / "agent.wav"
    tone(caller_says, CALLER_HZ, 60)
    tone(agent_says, AGENT_HZ, 60)
    with contextlib.ExitStack() as stack:
        agent = stack.enter_context(
            softphone(linebox, "1002", agent_says, "ext-1002-secret", transport)
        )
        caller = stack.enter_context(softphone(linebox, "13800138000", caller_says))
        to_caller = stack.enter_context(received(linebox, caller))
        to_agent = stack.enter_context(received(linebox, agent))
        caller.command("dial", f"sip:4001234567@{linebox.sip}")
        call_id = caller.wait_event("CALL_PROGRESS", timeout=10)["id"]
        time.sleep(MENU_SECONDS + 0.5)
        caller.command("sndcode", "2")
        agent.wait_event("CALL_INCOMING", timeout=10)
        agent.command("accept")
        caller.wait_event("CALL_ESTABLISHED", timeout=10)
        agent.wait_event("CALL_ESTABLISHED", timeout=10)
        time.sleep(2)
        caller.command("reinvite")
        time.sleep(1)
        caller.keys("x")  # hold
        time.sleep(1.5)
        caller.keys("X")  # resume
        time.sleep(3)
        assert not [e for e in caller.events + agent.events if e.get("type") == "CALL_CLOSED"]
        caller.command("hangup")
        caller.wait_event("CALL_CLOSED", timeout=10)
        agent.wait_event("CALL_CLOSED", timeout=10)
        re_invites = agent.log_text().count("got re-INVITE")

    record = linebox.record(call_id)
    assert (record["status"], record["answered_by"]) == ("answered", "1002"), record
    assert re_invites == 3, "the re-INVITE, the hold and the resume reach the agent"
    second = 8000
    caller_heard = received_pcma(to_caller, linebox.root / "caller-heard.wav")
    agent_heard = received_pcma(to_agent, linebox.root / "agent-heard.wav")
    # The caller: the menu in early media first, the agent at the end (after
    # the resume).
    assert tone_share(caller_heard[second // 4 : second], MENU_HZ) > 0.8
    for heard, wanted, unwanted in (
        (caller_heard, AGENT_HZ, CALLER_HZ),
        (agent_heard, CALLER_HZ, AGENT_HZ),
    ):
        assert len(heard) >= 5 * second, len(heard) / second
        window = heard[-second - second // 2 : -second // 2]
        assert tone_share(window, wanted) > 0.8, (wanted, tone_share(window, wanted))
        assert tone_share(window, unwanted) < 0.05
        assert tone_share(window, MENU_HZ) < 0.05
    assert tone_share(agent_heard[second // 2 : second], CALLER_HZ) > 0.8
    assert call_id not in linebox.ng().list_calls()
