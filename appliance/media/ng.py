"""A small client for rtpengine's ng control protocol: a bencoded dictionary
in a UDP datagram, prefixed by a cookie the reply echoes.

Kamailio's rtpengine module speaks it for offer/answer/delete; linebox uses
this client for what KEMI does not expose (health pings, call queries)."""

from __future__ import annotations

import os
import socket
from typing import Any

Bencodable = bytes | str | int | list[Any] | dict[str, Any]


class NgError(Exception):
    """rtpengine did not answer, or answered with an error."""


def bencode(value: Bencodable) -> bytes:
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(f"cannot bencode {type(value).__name__}")


def bdecode(data: bytes) -> Any:
    value, end = _decode(data, 0)
    if end != len(data):
        raise ValueError("trailing data after bencoded value")
    return value


def _decode(data: bytes, i: int) -> tuple[Any, int]:
    lead = data[i : i + 1]
    if lead == b"i":
        end = data.index(b"e", i)
        return int(data[i + 1 : end]), end + 1
    if lead == b"l":
        items, i = [], i + 1
        while data[i : i + 1] != b"e":
            item, i = _decode(data, i)
            items.append(item)
        return items, i + 1
    if lead == b"d":
        result, i = {}, i + 1
        while data[i : i + 1] != b"e":
            key, i = _decode(data, i)
            name = key if isinstance(key, str) else key.decode(errors="replace")
            result[name], i = _decode(data, i)
        return result, i + 1
    if lead.isdigit():
        colon = data.index(b":", i)
        length = int(data[i:colon])
        start = colon + 1
        raw = data[start : start + length]
        if len(raw) != length:
            raise ValueError("truncated string")
        try:
            return raw.decode(), start + length
        except UnicodeDecodeError:
            return raw, start + length
    raise ValueError(f"bad bencode at offset {i}")


class NgClient:
    def __init__(self, host: str = "127.0.0.1", port: int = 2223, timeout: float = 2.0) -> None:
        self.address = (host, port)
        self.timeout = timeout

    def command(self, command: str, **params: Any) -> dict[str, Any]:
        """Send one command; return rtpengine's reply dictionary."""
        cookie = os.urandom(6).hex()
        message = cookie.encode() + b" " + bencode({"command": command, **params})
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(self.timeout)
            try:
                sock.sendto(message, self.address)
                while True:
                    data, _ = sock.recvfrom(65535)
                    got_cookie, _, body = data.partition(b" ")
                    if got_cookie.decode(errors="replace") == cookie:
                        break
            except OSError as exc:
                raise NgError(f"rtpengine at {self.address[0]}:{self.address[1]}: {exc}") from None
        reply = bdecode(body)
        if reply.get("result") == "error":
            raise NgError(reply.get("error-reason", "unknown error"))
        return reply

    def ping(self) -> bool:
        return self.command("ping").get("result") == "pong"

    def query(self, call_id: str) -> dict[str, Any]:
        return self.command("query", **{"call-id": call_id})

    def list_calls(self, limit: int = 1000) -> list[str]:
        return list(self.command("list", limit=limit).get("calls", []))
