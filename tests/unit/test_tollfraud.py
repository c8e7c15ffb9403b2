"""The ceiling on a tenant's minutes out through the trunk per hour: the site
file key, the plan, and the alert the worker sends when it is crossed."""

from __future__ import annotations

import asyncio
import datetime as dt
import tomllib
from pathlib import Path

import pytest

from appliance.errors import SiteFileError
from appliance.routing.compile import compile_plan
from appliance.sitefile.apply import apply_site
from appliance.sitefile.export import export_site
from appliance.sitefile.schema import parse_site
from appliance.tables import Gateway, Notice, Tenant
from appliance.worker import tollfraud

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_FILE = ROOT / "examples" / "site.toml"
EXAMPLE = EXAMPLE_FILE.read_text(encoding="utf-8")
HOUR = int(dt.datetime(2026, 11, 23, 8, tzinfo=dt.UTC).timestamp()) // 3600  # 16:00 in Shanghai


def with_outbound(table: str, text: str = EXAMPLE) -> str:
    anchor = "missed_call_sms = true"
    assert anchor in text
    return text.replace(anchor, f"{anchor}\n\n[tenants.outbound]\n{table}", 1)


@pytest.mark.parametrize("minutes", [-1, 60001])
def test_minutes_per_hour_out_of_range_are_refused(minutes: int) -> None:
    with pytest.raises(SiteFileError) as exc:
        parse_site(with_outbound(f"max_minutes_per_hour = {minutes}"))
    assert any("max_minutes_per_hour" in p and "out of range" in p for p in exc.value.problems)


def test_minutes_per_hour_must_be_a_number() -> None:
    with pytest.raises(SiteFileError) as exc:
        parse_site(with_outbound('max_minutes_per_hour = "many"'))
    assert any("max_minutes_per_hour" in p for p in exc.value.problems)


def test_minutes_per_hour_reach_the_plan_and_the_export(database: object) -> None:
    text = with_outbound("max_calls = 4\nmax_minutes_per_hour = 45")
    asyncio.run(apply_site(text, EXAMPLE_FILE.parent))
    plan = asyncio.run(compile_plan())
    acme = next(t for t in plan.tenants.values() if t.max_outbound == 4)
    assert acme.max_outbound_minutes == 45
    exported = tomllib.loads(asyncio.run(export_site()))
    outbound = [t["outbound"] for t in exported["tenants"] if "outbound" in t]
    assert outbound == [
        {"international": False, "premium": False, "max_calls": 4, "max_minutes_per_hour": 45}
    ]


def test_the_default_ceiling_is_300_minutes(database: object) -> None:
    asyncio.run(apply_site(EXAMPLE, EXAMPLE_FILE.parent))
    plan = asyncio.run(compile_plan())
    assert {t.max_outbound_minutes for t in plan.tenants.values()} == {300}


@pytest.fixture
def acme(database: object) -> int:
    row = Tenant(
        slug="acme",
        name="艾克米",
        timezone="Asia/Shanghai",
        notify={"email": "owner@acme.example.cn", "sms": "13900000000"},
    )
    return int(Tenant.insert(row).run_sync()[0]["id"])


def test_crossing_the_ceiling_alerts_the_tenant_and_the_operator_once(
    acme: int, caplog: pytest.LogCaptureFixture
) -> None:
    Gateway.insert(
        Gateway(channel="email", kind="smtp", config={"alerts_to": "noc@reseller.example.cn"})
    ).run_sync()
    ids = asyncio.run(tollfraud.alert("acme", HOUR, 61, 60))
    assert len(ids) == 3
    notices = Notice.select().order_by(Notice._meta.primary_key).run_sync()
    assert [(n["kind"], n["channel"], n["to"], n["tenant"]) for n in notices] == [
        ("alert", "sms", "13900000000", acme),
        ("alert", "email", "owner@acme.example.cn", acme),
        ("alert", "email", "noc@reseller.example.cn", acme),
    ]
    assert "61 分钟" in notices[0]["body"] and "60 分钟" in notices[0]["body"]
    assert "2026-11-23 16:00:00" in notices[0]["body"]  # the tenant's local time
    assert any(
        r.levelname == "WARNING" and "ALERT tenant acme" in r.message for r in caplog.records
    )
    # The task is retried, or Kamailio restarted within the hour: no second alert.
    assert asyncio.run(tollfraud.alert("acme", HOUR, 75, 60)) == []
    assert len(Notice.select().run_sync()) == 3
    # The next hour is another alert.
    assert len(asyncio.run(tollfraud.alert("acme", HOUR + 1, 61, 60))) == 2 + 1


def test_an_unknown_tenant_alerts_nobody(database: object) -> None:
    assert asyncio.run(tollfraud.alert("nobody", HOUR, 61, 60)) == []
