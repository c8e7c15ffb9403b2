"""The phone provisioning aid: what a phone or softphone needs to register an
extension, as text and as a QR code a softphone scans.

The QR code holds a SIP URI, `sip:1001:PASSWORD@192.0.2.5:5060;transport=udp`
(RFC 3261's user:password form), with the password only on the page that
shows it once; elsewhere it is `sip:1001@192.0.2.5:5060;transport=udp`."""

from __future__ import annotations

from urllib.parse import quote

import msgspec
import segno
from markupsafe import Markup

from appliance.settings import Settings

# Kamailio listens for SIP on UDP and TCP on the same port, and on TLS on
# its own port when the appliance has a certificate.
TRANSPORTS = ("udp", "tcp")
_UNSPECIFIED = {"", "0.0.0.0", "::", "[::]"}


class PhoneSettings(msgspec.Struct, kw_only=True):
    """What to enter in the phone (the password is not here: it is shown once)."""

    server: str
    """The appliance's SIP address (registrar and outbound proxy)."""
    port: int
    """The port for UDP and TCP."""
    transports: list[str]
    """Any of these works; UDP is what most phones start with."""
    tls_port: int
    """The port for SIP over TLS (`tls` in `transports`); 0 when it is off."""
    user: str
    """User name and authentication name alike: the extension number."""
    realm: str
    """The digest realm the appliance challenges with."""


def phone_settings(settings: Settings, number: str, browsed_host: str) -> PhoneSettings:
    """The settings for extension `number`. The server is the address
    Kamailio is reached at (its advertised address behind a NAT); when it
    listens on every address, the host the portal was browsed at."""
    sip = settings.sip
    server = sip.advertised_address or sip.address
    if server in _UNSPECIFIED:
        server = browsed_host
    return PhoneSettings(
        server=server,
        port=sip.port,
        transports=[*TRANSPORTS, "tls"] if sip.tls else list(TRANSPORTS),
        tls_port=sip.tls_port if sip.tls else 0,
        user=number,
        realm=sip.domain,
    )


def sip_uri(phone: PhoneSettings, password: str = "") -> str:
    """The URI a softphone reads from the QR code."""
    host = f"[{phone.server}]" if ":" in phone.server else phone.server
    userinfo = quote(phone.user, safe="")
    if password:
        userinfo += ":" + quote(password, safe="")
    return f"sip:{userinfo}@{host}:{phone.port};transport={phone.transports[0]}"


def qr_svg(text: str, title: str) -> Markup:
    """`text` as an inline SVG QR code (error correction M: survives a
    slightly blurred phone camera)."""
    code = segno.make(text, error="m", micro=False)
    return Markup(
        code.svg_inline(scale=4, border=4, dark="#000", light="#fff", title=title, svgclass="qr")
    )
