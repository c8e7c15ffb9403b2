"""The component probes (appliance.health) and `/healthz`, against real UDP
peers on ephemeral ports and a real temporary SQLite database."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient
from piccolo.engine.sqlite import SQLiteEngine

from appliance import db, health
from appliance import settings as settings_mod
from appliance.media.ng import bencode
from appliance.settings import Settings
from web.app import create_app


def free_udp_port() -> int:
    """A port nothing listens on: the kernel answers it with "port unreachable"."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class UdpPeer:
    """A tiny UDP server in a thread: `answer` turns each datagram it gets into
    the datagrams it sends back."""

    def __init__(self, answer: Callable[[bytes], list[bytes]]) -> None:
        self.answer = answer
        self.received: list[bytes] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            self.received.append(data)
            for datagram in self.answer(data):
                self.sock.sendto(datagram, addr)

    def __enter__(self) -> UdpPeer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def sip_answer(*status_lines: str) -> Callable[[bytes], list[bytes]]:
    """Answer each SIP request with these responses, in order, as a UA would."""

    def answer(request: bytes) -> list[bytes]:
        lines = request.decode().split("\r\n")
        copied = [
            line
            for line in lines[1:]
            if line.split(":", 1)[0].lower() in ("via", "from", "call-id", "cseq")
        ]
        to = next(line for line in lines if line.lower().startswith("to:"))
        return [
            (
                f"SIP/2.0 {status}\r\n"
                + "\r\n".join([*copied, to + ";tag=peer"])
                + "\r\nContent-Length: 0\r\n\r\n"
            ).encode()
            for status in status_lines
        ]

    return answer


def ng_pong(data: bytes) -> list[bytes]:
    cookie, _, body = data.partition(b" ")
    assert body == bencode({"command": "ping"})
    return [cookie + b" " + bencode({"result": "pong"})]


def make_settings(tmp_path: Path, **environ: str) -> Settings:
    return settings_mod.load(
        environ={
            "LINEBOX_DATA_DIR": str(tmp_path),
            "LINEBOX_CONFIG": str(tmp_path / "linebox.toml"),
            "LINEBOX_SIP_PORT": str(free_udp_port()),
            "LINEBOX_MEDIA_NG_PORT": str(free_udp_port()),
            **environ,
        }
    )


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(settings_mod, "_current", None)
    s = make_settings(tmp_path)
    settings_mod.override(s)
    # The probes need a database that answers, not its tables.
    db.configure()
    return s


def with_ports(s: Settings, sip: int | None = None, ng: int | None = None) -> Settings:
    return make_settings(
        s.paths.data_dir,
        LINEBOX_SIP_PORT=str(sip or s.sip.port),
        LINEBOX_MEDIA_NG_PORT=str(ng or s.media.ng_port),
    )


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


# --- kamailio ------------------------------------------------------------------


def test_kamailio_ok_when_it_answers_200_to_options(settings: Settings) -> None:
    with UdpPeer(sip_answer("200 OK")) as peer:
        result = run(health.probe_kamailio(with_ports(settings, sip=peer.port)))

    assert result.ok, result.detail
    assert result.name == "kamailio"
    assert "SIP/2.0 200 OK" in result.detail
    request = peer.received[0].decode()
    request_line, *headers = request.split("\r\n")
    assert request_line == f"OPTIONS sip:127.0.0.1:{peer.port} SIP/2.0"
    names = {h.split(":", 1)[0] for h in headers if h}
    assert {"Via", "From", "To", "Call-ID", "CSeq", "Max-Forwards"} <= names
    assert "CSeq: 1 OPTIONS" in headers
    via = next(h for h in headers if h.startswith("Via:"))
    assert ";branch=z9hG4bK" in via and f":{peer.port}" not in via  # from its own port


def test_kamailio_skips_provisional_answers(settings: Settings) -> None:
    with UdpPeer(sip_answer("100 Trying", "200 OK")) as peer:
        result = run(health.probe_kamailio(with_ports(settings, sip=peer.port)))

    assert result.ok, result.detail


def test_kamailio_down_when_it_answers_503(settings: Settings) -> None:
    with UdpPeer(sip_answer("503 Service Unavailable")) as peer:
        result = run(health.probe_kamailio(with_ports(settings, sip=peer.port)))

    assert not result.ok
    assert "503 Service Unavailable" in result.detail


def test_kamailio_down_when_nothing_listens(settings: Settings) -> None:
    result = run(health.probe_kamailio(settings))

    assert not result.ok
    assert f"127.0.0.1:{settings.sip.port}" in result.detail
    assert result.elapsed_ms < 1000


def test_kamailio_down_when_peer_stays_silent(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "TIMEOUT", 0.2)
    with UdpPeer(lambda _request: []) as peer:
        result = run(health.probe_kamailio(with_ports(settings, sip=peer.port)))

    assert not result.ok
    assert "no answer" in result.detail


# --- rtpengine -----------------------------------------------------------------


def test_rtpengine_ok_when_it_answers_pong(settings: Settings) -> None:
    with UdpPeer(ng_pong) as peer:
        result = run(health.probe_rtpengine(with_ports(settings, ng=peer.port)))

    assert result.ok, result.detail
    assert "pong" in result.detail


def test_rtpengine_down_when_it_answers_an_error(settings: Settings) -> None:
    def error(data: bytes) -> list[bytes]:
        cookie = data.partition(b" ")[0]
        return [cookie + b" " + bencode({"result": "error", "error-reason": "shutting down"})]

    with UdpPeer(error) as peer:
        result = run(health.probe_rtpengine(with_ports(settings, ng=peer.port)))

    assert not result.ok
    assert "shutting down" in result.detail


def test_rtpengine_down_when_nothing_listens(settings: Settings) -> None:
    result = run(health.probe_rtpengine(settings))

    assert not result.ok
    assert f"127.0.0.1:{settings.media.ng_port}" in result.detail


# --- worker and database ---------------------------------------------------------


def test_worker_ok_when_heartbeat_is_fresh(settings: Settings) -> None:
    health.touch_heartbeat(settings)

    result = run(health.probe_worker(settings))

    assert result.ok, result.detail
    assert result.detail == "last heartbeat 0 s ago"


def test_worker_down_when_heartbeat_is_stale(settings: Settings) -> None:
    health.touch_heartbeat(settings)
    old = time.time() - 120
    os.utime(health.heartbeat_file(settings), (old, old))

    result = run(health.probe_worker(settings))

    assert not result.ok
    assert result.detail == "last heartbeat 120 s ago"


def test_worker_down_without_heartbeat(settings: Settings) -> None:
    result = run(health.probe_worker(settings))

    assert not result.ok
    assert result.detail == "no heartbeat"


def test_database_ok_when_select_1_works(settings: Settings) -> None:
    result = run(health.probe_database())

    assert result.ok, result.detail


def test_database_down_when_the_file_is_not_a_database(tmp_path: Path) -> None:
    broken = tmp_path / "broken.sqlite"
    broken.write_bytes(b"this is not SQLite" * 100)

    result = run(health.probe_database(SQLiteEngine(path=str(broken))))

    assert not result.ok
    assert "not a database" in result.detail


def test_check_all_probes_concurrently_in_a_stable_order(settings: Settings) -> None:
    start = time.perf_counter()
    results = run(health.check_all(settings))

    assert [r.name for r in results] == ["database", "kamailio", "rtpengine", "worker"]
    assert [r.ok for r in results] == [True, False, False, False]
    assert time.perf_counter() - start < 1.0


# --- /healthz --------------------------------------------------------------------


@pytest.fixture
def client_for() -> Iterator[Callable[[Settings], TestClient]]:
    clients: list[TestClient] = []

    def make(s: Settings) -> TestClient:
        client = TestClient(app=create_app(s))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def test_healthz_503_reports_each_component_down_when_nothing_runs(
    settings: Settings, client_for: Callable[[Settings], TestClient]
) -> None:
    response = client_for(settings).get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    components = body["components"]
    assert set(components) == {"database", "kamailio", "rtpengine", "worker"}
    assert components["database"]["ok"] is True
    for name in ("kamailio", "rtpengine", "worker"):
        assert components[name]["ok"] is False, name
        assert components[name]["detail"], name
    assert components["worker"]["detail"] == "no heartbeat"
    assert response.headers["cache-control"] == "no-store"


def test_healthz_200_when_every_component_answers(
    settings: Settings, client_for: Callable[[Settings], TestClient]
) -> None:
    health.touch_heartbeat(settings)
    with UdpPeer(sip_answer("200 OK")) as sip, UdpPeer(ng_pong) as ng:
        response = client_for(with_ports(settings, sip=sip.port, ng=ng.port)).get("/healthz")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert all(c["ok"] for c in body["components"].values())
