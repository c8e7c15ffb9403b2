"""Transcoding through rtpengine: a phone that offers only Opus (or only
G.722) calls the hotline, which sends the call out through the carrier's
trunk, which takes only PCMA. Both ends are real baresips: the extension
(Opus or G.722 only) registers and dials the hotline; the carrier's side
answers on the trunk's address with PCMA only. rtpengine adds PCMA and PCMU
to the offer it passes on, the trunk picks PCMA, and rtpengine transcodes:
each side hears the other's tone."""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from tests.integration.harness import Appliance, appliance, free_port, free_port_block
from tests.integration.test_softphone import (
    BARESIP,
    MODULES,
    Baresip,
    received,
    received_pcma,
    tone_share,
)
from web.domain.extensions import provisioning

pytestmark = pytest.mark.integration

MOBILE = "13912345678"
SITE = """
[[trunks]]
name = "out"
host = "127.0.0.1:{out_port}"

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

[[tenants.hotlines]]
number = "4001234567"
  [[tenants.hotlines.routes]]
  to = "tel:{mobile}"
"""

PHONE_HZ = 1000
"""What the extension's phone says."""
TRUNK_HZ = 1400
"""What the mobile at the far end of the trunk says."""


def tone(path: Path, hz: int, seconds: float, rate: int = 8000, channels: int = 1) -> None:
    subprocess.run(
        ["sox", "-n", "-r", str(rate), "-c", str(channels), "-b", "16", str(path),
         "synth", str(seconds), "sine", str(hz), "gain", "-6"],
        check=True,
    )  # fmt: skip


class CodecBaresip(Baresip):
    """A baresip as test_softphone's, with the codec modules it is given
    loaded and its account offering only `codecs` (baresip's names), and
    with `options` added to its config (mediaenc and the like)."""

    def __init__(
        self,
        home: Path,
        sip_port: int,
        account: str,
        speak: Path,
        codecs: str,
        modules: tuple[str, ...],
        options: tuple[str, ...] = (),
        rtp_ports: int = 10,
    ) -> None:
        self.home = home
        self.sip_port = sip_port
        self.dumps = home / "heard"
        self.dumps.mkdir(parents=True)
        self.ctrl_port = free_port()
        self.cons_port = free_port()
        rtp = free_port_block(rtp_ports)
        self.rtp_ports = (rtp, rtp + rtp_ports - 1)
        (home / "config").write_text(
            "\n".join(
                [
                    "poll_method epoll",
                    f"sip_listen 127.0.0.1:{sip_port}",
                    "net_interface 127.0.0.1",
                    "net_prefer_ipv6 no",
                    f"rtp_ports {rtp}-{rtp + rtp_ports - 1}",
                    "rtp_timeout 0",
                    f"audio_source aufile,{speak}",
                    "audio_player alsa,null",
                    "audio_alert alsa,null",
                    "ringback_disabled yes",
                    "menu_bell no",
                    f"module_path {MODULES}",
                    *(f"module {module}.so" for module in modules),
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
                    *options,
                    "",
                ]
            )
        )
        (home / "accounts").write_text(f"{account};audio_codecs={codecs}\n")
        (home / "contacts").write_text("")
        self.log = open(home / "baresip.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [BARESIP, "-f", str(home), "-v"],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=home,
        )
        self.events = []
        self._buffer = b""
        self._token = 0
        try:
            self.sock = self._connect()
        except BaseException:
            self._stop()
            raise


@contextlib.contextmanager
def extension_phone(
    app: Appliance,
    user: str,
    password: str,
    speak: Path,
    codecs: str,
    modules: tuple[str, ...],
    account_params: str = "",
    options: tuple[str, ...] = (),
) -> Iterator[CodecBaresip]:
    """A phone registered as extension `user`, set up from the portal's
    provisioning aid, offering only `codecs`."""
    assert Path(BARESIP).exists(), "baresip is missing: run the tests with `make test`"
    told = provisioning.phone_settings(app.settings, user, browsed_host="127.0.0.1")
    told = msgspec.structs.replace(told, transports=["udp"])
    account = (
        f"<{provisioning.sip_uri(told)}>;auth_pass={password};regint=300"
        f";answermode=manual{account_params}"
    )
    phone = CodecBaresip(
        app.root / f"baresip-{user}", free_port(), account, speak, codecs, modules, options
    )
    try:
        phone.wait_registered(timeout=10)
        yield phone
    finally:
        phone.close()


@contextlib.contextmanager
def trunk_phone(
    app: Appliance, port: int, speak: Path, options: tuple[str, ...] = (), rtp_ports: int = 10
) -> Iterator[CodecBaresip]:
    """The carrier: answers whatever linebox sends out through the trunk at
    127.0.0.1:`port`, with PCMA only, at once (a call takes 2 `rtp_ports`)."""
    phone = CodecBaresip(
        app.root / f"baresip-trunk-{port}",
        port,
        f"<sip:{MOBILE}@127.0.0.1>;regint=0;answermode=auto",
        speak,
        "PCMA",
        ("g711",),
        options,
        rtp_ports,
    )
    try:
        yield phone
    finally:
        phone.close()


def heard(phone: CodecBaresip) -> tuple[list[int], int]:
    """What the phone decoded from the network in its last audio stream
    (baresip's sndfile dump, its first channel) and its sample rate."""
    dumps = sorted(phone.dumps.glob("dump-*-dec.wav"))
    assert dumps, f"the phone decoded nothing: {phone.output()}"
    with wave.open(str(dumps[-1])) as w:
        assert w.getsampwidth() == 2, dumps[-1]
        rate, step = w.getframerate(), 2 * w.getnchannels()
        frames = w.readframes(w.getnframes())
    got = [
        int.from_bytes(frames[i : i + 2], "little", signed=True)
        for i in range(0, len(frames), step)
    ]
    return got, rate


@pytest.fixture
def out_port() -> int:
    return free_port()


@pytest.fixture
def linebox(tmp_path: Path, out_port: int) -> Iterator[Appliance]:
    site = SITE.replace("{out_port}", str(out_port)).replace("{mobile}", MOBILE)
    with appliance(tmp_path, site) as app:
        yield app


@pytest.mark.parametrize(
    ("codec", "module", "rate", "channels"),
    [("opus", "opus", 48000, 2), ("G722", "g722", 16000, 1)],
)
def test_wideband_phone_talks_to_a_pcma_trunk_through_rtpengine(
    linebox: Appliance, out_port: int, codec: str, module: str, rate: int, channels: int
) -> None:
    """baresip's audio source must match its codec's rate and channels
    (Opus: 48 kHz stereo, G.722: 16 kHz)."""
    phone_says, trunk_says = linebox.root / "phone.wav", linebox.root / "trunk.wav"
    tone(phone_says, PHONE_HZ, 60, rate, channels)
    tone(trunk_says, TRUNK_HZ, 60)
    with contextlib.ExitStack() as stack:
        trunk = stack.enter_context(trunk_phone(linebox, out_port, trunk_says))
        phone = stack.enter_context(
            extension_phone(linebox, "1001", "ext-1001-secret", phone_says, codec, (module,))
        )
        to_trunk = stack.enter_context(received(linebox, trunk))
        phone.command("dial", f"sip:4001234567@{linebox.sip}")
        call_id = phone.wait_event("CALL_ESTABLISHED", timeout=15)["id"]
        trunk.wait_event("CALL_ESTABLISHED", timeout=5)
        # The codec each side talks, as baresip reports it.
        assert re.search(rf"audio: Set audio encoder: {codec} ", phone.log_text(), re.I), (
            phone.output()
        )
        assert re.search(r"audio: Set audio encoder: PCMA ", trunk.log_text()), trunk.output()
        time.sleep(4)
        phone.command("hangup")
        phone.wait_event("CALL_CLOSED", timeout=10)
        trunk.wait_event("CALL_CLOSED", timeout=10)

    record = linebox.record(call_id)
    assert record["status"] == "answered", record
    # The trunk heard the phone's tone as PCMA (payload type 8, decoded by sox).
    second = 8000
    trunk_heard = received_pcma(to_trunk, linebox.root / "trunk-heard.wav")
    assert len(trunk_heard) >= 3 * second, len(trunk_heard) / second
    window = trunk_heard[-second - second // 2 : -second // 2]
    assert tone_share(window, PHONE_HZ) > 0.8, tone_share(window, PHONE_HZ)
    assert tone_share(window, TRUNK_HZ) < 0.05
    # And the phone heard the trunk's tone, decoded from its own codec.
    phone_heard, phone_rate = heard(phone)
    assert len(phone_heard) >= 3 * phone_rate, len(phone_heard) / phone_rate
    window = phone_heard[-phone_rate - phone_rate // 2 : -phone_rate // 2]
    assert tone_share(window, TRUNK_HZ, phone_rate) > 0.8, tone_share(window, TRUNK_HZ, phone_rate)
    assert tone_share(window, PHONE_HZ, phone_rate) < 0.05
    assert call_id not in linebox.ng().list_calls()
