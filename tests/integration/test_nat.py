"""A phone behind a NAT router, end to end: network namespaces made here stand
for the agent's phone and its router (nftables masquerade, with the ports
remapped too); linebox listens on the router's side. The phone registers with
its private Contact, a trunk call to a hotline reaches it through the NAT, it
answers, media crosses the NAT through rtpengine both ways, and nathelper's
keep-alive reaches it."""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import PASSWORDS, SITE
from tests.integration.harness import SCENARIOS, SIPP, Appliance, appliance
from tests.integration.test_call_path import rtp_packets_by_leg

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("nft") is None,
    reason="needs root, iproute2 (ip netns) and nftables to build the NAT namespaces",
)

# Ports the router maps its LAN's traffic to: a phone's Contact and SDP ports
# are never the ones linebox sees.
NAT_PORTS = (40000, 44999)


@dataclass
class Nat:
    """A phone namespace behind a router namespace that masquerades it; the
    root namespace (linebox) reaches the router on `linebox_ip`."""

    phone: str
    router: str
    linebox_ip: str
    router_ip: str
    phone_ip: str
    phone_if: str = "lan0"

    def run(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.phone, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def sh(*argv: str, stdin: str | None = None) -> None:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr}"


@pytest.fixture
def nat() -> Iterator[Nat]:
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        pytest.skip("ip netns is not available here")
    tag = f"{random.getrandbits(24):06x}"
    net = random.randrange(16, 250)
    found = Nat(
        phone=f"lbphone-{tag}",
        router=f"lbrouter-{tag}",
        linebox_ip=f"10.231.{net}.1",
        router_ip=f"10.231.{net}.2",
        phone_ip=f"192.168.{net}.2",
    )
    wan = f"lbnat{tag}"  # the root namespace's end of the router's WAN link
    router = ["ip", "netns", "exec", found.router]
    phone = ["ip", "netns", "exec", found.phone]
    try:
        sh("ip", "netns", "add", found.router)
        sh("ip", "netns", "add", found.phone)
        sh("ip", "link", "add", wan, "type", "veth", "peer", "name", "wan0", "netns", found.router)
        sh("ip", "addr", "add", f"{found.linebox_ip}/24", "dev", wan)
        sh("ip", "link", "set", wan, "up")
        to_phone = ("type", "veth", "peer", "name", "lan0", "netns", found.phone)
        sh(*router, "ip", "link", "add", "lan0", *to_phone)
        sh(*router, "ip", "addr", "add", f"{found.router_ip}/24", "dev", "wan0")
        sh(*router, "ip", "addr", "add", f"192.168.{net}.1/24", "dev", "lan0")
        for link in ("lo", "wan0", "lan0"):
            sh(*router, "ip", "link", "set", link, "up")
        sh(*router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        sh(
            *router,
            "nft",
            "-f",
            "-",
            stdin=(
                "table ip nat {\n"
                "  chain postrouting {\n"
                "    type nat hook postrouting priority srcnat; policy accept;\n"
                '    oifname "wan0" meta l4proto udp'
                f" masquerade to :{NAT_PORTS[0]}-{NAT_PORTS[1]} random\n"
                "  }\n"
                "}\n"
            ),
        )
        sh(*phone, "ip", "addr", "add", f"{found.phone_ip}/24", "dev", "lan0")
        sh(*phone, "ip", "link", "set", "lo", "up")
        sh(*phone, "ip", "link", "set", "lan0", "up")
        sh(*phone, "ip", "route", "add", "default", "via", f"192.168.{net}.1")
        yield found
    finally:
        # Deleting a namespace deletes its veth ends, and with them their peers.
        for ns in (found.phone, found.router):
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
        subprocess.run(["ip", "link", "delete", wan], capture_output=True)


def free_port_on(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def sipp_argv(app: Appliance, scenario: str, address: str, port: int, media: int) -> list[str]:
    name = f"{Path(scenario).stem}-{port}"
    return [
        SIPP,
        "-sf",
        str(SCENARIOS / scenario),
        "-i",
        address,
        "-p",
        str(port),
        "-mi",
        address,
        "-mp",
        str(media),
        "-nostdin",
        "-trace_err",
        "-trace_logs",
        "-error_file",
        str(app.root / f"sipp-{name}-errors.log"),
        "-log_file",
        str(app.root / f"sipp-{name}.log"),
    ]


def wait_for(what: str, check, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.fixture
def natted(nat: Nat, tmp_path: Path) -> Iterator[tuple[Nat, Appliance, int]]:
    """linebox with SIP and media on the router's side of the WAN link; the
    trunk peer is a sipp there too (its port is the third value)."""
    trunk_port = free_port_on(nat.linebox_ip)
    site = SITE.replace("{trunk}", f"{nat.linebox_ip}:{trunk_port}")
    with appliance(tmp_path, site, overrides={"LINEBOX_SIP_ADDRESS": nat.linebox_ip}) as app:
        yield nat, app, trunk_port


def test_phone_behind_nat_registers_answers_and_talks(
    natted: tuple[Nat, Appliance, int],
) -> None:
    nat, app, trunk_port = natted
    sip = f"{nat.linebox_ip}:{app.settings.sip.port}"
    phone_port, phone_media = 5070, 16000

    # The phone registers from the port it answers on; its Contact is private.
    register = [
        *sipp_argv(app, "register.xml", nat.phone_ip, phone_port, phone_media),
        *("-s", "1003", "-au", "1003", "-ap", PASSWORDS["1003"]),
        *("-key", "contact_port", str(phone_port), "-key", "expires", "300"),
        *("-m", "1", sip),
    ]
    done = nat.run(*register)
    logged = (app.root / f"sipp-register-{phone_port}.log").read_text()
    assert "RESULT 200" in logged, done.stdout[-2000:]

    # Kamailio kept the private Contact and, beside it, where the REGISTER
    # came from: the router's address and a port it mapped.
    dump = subprocess.run(
        ["kamcmd", "-s", f"unix:{app.settings.paths.run_dir / 'kamailio_ctl'}", "ul.dump"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    assert f"sip:1003@{nat.phone_ip}:{phone_port}" in dump, dump
    received = re.search(rf"Received: sip:{re.escape(nat.router_ip)}:(\d+)", dump)
    assert received, dump
    assert NAT_PORTS[0] <= int(received.group(1)) <= NAT_PORTS[1], dump

    capture = app.root / "phone.pcap"
    tcpdump = subprocess.Popen(
        [
            *("ip", "netns", "exec", nat.phone, "tcpdump", "-i", nat.phone_if, "-n", "-U"),
            *("-w", str(capture), f"udp and dst host {nat.phone_ip} and dst port {phone_media}"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    phone = subprocess.Popen(
        [
            *("ip", "netns", "exec", nat.phone),
            *sipp_argv(app, "nat_phone.xml", nat.phone_ip, phone_port, phone_media),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        cwd=app.root,
    )
    app.sipp_procs.append(phone)
    phone_log = app.root / f"sipp-nat_phone-{phone_port}.log"
    try:
        time.sleep(1)  # tcpdump and the phone listen
        call_id = f"lbnat-{random.getrandbits(32):x}"
        caller = subprocess.Popen(
            [
                *sipp_argv(app, "caller.xml", nat.linebox_ip, trunk_port, 20000),
                *("-s", "4007654321", "-key", "caller_number", "13800138000"),
                *("-m", "1", "-cid_str", f"{call_id}-%u@%s", sip),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            cwd=app.root,
        )
        app.sipp_procs.append(caller)
        full_id = f"{call_id}-1@{nat.linebox_ip}"
        legs = rtp_packets_by_leg(app, full_id, seconds=3.5)
        assert caller.wait(timeout=30) == 0
        caller_log = (app.root / f"sipp-caller-{trunk_port}.log").read_text()
        assert "RESULT 200" in caller_log

        # The caller's BYE reached the phone at its fixed Contact.
        wait_for("the phone to get the BYE", lambda: "BYE" in phone_log.read_text(), 10)
        text = phone_log.read_text()
        assert "INVITE" in text and "ANSWERED" in text
    finally:
        tcpdump.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            tcpdump.wait(timeout=5)

    # Media both ways: rtpengine heard each leg, and the phone received
    # rtpengine's packets through the NAT.
    assert len(legs) == 2 and min(legs) > 50, legs
    read = subprocess.run(
        ["tcpdump", "-r", str(capture), "-n"], capture_output=True, text=True, timeout=30
    )
    received_packets = len(read.stdout.splitlines())
    assert received_packets > 50, read.stderr
    assert app.record(full_id)["status"] == "answered"

    # nathelper's keep-alive (every 30 s) reaches the phone through the NAT.
    wait_for("an OPTIONS keep-alive", lambda: "OPTIONS" in phone_log.read_text(), 35)
