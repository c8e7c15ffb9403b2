"""Reports (`/api/v1/reports`, `/reports`) from the daily aggregates the
worker computes (`aggregate_day`, run here on real call records in SQLite):
the figures, tenant isolation, bad ranges, and each table as .xlsx."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from litestar.testing import TestClient

from appliance import settings as settings_mod
from appliance.tables import CallRecord, Tenant
from appliance.worker.reports import aggregate_day
from tests.unit.web_helpers import Session, setup_site
from web.app import create_app

BEIJING = timezone(timedelta(hours=8))
RANGE = {"since": "2026-03-01", "until": "2026-03-03"}


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=BEIJING)


def tenant_id(slug: str) -> int:
    return int(Tenant.select(Tenant.id).where(Tenant.slug == slug).first().run_sync()["id"])


def call(n: int, tenant: int, started: datetime, status: str, **more: Any) -> CallRecord:
    values: dict[str, Any] = dict(
        call_id=f"r{n}@test",
        tenant=tenant,
        hotline="4001234567",
        caller=f"138{n:08d}",
        started_at=started,
        ended_at=started + timedelta(minutes=5),
        status=status,
    )
    values.update(more)
    return CallRecord(**values)


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setattr(settings_mod, "_current", None)
    s = setup_site(tmp_path, monkeypatch)
    acme, globex = tenant_id("acme"), tenant_id("globex")
    answered = dict(caller_region="浙江 杭州", answered_by="1001", agent_id="8001")
    CallRecord.insert(
        call(1, acme, at(2, 9), "answered", talk_seconds=60, survey_score=5, **answered),
        call(2, acme, at(2, 9, 30), "answered", talk_seconds=120, survey_score=3, **answered),
        call(3, acme, at(2, 10), "busy", caller_region="北京"),
        call(4, acme, at(2, 14), "missed", caller_region="广东 广州"),
        call(5, acme, at(2, 14, 5), "cancelled", caller_region="广东 深圳"),
        call(6, acme, at(2, 15), "rejected", hotline="4006668888"),
        call(7, acme, at(3, 11), "answered", talk_seconds=30, cost_fen=123, answered_by="1002"),
        call(8, globex, at(2, 9), "answered", talk_seconds=999, agent_id="9001",
             caller_region="上海", hotline="4007654321"),
        call(9, acme, at(4, 9), "answered", talk_seconds=10),  # after the range
    ).run_sync()  # fmt: skip
    for tenant in (acme, globex):
        for day in (2, 3, 4):
            asyncio.run(aggregate_day({"id": tenant}, date(2026, 3, day), "Asia/Shanghai"))
    with TestClient(app=create_app(s)) as c:
        yield c


def test_the_report_counts_what_the_aggregates_hold(client: TestClient) -> None:
    acme = Session(client, "owner@acme.example")

    body = acme.get("/api/v1/reports", params=RANGE).json()
    assert body["totals"] == {
        "calls": 7,
        "answered": 3,
        "busy": 1,
        "no_answer": 2,
        "other": 1,
        "talk_seconds": 210,
        "average_talk_seconds": 70,
        "satisfaction": 4.0,
        "surveys": 2,
        "cost": "1.23",
    }
    assert [(d["day"], d["calls"], d["answered"]) for d in body["by_day"]] == [
        ("2026-03-01", 0, 0),
        ("2026-03-02", 6, 2),
        ("2026-03-03", 1, 1),
    ]
    hours = {h["hour"]: (h["calls"], h["answered"]) for h in body["by_hour"]}
    assert len(body["by_hour"]) == 24
    assert hours[9] == (2, 2) and hours[14] == (2, 0) and hours[11] == (1, 1) and hours[0] == (0, 0)
    assert [(r["region"], r["calls"], r["answered"]) for r in body["by_region"]] == [
        ("", 2, 1),
        ("广东", 2, 0),
        ("浙江", 2, 2),
        ("北京", 1, 0),
    ]
    assert body["by_agent"] == [
        {
            "agent_id": "8001",
            "name": "李雷",
            "answered": 2,
            "talk_seconds": 180,
            "average_talk_seconds": 90,
            "satisfaction": 4.0,
            "surveys": 2,
        }
    ]
    one = acme.get("/api/v1/reports", params={**RANGE, "hotline": "4006668888"}).json()
    assert one["totals"]["calls"] == 1 and one["totals"]["other"] == 1


def test_another_tenants_figures_never_show(client: TestClient) -> None:
    acme = Session(client, "owner@acme.example")

    body = acme.get("/api/v1/reports", params={**RANGE, "hotline": "4007654321"}).json()
    assert body["totals"]["calls"] == 0 and body["by_agent"] == []
    other = acme.get("/api/v1/reports", params={**RANGE, "tenant": "globex"})
    assert other.status_code == 404 and other.json()["error_id"] == "tenant-not-found"
    export = acme.get("/api/v1/reports/export.xlsx", params={**RANGE, "report": "agents"})
    assert "9001" not in str(sheet(export.content))
    page = acme.get("/reports", params=RANGE).text
    assert "9001" not in page and "上海" not in page

    operator = Session(client, "root@linebox.example")
    assert operator.get("/api/v1/reports", params=RANGE).json()["totals"]["calls"] == 8
    only = operator.get("/api/v1/reports", params={**RANGE, "tenant": "globex"}).json()
    assert only["totals"]["calls"] == 1 and only["by_agent"][0]["agent_id"] == "9001"
    assert Session(client, "agent@acme.example").get("/api/v1/reports").status_code == 403


@pytest.mark.parametrize(
    "params",
    [
        {"since": "2026-03-05", "until": "2026-03-01"},
        {"since": "2025-01-01", "until": "2026-03-01"},
        {"since": "yesterday"},
        {"hotline": "400-123"},
    ],
)
def test_a_bad_range_is_explained(client: TestClient, params: dict[str, str]) -> None:
    acme = Session(client, "owner@acme.example")

    response = acme.get("/api/v1/reports", params=params)
    assert response.status_code == 400 and response.json()["error_id"] == "invalid-request"
    assert acme.get("/api/v1/reports/export.xlsx", params=params).status_code == 400
    page = acme.get("/reports", params=params)
    assert page.status_code == 400 and 'class="error"' in page.text


def sheet(content: bytes) -> list[tuple[Any, ...]]:
    book = openpyxl.load_workbook(io.BytesIO(content), read_only=True)
    return [tuple(r) for r in book.worksheets[0].iter_rows(values_only=True)]


def test_each_table_downloads_as_a_workbook(client: TestClient) -> None:
    acme = Session(client, "owner@acme.example")

    def get(report: str) -> list[tuple[Any, ...]]:
        response = acme.get("/api/v1/reports/export.xlsx", params={**RANGE, "report": report})
        assert response.status_code == 200
        assert "attachment" in response.headers["content-disposition"]
        assert f"{report}-20260301-20260303.xlsx" in response.headers["content-disposition"]
        return sheet(response.content)

    daily = get("daily")
    assert daily[0] == ("日期", "呼叫数", "已接听", "占线", "未接", "通话（秒）")
    assert [r[1:] for r in daily[1:]] == [(0, 0, 0, 0, 0), (6, 2, 1, 2, 180), (1, 1, 0, 0, 30)]
    assert str(daily[2][0]).startswith("2026-03-02")
    hourly = get("hourly")
    assert len(hourly) == 25 and hourly[10] == ("09:00", 2, 2)
    assert get("regions")[1:] == [("未知", 2, 1), ("广东", 2, 0), ("浙江", 2, 2), ("北京", 1, 0)]
    assert get("agents")[1:] == [("8001", "李雷", 2, 180, 90, 4, 2)]
    summary = dict(r for r in get("summary")[1:])
    assert summary["呼叫数"] == 7 and summary["满意度"] == 4 and summary["费用（元）"] == "1.23"
    bad = acme.get("/api/v1/reports/export.xlsx", params={"report": "everything"})
    assert bad.status_code == 400

    client.get("/lang/en")
    assert get("daily")[0][:3] == ("Day", "Number of calls", "Answered")


def test_reports_page_carries_the_charts_data(client: TestClient) -> None:
    acme = Session(client, "owner@acme.example")

    page = acme.get("/reports", params=RANGE).text
    assert "<h1>统计报表</h1>" in page
    assert '<script src="/static/vendor/echarts.min.js" defer></script>' in page
    for chart in ("day", "hour", "split", "region", "agent"):
        assert f'data-chart="{chart}"' in page
    assert '"day_answered": [0, 2, 1]' in page
    assert 'data-total="calls">7<' in page and "李雷" in page and "1:10" in page
    assert '<option value="4006668888" >4006668888 Acme service</option>' in page
    assert "4007654321" not in page  # globex's
    assert 'href="/api/v1/reports/export.xlsx?report=daily&amp;since=2026-03-01' in page
    # Without a range: the last 30 days up to today, which has no calls.
    assert 'data-total="calls">0<' in acme.get("/reports").text

    client.get("/lang/en")
    assert "<h1>Reports</h1>" in acme.get("/reports").text
