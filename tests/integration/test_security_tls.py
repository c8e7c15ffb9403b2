"""SIP over TLS with the certificate first boot makes: a phone that checks
the certificate registers over TLS, and a call from the trunk reaches it over
its TLS connection, is answered and hung up. Without a certificate there is
no TLS port at all (`make run` in a checkout, and every other test)."""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest

from appliance.ops.firstboot import FirstBoot
from tests.integration.conftest import PASSWORDS, SITE
from tests.integration.harness import appliance, free_port, make_settings


class TlsPhone:
    """A SIP phone on one TLS connection, speaking just enough SIP."""

    def __init__(self, port: int, ca_file: Path) -> None:
        context = ssl.create_default_context(cafile=str(ca_file))  # checks name and chain
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
        self.port = port
        self.local_port = self.sock.getsockname()[1]
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def send(self, message: str) -> None:
        self.sock.sendall(message.encode())

    def receive(self, timeout: float = 5) -> str:
        """The next whole message on the stream (framed by Content-Length)."""
        deadline = time.monotonic() + timeout
        while True:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"^(?:Content-Length|l)\s*:\s*(\d+)", head, re.I | re.M)
                length = int(m.group(1)) if m else 0
                if len(rest) >= length:
                    self.buffer = rest[length:]
                    return (head + sep + rest[:length]).decode()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no SIP message over TLS in {timeout} s")
            self.sock.settimeout(left)
            data = self.sock.recv(65535)
            if not data:
                raise ConnectionError("Kamailio closed the TLS connection")
            self.buffer += data

    def final(self, timeout: float = 5) -> str:
        while not (message := self.receive(timeout)).startswith(("SIP/2.0 2", "SIP/2.0 3",
                                                                 "SIP/2.0 4", "SIP/2.0 5",
                                                                 "SIP/2.0 6")):  # fmt: skip
            pass
        return message

    def request(self, method: str, user: str, extra: str = "", cseq: int = 1) -> str:
        via = f"SIP/2.0/TLS 127.0.0.1:{self.local_port};branch=z9hG4bK{secrets.token_hex(6)}"
        return (
            f"{method} sip:127.0.0.1:{self.port};transport=tls SIP/2.0\r\n"
            f"Via: {via};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:{user}@linebox.local>;tag={self.tag}\r\n"
            f"To: <sip:{user}@linebox.local>\r\n"
            f"Call-ID: {self.call_id}\r\n"
            f"CSeq: {cseq} {method}\r\n"
            f"Contact: <sip:{user}@127.0.0.1:{self.local_port};transport=tls>\r\n"
            "Expires: 300\r\n"
            "User-Agent: Zoiper rv2.10.8.2\r\n"
            f"{extra}"
            "Content-Length: 0\r\n\r\n"
        )

    tag = secrets.token_hex(4)
    call_id = secrets.token_hex(8)

    def register(self, user: str, password: str) -> str:
        self.send(self.request("REGISTER", user))
        challenge = self.final()
        assert challenge.startswith("SIP/2.0 401"), challenge
        realm = re.search(r'realm="([^"]+)"', challenge).group(1)  # type: ignore[union-attr]
        nonce = re.search(r'nonce="([^"]+)"', challenge).group(1)  # type: ignore[union-attr]
        uri = f"sip:127.0.0.1:{self.port};transport=tls"
        cnonce, nc = secrets.token_hex(4), "00000001"

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        ha1, ha2 = md5(f"{user}:{realm}:{password}"), md5(f"REGISTER:{uri}")
        response = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        credentials = (
            f'Authorization: Digest username="{user}", realm="{realm}", nonce="{nonce}", '
            f'uri="{uri}", response="{response}", algorithm=MD5, qop=auth, nc={nc}, '
            f'cnonce="{cnonce}"\r\n'
        )
        self.send(self.request("REGISTER", user, credentials, cseq=2))
        return self.final()

    def answer_one_call(self, media_port: int) -> list[str]:
        """Answer the next INVITE and follow the call to its BYE; the methods
        Kamailio sent, in order."""
        seen = []
        while True:
            message = self.receive(timeout=20)
            if message.startswith("SIP/2.0"):
                continue
            method = message.split(" ", 1)[0]
            seen.append(method)
            if method == "ACK":
                continue
            headers = [
                line
                for line in message.split("\r\n")
                if line.split(":", 1)[0].lower()
                in ("via", "v", "from", "f", "to", "t", "call-id", "i", "cseq", "record-route")
            ]
            body = ""
            if method == "INVITE":
                body = (
                    "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
                    f"t=0 0\r\nm=audio {media_port} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"
                )
                headers = [h + ";tag=tlsphone" if h.lower().startswith(("to:", "t:")) else h
                           for h in headers]  # fmt: skip
                headers.append(f"Contact: <sip:1003@127.0.0.1:{self.local_port};transport=tls>")
                headers.append("Content-Type: application/sdp")
            reply = "SIP/2.0 200 OK\r\n" + "\r\n".join(headers)
            self.send(f"{reply}\r\nContent-Length: {len(body)}\r\n\r\n{body}")
            if method == "BYE":
                return seen


@pytest.fixture
def certificate(tmp_path: Path) -> Path:
    """The certificate and key first boot makes, in a directory of the test's."""
    settings = make_settings(tmp_path / "firstboot")
    tls_dir = tmp_path / "tls"
    assert FirstBoot(settings, tls_dir=tls_dir).certificate("127.0.0.1")
    return tls_dir


def test_register_and_call_over_tls_with_the_first_boot_certificate(
    tmp_path: Path, certificate: Path
) -> None:
    tls_port = free_port()
    overrides = {
        "LINEBOX_SIP_TLS_PORT": str(tls_port),
        "LINEBOX_SIP_TLS_CERTIFICATE": str(certificate / "linebox.crt"),
        "LINEBOX_SIP_TLS_KEY": str(certificate / "linebox.key"),
    }
    with appliance(tmp_path / "app", SITE, overrides=overrides) as app:
        phone = TlsPhone(tls_port, certificate / "linebox.crt")
        try:
            phone.send(phone.request("OPTIONS", "probe"))
            assert phone.final().startswith("SIP/2.0 200"), "no answer to OPTIONS over TLS"
            registered = phone.register("1003", PASSWORDS["1003"])
            assert registered.startswith("SIP/2.0 200"), registered
            assert "transport=tls" in registered.lower()

            # 4007654321 rings 1003: Kamailio reaches the phone over its TLS connection.
            seen: list[str] = []
            answering = threading.Thread(
                target=lambda: seen.extend(phone.answer_one_call(free_port())), daemon=True
            )
            answering.start()
            result = app.call("4007654321")
            answering.join(timeout=20)
            assert result.result == "RESULT 200", result
            assert seen[:2] == ["INVITE", "ACK"] and seen[-1] == "BYE", seen
            record = app.record(result.call_id)
            assert record["status"] == "answered" and record["answered_by"] == "1003", record
        finally:
            phone.close()


def test_no_tls_port_without_a_certificate(tmp_path: Path) -> None:
    tls_port = free_port()
    overrides = {
        "LINEBOX_SIP_TLS_PORT": str(tls_port),
        "LINEBOX_SIP_TLS_CERTIFICATE": str(tmp_path / "missing.crt"),
        "LINEBOX_SIP_TLS_KEY": str(tmp_path / "missing.key"),
    }
    with appliance(tmp_path / "app", SITE, overrides=overrides) as app:
        assert not app.settings.sip.tls
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", tls_port), timeout=2).close()
        assert "tls:" not in " ".join(app.procs[-1].args)  # type: ignore[arg-type]
