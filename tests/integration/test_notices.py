"""Notices through real gateways: an SMTP server (aiosmtpd), an SMPP peer
that speaks the protocol (PDUs parsed and answered with smpplib's own codec),
and an HTTP webhook that checks the HMAC signature. A voicemail notice carries
a real WAV made with sox. A failing gateway is retried with backoff and its
failure is stored where the portal shows it."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import hashlib
import hmac
import http.server
import json
import socket
import socketserver
import struct
import subprocess
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
import smpplib.consts
import smpplib.smpp
from aiosmtpd.controller import Controller

from appliance import settings as settings_mod
from appliance.notify import outbox
from appliance.tables import CallRecord, Gateway, Notice, Tenant
from appliance.worker import cdr, notices
from tests.integration.harness import free_port

# ---------------------------------------------------------------- real peers


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.arrived = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(message)  # type: ignore[arg-type]
        self.arrived.set()
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Controller, Mailbox]]:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, box
    finally:
        controller.stop()


class _Seq:
    def __init__(self) -> None:
        self.n = 0

    def next_sequence(self) -> int:
        self.n += 1
        return self.n


class SmppPeer:
    """A minimal SMSC: accepts bind_transmitter, answers submit_sm (recording
    destination and decoded text) and unbind. `refuse` makes it answer
    submit_sm with ESME_RSYSERR."""

    def __init__(self, system_id: str = "linebox", password: str = "secret") -> None:
        self.system_id, self.password = system_id, password
        self.received: list[tuple[str, str]] = []
        self.arrived = threading.Event()
        self.refuse = False
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> Any:
        head = b""
        while len(head) < 4:
            chunk = conn.recv(4 - len(head))
            if not chunk:
                return None
            head += chunk
        length = struct.unpack(">L", head)[0]
        body = b""
        while len(body) < length - 4:
            chunk = conn.recv(length - 4 - len(body))
            if not chunk:
                return None
            body += chunk
        return smpplib.smpp.parse_pdu(head + body, client=_Seq(), allow_unknown_opt_params=True)

    def _session(self, conn: socket.socket) -> None:
        with conn:
            while True:
                pdu = self._read(conn)
                if pdu is None:
                    return
                if pdu.command == "bind_transmitter":
                    ok = pdu.system_id == self.system_id.encode() and (
                        pdu.password == self.password.encode()
                    )
                    resp = smpplib.smpp.make_pdu(
                        "bind_transmitter_resp", client=_Seq(), sequence=pdu.sequence,
                        status=0 if ok else smpplib.consts.SMPP_ESME_RBINDFAIL,
                        system_id="peer",
                    )  # fmt: skip
                elif pdu.command == "submit_sm":
                    coding = pdu.data_coding
                    raw = pdu.short_message
                    text = raw.decode("utf-16-be") if coding == 8 else raw.decode()
                    status = smpplib.consts.SMPP_ESME_RSYSERR if self.refuse else 0
                    if not self.refuse:
                        self.received.append((pdu.destination_addr.decode(), text))
                        self.arrived.set()
                    resp = smpplib.smpp.make_pdu(
                        "submit_sm_resp", client=_Seq(), sequence=pdu.sequence, status=status,
                        message_id=f"m{len(self.received)}",
                    )  # fmt: skip
                elif pdu.command == "unbind":
                    resp = smpplib.smpp.make_pdu(
                        "unbind_resp", client=_Seq(), sequence=pdu.sequence
                    )
                    conn.sendall(resp.generate())
                    return
                else:
                    resp = smpplib.smpp.make_pdu(
                        "generic_nack", client=_Seq(), sequence=pdu.sequence,
                        status=smpplib.consts.SMPP_ESME_RINVCMDID,
                    )  # fmt: skip
                conn.sendall(resp.generate())

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def smpp_peer() -> Iterator[SmppPeer]:
    peer = SmppPeer()
    try:
        yield peer
    finally:
        peer.close()


class Webhook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, Any], bool]]] = []
    secret = b"hook-secret"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        expected = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        good = hmac.compare_digest(expected, self.headers.get("X-Linebox-Signature", ""))
        self.received.append((json.loads(body), good))
        self.send_response(200 if good else 401)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


# ---------------------------------------------------------------- fixtures

NOW = dt.datetime(2026, 11, 20, 2, 0, tzinfo=dt.UTC)


@pytest.fixture
def tenant(request: pytest.FixtureRequest) -> dict[str, Any]:
    request.getfixturevalue("database")
    Tenant.insert(
        Tenant(
            slug="acme", name="Acme", timezone="Asia/Shanghai",
            notify={"sms": "13900000000", "email": "owner@acme.example.cn",
                    "missed_call_sms": True},
        )
    ).run_sync()  # fmt: skip
    return Tenant.select().first().output(load_json=True).run_sync()  # type: ignore[no-any-return]


def gateway(channel: str, kind: str, **config: Any) -> None:
    Gateway.insert(Gateway(channel=channel, kind=kind, config=config)).run_sync()


def deliver_all() -> list[tuple[str, int]]:
    ids = [r["id"] for r in Notice.select(Notice._meta.primary_key).run_sync()]
    return [asyncio.run(notices.deliver(i)) for i in ids]


def missed_call(call_id: str = "c1", caller: str = "13800138000") -> None:
    t0 = NOW.timestamp()
    asyncio.run(
        cdr.merge_event(
            cdr.CallEvent(
                call_id=call_id, type=cdr.END, at=t0, kind="hotline", tenant="acme",
                hotline="4001234567", caller=caller, status="missed", sip_code=480,
                cause="Temporarily Unavailable",
            ),
            now=NOW,
        )
    )  # fmt: skip


# ---------------------------------------------------------------- tests


def test_missed_call_sms_reaches_the_smpp_peer_with_caller_time_and_hotline(
    tenant: dict[str, Any], smpp_peer: SmppPeer
) -> None:
    gateway("sms", "smpp", host="127.0.0.1", port=smpp_peer.port, system_id="linebox",
            password="secret", source_addr="400")  # fmt: skip
    missed_call()
    assert deliver_all() == [("sent", 0)]
    [(to, text)] = smpp_peer.received
    assert to == "13900000000"
    assert "13800138000" in text and "4001234567" in text
    assert "2026-11-20 10:00:00" in text  # Shanghai time
    row = Notice.select().first().run_sync()
    assert (row["state"], row["attempts"], row["last_error"]) == ("sent", 1, "")
    assert Gateway.select().first().run_sync()["last_ok_at"] is not None


def test_a_caller_redialling_in_a_loop_sends_one_sms(tenant: dict[str, Any]) -> None:
    for i in range(5):
        missed_call(f"c{i}")
    missed_call("other", caller="13700000000")
    assert sorted(r["caller"] for r in Notice.select(Notice.caller).run_sync()) == [
        "13700000000",
        "13800138000",
    ]
    assert CallRecord.count().run_sync() == 6


def test_a_refused_bind_is_retried_with_backoff_and_the_failure_is_visible(
    tenant: dict[str, Any], smpp_peer: SmppPeer
) -> None:
    gateway("sms", "smpp", host="127.0.0.1", port=smpp_peer.port, system_id="linebox",
            password="wrong")  # fmt: skip
    missed_call()
    notice_id = Notice.select().first().run_sync()["id"]
    assert asyncio.run(notices.deliver(notice_id, now=NOW)) == ("retrying", notices.BACKOFF[0])
    # Not due yet: nothing happens.
    assert asyncio.run(notices.deliver(notice_id, now=NOW)) == ("", 0)
    row = Notice.select().first().run_sync()
    assert row["state"] == "retrying" and "bind" in row["last_error"].lower()
    gw = Gateway.select().first().run_sync()
    assert gw["last_error"] == row["last_error"] and gw["last_error_at"] is not None

    # The operator fixes the password: the next attempt goes out.
    Gateway.update({Gateway.config: json.dumps({
        "host": "127.0.0.1", "port": smpp_peer.port, "system_id": "linebox",
        "password": "secret"})}).where(Gateway.channel == "sms").run_sync()  # fmt: skip
    later = NOW + dt.timedelta(seconds=notices.BACKOFF[0])
    assert asyncio.run(notices.deliver(notice_id, now=later)) == ("sent", 0)
    assert len(smpp_peer.received) == 1


def test_a_gateway_that_keeps_failing_ends_failed_after_the_last_backoff(
    tenant: dict[str, Any],
) -> None:
    gateway("sms", "smpp", host="127.0.0.1", port=free_port(), timeout=1)  # nobody listens
    missed_call()
    notice_id = Notice.select().first().run_sync()["id"]
    now = NOW
    states = []
    for _ in range(len(notices.BACKOFF) + 1):
        state, delay = asyncio.run(notices.deliver(notice_id, now=now))
        states.append(state)
        now += dt.timedelta(seconds=delay)
    assert states == ["retrying"] * len(notices.BACKOFF) + ["failed"]
    row = Notice.select().first().run_sync()
    assert row["state"] == "failed" and "cannot deliver" in row["last_error"]


def test_no_gateway_configured_is_a_visible_failure(tenant: dict[str, Any]) -> None:
    missed_call()
    assert deliver_all() == [("failed", 0)]
    assert Notice.select().first().run_sync()["last_error"] == "no SMS gateway is configured"


def test_sms_through_a_signed_webhook(tenant: dict[str, Any]) -> None:
    Webhook.received = []
    server = socketserver.TCPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/sms"
        gateway("sms", "webhook", url=url, secret="hook-secret")
        missed_call()
        assert deliver_all() == [("sent", 0)]
        [(body, signed)] = Webhook.received
        assert signed and body["to"] == "13900000000" and body["kind"] == "missed_call"
        # A wrong secret is refused by the receiver: the notice is retried.
        Gateway.update(
            {Gateway.config: json.dumps({"url": url, "secret": "wrong"})}, force=True
        ).run_sync()
        missed_call("c2", caller="13700000000")
        assert sorted(deliver_all()) == [("", 0), ("retrying", notices.BACKOFF[0])]
        assert "HTTP 401" in Gateway.select().first().run_sync()["last_error"]
    finally:
        server.shutdown()
        server.server_close()


def test_voicemail_notice_mails_the_wav_and_texts_the_owner(
    tenant: dict[str, Any], smtp_server: tuple[Controller, Mailbox], smpp_peer: SmppPeer
) -> None:
    controller, box = smtp_server
    gateway("email", "smtp", host="127.0.0.1", port=controller.port, **{"from": "pbx@acme.cn"})
    gateway("sms", "smpp", host="127.0.0.1", port=smpp_peer.port, system_id="linebox",
            password="secret")  # fmt: skip
    wav = settings_mod.get().paths.data_dir / "voicemail" / "c1.wav"
    wav.parent.mkdir(parents=True)
    subprocess.run(
        ["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(wav), "synth", "1.5", "sine", "440"],
        check=True,
    )
    t0 = NOW.timestamp()
    for event in (
        cdr.CallEvent(call_id="c1", type=cdr.START, at=t0, kind="hotline", tenant="acme",
                      hotline="4001234567", caller="13800138000"),
        cdr.CallEvent(call_id="c1", type=cdr.END, at=t0 + 30, status="voicemail", sip_code=200,
                      cause="voicemail"),
    ):  # fmt: skip
        asyncio.run(cdr.merge_event(event, now=NOW))
    for _ in range(2):  # a redelivered voicemail event notifies once
        cdr.call_event.call_local(
            cdr.encode_event(cdr.CallEvent(call_id="c1", type=cdr.VOICEMAIL, at=t0 + 30,
                                           file=str(wav)))
        )  # fmt: skip
    assert sorted(deliver_all()) == [("sent", 0), ("sent", 0)]
    assert box.arrived.wait(5)
    [message] = box.messages
    assert message["To"] == "owner@acme.example.cn"
    assert "13800138000" in message["Subject"]
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "c1.wav"
    data = attachment.get_content()
    assert data == wav.read_bytes() and data[:4] == b"RIFF" and len(data) > 20000
    [(to, text)] = smpp_peer.received
    assert to == "13900000000" and "留言" in text
    record = CallRecord.select().first().run_sync()
    assert (record["status"], record["voicemail"]) == ("voicemail", str(wav))


def test_outbox_helpers_skip_a_notice_without_an_address(tenant: dict[str, Any]) -> None:
    assert asyncio.run(outbox.add(key="k", tenant=None, kind="alert", channel="email", to="",
                                  body="x")) is None  # fmt: skip
