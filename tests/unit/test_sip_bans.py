"""The bans file that lets bans outlive Kamailio."""

from __future__ import annotations

from pathlib import Path

from appliance.sip import bans


def test_recorded_bans_load_until_they_expire(tmp_path: Path) -> None:
    path = tmp_path / "sip-bans"
    bans.record(path, "192.0.2.7", 1000)
    bans.record(path, "198.51.100.9", 2000)
    assert bans.load(path, now=500) == {"192.0.2.7": 1000, "198.51.100.9": 2000}
    assert bans.load(path, now=1000) == {"198.51.100.9": 2000}
    assert bans.load(path, now=2000) == {}


def test_the_latest_expiry_of_an_address_wins(tmp_path: Path) -> None:
    path = tmp_path / "sip-bans"
    bans.record(path, "192.0.2.7", 3000)
    bans.record(path, "192.0.2.7", 1000)
    assert bans.load(path, now=0) == {"192.0.2.7": 3000}


def test_a_missing_file_is_no_bans_and_bad_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "sip-bans"
    assert bans.load(path, now=0) == {}
    path.write_text("192.0.2.7 99\ngarbage\n 5\n10.0.0.1 soon\n\n2001:db8::1 50\n")
    assert bans.load(path, now=0) == {"192.0.2.7": 99, "2001:db8::1": 50}


def test_rewrite_keeps_only_what_it_is_given(tmp_path: Path) -> None:
    path = tmp_path / "sip-bans"
    bans.record(path, "192.0.2.7", 10)
    bans.record(path, "192.0.2.8", 5000)
    bans.rewrite(path, bans.load(path, now=100))
    assert path.read_text() == "192.0.2.8 5000\n"
    assert path.stat().st_mode & 0o777 == 0o600
    assert not path.with_name("sip-bans.tmp").exists()
