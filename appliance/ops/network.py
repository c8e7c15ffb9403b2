"""Which address the appliance serves SIP and media on, and its static
network configuration.

On the appliance the SIP and media addresses are detected at start: the
address of the interface the default route leaves by, or, with no default
route, the first address of an interface that is up. An address set in
`/etc/linebox/linebox.toml` (`[sip] address`, `[media] address`) or in the
environment (`LINEBOX_SIP_ADDRESS`, `LINEBOX_MEDIA_ADDRESS`) wins and is never
replaced. With no address at all (no DHCP answer yet) the services still
start, on loopback, and say so, rather than failing as Debian's rtpengine
does with `interface = any`.

`linebox network detect --write FILE` writes the result as environment
variables for the units (`linebox-network.service`); `resolve(settings)` does
the same for a process that starts the services itself.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import subprocess
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.errors import LineboxError
from appliance.settings import DEFAULT_CONFIG_FILE, Settings

LOOPBACK = "127.0.0.1"

ROUTE_PROBE = "1.1.1.1"
"""Any public address: only looked up in the routing table, never sent to."""

NETWORKD_FILE = Path("/etc/systemd/network/10-linebox.network")
"""The static configuration `linebox network static` writes; it sorts before
the image's DHCP default (80-dhcp.network), so it wins."""


class NetworkError(LineboxError):
    pass


@dataclass(frozen=True)
class Detected:
    address: str
    interface: str
    how: str
    """In words: which rule found the address."""


def _interfaces() -> tuple[str | None, dict[int, str], list[tuple[int, str]]]:
    """(source address of the default route, interface names by index,
    [(index, IPv4 address)] of global addresses on interfaces that are up)."""
    from pyroute2 import IPRoute

    with IPRoute() as ip:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ip.get_links()}
        up = {link["index"] for link in ip.get_links() if link["flags"] & 1}
        route_source = None
        try:
            routes = ip.route("get", dst=ROUTE_PROBE)
            if routes:
                route_source = routes[0].get_attr("RTA_PREFSRC")
        except Exception:  # no route: the network is not there (yet)
            route_source = None
        addresses = [
            (a["index"], a.get_attr("IFA_ADDRESS"))
            for a in ip.get_addr(family=2)
            if a["index"] in up and a.get_attr("IFA_ADDRESS")
        ]
    return route_source, names, addresses


def detect_once() -> Detected | None:
    route_source, names, addresses = _interfaces()
    by_address = {addr: names.get(index, "?") for index, addr in addresses}
    if route_source and not ipaddress.ip_address(route_source).is_loopback:
        return Detected(route_source, by_address.get(route_source, "?"), "default route")
    for index, addr in addresses:
        ip = ipaddress.ip_address(addr)
        if not (ip.is_loopback or ip.is_link_local):
            return Detected(addr, names.get(index, "?"), "first interface that is up")
    return None


def detect(wait: float = 0.0) -> Detected:
    """The address to serve on, waiting up to `wait` seconds for one to
    appear (DHCP at boot); loopback when none does."""
    deadline = time.monotonic() + wait
    while True:
        found = detect_once()
        if found:
            return found
        if time.monotonic() >= deadline:
            return Detected(LOOPBACK, "lo", "no network address: serving on loopback only")
        time.sleep(0.5)


def explicit_addresses(
    config_file: Path | None = None, environ: dict[str, str] | None = None
) -> dict[str, str]:
    """The addresses the administrator set, as {"sip": …, "media": …}."""
    environ = dict(os.environ if environ is None else environ)
    path = config_file or Path(environ.get("LINEBOX_CONFIG", DEFAULT_CONFIG_FILE))
    raw: dict[str, Any] = {}
    if path.is_file():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError:
            raw = {}  # `linebox doctor` and the services report a broken file
    found = {}
    for section in ("sip", "media"):
        value = environ.get(f"LINEBOX_{section.upper()}_ADDRESS") or (
            raw.get(section, {}).get("address") if isinstance(raw.get(section), dict) else None
        )
        if value:
            found[section] = str(value)
    return found


def environment(
    wait: float = 0.0, config_file: Path | None = None, environ: dict[str, str] | None = None
) -> tuple[dict[str, str], Detected | None]:
    """The variables that give the services their addresses: the detected
    address for whatever the administrator did not set."""
    given = explicit_addresses(config_file, environ)
    if "sip" in given and "media" in given:
        return {}, None
    found = detect(wait)
    env = {}
    if "sip" not in given:
        env["LINEBOX_SIP_ADDRESS"] = found.address
    if "media" not in given:
        env["LINEBOX_MEDIA_ADDRESS"] = given.get("sip", found.address)
    return env, found


def resolve(settings: Settings, wait: float = 0.0) -> Settings:
    """`settings` with the detected addresses where none was set.

    For `appliance.services` when it starts the services itself: call it
    once, before building the services, e.g. in `cmd_service`:
    `settings = network.resolve(settings_mod.get())` when
    `LINEBOX_DETECT_ADDRESS=1` (the units do it instead through
    `/run/linebox/network.env`)."""
    env, _ = environment(wait)
    if not env:
        return settings
    sip, media = settings.sip, settings.media
    if "LINEBOX_SIP_ADDRESS" in env:
        sip = dataclasses.replace(sip, address=env["LINEBOX_SIP_ADDRESS"])
    if "LINEBOX_MEDIA_ADDRESS" in env:
        media = dataclasses.replace(media, address=env["LINEBOX_MEDIA_ADDRESS"])
    return dataclasses.replace(settings, sip=sip, media=media)


def write_env_file(path: Path, env: dict[str, str], found: Detected | None) -> None:
    lines = ["# Written by `linebox network detect` at start; do not edit."]
    if found:
        lines.append(f"# {found.address} on {found.interface}: {found.how}")
    lines += [f"{name}={value}" for name, value in sorted(env.items())]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


# --- static configuration (systemd-networkd) -----------------------------------


@dataclass(frozen=True)
class StaticNetwork:
    address: str
    """With its prefix: `192.0.2.10/24`."""
    gateway: str = ""
    dns: tuple[str, ...] = ()
    interface: str = "en* eth*"


_INTERFACE = re.compile(r"^[A-Za-z0-9*?_.:@-]{1,15}\Z")
MAX_DNS = 3
"""What resolv.conf and most resolvers use; more is a typo more often than not."""


def _text(table: dict[str, Any], key: str, default: str, where: str, problems: list[str]) -> str:
    value = table.get(key, default)
    if not isinstance(value, str):
        problems.append(f"{where} {key} must be text, not {value!r}")
        return default
    return value.strip()


def parse_static(table: dict[str, Any], where: str = "[appliance.network]") -> StaticNetwork | None:
    """A site file's `[appliance.network]` table (or the web admin's form):
    `address = "dhcp"` (or no table) means DHCP; otherwise `address` with its
    prefix, `gateway`, `dns` and the `interface` names networkd matches.

    Checked strictly, because a wrong address cuts the appliance off its
    network: a usable host address (not the network's or broadcast address,
    not loopback, multicast or link-local), a gateway inside that network,
    at most three DNS servers, interface patterns that cannot smuggle a line
    into the networkd file."""
    problems: list[str] = []
    address = _text(table, "address", "dhcp", where, problems)
    unknown = set(table) - {"address", "gateway", "dns", "interface"}
    if unknown:
        problems.append(f"{where}: unknown key {sorted(unknown)[0]!r}")
    if address == "dhcp":
        if problems:
            raise NetworkError("; ".join(problems))
        return None
    iface: ipaddress.IPv4Interface | ipaddress.IPv6Interface | None = None
    try:
        iface = ipaddress.ip_interface(address)
    except ValueError:
        problems.append(f"{where} address {address!r} is not an address like 192.0.2.10/24")
    if iface is not None:
        ip, net = iface.ip, iface.network
        if "/" not in address:
            problems.append(f"{where} address {address!r}: add the prefix, e.g. {address}/24")
        elif ip.is_loopback or ip.is_multicast or ip.is_unspecified or ip.is_link_local:
            problems.append(f"{where} address {address!r} cannot be the appliance's address")
        elif net.prefixlen < 8 and ip.version == 4:
            problems.append(
                f"{where} address {address!r}: the prefix /{net.prefixlen} is too short"
            )
        elif (
            ip.version == 4
            and net.prefixlen < 31
            and ip in (net.network_address, net.broadcast_address)
        ):
            which = "network" if ip == net.network_address else "broadcast"
            problems.append(
                f"{where} address {address!r} is the {which} address of {net}: use a host address"
            )
    gateway = _text(table, "gateway", "", where, problems)
    if gateway:
        try:
            gw = ipaddress.ip_address(gateway)
        except ValueError:
            problems.append(f"{where} gateway {gateway!r} is not an address")
        else:
            if iface is not None and "/" in address:
                if gw.version != iface.version or gw not in iface.network:
                    problems.append(
                        f"{where} gateway {gateway!r} is not in the network {iface.network}"
                    )
                elif gw == iface.ip:
                    problems.append(f"{where} gateway {gateway!r} is the appliance's own address")
    dns = table.get("dns", [])
    if isinstance(dns, str):
        dns = [dns]
    if not isinstance(dns, list):
        problems.append(f"{where} dns must be a list of addresses")
        dns = []
    if len(dns) > MAX_DNS:
        problems.append(f"{where} dns: at most {MAX_DNS} servers")
    for server in dns:
        try:
            ipaddress.ip_address(str(server).strip())
        except ValueError:
            problems.append(f"{where} dns {server!r} is not an address")
    interface = _text(table, "interface", "en* eth*", where, problems)
    names = interface.split()
    if not names or len(names) > 8 or not all(_INTERFACE.match(n) for n in names):
        problems.append(
            f"{where} interface {interface!r}: interface names or patterns "
            "(en*, eth0) separated by spaces"
        )
    if problems:
        raise NetworkError("; ".join(problems))
    return StaticNetwork(
        address=address,
        gateway=gateway,
        dns=tuple(str(s).strip() for s in dns),
        interface=" ".join(names),
    )


def networkd_text(static: StaticNetwork) -> str:
    lines = [
        "# Written by `linebox network`: the appliance's static address.",
        "# `linebox network dhcp` removes it (DHCP again).",
        "[Match]",
        f"Name={static.interface}",
        "",
        "[Network]",
        f"Address={static.address}",
    ]
    if static.gateway:
        lines.append(f"Gateway={static.gateway}")
    lines += [f"DNS={server}" for server in static.dns]
    return "\n".join(lines) + "\n"


def site_network(site_file: Path) -> StaticNetwork | None:
    """The static network a site file asks for (None: DHCP)."""
    try:
        raw = tomllib.loads(site_file.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise NetworkError(f"{site_file}: {exc}") from None
    table = raw.get("appliance", {}).get("network", {})
    if not isinstance(table, dict):
        raise NetworkError(f"{site_file}: [appliance.network] must be a table")
    return parse_static(table)


def apply_static(static: StaticNetwork | None, path: Path = NETWORKD_FILE) -> bool:
    """Write (or, for DHCP, remove) the networkd file; True when it changed."""
    if static is None:
        if path.exists():
            path.unlink()
            return True
        return False
    text = networkd_text(static)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return True


def networkd_file(environ: dict[str, str] | None = None) -> Path:
    """Where the static configuration goes: NETWORKD_FILE, or
    `$LINEBOX_NETWORKD_FILE` (tests and a development checkout point it at a
    temporary directory, so the machine's own network is never touched)."""
    environ = dict(os.environ if environ is None else environ)
    return Path(environ.get("LINEBOX_NETWORKD_FILE") or NETWORKD_FILE)


def read_static(path: Path = NETWORKD_FILE) -> StaticNetwork | None:
    """The static configuration `apply_static` wrote (None: DHCP)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    values: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith(("#", ";")):
            values.setdefault(key.strip(), []).append(value.strip())
    if not values.get("Address"):
        return None
    return StaticNetwork(
        address=values["Address"][0],
        gateway=(values.get("Gateway") or [""])[0],
        dns=tuple(values.get("DNS") or ()),
        interface=(values.get("Name") or ["en* eth*"])[0],
    )


def reload_networkd(path: Path) -> bool:
    """Ask systemd-networkd to take up `path`; only for the real file, only as
    root, only where systemd runs. True when asked."""
    if path != NETWORKD_FILE or os.geteuid() != 0 or not Path("/run/systemd/system").is_dir():
        return False
    result = subprocess.run(["networkctl", "reload"], check=False, capture_output=True, timeout=30)
    return result.returncode == 0
