"""The call records API (`/api/v1/calls`) and page (`/calls`), against a real
temporary SQLite database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from piccolo.apps.migrations.tables import Migration

from appliance import db
from appliance import settings as settings_mod
from appliance.settings import Settings
from appliance.tables import CallRecord, User
from tests.unit.web_helpers import PASSWORD, login
from web.app import create_app

BEIJING = timezone(timedelta(hours=8))


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=BEIJING)


# Inserted in this order; c2 and c4 start at the same moment, so c4 (inserted
# later) comes first among them.
CALLS: list[dict[str, Any]] = [
    dict(
        call_id="c1@carrier",
        hotline="4001234567",
        caller="13800138000",
        caller_area_code="",
        caller_region="北京",
        called="4001234567",
        route="工作时间",
        answered_by="8001",
        agent_id="007",
        started_at=at(1, 9),
        answered_at=at(1, 9) + timedelta(seconds=6),
        ended_at=at(1, 9) + timedelta(seconds=71),
        status="answered",
        sip_code=200,
        talk_seconds=65,
        ring_seconds=6,
    ),
    dict(
        call_id="c2@carrier",
        hotline="4001234567",
        caller="13800138001",
        caller_region="上海",
        started_at=at(1, 10),
        ended_at=at(1, 10) + timedelta(seconds=30),
        status="missed",
        sip_code=480,
        cause="no answer",
        ring_seconds=30,
    ),
    dict(
        call_id="c3@carrier",
        hotline="4007654321",
        caller="01088886666",
        caller_area_code="010",
        caller_region="北京",
        started_at=at(2, 8),
        status="busy",
        sip_code=486,
    ),
    dict(
        call_id="c4@carrier",
        hotline="4007654321",
        caller="13900000000",
        caller_region="广东 广州",
        started_at=at(1, 10),
        answered_at=at(1, 10) + timedelta(seconds=3),
        status="answered",
        answered_by="8002",
        talk_seconds=3725,
    ),
]
NEWEST_FIRST = ["c3@carrier", "c4@carrier", "c2@carrier", "c1@carrier"]


def make_settings(tmp_path: Path) -> Settings:
    return settings_mod.load(
        environ={
            "LINEBOX_DATA_DIR": str(tmp_path),
            "LINEBOX_CONFIG": str(tmp_path / "linebox.toml"),
        }
    )


def add_operator() -> None:
    from argon2 import PasswordHasher

    User.insert(
        User(
            login="root@example.cn", password_hash=PasswordHasher().hash(PASSWORD), role="operator"
        )
    ).run_sync()


def operator_client(s: Settings) -> TestClient:
    """A client logged in as an operator, who sees every tenant's calls."""
    client = TestClient(app=create_app(s))
    client.__enter__()
    login(client, "root@example.cn")
    return client


def migrate(s: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = db.configure(s.database_url)
    # Imported only now, so that its import-time `db.engine()` finds this engine.
    from appliance import piccolo_conf

    # piccolo's migrations run on `piccolo_conf.DB`, fixed when that module was
    # first imported, and record what ran through its `Migration` table, which
    # keeps the first engine it saw: point both at this test's database.
    monkeypatch.setattr(piccolo_conf, "DB", engine)
    Migration._meta.db = engine
    db.migrate()


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A database of its own with CALLS in it, for a test that changes things."""
    monkeypatch.setattr(settings_mod, "_current", None)
    s = make_settings(tmp_path)
    settings_mod.override(s)
    migrate(s, monkeypatch)
    CallRecord.insert(*(CallRecord(**call) for call in CALLS)).run_sync()
    add_operator()
    return s


@pytest.fixture(scope="module")
def shared_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, TestClient]]:
    # The tests that only read share one database and app: setting them up is
    # most of what this file costs.
    with pytest.MonkeyPatch.context() as monkeypatch:
        s = make_settings(tmp_path_factory.mktemp("calls"))
        migrate(s, monkeypatch)
        CallRecord.insert(*(CallRecord(**call) for call in CALLS)).run_sync()
        add_operator()
        client = operator_client(s)
        yield s, client
        client.__exit__(None, None, None)


@pytest.fixture
def client(shared_app: tuple[Settings, TestClient]) -> TestClient:
    s, client = shared_app
    # Another test may have pointed the tables at its own database meanwhile.
    db.configure(s.database_url)
    return client


def call_ids(client: TestClient, **params: Any) -> list[str]:
    response = client.get("/api/v1/calls", params=params)
    assert response.status_code == 200, response.text
    return [item["call_id"] for item in response.json()["items"]]


def assert_invalid(response: Any, key: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error_id"] == "invalid-request"
    assert body["detail"].startswith(f"{key}: ")
    assert [e["key"] for e in body["details"]["errors"]] == [key]


# --- the list ------------------------------------------------------------------


def test_list_is_newest_first_with_ties_by_insertion(client: TestClient) -> None:
    response = client.get("/api/v1/calls")

    body = response.json()
    assert [item["call_id"] for item in body["items"]] == NEWEST_FIRST
    assert (body["total"], body["limit"], body["offset"]) == (4, 50, 0)


def test_list_items_carry_every_documented_field(client: TestClient) -> None:
    item = client.get("/api/v1/calls").json()["items"][-1]

    assert item == {
        "call_id": "c1@carrier",
        "hotline": "4001234567",
        "caller": "13800138000",
        "caller_area_code": "",
        "caller_region": "北京",
        "called": "4001234567",
        "kind": "hotline",
        "route": "工作时间",
        "answered_by": "8001",
        "agent_id": "007",
        "started_at": "2026-03-01T01:00:00Z",
        "answered_at": "2026-03-01T01:00:06Z",
        "ended_at": "2026-03-01T01:01:11Z",
        "status": "answered",
        "sip_code": 200,
        "cause": "",
        "talk_seconds": 65,
        "ring_seconds": 6,
    }


def test_filter_by_status(client: TestClient) -> None:
    assert call_ids(client, status="answered") == ["c4@carrier", "c1@carrier"]
    assert call_ids(client, status="missed") == ["c2@carrier"]
    assert call_ids(client, status="failed") == []


def test_filter_by_hotline(client: TestClient) -> None:
    assert call_ids(client, hotline="4007654321") == ["c3@carrier", "c4@carrier"]


def test_filter_by_caller_exact(client: TestClient) -> None:
    assert call_ids(client, caller="13800138000") == ["c1@carrier"]
    assert call_ids(client, caller="138") == []


def test_filter_by_caller_prefix(client: TestClient) -> None:
    assert call_ids(client, caller="138*") == ["c2@carrier", "c1@carrier"]
    assert call_ids(client, caller="010*") == ["c3@carrier"]


def test_filter_since_is_inclusive_and_until_exclusive(client: TestClient) -> None:
    assert call_ids(client, since="2026-03-01T10:00:00+08:00") == NEWEST_FIRST[:3]
    assert call_ids(client, until="2026-03-01T10:00:00+08:00") == ["c1@carrier"]
    one_evening = {"since": "2026-03-01T09:30:00+08:00", "until": "2026-03-02T00:00:00+08:00"}
    assert call_ids(client, **one_evening) == ["c4@carrier", "c2@carrier"]


def test_filter_times_in_utc_or_local_time_zone(client: TestClient) -> None:
    # 02:00Z is 10:00 in Beijing; a time without offset is the appliance's (Asia/Shanghai).
    assert call_ids(client, since="2026-03-01T02:00:00Z") == NEWEST_FIRST[:3]
    assert call_ids(client, since="2026-03-02") == ["c3@carrier"]
    assert call_ids(client, until="2026-03-01T09:00:01") == ["c1@carrier"]


def test_an_unencoded_plus_in_the_offset_is_understood(client: TestClient) -> None:
    response = client.get("/api/v1/calls?since=2026-03-01T10:00:00+08:00")

    assert [i["call_id"] for i in response.json()["items"]] == NEWEST_FIRST[:3]


def test_filters_combine(client: TestClient) -> None:
    assert call_ids(client, hotline="4007654321", status="answered") == ["c4@carrier"]
    assert call_ids(client, hotline="4001234567", caller="139*") == []


def test_pagination_pages_and_total(client: TestClient) -> None:
    page = client.get("/api/v1/calls", params={"limit": 2, "offset": 1}).json()
    assert [i["call_id"] for i in page["items"]] == NEWEST_FIRST[1:3]
    assert (page["total"], page["limit"], page["offset"]) == (4, 2, 1)

    past_the_end = client.get("/api/v1/calls", params={"limit": 2, "offset": 4}).json()
    assert past_the_end["items"] == []
    assert past_the_end["total"] == 4

    filtered = client.get("/api/v1/calls", params={"status": "answered", "limit": 1}).json()
    assert [i["call_id"] for i in filtered["items"]] == ["c4@carrier"]
    assert filtered["total"] == 2


@pytest.mark.parametrize("limit", ["0", "501", "-1", "many"])
def test_bad_limit_is_400(client: TestClient, limit: str) -> None:
    assert_invalid(client.get("/api/v1/calls", params={"limit": limit}), "limit")


def test_bad_offset_is_400(client: TestClient) -> None:
    assert_invalid(client.get("/api/v1/calls", params={"offset": "-5"}), "offset")


def test_bad_filters_are_400_and_say_what_to_fix(client: TestClient) -> None:
    response = client.get("/api/v1/calls", params={"since": "yesterday"})
    assert_invalid(response, "since")
    assert "ISO 8601" in response.json()["detail"]

    assert_invalid(client.get("/api/v1/calls", params={"until": "2026-13-01"}), "until")

    response = client.get("/api/v1/calls", params={"status": "lost"})
    assert_invalid(response, "status")
    assert "missed" in response.json()["detail"]

    assert_invalid(client.get("/api/v1/calls", params={"caller": "13%*"}), "caller")


# --- one record ----------------------------------------------------------------


def test_get_one_call_by_call_id(client: TestClient) -> None:
    response = client.get("/api/v1/calls/c2@carrier")

    assert response.status_code == 200
    body = response.json()
    assert body["call_id"] == "c2@carrier"
    assert body["status"] == "missed"
    assert body["cause"] == "no answer"
    assert body["answered_at"] is None


def test_unknown_call_is_404_call_not_found(client: TestClient) -> None:
    response = client.get("/api/v1/calls/nobody@nowhere")

    assert response.status_code == 404
    body = response.json()
    assert body["error_id"] == "call-not-found"
    assert "nobody@nowhere" in body["detail"]
    assert body["details"] == {"call_id": "nobody@nowhere"}


# --- the page ------------------------------------------------------------------


def test_calls_page_lists_calls_with_chinese_labels(client: TestClient) -> None:
    response = client.get("/calls")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    for label in ["时间", "主叫", "地区", "热线", "接听分机", "状态", "通话时长"]:
        assert f"<th>{label}</th>" in page
    assert "13800138001" in page
    assert "未接" in page and "已接听" in page and "占线" in page
    assert "2026-03-01 09:00:00" in page  # local time, not UTC
    assert "1:05" in page and "1:02:05" in page  # talk durations
    assert "8001 (007)" in page
    assert page.index("01088886666") < page.index("13800138000")  # newest first
    assert 'src="http' not in page and "cdn" not in page.lower()


def test_calls_page_escapes_what_callers_send(settings: Settings) -> None:
    CallRecord.insert(
        CallRecord(
            call_id="evil@x",
            caller='<img src=x onerror="alert(1)">',
            started_at=at(3, 12),
            status="rejected",
        )
    ).run_sync()
    client = operator_client(settings)
    page = client.get("/calls").text
    client.__exit__(None, None, None)

    assert "<img src=x" not in page
    assert "&lt;img src=x" in page
    assert "拒接" in page


def test_calls_page_without_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_mod, "_current", None)
    s = make_settings(tmp_path)
    settings_mod.override(s)
    migrate(s, monkeypatch)
    add_operator()
    client = operator_client(s)
    response = client.get("/calls")
    client.__exit__(None, None, None)

    assert response.status_code == 200
    assert "还没有通话记录" in response.text


def test_home_redirects_to_the_dashboard(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)

    assert response.status_code in (302, 303, 307)
    assert response.headers["location"] == "/dashboard"


# --- whole-app behaviour ---------------------------------------------------------

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}


@pytest.mark.parametrize(
    "path", ["/calls", "/api/v1/calls", "/api/v1/calls/nobody", "/no/such/page", "/api/v1/schema"]
)
def test_every_response_carries_security_headers(client: TestClient, path: str) -> None:
    response = client.get(path)

    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value, name
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


def test_unknown_route_is_json_404(client: TestClient) -> None:
    response = client.get("/no/such/page")

    assert response.status_code == 404
    assert response.json()["error_id"] == "not-found"


def test_unexpected_error_is_json_500_without_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A database the web app finds unmigrated: the query fails inside piccolo.
    monkeypatch.setattr(settings_mod, "_current", None)
    s = make_settings(tmp_path)
    with TestClient(app=create_app(s)) as client:
        # An API token makes the app read the database before anything else.
        response = client.get("/api/v1/calls", headers={"Authorization": "Bearer lbt_x"})

    assert response.status_code == 500
    assert response.json() == {
        "error_id": "internal-error",
        "detail": "internal error; see the appliance log",
        "details": {},
    }
    assert "Traceback" not in response.text and "call_record" not in response.text


def test_openapi_names_every_operation(client: TestClient) -> None:
    paths = client.get("/api/v1/schema/openapi.json").json()["paths"]

    operations = [op["operationId"] for item in paths.values() for op in item.values()]
    assert {"listCalls", "getCall", "getHealth"} <= set(operations)
    assert len(operations) == len(set(operations)) and all(operations)
    error = paths["/api/v1/calls/{call_id}"]["get"]["responses"]["404"]
    assert error["content"]["application/json"]["schema"]["$ref"].endswith("ErrorOut")
