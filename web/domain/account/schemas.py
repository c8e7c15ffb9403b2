from __future__ import annotations

from datetime import datetime

import msgspec


class Me(msgspec.Struct, kw_only=True):
    """Who the request acts as."""

    login: str
    role: str
    """operator, owner or agent."""
    tenant: str
    """The tenant's slug; empty for an operator."""
    tenant_name: str
    extension: str
    """An agent's own extension."""
    totp_enabled: bool


class PasswordChange(msgspec.Struct, kw_only=True):
    old_password: str
    new_password: str
    """At least 10 characters, not only digits, not the login."""


class ApiTokenOut(msgspec.Struct, kw_only=True):
    id: int
    name: str
    prefix: str
    """The token's first characters, to tell it apart."""
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    """Set once revoked; a revoked token opens nothing."""


class ApiTokenCreate(msgspec.Struct, kw_only=True):
    name: str
    """What the token is for, 1 to 64 characters."""


class ApiTokenCreated(msgspec.Struct, kw_only=True):
    token: ApiTokenOut
    secret: str
    """Send as `Authorization: Bearer <secret>`. Shown this once; only a hash is kept."""
