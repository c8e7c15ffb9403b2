"""Call records and billing with the real worker process: a worker killed
with SIGKILL in the middle of a batch loses and doubles nothing once
restarted (SQLite queue and Redis queue), and end to end through Kamailio,
rtpengine and sipp: an answered call is charged and crosses the low balance
(SMS + e-mail), an unanswered call leaves its record and the missed-call SMS
at the SMPP peer."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance import services
from appliance.settings import QueueSettings, Settings
from tests.integration.conftest import PASSWORDS
from tests.integration.harness import Appliance, appliance, free_port, make_settings
from tests.integration.test_notices import Mailbox, SmppPeer, smpp_peer, smtp_server  # noqa: F401

BATCH_SITE = """
[[trunks]]
name = "carrier"
host = "127.0.0.1:5099"
dids = ["4001234567"]

[[tenants]]
slug = "acme"
name = "Acme"

[tenants.billing]
balance = "10000.00"
rates_per_minute = { tel = "0.60" }
step_seconds = 6

[[tenants.extensions]]
number = "1001"
password = "secret-1001"

[[tenants.hotlines]]
number = "4001234567"
  [[tenants.hotlines.routes]]
  to = "ext:1001"
"""

CALLS = 400

ENQUEUE = """
import sys, time
from appliance.worker.cdr import call_event, encode_event, CallEvent, START, ANSWER, END
t0 = time.time() - 60
for i in range(int(sys.argv[1])):
    cid = f"batch-{i}"
    for e in (
        CallEvent(call_id=cid, type=START, at=t0 + i, kind="hotline", tenant="acme",
                  hotline="4001234567", caller="13800138000", called="4001234567"),
        CallEvent(call_id=cid, type=ANSWER, at=t0 + i + 2, answered_by="13912345678",
                  answered_kind="tel"),
        CallEvent(call_id=cid, type=END, at=t0 + i + 2 + 61, status="answered", sip_code=200,
                  answered_by="13912345678", answered_kind="tel"),
    ):
        call_event(encode_event(e))
"""


def query(settings: Settings, sql: str) -> list[tuple[object, ...]]:
    db = settings.paths.data_dir / "linebox.sqlite"
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    server = shutil.which("redis-server")
    assert server, "redis-server is missing: run the tests with `make test`"
    port = free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            with (
                contextlib.suppress(OSError),
                __import__("socket").create_connection(("127.0.0.1", port), timeout=0.2),
            ):
                break
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(5)


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    service = services.worker_service(settings)
    proc = services.spawn(service, log)
    services.wait_ready(service, proc, timeout=30)
    return proc


@pytest.mark.parametrize("queue", ["sqlite", "redis"])
def test_a_worker_killed_mid_batch_loses_and_doubles_nothing(
    tmp_path: Path, queue: str, request: pytest.FixtureRequest
) -> None:
    settings = make_settings(tmp_path)
    if queue == "redis":
        url = request.getfixturevalue("redis_url")
        settings = dataclasses.replace(settings, queue=QueueSettings(redis_url=url))
    app = Appliance(root=tmp_path, settings=settings, trunk_port=0)
    services.prepare_directories(settings)
    site = tmp_path / "site.toml"
    site.write_text(BATCH_SITE, encoding="utf-8")
    app.linebox("init")
    app.linebox("apply", str(site))
    enqueued = subprocess.run(
        [sys.executable, "-c", ENQUEUE, str(CALLS)], env=app.env, capture_output=True, timeout=120
    )
    assert enqueued.returncode == 0, enqueued.stderr.decode()

    log = tmp_path / "worker.log"
    worker = start_worker(settings, log)
    try:
        deadline = time.monotonic() + 60
        while query(settings, "SELECT count(*) FROM call_record")[0][0] < CALLS // 4:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
        done_at_kill = query(settings, "SELECT count(*) FROM call_record WHERE billed")[0][0]
        assert done_at_kill < CALLS, "the batch finished before the kill: make it bigger"

        worker = start_worker(settings, log)
        deadline = time.monotonic() + 90
        while query(settings, "SELECT count(*) FROM call_record WHERE billed")[0][0] < CALLS:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        time.sleep(1)  # anything doubled would show now
    finally:
        services.stop_process(worker)

    rows = query(settings, "SELECT count(*), count(DISTINCT call_id), sum(cost_fen), "
                 "min(talk_seconds), max(talk_seconds) FROM call_record")  # fmt: skip
    # 61 s at 60 fen/min in 6 s steps: 11 steps, 66 fen each.
    assert rows == [(CALLS, CALLS, CALLS * 66, 61, 61)]
    [(balance,)] = query(settings, "SELECT balance_fen FROM tenant")
    assert balance == 1_000_000 - CALLS * 66
    [(calls, cost)] = query(settings, "SELECT calls, cost_fen FROM monthly_usage")
    assert (calls, cost) == (CALLS, CALLS * 66)


# ---------------------------------------------------------------- end to end

E2E_SITE = """
[appliance]
timezone = "Asia/Shanghai"

[[trunks]]
name = "carrier"
host = "{trunk}"
dids = ["4001234567"]

[[tenants]]
slug = "acme"
name = "艾克米贸易有限公司"

[tenants.billing]
balance = "36.00"
rates_per_minute = { tel = "0.60", ext = "6.00" }
step_seconds = 6
low_balance = "35.50"
suspend_below = "1.00"

[tenants.notify]
sms = "13900000000"
email = "owner@acme.example.cn"
missed_call_sms = true

[[tenants.extensions]]
number = "1001"
name = "李雷"
password = "ext-1001-secret"
agent_id = "8001"

[[tenants.hotlines]]
number = "4001234567"
name = "艾克米客服热线"
  [[tenants.hotlines.routes]]
  to = "ext:1001"
"""


def wait_for(check: object, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_calls_leave_records_charges_sms_and_email_end_to_end(
    tmp_path: Path,
    smpp_peer: SmppPeer,  # noqa: F811
    smtp_server: tuple[object, Mailbox],  # noqa: F811
) -> None:
    controller, box = smtp_server
    with appliance(tmp_path, E2E_SITE) as app:
        db = app.settings.paths.data_dir / "linebox.sqlite"
        with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn, conn:
            conn.execute(
                "INSERT INTO gateway (channel, kind, config, enabled, last_error) "
                "VALUES ('sms', 'smpp', ?, 1, ''), ('email', 'smtp', ?, 1, '')",
                (
                    f'{{"host": "127.0.0.1", "port": {smpp_peer.port}, '
                    '"system_id": "linebox", "password": "secret"}',
                    f'{{"host": "127.0.0.1", "port": {controller.port}}}',  # type: ignore[attr-defined]
                ),
            )

        # Nobody is registered: the call is not answered.
        missed = app.call("4001234567", caller="13800138000")
        assert missed.result == "RESULT 480"
        record = app.record(missed.call_id)
        assert (record["status"], record["billed"], record["cost_fen"]) == ("missed", 1, 0)
        assert record["caller_region"] == "北京市 北京市"
        wait_for(lambda: smpp_peer.received)
        [(to, text)] = smpp_peer.received
        assert to == "13900000000" and "13800138000" in text and "4001234567" in text

        # An answered call to the extension costs 6.00 a minute: ~3 s is one
        # 6 s step, 0.60 — the balance 36.00 drops below 35.50.
        app.agent("1001", PASSWORDS["1001"])
        answered = app.call("4001234567", caller="13700000000")
        assert answered.result == "RESULT 200", answered.output
        wait_for(lambda: app.record(answered.call_id)["billed"])
        record = app.record(answered.call_id)
        assert record["status"] == "answered" and record["answered_kind"] == "ext"
        assert record["cost_fen"] == 60
        [(balance,)] = query(app.settings, "SELECT balance_fen FROM tenant")
        assert balance == 3540
        assert box.arrived.wait(15), "no e-mail at the SMTP server"
        [message] = box.messages
        assert message["To"] == "owner@acme.example.cn" and "余额" in message["Subject"]
        wait_for(lambda: len(smpp_peer.received) == 2)
        assert "35.40" in smpp_peer.received[1][1]
