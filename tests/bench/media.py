"""Concurrent calls with media through linebox: a hotline with a ringback
prompt and `record = true` against a plain relay (a hotline of the same
appliance without either), same machine, same run, same sipp.

    python -m tests.bench.media [--levels 50,100,200,...] [--only recorded|plain]

At each level N, one sipp on the trunk places N calls at N/8 calls/s and
keeps them all up (each call rings 4 s, then both sides send G.711 for
22 s: /usr/share/sip-tester/g711a.pcap three times, 30 ms packets). A group
of sipp agents answers them. tcpdump on lo counts every RTP packet in and out
of rtpengine's port range: what the callers and agents sent against what
reached the other side, over the whole run. A level is clean when
- neither direction loses 1 % or more;
- the sipps sent at least 99 % of their audio (below that the load
  generator, not linebox, ran out of CPU);
- every call completes;
- on the recorded hotline, every answered call has its recording converted
  by the worker (`recording` set, no `recording_error`).
Stepping stops at the first level where the first path is not clean.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sqlite3
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.harness import Appliance, appliance, free_port, pids_under

HERE = Path(__file__).parent
SCENARIOS = HERE / "scenarios"
AGENTS = 4
RECORDED, PLAIN = "4001234567", "4001234568"
RAMP_S = 8
"""Every level reaches its full number of calls in this long."""
RING_S = 4
"""How long each call rings (media_uas.xml): the caller hears the ringback."""
TALK_S = 22.2
"""From the caller's ACK to its BYE (media_uac.xml)."""
RELAYED_RTP = 12 + 240
"""The UDP payload of a relayed g711a.pcap packet (30 ms of PCMA); the
ringback rtpengine plays is 20 ms packets (12 + 160)."""
PACKETS_PER_CALL = 3 * 236
"""What each side of a call sends: g711a.pcap's 236 packets, three times."""
LOSS_LIMIT = 0.01
PORTS_PER_CALL = 8
"""The media port range the benchmark gives rtpengine, per call of the
largest level: a call holds 4 (RTP and RTCP on each side), the rest is
headroom so the range is never what limits a level (`ports` in the output
says how many were in use at the peak)."""

SITE = """
[[trunks]]
name = "carrier"
host = "{trunk}"
dids = ["4001234567", "4001234568"]

[[tenants]]
slug = "bench"
name = "Bench"
%(extensions)s
[[tenants.prompts]]
name = "welcome"
file = "welcome.wav"

[[tenants.groups]]
name = "agents"
strategy = "round_robin"
ring_timeout = 20
members = [%(members)s]

[[tenants.hotlines]]
number = "4001234567"
name = "ringback and recording"
ringback = "welcome"
record = true
  [[tenants.hotlines.routes]]
  to = "group:agents"

[[tenants.hotlines]]
number = "4001234568"
name = "plain relay"
  [[tenants.hotlines.routes]]
  to = "group:agents"
"""


def site() -> str:
    numbers = [str(2001 + i) for i in range(AGENTS)]
    extensions = "".join(
        f'\n[[tenants.extensions]]\nnumber = "{n}"\npassword = "bench-{n}-secret"\n'
        for n in numbers
    )
    members = ", ".join(f'"ext:{n}"' for n in numbers)
    return SITE % {"extensions": extensions, "members": members}


@dataclass
class Traffic:
    """RTP packets seen on lo, by who sent them and who got them."""

    caller_sent: int = 0
    agent_got: int = 0
    agent_sent: int = 0
    caller_got: int = 0
    ringback: int = 0
    stray: int = 0
    """Packets between rtpengine and anything but the sipps' media ports."""

    @property
    def loss_to_agents(self) -> float:
        return 1 - self.agent_got / self.caller_sent if self.caller_sent else 1.0

    @property
    def loss_to_callers(self) -> float:
        return 1 - self.caller_got / self.agent_sent if self.agent_sent else 1.0

    @property
    def loss(self) -> float:
        return max(self.loss_to_agents, self.loss_to_callers)


@dataclass
class Level:
    path: str
    calls: int
    completed: int = 0
    failed: int = 0
    traffic: Traffic = field(default_factory=Traffic)
    """The whole run, set-up and hang-up included: what judges the level."""
    steady: Traffic = field(default_factory=Traffic)
    """While every call of the level was up (the CPU window). Packets still
    queued in rtpengine cross the window's edges, so this is exact only to
    within the relay's delay: a few tenths of a percent either way."""
    capture_dropped: int = 0
    sockets: int = 0
    """The most media ports in use at once (sampled every 0.5 s)."""
    socket_drops: int = 0
    """Datagrams the kernel dropped at rtpengine's sockets (full receive
    buffers), from /proc/net/udp every 0.5 s."""
    cpu: dict[str, float] = field(default_factory=dict)
    """Percent of one core during the load, per component."""
    answered: int = 0
    recorded: int = 0
    recording_errors: list[str] = field(default_factory=list)
    recordings_after_s: float = 0.0
    """From the last BYE to the last recording linked to its record."""

    @property
    def generator_sent(self) -> float:
        """How much of the audio the sipps should have sent they did send:
        below 99 % the load generator, not the relay, is out of CPU."""
        expected = 2 * PACKETS_PER_CALL * self.completed
        sent = self.traffic.caller_sent + self.traffic.agent_sent
        return sent / expected if expected else 0.0

    def problems(self) -> list[str]:
        found = []
        if self.failed or self.completed != self.calls:
            found.append(f"{self.calls - self.completed} calls not completed")
        if self.traffic.loss >= LOSS_LIMIT:
            found.append(f"{100 * self.traffic.loss:.2f} % loss")
        if self.capture_dropped:
            found.append("capture incomplete")
        if self.generator_sent < 0.99:
            found.append(f"generator sent only {100 * self.generator_sent:.1f} %")
        if self.path == "recorded" and not self.recorded == self.answered == self.completed:
            found.append(f"{self.completed - self.recorded} recordings missing or failed")
        return found

    @property
    def clean(self) -> bool:
        return not self.problems()


# ------------------------------------------------------------ processes
def agent_sipp(app: Appliance, root: Path, extension: str) -> tuple[int, subprocess.Popen[bytes]]:
    """A phone answering any number of calls for `extension`, registered;
    (its media port, the sipp)."""
    port, media = free_port(), free_port()
    argv = [
        "sipp",
        "-sf",
        str(SCENARIOS / "media_uas.xml"),
        "-i",
        "127.0.0.1",
        "-p",
        str(port),
        "-mi",
        "127.0.0.1",
        "-mp",
        str(media),
        "-nostdin",
        "-max_socket",
        "4096",
        "-default_behaviors",
        "all,-abortunexp",
    ]
    out = (root / f"agent-{extension}.out").open("wb")
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=root)
    app.sipp_procs.append(proc)
    time.sleep(0.3)
    reg = app.register(extension, f"bench-{extension}-secret", contact_port=port, expires=3600)
    assert reg.result == "RESULT 200", reg
    return media, proc


def place_calls(
    app: Appliance, root: Path, number: str, calls: int, tag: str
) -> tuple[int, int, subprocess.Popen[bytes]]:
    """Start sipp placing `calls` calls to `number` from the trunk, all up at
    once after the ramp; (its media port, its stats file's name, the sipp)."""
    media = free_port()
    rate = max(10, math.ceil(calls / RAMP_S))
    argv = [
        "sipp",
        app.sip,
        "-sf",
        str(SCENARIOS / "media_uac.xml"),
        "-s",
        number,
        "-i",
        "127.0.0.1",
        "-p",
        str(app.trunk_port),
        "-mi",
        "127.0.0.1",
        "-mp",
        str(media),
        "-m",
        str(calls),
        "-l",
        str(calls),
        "-r",
        str(rate),
        "-cid_str",
        f"{tag}-%u@%s",
        "-nostdin",
        "-max_socket",
        "4096",
        "-timeout",
        str(int(RAMP_S + TALK_S + 60)),
        "-recv_timeout",
        "40000",
        "-default_behaviors",
        "all,-abortunexp",
        "-cp",
        str(free_port()),
        "-trace_stat",
        "-stf",
        str(root / f"{tag}.csv"),
        "-fd",
        "1",
    ]
    out = (root / f"{tag}.out").open("wb")
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=root)
    return media, calls, proc


def sipp_counts(stats: Path, calls: int) -> tuple[int, int]:
    """(successful, failed) from sipp's statistics file; a call sipp never
    finished counts as failed."""
    lines = stats.read_text().splitlines() if stats.exists() else []
    if len(lines) < 2:
        return 0, calls
    row = dict(zip(lines[0].split(";"), lines[-1].split(";"), strict=False))
    ok = int(row.get("SuccessfulCall(C)", 0))
    failed = int(row.get("FailedCall(C)", 0))
    return ok, failed + max(0, calls - ok - failed)


@contextlib.contextmanager
def capture(root: Path, tag: str, port_min: int, port_max: int) -> Iterator[Path]:
    """tcpdump of every UDP packet to or from rtpengine's media ports (the
    first 64 bytes: enough for the UDP header)."""
    pcap = root / f"{tag}.pcap"
    errors = root / f"{tag}.tcpdump"
    argv = [
        "tcpdump",
        "-i",
        "lo",
        "-n",
        "-s",
        "64",
        "-B",
        "65536",
        "-w",
        str(pcap),
        f"udp and portrange {port_min}-{port_max}",
    ]
    with errors.open("wb") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
    time.sleep(1)
    try:
        yield pcap
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


def count(
    pcap: Path,
    caller_port: int,
    agent_ports: set[int],
    ports: tuple[int, int],
    window: tuple[float, float],
) -> tuple[Traffic, Traffic]:
    """Count the RTP packets of a capture on lo (Ethernet link type): over the
    whole capture and within `window` (Unix times)."""
    port_min, port_max = ports
    whole, steady = Traffic(), Traffic()
    data = pcap.read_bytes()
    if len(data) < 24:
        return whole, steady
    little = data[:4] == b"\xd4\xc3\xb2\xa1"
    record = struct.Struct("<IIII" if little else ">IIII")
    udp = struct.Struct("!HHH")
    pos = 24
    while pos + 16 <= len(data):
        seconds, micros, length, _ = record.unpack_from(data, pos)
        at = seconds + micros / 1e6
        frame = pos + 16
        pos = frame + length
        if length < 42 or data[frame + 12 : frame + 14] != b"\x08\x00":
            continue
        ip = frame + 14
        if data[ip + 9] != 17:
            continue
        source, dest, size = udp.unpack_from(data, ip + (data[ip] & 0x0F) * 4)
        payload = size - 8
        relay_source = port_min <= source <= port_max
        relay_dest = port_min <= dest <= port_max
        for traffic in (whole, steady) if window[0] <= at <= window[1] else (whole,):
            if relay_dest and source == caller_port:
                traffic.caller_sent += 1
            elif relay_dest and source in agent_ports:
                traffic.agent_sent += 1
            elif relay_source and dest in agent_ports:
                traffic.agent_got += 1
            elif relay_source and dest == caller_port:
                if payload == RELAYED_RTP:
                    traffic.caller_got += 1
                else:
                    traffic.ringback += 1
            else:
                traffic.stray += 1
    return whole, steady


def relay_sockets(port_min: int, port_max: int, sipps: set[int]) -> dict[int, int]:
    """The UDP sockets bound in the port range, but for the sipps' media
    ports (picked as free ports, they may fall in it): port → the kernel's
    drop count."""
    found = {}
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        port = int(fields[1].rsplit(":", 1)[1], 16)
        if port_min <= port <= port_max and port not in sipps:
            found[port] = int(fields[-1])
    return found


def tcpdump_dropped(root: Path, tag: str) -> int:
    """What tcpdump said the kernel dropped (a capture that lost packets
    cannot tell loss)."""
    text = (root / f"{tag}.tcpdump").read_text(errors="replace")
    dropped = 0
    for line in text.splitlines():
        if "dropped by" in line:
            dropped += int(line.split()[0])
    return dropped


class PeakPorts:
    """While in its `with`, every 0.5 s: the most sockets bound in the port
    range at once, and the most each port's socket dropped (a socket closed
    at hang-up takes its count with it)."""

    def __init__(self, port_min: int, port_max: int, sipps: set[int]) -> None:
        self.ports = (port_min, port_max)
        self.sipps = sipps
        self.most = 0
        self.drops: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            sockets = relay_sockets(*self.ports, self.sipps)
            self.most = max(self.most, len(sockets))
            for port, dropped in sockets.items():
                self.drops[port] = max(self.drops.get(port, 0), dropped)

    def __enter__(self) -> PeakPorts:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ------------------------------------------------------------ CPU
TICK = os.sysconf("SC_CLK_TCK")


def _cpu_ticks(pid: int) -> int:
    try:
        fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime


def _component(pid: int) -> str:
    try:
        comm = (Path("/proc") / str(pid) / "comm").read_text().strip()
        cmdline = (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    if comm in ("rtpengine", "kamailio"):
        return comm
    if b"worker" in cmdline:
        return "worker"
    return ""


def cpu_sample(app: Appliance, others: dict[str, list[int]]) -> dict[str, int]:
    """CPU ticks so far per component: the appliance's processes, the sipps
    and tcpdump passed in `others`, and the whole machine (`machine`,
    in ticks of all cores)."""
    ticks: dict[str, int] = {}
    for pid in pids_under(app.root):
        name = _component(pid)
        if name:
            ticks[name] = ticks.get(name, 0) + _cpu_ticks(pid)
    for name, pids in others.items():
        ticks[name] = sum(_cpu_ticks(pid) for pid in pids)
    cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks["machine"] = sum(int(v) for v in cpu) - int(cpu[3]) - int(cpu[4])  # minus idle, iowait
    return ticks


def cpu_percent(before: dict[str, int], after: dict[str, int], seconds: float) -> dict[str, float]:
    return {
        name: 100 * (after[name] - before.get(name, 0)) / TICK / seconds
        for name in after
        if seconds > 0
    }


# ------------------------------------------------------------ one level
def wait_drained(app: Appliance, timeout: float = 60) -> None:
    """Until rtpengine holds no call (the previous level's are all gone)."""
    deadline = time.monotonic() + timeout
    while app.ng().list_calls() and time.monotonic() < deadline:
        time.sleep(0.5)


def check_recordings(app: Appliance, level: Level, tag: str, timeout: float) -> None:
    """Wait for the worker to close every record of the level and, on the
    recorded hotline, to link or fail each recording; count them."""
    db = app.settings.paths.data_dir / "linebox.sqlite"
    start = time.monotonic()
    rows: list[sqlite3.Row] = []
    while time.monotonic() - start < timeout:
        with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute(
                "SELECT status, recording, recording_error FROM call_record WHERE call_id LIKE ?",
                (f"{tag}-%",),
            ).fetchall()
        settled = len(rows) >= level.completed and all(
            r["status"] not in ("ringing", "talking")
            and (
                level.path != "recorded"
                or r["status"] != "answered"
                or r["recording"]
                or r["recording_error"]
            )
            for r in rows
        )
        if settled:
            break
        time.sleep(1)
    level.recordings_after_s = time.monotonic() - start
    answered = [r for r in rows if r["status"] == "answered"]
    level.answered = len(answered)
    level.recorded = sum(
        1
        for r in answered
        if r["recording"] and not r["recording_error"] and Path(r["recording"]).is_file()
    )
    level.recording_errors = sorted(
        {r["recording_error"] for r in answered if r["recording_error"]}
    )


def run_level(app: Appliance, root: Path, path: str, calls: int, agents: dict[int, int]) -> Level:
    """`calls` concurrent calls to the `path` hotline ("recorded" or "plain")."""
    level = Level(path=path, calls=calls)
    tag = f"{path}-{calls}"
    media = app.settings.media
    wait_drained(app)
    sipps = set(agents)  # the caller's media port is added once chosen
    peak = PeakPorts(media.port_min, media.port_max, sipps)
    with capture(root, tag, media.port_min, media.port_max) as pcap, peak:
        sipp_pids = list(agents.values())
        number = RECORDED if path == "recorded" else PLAIN
        caller_port, _, caller = place_calls(app, root, number, calls, tag)
        sipps.add(caller_port)
        tcpdump_pids = [p for p in pids_by_name("tcpdump") if str(pcap) in _cmdline(p)]
        others = {"sipp": [*sipp_pids, caller.pid], "tcpdump": tcpdump_pids}
        # The load window: from the last call's answer to the first hang-up.
        time.sleep(RAMP_S + RING_S)
        started, window_start = time.monotonic(), time.time()
        before = cpu_sample(app, others)
        time.sleep(TALK_S - RAMP_S - 1)
        level.cpu = cpu_percent(before, cpu_sample(app, others), time.monotonic() - started)
        window = (window_start, time.time())
        level.cpu["machine"] = level.cpu["machine"] / (os.cpu_count() or 1)
        caller.wait(RAMP_S + TALK_S + 120)
        time.sleep(1)  # the last packets reach the capture
    level.sockets = peak.most
    level.socket_drops = sum(peak.drops.values())
    level.completed, level.failed = sipp_counts(root / f"{tag}.csv", calls)
    level.traffic, level.steady = count(
        pcap, caller_port, set(agents), (media.port_min, media.port_max), window
    )
    level.capture_dropped = tcpdump_dropped(root, tag)
    if not KEEP:
        pcap.unlink()
    check_recordings(app, level, tag, timeout=30 + calls * 0.1)
    return level


def pids_by_name(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
    return found


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


# ------------------------------------------------------------ the run
def describe(level: Level) -> str:
    t, w, cpu = level.traffic, level.steady, level.cpu
    recordings = (
        f"; recordings {level.recorded}/{level.answered} ({level.recordings_after_s:.0f} s)"
        if level.path == "recorded"
        else ""
    )
    errors = f" errors {level.recording_errors[:3]}" if level.recording_errors else ""
    verdict = "clean" if level.clean else "NOT clean: " + ", ".join(level.problems())
    return (
        f"  {level.path:8} {level.calls:4} calls: "
        f"{level.completed} completed, {level.failed} failed; "
        f"loss to agents {100 * t.loss_to_agents:.2f} % ({t.agent_got}/{t.caller_sent}), "
        f"to callers {100 * t.loss_to_callers:.2f} % ({t.caller_got}/{t.agent_sent}); "
        f"all calls up: {100 * w.loss_to_agents:.2f} % / {100 * w.loss_to_callers:.2f} %; "
        f"generator sent {100 * level.generator_sent:.1f} %, ringback packets {t.ringback}, "
        f"stray packets {t.stray}, "
        f"media ports at the peak {level.sockets} ({level.sockets / level.calls:.1f} a call), "
        f"socket drops {level.socket_drops}, "
        f"capture dropped {level.capture_dropped}{recordings}{errors}; "
        f"CPU % of a core: rtpengine {cpu.get('rtpengine', 0):.0f}, "
        f"kamailio {cpu.get('kamailio', 0):.0f}, worker {cpu.get('worker', 0):.0f}, "
        f"sipp {cpu.get('sipp', 0):.0f}, tcpdump {cpu.get('tcpdump', 0):.0f}, "
        f"machine {cpu.get('machine', 0):.0f} % of both cores -> {verdict}"
    )


def welcome(path: Path) -> None:
    """A 3-second tone stands in for the company's ringback prompt."""
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
            str(path),
            "synth",
            "3",
            "sine",
            "440",
            "gain",
            "-6",
        ],
        check=True,
    )


def media_block(size: int) -> int:
    """The first of `size` free UDP ports below Linux's ephemeral ports
    (32768 on), as the appliance's 30000–30999: other processes' sockets do
    not land in the range during the run and take rtpengine's ports."""
    import random
    import socket

    for _ in range(200):
        base = random.randrange(10000, 32768 - size, 2)
        socks = []
        try:
            for port in range(base, base + size):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError(f"no {size} free UDP ports below 32768")


KEEP = False
"""Keep the captures and the appliance's logs (`--keep`): the run's
directory is printed and left behind."""


def run(
    levels: list[int], paths: tuple[str, ...] = ("recorded", "plain"), ports: int = 0
) -> list[Level]:
    """Step through `levels` on each path; rtpengine gets `ports` media ports
    (by default enough that they never limit a level)."""
    results: list[Level] = []
    ports = ports or PORTS_PER_CALL * max(levels) + 400
    prefix = "linebox-bench-media-"
    directory = (
        contextlib.nullcontext(tempfile.mkdtemp(prefix=prefix))
        if KEEP
        else tempfile.TemporaryDirectory(prefix=prefix)
    )
    with directory as tmp:
        if KEEP:
            print(f"  keeping {tmp}", flush=True)
        root = Path(tmp)
        (root / "linebox").mkdir()
        welcome(root / "linebox" / "welcome.wav")
        base = media_block(ports)
        sized = {
            "LINEBOX_SIP_CHILDREN": "4",
            "LINEBOX_SIP_SHM_MB": "256",
            "LINEBOX_MEDIA_PORT_MIN": str(base),
            "LINEBOX_MEDIA_PORT_MAX": str(base + ports - 1),
        }
        with appliance(root / "linebox", site(), overrides=sized) as app:
            agents: dict[int, int] = {}
            for i in range(AGENTS):
                extension = str(2001 + i)
                media_port, proc = agent_sipp(app, root, extension)
                agents[media_port] = proc.pid
            for calls in levels:
                level_results = []
                for path in paths:
                    level_results.append(run_level(app, root, path, calls, agents))
                    print(describe(level_results[-1]), flush=True)
                results.extend(level_results)
                # Stepping stops where the first path (the product's) stops being clean.
                if not level_results[0].clean:
                    break
    return results


def clean_max(results: list[Level], path: str) -> int:
    largest = 0
    for level in sorted((r for r in results if r.path == path), key=lambda r: r.calls):
        if not level.clean:
            break
        largest = level.calls
    return largest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="50,100,200,300,400,500")
    parser.add_argument(
        "--only", choices=("recorded", "plain"), help="run one path instead of both"
    )
    parser.add_argument("--keep", action="store_true", help="keep captures and logs")
    parser.add_argument(
        "--ports",
        type=int,
        default=0,
        help="rtpengine's media port range size (the appliance's default is 1000)",
    )
    args = parser.parse_args(argv)
    try:
        levels = [int(v) for v in args.levels.split(",")]
    except ValueError:
        parser.error(f"--levels must be numbers separated by commas, not {args.levels!r}")
    if not levels or min(levels) < 1:
        parser.error("--levels must be positive")
    if args.ports and not 100 <= args.ports <= 20000:
        parser.error("--ports must be between 100 and 20000")
    if not args.ports and PORTS_PER_CALL * max(levels) + 400 > 20000:
        parser.error("--levels above 2,450 calls need more ports than fit below 32768")
    paths = (args.only,) if args.only else ("recorded", "plain")
    print(
        "concurrent calls with media (ringback + recording vs plain relay), "
        f"{RAMP_S} s ramp, {TALK_S:.0f} s of G.711 each way per call:"
    )
    global KEEP
    KEEP = args.keep
    results = run(levels, paths, args.ports)
    summary = ", ".join(f"{path} {clean_max(results, path)}" for path in paths)
    print(f"largest clean level (< 1 % loss, every call completed and recorded): {summary}")


if __name__ == "__main__":
    main()
