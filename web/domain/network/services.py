from __future__ import annotations

import json
from typing import Any

import anyio

from appliance.errors import LineboxError
from appliance.ops import network
from appliance.ops.network import NetworkError, StaticNetwork
from appliance.tables import ApplianceSetting
from web.domain.network.schemas import NetworkIn, NetworkOut, NetworkSaved
from web.sitecheck import write_lock

SETTING = "network"
"""The site file's `[appliance.network]`: `linebox export` writes what the web set."""


class InvalidNetwork(LineboxError):
    error_id = "invalid-network"


class NetworkUnwritable(LineboxError):
    error_id = "network-file-unwritable"


def _detected() -> tuple[str, str]:
    try:
        found = network.detect_once()
    except Exception:  # no netlink here (a container): say nothing rather than fail
        return "", ""
    return (found.address, found.interface) if found else ("", "")


async def get_network() -> NetworkOut:
    static = network.read_static(network.networkd_file())
    address, interface = await anyio.to_thread.run_sync(_detected)
    if static is None:
        return NetworkOut(
            mode="dhcp",
            address="",
            gateway="",
            dns=[],
            interface="",
            current_address=address,
            current_interface=interface,
        )
    return NetworkOut(
        mode="static",
        address=static.address,
        gateway=static.gateway,
        dns=list(static.dns),
        interface=static.interface,
        current_address=address,
        current_interface=interface,
    )


def parse(data: NetworkIn) -> StaticNetwork | None:
    if data.mode == "dhcp":
        return None
    table: dict[str, Any] = {
        "address": data.address.strip(),
        "gateway": data.gateway,
        "dns": [d for d in data.dns if d.strip()],
        "interface": data.interface or "en* eth*",
    }
    if not table["address"]:
        raise InvalidNetwork("address: give the static address with its prefix, e.g. 192.0.2.10/24")
    try:
        static = network.parse_static(table, where="")
    except NetworkError as exc:
        raise InvalidNetwork(exc.detail.strip()) from None
    assert static is not None
    return static


async def save(data: NetworkIn) -> tuple[NetworkOut, NetworkSaved]:
    """(before, saved): the file first (what can fail), then the setting."""
    static = parse(data)
    before = await get_network()
    path = network.networkd_file()
    async with write_lock():
        try:
            changed = network.apply_static(static, path)
        except OSError as exc:
            raise NetworkUnwritable(
                f"cannot write {path}: {exc.strerror or exc}; the web service needs "
                "write access to it (or set it with `linebox network static` as root)",
                {"path": str(path)},
            ) from None
        await ApplianceSetting.delete().where(ApplianceSetting.key == SETTING)
        if static is not None:
            value = {
                "address": static.address,
                "gateway": static.gateway,
                "dns": list(static.dns),
                "interface": static.interface,
            }
            await ApplianceSetting.insert(
                ApplianceSetting(key=SETTING, value=json.dumps(value, ensure_ascii=False))
            )
    applied = changed and await anyio.to_thread.run_sync(lambda: network.reload_networkd(path))
    return before, NetworkSaved(network=await get_network(), changed=changed, applied=applied)
