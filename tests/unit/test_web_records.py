"""Call records across tenants: isolation by id, in lists and in the Excel
export (opened with openpyxl), and the new filters, on a real SQLite database."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import openpyxl
import pytest
from litestar.testing import TestClient

from appliance import settings as settings_mod
from appliance.settings import Settings
from appliance.tables import CallRecord, Tenant, User, UserAuth
from tests.unit.web_helpers import Session, setup_site
from web.app import create_app

BEIJING = timezone(timedelta(hours=8))


def tenant_id(slug: str) -> int:
    return int(Tenant.select(Tenant.id).where(Tenant.slug == slug).first().run_sync()["id"])


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setattr(settings_mod, "_current", None)
    s: Settings = setup_site(tmp_path, monkeypatch)
    acme, globex = tenant_id("acme"), tenant_id("globex")
    start = datetime(2026, 3, 2, 9, 0, tzinfo=BEIJING)
    rows = []
    for i in range(30):
        rows.append(
            CallRecord(
                call_id=f"a{i}@acme",
                tenant=acme,
                hotline="4001234567",
                caller=f"1380013{i:04d}",
                caller_region="浙江 杭州" if i % 2 else "北京",
                caller_area_code="0571" if i % 2 else "010",
                started_at=start + timedelta(minutes=i),
                status="answered" if i % 3 else "missed",
                answered_by="1001" if i % 3 else "",
                talk_seconds=60 if i % 3 else 0,
            )
        )
    for i in range(5):
        rows.append(
            CallRecord(
                call_id=f"g{i}@globex",
                tenant=globex,
                hotline="4007654321",
                caller=f"1390000{i:04d}",
                started_at=start + timedelta(minutes=i),
                status="answered",
                answered_by="2001",
            )
        )
    CallRecord.insert(*rows).run_sync()
    agent = User.select(User.id).where(User.login == "agent@acme.example").first().run_sync()
    UserAuth.insert(UserAuth(user=agent["id"], extension="1001")).run_sync()
    with TestClient(app=create_app(s)) as c:
        yield c


def workbook_rows(content: bytes) -> list[tuple[object, ...]]:
    book = openpyxl.load_workbook(io.BytesIO(content), read_only=True)
    return [tuple(r) for r in book.worksheets[0].iter_rows(values_only=True)]


def test_owner_sees_only_their_calls_in_list_get_and_export(client: TestClient) -> None:
    acme = Session(client, "owner@acme.example")

    body = acme.get("/api/v1/calls", params={"limit": 500}).json()
    assert body["total"] == 30
    assert all(item["call_id"].endswith("@acme") for item in body["items"])
    assert acme.get("/api/v1/calls/g1@globex").status_code == 404
    assert acme.get("/api/v1/calls/g1@globex").json()["error_id"] == "call-not-found"
    assert acme.get("/api/v1/calls/g1@globex/recording").status_code == 404
    assert acme.get("/api/v1/calls", params={"hotline": "4007654321"}).json()["total"] == 0

    export = acme.get("/api/v1/calls/export.xlsx")
    assert export.status_code == 200
    rows = workbook_rows(export.content)
    assert len(rows) == 31  # header + 30
    assert not any("globex" in str(r[-1]) for r in rows[1:])
    assert "globex" not in acme.get("/calls").text


def test_operator_sees_every_tenant(client: TestClient) -> None:
    operator = Session(client, "root@linebox.example")

    assert operator.get("/api/v1/calls").json()["total"] == 35
    assert operator.get("/api/v1/calls/g1@globex").status_code == 200


def test_agent_sees_only_calls_their_extension_answered(client: TestClient) -> None:
    agent = Session(client, "agent@acme.example")

    body = agent.get("/api/v1/calls", params={"limit": 500}).json()
    assert body["total"] == 20
    assert {i["answered_by"] for i in body["items"]} == {"1001"}
    assert agent.get("/api/v1/hotlines").json() == []
    assert agent.get("/api/v1/hotlines/4001234567").status_code == 404


def test_export_applies_the_filters_and_speaks_the_language(client: TestClient) -> None:
    acme = Session(client, "owner@acme.example")
    export = acme.get("/api/v1/calls/export.xlsx", params={"status": "missed", "region": "0571"})

    assert export.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert "attachment" in export.headers["content-disposition"]
    rows = workbook_rows(export.content)
    header, data = rows[0], rows[1:]
    assert header[:2] == ("时间", "主叫")
    # i = 3, 9, 15, 21, 27 are odd multiples of 3: missed, from 0571.
    assert sorted(r[-1] for r in data) == sorted(f"a{i}@acme" for i in (3, 9, 15, 21, 27))
    assert {r[8] for r in data} == {"未接"}
    assert data[0][0] == "2026-03-02 09:27:00"  # local time, newest first

    client.get("/lang/en")
    english = workbook_rows(acme.get("/api/v1/calls/export.xlsx").content)[0]
    assert english[:2] == ("Start", "Caller")


def test_export_with_a_bad_filter_is_400(client: TestClient) -> None:
    acme = Session(client, "owner@acme.example")

    response = acme.get("/api/v1/calls/export.xlsx", params={"since": "soon"})
    assert response.status_code == 400 and response.json()["error_id"] == "invalid-request"
    assert acme.get("/api/v1/calls", params={"region": "1%"}).status_code == 400


def test_region_and_agent_filters(client: TestClient) -> None:
    acme = Session(client, "owner@acme.example")

    assert acme.get("/api/v1/calls", params={"region": "浙江"}).json()["total"] == 15
    assert acme.get("/api/v1/calls", params={"region": "010"}).json()["total"] == 15
    assert acme.get("/api/v1/calls", params={"agent": "1001"}).json()["total"] == 20


def test_calls_page_filters_and_pages(client: TestClient) -> None:
    acme = Session(client, "owner@acme.example")
    page = acme.get("/calls", params={"status": "missed"}).text

    assert "1–10 / 10" in page or "1–10" in page
    assert "13800130003" in page and "13800130001" not in page
    assert 'href="/api/v1/calls/export.xlsx?status=missed"' in page
    bad = acme.get("/calls", params={"since": "soon"})
    assert bad.status_code == 400 and "since" in bad.text


def test_totals_are_counted_up_to_a_cap(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy tenant's year is not counted for every page view: beyond the
    cap the total says so (total_exact false, "N+" on the page) and the
    pages still go on."""
    from web.domain.calls import services

    monkeypatch.setattr(services, "COUNT_CAP", 25)
    acme = Session(client, "owner@acme.example")
    body = acme.get("/api/v1/calls", params={"limit": 10}).json()
    assert (body["total"], body["total_exact"]) == (25, False)
    exact = acme.get("/api/v1/calls", params={"limit": 10, "status": "missed"}).json()
    assert exact["total_exact"] is True
    page = acme.get("/calls").text
    assert "25+" in page and 'rel="next"' in page
