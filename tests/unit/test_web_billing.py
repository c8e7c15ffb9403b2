"""Billing (`/api/v1/billing`, `/billing`), read-only, on a real SQLite
database: balance and rates from the site file, top-ups booked through the
ledger, daily costs from the report aggregates, monthly deductions; and
another tenant's account never shown."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from litestar.testing import TestClient

from appliance import settings as settings_mod
from appliance.billing.ledger import book
from appliance.tables import CallRecord, MonthlyUsage, Tenant
from appliance.worker.reports import aggregate_day
from tests.unit.web_helpers import SITE, Session, setup_site
from web.app import create_app

BEIJING = timezone(timedelta(hours=8))
BILLING_SITE = SITE.replace(
    '[[tenants.hotlines]]\nnumber = "4001234567"',
    '[tenants.billing]\nbalance = "500.00"\nrates_per_minute = { tel = "0.12", ext = "0.06" }\n'
    'low_balance = "50.00"\n\n[[tenants.hotlines]]\nnumber = "4001234567"',
    1,
)


def tenant_id(slug: str) -> int:
    return int(Tenant.select(Tenant.id).where(Tenant.slug == slug).first().run_sync()["id"])


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setattr(settings_mod, "_current", None)
    s = setup_site(tmp_path, monkeypatch, BILLING_SITE)
    acme, globex = tenant_id("acme"), tenant_id("globex")
    # Booked now, after the site file's opening balance.
    asyncio.run(book("acme", 10000, by="root@linebox.example", note="三月充值", ref="t1"))
    asyncio.run(book("globex", 77700, by="root@linebox.example", ref="g1"))
    CallRecord.insert(
        *[
            CallRecord(
                call_id=f"b{i}@acme",
                tenant=acme,
                hotline="4001234567",
                started_at=datetime(2026, 3, 2 + i % 2, 9, i, tzinfo=BEIJING),
                status="answered",
                talk_seconds=60,
                cost_fen=12,
            )
            for i in range(5)
        ],
        CallRecord(
            call_id="g@globex",
            tenant=globex,
            hotline="4007654321",
            started_at=datetime(2026, 3, 2, 9, tzinfo=BEIJING),
            status="answered",
            cost_fen=999,
        ),
    ).run_sync()
    for tenant in (acme, globex):
        for day in (2, 3):
            asyncio.run(aggregate_day({"id": tenant}, date(2026, 3, day), "Asia/Shanghai"))
    MonthlyUsage.insert(
        MonthlyUsage(key="4001234567|2026-02", tenant=acme, hotline="4001234567",
                     month="2026-02", calls=40, cost_fen=480),
        MonthlyUsage(key="4006668888|2026-02", tenant=acme, hotline="4006668888",
                     month="2026-02", calls=2, cost_fen=20),
        MonthlyUsage(key="4001234567|2026-03", tenant=acme, hotline="4001234567",
                     month="2026-03", calls=5, cost_fen=60),
        MonthlyUsage(key="4001234567|2025-12", tenant=acme, hotline="4001234567",
                     month="2025-12", calls=1, cost_fen=6),
        MonthlyUsage(key="4007654321|2026-03", tenant=globex, hotline="4007654321",
                     month="2026-03", calls=1, cost_fen=999),
    ).run_sync()  # fmt: skip
    with TestClient(app=create_app(s)) as c:
        yield c


def test_owner_reads_their_account(client: TestClient) -> None:
    acme = Session(client, "owner@acme.example")

    body = acme.get("/api/v1/billing", params={"year": 2026}).json()
    assert (body["tenant"], body["balance"], body["suspended"]) == ("acme", "600.00", False)
    assert body["low_balance"] == "50.00" and body["suspend_below"] is None
    assert body["rates"] == [
        {"kind": "ext", "per_minute": "0.06"},
        {"kind": "tel", "per_minute": "0.12"},
    ]
    assert body["daily"] == [
        {"day": "2026-03-02", "calls": 3, "cost": "0.36"},
        {"day": "2026-03-03", "calls": 2, "cost": "0.24"},
    ]
    assert body["monthly"] == [
        {"month": "2026-02", "calls": 42, "cost": "5.00"},
        {"month": "2026-03", "calls": 5, "cost": "0.60"},
    ]
    assert [(e["kind"], e["amount"], e["balance_after"], e["note"]) for e in body["ledger"]] == [
        ("topup", "100.00", "600.00", "三月充值"),
        ("opening", "500.00", "500.00", "opening balance"),
    ]
    older = acme.get("/api/v1/billing", params={"year": 2025}).json()
    assert older["monthly"] == [{"month": "2025-12", "calls": 1, "cost": "0.06"}]
    assert older["daily"] == []
    ledger = acme.get("/api/v1/billing/ledger", params={"limit": 1, "offset": 1}).json()
    assert ledger["total"] == 2 and ledger["items"][0]["kind"] == "opening"


def test_another_tenants_account_is_not_found(client: TestClient) -> None:
    acme = Session(client, "owner@acme.example")

    for url in ("/api/v1/billing", "/api/v1/billing/ledger", "/billing"):
        response = acme.get(url, params={"tenant": "globex"})
        assert response.status_code == 404, url
        assert response.json()["error_id"] == "tenant-not-found"
    body = acme.get("/api/v1/billing", params={"year": 2026}).text
    assert "777.00" not in body and '"9.99"' not in body  # an amount, not a timestamp
    assert "777.00" not in acme.get("/billing", params={"year": 2026}).text

    operator = Session(client, "root@linebox.example")
    choose = operator.get("/api/v1/billing")
    assert choose.status_code == 400 and "tenant" in choose.json()["detail"]
    assert "请选择一个企业。" in operator.get("/billing").text
    globex = operator.get("/api/v1/billing", params={"tenant": "globex", "year": 2026}).json()
    assert globex["balance"] == "777.00" and globex["monthly"][0]["cost"] == "9.99"
    assert Session(client, "agent@acme.example").get("/api/v1/billing").status_code == 403


def test_billing_is_read_only(client: TestClient) -> None:
    acme = Session(client, "owner@acme.example")

    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert acme.request(method, "/api/v1/billing", json={}).status_code == 405
        assert acme.request(method, "/api/v1/billing/ledger", json={}).status_code == 405


def test_bad_year_is_400(client: TestClient) -> None:
    acme = Session(client, "owner@acme.example")

    for year in ("1999", "3000", "soon"):
        response = acme.get("/api/v1/billing", params={"year": year})
        assert response.status_code == 400 and response.json()["error_id"] == "invalid-request"


def test_billing_page(client: TestClient) -> None:
    acme = Session(client, "owner@acme.example")

    page = acme.get("/billing", params={"year": 2026}).text
    assert "<h1>计费</h1>" in page and "¥600.00" in page and "三月充值" in page
    assert "¥0.12" in page and "2026-02" in page and "¥5.00" in page
    assert '"days": [["2026-03-02", "0.36", 3], ["2026-03-03", "0.24", 2]]' in page
    assert 'href="/billing?year=2025"' in page

    client.get("/lang/en")
    english = acme.get("/billing").text
    assert "<h1>Billing</h1>" in english and "Top-ups" in english
