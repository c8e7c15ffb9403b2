from __future__ import annotations

from typing import Literal

import msgspec


class NetworkOut(msgspec.Struct, kw_only=True):
    """How the appliance gets its address, and the address it serves on now."""

    mode: Literal["dhcp", "static"]
    address: str
    """With its prefix (`192.0.2.10/24`); empty for DHCP."""
    gateway: str
    dns: list[str]
    interface: str
    """The interface names or patterns the setting applies to (`en* eth*`)."""
    current_address: str
    """The address SIP and media would be served on now, as detected."""
    current_interface: str


class NetworkIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """DHCP, or a static address. A wrong static address cuts the appliance
    off its network: every field is checked before anything is written."""

    mode: Literal["dhcp", "static"]
    address: str = ""
    """With its prefix, e.g. `192.0.2.10/24`; a host address of that network."""
    gateway: str = ""
    """In the address's network; empty for none."""
    dns: list[str] = []
    """Up to three DNS servers."""
    interface: str = "en* eth*"


class NetworkSaved(msgspec.Struct, kw_only=True):
    network: NetworkOut
    changed: bool
    """The networkd file was written (or removed, for DHCP)."""
    applied: bool
    """systemd-networkd was asked to take it up now; otherwise it does at the next boot."""
