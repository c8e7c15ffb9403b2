from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class Destination(msgspec.Struct, kw_only=True):
    channel: str
    """`sms` or `email`."""
    to: str


class NoticeRoute(msgspec.Struct, kw_only=True):
    """Where one kind of notice goes."""

    kind: str
    """`missed_call`, `voicemail`, `low_balance`, `capped` (a monthly cap was
    reached), `suspended` or `reclaim` (the numbers are due to be taken back)."""
    destinations: list[Destination]
    """Empty: this kind is not sent."""


class GatewayOut(msgspec.Struct, kw_only=True):
    """How notices leave the appliance (set by the operator)."""

    channel: str
    """`email` or `sms`."""
    kind: str
    """`smtp`, `smpp` or `webhook`."""
    enabled: bool
    status: str
    """`ok` (the last send worked), `failing` (the last send failed),
    `unused` (nothing sent yet) or `disabled`."""
    last_ok_at: datetime | None
    last_error_at: datetime | None
    last_error: str
    """Why the last send failed; shown to operators only (it names their servers)."""


class NoticeOut(msgspec.Struct, kw_only=True):
    """One notice sent (or being sent)."""

    id: int
    kind: str
    channel: str
    to: str
    subject: str
    state: str
    """`pending`, `sending`, `retrying`, `sent` or `failed` (gave up)."""
    attempts: int
    created_at: datetime
    sent_at: datetime | None


class Notifications(msgspec.Struct, kw_only=True):
    """Where a tenant's notices go and how they fare (read-only: the site
    file's `[tenants.notify]` sets them)."""

    tenant: str
    sms: str
    """The mobile number SMS notices go to; empty for none."""
    email: str
    """The address e-mail notices go to; empty for none."""
    missed_call_sms: bool
    """An SMS for each missed call (at most one per caller in the interval)."""
    missed_call_interval_s: int
    routes: list[NoticeRoute]
    gateways: list[GatewayOut]
    recent: list[NoticeOut]
    """The latest notices, newest first."""


class NoticeList(msgspec.Struct, kw_only=True):
    items: list[NoticeOut]
    total: int
    limit: int
    offset: int


class NotifyUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Where the tenant's notices go; a field left out keeps its value.
    Checked by the site file's rules for `[tenants.notify]`."""

    sms: str | msgspec.UnsetType | None = msgspec.UNSET
    """A mobile number (5 to 20 digits); empty or null for none."""
    email: str | msgspec.UnsetType | None = msgspec.UNSET
    """An e-mail address; empty or null for none."""
    missed_call_sms: bool | msgspec.UnsetType = msgspec.UNSET
    """Send an SMS for each missed call (needs `sms`)."""

    def given(self) -> dict[str, Any]:
        return {
            f: getattr(self, f)
            for f in self.__struct_fields__
            if getattr(self, f) is not msgspec.UNSET
        }
