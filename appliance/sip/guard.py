"""Who gets an answer at all: scanners, trusted peers.

A PBX on a network is scanned within hours. Kamailio drops requests from
known scanning tools without a word, never counts its trusted peers (the
trunk, the networks the installer names) as a flood, and bans everything
else that floods or guesses passwords (the counting lives in KEMI, in
Kamailio's shared htables)."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

# User-Agents of the tools that scan the Internet for SIP servers and guess
# their passwords; the attackers who don't bother to change them are many.
SCANNER_AGENTS = (
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "sip-scan",
    "sipscan",
    "vaxsipuseragent",
    "iwar",
    "smap",
    "sundayddr",
    "sivus",
    "pplsip",
    "nmap nse",
    "sip auditor",
)


def is_scanner(user_agent: str) -> bool:
    agent = user_agent.lower()
    return any(name in agent for name in SCANNER_AGENTS)


class Trusted:
    """Sources whose requests are never counted as a flood: networks, and
    peers given as `address` or `address:port` (a trunk whose site file names
    its port is trusted from that port only)."""

    def __init__(self, networks: str, addresses: Iterable[str] = ()) -> None:
        self.networks = tuple(
            ipaddress.ip_network(n.strip(), strict=False) for n in networks.split(",") if n.strip()
        )
        self.addresses = frozenset(addresses)
        self._contains = functools.lru_cache(maxsize=4096)(self._lookup)

    def _lookup(self, address: str, port: int) -> bool:
        if address in self.addresses or f"{address}:{port}" in self.addresses:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def __contains__(self, source: object) -> bool:
        """`(address, port) in trusted`."""
        if not isinstance(source, tuple) or len(source) != 2:
            return False
        return bool(self._contains(str(source[0]), int(source[1])))
