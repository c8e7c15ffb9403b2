"""TOTP (RFC 6238: HMAC-SHA1, 30 s steps, 6 digits), what every authenticator
app speaks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
import time
from urllib.parse import quote

STEP = 30
DIGITS = 6


def new_secret() -> str:
    return base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=")


def _key(secret: str) -> bytes:
    padded = secret.upper() + "=" * (-len(secret) % 8)
    return base64.b32decode(padded)


def code_at(secret: str, step: int) -> str:
    digest = hmac.new(_key(secret), struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**DIGITS).zfill(DIGITS)


def now_step(at: float | None = None) -> int:
    return int((time.time() if at is None else at) // STEP)


def verify(secret: str, code: str, *, last_step: int = 0, at: float | None = None) -> int | None:
    """The time step `code` belongs to (one step of clock drift either way),
    or None. A step at or before `last_step` is refused: a code works once."""
    code = code.strip().replace(" ", "")
    if not secret or len(code) != DIGITS or not code.isdigit():
        return None
    current = now_step(at)
    for step in (current - 1, current, current + 1):
        if step > last_step and hmac.compare_digest(code_at(secret, step), code):
            return step
    return None


def uri(secret: str, account: str, issuer: str = "linebox") -> str:
    """The otpauth:// URI an authenticator app scans or accepts pasted."""
    return (
        f"otpauth://totp/{quote(issuer)}:{quote(account)}?secret={secret}"
        f"&issuer={quote(issuer)}&algorithm=SHA1&digits={DIGITS}&period={STEP}"
    )
