from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class _In(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


def given(struct: Any) -> dict[str, Any]:
    """The fields of an update that were sent (a field left out keeps its value)."""
    return {
        f: getattr(struct, f)
        for f in struct.__struct_fields__
        if getattr(struct, f) is not msgspec.UNSET
    }


# --- tenants ---------------------------------------------------------------------


class TenantOut(msgspec.Struct, kw_only=True):
    """A business the appliance serves (企业用户)."""

    slug: str
    name: str
    timezone: str
    balance: str
    """The prepaid balance in yuan, e.g. "500.00"."""
    suspended: bool
    """Its hotlines refuse calls (set by billing or by the operator)."""
    hotlines: list[str]
    users: int


class TenantCreate(_In):
    slug: str
    """Lower-case letters, digits and `-`, up to 64: the tenant's name in URLs and site files."""
    name: str
    timezone: str = ""
    """IANA name (`Asia/Shanghai`); empty: the appliance's."""
    opening_balance: str | None = None
    """Yuan, e.g. "500.00", booked as the opening entry of the ledger."""


class TopUp(_In):
    amount: str
    """Yuan, e.g. "200.00"; more than 0."""
    note: str = ""
    ref: str | None = None
    """An idempotency key: the same ref booked twice is booked once."""


class TopUpOut(msgspec.Struct, kw_only=True):
    ref: str
    amount: str
    balance: str
    """After the top-up."""
    duplicate: bool
    """The ref had been booked already: nothing changed."""


# --- hotline numbers ---------------------------------------------------------------


class NumberOut(msgspec.Struct, kw_only=True):
    """A 400 number, whose tenant it is and its number class."""

    number: str
    tenant: str
    name: str
    number_class: str
    """号码分类: special (特号), A, B, C or D, from the digits."""
    number_class_label: str
    """特号, A, B, C or D."""
    number_pattern: str
    """The pattern that gave the class (`AABB`, `tail 88`); empty for D."""
    trunk: str
    """The trunk the number arrives over; empty when none names it yet."""


class NumberAssign(_In):
    number: str
    """3 to 20 digits, e.g. 4008001234."""
    tenant: str
    """The tenant's slug."""
    name: str = ""


# --- trunks ----------------------------------------------------------------------


class TrunkOut(msgspec.Struct, kw_only=True):
    """A carrier SIP trunk (`[[trunks]]` of the site file says what each key means)."""

    name: str
    host: str
    """`address[:port]`: the short form of one gateway, when `gateways` is empty."""
    gateways: list[str]
    """Where calls out go, `address[:port]` each, the first that answers OPTIONS first."""
    inbound: list[str]
    """Addresses or networks the carrier's calls come from; empty: the gateways'."""
    transport: str
    """udp, tcp or tls toward the gateways."""
    dids: list[str]
    """The hotline numbers the carrier delivers over this trunk."""
    did_map: dict[str, str]
    """A number the carrier delivers that is not the hotline's own → the hotline."""
    max_calls: int
    """Calls out through the trunk at once; 0: no limit."""
    strip_prefix: str
    """Taken off the front of numbers called through the trunk (`0086`)."""
    add_prefix: str
    """Put in front of numbers called through the trunk, after stripping."""
    codecs: list[str]
    """What the carrier's media takes: PCMA, PCMU, G722, opus."""


class TrunkCreate(_In):
    name: str
    host: str = ""
    """Needed unless `gateways` is given."""
    gateways: list[str] = []
    inbound: list[str] = []
    transport: str = "udp"
    dids: list[str] = []
    did_map: dict[str, str] = {}
    max_calls: int = 0
    strip_prefix: str = ""
    add_prefix: str = ""
    codecs: list[str] = msgspec.field(default_factory=lambda: ["PCMA", "PCMU"])


class TrunkUpdate(_In):
    host: str | msgspec.UnsetType = msgspec.UNSET
    gateways: list[str] | msgspec.UnsetType = msgspec.UNSET
    inbound: list[str] | msgspec.UnsetType = msgspec.UNSET
    transport: str | msgspec.UnsetType = msgspec.UNSET
    dids: list[str] | msgspec.UnsetType = msgspec.UNSET
    did_map: dict[str, str] | msgspec.UnsetType = msgspec.UNSET
    max_calls: int | msgspec.UnsetType = msgspec.UNSET
    strip_prefix: str | msgspec.UnsetType = msgspec.UNSET
    add_prefix: str | msgspec.UnsetType = msgspec.UNSET
    codecs: list[str] | msgspec.UnsetType = msgspec.UNSET


class GatewayState(msgspec.Struct, kw_only=True):
    """A trunk gateway's state from Kamailio's OPTIONS probes."""

    trunk: str
    gateway: str
    up: bool | None
    """None: not probed yet."""
    since: datetime | None


# --- users -----------------------------------------------------------------------


class UserOut(msgspec.Struct, kw_only=True):
    id: int
    login: str
    role: str
    """operator, owner or agent."""
    tenant: str
    """The tenant's slug; empty for an operator."""
    locked: bool
    locked_until: datetime | None
    totp_enabled: bool


class UserCreate(_In):
    login: str
    """An e-mail address, usually; no spaces."""
    password: str
    """At least 10 characters, not only digits, not the login."""
    role: str = "owner"
    tenant: str = ""
    """The tenant's slug; empty (and only empty) for an operator."""


class UserUpdate(_In):
    role: str | msgspec.UnsetType = msgspec.UNSET


class PasswordReset(_In):
    password: str
    """The new password; the user's sessions end."""


# --- backups and health ------------------------------------------------------------


class BackupOut(msgspec.Struct, kw_only=True):
    name: str
    size: int
    """Bytes."""
    created: datetime


class BackupCreate(_In):
    recordings: bool = True
    """Include call recordings (the largest part)."""


class Finding(msgspec.Struct, kw_only=True):
    name: str
    status: str
    """ok, warn or fail."""
    detail: str
    fix: str


class SystemHealth(msgspec.Struct, kw_only=True):
    status: str
    """`ok`, or `degraded` when a component or a check fails."""
    components: dict[str, Any]
    """As `/healthz` reports them."""
    findings: list[Finding]
    """`linebox doctor`'s checks."""
    gateways: list[GatewayState] = []
    """Each trunk gateway, as the OPTIONS probes last found it."""
