from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class AuditEntryOut(msgspec.Struct, kw_only=True):
    """One thing that happened: a login, a logout, a configuration change."""

    id: int
    at: datetime
    tenant: str
    """The tenant's slug; empty for the appliance's own business."""
    actor: str
    """Who: a login (e-mail), or `site-file` / `system`."""
    source: str
    """From where: the client's address."""
    action: str
    """`login`, `login_failed`, `login_locked`, `logout`, `update`, `apply`, …"""
    target: str
    """What was acted on: `hotline:4001234567`, `user:owner@acme.example`."""
    detail: dict[str, Any]
    """`changes` as {field: [before, after]} and anything else worth keeping;
    secrets read `(secret)`."""


class AuditEntryList(msgspec.Struct, kw_only=True):
    items: list[AuditEntryOut]
    total: int
    limit: int
    offset: int
