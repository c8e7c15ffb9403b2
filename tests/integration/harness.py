"""A real linebox on loopback for integration tests: Kamailio, rtpengine and
the worker started exactly as `linebox run` starts them, on free ports and in
a temporary data directory, plus sipp agents and callers.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import random
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from appliance import services
from appliance import settings as settings_mod
from appliance.media.ng import NgClient

SCENARIOS = Path(__file__).parent / "scenarios"
SIPP = "/usr/bin/sipp"
LINEBOX = [sys.executable, "-m", "appliance.cli"]


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


def free_port_block(size: int) -> int:
    """The first of `size` consecutive free UDP ports (for rtpengine's media)."""
    for _ in range(200):
        base = random.randrange(20000, 60000 - size, 2)
        socks = []
        try:
            for port in range(base, base + size):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port block")


def pids_under(root: Path) -> list[int]:
    """Processes started for this test: their environment names its data
    directory (the web app's and the worker's command lines don't)."""
    marker = f"LINEBOX_DATA_DIR={root / 'data'}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in environ and state != "Z":
            found.append(int(entry.name))
    return found


@dataclass
class Agent:
    """A sipp phone registered as an extension."""

    extension: str
    port: int
    log_file: Path
    proc: subprocess.Popen[bytes]

    def events(self) -> list[tuple[str, float]]:
        """What the phone saw, in order: ("INVITE", unix time), ("CANCEL", …)."""
        if not self.log_file.exists():
            return []
        found = re.findall(
            r"^(INVITE|CANCEL) (\d{4}-\d\d-\d\d)\s+(\d\d:\d\d:\d\d(?:\.\d+)?)",
            self.log_file.read_text(),
            re.MULTILINE,
        )
        return [
            (kind, dt.datetime.fromisoformat(f"{day} {clock}").timestamp())
            for kind, day, clock in found
        ]

    def invites(self) -> list[float]:
        return [at for kind, at in self.events() if kind == "INVITE"]


@dataclass
class SippResult:
    returncode: int
    result: str
    """What the scenario logged as `RESULT …` (the final answer it got)."""
    call_id: str
    output: str


@dataclass
class Appliance:
    root: Path
    settings: settings_mod.Settings
    trunk_port: int
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    sipp_procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def sip(self) -> str:
        return f"127.0.0.1:{self.settings.sip.port}"

    @property
    def env(self) -> dict[str, str]:
        return services.child_environment(self.settings)

    def linebox(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*LINEBOX, *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
        )

    def ng(self) -> NgClient:
        return NgClient(port=self.settings.media.ng_port)

    # ------------------------------------------------------------ sipp
    def _sipp_argv(self, scenario: str, port: int, *extra: str) -> list[str]:
        return [
            SIPP,
            "-sf",
            str(SCENARIOS / scenario),
            "-i",
            "127.0.0.1",
            "-p",
            str(port),
            "-nostdin",
            "-trace_err",
            "-trace_logs",
            "-error_file",
            str(self.root / f"sipp-{Path(scenario).name}-{port}-errors.log"),
            "-log_file",
            str(self.root / f"sipp-{Path(scenario).name}-{port}.log"),
            *extra,
        ]

    def agent(
        self,
        extension: str,
        password: str,
        scenario: str = "agent_answer.xml",
        calls: int = 1,
        media_port: int = 0,
    ) -> Agent:
        """Start a phone for `extension` that handles `calls` calls with the
        scenario, and register it."""
        port = free_port()
        media = media_port or free_port_block(4)
        argv = self._sipp_argv(
            scenario, port, "-mi", "127.0.0.1", "-mp", str(media), "-m", str(calls)
        )
        out = open(self.root / f"sipp-agent-{extension}-{port}.out", "wb")  # noqa: SIM115
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=self.root)
        self.sipp_procs.append(proc)
        out.close()
        result = self.register(extension, password, contact_port=port)
        assert result.result == "RESULT 200", f"{extension} could not register: {result}"
        return Agent(extension, port, self.root / f"sipp-{Path(scenario).name}-{port}.log", proc)

    def register(
        self, user: str, password: str, contact_port: int = 0, expires: int = 300
    ) -> SippResult:
        port = free_port()
        return self._run_sipp(
            "register.xml",
            port,
            "-s",
            user,
            "-au",
            user,
            "-ap",
            password,
            "-key",
            "contact_port",
            str(contact_port or port),
            "-key",
            "expires",
            str(expires),
        )

    def call(
        self,
        number: str,
        caller: str = "13800138000",
        from_trunk: bool = True,
        timeout: float = 60,
        media_port: int = 0,
    ) -> SippResult:
        """Place one call with caller.xml; from the trunk's address unless told."""
        port = self.trunk_port if from_trunk else free_port()
        media = media_port or free_port_block(4)
        return self._run_sipp(
            "caller.xml",
            port,
            "-s",
            number,
            "-key",
            "caller_number",
            caller,
            "-mi",
            "127.0.0.1",
            "-mp",
            str(media),
            timeout=timeout,
        )

    def call_from_extension(self, number: str, extension: str, password: str) -> SippResult:
        """A registered phone (digest credentials) dials `number`."""
        media = free_port_block(4)
        return self._run_sipp(
            "caller_auth.xml",
            free_port(),
            "-s",
            number,
            "-key",
            "caller_number",
            extension,
            "-au",
            extension,
            "-ap",
            password,
            "-mi",
            "127.0.0.1",
            "-mp",
            str(media),
        )

    def call_async(self, number: str, caller: str = "13800138000") -> subprocess.Popen[bytes]:
        media = free_port_block(4)
        argv = self._sipp_argv(
            "caller.xml",
            self.trunk_port,
            "-s",
            number,
            "-key",
            "caller_number",
            caller,
            "-mi",
            "127.0.0.1",
            "-mp",
            str(media),
            "-m",
            "1",
            "-cid_str",
            f"lbtest-{random.getrandbits(48):x}-%u@%s",
            self.sip,
        )
        out = open(self.root / f"sipp-caller-{self.trunk_port}.out", "wb")  # noqa: SIM115
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=self.root)
        out.close()
        self.sipp_procs.append(proc)
        return proc

    def _run_sipp(self, scenario: str, port: int, *extra: str, timeout: float = 30) -> SippResult:
        call_id = f"lbtest-{random.getrandbits(48):x}"
        log_file = self.root / f"sipp-{Path(scenario).name}-{port}.log"
        log_file.unlink(missing_ok=True)
        argv = self._sipp_argv(
            scenario, port, *extra, "-m", "1", "-cid_str", f"{call_id}-%u@%s", self.sip
        )
        proc = subprocess.run(argv, capture_output=True, timeout=timeout, cwd=self.root)
        logged = log_file.read_text() if log_file.exists() else ""
        found = re.findall(r"RESULT (?:SIP/2\.0 )?(\d{3}|[A-Z]+\b)", logged)
        return SippResult(
            returncode=proc.returncode,
            result=f"RESULT {found[-1]}" if found else "RESULT none",
            call_id=f"{call_id}-1@127.0.0.1",
            output=proc.stdout.decode(errors="replace")[-3000:],
        )

    # ------------------------------------------------------------ records
    def records(self) -> list[dict[str, object]]:
        db = self.settings.paths.data_dir / "linebox.sqlite"
        with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute("SELECT * FROM call_record ORDER BY id")]

    def record(self, call_id: str, final: bool = True, timeout: float = 10) -> dict[str, object]:
        """The call's record once the worker has it (and, by default, once it
        is final)."""
        deadline = time.monotonic() + timeout
        while True:
            for row in self.records():
                if row["call_id"] == call_id and (
                    not final or row["status"] not in ("ringing", "talking")
                ):
                    return row
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no {'final ' if final else ''}record for {call_id}: {self.records()}"
                )
            time.sleep(0.1)

    def kamailio_log(self) -> str:
        path = self.settings.paths.run_dir / "kamailio.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def restart_kamailio(self) -> None:
        """Stop Kamailio and start it again with the same settings (shared
        memory is gone: only what Kamailio loads at start survives)."""
        kamailio = services.kamailio_service(self.settings)
        old = next(p for p in self.procs if p.args[0] == kamailio.argv[0])
        services.stop_process(old)
        self.procs.remove(old)
        proc = services.start(kamailio, self.settings.paths.run_dir / "kamailio.log", 30)
        self.procs.append(proc)

    def apply(self, site: str) -> subprocess.CompletedProcess[str]:
        """Apply another site file to the running appliance."""
        site_file = self.root / "site-next.toml"
        site_file.write_text(site.replace("{trunk}", f"127.0.0.1:{self.trunk_port}"), "utf-8")
        return self.linebox("apply", str(site_file))

    def stop(self) -> None:
        for proc in self.sipp_procs:
            services.stop_process(proc, grace=2)
        for proc in reversed(self.procs):
            services.stop_process(proc)


def make_settings(root: Path, overrides: dict[str, str] | None = None) -> settings_mod.Settings:
    media_base = free_port_block(200)
    environ = {
        "LINEBOX_CONFIG": str(root / "no-config.toml"),
        "LINEBOX_DATA_DIR": str(root / "data"),
        "LINEBOX_SIP_PORT": str(free_port()),
        # A machine where first boot made a certificate would give every
        # test appliance the same TLS port: each gets its own.
        "LINEBOX_SIP_TLS_PORT": str(free_port()),
        "LINEBOX_SIP_CHILDREN": "2",
        "LINEBOX_SIP_SHM_MB": "64",
        "LINEBOX_MEDIA_NG_PORT": str(free_port()),
        "LINEBOX_MEDIA_CLI_PORT": str(free_port()),
        "LINEBOX_MEDIA_DTMF_PORT": str(free_port()),
        "LINEBOX_MEDIA_PORT_MIN": str(media_base),
        "LINEBOX_MEDIA_PORT_MAX": str(media_base + 199),
        "LINEBOX_WEB_PORT": str(free_port()),
        **(overrides or {}),
    }
    return settings_mod.load(environ=environ)


@contextlib.contextmanager
def appliance(
    root: Path, site: str, web: bool = False, overrides: dict[str, str] | None = None
) -> Iterator[Appliance]:
    """A running linebox with `site` applied ({trunk} in it is replaced by the
    trunk peer's address)."""
    settings = make_settings(root, overrides)
    trunk_port = free_port()
    app = Appliance(root=root, settings=settings, trunk_port=trunk_port)
    services.prepare_directories(settings)
    site_file = root / "site.toml"
    site_file.write_text(site.replace("{trunk}", f"127.0.0.1:{trunk_port}"), encoding="utf-8")
    app.linebox("init")
    applied = app.linebox("apply", str(site_file), check=False)
    assert applied.returncode == 0, applied.stderr
    wanted = [
        services.rtpengine_service(settings),
        services.worker_service(settings),
        services.kamailio_service(settings),
    ]
    if web:
        wanted.append(services.web_service(settings))
    try:
        for service in wanted:
            proc = services.start(service, settings.paths.run_dir / f"{service.name}.log", 30)
            app.procs.append(proc)
        yield app
    finally:
        app.stop()
        # Belt and braces: nothing this test started may outlive it.
        for pid in pids_under(root):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
