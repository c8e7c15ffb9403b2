"""Who Kamailio answers at all: scanners and trusted peers."""

from __future__ import annotations

import pytest

from appliance.sip.guard import Trusted, is_scanner


@pytest.mark.parametrize(
    "agent",
    ["friendly-scanner", "sipvicious 0.3.4", "SIPVicious", "VaxSIPUserAgent/3.1", "sipcli/v1.8"],
)
def test_known_scanners_are_recognised(agent: str) -> None:
    assert is_scanner(agent)


@pytest.mark.parametrize("agent", ["", "Linphone/5.2", "baresip v3.0", "Yealink SIP-T46S", "sipp"])
def test_phones_are_not_scanners(agent: str) -> None:
    assert not is_scanner(agent)


def test_trusted_networks_and_peers() -> None:
    trusted = Trusted("10.0.0.0/8, 192.0.2.7", ["198.51.100.1", "127.0.0.1:5090"])
    assert ("10.20.30.40", 5060) in trusted
    assert ("192.0.2.7", 1234) in trusted
    assert ("198.51.100.1", 5061) in trusted  # a trunk without a port: any port
    assert ("127.0.0.1", 5090) in trusted
    assert ("127.0.0.1", 5091) not in trusted  # the trunk named its port
    assert ("11.0.0.1", 5060) not in trusted
    assert ("not an address", 5060) not in trusted
    assert "10.0.0.1" not in trusted


def test_nothing_is_trusted_by_default() -> None:
    assert ("127.0.0.1", 5060) not in Trusted("")
