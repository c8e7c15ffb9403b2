"""The dashboard and the live view over WebSocket, tenant by tenant."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from litestar.testing import TestClient

from appliance import settings as settings_mod
from appliance.tables import CallRecord, Tenant
from tests.unit.web_helpers import Session, setup_site
from web.app import create_app


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setattr(settings_mod, "_current", None)
    s = setup_site(tmp_path, monkeypatch)
    ids = {r["slug"]: r["id"] for r in Tenant.select(Tenant.id, Tenant.slug).run_sync()}
    now = datetime.now(UTC)
    CallRecord.insert(
        CallRecord(
            call_id="live-a",
            tenant=ids["acme"],
            hotline="4001234567",
            caller="13800138000",
            started_at=now,
            status="ringing",
        ),
        CallRecord(
            call_id="done-a",
            tenant=ids["acme"],
            hotline="4001234567",
            caller="13800138001",
            started_at=now - timedelta(minutes=1),
            status="answered",
        ),
        CallRecord(
            call_id="miss-a",
            tenant=ids["acme"],
            hotline="4001234567",
            caller="13800138002",
            started_at=now - timedelta(minutes=2),
            status="missed",
        ),
        CallRecord(
            call_id="live-g",
            tenant=ids["globex"],
            hotline="4007654321",
            caller="13900000000",
            started_at=now,
            status="talking",
        ),
    ).run_sync()
    with TestClient(app=create_app(s)) as c:
        yield c


def test_dashboard_counts_today_for_the_tenant(client: TestClient) -> None:
    acme = Session(client, "owner@acme.example")
    d = acme.get("/api/v1/dashboard").json()

    assert (d["calls_today"], d["answered_today"], d["missed_today"]) == (3, 1, 1)
    assert d["answer_rate"] == 0.5
    assert [c["call_id"] for c in d["live"]] == ["live-a"]
    page = acme.get("/dashboard")
    assert page.status_code == 200 and "13800138000" in page.text and "13900000000" not in page.text


def test_live_view_pushes_only_the_tenants_calls(client: TestClient) -> None:
    Session(client, "owner@acme.example")
    with client.websocket_connect("/ws/live") as ws:
        first = ws.receive_json()
        assert [c["call_id"] for c in first["calls"]] == ["live-a"]
        CallRecord.update({CallRecord.status: "talking"}).where(
            CallRecord.call_id == "live-a"
        ).run_sync()
        second = ws.receive_json()
        assert second["calls"][0]["status"] == "talking"


def test_live_view_needs_a_login(client: TestClient) -> None:
    client.cookies.clear()
    with pytest.raises(Exception):  # noqa: B017, SIM117 - refused before the handshake
        with client.websocket_connect("/ws/live") as ws:
            ws.receive_json()


def test_live_view_refuses_another_origin(client: TestClient) -> None:
    Session(client, "owner@acme.example")
    with pytest.raises(Exception):  # noqa: B017, SIM117
        with client.websocket_connect("/ws/live", headers={"Origin": "http://evil.example"}) as ws:
            ws.receive_json()
