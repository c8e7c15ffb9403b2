"""The database tables (piccolo). The database is the source of truth; the
routing plan Kamailio reads is compiled from it.

Money is integer fen (0.01 yuan). Lists and small nested settings whose shape
the site-file schema (`appliance.sitefile`) guarantees are JSON columns; the
things the portal lists, filters or joins on are columns of their own.
"""

from __future__ import annotations

from piccolo.columns import (
    JSON,
    BigInt,
    Boolean,
    ForeignKey,
    Integer,
    OnDelete,
    SmallInt,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.table import Table


class ApplianceSetting(Table, tablename="appliance_setting"):
    """Appliance-wide values of the site file's `[appliance]` table."""

    key = Varchar(length=64, unique=True)
    value = JSON(default="null")


class Trunk(Table):
    """A carrier SIP trunk: calls to `dids` arrive from `host`; `tel:`
    destinations leave through it."""

    name = Varchar(length=64, unique=True)
    host = Varchar(length=255)
    dids = JSON(default="[]")
    position = Integer(default=0)


class Tenant(Table):
    """A business (企业用户). The appliance serves one by default, several for a reseller."""

    slug = Varchar(length=64, unique=True)
    name = Varchar(length=255)
    timezone = Varchar(length=64, default="")
    balance_fen = BigInt(default=0)
    suspended = Boolean(default=False)
    """Set by billing when the prepaid balance runs out (not by the site file)."""
    billing = JSON(default="{}")
    notify = JSON(default="{}")
    position = Integer(default=0)


class User(Table, tablename="app_user"):
    """Someone who logs in to the portal. `tenant` is null for operators."""

    tenant = ForeignKey(Tenant, null=True, on_delete=OnDelete.cascade)
    login = Varchar(length=255, unique=True)
    password_hash = Text()
    role = Varchar(length=16, default="owner")
    position = Integer(default=0)


class Extension(Table):
    """A phone that registers (分机). The SIP secret is kept retrievable because
    phones are provisioned with it; the database is readable by linebox only."""

    tenant = ForeignKey(Tenant, on_delete=OnDelete.cascade)
    number = Varchar(length=32, unique=True)
    name = Varchar(length=255, default="")
    sip_password = Varchar(length=128)
    agent_id = Varchar(length=16, default="")
    ringback = Varchar(length=64, default="")
    position = Integer(default=0)


class Group(Table, tablename="ring_group"):
    """Destinations rung together under one strategy."""

    tenant = ForeignKey(Tenant, on_delete=OnDelete.cascade)
    name = Varchar(length=64)
    strategy = Varchar(length=16, default="sequential")
    ring_timeout = SmallInt(default=20)
    members = JSON(default="[]")
    announce_agent_id = Boolean(default=False)
    survey = Boolean(default=False)
    queue = JSON(default="null")
    sticky_days = SmallInt(default=30)
    position = Integer(default=0)


class Prompt(Table):
    """A recorded or spoken message. `file` is stored in the data directory."""

    tenant = ForeignKey(Tenant, on_delete=OnDelete.cascade)
    name = Varchar(length=64)
    text = Text(default="")
    file = Varchar(length=512, default="")
    source = Varchar(length=512, default="")
    """The audio file as the site file names it (relative to the site file),
    kept so `linebox export` writes it back; `file` is the copy linebox plays."""
    position = Integer(default=0)


class Schedule(Table):
    """Named weekly opening hours, optionally with the public-holiday calendar."""

    tenant = ForeignKey(Tenant, on_delete=OnDelete.cascade)
    name = Varchar(length=64)
    weekly = JSON(default="[]")
    holidays = Varchar(length=16, default="")
    position = Integer(default=0)


class Menu(Table):
    """An IVR menu (IVR语音导航)."""

    tenant = ForeignKey(Tenant, on_delete=OnDelete.cascade)
    name = Varchar(length=64)
    prompt = Varchar(length=64, default="")
    timeout = SmallInt(default=5)
    retries = SmallInt(default=2)
    dial_extensions = Boolean(default=False)
    keys = JSON(default="{}")
    on_timeout = Varchar(length=128, default="")
    position = Integer(default=0)


class Hotline(Table):
    """A 400 number and everything that decides where its calls go."""

    tenant = ForeignKey(Tenant, on_delete=OnDelete.cascade)
    number = Varchar(length=32, unique=True)
    name = Varchar(length=255, default="")
    timezone = Varchar(length=64, default="")
    ringback = Varchar(length=64, default="")
    record = Boolean(default=False)
    pin = Varchar(length=16, default="")
    blacklist = JSON(default="[]")
    whitelist = JSON(default="[]")
    blocked_regions = JSON(default="[]")
    monthly_call_cap = Integer(null=True, default=None)
    monthly_cost_cap_fen = BigInt(null=True, default=None)
    routes = JSON(default="[]")
    fallback = JSON(default="{}")
    enabled = Boolean(default=True)
    schedule_override = Varchar(length=8, default="")
    """`day`/`night` forces the schedules open/closed; empty follows them."""
    anonymous = Varchar(length=8, default="allow")
    service_state = Varchar(length=16, default="active")
    """`active`, or `capped` when a monthly cap is reached: set by the worker,
    never by the site file, and carried into the routing plan."""
    position = Integer(default=0)


class StickyMemory(Table, tablename="sticky_memory"):
    """Who last answered each caller (来电转接记忆), kept by the worker in the
    columns Kamailio's htable module loads its `sticky` table from at start."""

    key_name = Varchar(length=128, unique=True)
    """`tenant:caller`."""
    key_type = Integer(default=0)
    value_type = Integer(default=0)
    """0: the value is a string."""
    key_value = Varchar(length=128, default="")
    """`ext:1001@<unix time>`."""
    expires = Integer(default=0)
    """Unix time after which Kamailio forgets it."""


class CallRecord(Table, tablename="call_record"):
    """One row per call (通话清单), assembled by the worker from Kamailio's call
    events. Calls to numbers the appliance does not serve leave no record."""

    call_id = Varchar(length=255, unique=True)
    tenant = ForeignKey(Tenant, null=True, on_delete=OnDelete.set_null)
    kind = Varchar(length=16, default="hotline")
    """`hotline` (to a 400 number) or `internal` (extension to extension)."""
    hotline = Varchar(length=32, default="", index=True)
    caller = Varchar(length=64, default="", index=True)
    caller_area_code = Varchar(length=8, default="")
    caller_region = Varchar(length=64, default="")
    called = Varchar(length=64, default="")
    route = Varchar(length=128, default="")
    answered_by = Varchar(length=64, default="")
    agent_id = Varchar(length=16, default="")
    started_at = Timestamptz(index=True)
    answered_at = Timestamptz(null=True, default=None)
    ended_at = Timestamptz(null=True, default=None)
    status = Varchar(length=16, default="ringing", index=True)
    """`ringing` while in progress, `talking` once answered, then one of
    answered, missed, busy, rejected, cancelled, failed."""
    sip_code = SmallInt(default=0)
    cause = Varchar(length=128, default="")
    talk_seconds = Integer(default=0)
    ring_seconds = Integer(default=0)


# --- the portal's login state (web/, appliance/auth/) ---------------------------


class UserAuth(Table, tablename="user_auth"):
    """What the portal keeps about a user beyond the site file: lock-out,
    TOTP, the agent's extension. One row per user, made on first need."""

    user = ForeignKey(User, unique=True, on_delete=OnDelete.cascade)
    failed_logins = SmallInt(default=0)
    locked_until = Timestamptz(null=True, default=None)
    totp_secret = Varchar(length=64, default="")
    """Base32; empty when TOTP is off."""
    totp_last_step = BigInt(default=0)
    """The last time step whose code was accepted: a code works once."""
    extension = Varchar(length=32, default="")
    """For an agent: the extension whose calls, voicemail and recordings are theirs."""
    password_changed_at = Timestamptz(null=True, default=None)


class LoginThrottle(Table, tablename="login_throttle"):
    """Failed logins by what was typed (e-mail or hotline number), known user or
    not, so lock-out says nothing about which logins exist."""

    identifier = Varchar(length=255, unique=True)
    failures = SmallInt(default=0)
    locked_until = Timestamptz(null=True, default=None)
    last_failure_at = Timestamptz(null=True, default=None)


class WebSession(Table, tablename="web_session"):
    """A logged-in browser. The cookie holds a random token; only its HMAC
    (keyed with the appliance's secret) is stored."""

    token_hash = Varchar(length=64, unique=True)
    user = ForeignKey(User, on_delete=OnDelete.cascade)
    created_at = Timestamptz()
    last_seen_at = Timestamptz()
    expires_at = Timestamptz()
    mfa_pending = Boolean(default=False)
    """Password given, TOTP code not yet: the session opens nothing but the code page."""
    address = Varchar(length=64, default="")
    user_agent = Varchar(length=255, default="")


class ApiToken(Table, tablename="api_token"):
    """A bearer token for automation, acting as its user. Only a hash is stored."""

    user = ForeignKey(User, on_delete=OnDelete.cascade)
    name = Varchar(length=64)
    token_hash = Varchar(length=64, unique=True)
    prefix = Varchar(length=16)
    """The token's first characters, to tell tokens apart in a list."""
    created_at = Timestamptz()
    last_used_at = Timestamptz(null=True, default=None)
    revoked_at = Timestamptz(null=True, default=None)

TABLES: list[type[Table]] = [
    ApplianceSetting,
    Trunk,
    Tenant,
    User,
    Extension,
    Group,
    Prompt,
    Schedule,
    Menu,
    Hotline,
    StickyMemory,
    CallRecord,
    UserAuth,
    LoginThrottle,
    WebSession,
    ApiToken,
]
