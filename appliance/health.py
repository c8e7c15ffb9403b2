"""Is each part of the appliance alive? Small probes for the web app's
`/healthz` and for `linebox doctor`.

Every probe returns a `ProbeResult` and never raises: a probe that cannot
reach its component says so in `detail`. Each waits at most `TIMEOUT` seconds,
and `check_all` runs them together, so a health check costs about one second
when everything is down and milliseconds when everything is up.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
from piccolo.engine.base import Engine

from appliance import db
from appliance.media.ng import bdecode, bencode
from appliance.settings import Settings

TIMEOUT = 1.0
"""Seconds a probe waits for its component."""

HEARTBEAT_FILE = "worker.heartbeat"
"""In the run directory; the worker touches it at least every
`HEARTBEAT_INTERVAL` seconds."""
HEARTBEAT_INTERVAL = 30
HEARTBEAT_MAX_AGE = 90
"""Three missed heartbeats and the worker counts as down."""


class ProbeResult(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    ok: bool
    detail: str
    elapsed_ms: float


class ProbeFailed(Exception):
    """A probe's reason to report its component as down, in words for a person."""


async def _timed(name: str, probe: Callable[[], Awaitable[str]]) -> ProbeResult:
    start = time.perf_counter()
    try:
        detail = await asyncio.wait_for(probe(), TIMEOUT * 2)
        ok = True
    except ProbeFailed as exc:
        ok, detail = False, str(exc)
    except TimeoutError:
        ok, detail = False, "no answer"
    except Exception as exc:  # a probe reports, whatever went wrong
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    elapsed = round((time.perf_counter() - start) * 1000, 1)
    return ProbeResult(name=name, ok=ok, detail=detail, elapsed_ms=elapsed)


# --- UDP request/answer --------------------------------------------------------


class _Exchange(asyncio.DatagramProtocol):
    def __init__(self, accept: Callable[[bytes], bool]) -> None:
        self.accept = accept
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: object) -> None:
        if not self.answer.done() and self.accept(data):
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:
        # On a connected UDP socket the kernel reports an ICMP "port
        # unreachable" here, so a stopped service fails fast instead of timing out.
        if not self.answer.done():
            self.answer.set_exception(exc)


async def udp_exchange(
    host: str,
    port: int,
    make_request: Callable[[tuple[str, int]], bytes],
    accept: Callable[[bytes], bool],
    timeout: float | None = None,
) -> bytes:
    """Send one datagram from an ephemeral port to host:port and return the
    first answer `accept` takes. `make_request` gets the local address (a SIP
    Via needs it). Raises ProbeFailed when nothing acceptable arrives within
    `timeout` seconds (default `TIMEOUT`)."""
    timeout = TIMEOUT if timeout is None else timeout
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _Exchange(accept), remote_addr=(host, port)
        )
    except OSError as exc:
        raise ProbeFailed(f"cannot reach {host}:{port}: {exc.strerror or exc}") from None
    try:
        local = transport.get_extra_info("sockname")
        transport.sendto(make_request((local[0], local[1])))
        return await asyncio.wait_for(protocol.answer, timeout)
    except TimeoutError:
        raise ProbeFailed(f"no answer from {host}:{port} within {timeout:g} s") from None
    except ConnectionRefusedError:
        raise ProbeFailed(f"nothing listens on {host}:{port} (connection refused)") from None
    except OSError as exc:
        raise ProbeFailed(f"{host}:{port}: {exc.strerror or exc}") from None
    finally:
        transport.close()


# --- the probes ----------------------------------------------------------------


async def probe_database(engine: Engine | None = None) -> ProbeResult:
    """`SELECT 1` on the engine the tables use (see `db.configure`)."""

    async def probe() -> str:
        target = engine or db.engine()
        await target.run_ddl("SELECT 1")
        if target.engine_type == "sqlite":
            # SQLite answers SELECT 1 without opening the file; reading the
            # schema version proves the file is there and is a database.
            await target.run_ddl("PRAGMA schema_version")
        return f"{target.engine_type} answers"

    return await _timed("database", probe)


def _host_for(address: str) -> str:
    # A wildcard listen address means "every interface"; ask on loopback.
    if address in ("", "0.0.0.0"):
        return "127.0.0.1"
    if address == "::":
        return "::1"
    return address


def _uri_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def sip_options(target: tuple[str, int], local: tuple[str, int], call_id: str) -> bytes:
    """An out-of-dialog OPTIONS addressed to the proxy itself (no user part)."""
    host, port = _uri_host(target[0]), target[1]
    branch = "z9hG4bK" + secrets.token_hex(8)
    tag = secrets.token_hex(4)
    return (
        f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {_uri_host(local[0])}:{local[1]};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:linebox-health@{host}>;tag={tag}\r\n"
        f"To: <sip:{host}:{port}>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Accept: application/sdp\r\n"
        "User-Agent: linebox-health\r\n"
        "Content-Length: 0\r\n"
        "\r\n"
    ).encode()


def _header(message: bytes, name: str, compact: str) -> str | None:
    for line in message.split(b"\r\n")[1:]:
        if not line:
            break
        key, sep, value = line.partition(b":")
        if sep and key.strip().lower() in (name.encode(), compact.encode()):
            return value.strip().decode(errors="replace")
    return None


async def probe_kamailio(settings: Settings) -> ProbeResult:
    """SIP OPTIONS over UDP to Kamailio's address; ok on `SIP/2.0 200`."""
    host, port = _host_for(settings.sip.address), settings.sip.port
    call_id = f"{secrets.token_hex(12)}@linebox-health"

    def accept(data: bytes) -> bool:
        # A final answer to our request; provisional 1xx and strays are skipped.
        return (
            data.startswith(b"SIP/2.0 ")
            and data[8:9] != b"1"
            and _header(data, "call-id", "i") == call_id
        )

    async def probe() -> str:
        answer = await udp_exchange(
            host, port, lambda local: sip_options((host, port), local, call_id), accept
        )
        status_line = answer.split(b"\r\n", 1)[0].decode(errors="replace")
        if not answer.startswith(b"SIP/2.0 200"):
            raise ProbeFailed(f"{host}:{port} answered {status_line!r}")
        return f"{host}:{port} answered {status_line!r}"

    return await _timed("kamailio", probe)


# rtpengine answers a ping with exactly this dictionary.
_PONG = bencode({"result": "pong"})


async def probe_rtpengine(settings: Settings) -> ProbeResult:
    """An ng `ping` to rtpengine's control port; ok on `pong`."""
    host, port = "127.0.0.1", settings.media.ng_port
    cookie = secrets.token_hex(6).encode()

    async def probe() -> str:
        answer = await udp_exchange(
            host,
            port,
            lambda _local: cookie + b" " + bencode({"command": "ping"}),
            lambda data: data.partition(b" ")[0] == cookie,
        )
        body = answer.partition(b" ")[2]
        if body == _PONG:
            return f"{host}:{port} answered pong"
        try:
            reply = bdecode(body)
            reason = reply.get("error-reason") or reply.get("result")
        except Exception:  # whatever it is, it is not a pong
            reason = body[:60]
        raise ProbeFailed(f"{host}:{port} answered {reason!r} to ping")

    return await _timed("rtpengine", probe)


def heartbeat_file(settings: Settings) -> Path:
    return settings.paths.run_dir / HEARTBEAT_FILE


def touch_heartbeat(settings: Settings) -> None:
    """What the worker calls every `HEARTBEAT_INTERVAL` seconds."""
    path = heartbeat_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


async def probe_worker(settings: Settings) -> ProbeResult:
    """The worker's heartbeat file is fresh (younger than `HEARTBEAT_MAX_AGE` s)."""

    async def probe() -> str:
        try:
            mtime = os.stat(heartbeat_file(settings)).st_mtime
        except FileNotFoundError:
            raise ProbeFailed("no heartbeat") from None
        # A heartbeat from the future (clock stepped back) still proves life.
        age = max(0.0, time.time() - mtime)
        if age >= HEARTBEAT_MAX_AGE:
            raise ProbeFailed(f"last heartbeat {age:.0f} s ago")
        return f"last heartbeat {age:.0f} s ago"

    return await _timed("worker", probe)


async def check_all(settings: Settings) -> list[ProbeResult]:
    """Every probe, run concurrently, in a stable order."""
    return list(
        await asyncio.gather(
            probe_database(),
            probe_kamailio(settings),
            probe_rtpengine(settings),
            probe_worker(settings),
        )
    )
