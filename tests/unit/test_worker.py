"""Worker housekeeping: the record sweep, retention, the recordings volume,
daily aggregates, and the queue that acknowledges a task only once it ran."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.settings import Settings
from appliance.tables import ApplianceSetting, CallRecord, CallStat, Tenant
from appliance.worker import cdr, queue, reports, retention, sweep
from appliance.worker.cdr import CallEvent

NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def acme(database: object) -> int:
    return int(
        Tenant.insert(Tenant(slug="acme", name="Acme", timezone="Asia/Shanghai")).run_sync()[0][
            "id"
        ]
    )


def event(call_id: str, type_: str, at: dt.datetime, **facts: object) -> None:
    asyncio.run(cdr.merge_event(CallEvent(call_id=call_id, type=type_, at=at.timestamp(),
                                          **facts), now=NOW))  # type: ignore[arg-type]  # fmt: skip


def status(call_id: str) -> dict[str, object]:
    return CallRecord.select().where(CallRecord.call_id == call_id).first().run_sync()  # type: ignore[no-any-return]


def start(call_id: str, at: dt.datetime) -> None:
    event(call_id, cdr.START, at, kind="hotline", tenant="acme", hotline="4001234567",
          caller="13800138000")  # fmt: skip


def test_the_sweep_closes_calls_whose_end_never_came(acme: int) -> None:
    start("lost-talking", NOW - dt.timedelta(minutes=10))
    event("lost-talking", cdr.ANSWER, NOW - dt.timedelta(minutes=9), answered_by="1001",
          answered_kind="ext")  # fmt: skip
    start("still-talking", NOW - dt.timedelta(minutes=10))
    event("still-talking", cdr.ANSWER, NOW - dt.timedelta(minutes=9), answered_by="1001")
    start("too-young", NOW - dt.timedelta(seconds=30))
    start("rang-forever", NOW - dt.timedelta(hours=1))

    # rtpengine still has one call; the other answered one is gone.
    done = asyncio.run(sweep.sweep_records(NOW, alive={"still-talking", "rang-forever"}))
    assert done == {"closed": 2, "settled": 0}
    lost = status("lost-talking")
    assert (lost["status"], lost["cause"], lost["billed"]) == (
        "interrupted", sweep.INTERRUPTED_CAUSE, True,
    )  # fmt: skip
    assert lost["talk_seconds"] == 9 * 60
    assert status("still-talking")["status"] == "talking"
    assert status("too-young")["status"] == "ringing"
    assert status("rang-forever")["status"] == "interrupted"  # past any ring time

    # rtpengine unreachable: only the age limits apply.
    asyncio.run(sweep.sweep_records(NOW + dt.timedelta(hours=5), alive=None))
    assert status("still-talking")["status"] == "interrupted"
    assert CallRecord.count().where(CallRecord.status.is_in(["ringing", "talking"])).run_sync() == 0


def test_the_sweep_settles_an_answered_call_whose_answer_event_was_lost(acme: int) -> None:
    start("c1", NOW - dt.timedelta(minutes=5))
    event("c1", cdr.END, NOW - dt.timedelta(minutes=4), status="answered", sip_code=200,
          answered_by="1001")  # fmt: skip
    assert status("c1")["billed"] is False
    assert asyncio.run(sweep.sweep_records(NOW, alive=set())) == {"closed": 0, "settled": 1}
    assert status("c1")["billed"] is True


def test_the_periodic_sweep_runs_as_a_task(acme: int) -> None:
    sweep.sweep.call_local()


def test_retention_deletes_old_files_and_records_per_tenant(acme: int, tmp_settings: Settings):
    Tenant.update({Tenant.retention: json.dumps({"recordings_days": 30})}, force=True).run_sync()
    files = {}
    for name, age in (("old", 40), ("new", 10), ("ancient", 400)):
        f = tmp_settings.paths.data_dir / "recordings" / f"{name}.wav"
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(b"RIFF")
        files[name] = f
        start(name, NOW - dt.timedelta(days=age))
        CallRecord.update({CallRecord.recording: str(f)}).where(
            CallRecord.call_id == name
        ).run_sync()
    counts = asyncio.run(retention.apply_retention(NOW))
    assert counts["call_records"] == 1 and counts["recordings"] == 2
    assert [f.exists() for f in files.values()] == [False, True, False]
    assert status("old")["recording"] == ""  # no link to a file that is gone
    assert status("new")["recording"] == str(files["new"])
    assert status("ancient") is None


def test_a_full_recordings_volume_pauses_recording_and_alerts_then_resumes(
    acme: int, tmp_settings: Settings
) -> None:
    mib = 2**20
    assert asyncio.run(retention.check_recordings_volume(NOW, free=10 * mib, min_free=100 * mib))
    setting = ApplianceSetting.select().where(ApplianceSetting.key == "recording_paused")
    assert setting.first().run_sync() is not None
    # Still low: stays paused, no second alert row.
    assert asyncio.run(retention.check_recordings_volume(NOW, free=150 * mib, min_free=100 * mib))
    assert not asyncio.run(
        retention.check_recordings_volume(NOW, free=250 * mib, min_free=100 * mib)
    )
    assert setting.first().run_sync() is None
    assert tmp_settings.paths.plan_file.exists()  # re-published each time
    retention.recordings_volume.call_local()  # the real disk: never raises


def test_daily_aggregates_by_hour_region_and_agent(acme: int) -> None:
    base = dt.datetime(2026, 11, 20, 1, 30, tzinfo=dt.UTC)  # 09:30 in Shanghai
    for i, (st, agent, talk, score) in enumerate(
        [("answered", "8001", 60, 5), ("answered", "8001", 30, 3), ("busy", "", 0, 0),
         ("missed", "", 0, 0)]
    ):  # fmt: skip
        cid = f"c{i}"
        event(cid, cdr.START, base, kind="hotline", tenant="acme", hotline="4001234567",
              caller_region="北京市 北京市")  # fmt: skip
        if st == "answered":
            event(cid, cdr.ANSWER, base, answered_by="1001", agent_id=agent)
        event(cid, cdr.END, base + dt.timedelta(seconds=talk), status=st, sip_code=200)
        if score:
            event(cid, cdr.SURVEY, base, score=score)
    reports.daily_aggregates.call_local()  # today: nothing yet, must not fail
    asyncio.run(reports.aggregate_recent(NOW))
    asyncio.run(reports.aggregate_recent(NOW))  # recomputing doubles nothing
    rows = CallStat.select().order_by(CallStat.agent_id).run_sync()
    summary = [(r["hour"], r["agent_id"], r["calls"], r["answered"], r["busy"], r["no_answer"],
                r["talk_seconds"], r["survey_count"], r["survey_sum"]) for r in rows]  # fmt: skip
    assert summary == [(9, "", 2, 0, 1, 1, 0, 0, 0), (9, "8001", 2, 2, 0, 0, 90, 2, 8)]
    assert {str(r["day"]) for r in rows} == {"2026-11-20"}


def test_a_claimed_task_of_a_dead_worker_is_put_back(tmp_path: Path) -> None:
    storage = queue.DurableSqliteStorage("q", filename=str(tmp_path / "q.sqlite"))
    storage.enqueue(b"one")
    storage.enqueue(b"two")
    assert storage.dequeue() == b"one"
    assert storage.claimed_size() == 1 and storage.queue_size() == 1
    storage.ack(b"one")
    assert storage.claimed_size() == 0

    # A worker process takes "two" and dies without acknowledging it.
    code = (
        "import sys; from appliance.worker.queue import DurableSqliteStorage as S; "
        f"s = S('q', filename={str(tmp_path / 'q.sqlite')!r}); "
        "assert s.dequeue() == b'two'; import os; os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ})
    assert storage.queue_size() == 0 and storage.claimed_size() == 1
    assert storage.recover() == 1
    assert storage.dequeue() == b"two"
    assert storage.recover() == 0  # this process is alive: its claim stays
