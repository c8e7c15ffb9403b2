"""The SIP edge under attack: scanners, extension enumeration, password
cracking, floods and toll fraud against a running linebox.

Attackers send from their own loopback addresses (127.0.0.x, never 127.0.0.1:
the harness, sipp and the trunk use that one), so one attacker's ban says
nothing about anybody else, which the tests check too. The contract is the
`[security]` settings: `ban_seconds`, `auth_failures` in `auth_window`,
`flood_requests` per 2 s, `trusted`; banned sources and scanner User-Agents
get no answer at all.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance import services
from tests.integration.conftest import PASSWORDS, SITE
from tests.integration.harness import Appliance, appliance, free_port, free_port_block

BAN_SECONDS = 5
FLOOD_REQUESTS = 50
AUTH_FAILURES = 10
NORMAL_UA = "Zoiper rv2.10.8.2"
SCANNER_UAS = (
    "friendly-scanner",
    "sipvicious",
    "sipcli/v1.8",
    "sip-scan",
    "VaxSIPUserAgent/3.1",
    "iWar",
    "smap 0.6.0",
    "sundayddr",
)
REAL_EXTENSIONS = {"1001", "1002", "1003"}

# sipvicious always says `User-Agent: friendly-scanner`, which the edge drops
# on sight. Run as a careful attacker would, with a softphone's User-Agent, the
# tools meet the counters instead. svwar and svcrack also ignore their -b
# (bind address) option: the wrapper binds their sockets to the attacker's
# address itself.
SPOOFED = """
import socket, sys
from sipvicious.libs import svhelper
defaults = list(svhelper.makeRequest.__defaults__)
defaults[defaults.index("friendly-scanner")] = {ua!r}
svhelper.makeRequest.__defaults__ = tuple(defaults)
_bind = socket.socket.bind
def bind(self, address):
    if isinstance(address, tuple) and address[0] in ("", "0.0.0.0"):
        address = ({source!r}, *address[1:])
    return _bind(self, address)
socket.socket.bind = bind
from sipvicious.{tool} import main
sys.argv[0] = {tool!r}
main()
"""


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Appliance]:
    """One linebox with the default settings for the module's attacks, each
    from its own address (but no gateway probes: the tests count requests)."""
    with appliance(tmp_path_factory.mktemp("edge"), SITE, overrides=NO_PROBES) as app:
        yield app


@pytest.fixture(scope="module")
def short_ban(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Appliance]:
    """A linebox whose bans last seconds, so recovery can be watched."""
    root = tmp_path_factory.mktemp("short-ban")
    overrides = {"LINEBOX_SECURITY_BAN_SECONDS": str(BAN_SECONDS)}
    with appliance(root, SITE, overrides=overrides) as app:
        yield app


# ---------------------------------------------------------------- raw SIP
def request(
    method: str,
    user: str,
    source: tuple[str, int],
    port: int,
    ua: str = NORMAL_UA,
    headers: str = "",
    call_id: str = "",
) -> bytes:
    host, sport = source
    call_id = call_id or secrets.token_hex(8)
    uri = f"sip:{user}@127.0.0.1:{port}" if user else f"sip:127.0.0.1:{port}"
    to = f"sip:{user or 'probe'}@127.0.0.1"
    return (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:{sport};branch=z9hG4bK{secrets.token_hex(6)};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:{user or 'probe'}@{host}>;tag={secrets.token_hex(4)}\r\n"
        f"To: <{to}>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: 1 {method}\r\n"
        f"Contact: <sip:{user or 'probe'}@{host}:{sport}>\r\n"
        f"User-Agent: {ua}\r\n"
        f"{headers}"
        "Content-Length: 0\r\n\r\n"
    ).encode()


class Peer:
    """A UDP SIP client bound to one source address."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, 0))
        self.address = self.sock.getsockname()

    def close(self) -> None:
        self.sock.close()

    def send(self, message: bytes, port: int) -> None:
        self.sock.sendto(message, ("127.0.0.1", port))

    def final(self, timeout: float) -> bytes | None:
        """The next final answer, or None when none comes in `timeout`."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                return None
            if not data.startswith(b"SIP/2.0 1"):
                return data
        return None

    def drain(self) -> int:
        """Answers waiting in the socket (read and counted)."""
        count = 0
        self.sock.setblocking(False)
        try:
            while True:
                data = self.sock.recv(65535)
                count += not data.startswith(b"SIP/2.0 1")
        except BlockingIOError:
            pass
        finally:
            self.sock.setblocking(True)
        return count

    def ask(
        self, app: Appliance, method: str, user: str = "", timeout: float = 1.0, **kw
    ) -> bytes | None:  # type: ignore[no-untyped-def]
        self.send(
            request(method, user, self.address, app.settings.sip.port, **kw), app.settings.sip.port
        )
        return self.final(timeout)


def answered(app: Appliance, address: str, tries: int = 2) -> bool:
    """Does `address` get any answer to an OPTIONS?"""
    peer = Peer(address)
    try:
        return any(peer.ask(app, "OPTIONS", timeout=1.0) is not None for _ in range(tries))
    finally:
        peer.close()


def status(answer: bytes | None) -> int:
    return int(answer.split(b" ", 2)[1]) if answer else 0


def challenge(answer: bytes | None) -> str:
    """The challenge header of an answer with its nonce taken out."""
    assert answer, "no answer"
    m = re.search(rb"^(?:WWW|Proxy)-Authenticate:(.*)$", answer, re.MULTILINE | re.IGNORECASE)
    assert m, answer
    return re.sub(r'nonce="[^"]*"', 'nonce="…"', m.group(1).decode().strip())


# The tests that count every request Kamailio sends (tm's UAC transactions)
# turn off the OPTIONS probes of the trunks' gateways, which are requests too.
NO_PROBES = {"LINEBOX_SIP_GATEWAY_PING": "0"}


def uac_transactions(app: Appliance) -> int:
    """Requests Kamailio has sent anywhere (tm client transactions)."""
    out = subprocess.run(
        [
            *("kamcmd", "-s", f"unix:{app.settings.paths.run_dir / 'kamailio_ctl'}"),
            *("stats.get_statistics", "all"),
        ],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    return int(re.search(r"tmx:UAC_transactions\s*=\s*(\d+)", out).group(1))  # type: ignore[union-attr]


def sipvicious(  # type: ignore[no-untyped-def]
    app: Appliance, tool: str, source: str, *args: str, ua: str = NORMAL_UA, timeout: float = 90
):
    """Run a sipvicious tool from `source` with `ua` as its User-Agent (its
    own when empty); its output."""
    wrapper = SPOOFED.format(ua=ua or "friendly-scanner", tool=tool, source=source)
    argv = [sys.executable, "-c", wrapper, "-b", source, "-x", source]
    return subprocess.run(
        [*argv, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=app.root,
    )


# ---------------------------------------------------------------- scanners
def test_svmap_with_its_own_user_agent_finds_nothing(edge: Appliance) -> None:
    port = str(edge.settings.sip.port)
    run = sipvicious(edge, "svmap", "127.0.0.11", "-p", port, "127.0.0.1", ua="")
    assert "127.0.0.1" not in run.stdout, run.stdout
    assert answered(edge, "127.0.0.1")


def test_svmap_with_a_softphone_user_agent_sees_a_sip_server(edge: Appliance) -> None:
    # Answering OPTIONS is what trunks' keep-alives need: being found is fine.
    port = str(edge.settings.sip.port)
    run = sipvicious(edge, "svmap", "127.0.0.12", "-p", port, "127.0.0.1")
    assert f"127.0.0.1:{port}" in run.stdout, run.stdout + run.stderr


@pytest.mark.parametrize("ua", SCANNER_UAS)
def test_scanner_user_agents_get_no_answer(edge: Appliance, ua: str) -> None:
    peer = Peer(f"127.0.0.{13 + SCANNER_UAS.index(ua)}")
    try:
        for method, user in (("OPTIONS", ""), ("REGISTER", "1001"), ("INVITE", "4001234567")):
            answer = peer.ask(edge, method, user, timeout=0.7, ua=ua)
            assert answer is None, (ua, method, answer)
    finally:
        peer.close()


# ---------------------------------------------------------------- enumeration
def test_known_and_unknown_users_get_the_same_challenge(edge: Appliance) -> None:
    peer = Peer("127.0.0.30")
    try:
        for method, header in (("REGISTER", "Authorization"), ("INVITE", "Proxy-Authorization")):
            credentials = (
                '{h}: Digest username="{u}", realm="linebox.local", nonce="x", '
                'uri="sip:127.0.0.1", response="00000000000000000000000000000000"\r\n'
            )
            real = peer.ask(edge, method, "1001", headers=credentials.format(h=header, u="1001"))
            fake = peer.ask(edge, method, "1077", headers=credentials.format(h=header, u="1077"))
            plain_real = peer.ask(edge, method, "1001")
            plain_fake = peer.ask(edge, method, "1077")
            codes = {status(a) for a in (real, fake, plain_real, plain_fake)}
            assert codes == {401 if method == "REGISTER" else 407}, (real, fake)
            assert challenge(real) == challenge(fake) == challenge(plain_fake)
    finally:
        peer.close()


def svwar_found(output: str) -> dict[str, str]:
    """svwar's report: extension → what it saw (`reqauth`, `noauth`, …)."""
    return dict(re.findall(r"^\|\s*(\d+)\s*\|\s*(\S[^|]*?)\s*\|$", output, re.MULTILINE))


@pytest.mark.parametrize("method", ["REGISTER", "INVITE", "OPTIONS"])
def test_svwar_enumerates_no_extension(edge: Appliance, method: str) -> None:
    source = {"REGISTER": "127.0.0.31", "INVITE": "127.0.0.32", "OPTIONS": "127.0.0.33"}[method]
    target = f"udp://127.0.0.1:{edge.settings.sip.port}"
    run = sipvicious(edge, "svwar", source, "-e1000-1100", "-m", method, target)
    assert not svwar_found(run.stdout), run.stdout + run.stderr
    # Even told to scan regardless, it learns nothing: whatever it reports
    # for a real extension it reports for made-up ones too.
    forced_source = source.replace("127.0.0.", "127.0.1.")
    run = sipvicious(edge, "svwar", forced_source, "-e1000-1100", "-m", method, "--force", target)
    found = svwar_found(run.stdout)
    real = {ext: seen for ext, seen in found.items() if ext in REAL_EXTENSIONS}
    fake = {ext: seen for ext, seen in found.items() if ext not in REAL_EXTENSIONS}
    assert set(real.values()) <= set(fake.values()), run.stdout
    assert not real or len(fake) >= len(real), run.stdout


# ---------------------------------------------------------------- cracking
def wordlist(root: Path, position: int, name: str) -> Path:
    words = [f"guess-{i:03d}-{secrets.token_hex(3)}" for i in range(60)]
    words.insert(position, PASSWORDS["1001"])
    path = root / name
    path.write_text("\n".join(words) + "\n")
    return path


def test_svcrack_finds_a_password_tried_early(edge: Appliance) -> None:
    """The control: the tool works against linebox when the password comes
    before the ban does, so its failure below means something."""
    words = wordlist(edge.root, 2, "early.txt")
    target = f"udp://127.0.0.1:{edge.settings.sip.port}"
    run = sipvicious(edge, "svcrack", "127.0.0.40", "-u1001", "-d", str(words), target)
    assert PASSWORDS["1001"] in run.stdout, run.stdout + run.stderr


def test_svcrack_is_banned_before_it_reaches_the_password(edge: Appliance) -> None:
    assert len(PASSWORDS["1001"]) >= 12
    words = wordlist(edge.root, 40, "late.txt")
    target = f"udp://127.0.0.1:{edge.settings.sip.port}"
    run = sipvicious(
        edge, "svcrack", "127.0.0.41", "-u1001", "-d", str(words), "--maximumtime", "4", target
    )
    assert PASSWORDS["1001"] not in run.stdout + run.stderr, run.stdout
    assert not answered(edge, "127.0.0.41"), "the cracking source is not banned"
    # Everyone else is served.
    assert answered(edge, "127.0.0.42")
    assert edge.register("1001", PASSWORDS["1001"]).result == "RESULT 200"
    assert "authentication failed for 1001" in edge.kamailio_log()


# ---------------------------------------------------------------- floods
def flood(app: Appliance, address: str, method: str, count: int) -> tuple[int, int]:
    """Send `count` requests from `address` as fast as possible; how many were
    answered, and how many were sent before the last answer."""
    peer = Peer(address)
    answers = last_answered = 0
    try:
        for i in range(count):
            user = "1001" if method == "REGISTER" else "4001234567"
            peer.send(
                request(method, user, peer.address, app.settings.sip.port), app.settings.sip.port
            )
            got = peer.drain()
            if got:
                answers += got
                last_answered = i + 1
            time.sleep(0.002)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            if peer.final(0.2) is not None:
                answers += 1
                last_answered = count
    finally:
        peer.close()
    return answers, last_answered


@pytest.mark.parametrize(
    ("method", "address"), [("REGISTER", "127.0.0.50"), ("INVITE", "127.0.0.51")]
)
def test_flood_gets_the_source_banned_until_the_ban_ends(
    short_ban: Appliance, method: str, address: str
) -> None:
    edge = short_ban
    answers, _ = flood(edge, address, method, 200)
    # Sent within ~1 s: at most one window's worth is answered.
    assert 0 < answers <= FLOOD_REQUESTS + 5, answers
    banned_at = time.monotonic()
    assert not answered(edge, address), "the flooding source is still answered"
    assert answered(edge, "127.0.0.52"), "a bystander lost service"
    assert services.sip_options_ok("127.0.0.1", edge.settings.sip.port)
    deadline = banned_at + BAN_SECONDS + 6
    while not answered(edge, address, tries=1):
        assert time.monotonic() < deadline, "the ban never ended"
    recovered = time.monotonic() - banned_at
    assert recovered >= BAN_SECONDS - 2, f"the ban ended after {recovered:.1f} s"


def test_trusted_sources_are_not_banned_by_floods(tmp_path: Path) -> None:
    overrides = {"LINEBOX_SECURITY_TRUSTED": "127.0.0.60/32, 10.0.0.0/8"}
    with appliance(tmp_path, SITE, overrides=overrides) as app:
        answers, _ = flood(app, "127.0.0.60", "REGISTER", 150)
        assert answers >= 140, answers
        answers, _ = flood(app, "127.0.0.61", "REGISTER", 150)
        assert answers <= FLOOD_REQUESTS + 5, answers


def kamailio_memory(app: Appliance) -> tuple[int, int]:
    """(shared memory in use, summed private memory of Kamailio's processes),
    bytes. Private is RssAnon: summing plain RSS would count the shared memory
    pool once per process, growing as each process merely touches it."""
    run = app.settings.paths.run_dir
    out = subprocess.run(
        ["kamcmd", "-s", f"unix:{run / 'kamailio_ctl'}", "core.shmmem"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    shm = int(re.search(r"real_used:\s*(\d+)", out).group(1))  # type: ignore[union-attr]
    leader = int((run / "kamailio.pid").read_text().strip())
    rss = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != leader:
                continue
            status_text = (entry / "status").read_text()
        except (OSError, ProcessLookupError):
            continue
        m = re.search(r"RssAnon:\s*(\d+) kB", status_text)
        rss += int(m.group(1)) * 1024 if m else 0
    return shm, rss


@pytest.mark.slow
def test_sixty_second_flood_from_many_sources_keeps_memory_bounded(tmp_path: Path) -> None:
    """Thousands of sources, each flooding until banned, for 60 s: Kamailio's
    memory stays bounded, every flooder is banned, a bystander is served."""
    with appliance(tmp_path, SITE) as app:
        port = app.settings.sip.port
        shm_before, rss_before = kamailio_memory(app)
        samples = [(shm_before, rss_before)]
        sent = sources = 0
        started = last_sample = time.monotonic()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            while time.monotonic() - started < 60:
                sources += 1
                address = (
                    f"127.{100 + sources // 65000}.{sources // 250 % 260 % 256}.{sources % 250 + 2}"
                )
                sock.close()
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.bind((address, 0))
                sock.setblocking(False)
                source = sock.getsockname()
                for i in range(FLOOD_REQUESTS * 2):
                    method, user = ("INVITE", "4001234567") if i % 2 else ("REGISTER", "1001")
                    sock.sendto(request(method, user, source, port), ("127.0.0.1", port))
                    sent += 1
                time.sleep(0.02)  # ~5000 requests/s: more than Kamailio takes
                if time.monotonic() - last_sample > 5:
                    samples.append(kamailio_memory(app))
                    last_sample = time.monotonic()
        finally:
            sock.close()
        samples.append(kamailio_memory(app))
        assert services.sip_options_ok("127.0.0.1", port, timeout=2)
        assert answered(app, "127.0.0.250")
        shm_max = max(s for s, _ in samples)
        rss_max = max(r for _, r in samples)
        total = app.settings.sip.shm_mb * 1024 * 1024
        report = (
            f"flood: {sent} requests from {sources} sources in 60 s; "
            f"shm {shm_before / 2**20:.1f} → max {shm_max / 2**20:.1f} MiB of {total / 2**20:.0f}; "
            f"RSS {rss_before / 2**20:.1f} → max {rss_max / 2**20:.1f} MiB"
        )
        print(report)
        (tmp_path / "flood-report.txt").write_text(report + "\n")
        assert shm_max < total * 0.5, report
        assert shm_max - shm_before < 16 * 2**20, report
        assert rss_max - rss_before < 128 * 2**20, report


def test_bans_survive_a_restart_of_kamailio(tmp_path: Path) -> None:
    """A restarted Kamailio still ignores a banned source, until its ban ends."""
    ban_seconds = 15
    overrides = {"LINEBOX_SECURITY_BAN_SECONDS": str(ban_seconds)}
    with appliance(tmp_path, SITE, overrides=overrides) as app:
        peer = Peer("127.0.0.55")
        try:
            assert peer.ask(app, "OPTIONS", ua=SCANNER_UAS[0], timeout=0.5) is None
        finally:
            peer.close()
        banned_at = time.monotonic()
        assert not answered(app, "127.0.0.55")
        app.restart_kamailio()
        assert services.sip_options_ok("127.0.0.1", app.settings.sip.port)
        assert not answered(app, "127.0.0.55"), "the restarted Kamailio forgot the ban"
        assert answered(app, "127.0.0.56")
        assert "1 bans restored" in app.kamailio_log()
        deadline = banned_at + ban_seconds + 6
        while not answered(app, "127.0.0.55", tries=1):
            assert time.monotonic() < deadline, "the restored ban never ended"
        assert time.monotonic() - banned_at >= ban_seconds - 2


# ---------------------------------------------------------------- junk
JUNK = (
    lambda: os.urandom(secrets.randbelow(400) + 1),
    lambda: b'{"callid":"x","source_tag":"y","event":5}',  # what rtpengine reports
    lambda: b"GET / HTTP/1.1\r\nHost: linebox\r\n\r\n",
    lambda: b"INVITE sip:1001@127.0.0.1 SIP/2.0\r\n" + os.urandom(100),
    lambda: b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: garbage\r\n\r\n",
    lambda: b"SIP/2.0 200 OK\r\nVia: " + os.urandom(30) + b"\r\n\r\n",
)


def test_a_flood_of_junk_does_not_flood_the_log(edge: Appliance) -> None:
    """10,000 datagrams Kamailio cannot parse, from one source: the parser's
    errors are at debug level, the junk counts as a flood, and once the
    source is banned its datagrams are dropped unparsed."""
    log = edge.settings.paths.run_dir / "kamailio.log"
    port = edge.settings.sip.port
    before = log.stat().st_size
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.80", 0))
    try:
        for i in range(10_000):
            sock.sendto(JUNK[i % len(JUNK)](), ("127.0.0.1", port))
            if i % 100 == 0:
                time.sleep(0.005)  # a steady stream, not a burst the kernel drops
    finally:
        sock.close()
    time.sleep(1)
    grown = log.read_bytes()[before:]
    print(f"junk: 10000 datagrams, the log grew {len(grown)} bytes")
    assert len(grown) < 32_000, grown[-2000:].decode(errors="replace")
    assert b"parse_msg" not in grown and b"bad message" not in grown
    assert b"banning 127.0.0.80" in grown
    assert not answered(edge, "127.0.0.80"), "the junk source is not banned"
    assert answered(edge, "127.0.0.81")
    assert services.sip_options_ok("127.0.0.1", port)


# ---------------------------------------------------------------- toll fraud
MOBILE = "13912345678"
ABROAD = ("0044207946000", "+442079460000", "00861391234567", "+8613912345678")


def test_unauthenticated_invite_to_a_mobile_relays_nothing(edge: Appliance) -> None:
    before = uac_transactions(edge)
    from_outside = edge.call(MOBILE, from_trunk=False)
    assert from_outside.result in ("RESULT 407", "RESULT 401", "RESULT 403"), from_outside
    from_trunk = edge.call(MOBILE)
    assert from_trunk.result in ("RESULT 404", "RESULT 403"), from_trunk
    for number in ABROAD:
        assert edge.call(number).result in ("RESULT 404", "RESULT 403"), number
    time.sleep(0.3)
    assert uac_transactions(edge) == before


@pytest.mark.parametrize("number", [MOBILE, *ABROAD])
def test_extension_cannot_call_out_abroad_or_to_numbers_it_does_not_own(
    edge: Appliance, number: str
) -> None:
    before = uac_transactions(edge)
    result = edge.call_from_extension(number, "1003", PASSWORDS["1003"])
    assert result.result in ("RESULT 403", "RESULT 404"), (number, result.output)
    assert uac_transactions(edge) == before


TOLL_SITE = (
    SITE.rstrip()
    + """
  [tenants.hotlines.fallback]
  no_answer = ["{destination}"]
"""
)


@pytest.mark.parametrize(
    ("destination", "allow"),
    [
        ("tel:0044207946000", "international"),
        ("tel:+442079460000", "international"),
        ("tel:16888888", "premium"),
        ("tel:1795113912345678", "premium"),
    ],
)
def test_site_with_a_premium_or_international_fallback_is_refused(
    edge: Appliance, destination: str, allow: str
) -> None:
    site = TOLL_SITE.replace("{destination}", destination)
    result = apply_text(edge, site)
    assert result.returncode != 0, result.stdout
    assert f"[tenants.outbound] {allow} = true" in result.stderr + result.stdout
    allowed = site.replace(
        'name = "艾克米贸易有限公司"\n',
        f'name = "艾克米贸易有限公司"\n\n[tenants.outbound]\n{allow} = true\n',
    )
    result = apply_text(edge, allowed, dry_run=True)
    assert result.returncode == 0, result.stderr


def apply_text(
    app: Appliance, site: str, dry_run: bool = False
) -> subprocess.CompletedProcess[str]:
    path = app.root / f"toll-{secrets.token_hex(4)}.toml"
    path.write_text(site.replace("{trunk}", f"127.0.0.1:{app.trunk_port}"), encoding="utf-8")
    return app.linebox("apply", *(["--dry-run"] if dry_run else []), str(path), check=False)


def minutes_site(out_port: int) -> str:
    """The test site with a trunk for calls out first (calls out take the
    first trunk) and the hotline 4001234567 sent to a mobile through it."""
    site = SITE.replace(
        '[[trunks]]\nname = "carrier"',
        f'[[trunks]]\nname = "out"\nhost = "127.0.0.1:{out_port}"\n\n[[trunks]]\nname = "carrier"',
    )
    site = site.replace('to = "group:sales"', f'to = "tel:{MOBILE}"', 1)
    return site.replace(
        'name = "艾克米贸易有限公司"\n',
        'name = "艾克米贸易有限公司"\n\n'
        "[tenants.outbound]\nmax_calls = 40\nmax_minutes_per_hour = 1\n\n"
        '[tenants.notify]\nemail = "owner@acme.example.cn"\n',
    )


def test_outbound_minutes_per_hour_ceiling_refuses_calls_out_and_alerts(tmp_path: Path) -> None:
    """Calls out through the trunk past the tenant's minutes this hour are
    refused, with one alert: a WARNING in the log and an `alert` notice."""
    out_port = free_port()
    with appliance(tmp_path, minutes_site(out_port), overrides=NO_PROBES) as app:
        carrier = subprocess.Popen(
            app._sipp_argv(
                "agent_answer.xml",
                out_port,
                *("-mi", "127.0.0.1", "-mp", str(free_port_block(40)), "-m", "40"),
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=app.root,
        )
        app.sipp_procs.append(carrier)
        # 30 calls at once, ~2.7 s each: ~80 s out, past 1 minute.
        callers = app._sipp_argv(
            "caller.xml",
            app.trunk_port,
            *("-s", "4001234567", "-key", "caller_number", "13800138000"),
            *("-mi", "127.0.0.1", "-mp", str(free_port_block(40))),
            *("-m", "30", "-l", "30", "-r", "30", app.sip),
        )
        subprocess.run(callers, capture_output=True, timeout=90, cwd=app.root)
        answered_out = [r for r in app.records() if r["answered_kind"] == "tel"]
        assert len(answered_out) == 30, app.records()
        talked = sum(int(r["talk_seconds"]) for r in answered_out)  # type: ignore[call-overload]
        assert talked >= 60, talked
        deadline = time.monotonic() + 10
        while "ALERT tenant acme" not in app.kamailio_log():
            assert time.monotonic() < deadline, "no alert in Kamailio's log"
            time.sleep(0.2)
        before = uac_transactions(app)
        refused = app.call("4001234567")
        assert refused.result not in ("RESULT 200", "RESULT none"), refused
        assert uac_transactions(app) == before, "a call went out past the ceiling"
        notices = notices_of(app)
        assert [(n["kind"], n["channel"], n["to"]) for n in notices] == [
            ("alert", "email", "owner@acme.example.cn")
        ], notices
        assert "1 分钟" in str(notices[0]["body"])
        worker_log = (app.settings.paths.run_dir / "worker.log").read_text(errors="replace")
        assert "ALERT tenant acme" in worker_log


def notices_of(app: Appliance, timeout: float = 10) -> list[dict[str, object]]:
    db = app.settings.paths.data_dir / "linebox.sqlite"
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
            conn.row_factory = sqlite3.Row
            rows = [dict(r) for r in conn.execute("SELECT * FROM notice WHERE kind = 'alert'")]
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)
