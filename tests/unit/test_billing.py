"""Billing: prices in fen and 6-second steps, one charge per call however
often its events arrive, the ledger, low balance, suspension and caps — with
the plan re-published so the next call is refused."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import pytest

from appliance.billing import ledger
from appliance.billing.pricing import month_of, price_fen
from appliance.settings import Settings
from appliance.sitefile.apply import apply_site
from appliance.tables import CallRecord, Hotline, LedgerEntry, MonthlyUsage, Notice, Tenant
from appliance.worker import billing as billing_tasks
from appliance.worker import cdr
from appliance.worker.cdr import CallEvent

SITE = """
[[trunks]]
name = "carrier"
host = "127.0.0.1:5099"
dids = ["4001234567"]

[[tenants]]
slug = "acme"
name = "Acme"
timezone = "Asia/Shanghai"

[tenants.billing]
balance = "{balance}"
rates_per_minute = {{ tel = "0.60", ext = "0.00" }}
step_seconds = 6
low_balance = "35.00"
suspend_below = "15.00"

[tenants.notify]
sms = "13900000000"
email = "owner@acme.example.cn"
missed_call_sms = true

[[tenants.extensions]]
number = "1001"
password = "secret-1001"

[[tenants.hotlines]]
number = "4001234567"
monthly_call_cap = {cap}
  [[tenants.hotlines.routes]]
  to = "ext:1001"
"""

NOW = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def acme(database: object, tmp_settings: Settings) -> Settings:
    asyncio.run(apply_site(SITE.format(balance="50.00", cap=1000), Path(".")))
    return tmp_settings


def apply(balance: str = "50.00", cap: int = 1000) -> None:
    asyncio.run(apply_site(SITE.format(balance=balance, cap=cap), Path(".")))


def call(call_id: str, talk: float, kind: str = "tel", at: dt.datetime = NOW) -> list[CallEvent]:
    t0 = at.timestamp()
    start = CallEvent(
        call_id=call_id, type=cdr.START, at=t0, kind="hotline", tenant="acme",
        hotline="4001234567", caller="13800138000", called="4001234567",
    )  # fmt: skip
    if talk <= 0:
        return [start, CallEvent(call_id=call_id, type=cdr.END, at=t0 + 20, status="missed",
                                 sip_code=480, cause="Temporarily Unavailable")]  # fmt: skip
    answer = CallEvent(call_id=call_id, type=cdr.ANSWER, at=t0 + 5, answered_by="13912345678",
                       answered_kind=kind)  # fmt: skip
    end = CallEvent(call_id=call_id, type=cdr.END, at=t0 + 5 + talk, status="answered",
                    sip_code=200, cause="BYE from caller", answered_by="13912345678",
                    answered_kind=kind)  # fmt: skip
    return [start, answer, end]


def merge(*events: CallEvent, now: dt.datetime = NOW) -> None:
    async def run() -> None:
        from appliance.worker.effects import apply_effects

        for event in events:
            await apply_effects(await cdr.merge_event(event, now=now))

    asyncio.run(run())


def balance() -> int:
    return int(Tenant.select(Tenant.balance_fen).first().run_sync()["balance_fen"])


def plan_state(settings: Settings) -> str:
    plan = json.loads(settings.paths.plan_file.read_text())
    return str(plan["hotlines"]["4001234567"]["state"])


@pytest.mark.parametrize(
    ("talk", "rate", "step", "fen"),
    [(0, 60, 6, 0), (1, 60, 6, 6), (6, 60, 6, 6), (7, 60, 6, 12), (61, 60, 6, 66),
     (60, 30, 6, 30), (1, 25, 6, 3), (59, 30, 60, 30), (3600, 60, 6, 3600), (10, 0, 6, 0)],
)  # fmt: skip
def test_price_rounds_up_to_whole_steps_and_whole_fen(talk: int, rate: int, step: int, fen: int):
    assert price_fen(talk, rate, step) == fen
    assert isinstance(price_fen(talk, rate, step), int)


def test_the_billing_month_is_the_tenants_local_month() -> None:
    # 2026-11-30 16:30 UTC is already December 1st 00:30 in Shanghai.
    late = dt.datetime(2026, 11, 30, 16, 30, tzinfo=dt.UTC)
    assert month_of(late, "Asia/Shanghai") == "2026-12"
    assert month_of(late, "UTC") == "2026-11"


def test_the_site_files_balance_is_an_opening_balance_in_the_ledger(acme: Settings) -> None:
    assert balance() == 5000
    merge(*call("c1", talk=60))  # 60 fen
    apply(balance="50.00")  # applying the file again does not reset the balance
    assert balance() == 4940
    entries = LedgerEntry.select().run_sync()
    assert [(e["kind"], e["amount_fen"], e["balance_after_fen"], e["by"]) for e in entries] == [
        ("opening", 5000, 5000, "site file")
    ]


def test_an_answered_call_is_charged_once_however_often_its_events_arrive(acme: Settings) -> None:
    events = call("c1", talk=61)
    merge(*events, *reversed(events), events[2], events[1])
    row = CallRecord.select().first().run_sync()
    assert (row["talk_seconds"], row["cost_fen"], row["billed"]) == (61, 66, True)
    assert balance() == 5000 - 66


def test_extensions_are_free_and_unanswered_calls_cost_nothing(acme: Settings) -> None:
    merge(*call("c1", talk=120, kind="ext"), *call("c2", talk=0))
    assert [r["cost_fen"] for r in CallRecord.select().order_by(CallRecord.call_id).run_sync()] == [
        0,
        0,
    ]
    assert balance() == 5000


def test_an_answer_arriving_after_the_end_is_still_charged(acme: Settings) -> None:
    start, answer, end = call("c1", talk=30)
    merge(start, end)
    assert CallRecord.select(CallRecord.billed).first().run_sync()["billed"] is False
    merge(answer)
    assert balance() == 5000 - 30


def test_low_balance_sends_one_notice_and_suspension_refuses_calls_until_top_up(
    acme: Settings,
) -> None:
    # 60 fen a minute in 6 s steps: 1002 s cost 10.02, 50.00 → 39.98.
    merge(*call("c1", talk=1002))
    assert balance() == 3998
    assert Notice.count().run_sync() == 0
    merge(*call("c2", talk=600))
    merge(*call("c3", talk=60))
    low = Notice.select(Notice.channel, Notice.to).where(Notice.kind == "low_balance").run_sync()
    assert sorted(n["channel"] for n in low) == ["email", "sms"]  # one notice, not one per call
    assert plan_state(acme) == "active"

    merge(*call("c4", talk=2000))
    tenant = Tenant.select().first().run_sync()
    assert tenant["suspended"] is True and tenant["balance_fen"] < 1500
    assert plan_state(acme) == "suspended"
    assert Notice.count().where(Notice.kind == "suspended").run_sync() == 2

    refused = CallEvent(
        call_id="c5", type=cdr.END, at=NOW.timestamp(), kind="hotline", tenant="acme",
        hotline="4001234567", caller="13800138000", status="failed", sip_code=480,
        cause="Service Suspended",
    )  # fmt: skip
    merge(refused)
    assert (
        CallRecord.select(CallRecord.status)
        .where(CallRecord.call_id == "c5")
        .first()
        .run_sync()["status"]
        == "suspended"
    )

    booking = asyncio.run(ledger.book("acme", 10000, by="owner@acme", ref="alipay-0001", now=NOW))
    again = asyncio.run(ledger.book("acme", 10000, by="owner@acme", ref="alipay-0001", now=NOW))
    assert again.duplicate and again.balance_after_fen == booking.balance_after_fen
    assert balance() == booking.balance_after_fen == tenant["balance_fen"] + 10000
    assert plan_state(acme) == "active"
    tenant = Tenant.select().first().run_sync()
    assert tenant["suspended"] is False and tenant["low_balance_noticed"] is False
    topup = LedgerEntry.select().where(LedgerEntry.kind == "topup").first().run_sync()
    assert (topup["amount_fen"], topup["by"]) == (10000, "owner@acme")


def test_a_top_up_must_be_positive_integer_fen(acme: Settings) -> None:
    with pytest.raises(ledger.LedgerError, match="positive"):
        asyncio.run(ledger.book("acme", 0, by="x"))
    with pytest.raises(ledger.LedgerError, match="integer fen"):
        asyncio.run(ledger.book("acme", 10.5, by="x"))  # type: ignore[arg-type]
    with pytest.raises(ledger.LedgerError, match="no tenant"):
        asyncio.run(ledger.book("nobody", 100, by="x"))


def test_reaching_the_monthly_call_cap_refuses_the_next_call_until_the_new_month(
    database: object, tmp_settings: Settings
) -> None:
    apply(balance="500.00", cap=2)
    merge(*call("c1", talk=10))
    assert plan_state(tmp_settings) == "active"
    merge(*call("c2", talk=0))
    assert Hotline.select(Hotline.service_state).first().run_sync()["service_state"] == "capped"
    assert plan_state(tmp_settings) == "capped"
    capped = CallEvent(
        call_id="c3", type=cdr.END, at=NOW.timestamp(), kind="hotline", tenant="acme",
        hotline="4001234567", status="failed", sip_code=480, cause="Monthly Cap Reached",
    )  # fmt: skip
    merge(capped)
    row = CallRecord.select().where(CallRecord.call_id == "c3").first().run_sync()
    assert row["status"] == "capped"
    usage = MonthlyUsage.select().first().run_sync()
    assert (usage["month"], usage["calls"]) == ("2026-11", 2)  # a refused call does not count

    # Still November in Shanghai: the cap holds.
    assert (
        asyncio.run(billing_tasks.lift_caps(dt.datetime(2026, 11, 30, 15, 59, tzinfo=dt.UTC))) == []
    )
    # December 1st 00:00 in Shanghai is November 30th 16:00 UTC.
    lifted = asyncio.run(billing_tasks.lift_caps(dt.datetime(2026, 11, 30, 16, 0, tzinfo=dt.UTC)))
    assert lifted == ["4001234567"]
    assert plan_state(tmp_settings) == "active"


def test_the_periodic_housekeeping_runs_as_a_task(acme: Settings) -> None:
    billing_tasks.billing_housekeeping.call_local()


def test_a_suspended_tenant_past_its_grace_period_is_told_of_the_reclaim_once(
    acme: Settings,
) -> None:
    merge(*call("c1", talk=4000))
    assert Tenant.select(Tenant.suspended).first().run_sync()["suspended"] is True
    assert asyncio.run(billing_tasks.reclaim_due(NOW + dt.timedelta(days=2))) == []
    later = NOW + dt.timedelta(days=3, minutes=1)
    assert asyncio.run(billing_tasks.reclaim_due(later)) == ["acme"]
    asyncio.run(billing_tasks.reclaim_due(later + dt.timedelta(hours=1)))
    assert Notice.count().where(Notice.kind == "reclaim").run_sync() == 2  # SMS + e-mail, once
