"""The routing plan: an immutable, versioned snapshot of everything routing
needs, compiled from the database and published atomically where Kamailio
reads it.

Kamailio's processes each keep the plan they loaded and compare the file's
identity (inode, size, mtime) before each new call: a rename publishes a new
file, so a process sees either the old plan or the new one, never half.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import ipaddress
import os
import tempfile
import time
from pathlib import Path

import msgspec

from appliance import settings as settings_mod


class ExtensionPlan(msgspec.Struct, frozen=True):
    number: str
    tenant: str
    ha1: str
    """MD5(user:realm:password), what digest authentication needs."""
    name: str = ""
    agent_id: str = ""
    ringback: str = ""
    """The audio file callers hear while this extension rings, when it is
    dialled (an extension's own 彩铃); '' for the hotline's or the ring tone."""


class GroupPlan(msgspec.Struct, frozen=True):
    name: str
    strategy: str = "sequential"
    ring_timeout: int = 20
    members: tuple[str, ...] = ()
    announce_agent_id: bool = False
    survey: bool = False
    sticky_days: int = 30
    """How long a `sticky` group remembers who last answered a caller."""
    queue_wait: int = 0
    """Seconds callers wait with music when every member is busy, first come
    first served, before the busy fallback (0: no queue)."""
    queue_music: str = ""
    """The audio file callers wait with ('' for the stock hold music)."""


class MenuPlan(msgspec.Struct, frozen=True):
    """An IVR menu (IVR语音导航): what each key does."""

    name: str
    prompt: str = ""
    """The audio file of the menu's prompt ('' when it has none yet)."""
    timeout: int = 5
    """Seconds the caller has to press a key once the prompt has played."""
    retries: int = 2
    """Timeouts or invalid keys forgiven before `on_timeout` takes over."""
    dial_extensions: bool = False
    """May callers key an extension number directly (查分机请直拨分机号)?"""
    keys: dict[str, str] = {}
    """Key (`0`–`9`, `*`, `#`) → destination (`group:sales`, `menu:other`, …)."""
    on_timeout: str = ""
    """Where the call goes after too many timeouts or invalid keys ('' ends it)."""


class Condition(msgspec.Struct, frozen=True, omit_defaults=True):
    schedule: str = ""
    """A schedule name; `!name` means outside it."""
    regions: tuple[str, ...] = ()
    """Provinces, cities or area codes of the caller."""


class RoutePlan(msgspec.Struct, frozen=True, omit_defaults=True):
    when: Condition | None = None
    to: str = ""
    split: tuple[tuple[str, int], ...] = ()
    """(destination, percent) pairs summing to 100, in the site file's order."""


class ScheduleRange(msgspec.Struct, frozen=True, array_like=True):
    weekday: int
    """0 = Monday."""
    start: int
    """Minutes since midnight, inclusive."""
    end: int
    """Minutes since midnight, exclusive."""


class SchedulePlan(msgspec.Struct, frozen=True):
    name: str
    ranges: tuple[ScheduleRange, ...] = ()
    holidays: str = ""
    """A calendar name (`cn`): on its public holidays the schedule is closed, on
    its make-up working days (调休) the weekday ranges apply."""


class HotlinePlan(msgspec.Struct, frozen=True):
    number: str
    tenant: str
    name: str = ""
    timezone: str = "Asia/Shanghai"
    enabled: bool = True
    schedule_override: str = ""
    """`day`/`night`: every schedule of the hotline counts as open/closed."""
    anonymous: str = "allow"
    """`reject` refuses callers who withhold their number (433)."""
    caller_id: str = "caller"
    """What a destination rung through the trunk is shown: `caller` or `hotline`."""
    state: str = "active"
    """`active`, `capped` (a monthly cap is reached) or `suspended` (the
    tenant's balance ran out): the worker decides, the plan carries it."""
    ringback: str = ""
    record: bool = False
    pin: str = ""
    blacklist: tuple[str, ...] = ()
    whitelist: tuple[str, ...] = ()
    blocked_regions: tuple[str, ...] = ()
    routes: tuple[RoutePlan, ...] = ()
    fallback_busy: tuple[str, ...] = ()
    fallback_no_answer: tuple[str, ...] = ()


class TenantPlan(msgspec.Struct, frozen=True):
    slug: str
    groups: dict[str, GroupPlan] = {}
    schedules: dict[str, SchedulePlan] = {}
    menus: dict[str, MenuPlan] = {}
    prompts: dict[str, str] = {}
    """Prompt name → audio file path ('' when the prompt has no audio yet)."""
    international: bool = False
    """May `tel:` destinations call numbers abroad?"""
    premium: bool = False
    """May `tel:` destinations call premium and special numbers?"""
    max_outbound: int = 10
    """Calls out through the trunk at once, at most."""
    max_outbound_minutes: int = 300
    """Minutes out through the trunk per clock hour, at most."""


class TrunkPlan(msgspec.Struct, frozen=True):
    name: str
    gateways: tuple[str, ...]
    """Where calls to the carrier go, `address[:port]` each, in failover order."""
    sources: tuple[str, ...] = ()
    """Where the carrier's calls come from: `address`, `address:port` (the
    short `host` form names the port) or a network `192.0.2.0/28`."""
    setid: int = 1
    """The trunk's set in Kamailio's dispatcher list (probing)."""
    transport: str = "udp"
    dids: tuple[str, ...] = ()
    did_map: dict[str, str] = {}
    max_calls: int = 0
    strip_prefix: str = ""
    add_prefix: str = ""
    codecs: tuple[str, ...] = ("PCMA", "PCMU")

    def dial(self, number: str) -> str:
        """`number` as the carrier wants it dialled."""
        if self.strip_prefix and number.startswith(self.strip_prefix):
            number = number[len(self.strip_prefix) :]
        return self.add_prefix + number

    def probe_uri(self, gateway: str) -> str:
        """The gateway as Kamailio's dispatcher list names it."""
        transport = f";transport={self.transport}" if self.transport != "udp" else ""
        return f"sip:{gateway}{transport}"

    def uri(self, number: str, gateway: str) -> str:
        transport = f";transport={self.transport}" if self.transport != "udp" else ""
        return f"sip:{self.dial(number)}@{gateway}{transport}"

    def matches(self, address: str, port: int) -> bool:
        for source in self.sources:
            if "/" in source:
                with contextlib.suppress(ValueError):
                    if ipaddress.ip_address(address) in ipaddress.ip_network(source):
                        return True
            elif source == address or source == f"{address}:{port}":
                return True
        return False


class Plan(msgspec.Struct, frozen=True):
    version: str
    compiled_at: float
    domain: str
    hotlines: dict[str, HotlinePlan] = {}
    extensions: dict[str, ExtensionPlan] = {}
    tenants: dict[str, TenantPlan] = {}
    trunks: tuple[TrunkPlan, ...] = ()
    max_forwards: int = 3
    """How many fallback destinations one call may be forwarded to (carriers
    cap at 3), so chains of forwards cannot ring forever."""
    recording_paused: bool = False
    """The recordings volume is (nearly) full: calls go on, unrecorded."""
    holiday_overrides: dict[str, str] = {}
    """ISO date → `closed` or `open`: the operator's corrections to the
    public-holiday calendar."""

    def trunk_for_source(self, address: str, port: int) -> TrunkPlan | None:
        for trunk in self.trunks:
            if trunk.matches(address, port):
                return trunk
        return None

    def trunk_named(self, name: str) -> TrunkPlan | None:
        return next((t for t in self.trunks if t.name == name), None)

    def hotline_for(self, called: str, trunk: TrunkPlan | None) -> str:
        """The hotline a number called over `trunk` reaches: its own number,
        a DID the trunk maps to it, or the number in national form (the
        carrier may send `+864001234567` or `864001234567`)."""
        if called in self.hotlines:
            return called
        if trunk is not None and called in trunk.did_map:
            return trunk.did_map[called]
        for prefix in ("+86", "0086", "86"):
            if called.startswith(prefix) and called[len(prefix) :] in self.hotlines:
                return called[len(prefix) :]
        return called


EMPTY = Plan(version="empty", compiled_at=0.0, domain="")

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Plan)


def encode(plan: Plan) -> bytes:
    return _encoder.encode(plan)


def decode(data: bytes) -> Plan:
    return _decoder.decode(data)


def digest_ha1(user: str, realm: str, password: str) -> str:
    return hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()


def gateway_list(plan: Plan) -> str:
    """The trunks' gateways in the format of Kamailio's dispatcher list
    (`set uri flags priority attrs`): one set per trunk, gateways in order."""
    lines = ["# linebox: the trunks' gateways, written with the routing plan"]
    for trunk in plan.trunks:
        for priority, gateway in enumerate(reversed(trunk.gateways)):
            lines.append(
                f"{trunk.setid} {trunk.probe_uri(gateway)} 0 {priority} trunk={trunk.name}"
            )
    return "\n".join(lines) + "\n"


def publish(plan: Plan, path: Path | None = None) -> Path:
    """Write the plan where Kamailio reads it, atomically (write, fsync,
    rename), and the trunks' gateways beside it (`dispatcher.list`, written
    first: Kamailio reloads it when it sees the new plan)."""
    path = path or settings_mod.get().paths.plan_file
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path.with_name("dispatcher.list"), gateway_list(plan).encode(), 0o644)
    write_atomically(path, encode(plan), 0o640)  # digest hashes: linebox only
    return path


def write_atomically(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class PlanFile:
    """A process's view of the published plan: reloads when the file changes.

    `current()` costs one stat() when nothing changed (about a microsecond), so
    Kamailio calls it for every new call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._identity: tuple[int, int, int] | None = None
        self._plan = EMPTY
        self.loads = 0

    def current(self) -> Plan:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return self._plan
        identity = (st.st_ino, st.st_size, st.st_mtime_ns)
        if identity != self._identity:
            with open(self.path, "rb") as f:
                self._plan = decode(f.read())
            self._identity = identity
            self.loads += 1
            # The plan lives until the next one: keep the cyclic collector
            # from walking its objects on every collection (freed by refcount
            # all the same once replaced).
            gc.freeze()
        return self._plan


def new_version() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f".{time.time_ns() % 1_000_000_000:09d}"
