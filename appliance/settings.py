"""Settings, read once from `/etc/linebox/linebox.toml` (or `$LINEBOX_CONFIG`)
and the environment; a real environment variable wins over the file.

Each concern is one frozen dataclass whose field docstrings say what the value
means. The environment variable for a field is `LINEBOX_<SECTION>_<FIELD>`
(`LINEBOX_SIP_PORT=5070`), and three common ones have short names:
`LINEBOX_DATA_DIR`, `LINEBOX_DATABASE_URL`, `LINEBOX_REDIS_URL`.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.errors import SettingsError

DEFAULT_CONFIG_FILE = Path("/etc/linebox/linebox.toml")


@dataclass(frozen=True)
class PathSettings:
    data_dir: Path = Path("var")
    """Where the database, the routing plan, the queue, recordings and runtime
    files live: `./var` in a checkout, `/var/lib/linebox` on the appliance."""

    @property
    def plan_dir(self) -> Path:
        return self.data_dir / "plan"

    @property
    def plan_file(self) -> Path:
        """The published routing plan Kamailio reads (replaced atomically)."""
        return self.plan_dir / "plan.json"

    @property
    def gateways_file(self) -> Path:
        """The trunks' gateways as Kamailio's dispatcher module lists them,
        written with the plan (`appliance.routing.plan.publish`)."""
        return self.plan_dir / "dispatcher.list"

    @property
    def run_dir(self) -> Path:
        """Sockets, pid files and generated configuration of the running services."""
        return self.data_dir / "run"

    @property
    def spool_dir(self) -> Path:
        """rtpengine's recordings before the worker converts them."""
        return self.data_dir / "spool"

    @property
    def queue_file(self) -> Path:
        return self.data_dir / "queue.sqlite"

    @property
    def bans_file(self) -> Path:
        """The SIP bans in force, so a restarted Kamailio still ignores an
        attacker (`appliance.sip.bans`)."""
        return self.data_dir / "sip-bans"


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = ""
    """`sqlite:///path` or `postgresql://user:pass@host/db`; empty means the
    SQLite file `linebox.sqlite` in the data directory."""


@dataclass(frozen=True)
class QueueSettings:
    redis_url: str = ""
    """When set, the worker queue is Redis (`redis://host:6379/0`); otherwise a
    SQLite file in the data directory."""


@dataclass(frozen=True)
class SipSettings:
    address: str = "127.0.0.1"
    """The address Kamailio listens on (UDP and TCP)."""
    port: int = 5060
    """The SIP port."""
    advertised_address: str = ""
    """The address put in Record-Route and Contact when it differs from
    `address` (behind a NAT); empty means `address`."""
    domain: str = "linebox.local"
    """The SIP domain and digest realm phones register to."""
    children: int = 4
    """Kamailio worker processes per listening socket."""
    gateway_ping: int = 10
    """Seconds between the OPTIONS probes of each trunk gateway: a gateway
    that does not answer one is skipped until it answers again (0: no
    probes; every gateway counts as up)."""
    shm_mb: int = 256
    """Kamailio shared memory, MiB: transactions and dialogs live here."""
    pkg_mb: int = 16
    """Kamailio private memory per process, MiB (the embedded Python needs room)."""
    tls_port: int = 5061
    """The SIP over TLS port, on `address`; 0 turns SIP over TLS off. It is
    on only when the certificate and its key exist."""
    tls_certificate: Path = Path("/etc/linebox/tls/linebox.crt")
    """The certificate (PEM) SIP over TLS presents: the self-signed one made
    at first boot, or a real one put in its place."""
    tls_key: Path = Path("/etc/linebox/tls/linebox.key")
    """The certificate's private key (PEM)."""

    @property
    def tls(self) -> bool:
        """Is SIP over TLS on (a port, and a certificate with its key)?"""
        return bool(self.tls_port) and self.tls_certificate.is_file() and self.tls_key.is_file()


@dataclass(frozen=True)
class MediaSettings:
    address: str = ""
    """The address rtpengine relays media on; empty means the SIP address."""
    advertised_address: str = ""
    """The address put in SDP when it differs from `address`."""
    ng_port: int = 2223
    """rtpengine's control (ng protocol) port, on 127.0.0.1."""
    cli_port: int = 2224
    """rtpengine's CLI port, on 127.0.0.1 (`rtpengine-ctl -p`)."""
    dtmf_port: int = 2225
    """Where rtpengine reports DTMF digits (Kamailio reads them)."""
    port_min: int = 30000
    """The first UDP port of the media range."""
    port_max: int = 32767
    """The last UDP port of the media range: two per call leg, four per call
    (about 690 calls), below Linux's ephemeral ports (32768 on), where other
    processes' sockets would take ports from rtpengine."""
    threads: int = 2
    """rtpengine worker threads."""
    voicemail_max_seconds: int = 120
    """A message longer than this is cut: linebox hangs up on the caller."""


@dataclass(frozen=True)
class WebSettings:
    host: str = "127.0.0.1"
    """The address the web app listens on."""
    port: int = 8080
    """The web app's port."""
    secret_key: str = ""
    """Signs session cookies; generated into the data directory when empty."""


@dataclass(frozen=True)
class SecuritySettings:
    trusted: str = ""
    """Comma-separated addresses or networks (`10.0.0.0/8, 192.0.2.7`) whose
    requests are never counted as a flood. The trunks' addresses always are."""
    ban_seconds: int = 600
    """How long a source that flooded or guessed passwords gets no answer."""
    auth_failures: int = 10
    """Failed authentications from one source within `auth_window` seconds
    that get it banned (password guessing)."""
    auth_window: int = 300
    """The window, in seconds, that `auth_failures` counts over."""
    flood_requests: int = 50
    """Requests from one untrusted source within `flood_window` seconds that
    get it banned (new calls, registrations, anything outside a dialog)."""
    flood_window: int = 2
    """The window, in seconds, that `flood_requests` counts over."""


@dataclass(frozen=True)
class Settings:
    paths: PathSettings = field(default_factory=PathSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    sip: SipSettings = field(default_factory=SipSettings)
    media: MediaSettings = field(default_factory=MediaSettings)
    web: WebSettings = field(default_factory=WebSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    timezone: str = "Asia/Shanghai"
    """The appliance's default time zone; hotlines may name their own."""

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.paths.data_dir / 'linebox.sqlite'}"

    @property
    def media_address(self) -> str:
        return self.media.address or self.sip.address

    @property
    def sip_advertised(self) -> str:
        return self.sip.advertised_address or self.sip.address


_SHORT_NAMES = {
    "LINEBOX_DATA_DIR": ("paths", "data_dir"),
    "LINEBOX_DATABASE_URL": ("database", "url"),
    "LINEBOX_REDIS_URL": ("queue", "redis_url"),
    "LINEBOX_TIMEZONE": (None, "timezone"),
}


def _coerce(value: Any, kind: Any, where: str) -> Any:
    kind = {"Path": Path, "int": int, "str": str}.get(kind, kind) if isinstance(kind, str) else kind
    try:
        if kind is Path:
            return Path(value).expanduser()
        if kind is int:
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if kind is str:
            if not isinstance(value, str | int):
                raise ValueError(value)
            return str(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{where}: {value!r} is not a valid {kind.__name__}") from None
    return value


def load(config_file: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Read the settings file (if any) and the environment."""
    environ = dict(os.environ if environ is None else environ)
    path = config_file or Path(environ.get("LINEBOX_CONFIG", DEFAULT_CONFIG_FILE))
    raw: dict[str, Any] = {}
    if path.is_file():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path}: {exc}") from None

    sections: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        default = Settings().__getattribute__(f.name)
        if dataclasses.is_dataclass(default):
            section_raw = raw.get(f.name, {})
            if not isinstance(section_raw, dict):
                raise SettingsError(f"{path}: [{f.name}] must be a table")
            values = {}
            for sf in dataclasses.fields(default):
                env_name = f"LINEBOX_{f.name.upper()}_{sf.name.upper()}"
                if env_name in environ:
                    values[sf.name] = _coerce(environ[env_name], sf.type, env_name)
                elif sf.name in section_raw:
                    values[sf.name] = _coerce(
                        section_raw[sf.name], sf.type, f"{path}: {f.name}.{sf.name}"
                    )
            unknown = set(section_raw) - {sf.name for sf in dataclasses.fields(default)}
            if unknown:
                raise SettingsError(f"{path}: unknown setting {f.name}.{sorted(unknown)[0]}")
            sections[f.name] = values
        elif f.name in raw:
            top[f.name] = _coerce(raw[f.name], f.type, f"{path}: {f.name}")

    for env_name, (section, name) in _SHORT_NAMES.items():
        if environ.get(env_name):
            kind = Path if name == "data_dir" else str
            if section is None:
                top[name] = _coerce(environ[env_name], kind, env_name)
            else:
                sections.setdefault(section, {})[name] = _coerce(environ[env_name], kind, env_name)

    built = {name: type(getattr(Settings(), name))(**values) for name, values in sections.items()}
    settings = Settings(**built, **top)
    data_dir = settings.paths.data_dir.absolute()
    return dataclasses.replace(settings, paths=PathSettings(data_dir=data_dir))


def to_environ(settings: Settings) -> dict[str, str]:
    """Every setting as the environment variable that sets it, so a child
    process reads exactly the settings of its parent."""
    environ = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if dataclasses.is_dataclass(value):
            for sf in dataclasses.fields(value):
                environ[f"LINEBOX_{f.name.upper()}_{sf.name.upper()}"] = str(
                    getattr(value, sf.name)
                )
        else:
            environ[f"LINEBOX_{f.name.upper()}"] = str(value)
    # The short names win in load(): keep them in step.
    environ["LINEBOX_DATA_DIR"] = str(settings.paths.data_dir)
    environ["LINEBOX_DATABASE_URL"] = settings.database.url
    environ["LINEBOX_REDIS_URL"] = settings.queue.redis_url
    return environ


_current: Settings | None = None


def get() -> Settings:
    """The process's settings, read on first use."""
    global _current
    if _current is None:
        _current = load()
    return _current


def override(settings: Settings) -> None:
    """Use these settings in this process (tests, `linebox run` children)."""
    global _current
    _current = settings
