"""Logins, lock-out, sessions and API tokens.

- Passwords are argon2 (what the site file stores). A login that names no user
  still pays for one argon2 verification, so timing says nothing about which
  logins exist.
- Lock-out: `MAX_FAILURES` wrong passwords in a row lock the typed identifier
  and, when it names a user, that user, for `LOCK_MINUTES`. A locked login is
  refused even with the right password.
- Sessions and API tokens are random 256-bit values handed out once; the
  database keeps only their HMAC-SHA256 under the appliance's secret key, so a
  copy of the database opens nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from appliance.auth import totp
from appliance.errors import LineboxError
from appliance.tables import (
    ApiToken,
    Extension,
    Hotline,
    LoginThrottle,
    Tenant,
    User,
    UserAuth,
    WebSession,
)

ROLES = ("operator", "owner", "agent")
MAX_FAILURES = 5
LOCK_MINUTES = 15
SESSION_HOURS = 12
"""A session ends this long after its last use."""
SESSION_MAX_DAYS = 7
"""... and at the latest this long after the login."""
TOKEN_PREFIX = "lbt_"
MIN_PASSWORD = 10

_hasher = PasswordHasher()
# Verified against when the login names nobody: the same work as a real check.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))
_HOTLINE = re.compile(r"^[0-9]{3,20}\Z")


class AuthError(LineboxError):
    error_id = "unauthorized"


class LoginFailed(AuthError):
    error_id = "login-failed"


class LockedOut(AuthError):
    error_id = "login-locked"


class WeakPassword(LineboxError):
    error_id = "invalid-password"


class WrongPassword(LineboxError):
    error_id = "invalid-old-password"


class InvalidTokenName(LineboxError):
    error_id = "invalid-token-name"


@dataclass(frozen=True)
class Principal:
    """Who is asking: a user, through a session or an API token."""

    user_id: int
    login: str
    role: str
    tenant_id: int | None
    """None for operators, who see every tenant."""
    tenant_slug: str = ""
    tenant_name: str = ""
    extension: str = ""
    """An agent's own extension."""
    via: str = "session"
    """`session` or `token`: only sessions need CSRF tokens."""
    session_token: str = ""
    """The raw cookie value (keys the CSRF token); empty for API tokens."""
    mfa_pending: bool = False

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"


@dataclass(frozen=True)
class ApiTokenInfo:
    id: int
    name: str
    prefix: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def keyed_hash(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def check_password_strength(password: str, login: str = "") -> None:
    """Raise WeakPassword saying what to change."""
    if len(password) < MIN_PASSWORD:
        raise WeakPassword(
            f"the password is too short: at least {MIN_PASSWORD} characters",
            {"key": "new_password"},
        )
    if password.isdigit():
        raise WeakPassword(
            "the password is only digits: add letters or other characters",
            {"key": "new_password"},
        )
    if login and password.lower() == login.lower():
        raise WeakPassword("the password must differ from the login", {"key": "new_password"})


def _verify(hash_: str, password: str) -> bool:
    try:
        return _hasher.verify(hash_, password)
    except (VerificationError, InvalidHashError):
        return False


async def _auth_row(user_id: int) -> dict[str, Any]:
    row = await UserAuth.select().where(UserAuth.user == user_id).first()
    if row is None:
        await UserAuth.insert(UserAuth(user=user_id)).on_conflict(action="DO NOTHING")
        row = await UserAuth.select().where(UserAuth.user == user_id).first()
    assert row is not None
    return row


async def _candidates(identifier: str) -> list[dict[str, Any]]:
    """The users an identifier names: the user with that login (e-mail), or
    the owners of the tenant whose hotline number it is."""
    rows = await User.select().where(User.login == identifier)
    if rows:
        return list(rows)
    if _HOTLINE.match(identifier):
        hotline = await Hotline.select(Hotline.tenant).where(Hotline.number == identifier).first()
        if hotline is not None:
            return list(
                await User.select()
                .where(User.tenant == hotline["tenant"], User.role == "owner")
                .order_by(User.position, User._meta.primary_key)
            )
    return []


def _locked(until: dt.datetime | None, now: dt.datetime) -> bool:
    return until is not None and until > now


async def login(identifier: str, password: str) -> int:
    """The id of the user `identifier` + `password` names, or LoginFailed /
    LockedOut. Counts failures and clears them on success."""
    identifier = identifier.strip()
    key = identifier.lower()[:255]
    now = _now()
    throttle = await LoginThrottle.select().where(LoginThrottle.identifier == key).first()
    users = await _candidates(identifier) if identifier and len(identifier) <= 255 else []
    auth_rows = [await _auth_row(u["id"]) for u in users]
    locked = (throttle is not None and _locked(throttle["locked_until"], now)) or any(
        _locked(a["locked_until"], now) for a in auth_rows
    )
    matched: dict[str, Any] | None = None
    if not users:
        _verify(_DUMMY_HASH, password)
    for user in users:
        if _verify(user["password_hash"], password):
            matched = user
            break
    if locked:
        raise LockedOut(
            f"too many failed logins: try again in {LOCK_MINUTES} minutes",
            {"minutes": LOCK_MINUTES},
        )
    if matched is None:
        await _count_failure(key, throttle, [a["id"] for a in auth_rows], now)
        raise LoginFailed("wrong login or password")
    await LoginThrottle.delete().where(LoginThrottle.identifier == key)
    await UserAuth.update({UserAuth.failed_logins: 0, UserAuth.locked_until: None}).where(
        UserAuth.user == matched["id"]
    )
    return int(matched["id"])


async def _count_failure(
    key: str, throttle: dict[str, Any] | None, auth_ids: list[int], now: dt.datetime
) -> None:
    # Increments in SQL, so that concurrent guesses each count.
    lock_until = now + dt.timedelta(minutes=LOCK_MINUTES)
    if throttle is None:
        await LoginThrottle.insert(
            LoginThrottle(identifier=key, failures=1, last_failure_at=now)
        ).on_conflict(action="DO NOTHING")
    else:
        await LoginThrottle.update(
            {LoginThrottle.failures: LoginThrottle.failures + 1, LoginThrottle.last_failure_at: now}
        ).where(LoginThrottle.identifier == key)
    await LoginThrottle.update(
        {LoginThrottle.failures: 0, LoginThrottle.locked_until: lock_until}
    ).where(LoginThrottle.identifier == key, LoginThrottle.failures >= MAX_FAILURES)
    if auth_ids:
        pk = UserAuth._meta.primary_key
        await UserAuth.update({UserAuth.failed_logins: UserAuth.failed_logins + 1}).where(
            pk.is_in(auth_ids)
        )
        await UserAuth.update({UserAuth.failed_logins: 0, UserAuth.locked_until: lock_until}).where(
            pk.is_in(auth_ids), UserAuth.failed_logins >= MAX_FAILURES
        )


async def totp_required(user_id: int) -> bool:
    row = await _auth_row(user_id)
    return bool(row["totp_secret"])


async def verify_totp(user_id: int, code: str) -> bool:
    """Check a code of the user's authenticator; a code is accepted once."""
    row = await _auth_row(user_id)
    step = totp.verify(row["totp_secret"], code, last_step=row["totp_last_step"])
    if step is None:
        return False
    await UserAuth.update({UserAuth.totp_last_step: step}).where(
        UserAuth._meta.primary_key == row["id"]
    )
    return True


async def set_totp(user_id: int, secret: str) -> None:
    await _auth_row(user_id)
    await UserAuth.update({UserAuth.totp_secret: secret, UserAuth.totp_last_step: 0}).where(
        UserAuth.user == user_id
    )


async def create_session(
    key: bytes, user_id: int, *, mfa_pending: bool = False, address: str = "", user_agent: str = ""
) -> str:
    """A new session for the user; returns the cookie value."""
    token = secrets.token_urlsafe(32)
    now = _now()
    await WebSession.insert(
        WebSession(
            token_hash=keyed_hash(key, token),
            user=user_id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + dt.timedelta(hours=SESSION_HOURS),
            mfa_pending=mfa_pending,
            address=address[:64],
            user_agent=user_agent[:255],
        )
    )
    # Old sessions are swept here rather than by a timer: logins are rare.
    await WebSession.delete().where(WebSession.expires_at < now)
    return token


async def delete_session(key: bytes, token: str) -> None:
    await WebSession.delete().where(WebSession.token_hash == keyed_hash(key, token))


async def _principal(user_id: int, **extra: Any) -> Principal | None:
    user = await User.select().where(User._meta.primary_key == user_id).first()
    if user is None:
        return None
    slug = name = ""
    if user["tenant"] is not None:
        tenant = await Tenant.select(Tenant.slug, Tenant.name).where(
            Tenant._meta.primary_key == user["tenant"]
        )
        if tenant:
            slug, name = tenant[0]["slug"], tenant[0]["name"]
    elif user["role"] != "operator":
        return None  # a tenant-less user who is no operator may see nothing
    role = user["role"] if user["role"] in ROLES else "agent"
    if role == "operator" and user["tenant"] is not None:
        # Operators belong to no tenant; a tenant's user who calls itself one
        # (a site file can say so) gets no more than the tenant's owner.
        role = "owner"
    extension = ""
    if role == "agent":
        auth = await _auth_row(user_id)
        extension = auth["extension"]
        # An agent's extension must be of their own tenant.
        if extension and not await Extension.exists().where(
            Extension.number == extension, Extension.tenant == user["tenant"]
        ):
            extension = ""
    return Principal(
        user_id=user_id,
        login=user["login"],
        role=role,
        tenant_id=None if role == "operator" else user["tenant"],
        tenant_slug=slug,
        tenant_name=name,
        extension=extension,
        **extra,
    )


async def principal_for_session(key: bytes, token: str) -> Principal | None:
    if not token or len(token) > 128:
        return None
    now = _now()
    row = await WebSession.select().where(WebSession.token_hash == keyed_hash(key, token)).first()
    if row is None or row["expires_at"] <= now:
        return None
    cap = row["created_at"] + dt.timedelta(days=SESSION_MAX_DAYS)
    if now > cap:
        return None
    # Slide the expiry, but write at most once a minute per session.
    if now - row["last_seen_at"] > dt.timedelta(minutes=1):
        await WebSession.update(
            {
                WebSession.last_seen_at: now,
                WebSession.expires_at: min(now + dt.timedelta(hours=SESSION_HOURS), cap),
            }
        ).where(WebSession._meta.primary_key == row["id"])
    return await _principal(
        row["user"], via="session", session_token=token, mfa_pending=row["mfa_pending"]
    )


async def finish_mfa(key: bytes, token: str) -> str:
    """The TOTP code was right: a fresh session replaces the pending one."""
    row = await WebSession.select().where(WebSession.token_hash == keyed_hash(key, token)).first()
    if row is None:
        raise AuthError("the login has expired; log in again")
    await WebSession.delete().where(WebSession._meta.primary_key == row["id"])
    return await create_session(
        key, row["user"], address=row["address"], user_agent=row["user_agent"]
    )


async def change_password(
    key: bytes, user_id: int, old: str, new: str, *, keep_session: str = ""
) -> None:
    """Check the old password, store the new one and end the user's other
    sessions. API tokens stay: they are revoked one by one."""
    user = await User.select().where(User._meta.primary_key == user_id).first()
    if user is None or not _verify(user["password_hash"], old):
        raise WrongPassword("the current password is wrong", {"key": "old_password"})
    check_password_strength(new, user["login"])
    await User.update({User.password_hash: _hasher.hash(new)}).where(
        User._meta.primary_key == user_id
    )
    await _auth_row(user_id)
    await UserAuth.update({UserAuth.password_changed_at: _now()}).where(UserAuth.user == user_id)
    query = WebSession.delete().where(WebSession.user == user_id)
    if keep_session:
        query = query.where(WebSession.token_hash != keyed_hash(key, keep_session))
    await query


async def create_api_token(key: bytes, user_id: int, name: str) -> tuple[ApiTokenInfo, str]:
    """A new token: its info and the secret, which is shown this once."""
    name = name.strip()
    if not name or len(name) > 64:
        raise InvalidTokenName("give the token a name of 1 to 64 characters", {"key": "name"})
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = _now()
    row = ApiToken(
        user=user_id,
        name=name,
        token_hash=keyed_hash(key, secret),
        prefix=secret[:10],
        created_at=now,
    )
    await row.save()
    return ApiTokenInfo(row.id, name, row.prefix, now, None, None), secret  # type: ignore[attr-defined]


async def list_api_tokens(user_id: int) -> list[ApiTokenInfo]:
    rows = (
        await ApiToken.select()
        .where(ApiToken.user == user_id)
        .order_by(ApiToken.created_at, ascending=False)
    )
    return [
        ApiTokenInfo(
            r["id"], r["name"], r["prefix"], r["created_at"], r["last_used_at"], r["revoked_at"]
        )
        for r in rows
    ]


async def revoke_api_token(user_id: int, token_id: int) -> bool:
    """Revoke one of the user's own tokens; False when they have no such token."""
    exists = await ApiToken.exists().where(
        ApiToken._meta.primary_key == token_id, ApiToken.user == user_id
    )
    if not exists:
        return False
    await ApiToken.update({ApiToken.revoked_at: _now()}).where(
        ApiToken._meta.primary_key == token_id, ApiToken.revoked_at.is_null()
    )
    return True


OPERATOR_LOCK = dt.timedelta(days=30)
"""A lock longer than this was set by an operator, not by failed logins."""


async def principal_for_token(key: bytes, secret: str) -> Principal | None:
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 128:
        return None
    row = (
        await ApiToken.select(
            ApiToken._meta.primary_key, ApiToken.user, ApiToken.revoked_at, ApiToken.last_used_at
        )
        .where(ApiToken.token_hash == keyed_hash(key, secret))
        .first()
    )
    if row is None or row["revoked_at"] is not None:
        return None
    now = _now()
    # A user an operator has locked (for years, not the minutes of a
    # brute-force lock-out) uses no token either, however it was made.
    if await UserAuth.exists().where(
        (UserAuth.user == row["user"]) & (UserAuth.locked_until > now + OPERATOR_LOCK)
    ):
        return None
    if row["last_used_at"] is None or now - row["last_used_at"] > dt.timedelta(minutes=1):
        await ApiToken.update({ApiToken.last_used_at: now}).where(
            ApiToken._meta.primary_key == row["id"]
        )
    return await _principal(row["user"], via="token")
