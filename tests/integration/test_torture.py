"""RFC 4475 and RFC 5118 torture messages against a running linebox, over UDP
and over TCP: Kamailio survives every one, answers the valid ones, and relays
nothing anywhere.

Each message is sent byte-exact but for its Request-URI host, which is
pointed at the test's Kamailio where it names a host by name or IPv4 address
(IPv6 literals and foreign schemes are the point of their messages and stay).
Kamailio answers a UDP request to the address in its top Via (with
`received=`, so 127.0.0.1, but on the Via's port), not to our socket, so the
UDP answers are read from a tcpdump capture of loopback; over TCP they come
back on the connection. A relay would show as a request leaving Kamailio's
port in the capture and in Kamailio's own counters (`tmx:UAC_transactions`,
`core:fwd_requests`, `core:fwd_replies`), which also count relays over TCP or
to addresses off this machine.
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance import services
from tests.integration.conftest import SITE
from tests.integration.harness import Appliance, appliance

TORTURE = Path("/work/shared/testdata/sip-torture")
if not TORTURE.is_dir():  # the repository may sit beside shared/ instead
    TORTURE = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "sip-torture"

# RFC 4475 §3.1.1 (valid), §3.2 (badbranch), §3.3 (those a server answers:
# 416, 420, 415, 401, 483, 200/401 for REGISTERs, 488 or a challenge) and
# §3.4 (an RFC 2543 INVITE); RFC 5118's well-formed requests. The rest are
# invalid (§3.1.2, §3.3.1/8/9) or responses nobody asked for: Kamailio may
# answer 400 or drop them, but must survive them and relay nothing.
VALID = {
    "rfc4475/wsinv.dat",
    "rfc4475/intmeth.dat",
    "rfc4475/esc01.dat",
    "rfc4475/escnull.dat",
    "rfc4475/esc02.dat",
    "rfc4475/lwsdisp.dat",
    "rfc4475/longreq.dat",
    "rfc4475/dblreq.dat",
    "rfc4475/semiuri.dat",
    "rfc4475/transports.dat",
    "rfc4475/mpart01.dat",
    "rfc4475/badbranch.dat",
    "rfc4475/unkscm.dat",
    "rfc4475/novelsc.dat",
    "rfc4475/unksm2.dat",
    "rfc4475/bext01.dat",
    "rfc4475/invut.dat",
    "rfc4475/regaut01.dat",
    "rfc4475/zeromf.dat",
    "rfc4475/cparam01.dat",
    "rfc4475/cparam02.dat",
    "rfc4475/regescrt.dat",
    "rfc4475/sdp01.dat",
    "rfc4475/inv2543.dat",
    "rfc5118/ipv6-good",
    "rfc5118/port-unambiguous",
    "rfc5118/ipv6-correct-abnf-2-colons",
    "rfc5118/via-received-param-with-delim",
    "rfc5118/via-received-param-no-delim",
    "rfc5118/mult-ip-in-header",
    "rfc5118-clfixed/ipv4-mapped-ipv6",
    "rfc5118-clfixed/ipv6-in-sdp",
    "rfc5118-clfixed/mult-ip-in-sdp",
}

# Valid messages stock Kamailio 5.6 itself cannot answer, whatever the routes
# do (checked against the routes in either order of maxfwd and sanity).
CORE_SILENT = {
    # A CSeq folded over two lines: the core parser fails ("bad cseq").
    ("rfc4475/wsinv.dat", "udp"): "folded CSeq",
    ("rfc4475/wsinv.dat", "tcp"): "folded CSeq",
    # sanity wants to answer 400 and cannot build the reply ("duplicate
    # Max-Forwards header field" while re-parsing).
    ("rfc4475/esc02.dat", "udp"): "sanity cannot build its 400",
    ("rfc4475/esc02.dat", "tcp"): "sanity cannot build its 400",
    ("rfc4475/intmeth.dat", "udp"): "sanity cannot build its 400",
    ("rfc4475/intmeth.dat", "tcp"): "sanity cannot build its 400",
    # No Content-Length on a stream: the message never ends (RFC 3261 §20.14
    # makes it mandatory on TCP).
    ("rfc4475/inv2543.dat", "tcp"): "no Content-Length over TCP",
}

# Settings that keep the edge defences out of the way: the torture test sends
# ~130 requests from 127.0.0.1 in a few seconds, which is not what it tests.
OVERRIDES = {
    "LINEBOX_SECURITY_TRUSTED": "127.0.0.0/8",
    "LINEBOX_SECURITY_AUTH_FAILURES": "100000",
    "LINEBOX_SECURITY_FLOOD_REQUESTS": "100000",
    # No OPTIONS probes of the trunk's gateway: every request Kamailio sends
    # here would be a relay.
    "LINEBOX_SIP_GATEWAY_PING": "0",
}


def torture_files() -> list[str]:
    found = [
        str(p.relative_to(TORTURE))
        for d in ("rfc4475", "rfc5118", "rfc5118-clfixed")
        for p in sorted((TORTURE / d).iterdir())
        if p.is_file()
    ]
    assert len(found) >= 49 + 12 + 3, found
    return found


_REQUEST_LINE = re.compile(rb"^(\S+[ \t]+)(.*?)([ \t]+SIP/\S+[ \t]*)$")


def aim_at(message: bytes, host: str, port: int) -> bytes:
    """The message with its Request-URI host and port replaced by ours where it
    names a host (a domain name or IPv4 address in a sip:/sips: URI)."""
    line, sep, rest = message.partition(b"\r\n")
    m = _REQUEST_LINE.match(line)
    if not m or line.startswith(b"SIP/"):
        return message
    method, uri, version = m.groups()
    scheme = re.match(rb"<?sips?:", uri)
    if not scheme:
        return message
    body_start = scheme.end()
    body_end = len(uri)
    for stop in (b">", b" ", b"\t"):
        at = uri.find(stop, body_start)
        if at != -1:
            body_end = min(body_end, at)
    # The userinfo may hold any of ;?/ (RFC 4475 intmeth): the host follows
    # the last @; without one it follows the scheme.
    host_start = max(body_start, uri.rfind(b"@", body_start, body_end) + 1)
    host_end = body_end
    for stop in (b";", b"?"):
        at = uri.find(stop, host_start, body_end)
        if at != -1:
            host_end = min(host_end, at)
    hostport = uri[host_start:host_end]
    if hostport.startswith(b"[") or hostport.count(b":") > 1 or not hostport:
        return message  # an IPv6 literal: what the message is about
    new_uri = uri[:host_start] + f"{host}:{port}".encode() + uri[host_end:]
    return method + new_uri + version + sep + rest


# ---------------------------------------------------------------- capture
@dataclass
class Packet:
    src: tuple[str, int]
    dst: tuple[str, int]
    proto: str
    payload: bytes


def read_pcap(path: Path) -> list[Packet]:
    """IPv4 UDP/TCP packets of a (little-endian, Ethernet or Linux-cooked)
    pcap file; enough for what tcpdump writes for loopback."""
    data = path.read_bytes() if path.exists() else b""
    if len(data) < 24:
        return []
    magic, _, _, _, _, _, linktype = struct.unpack("<IHHiIII", data[:24])
    assert magic in (0xA1B2C3D4, 0xA1B23C4D), hex(magic)
    offset_of = {1: 14, 113: 16, 276: 20, 0: 4, 12: 0, 101: 0}
    link = offset_of[linktype]
    packets = []
    pos = 24
    while pos + 16 <= len(data):
        _, _, caplen, _ = struct.unpack("<IIII", data[pos : pos + 16])
        frame = data[pos + 16 : pos + 16 + caplen]
        pos += 16 + caplen
        if len(frame) < caplen:
            break
        ip = frame[link:]
        if len(ip) < 20 or ip[0] >> 4 != 4:
            continue
        ihl = (ip[0] & 0x0F) * 4
        proto = ip[9]
        src_ip, dst_ip = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
        l4 = ip[ihl:]
        if proto == 17 and len(l4) >= 8:
            sport, dport = struct.unpack("!HH", l4[:4])
            packets.append(Packet((src_ip, sport), (dst_ip, dport), "udp", l4[8:]))
        elif proto == 6 and len(l4) >= 20:
            sport, dport = struct.unpack("!HH", l4[:4])
            doff = (l4[12] >> 4) * 4
            packets.append(Packet((src_ip, sport), (dst_ip, dport), "tcp", l4[doff:]))
    return packets


@contextlib.contextmanager
def capture(root: Path, sip_port: int) -> Iterator[Path]:
    """tcpdump on loopback of every packet from Kamailio's SIP port."""
    pcap = root / "kamailio-out.pcap"
    proc = subprocess.Popen(
        [
            *("tcpdump", "-i", "lo", "-U", "-n", "-s", "0", "-Z", "root", "-w", str(pcap)),
            *("src", "host", "127.0.0.1", "and", "src", "port", str(sip_port)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        # tcpdump says "listening on lo" once it captures.
        line = proc.stderr.readline().decode(errors="replace")
        assert "listening on" in line, line
        yield pcap
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def call_id_of(message: bytes) -> bytes:
    m = re.search(rb"^(?:Call-ID|i)[ \t]*:[ \t]*(\S+)", message, re.MULTILINE | re.IGNORECASE)
    return m.group(1) if m else b""


def kamailio_stats(app: Appliance) -> dict[str, int]:
    """Kamailio's core and tm counters, over its binrpc control socket."""
    out = subprocess.run(
        [
            "kamcmd",
            "-s",
            f"unix:{app.settings.paths.run_dir / 'kamailio_ctl'}",
            "stats.get_statistics",
            "all",
        ],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    return {k: int(v) for k, v in re.findall(r"^\s*([\w.:-]+)\s*=\s*(-?\d+)\s*$", out, re.M)}


def kamailio_running(app: Appliance) -> bool:
    kamailio = services.kamailio_service(app.settings)
    proc = next(p for p in app.procs if p.args[0] == kamailio.argv[0])
    return proc.poll() is None


# ---------------------------------------------------------------- the test
@dataclass
class Outcome:
    name: str
    transport: str
    answer: str


def send_udp(app: Appliance, message: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.sendto(message, ("127.0.0.1", app.settings.sip.port))


def udp_answers(pcap: Path, call_id: bytes, seen: int) -> list[bytes]:
    """Status lines of the UDP answers with this Call-ID among the packets
    captured after the first `seen` (the RFC 5118 messages share Call-IDs)."""
    return [
        p.payload.split(b"\r\n", 1)[0]
        for p in read_pcap(pcap)[seen:]
        if p.proto == "udp"
        and p.payload.startswith(b"SIP/2.0 ")
        and call_id
        and call_id_of(p.payload) == call_id
    ]


def send_tcp(app: Appliance, message: bytes, wait: float) -> list[bytes]:
    """Send over a new TCP connection; the status lines that come back."""
    answers: list[bytes] = []
    with socket.create_connection(("127.0.0.1", app.settings.sip.port), timeout=2) as sock:
        sock.sendall(message)
        buffer = b""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65535)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            buffer += chunk
            answers = re.findall(rb"^SIP/2\.0 \d{3}[^\r\n]*", buffer, re.MULTILINE)
            if any(not a.startswith(b"SIP/2.0 1") for a in answers):
                break
    return answers


def test_torture_messages_neither_crash_nor_relay(tmp_path: Path) -> None:
    outcomes: list[Outcome] = []
    with appliance(tmp_path, SITE, overrides=OVERRIDES) as app:
        port = app.settings.sip.port
        before = kamailio_stats(app)
        with capture(tmp_path, port) as pcap:
            for name in torture_files():
                message = aim_at((TORTURE / name).read_bytes(), "127.0.0.1", port)
                call_id = call_id_of(message)
                valid = name in VALID
                # UDP: the answer goes to the Via's port; read it off the wire.
                seen = len(read_pcap(pcap))
                send_udp(app, message)
                answers: list[bytes] = []
                deadline = time.monotonic() + (1.5 if valid else 0.3)
                while time.monotonic() < deadline and not answers:
                    time.sleep(0.02)
                    answers = udp_answers(pcap, call_id, seen)
                outcomes.append(Outcome(name, "udp", (answers or [b"-"])[-1].decode("latin-1")))
                assert kamailio_running(app), f"Kamailio died on {name} over UDP"
                assert services.sip_options_ok("127.0.0.1", port, timeout=2), (
                    f"Kamailio stopped answering after {name} over UDP"
                )
                # TCP: the answer comes back on the connection.
                tcp = send_tcp(app, message, wait=1.5 if valid else 0.5)
                outcomes.append(Outcome(name, "tcp", (tcp or [b"-"])[-1].decode("latin-1")))
                assert kamailio_running(app), f"Kamailio died on {name} over TCP"
                assert services.sip_options_ok("127.0.0.1", port, timeout=2), (
                    f"Kamailio stopped answering after {name} over TCP"
                )
            time.sleep(0.5)
            sent = read_pcap(pcap)
        after = kamailio_stats(app)
        log = app.kamailio_log()

    report = "\n".join(f"{o.name:<40} {o.transport} {o.answer}" for o in outcomes)
    (tmp_path / "torture-report.txt").write_text(report + "\n")

    # Nothing but answers left Kamailio's port: a request there is a relay.
    relayed = [p for p in sent if p.payload and not p.payload.startswith(b"SIP/2.0 ")]
    relayed = [p for p in relayed if p.payload.strip()]  # TCP keep-alive CRLFs
    assert not relayed, [(p.dst, p.payload[:80]) for p in relayed]
    for counter in ("tmx:UAC_transactions", "core:fwd_requests", "core:fwd_replies"):
        assert after.get(counter, 0) == before.get(counter, 0), (counter, before, after)
    assert "t_relay" not in log and "ringing" not in log, log[-3000:]

    silent = sorted(
        f"{o.name} over {o.transport}"
        for o in outcomes
        if o.name in VALID and o.answer == "-" and (o.name, o.transport) not in CORE_SILENT
    )
    # RFC 4475 §3.3.7 (regaut01): a REGISTER whose Authorization names an
    # unknown scheme must be challenged (401), not ignored.
    assert not silent, f"valid messages left unanswered: {silent}\n{report}"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"INVITE sip:user@example.com SIP/2.0", b"INVITE sip:user@127.0.0.1:5 SIP/2.0"),
        (b"INVITE <sip:user@example.com> SIP/2.0", b"INVITE <sip:user@127.0.0.1:5> SIP/2.0"),
        (
            b"INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0",
            b"INVITE sip:user@127.0.0.1:5?Route=%3Csip:example.com%3E SIP/2.0",
        ),
        (
            b"OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0",
            b"OPTIONS sip:user;par=u%40example.net@127.0.0.1:5 SIP/2.0",
        ),
        (b"REGISTER sip:example.com SIP/2.0", b"REGISTER sip:127.0.0.1:5 SIP/2.0"),
        (b"INVITE sip:user@example.com; lr SIP/2.0", b"INVITE sip:user@127.0.0.1:5; lr SIP/2.0"),
        (b"REGISTER sip:[2001:db8::10]:5070 SIP/2.0", b"REGISTER sip:[2001:db8::10]:5070 SIP/2.0"),
        (
            b"OPTIONS soap.beep://192.0.2.103:3002 SIP/2.0",
            b"OPTIONS soap.beep://192.0.2.103:3002 SIP/2.0",
        ),
        (
            b"X sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,"
            b"weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0",
            b"X sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,"
            b"weird!*pas$wo~d_too.(doesn't-it)@127.0.0.1:5 SIP/2.0",
        ),
        (b"SIP/2.0 200 OK", b"SIP/2.0 200 OK"),
    ],
)
def test_only_the_request_uri_host_is_rewritten(line: bytes, expected: bytes) -> None:
    rest = b"\r\nVia: SIP/2.0/UDP example.com\r\n\r\n"
    assert aim_at(line + rest, "127.0.0.1", 5) == expected + rest
