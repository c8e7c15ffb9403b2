"""The site file's schema: msgspec Structs that mirror the TOML, and the checks
a file must pass before anything is written.

`parse_site(text)` returns a `SiteFile` or raises `SiteFileError` listing every
problem it found, each as `line N: key.path: what is wrong`. It checks in two
passes: the shape (unknown keys, missing keys, types) over the raw TOML, then
the meaning (numbers, names, references between objects, money, schedules).
A key whose shape is wrong gets a placeholder so the second pass can still
look at everything else; problems at or below it are not reported twice.

Optional keys default to None where "not written" must survive a round trip
(`linebox export` writes back only what the file said); to a value where the
default is what the appliance does anyway.
"""

from __future__ import annotations

import datetime as dt
import difflib
import ipaddress
import re
import tomllib
import zoneinfo
from dataclasses import dataclass, field
from typing import Any

import msgspec

from appliance.errors import SiteFileError
from appliance.numbers import INTERNATIONAL, SPECIAL, kind_of
from appliance.routing.compile import ScheduleSyntaxError, parse_weekly
from appliance.sitefile.locate import KeyPath, Locator, render


class _Struct(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class NetworkConfig(_Struct, kw_only=True):
    """`[appliance.network]`: the appliance's own address; `address = "dhcp"`
    (or no table) takes one from DHCP (`linebox network apply` configures it)."""

    address: str = "dhcp"
    """With its prefix, `192.0.2.10/24`, or `dhcp`."""
    gateway: str = ""
    dns: list[str] = []
    interface: str = "en* eth*"


class ApplianceConfig(_Struct, kw_only=True):
    """`[appliance]`: values for the whole appliance."""

    timezone: str | None = None
    """The default time zone of schedules (`Asia/Shanghai` when not set)."""
    holidays: str | None = None
    """The public-holiday calendar: `cn` (with make-up working days) or ``."""
    holiday_overrides: dict[str, str] | None = None
    """The operator's corrections to the calendar: `{ "2026-12-24" = "closed",
    "2026-10-08" = "open" }` (a company day off; a day worked after all)."""
    network: NetworkConfig | None = None


class TrunkConfig(_Struct, kw_only=True):
    """`[[trunks]]`: a carrier SIP trunk."""

    name: str
    host: str = ""
    """`address[:port]` the carrier's calls come from and outbound calls go
    to: the short form of one gateway, when `gateways` is not written."""
    gateways: list[str] | None = None
    """Where calls out go, `address[:port]` each, in order: the first that
    answers Kamailio's OPTIONS probes takes the call, and a gateway that does
    not answer the call itself hands it to the next."""
    inbound: list[str] | None = None
    """Addresses or networks (`192.0.2.0/28`) the carrier's calls come from;
    the gateways' addresses when not written. Calls from them need no
    password and are never counted as a flood."""
    transport: str = "udp"
    """`udp`, `tcp` or `tls` toward the gateways."""
    dids: list[str] = []
    """The hotline numbers the carrier delivers over this trunk."""
    did_map: dict[str, str] | None = None
    """A number the carrier delivers that is not the hotline's own → the
    hotline it reaches (`{ "02158881234" = "4001234567" }`)."""
    max_calls: int = 0
    """Calls out through the trunk at once (the channels the carrier sold),
    whatever tenant places them; 0: no limit."""
    strip_prefix: str = ""
    """Taken off the front of numbers called through the trunk (`0086`)."""
    add_prefix: str = ""
    """Put in front of numbers called through the trunk, after stripping."""
    codecs: list[str] | None = None
    """What the carrier's media takes (`PCMA`, `PCMU`, `G722`, `opus`): a
    phone offering none of them is transcoded by rtpengine."""


class Billing(_Struct, kw_only=True):
    """`[tenants.billing]`; money is written as yuan strings ("500.00")."""

    balance: str | None = None
    rates_per_minute: dict[str, str] | None = None
    """Per destination kind (`tel`, `ext`)."""
    step_seconds: int | None = None
    low_balance: str | None = None
    suspend_below: str | None = None


class Notify(_Struct, kw_only=True):
    """`[tenants.notify]`: where notices go."""

    sms: str | None = None
    email: str | None = None
    missed_call_sms: bool | None = None


class UserConfig(_Struct, kw_only=True):
    """`[[users]]` (operators) or `[[tenants.users]]` (a business's people)."""

    login: str
    password: str | None = None
    """Plain text; stored as an argon2 hash."""
    password_hash: str | None = None
    """An argon2 hash, as `linebox export` writes it."""
    role: str = "owner"


class ExtensionConfig(_Struct, kw_only=True):
    """`[[tenants.extensions]]`: a phone that registers (分机)."""

    number: str
    name: str = ""
    password: str
    """The SIP digest secret the phone registers with."""
    agent_id: str = ""
    """工号, announced to callers when `announce_agent_id` is on."""
    ringback: str = ""
    """A prompt callers hear while this extension rings (多机彩铃)."""


class Queue(_Struct, kw_only=True):
    """Callers wait here with music when every member is busy."""

    max_wait: int | None = None
    music: str | None = None


class GroupConfig(_Struct, kw_only=True):
    """`[[tenants.groups]]`: destinations rung under one strategy."""

    name: str
    strategy: str = "sequential"
    ring_timeout: int = 20
    members: list[str]
    announce_agent_id: bool = False
    survey: bool = False
    queue: Queue | None = None
    sticky_days: int = 30
    """`sticky`: how long a caller is remembered (来电转接记忆)."""


class PromptConfig(_Struct, kw_only=True):
    """`[[tenants.prompts]]`: text spoken by TTS, or an audio file."""

    name: str
    text: str | None = None
    file: str | None = None


class ScheduleConfig(_Struct, kw_only=True):
    """`[[tenants.schedules]]`: weekly opening hours."""

    name: str
    weekly: list[str]
    holidays: str = ""


class MenuConfig(_Struct, kw_only=True):
    """`[[tenants.menus]]`: an IVR menu (IVR语音导航)."""

    name: str
    prompt: str = ""
    timeout: int = 5
    retries: int = 2
    dial_extensions: bool = False
    keys: dict[str, str] = {}
    on_timeout: str = ""


class When(_Struct, kw_only=True):
    """A route's condition; every given key must match."""

    schedule: str | None = None
    regions: list[str] | None = None


class Route(_Struct, kw_only=True):
    """One rule of a hotline; the first that matches decides."""

    when: When | None = None
    to: str | None = None
    split: dict[str, int] | None = None


class Fallback(_Struct, kw_only=True):
    """Where a call goes when the route's destinations are busy or don't answer."""

    busy: list[str] | None = None
    no_answer: list[str] | None = None


class HotlineConfig(_Struct, kw_only=True):
    """`[[tenants.hotlines]]`: a 400 number and how its calls are routed."""

    number: str
    name: str = ""
    timezone: str = ""
    enabled: bool = True
    schedule_override: str = ""
    """`day` or `night` forces every schedule of the hotline open or closed
    (the manual day/night switch); empty follows the schedules."""
    anonymous: str = "allow"
    """Callers who withhold their number: `allow` or `reject` (433)."""
    caller_id: str = "caller"
    """What a mobile or landline rung through the trunk shows: `caller`, the
    real caller (the hotline goes in Diversion), or `hotline`."""
    ringback: str = ""
    record: bool = False
    pin: str = ""
    blacklist: list[str] = []
    whitelist: list[str] = []
    blocked_regions: list[str] = []
    monthly_call_cap: int | None = None
    monthly_cost_cap: str | None = None
    routes: list[Route] = []
    fallback: Fallback | None = None


class Outbound(_Struct, kw_only=True):
    """`[tenants.outbound]`: what a tenant's `tel:` destinations may call
    through the trunk (toll-fraud limits)."""

    international: bool = False
    """Numbers abroad (00…, +… other than +86)."""
    premium: bool = False
    """Premium and special numbers (168…, 160x…, IP-dialling prefixes, short codes)."""
    max_calls: int = 10
    """Calls out through the trunk at once, at most."""
    max_minutes_per_hour: int = 300
    """Minutes of calls out through the trunk per clock hour, at most: past
    them further calls out are refused until the hour ends, with an alert."""


class TenantConfig(_Struct, kw_only=True):
    """`[[tenants]]`: a business and everything it owns."""

    slug: str
    name: str
    timezone: str = ""
    billing: Billing | None = None
    notify: Notify | None = None
    outbound: Outbound | None = None
    users: list[UserConfig] = []
    extensions: list[ExtensionConfig] = []
    groups: list[GroupConfig] = []
    prompts: list[PromptConfig] = []
    schedules: list[ScheduleConfig] = []
    menus: list[MenuConfig] = []
    hotlines: list[HotlineConfig] = []


class SiteFile(_Struct, kw_only=True):
    appliance: ApplianceConfig | None = None
    trunks: list[TrunkConfig] = []
    users: list[UserConfig] = []
    """People who belong to no tenant: the operators who run the appliance."""
    tenants: list[TenantConfig] = []


# --- values -------------------------------------------------------------------

STRATEGIES = ("sequential", "random", "round_robin", "ring_all", "sticky")
ROLES = ("owner", "operator", "agent")
HOLIDAY_CALENDARS = ("cn", "")
RATE_KINDS = ("tel", "ext")
DESTINATION_KINDS = ("ext", "tel", "group", "menu", "hotline", "voicemail")
MEMBER_KINDS = ("ext", "tel", "hotline")
PROMPT_SUFFIXES = (".wav", ".mp3", ".ogg", ".opus", ".flac")

_MONEY = re.compile(r"^([0-9]{1,12})(?:\.([0-9]{1,2}))?\Z")
_NAME = re.compile(r"^\w[\w-]{0,63}\Z")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}\Z")
_DIGITS = re.compile(r"^[0-9]+\Z")
_SCREEN = re.compile(r"^[0-9]{1,20}\*?\Z")
_TEL = re.compile(r"^\+?[0-9]{3,20}\Z")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\Z"
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+\Z")


def parse_money(value: str) -> int:
    """ "500.00" → 50000 fen. Yuan with at most two decimals, never negative;
    raises ValueError otherwise. Floats are refused: 0.1 + 0.2 is not money."""
    m = _MONEY.match(value) if isinstance(value, str) else None
    if not m:
        raise ValueError(f'{value!r} is not an amount of yuan like "500.00"')
    return int(m[1]) * 100 + int((m[2] or "0").ljust(2, "0"))


def format_money(fen: int) -> str:
    """50000 → "500.00"."""
    if fen < 0:
        return "-" + format_money(-fen)
    return f"{fen // 100}.{fen % 100:02d}"


def hotline_number_problem(number: str) -> str | None:
    if not _DIGITS.match(number) or not 3 <= len(number) <= 20:
        return f"{number!r} is not a hotline number: 3 to 20 digits"
    # A 400/800 number has 10 digits; a short one (8000) is an internal line.
    if number[:3] in ("400", "800") and len(number) > 5 and len(number) != 10:
        return f"{number!r}: 400 and 800 numbers have 10 digits"
    return None


def extension_number_problem(number: str) -> str | None:
    if not _DIGITS.match(number) or not 2 <= len(number) <= 8:
        return f"{number!r} is not an extension number: 2 to 8 digits"
    return None


TRANSPORTS = ("udp", "tcp", "tls")
CODECS = ("PCMA", "PCMU", "G722", "opus")
_PREFIX = re.compile(r"^\+?[0-9]{1,8}$")


def host_problem(host: str) -> str | None:
    """None when `host` is `address[:port]`: an IPv4 address or a DNS name, or
    an IPv6 address in brackets (`[2001:db8::1]:5060`)."""
    if host.startswith("["):
        address, bracket, rest = host[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return f"{host!r} is not a host like [2001:db8::1]:5060"
        has_port, port = bool(rest), rest[1:]
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            return f"{host!r}: {address!r} is not an IPv6 address"
    else:
        address, colon, port = host.partition(":")
        has_port = bool(colon)
        if not _HOSTNAME.match(address) or ":" in port:
            return f"{host!r} is not a host like 192.0.2.1:5060 or sip.carrier.example.cn"
    if has_port and not (port.isdigit() and 1 <= int(port) <= 65535):
        return f"{host!r}: the port must be a number from 1 to 65535"
    return None


def timezone_problem(name: str) -> str | None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f'{name!r} is not a time zone (like "Asia/Shanghai")'
    return None


# --- problems -----------------------------------------------------------------


@dataclass
class Problems:
    """Problems found in one file, each at a key path."""

    items: list[tuple[KeyPath, str]] = field(default_factory=list)
    broken: set[KeyPath] = field(default_factory=set)
    """Paths whose shape was wrong: the meaning pass skips what lies under them."""

    def shape(self, path: KeyPath, message: str) -> None:
        self.items.append((path, message))
        self.broken.add(path)

    def add(self, path: KeyPath, message: str) -> None:
        if any(path[: len(b)] == b for b in self.broken):
            return
        if (path, message) not in self.items:
            self.items.append((path, message))

    def __bool__(self) -> bool:
        return bool(self.items)

    def messages(self, locator: Locator) -> list[str]:
        located = []
        for path, message in self.items:
            line = locator.line(path)
            where = render(path)
            text = f"{where}: {message}" if where else message
            located.append((line or 0, text if line is None else f"line {line}: {text}"))
        located.sort(key=lambda item: item[0])  # stable: same-line problems keep their order
        return [text for _, text in located]


# --- pass 1: shape ------------------------------------------------------------

_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a float",
    bool: "a boolean",
    list: "an array",
    dict: "a table",
}


def _describe(value: Any) -> str:
    name = _TYPE_NAMES.get(type(value), type(value).__name__)
    if isinstance(value, str | int | float | bool):
        return f"{name} ({tomllib_repr(value)})"
    return name


def tomllib_repr(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value + '"'
    return repr(value)


_MISSING = object()


def _placeholder(info: msgspec.inspect.Type) -> Any:
    if isinstance(info, msgspec.inspect.StrType):
        return ""
    if isinstance(info, msgspec.inspect.IntType):
        return 0
    if isinstance(info, msgspec.inspect.BoolType):
        return False
    if isinstance(info, msgspec.inspect.ListType):
        return []
    if isinstance(info, msgspec.inspect.DictType):
        return {}
    if isinstance(info, msgspec.inspect.StructType):
        return {f.encode_name: _placeholder(f.type) for f in info.fields if f.required}
    if isinstance(info, msgspec.inspect.UnionType):
        return None
    raise TypeError(info)  # pragma: no cover - the schema uses only the types above


def _expected(info: msgspec.inspect.Type) -> str:
    if isinstance(info, msgspec.inspect.UnionType):
        names = [_expected(t) for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
        return " or ".join(names)
    if isinstance(info, msgspec.inspect.StrType):
        return "a string"
    if isinstance(info, msgspec.inspect.IntType):
        return "an integer"
    if isinstance(info, msgspec.inspect.BoolType):
        return "true or false"
    if isinstance(info, msgspec.inspect.ListType):
        return "an array"
    return "a table"


def _shape(value: Any, info: msgspec.inspect.Type, path: KeyPath, problems: Problems) -> Any:
    """Check `value` against `info`; return what to decode (unknown keys left
    out, wrong values replaced by a placeholder), or _MISSING to drop it."""
    if isinstance(info, msgspec.inspect.UnionType):
        options = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
        assert len(options) == 1, "the schema's unions are `X | None`"
        return _shape(value, options[0], path, problems)
    ok = {
        msgspec.inspect.StrType: isinstance(value, str),
        msgspec.inspect.IntType: isinstance(value, int) and not isinstance(value, bool),
        msgspec.inspect.BoolType: isinstance(value, bool),
        msgspec.inspect.ListType: isinstance(value, list),
        msgspec.inspect.DictType: isinstance(value, dict),
        msgspec.inspect.StructType: isinstance(value, dict),
    }[type(info)]
    if not ok:
        hint = ""
        if isinstance(info, msgspec.inspect.StrType) and isinstance(value, float):
            hint = f' (write it in quotes: "{value:.2f}")'
        elif isinstance(info, msgspec.inspect.StrType) and isinstance(value, int):
            hint = f' (write it in quotes: "{value}")'
        problems.shape(path, f"expected {_expected(info)}, got {_describe(value)}{hint}")
        return _MISSING
    if isinstance(info, msgspec.inspect.ListType):
        out = []
        for i, item in enumerate(value):
            checked = _shape(item, info.item_type, (*path, i), problems)
            out.append(_placeholder(info.item_type) if checked is _MISSING else checked)
        return out
    if isinstance(info, msgspec.inspect.DictType):
        out_dict = {}
        for key, item in value.items():
            checked = _shape(item, info.value_type, (*path, key), problems)
            if checked is not _MISSING:
                out_dict[key] = checked
        return out_dict
    if isinstance(info, msgspec.inspect.StructType):
        fields = {f.encode_name: f for f in info.fields}
        out_struct = {}
        for key, item in value.items():
            if key not in fields:
                close = difflib.get_close_matches(key, list(fields), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                allowed = ", ".join(fields)
                problems.shape((*path, key), f"unknown key {key!r}{hint}; known keys: {allowed}")
                continue
            checked = _shape(item, fields[key].type, (*path, key), problems)
            if checked is _MISSING:
                if fields[key].required:
                    out_struct[key] = _placeholder(fields[key].type)
            else:
                out_struct[key] = checked
        for name, f in fields.items():
            if f.required and name not in value:
                problems.shape((*path, name), f"missing required key {name!r}")
                out_struct[name] = _placeholder(f.type)
        return out_struct
    return value


# --- pass 2: meaning ----------------------------------------------------------


@dataclass
class _Tenant:
    """What destinations of one tenant may refer to."""

    slug: str
    extensions: set[str]
    groups: set[str]
    menus: set[str]
    prompts: set[str]
    schedules: set[str]
    hotlines: set[str]
    outbound: Outbound = field(default_factory=lambda: Outbound())
    incomplete: set[str] = field(default_factory=set)
    """Kinds with a broken name or number: a reference to them may be to the
    broken one, so it is not reported as unknown."""


class _Checker:
    def __init__(self, site: SiteFile, problems: Problems) -> None:
        self.site = site
        self.p = problems
        self.has_trunk = bool(site.trunks)
        self.extension_owner: dict[str, str] = {}
        self.hotline_owner: dict[str, str] = {}

    def run(self) -> None:
        site = self.site
        if site.appliance is not None:
            self.appliance(site.appliance, ("appliance",))
        self.unique([t.slug for t in site.tenants], ("tenants",), "slug", "tenant")
        logins: dict[str, KeyPath] = {}
        for i, u in enumerate(site.users):
            self.user(u, ("users", i), logins=logins)
        for ti, t in enumerate(site.tenants):
            for ui, u in enumerate(t.users):
                self.user(u, ("tenants", ti, "users", ui), logins=logins)
        # Numbers are unique across tenants: a call to one must reach one place.
        for ti, t in enumerate(site.tenants):
            for i, e in enumerate(t.extensions):
                self.appliance_unique(
                    e.number,
                    ("tenants", ti, "extensions", i, "number"),
                    "extension",
                    self.extension_owner,
                    t.slug,
                )
            for i, h in enumerate(t.hotlines):
                self.appliance_unique(
                    h.number,
                    ("tenants", ti, "hotlines", i, "number"),
                    "hotline",
                    self.hotline_owner,
                    t.slug,
                )
        for ti, t in enumerate(site.tenants):
            for i, h in enumerate(t.hotlines):
                if h.number in self.extension_owner:
                    self.p.add(
                        ("tenants", ti, "hotlines", i, "number"),
                        f"{h.number!r} is also an extension number",
                    )
        for i, trunk in enumerate(site.trunks):
            self.trunk(trunk, ("trunks", i))
        self.unique([t.name for t in site.trunks], ("trunks",), "name", "trunk")
        self.trunk_dids()
        for ti, t in enumerate(site.tenants):
            self.tenant(t, ("tenants", ti))

    # helpers

    def unique(self, values: list[str], path: KeyPath, key: str, what: str) -> None:
        seen: dict[str, int] = {}
        for i, value in enumerate(values):
            if value in seen:
                self.p.add(
                    (*path, i, key),
                    f"{what} {value!r} is already defined at {render((*path, seen[value]))}",
                )
            else:
                seen[value] = i

    def appliance_unique(
        self, number: str, path: KeyPath, what: str, owners: dict[str, str], slug: str
    ) -> None:
        if number in owners:
            where = "" if owners[number] == slug else f" of tenant {owners[number]!r}"
            self.p.add(path, f"{what} {number!r} is already defined{where}")
        else:
            owners[number] = slug

    def name(self, value: str, path: KeyPath) -> None:
        if not _NAME.match(value):
            self.p.add(
                path,
                f"{value!r} is not a name: letters, digits, '-' and '_', "
                "up to 64, starting with a letter or digit",
            )

    def money(self, value: str | None, path: KeyPath) -> None:
        if value is None:
            return
        try:
            parse_money(value)
        except ValueError as exc:
            self.p.add(path, str(exc))

    def int_range(self, value: int | None, low: int, high: int, path: KeyPath) -> None:
        if value is not None and not low <= value <= high:
            self.p.add(path, f"{value} is out of range: {low} to {high}")

    def holidays(self, value: str | None, path: KeyPath) -> None:
        if value is not None and value not in HOLIDAY_CALENDARS:
            self.p.add(path, f'{value!r} is not a holiday calendar: "cn" or ""')

    def timezone(self, value: str | None, path: KeyPath) -> None:
        if value:
            problem = timezone_problem(value)
            if problem:
                self.p.add(path, problem)

    def prompt_ref(self, value: str | None, path: KeyPath, t: _Tenant) -> None:
        if value and value not in t.prompts and "prompt" not in t.incomplete:
            self.p.add(path, f"{value!r} is not a prompt of tenant {t.slug!r}")

    def destination(
        self, dest: str, path: KeyPath, t: _Tenant, kinds: tuple[str, ...] = DESTINATION_KINDS
    ) -> None:
        kind, sep, arg = dest.partition(":")
        # `voicemail` takes no argument; every other kind needs one.
        if kind not in DESTINATION_KINDS or (kind == "voicemail") == bool(sep or arg):
            self.p.add(
                path,
                f"{dest!r} is not a destination: use ext:NUMBER, tel:NUMBER, "
                "group:NAME, menu:NAME, hotline:NUMBER or voicemail",
            )
            return
        if kind not in kinds:
            allowed = ", ".join(k if k == "voicemail" else f"{k}:" for k in kinds)
            self.p.add(path, f"{dest!r}: only {allowed} can be used here")
            return
        if kind in t.incomplete:
            return
        if kind == "ext" and arg not in t.extensions:
            self.p.add(path, f"{dest!r} is not an extension of tenant {t.slug!r}")
        elif kind == "tel":
            if not _TEL.match(arg):
                self.p.add(path, f"{dest!r}: a tel: number is 3 to 20 digits, optionally after +")
            elif not self.has_trunk:
                self.p.add(path, f"{dest!r} needs a trunk to call out: add a [[trunks]] table")
            else:
                self.toll(dest, arg, path, t)
        elif kind == "group" and arg not in t.groups:
            self.p.add(path, f"{dest!r} is not a group of tenant {t.slug!r}")
        elif kind == "menu" and arg not in t.menus:
            self.p.add(path, f"{dest!r} is not a menu of tenant {t.slug!r}")
        elif kind == "hotline" and arg not in t.hotlines:
            self.p.add(path, f"{dest!r} is not a hotline of tenant {t.slug!r}")

    def toll(self, dest: str, number: str, path: KeyPath, t: _Tenant) -> None:
        """International and premium numbers only where the tenant allows them."""
        kind = kind_of(number)
        if kind == INTERNATIONAL and not t.outbound.international:
            self.p.add(
                path,
                f"{dest!r} is a number abroad: allow it with "
                "[tenants.outbound] international = true",
            )
        elif kind == SPECIAL and not t.outbound.premium:
            self.p.add(
                path,
                f"{dest!r} is a premium or special number: allow it with "
                "[tenants.outbound] premium = true",
            )

    def screening(self, entries: list[str], path: KeyPath) -> None:
        for i, entry in enumerate(entries):
            if not _SCREEN.match(entry):
                self.p.add(
                    (*path, i),
                    f"{entry!r} is not a number or a prefix: digits, "
                    'optionally ending in * ("0571*")',
                )

    # objects

    def appliance(self, a: ApplianceConfig, path: KeyPath) -> None:
        if a.timezone is not None and not a.timezone:
            self.p.add((*path, "timezone"), "must not be empty")
        self.timezone(a.timezone, (*path, "timezone"))
        self.holidays(a.holidays, (*path, "holidays"))
        for day, value in (a.holiday_overrides or {}).items():
            where = (*path, "holiday_overrides", day)
            try:
                dt.date.fromisoformat(day)
            except ValueError:
                self.p.add(where, f"{day!r} is not a date like 2026-12-24")
            if value not in ("closed", "open"):
                self.p.add(where, f'{value!r} must be "closed" or "open"')
        if a.network is not None:
            from appliance.ops.network import NetworkError, parse_static

            try:
                parse_static(msgspec.to_builtins(a.network), "")
            except NetworkError as exc:
                self.p.add((*path, "network"), str(exc).strip())

    def user(self, u: UserConfig, path: KeyPath, *, logins: dict[str, KeyPath]) -> None:
        if not u.login or any(c.isspace() for c in u.login):
            self.p.add((*path, "login"), f"{u.login!r} is not a login: no spaces, not empty")
        elif u.login in logins:
            self.p.add(
                (*path, "login"),
                f"user {u.login!r} is already defined at {render(logins[u.login])}",
            )
        else:
            logins[u.login] = path
        if (u.password is None) == (u.password_hash is None):
            self.p.add(path, "give exactly one of 'password' and 'password_hash'")
        if u.password is not None and len(u.password) < 8:
            self.p.add((*path, "password"), "too short: at least 8 characters")
        if u.password_hash is not None and not u.password_hash.startswith("$argon2"):
            self.p.add((*path, "password_hash"), 'not an argon2 hash ("$argon2id$…")')
        if u.role not in ROLES:
            self.p.add((*path, "role"), f"{u.role!r} is not a role: {' | '.join(ROLES)}")

    def trunk(self, trunk: TrunkConfig, path: KeyPath) -> None:
        if not trunk.name:
            self.p.add((*path, "name"), "must not be empty")
        if trunk.host:
            problem = host_problem(trunk.host)
            if problem:
                self.p.add((*path, "host"), problem)
        elif not trunk.gateways:
            self.p.add(path, "needs a host or gateways")
        for g, gateway in enumerate(trunk.gateways or ()):
            problem = host_problem(gateway)
            if problem:
                self.p.add((*path, "gateways", g), problem)
        for n, network in enumerate(trunk.inbound or ()):
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                self.p.add(
                    (*path, "inbound", n),
                    f"{network!r} is not an address or network like 192.0.2.0/28",
                )
        if trunk.transport not in TRANSPORTS:
            self.p.add(
                (*path, "transport"), f"{trunk.transport!r} is not one of {' | '.join(TRANSPORTS)}"
            )
        self.int_range(trunk.max_calls, 0, 100000, (*path, "max_calls"))
        for key in ("strip_prefix", "add_prefix"):
            value = getattr(trunk, key)
            if value and not _PREFIX.match(value):
                self.p.add((*path, key), f"{value!r} is not a prefix: up to 8 digits, or + first")
        for c, codec in enumerate(trunk.codecs or ()):
            if codec not in CODECS:
                self.p.add((*path, "codecs", c), f"{codec!r} is not one of {' | '.join(CODECS)}")
        if trunk.codecs == []:
            self.p.add((*path, "codecs"), "must name a codec")

    def trunk_dids(self) -> None:
        routed_by: dict[str, str] = {}
        for i, trunk in enumerate(self.site.trunks):
            for d, did in enumerate(trunk.dids):
                at = ("trunks", i, "dids", d)
                if did not in self.hotline_owner:
                    self.p.add(at, f"{did!r} is not a hotline in this file")
                elif did in routed_by:
                    self.p.add(at, f"{did!r} already arrives over trunk {routed_by[did]!r}")
                else:
                    routed_by[did] = trunk.name
            for did, hotline in (trunk.did_map or {}).items():
                mapped = ("trunks", i, "did_map", did)
                if not _DIGITS.match(did):
                    self.p.add(mapped, f"{did!r} is not a number")
                elif did in self.hotline_owner or did in routed_by:
                    self.p.add(mapped, f"{did!r} is a hotline or already arrives over a trunk")
                elif hotline not in self.hotline_owner:
                    self.p.add(mapped, f"{hotline!r} is not a hotline in this file")
                else:
                    routed_by[did] = trunk.name

    def tenant(self, tc: TenantConfig, path: KeyPath) -> None:
        if not _SLUG.match(tc.slug):
            self.p.add(
                (*path, "slug"),
                f"{tc.slug!r} is not a slug: lower-case letters, digits and '-', up to 64",
            )
        if not tc.name.strip():
            self.p.add((*path, "name"), "must not be empty")
        self.timezone(tc.timezone, (*path, "timezone"))
        t = _Tenant(
            slug=tc.slug,
            extensions={e.number for e in tc.extensions},
            groups={g.name for g in tc.groups},
            menus={m.name for m in tc.menus},
            prompts={p.name for p in tc.prompts},
            schedules={s.name for s in tc.schedules},
            hotlines={h.number for h in tc.hotlines},
            outbound=tc.outbound or Outbound(),
        )
        if tc.outbound is not None:
            self.int_range(tc.outbound.max_calls, 0, 1000, (*path, "outbound", "max_calls"))
            self.int_range(
                tc.outbound.max_minutes_per_hour,
                0,
                60000,
                (*path, "outbound", "max_minutes_per_hour"),
            )
        for kind, items, key in (
            ("ext", tc.extensions, "number"),
            ("group", tc.groups, "name"),
            ("menu", tc.menus, "name"),
            ("prompt", tc.prompts, "name"),
            ("schedule", tc.schedules, "name"),
            ("hotline", tc.hotlines, "number"),
        ):
            plural = "extensions" if kind == "ext" else kind + "s"
            if any((*path, plural, i, key) in self.p.broken for i in range(len(items))):
                t.incomplete.add(kind)
        for kind, items in (
            ("group", tc.groups),
            ("prompt", tc.prompts),
            ("schedule", tc.schedules),
            ("menu", tc.menus),
        ):
            self.unique([x.name for x in items], (*path, kind + "s"), "name", kind)
        if tc.billing is not None:
            self.billing(tc.billing, (*path, "billing"))
        if tc.notify is not None:
            self.notify(tc.notify, (*path, "notify"))
        for i, e in enumerate(tc.extensions):
            self.extension(e, (*path, "extensions", i), t)
        for i, g in enumerate(tc.groups):
            self.group(g, (*path, "groups", i), t)
        for i, p in enumerate(tc.prompts):
            self.prompt(p, (*path, "prompts", i))
        for i, s in enumerate(tc.schedules):
            self.schedule(s, (*path, "schedules", i))
        for i, m in enumerate(tc.menus):
            self.menu(m, (*path, "menus", i), t)
        for i, h in enumerate(tc.hotlines):
            self.hotline(h, (*path, "hotlines", i), t)

    def billing(self, b: Billing, path: KeyPath) -> None:
        self.money(b.balance, (*path, "balance"))
        for kind, rate in (b.rates_per_minute or {}).items():
            if kind not in RATE_KINDS:
                self.p.add(
                    (*path, "rates_per_minute", kind),
                    f"{kind!r} is not a destination kind: {' | '.join(RATE_KINDS)}",
                )
            self.money(rate, (*path, "rates_per_minute", kind))
        self.int_range(b.step_seconds, 1, 60, (*path, "step_seconds"))
        self.money(b.low_balance, (*path, "low_balance"))
        self.money(b.suspend_below, (*path, "suspend_below"))

    def notify(self, n: Notify, path: KeyPath) -> None:
        if n.sms is not None and not (_DIGITS.match(n.sms) and 5 <= len(n.sms) <= 20):
            self.p.add((*path, "sms"), f"{n.sms!r} is not a mobile number")
        if n.email is not None and not _EMAIL.match(n.email):
            self.p.add((*path, "email"), f"{n.email!r} is not an e-mail address")
        if n.missed_call_sms and not n.sms:
            self.p.add((*path, "missed_call_sms"), "needs 'sms', the number to send to")

    def extension(self, e: ExtensionConfig, path: KeyPath, t: _Tenant) -> None:
        problem = extension_number_problem(e.number)
        if problem:
            self.p.add((*path, "number"), problem)
        if len(e.password) < 8:
            self.p.add(
                (*path, "password"),
                "too short: at least 8 characters (SIP scanners guess short secrets)",
            )
        if e.agent_id and not (_DIGITS.match(e.agent_id) and len(e.agent_id) <= 16):
            self.p.add((*path, "agent_id"), f"{e.agent_id!r} is not an agent id: up to 16 digits")
        self.prompt_ref(e.ringback, (*path, "ringback"), t)

    def group(self, g: GroupConfig, path: KeyPath, t: _Tenant) -> None:
        self.name(g.name, (*path, "name"))
        if g.strategy not in STRATEGIES:
            self.p.add(
                (*path, "strategy"), f"{g.strategy!r} is not a strategy: {' | '.join(STRATEGIES)}"
            )
        self.int_range(g.ring_timeout, 5, 300, (*path, "ring_timeout"))
        self.int_range(g.sticky_days, 1, 365, (*path, "sticky_days"))
        if not g.members:
            self.p.add((*path, "members"), "a group needs at least one member")
        seen: set[str] = set()
        for i, member in enumerate(g.members):
            if member in seen:
                self.p.add((*path, "members", i), f"{member!r} is listed twice")
            seen.add(member)
            self.destination(member, (*path, "members", i), t, MEMBER_KINDS)
        if g.queue is not None:
            self.int_range(g.queue.max_wait, 1, 3600, (*path, "queue", "max_wait"))
            self.prompt_ref(g.queue.music, (*path, "queue", "music"), t)

    def prompt(self, p: PromptConfig, path: KeyPath) -> None:
        self.name(p.name, (*path, "name"))
        if (p.text is None) == (p.file is None):
            self.p.add(path, "give exactly one of 'text' and 'file'")
        if p.text is not None and not p.text.strip():
            self.p.add((*path, "text"), "must not be empty")
        if p.file is not None and not p.file.lower().endswith(PROMPT_SUFFIXES):
            self.p.add(
                (*path, "file"), f"{p.file!r}: audio files end in " + ", ".join(PROMPT_SUFFIXES)
            )

    def schedule(self, s: ScheduleConfig, path: KeyPath) -> None:
        self.name(s.name, (*path, "name"))
        if not s.weekly:
            self.p.add((*path, "weekly"), 'give at least one range like "mon-fri 08:30-17:30"')
        for i, entry in enumerate(s.weekly):
            try:
                parse_weekly(entry)
            except ScheduleSyntaxError as exc:
                self.p.add((*path, "weekly", i), str(exc))
        self.holidays(s.holidays, (*path, "holidays"))

    def menu(self, m: MenuConfig, path: KeyPath, t: _Tenant) -> None:
        self.name(m.name, (*path, "name"))
        self.prompt_ref(m.prompt, (*path, "prompt"), t)
        self.int_range(m.timeout, 1, 60, (*path, "timeout"))
        self.int_range(m.retries, 0, 10, (*path, "retries"))
        if not m.keys and not m.dial_extensions:
            self.p.add((*path, "keys"), "a menu needs keys or dial_extensions = true")
        if len(m.keys) > 10:
            self.p.add((*path, "keys"), f"{len(m.keys)} keys: a menu has at most 10")
        for key, dest in m.keys.items():
            if len(key) != 1 or key not in "0123456789*#":
                self.p.add((*path, "keys", key), f"{key!r} is not a key: one of 0-9, * or #")
            self.destination(dest, (*path, "keys", key), t)
        if m.on_timeout:
            self.destination(m.on_timeout, (*path, "on_timeout"), t)

    def hotline(self, h: HotlineConfig, path: KeyPath, t: _Tenant) -> None:
        problem = hotline_number_problem(h.number)
        if problem:
            self.p.add((*path, "number"), problem)
        self.timezone(h.timezone, (*path, "timezone"))
        if h.schedule_override not in ("", "day", "night"):
            self.p.add(
                (*path, "schedule_override"),
                f'{h.schedule_override!r} must be "day", "night" or "" (follow the schedules)',
            )
        if h.anonymous not in ("allow", "reject"):
            self.p.add((*path, "anonymous"), f'{h.anonymous!r} must be "allow" or "reject"')
        if h.caller_id not in ("caller", "hotline"):
            self.p.add((*path, "caller_id"), f'{h.caller_id!r} must be "caller" or "hotline"')
        self.prompt_ref(h.ringback, (*path, "ringback"), t)
        if h.pin and not (_DIGITS.match(h.pin) and 4 <= len(h.pin) <= 8):
            self.p.add((*path, "pin"), f"{h.pin!r} is not a PIN: 4 to 8 digits")
        self.screening(h.blacklist, (*path, "blacklist"))
        self.screening(h.whitelist, (*path, "whitelist"))
        for i, region in enumerate(h.blocked_regions):
            if not region.strip():
                self.p.add((*path, "blocked_regions", i), "a region must not be empty")
        if h.monthly_call_cap is not None and h.monthly_call_cap < 0:
            self.p.add((*path, "monthly_call_cap"), "must not be negative")
        self.money(h.monthly_cost_cap, (*path, "monthly_cost_cap"))
        for i, route in enumerate(h.routes):
            self.route(route, (*path, "routes", i), t, h.number)
        if h.fallback is not None:
            for key in ("busy", "no_answer"):
                for i, dest in enumerate(getattr(h.fallback, key) or ()):
                    self.destination(dest, (*path, "fallback", key, i), t)

    def route(self, r: Route, path: KeyPath, t: _Tenant, number: str) -> None:
        if (r.to is None) == (r.split is None):
            self.p.add(path, "give exactly one of 'to' and 'split'")
        if r.to is not None:
            self.destination(r.to, (*path, "to"), t)
            if r.to == f"hotline:{number}":
                self.p.add((*path, "to"), "a hotline cannot route to itself")
        if r.split is not None:
            for dest, pct in r.split.items():
                self.destination(dest, (*path, "split", dest), t)
                if not 1 <= pct <= 100:
                    self.p.add((*path, "split", dest), f"{pct} is not a percentage from 1 to 100")
            total = sum(r.split.values())
            if total != 100:
                self.p.add((*path, "split"), f"the percentages add up to {total}, not 100")
        if r.when is not None:
            w = r.when
            if w.schedule is None and w.regions is None:
                self.p.add((*path, "when"), "give 'schedule', 'regions' or both")
            if w.schedule is not None:
                name = w.schedule.removeprefix("!")
                if name not in t.schedules and "schedule" not in t.incomplete:
                    self.p.add(
                        (*path, "when", "schedule"),
                        f"{w.schedule!r}: {name!r} is not a schedule of tenant {t.slug!r}",
                    )
            if w.regions is not None:
                if not w.regions:
                    self.p.add((*path, "when", "regions"), "name at least one region")
                for i, region in enumerate(w.regions):
                    if not region.strip():
                        self.p.add((*path, "when", "regions", i), "a region must not be empty")


# --- entry point --------------------------------------------------------------

_SYNTAX_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_SITE_INFO = msgspec.inspect.type_info(SiteFile)


def parse_site(text: str, source: str = "site file") -> SiteFile:
    """Parse and check a site file; raise SiteFileError naming every problem."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = _SYNTAX_AT.search(message)
        if m:
            message = f"line {m[1]}: invalid TOML: {message[: m.start()]} (column {m[2]})"
        else:
            message = f"invalid TOML: {message}"
        raise SiteFileError([message], source) from None
    except RecursionError:
        # A hostile file (thousands of nested arrays) must not crash apply.
        raise SiteFileError(["invalid TOML: arrays or tables nested too deeply"], source) from None
    problems = Problems()
    cleaned = _shape(raw, _SITE_INFO, (), problems)
    site = msgspec.convert(cleaned, SiteFile)
    _Checker(site, problems).run()
    if problems:
        raise SiteFileError(problems.messages(Locator(text)), source)
    return site


def line_of(text: str, path: KeyPath) -> int | None:
    return Locator(text).line(path)
