"""The audit log: who did what, when and from where (issue #8).

One call per event, from any layer: `await audit.record("update", actor=…,
source=…, target="hotline:4001234567", changes=audit.diff(before, after))`.
The web layer has a shorter form that takes the actor, tenant and client
address from the request: `web.domain.audit.services.log`.

Secrets never reach the log: `diff` and `record` replace the value of every
key that names one (passwords, SIP secrets, TOTP seeds, tokens, PINs) with
`SECRET`, so an entry still says that a password changed, never what to.
Nothing here imports Litestar.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

import msgspec

from appliance.tables import AuditEntry, Tenant, User

log = logging.getLogger("linebox.audit")

SECRET = "(secret)"
SECRET_KEYS = frozenset(
    {
        "password",
        "password_hash",
        "new_password",
        "old_password",
        "sip_password",
        "secret",
        "totp_secret",
        "token",
        "token_hash",
        "pin",
        "api_key",
        "smtp_password",
    }
)
"""Keys whose values are never written, at any depth."""

ACTIONS = (
    "login",
    "login_failed",
    "login_locked",
    "logout",
    "password_change",
    "password_reset",
    "totp_enable",
    "totp_disable",
    "token_create",
    "token_revoke",
    "apply",
    "create",
    "update",
    "delete",
    "suspend",
    "resume",
    "topup",
    "lock",
    "unlock",
    "backup",
    "network",
)
"""The actions written so far; new ones may be added freely (the column is
free text), but reuse these where they fit so the log filters well."""

_MAX_TEXT = 255


def _is_secret(key: str) -> bool:
    key = key.lower()
    return key in SECRET_KEYS or key.endswith(("_password", "_secret", "_token"))


def _hide(value: Any) -> Any:
    # An empty secret says "none was set", which is worth keeping.
    return value if value in (None, "", SECRET) else SECRET


def redact(value: Any) -> Any:
    """`value` as plain JSON data with every secret replaced by SECRET."""
    value = msgspec.to_builtins(value)
    if isinstance(value, dict):
        return {str(k): (_hide(v) if _is_secret(str(k)) else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def diff(before: Any, after: Any) -> dict[str, list[Any]]:
    """{field: [before, after]} for the top-level fields that differ between
    two objects (dicts or msgspec Structs); a secret that changed reads
    `[SECRET, SECRET]`. A field present on one side only counts as None on
    the other."""
    old = msgspec.to_builtins(before) if before is not None else {}
    new = msgspec.to_builtins(after) if after is not None else {}
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        raise TypeError("audit.diff compares objects with fields")
    changes: dict[str, list[Any]] = {}
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if _is_secret(str(key)):
            changes[str(key)] = [_hide(a), _hide(b)]
        else:
            changes[str(key)] = [redact(a), redact(b)]
    return changes


async def tenant_id_of(slug: str) -> int | None:
    row = await Tenant.select(Tenant._meta.primary_key).where(Tenant.slug == slug).first()
    return None if row is None else int(row["id"])


async def user_of(login: str) -> dict[str, Any] | None:
    """The user with this login, as {id, login, tenant}, or None."""
    if not login or len(login) > _MAX_TEXT:
        return None
    return await (
        User.select(User._meta.primary_key, User.login, User.tenant)
        .where(User.login == login)
        .first()
    )


async def user_by_id(user_id: int) -> dict[str, Any] | None:
    return await (
        User.select(User._meta.primary_key, User.login, User.tenant)
        .where(User._meta.primary_key == user_id)
        .first()
    )


async def record(
    action: str,
    *,
    actor: str = "system",
    source: str = "",
    target: str = "",
    tenant: int | str | None = None,
    changes: Mapping[str, Any] | None = None,
    detail: Mapping[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> None:
    """Write one entry.

    - `actor`: the user's login, or `site-file` / `system`;
    - `source`: the client's address;
    - `target`: what was acted on, `kind:name` (`hotline:4001234567`);
    - `tenant`: the tenant it concerns (id or slug), so that tenant's owner
      sees it; None for the appliance's own business (trunks, operators);
    - `changes`: {field: [before, after]}, usually `diff(before, after)`;
    - `detail`: anything else worth keeping (redacted like `changes`).
    """
    if isinstance(tenant, str):
        tenant = await tenant_id_of(tenant) if tenant else None
    body: dict[str, Any] = dict(redact(dict(detail or {})))
    if changes:
        body["changes"] = {
            k: ([_hide(x) for x in v] if _is_secret(k) else redact(v)) for k, v in changes.items()
        }
    await AuditEntry.insert(
        AuditEntry(
            at=at or dt.datetime.now(dt.UTC),
            tenant=tenant,
            actor=actor[:_MAX_TEXT],
            source=source[:64],
            action=action[:64],
            target=target[:_MAX_TEXT],
            detail=body,
        )
    )
    log.info("audit: %s %s %s from %s", actor, action, target, source or "-")
