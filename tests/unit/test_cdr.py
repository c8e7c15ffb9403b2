"""Call records from call events: one row per call, whatever the order or the
number of times the events arrive."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from appliance.tables import CallRecord, Tenant
from appliance.worker import cdr
from appliance.worker.cdr import CallEvent

T0 = 1_795_400_000.0

START = CallEvent(
    call_id="c1",
    type=cdr.START,
    at=T0,
    kind="hotline",
    tenant="acme",
    hotline="4001234567",
    caller="13800138000",
    caller_region="北京市 北京市",
    called="4001234567",
    route="route 1",
)
ANSWER = CallEvent(call_id="c1", type=cdr.ANSWER, at=T0 + 4.2, answered_by="1001", agent_id="8001")
END = CallEvent(
    call_id="c1",
    type=cdr.END,
    at=T0 + 64.6,
    status="answered",
    sip_code=200,
    cause="BYE from caller",
    answered_by="1001",
    agent_id="8001",
    answered_at=T0 + 4.2,
)

FIELDS = (
    "kind", "hotline", "caller", "caller_region", "called", "route", "answered_by", "agent_id",
    "started_at", "answered_at", "ended_at", "status", "sip_code", "cause", "talk_seconds",
    "ring_seconds", "tenant",
)  # fmt: skip


def merge(*events: CallEvent) -> dict[str, object]:
    async def run() -> dict[str, object]:
        for event in events:
            await cdr.merge_event(event)
        rows = await CallRecord.select().where(CallRecord.call_id == "c1")
        assert len(rows) == 1
        return {name: rows[0][name] for name in FIELDS}

    return asyncio.run(run())


@pytest.fixture
def acme(database: object) -> int:
    return Tenant.insert(Tenant(slug="acme", name="Acme")).run_sync()[0]["id"]


def test_an_answered_call_has_times_durations_and_agent(acme: int) -> None:
    row = merge(START, ANSWER, END)
    assert row["status"] == "answered"
    assert row["tenant"] == acme
    assert (row["answered_by"], row["agent_id"]) == ("1001", "8001")
    assert row["talk_seconds"] == 60
    assert row["ring_seconds"] == 4


def test_events_in_any_order_and_repeated_give_the_same_record(acme: int) -> None:
    expected = merge(START, ANSWER, END)
    for order in itertools.permutations([START, ANSWER, END, END, ANSWER]):
        CallRecord.delete(force=True).run_sync()
        assert merge(*order) == expected


def test_a_lost_answer_event_still_gives_the_talk_time(acme: int) -> None:
    row = merge(START, END)
    assert (row["status"], row["talk_seconds"], row["ring_seconds"]) == ("answered", 60, 4)


def test_a_call_in_progress_is_ringing_then_talking(database: object) -> None:
    assert merge(START)["status"] == "ringing"
    assert merge(ANSWER)["status"] == "talking"


def test_a_refused_call_is_one_end_event_with_every_fact(acme: int) -> None:
    refused = CallEvent(
        call_id="c1", type=cdr.END, at=T0, kind="hotline", tenant="acme",
        hotline="4001234567", caller="13300000000", status="rejected", sip_code=603,
        cause="Decline",
    )  # fmt: skip
    row = merge(refused)
    assert (row["status"], row["sip_code"], row["caller"]) == ("rejected", 603, "13300000000")
    assert row["talk_seconds"] == row["ring_seconds"] == 0
    assert row["answered_at"] is None


def test_the_first_end_wins(database: object) -> None:
    cancelled = CallEvent(call_id="c1", type=cdr.END, at=T0 + 3, status="cancelled", sip_code=487)
    row = merge(START, cancelled, END)
    assert (row["status"], row["sip_code"]) == ("cancelled", 487)


@pytest.mark.parametrize(
    ("code", "status"),
    [(487, "cancelled"), (486, "busy"), (600, "busy"), (408, "missed"), (480, "missed"),
     (603, "rejected"), (403, "rejected"), (503, "failed"), (500, "failed")],
)  # fmt: skip
def test_failure_codes_map_to_record_statuses(code: int, status: str) -> None:
    assert cdr.status_for_failure(code) == status


def test_the_task_decodes_what_kamailio_encodes(acme: int) -> None:
    cdr.call_event.call_local(cdr.encode_event(START))
    rows = CallRecord.select(CallRecord.caller, CallRecord.status).run_sync()
    assert rows == [{"caller": "13800138000", "status": "ringing"}]
