"""Probes run inside the appliance's network namespace (`nsenter -n`):
`python -m tests.image.probe sip HOST PORT` and `... https URL`.
Print what answered and exit 0, or say what did not and exit 1."""

from __future__ import annotations

import asyncio
import secrets
import ssl
import sys
import urllib.request

from appliance import health


def sip(host: str, port: int, uri: tuple[str, int] | None = None) -> str:
    """OPTIONS to host:port; `uri` is the appliance's own address when a
    port forward stands between (Kamailio answers OPTIONS to itself only)."""
    call_id = f"{secrets.token_hex(8)}@linebox-image-test"

    async def ask() -> bytes:
        return await health.udp_exchange(
            host,
            port,
            lambda local: health.sip_options(uri or (host, port), local, call_id),
            lambda data: data.startswith(b"SIP/2.0 ") and data[8:9] != b"1",
            timeout=2,
        )

    return asyncio.run(ask()).split(b"\r\n", 1)[0].decode()


def https(url: str) -> str:
    # The appliance's certificate is its own self-signed one.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as response:
            body = response.read(4000).decode(errors="replace")
            return f"{response.status} {body}"
    except urllib.error.HTTPError as exc:
        return f"{exc.code} {exc.read(4000).decode(errors='replace')}"


def main(argv: list[str]) -> int:
    try:
        if argv[0] == "sip":
            uri = (argv[3], int(argv[4])) if len(argv) > 4 else None
            print(sip(argv[1], int(argv[2]), uri))
        elif argv[0] == "https":
            print(https(argv[1]))
        else:
            raise SystemExit(f"unknown probe {argv[0]}")
    except (OSError, health.ProbeFailed) as exc:
        print(f"no answer: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
