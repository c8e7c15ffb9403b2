"""Calls out through a trunk with two gateways: the first does not answer,
the second does. Real Kamailio (dispatcher probing with OPTIONS), rtpengine
and sipp gateways on loopback."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import time
from pathlib import Path

from tests.integration.conftest import SITE
from tests.integration.harness import Appliance, appliance, free_port, free_port_block

MOBILE = "13900139000"


def trunk_site(dead: int, live: int) -> str:
    """The test site with a trunk for calls out first (calls out take the
    first trunk): its first gateway `dead`, its second `live`; the carrier
    wants numbers with a 0 in front, and the hotline rings a mobile."""
    site = SITE.replace(
        '[[trunks]]\nname = "carrier"',
        "[[trunks]]\n"
        'name = "out"\n'
        f'gateways = ["127.0.0.1:{dead}", "127.0.0.1:{live}"]\n'
        'add_prefix = "0"\n\n'
        '[[trunks]]\nname = "carrier"',
    )
    return site.replace('to = "group:sales"', f'to = "tel:{MOBILE}"', 1)


def gateway(app: Appliance, port: int) -> subprocess.Popen[bytes]:
    """A carrier gateway (sipp) answering `calls` calls on `port`, OPTIONS
    probes in between."""
    proc = subprocess.Popen(
        app._sipp_argv(
            "agent_answer.xml",
            port,
            *("-mi", "127.0.0.1", "-mp", str(free_port_block(8)), "-m", "1000"),
            "-aa",  # OPTIONS probes answered 200
            "-trace_msg",
            "-message_file",
            str(app.root / f"gateway-{port}.msg"),
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=app.root,
    )
    app.sipp_procs.append(proc)
    return proc


def gateway_states(app: Appliance) -> dict[str, bool]:
    db = app.settings.paths.data_dir / "linebox.sqlite"
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        return {g: bool(up) for g, up in conn.execute("SELECT gateway, up FROM trunk_status")}


def wait_for(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_a_gateway_that_does_not_answer_fails_no_call(tmp_path: Path) -> None:
    dead, live = free_port(), free_port()
    with appliance(
        tmp_path, trunk_site(dead, live), overrides={"LINEBOX_SIP_GATEWAY_PING": "2"}
    ) as app:
        gateway(app, live)

        # Before any probe has told: the silent first gateway is given up
        # after 4 s and the second one takes the call.
        started = time.monotonic()
        first = app.call("4001234567", caller="13800138000")
        assert first.result == "RESULT 200", first
        assert time.monotonic() - started >= 4
        log = app.kamailio_log()
        assert (
            f"gateway 127.0.0.1:{dead} of trunk out did not answer; trying 127.0.0.1:{live}" in log
        )

        # The probes mark the first gateway down; the worker keeps that for
        # the health page, and calls go straight to the second.
        wanted = {f"127.0.0.1:{dead}": False, f"127.0.0.1:{live}": True}
        wait_for(
            lambda: wanted.items() <= gateway_states(app).items(),
            20,
            "the gateways' states were never recorded",
        )
        down = f"trunk out: gateway 127.0.0.1:{dead} does not answer OPTIONS"
        assert down in app.kamailio_log()
        started = time.monotonic()
        second = app.call("4001234567", caller="13800138000")
        assert second.result == "RESULT 200", second
        assert time.monotonic() - started < 4
        assert app.kamailio_log().count("did not answer; trying") == 1

        records = [r for r in app.records() if r["answered_kind"] == "tel"]
        assert len(records) == 2, app.records()

        # The carrier is asked for 0 + the mobile, shown the real caller,
        # and told which hotline forwarded the call.
        invites = [
            m
            for m in (app.root / f"gateway-{live}.msg").read_text().split("\n\n")
            if "INVITE sip:" in m
        ]
        assert invites, "no INVITE reached the live gateway"
        invite = invites[0]
        assert f"INVITE sip:0{MOBILE}@127.0.0.1:{live} SIP/2.0" in invite
        assert "P-Asserted-Identity: <sip:13800138000@" in invite
        assert "Diversion: <sip:4001234567@" in invite
        assert ";reason=unconditional" in invite


def test_calls_out_past_the_trunks_channels_are_refused(tmp_path: Path) -> None:
    """`max_calls = 1`: while one call is out through the trunk, a second
    is not sent to the carrier; once the first ends, the channel is free."""
    live = free_port()
    site = trunk_site(live, live).replace(
        f'gateways = ["127.0.0.1:{live}", "127.0.0.1:{live}"]\n',
        f'gateways = ["127.0.0.1:{live}"]\nmax_calls = 1\n',
    )
    # Callers from any port of 127.0.0.1 are the carrier's: two at once.
    site = site.replace(
        'name = "carrier"\nhost = "{trunk}"',
        'name = "carrier"\nhost = "{trunk}"\ninbound = ["127.0.0.1/32"]',
    )
    with appliance(tmp_path, site) as app:
        gateway(app, live)
        first = app.call_async("4001234567", caller="13800138000")
        wait_for(lambda: "ringing tel:" in app.kamailio_log(), 10, "the first call never went out")
        time.sleep(0.5)
        second = app.call("4001234567", caller="13800138001", from_trunk=False)
        assert second.result != "RESULT 200", second
        assert "trunk out: all 1 channels in use, no call out" in app.kamailio_log()
        assert first.wait(timeout=30) == 0
        third = app.call("4001234567", caller="13800138002", from_trunk=False)
        assert third.result == "RESULT 200", third
        answered = [r["caller"] for r in app.records() if r["answered_kind"] == "tel"]
        assert sorted(answered) == ["13800138000", "13800138002"], app.records()
