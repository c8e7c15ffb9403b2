"""Sending one notice through a gateway. Each function raises GatewayError
with a message an operator can act on; the caller retries and records it.

Gateway settings (`Gateway.config`):
- smtp: host, port (25), starttls (false), ssl (false), username, password,
  from ("linebox <noreply@…>"), timeout (10);
- smpp: host, port (2775), system_id, password, system_type, source_addr,
  timeout (10);
- webhook: url, secret (HMAC-SHA256 key), timeout (10). The body is JSON
  `{"to", "text", "kind", "notice_id"}`, signed in the header
  `X-Linebox-Signature: sha256=<hex of HMAC(secret, body)>`; any 2xx is success.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import mimetypes
import smtplib
import ssl
import urllib.error
import urllib.request
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from appliance.errors import LineboxError


class GatewayError(LineboxError):
    """Sending failed; `detail` says why."""


def _timeout(config: dict[str, Any]) -> float:
    return float(config.get("timeout", 10))


def send_email(
    config: dict[str, Any], to: str, subject: str, body: str, attachment: str = ""
) -> None:
    host = config.get("host")
    if not host:
        raise GatewayError("the e-mail gateway has no host")
    message = EmailMessage()
    message["From"] = config.get("from") or "linebox <noreply@linebox.local>"
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    if attachment:
        path = Path(attachment)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise GatewayError(f"attachment {path}: {exc.strerror}") from None
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        maintype, subtype = ctype.split("/", 1)
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=path.name)
    port = int(config.get("port", 465 if config.get("ssl") else 25))
    try:
        smtp: smtplib.SMTP
        if config.get("ssl"):
            smtp = smtplib.SMTP_SSL(
                host, port, timeout=_timeout(config), context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(host, port, timeout=_timeout(config))
        with smtp:
            if config.get("starttls"):
                smtp.starttls(context=ssl.create_default_context())
            if config.get("username"):
                smtp.login(config["username"], config.get("password", ""))
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise GatewayError(f"SMTP {host}:{port}: {exc}") from None


def send_sms_smpp(config: dict[str, Any], to: str, text: str) -> None:
    import smpplib.client
    import smpplib.consts
    import smpplib.exceptions
    import smpplib.gsm

    host, port = config.get("host"), int(config.get("port", 2775))
    if not host:
        raise GatewayError("the SMPP gateway has no host")
    client = smpplib.client.Client(
        host, port, timeout=_timeout(config), allow_unknown_opt_params=True
    )
    try:
        client.connect()
        client.bind_transmitter(
            system_id=config.get("system_id", ""),
            password=config.get("password", ""),
            system_type=config.get("system_type", ""),
        )
        parts, coding, esm_class = smpplib.gsm.make_parts(text)
        for part in parts:
            client.send_message(
                source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
                source_addr_npi=smpplib.consts.SMPP_NPI_UNK,
                source_addr=config.get("source_addr", "linebox"),
                dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
                dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
                destination_addr=to,
                short_message=part,
                data_coding=coding,
                esm_class=esm_class,
                registered_delivery=False,
            )
            resp = client.read_pdu()
            if resp.command != "submit_sm_resp" or resp.is_error():
                raise GatewayError(
                    f"SMPP {host}:{port} refused the message: {resp.command} status {resp.status}"
                )
        # Delivered already: a peer that hangs up on unbind is fine.
        with contextlib.suppress(smpplib.exceptions.ConnectionError, OSError):
            client.unbind()
    except smpplib.exceptions.PDUError as exc:
        raise GatewayError(f"SMPP {host}:{port}: {exc}") from None
    except (smpplib.exceptions.ConnectionError, OSError) as exc:
        why = str(exc) or "connection lost"
        raise GatewayError(f"SMPP {host}:{port}: cannot deliver ({why})") from None
    finally:
        with contextlib.suppress(Exception):  # the socket may already be gone
            client.disconnect()


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def send_sms_webhook(config: dict[str, Any], to: str, text: str, kind: str, notice_id: int) -> None:
    url = config.get("url")
    if not url:
        raise GatewayError("the SMS webhook has no url")
    body = json.dumps(
        {"to": to, "text": text, "kind": kind, "notice_id": notice_id}, ensure_ascii=False
    ).encode()
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if config.get("secret"):
        headers["X-Linebox-Signature"] = sign(config["secret"], body)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=_timeout(config)) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        raise GatewayError(f"SMS webhook {url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise GatewayError(f"SMS webhook {url}: {reason}") from None
