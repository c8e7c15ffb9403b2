"""`linebox doctor`: is the running appliance well, and if not, what to do.

Each check gives a `Finding`: ok, warn (works, but look at it) or fail
(something a caller or a phone will notice), with a sentence saying what to
fix. The component probes are `appliance.health`'s, the same `/healthz` uses.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from appliance import health
from appliance.settings import Settings

OK, WARN, FAIL = "ok", "warn", "fail"

UNITS = (
    "linebox-network.service",
    "linebox-rtpengine.service",
    "linebox-worker.service",
    "linebox-kamailio.service",
    "linebox-web.service",
)
CERT_FILE = Path("/etc/linebox/tls/linebox.crt")
MIN_FREE_BYTES = 1 << 30
MIN_FREE_FRACTION = 0.10
CERT_WARN_DAYS = 30


@dataclass(frozen=True)
class Finding:
    name: str
    status: str
    detail: str
    fix: str = ""


# --- services ------------------------------------------------------------------


def systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def check_units(units: tuple[str, ...] = UNITS) -> list[Finding]:
    if not systemd_running():
        return [Finding("services", WARN, "systemd is not running here: units not checked")]
    found = []
    for unit in units:
        state = subprocess.run(
            ["systemctl", "is-active", unit], capture_output=True, text=True
        ).stdout.strip()
        if state == "active":
            found.append(Finding(unit, OK, "active"))
        else:
            found.append(
                Finding(
                    unit,
                    FAIL,
                    state or "unknown",
                    f"see `journalctl -u {unit} -n 50`, then `systemctl restart {unit}`",
                )
            )
    return found


def check_probes(settings: Settings) -> list[Finding]:
    fixes = {
        "database": "is the data directory full or read-only? `linebox init` migrates it",
        "kamailio": "journalctl -u linebox-kamailio: is the SIP address right (`linebox network`)?",
        "rtpengine": "journalctl -u linebox-rtpengine: is the media address right?",
        "worker": "journalctl -u linebox-worker; systemctl restart linebox-worker",
    }
    from appliance import db

    try:
        db.configure()
    except Exception as exc:  # reported as a finding, not a crash
        return [Finding("database", FAIL, str(exc), fixes["database"])]
    results = asyncio.run(health.check_all(settings))
    return [
        Finding(r.name, OK if r.ok else FAIL, r.detail, "" if r.ok else fixes.get(r.name, ""))
        for r in results
    ]


# --- ports ---------------------------------------------------------------------


def _listening(proto: str) -> set[int]:
    """Local ports with a listening (TCP) or bound (UDP) socket, IPv4 and 6."""
    ports = set()
    for suffix in ("", "6"):
        path = Path(f"/proc/net/{proto}{suffix}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            if proto == "tcp" and state != "0A":  # LISTEN
                continue
            ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def check_ports(settings: Settings) -> list[Finding]:
    udp, tcp = _listening("udp"), _listening("tcp")
    wanted = [
        ("SIP", "udp", settings.sip.port, "linebox-kamailio"),
        ("SIP", "tcp", settings.sip.port, "linebox-kamailio"),
        ("rtpengine control", "udp", settings.media.ng_port, "linebox-rtpengine"),
        ("web", "tcp", settings.web.port, "linebox-web"),
    ]
    found = []
    for what, proto, port, unit in wanted:
        listening = port in (udp if proto == "udp" else tcp)
        found.append(
            Finding(
                f"port {port}/{proto}",
                OK if listening else FAIL,
                f"{what} {'listening' if listening else 'not listening'}",
                "" if listening else f"journalctl -u {unit}: it did not bind its port",
            )
        )
    return found


# --- disk, clock, certificates, trunks -----------------------------------------


def check_disk(settings: Settings) -> Finding:
    path = settings.paths.data_dir
    while not path.exists() and path != path.parent:
        path = path.parent
    usage = shutil.disk_usage(path)
    free_gib = usage.free / (1 << 30)
    detail = f"{free_gib:.1f} GiB free of {usage.total / (1 << 30):.1f} GiB at {path}"
    if usage.free < MIN_FREE_BYTES or usage.free < usage.total * MIN_FREE_FRACTION:
        return Finding(
            "disk",
            FAIL if usage.free < MIN_FREE_BYTES / 4 else WARN,
            detail,
            "take a `linebox backup` off the box and shorten recording retention, or grow the disk",
        )
    return Finding("disk", OK, detail)


def check_clock(now: float | None = None) -> Finding:
    now = time.time() if now is None else now
    year = dt.datetime.fromtimestamp(now, dt.UTC).year
    if year < 2025:
        return Finding(
            "clock",
            FAIL,
            f"the clock says {year}",
            "schedules, billing and certificates need the right time: "
            "check `timedatectl` and that NTP (UDP 123) is reachable",
        )
    if shutil.which("timedatectl") and systemd_running():
        out = subprocess.run(
            ["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        if out == "no":
            return Finding(
                "clock",
                WARN,
                "not synchronised with NTP",
                "check `timedatectl timesync-status`: is an NTP server reachable?",
            )
        if out == "yes":
            return Finding("clock", OK, "synchronised with NTP")
    return Finding("clock", OK, f"{dt.datetime.fromtimestamp(now, dt.UTC):%Y-%m-%d %H:%M} UTC")


def check_certificate(path: Path = CERT_FILE, now: float | None = None) -> Finding:
    if not path.exists():
        return Finding(
            "certificate",
            FAIL,
            f"{path} is missing",
            "run `linebox firstboot` to make one, or install yours there",
        )
    out = subprocess.run(
        ["openssl", "x509", "-noout", "-enddate", "-in", str(path)],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        return Finding("certificate", FAIL, f"{path} is not a certificate", "replace it")
    end_text = out.stdout.strip().partition("=")[2]
    end = dt.datetime.strptime(end_text, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=dt.UTC)
    days = (end.timestamp() - (time.time() if now is None else now)) / 86400
    if days < 0:
        return Finding("certificate", FAIL, f"expired on {end:%Y-%m-%d}", "install a new one")
    if days < CERT_WARN_DAYS:
        return Finding(
            "certificate", WARN, f"expires in {days:.0f} days ({end:%Y-%m-%d})", "renew it"
        )
    return Finding("certificate", OK, f"valid until {end:%Y-%m-%d}")


def _trunks(settings: Settings) -> list[tuple[str, str, int]]:
    try:
        plan = json.loads(settings.paths.plan_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    trunks = []
    for trunk in plan.get("trunks", []):
        host, _, port = str(trunk.get("host", "")).partition(":")
        if host:
            trunks.append((str(trunk.get("name", host)), host, int(port or 5060)))
    return trunks


def check_trunks(settings: Settings, timeout: float = 2.0) -> list[Finding]:
    """SIP OPTIONS to each trunk of the published plan. A carrier that does
    not answer OPTIONS may still deliver calls: that is a warning."""

    async def ask(name: str, host: str, port: int) -> Finding:
        call_id = f"linebox-doctor-{time.monotonic_ns()}"
        try:
            answer = await health.udp_exchange(
                host,
                port,
                lambda local: health.sip_options((host, port), local, call_id),
                lambda data: data.startswith(b"SIP/2.0 ") and data[8:9] != b"1",
                timeout=timeout,
            )
        except health.ProbeFailed as exc:
            return Finding(
                f"trunk {name}",
                WARN,
                str(exc),
                "check the trunk's host in the site file, the route to the carrier, "
                "and that the carrier allows this appliance's address",
            )
        status = answer.split(b"\r\n", 1)[0].decode(errors="replace")
        return Finding(f"trunk {name}", OK, f"{host}:{port} answered {status!r}")

    async def ask_all() -> list[Finding]:
        return list(await asyncio.gather(*(ask(*t) for t in _trunks(settings))))

    return asyncio.run(ask_all())


def run_checks(settings: Settings) -> list[Finding]:
    findings = check_units()
    findings += check_probes(settings)
    findings += check_ports(settings)
    findings.append(check_disk(settings))
    findings.append(check_clock())
    findings.append(check_certificate())
    findings += check_trunks(settings)
    return findings


def report(findings: list[Finding], as_json: bool = False) -> str:
    if as_json:
        return json.dumps([asdict(f) for f in findings], ensure_ascii=False, indent=2)
    marks = {OK: "  ok  ", WARN: " WARN ", FAIL: " FAIL "}
    lines = []
    for f in findings:
        lines.append(f"[{marks[f.status]}] {f.name}: {f.detail}")
        if f.fix:
            lines.append(f"         fix: {f.fix}")
    failed = sum(f.status == FAIL for f in findings)
    warned = sum(f.status == WARN for f in findings)
    if failed:
        lines.append(f"{failed} problem(s) to fix, {warned} warning(s)")
    elif warned:
        lines.append(f"all is working; {warned} warning(s)")
    else:
        lines.append("all is well")
    return "\n".join(lines)
