"""The appliance's address from the web admin: DHCP or a static address,
checked strictly, written as a systemd-networkd file by appliance.ops.network
into a temporary directory (`LINEBOX_NETWORKD_FILE`), never the machine's
own network, and kept as the site file's `[appliance.network]`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from appliance import settings as settings_mod
from appliance.ops import network
from appliance.settings import Settings
from appliance.tables import AuditEntry
from tests.unit.web_helpers import Session, setup_site
from web.app import create_app

STATIC = {
    "mode": "static",
    "address": "192.0.2.10/24",
    "gateway": "192.0.2.1",
    "dns": ["192.0.2.53", "223.5.5.5"],
}


@pytest.fixture
def networkd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "etc" / "systemd" / "network" / "10-linebox.network"
    monkeypatch.setenv("LINEBOX_NETWORKD_FILE", str(target))
    return target


@pytest.fixture
def app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, networkd: Path
) -> Iterator[tuple[Settings, TestClient]]:
    monkeypatch.setattr(settings_mod, "_current", None)
    # The real file is never the target, so networkd is never asked to reload.
    assert network.networkd_file() != network.NETWORKD_FILE
    s = setup_site(tmp_path, monkeypatch)
    with TestClient(app=create_app(s)) as c:
        yield s, c


@pytest.fixture
def root(app: tuple[Settings, TestClient]) -> Session:
    return Session(app[1], "root@linebox.example")


def test_dhcp_is_the_default_and_the_current_address_is_shown(root: Session) -> None:
    net = root.get("/api/v1/admin/network").json()
    assert net["mode"] == "dhcp" and net["address"] == ""
    assert net["current_address"].count(".") == 3
    assert "DHCP" in root.get("/admin/network").text


def test_a_static_address_is_written_as_a_networkd_file_and_exported(
    root: Session, networkd: Path
) -> None:
    response = root.put("/api/v1/admin/network", json=STATIC)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["changed"] is True and body["applied"] is False
    assert body["network"]["mode"] == "static"
    assert body["network"]["dns"] == ["192.0.2.53", "223.5.5.5"]
    text = networkd.read_text()
    assert "Address=192.0.2.10/24" in text and "Gateway=192.0.2.1" in text
    assert "DNS=192.0.2.53" in text and "DNS=223.5.5.5" in text and "Name=en* eth*" in text
    # The site file tells the same story, and `linebox network apply` on it agrees.
    exported = root.get("/api/v1/site").text
    assert "[appliance.network]" in exported and 'address = "192.0.2.10/24"' in exported
    again = root.put("/api/v1/admin/network", json=STATIC).json()
    assert again["changed"] is False

    (entry,) = AuditEntry.select().where(AuditEntry.action == "network").run_sync()
    assert "192.0.2.10/24" in str(entry["detail"]) and entry["tenant"] is None


def test_back_to_dhcp_removes_the_file(root: Session, networkd: Path) -> None:
    root.put("/api/v1/admin/network", json=STATIC)
    response = root.put("/api/v1/admin/network", json={"mode": "dhcp"})
    assert response.status_code == 200 and response.json()["changed"] is True
    assert not networkd.exists()
    assert root.get("/api/v1/admin/network").json()["mode"] == "dhcp"
    assert "[appliance.network]" not in root.get("/api/v1/site").text


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"address": ""}, "give the static address"),
        ({"address": "192.0.2.10"}, "add the prefix"),
        ({"address": "192.0.2.300/24"}, "is not an address like"),
        ({"address": "192.0.2.0/24"}, "network address"),
        ({"address": "192.0.2.255/24"}, "broadcast address"),
        ({"address": "127.0.0.2/8"}, "cannot be the appliance's address"),
        ({"address": "224.0.0.5/24"}, "cannot be the appliance's address"),
        ({"address": "10.0.0.5/4"}, "too short"),
        ({"gateway": "198.51.100.1"}, "not in the network 192.0.2.0/24"),
        ({"gateway": "192.0.2.10"}, "own address"),
        ({"gateway": "router"}, "gateway 'router' is not an address"),
        ({"dns": ["8.8.8.8", "x"]}, "dns 'x' is not an address"),
        ({"dns": ["1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4"]}, "at most 3"),
        ({"interface": "eth0\n[Network]\nAddress=10.0.0.1/8"}, "interface"),
        ({"interface": "eth0;rm"}, "interface"),
    ],
)
def test_a_bad_setting_is_refused_saying_what_to_fix_and_writes_nothing(
    root: Session, networkd: Path, change: dict[str, Any], complaint: str
) -> None:
    response = root.put("/api/v1/admin/network", json={**STATIC, **change})
    assert response.status_code == 400, response.text
    assert response.json()["error_id"] == "invalid-network"
    assert complaint in response.json()["detail"]
    assert not networkd.exists()
    assert "[appliance.network]" not in root.get("/api/v1/site").text
    assert AuditEntry.count().where(AuditEntry.action == "network").run_sync() == 0


def test_an_unknown_field_or_mode_is_refused(root: Session) -> None:
    assert root.put("/api/v1/admin/network", json={"mode": "bootp"}).status_code == 400
    assert root.put("/api/v1/admin/network", json={**STATIC, "mask": "x"}).status_code == 400


def test_the_page_saves_a_static_address_and_shows_errors_in_place(
    root: Session, networkd: Path
) -> None:
    bad = root.post(
        "/admin/network",
        data={
            "mode": "static",
            "address": "192.0.2.10/24",
            "gateway": "10.9.9.9",
            "_csrf": root.csrf,
        },
    )
    assert bad.status_code == 400 and "not in the network" in bad.text
    assert 'value="10.9.9.9"' in bad.text  # the form keeps what was typed
    ok = root.post(
        "/admin/network",
        data={
            "mode": "static",
            "address": "192.0.2.10/24",
            "gateway": "192.0.2.1",
            "dns": "192.0.2.53, 223.5.5.5",
            "interface": "eth0",
            "_csrf": root.csrf,
        },
    )
    assert ok.status_code == 200, ok.text
    assert network.read_static(networkd) == network.StaticNetwork(
        "192.0.2.10/24", "192.0.2.1", ("192.0.2.53", "223.5.5.5"), "eth0"
    )


def test_an_unwritable_target_says_so_and_keeps_the_setting_unchanged(
    root: Session, networkd: Path
) -> None:
    networkd.parent.parent.mkdir(parents=True)
    networkd.parent.write_text("a file where the directory should be")
    response = root.put("/api/v1/admin/network", json=STATIC)
    assert response.status_code == 500
    assert response.json()["error_id"] == "network-file-unwritable"
    assert "[appliance.network]" not in root.get("/api/v1/site").text


@pytest.mark.parametrize("who", ["owner@acme.example", "agent@acme.example"])
def test_only_operators_set_the_network(
    app: tuple[Settings, TestClient], networkd: Path, who: str
) -> None:
    user = Session(app[1], who)
    assert user.get("/api/v1/admin/network").status_code == 403
    assert user.put("/api/v1/admin/network", json=STATIC).status_code == 403
    assert user.get("/admin/network").status_code == 403
    assert user.post("/admin/network", data={**STATIC, "_csrf": user.csrf}).status_code == 403
    assert not networkd.exists()


def test_only_the_real_file_is_ever_handed_to_networkd(networkd: Path) -> None:
    network.apply_static(network.parse_static({"address": "192.0.2.10/24"}), networkd)
    assert network.reload_networkd(networkd) is False
    assert network.read_static(networkd) == network.StaticNetwork("192.0.2.10/24")
