"""The appliance's processes: how each is started, how we know it is ready,
and a supervisor that runs them together for `linebox run`.

The tests start the same services through `start_service()` on their own
ports and directories, so what they exercise is what `make run` runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from appliance import db
from appliance import settings as settings_mod
from appliance.settings import Settings

log = logging.getLogger(__name__)

SOURCE_ROOT = Path(__file__).resolve().parent.parent
KAMAILIO_BIN = "/usr/sbin/kamailio"
RTPENGINE_BIN = "/usr/bin/rtpengine"


def kamailio_dir() -> Path:
    return Path(os.environ.get("LINEBOX_KAMAILIO_DIR", SOURCE_ROOT / "kamailio"))


def rtpengine_dir() -> Path:
    return Path(os.environ.get("LINEBOX_RTPENGINE_DIR", SOURCE_ROOT / "rtpengine"))


@dataclass
class Service:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    ready: Callable[[], bool] = lambda: True
    """True once the service answers (polled after start)."""
    log_file: Path | None = None


def child_environment(settings: Settings) -> dict[str, str]:
    """The environment of every linebox process: the settings in force, spelt
    out as variables (they win over any settings file), and where the code is."""
    env = dict(os.environ)
    env.update(settings_mod.to_environ(settings))
    # Kamailio's embedded interpreter adds this venv's packages to its path.
    env["LINEBOX_SITE_PACKAGES"] = sysconfig.get_paths()["purelib"]
    env["PYTHONUNBUFFERED"] = "1"
    return env


def kamailio_db_url(url: str) -> str:
    """The appliance's database as Kamailio's DB modules name it."""
    path = db.sqlite_path(url)
    if path is not None:
        return f"sqlite:///{path.absolute()}"  # Kamailio drops one slash
    if url.startswith(("postgresql://", "postgres://")):
        return "postgres://" + url.split("://", 1)[1]
    return url


def kamailio_service(settings: Settings) -> Service:
    run = settings.paths.run_dir
    sip = settings.sip
    defines: dict[str, str | None] = {
        "LISTEN": f"udp:{sip.address}:{sip.port}",
        "LISTEN_TCP": f"tcp:{sip.address}:{sip.port}",
        "CTL_SOCKET": f'"unix:{run}/kamailio_ctl"',
        "RPC_FIFO": f'"{run}/kamailio_rpc.fifo"',
        "RPC_REPLY_DIR": f'"{run}/"',
        "KEMI_SCRIPT": f'"{kamailio_dir() / "kemi.py"}"',
        "RTPENGINE": f'"udp:127.0.0.1:{settings.media.ng_port}"',
        "AUTH_SECRET": f'"{secrets.token_hex(16)}"',
        "CHILDREN": str(sip.children),
        "DB_URL": f'"{kamailio_db_url(settings.database_url)}"',
        "DTMF_LISTEN": f"udp:127.0.0.1:{settings.media.dtmf_port}",
        "DS_LIST": f'"{settings.paths.gateways_file}"',
        "DS_PING": str(sip.gateway_ping),
        "DS_SOCKET": f'"udp:{sip.address}:{sip.port}"',
    }
    if sip.tls:
        defines["WITH_TLS"] = None
        defines["TLS_LISTEN"] = f"tls:{sip.address}:{sip.tls_port}"
        defines["TLS_CERTIFICATE"] = f'"{sip.tls_certificate.absolute()}"'
        defines["TLS_KEY"] = f'"{sip.tls_key.absolute()}"'
    argv = [KAMAILIO_BIN, "-DD", "-E", "-f", str(kamailio_dir() / "kamailio.cfg")]
    argv += ["-Y", str(run), "-P", str(run / "kamailio.pid"), "-w", str(run)]
    argv += ["-m", str(sip.shm_mb), "-M", str(sip.pkg_mb)]
    for name, value in defines.items():
        argv += ["-A", name if value is None else f"{name}={value}"]
    return Service(
        name="kamailio",
        argv=argv,
        env=child_environment(settings),
        ready=lambda: sip_options_ok(sip.address, sip.port),
    )


def rtpengine_service(settings: Settings) -> Service:
    media = settings.media
    address = settings.media_address
    interface = address
    if media.advertised_address:
        interface = f"{address}!{media.advertised_address}"
    argv = [
        RTPENGINE_BIN,
        f"--config-file={rtpengine_dir() / 'rtpengine.conf'}",
        "--config-section=rtpengine",
        f"--interface={interface}",
        f"--listen-ng=127.0.0.1:{media.ng_port}",
        f"--listen-cli=127.0.0.1:{media.cli_port}",
        f"--port-min={media.port_min}",
        f"--port-max={media.port_max}",
        f"--num-threads={media.threads}",
        f"--recording-dir={settings.paths.spool_dir}",
        f"--dtmf-log-dest=127.0.0.1:{media.dtmf_port}",
        f"--pidfile={settings.paths.run_dir / 'rtpengine.pid'}",
    ]

    def ready() -> bool:
        from appliance.media.ng import NgClient, NgError

        try:
            return NgClient(port=media.ng_port, timeout=0.5).ping()
        except NgError:
            return False

    return Service(name="rtpengine", argv=argv, env=child_environment(settings), ready=ready)


def web_service(settings: Settings) -> Service:
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "web.app:create_app",
        "--host",
        settings.web.host,
        "--port",
        str(settings.web.port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    return Service(
        name="web",
        argv=argv,
        env=child_environment(settings),
        ready=lambda: tcp_open(settings.web.host, settings.web.port),
    )


def worker_service(settings: Settings) -> Service:
    heartbeat = settings.paths.run_dir / "worker.heartbeat"
    return Service(
        name="worker",
        argv=[sys.executable, "-m", "appliance.cli", "worker"],
        env=child_environment(settings),
        ready=lambda: heartbeat.exists() and time.time() - heartbeat.stat().st_mtime < 90,
    )


def all_services(settings: Settings) -> list[Service]:
    """In start order: media and the worker before SIP, the web app last."""
    return [
        rtpengine_service(settings),
        worker_service(settings),
        kamailio_service(settings),
        web_service(settings),
    ]


def prepare_directories(settings: Settings) -> None:
    for path in (
        settings.paths.data_dir,
        settings.paths.run_dir,
        settings.paths.spool_dir,
        settings.paths.plan_dir,
    ):
        path.mkdir(parents=True, exist_ok=True)
    gateways = settings.paths.gateways_file
    if not gateways.exists():  # Kamailio's dispatcher needs its list from the start
        from appliance.routing.plan import EMPTY, gateway_list, write_atomically

        write_atomically(gateways, gateway_list(EMPTY).encode(), 0o644)


# ---------------------------------------------------------------- probes
def tcp_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def sip_options_ok(host: str, port: int, timeout: float = 0.5) -> bool:
    """Does a SIP server answer OPTIONS with 200 on this UDP address?"""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host if host != "0.0.0.0" else "127.0.0.1", 0))
        sock.settimeout(timeout)
        local_host, local_port = sock.getsockname()
        call_id = secrets.token_hex(8)
        message = (
            f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {local_host}:{local_port};branch=z9hG4bK{call_id};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@{local_host}>;tag={call_id}\r\n"
            f"To: <sip:{host}:{port}>\r\n"
            f"Call-ID: {call_id}@linebox-probe\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        try:
            sock.sendto(message.encode(), (host, port))
            data, _ = sock.recvfrom(65535)
        except OSError:
            return False
    return data.startswith(b"SIP/2.0 200")


# ---------------------------------------------------------------- processes
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: its own process group (so the whole
    tree can be signalled) and SIGTERM when the supervisor dies, even by
    SIGKILL, so nothing is orphaned."""
    os.setsid()
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(service: Service, log_file: Path | None = None) -> subprocess.Popen[bytes]:
    out = open(log_file, "ab") if log_file else None  # noqa: SIM115 (owned by the child)
    try:
        return subprocess.Popen(
            service.argv,
            env=service.env or None,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            preexec_fn=_die_with_parent,
        )
    finally:
        if out:
            out.close()


def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Signal the process group the process leads (the services `spawn`
    starts; the group outlives a leader that died), else the process alone
    (a tool a test started in its own group)."""
    try:
        os.killpg(proc.pid, sig)
        return
    except ProcessLookupError:
        pass  # no such group: the process leads none
    except PermissionError:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)


def stop_process(proc: subprocess.Popen[bytes], grace: float = 8.0) -> None:
    """SIGTERM the process (group), then SIGKILL what is left after `grace`."""
    if proc.poll() is None:
        _signal(proc, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    # The group may outlive its leader (Kamailio's children): kill what is left.
    _signal(proc, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(2)


class ExitedAtStart(RuntimeError):
    """The service's process ended before it was ready."""


def wait_ready(service: Service, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ExitedAtStart(f"{service.name} exited with status {proc.returncode} at start")
        if service.ready():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{service.name} did not become ready within {timeout:.0f} s")


def start(
    service: Service, log_file: Path | None = None, timeout: float = 20.0, attempts: int = 3
) -> subprocess.Popen[bytes]:
    """Spawn a service and wait until it is ready; one that exits at start is
    started again (as systemd's Restart=on-failure would): Kamailio, for one,
    gives up when the database is locked for a moment while it loads."""
    for attempt in range(1, attempts + 1):
        proc = spawn(service, log_file)
        try:
            wait_ready(service, proc, timeout)
            return proc
        except ExitedAtStart:
            if attempt == attempts:
                raise
            log.warning("%s exited at start; starting it again", service.name)
            time.sleep(1)
    raise AssertionError("unreachable")


@contextlib.contextmanager
def running(
    service: Service, log_file: Path | None = None, timeout: float = 20.0
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a service, wait until it is ready, and always stop it."""
    proc = start(service, log_file, timeout)
    try:
        yield proc
    finally:
        stop_process(proc)


class Supervisor:
    """Runs the appliance's services in the foreground.

    A service that dies is reported and restarted (at most 5 times a minute,
    then the appliance stops: something is wrong that a restart won't fix).
    SIGINT or SIGTERM stops every service it started."""

    MAX_RESTARTS_PER_MINUTE = 5

    def __init__(self, services: list[Service], log_dir: Path | None = None) -> None:
        self.services = services
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.restarts: dict[str, list[float]] = {s.name: [] for s in services}
        self.stopping = False

    def _log_file(self, service: Service) -> Path | None:
        return self.log_dir / f"{service.name}.log" if self.log_dir else None

    def start(self) -> None:
        for service in self.services:
            proc = start(service, self._log_file(service))
            self.procs[service.name] = proc
            print(f"  {service.name:<10} started (pid {proc.pid})", flush=True)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        try:
            self.start()
            while not self.stopping:
                time.sleep(0.5)
                for service in self.services:
                    proc = self.procs[service.name]
                    if proc.poll() is None or self.stopping:
                        continue
                    print(
                        f"! {service.name} exited with status {proc.returncode}",
                        file=sys.stderr,
                        flush=True,
                    )
                    recent = [t for t in self.restarts[service.name] if time.time() - t < 60]
                    if len(recent) >= self.MAX_RESTARTS_PER_MINUTE:
                        print(
                            f"! {service.name} keeps failing; stopping the appliance",
                            file=sys.stderr,
                            flush=True,
                        )
                        return 1
                    self.restarts[service.name] = [*recent, time.time()]
                    stop_process(proc)  # whatever it left behind
                    self.procs[service.name] = spawn(service, self._log_file(service))
                    print(
                        f"  {service.name} restarted (pid {self.procs[service.name].pid})",
                        flush=True,
                    )
            return 0
        except RuntimeError as exc:
            print(f"! {exc}", file=sys.stderr, flush=True)
            return 1
        finally:
            self.stop()

    def stop(self) -> None:
        for service in reversed(self.services):
            proc = self.procs.pop(service.name, None)
            if proc is not None:
                stop_process(proc)
                print(f"  {service.name:<10} stopped", flush=True)
