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
    Date,
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
    """A carrier SIP trunk: calls to `dids` arrive from its `inbound`
    addresses; `tel:` destinations leave through its `gateways`, the first
    that answers OPTIONS first (`appliance.sitefile.schema.TrunkConfig` says
    what each column means)."""

    name = Varchar(length=64, unique=True)
    host = Varchar(length=255)
    dids = JSON(default="[]")
    position = Integer(default=0)
    gateways = JSON(default="[]")
    inbound = JSON(default="[]")
    transport = Varchar(length=8, default="udp")
    did_map = JSON(default="{}")
    max_calls = Integer(default=0)
    strip_prefix = Varchar(length=16, default="")
    add_prefix = Varchar(length=16, default="")
    codecs = JSON(default='["PCMA", "PCMU"]')


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
    outbound = JSON(default="{}")
    """What `tel:` destinations may call: international, premium, max_calls."""
    low_balance_noticed = Boolean(default=False)
    """Set by billing when the low-balance notice went out; cleared by a
    top-up above the threshold, so one notice is sent per dip, not per call."""
    suspended_at = Timestamptz(null=True, default=None)
    """When billing suspended the tenant (the grace period runs from here)."""
    retention = JSON(default="{}")
    """Days to keep data, overriding the defaults: `{"recordings_days": 90,
    "voicemail_days": 90, "call_records_days": 365}`."""
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
    caller_id = Varchar(length=8, default="caller")
    """What a mobile or landline rung through the trunk shows: `caller`
    (the real caller, with the hotline in Diversion) or `hotline`."""
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
    caller_area_code = Varchar(length=8, default="", index=True)
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
    answered_kind = Varchar(length=8, default="")
    """What answered: `ext` or `tel` (priced by kind)."""
    cost_fen = BigInt(default=0)
    billed = Boolean(default=False)
    """Priced and charged to the tenant's balance (exactly once)."""
    recording = Varchar(length=512, default="")
    voicemail = Varchar(length=512, default="")
    recording_error = Varchar(length=255, default="")
    """Why the call's recording or voicemail could not be produced (or is
    suspect), for the portal to show; empty when all is well."""
    survey_score = SmallInt(null=True, default=None)
    voicemail_heard = Boolean(default=False)
    """The owner or agent has listened to the message (new/heard)."""


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


# --- records, billing and notices (appliance/worker, billing, notify) ----------


class LedgerEntry(Table, tablename="ledger_entry"):
    """Money into a tenant's prepaid balance (opening balance, top-ups,
    adjustments) with the balance after it. Call charges are on the call
    records (`CallRecord.cost_fen`)."""

    tenant = ForeignKey(Tenant, on_delete=OnDelete.cascade)
    ref = Varchar(length=128, unique=True)  # type: ignore[assignment]  # shadows Table.ref(), unused here
    """Idempotency key: the same top-up submitted twice is booked once."""
    at = Timestamptz(index=True)
    kind = Varchar(length=16)
    """`opening`, `topup` or `adjust`."""
    amount_fen = BigInt()
    balance_after_fen = BigInt()
    by = Varchar(length=255, default="")
    """Who booked it (a login, `site file`, `api`)."""
    note = Text(default="")


class MonthlyUsage(Table, tablename="monthly_usage"):
    """Calls and cost per hotline per month (in the tenant's time zone), for
    the monthly caps and the monthly deductions."""

    key = Varchar(length=48, unique=True)
    """`<hotline>|<YYYY-MM>`."""
    tenant = ForeignKey(Tenant, null=True, on_delete=OnDelete.cascade)
    hotline = Varchar(length=32)
    month = Varchar(length=7, index=True)
    calls = Integer(default=0)
    cost_fen = BigInt(default=0)


class Gateway(Table):
    """Where notices leave: `email` (SMTP) and `sms` (SMPP or an HTTP webhook).
    `config` holds the kind's settings; the last outcome is kept for the portal."""

    channel = Varchar(length=8, unique=True)
    kind = Varchar(length=16)
    """`smtp`, `smpp` or `webhook`."""
    config = JSON(default="{}")
    enabled = Boolean(default=True)
    last_ok_at = Timestamptz(null=True, default=None)
    last_error = Text(default="")
    last_error_at = Timestamptz(null=True, default=None)


class Notice(Table):
    """One SMS or e-mail to send (an outbox): written in the same transaction
    as what caused it, sent by the worker, retried with backoff; its state
    is what the portal shows."""

    key = Varchar(length=160, unique=True)
    """Idempotency key (`missed:<call-id>:sms`): a retried cause never sends twice."""
    tenant = ForeignKey(Tenant, null=True, on_delete=OnDelete.cascade)
    kind = Varchar(length=16)
    """`missed_call`, `low_balance`, `suspended`, `reclaim`, `voicemail`, `alert`."""
    channel = Varchar(length=8)
    to = Varchar(length=255)
    caller = Varchar(length=64, default="", index=True)
    subject = Varchar(length=255, default="")
    body = Text(default="")
    attachment = Varchar(length=512, default="")
    state = Varchar(length=12, default="pending", index=True)
    """`pending`, `sending`, `retrying`, `sent` or `failed` (gave up)."""
    attempts = SmallInt(default=0)
    last_error = Text(default="")
    created_at = Timestamptz(index=True)
    next_attempt_at = Timestamptz(null=True, default=None)
    sent_at = Timestamptz(null=True, default=None)


class CallStat(Table, tablename="call_stat"):
    """Daily aggregates for reports, one row per tenant, hotline, local day,
    hour, caller region and agent; recomputed from the call records."""

    tenant = ForeignKey(Tenant, on_delete=OnDelete.cascade)
    hotline = Varchar(length=32, default="")
    day = Date(index=True)
    hour = SmallInt()
    region = Varchar(length=64, default="")
    agent_id = Varchar(length=16, default="")
    calls = Integer(default=0)
    answered = Integer(default=0)
    busy = Integer(default=0)
    no_answer = Integer(default=0)
    talk_seconds = BigInt(default=0)
    cost_fen = BigInt(default=0)
    survey_count = Integer(default=0)
    survey_sum = Integer(default=0)


TABLES.extend([LedgerEntry, MonthlyUsage, Gateway, Notice, CallStat])


class AuditEntry(Table, tablename="audit_entry"):
    """Who did what, when and from where: logins and every configuration
    change, kept for the operator and the tenant's owner."""

    at = Timestamptz(index=True)
    tenant = ForeignKey(Tenant, null=True, on_delete=OnDelete.set_null)
    actor = Varchar(length=255, default="")
    """The user's e-mail, `api-token:<id>`, or `site-file` / `system`."""
    source = Varchar(length=64, default="")
    """The client's address."""
    action = Varchar(length=64, index=True)
    """`login`, `login_failed`, `logout`, `create`, `update`, `delete`, `apply`, …"""
    target = Varchar(length=255, default="")
    """What was acted on (`hotline:4001234567`, `extension:1001`)."""
    detail = JSON(default="{}")
    """What changed: {field: [before, after]}, secrets never included."""


TABLES.append(AuditEntry)


class TrunkStatus(Table, tablename="trunk_status"):
    """Whether a trunk's gateway answers Kamailio's OPTIONS probes, as the
    worker last heard from Kamailio's journal: the admin's health page and
    the trunk-down alerts read it."""

    trunk = Varchar(length=64, index=True)
    gateway = Varchar(length=255)
    """`address[:port]`, as the trunk's `gateways` name it."""
    up = Boolean(default=False)
    since = Timestamptz()
    detail = Varchar(length=255, default="")


TABLES.append(TrunkStatus)
