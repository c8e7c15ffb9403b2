"""The SIP/media address detection and the static network settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.ops import network


def test_an_address_set_in_the_settings_file_is_never_replaced(tmp_path: Path) -> None:
    config = tmp_path / "linebox.toml"
    config.write_text('[sip]\naddress = "192.0.2.7"\n')
    env, _ = network.environment(config_file=config, environ={})
    assert "LINEBOX_SIP_ADDRESS" not in env
    # Media follows the SIP address the administrator chose.
    assert env["LINEBOX_MEDIA_ADDRESS"] == "192.0.2.7"


def test_addresses_in_the_environment_win_and_nothing_is_detected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(network, "detect", lambda wait=0: pytest.fail("detected anyway"))
    environ = {"LINEBOX_SIP_ADDRESS": "192.0.2.7", "LINEBOX_MEDIA_ADDRESS": "192.0.2.8"}
    env, found = network.environment(config_file=tmp_path / "absent.toml", environ=environ)
    assert env == {} and found is None


def test_the_default_route_interface_is_preferred(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        network,
        "_interfaces",
        lambda: (
            "198.51.100.4",
            {1: "lo", 2: "eth0", 3: "eth1"},
            [(1, "127.0.0.1"), (2, "192.0.2.3"), (3, "198.51.100.4")],
        ),
    )
    found = network.detect()
    assert (found.address, found.interface, found.how) == ("198.51.100.4", "eth1", "default route")


def test_without_a_default_route_the_first_interface_up_serves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        network,
        "_interfaces",
        lambda: (None, {1: "lo", 2: "host0"}, [(1, "127.0.0.1"), (2, "192.0.2.3")]),
    )
    assert network.detect().address == "192.0.2.3"


def test_with_no_address_at_all_the_services_start_on_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(network, "_interfaces", lambda: (None, {1: "lo"}, [(1, "127.0.0.1")]))
    found = network.detect(wait=0)
    assert found.address == "127.0.0.1"
    assert "loopback" in found.how


def test_detection_on_this_machine_finds_an_address() -> None:
    found = network.detect()
    assert found.address.count(".") == 3


def test_env_file_is_what_systemd_reads(tmp_path: Path) -> None:
    target = tmp_path / "run" / "network.env"
    network.write_env_file(
        target, {"LINEBOX_SIP_ADDRESS": "192.0.2.3"}, network.Detected("192.0.2.3", "eth0", "x")
    )
    lines = [line for line in target.read_text().splitlines() if not line.startswith("#")]
    assert lines == ["LINEBOX_SIP_ADDRESS=192.0.2.3"]


def test_resolve_fills_in_the_detected_address(monkeypatch: pytest.MonkeyPatch) -> None:
    from appliance.settings import Settings

    monkeypatch.setattr(
        network,
        "environment",
        lambda wait=0: (
            {"LINEBOX_SIP_ADDRESS": "192.0.2.3", "LINEBOX_MEDIA_ADDRESS": "192.0.2.3"},
            None,
        ),
    )
    resolved = network.resolve(Settings())
    assert resolved.sip.address == "192.0.2.3" and resolved.media_address == "192.0.2.3"


def test_a_site_file_sets_a_static_address(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(
        '[appliance.network]\naddress = "192.0.2.10/24"\ngateway = "192.0.2.1"\n'
        'dns = ["192.0.2.53"]\n'
    )
    static = network.site_network(site)
    assert static == network.StaticNetwork("192.0.2.10/24", "192.0.2.1", ("192.0.2.53",))
    target = tmp_path / "10-linebox.network"
    assert network.apply_static(static, target) is True
    text = target.read_text()
    assert "Address=192.0.2.10/24" in text and "Gateway=192.0.2.1" in text
    assert "DNS=192.0.2.53" in text
    assert network.apply_static(static, target) is False  # unchanged
    assert network.apply_static(None, target) is True  # back to DHCP
    assert not target.exists()


def test_a_site_file_without_network_means_dhcp(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text('[appliance]\ntimezone = "Asia/Shanghai"\n')
    assert network.site_network(site) is None


@pytest.mark.parametrize(
    ("table", "complaint"),
    [
        ({"address": "192.0.2.10"}, "add the prefix"),
        ({"address": "not-an-ip/24"}, "is not an address like"),
        ({"address": "192.0.2.10/24", "gateway": "gw"}, "gateway 'gw'"),
        ({"address": "192.0.2.10/24", "dns": ["x"]}, "dns 'x'"),
        ({"address": "192.0.2.10/24", "mask": "x"}, "unknown key 'mask'"),
    ],
)
def test_bad_static_settings_say_what_to_fix(table: dict[str, object], complaint: str) -> None:
    with pytest.raises(network.NetworkError, match=complaint):
        network.parse_static(table)


def test_sync_takes_up_the_address_the_web_admin_staged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from appliance.ops import cli

    staged, live = (
        tmp_path / "staged" / "10-linebox.network",
        tmp_path / "etc" / "10-linebox.network",
    )
    monkeypatch.setenv("LINEBOX_NETWORKD_FILE", str(live))
    network.apply_static(
        network.parse_static(
            {"address": "192.0.2.10/24", "gateway": "192.0.2.1", "dns": ["192.0.2.53"]}
        ),
        staged,
    )
    assert cli.run(["network", "sync", str(staged)]) == 0
    taken = network.read_static(live)
    assert taken is not None and (taken.address, taken.gateway, taken.dns) == (
        "192.0.2.10/24",
        "192.0.2.1",
        ("192.0.2.53",),
    )
    # Lines the staged file should not have are not carried over: the file is
    # written anew from the checked values.
    staged.write_text(staged.read_text() + "\n[Network]\nIPForward=yes\n", "utf-8")
    cli.run(["network", "sync", str(staged)])
    assert "IPForward" not in live.read_text()
    # The staged file gone: DHCP.
    staged.unlink()
    assert cli.run(["network", "sync", str(staged)]) == 0
    assert not live.exists()


def test_sync_refuses_a_staged_address_that_is_not_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from appliance.ops import cli

    staged, live = tmp_path / "10-linebox.network", tmp_path / "live.network"
    monkeypatch.setenv("LINEBOX_NETWORKD_FILE", str(live))
    staged.write_text("[Match]\nName=en*\n[Network]\nAddress=not-an-address\n", "utf-8")
    assert cli.run(["network", "sync", str(staged)]) == 2
    assert not live.exists()
