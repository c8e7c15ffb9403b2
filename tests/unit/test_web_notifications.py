"""Notifications (`/api/v1/notifications`, `/notifications`), read-only, on a
real SQLite database: where each kind of notice goes (as the outbox decides
it from the site file's `[tenants.notify]`), the gateways' status, and the
notices sent, never another tenant's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from litestar.testing import TestClient

from appliance import settings as settings_mod
from appliance.tables import Gateway, Notice, Tenant
from tests.unit.web_helpers import SITE, Session, csrf_of, setup_site
from web.app import create_app

NOTIFY_SITE = SITE.replace(
    '[[tenants.hotlines]]\nnumber = "4001234567"',
    '[tenants.notify]\nsms = "13800000000"\nemail = "boss@acme.example"\n'
    "missed_call_sms = true\n\n"
    '[[tenants.hotlines]]\nnumber = "4001234567"',
    1,
).replace(
    '[[tenants.hotlines]]\nnumber = "4007654321"',
    '[tenants.notify]\nsms = "13911112222"\n\n[[tenants.hotlines]]\nnumber = "4007654321"',
    1,
)
NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def tenant_id(slug: str) -> int:
    return int(Tenant.select(Tenant.id).where(Tenant.slug == slug).first().run_sync()["id"])


def notice(n: int, tenant: int, kind: str, channel: str, to: str, state: str) -> Notice:
    return Notice(
        key=f"k{n}",
        tenant=tenant,
        kind=kind,
        channel=channel,
        to=to,
        body="…",
        state=state,
        attempts=1,
        created_at=NOW + timedelta(minutes=n),
    )


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setattr(settings_mod, "_current", None)
    s = setup_site(tmp_path, monkeypatch, NOTIFY_SITE)
    acme, globex = tenant_id("acme"), tenant_id("globex")
    Gateway.insert(
        Gateway(channel="email", kind="smtp", config={"host": "mail.example"}, last_ok_at=NOW),
        Gateway(
            channel="sms",
            kind="webhook",
            config={"url": "https://10.0.0.5/sms", "secret": "s3cret"},
            last_ok_at=NOW,
            last_error="connection refused by 10.0.0.5",
            last_error_at=NOW + timedelta(hours=1),
        ),
    ).run_sync()
    Notice.insert(
        notice(1, acme, "missed_call", "sms", "13800000000", "sent"),
        notice(2, acme, "voicemail", "email", "boss@acme.example", "retrying"),
        notice(3, acme, "low_balance", "sms", "13800000000", "failed"),
        notice(4, globex, "missed_call", "sms", "13911112222", "sent"),
    ).run_sync()
    with TestClient(app=create_app(s)) as c:
        yield c


def test_owner_sees_where_their_notices_go(client: TestClient) -> None:
    acme = Session(client, "owner@acme.example")

    body = acme.get("/api/v1/notifications").json()
    assert (body["sms"], body["email"], body["missed_call_sms"]) == (
        "13800000000",
        "boss@acme.example",
        True,
    )
    routes = {
        r["kind"]: [(d["channel"], d["to"]) for d in r["destinations"]] for r in body["routes"]
    }
    both = [("sms", "13800000000"), ("email", "boss@acme.example")]
    assert routes == {
        "missed_call": [("sms", "13800000000")],
        "voicemail": both,
        "low_balance": both,
        "capped": both,
        "suspended": both,
        "reclaim": both,
    }
    gateways = {g["channel"]: (g["kind"], g["status"], g["last_error"]) for g in body["gateways"]}
    assert gateways == {"email": ("smtp", "ok", ""), "sms": ("webhook", "failing", "")}
    assert "s3cret" not in acme.get("/api/v1/notifications").text
    assert [(n["kind"], n["state"]) for n in body["recent"]] == [
        ("low_balance", "failed"),
        ("voicemail", "retrying"),
        ("missed_call", "sent"),
    ]
    failed = acme.get("/api/v1/notifications/notices", params={"state": "failed"}).json()
    assert failed["total"] == 1 and failed["items"][0]["kind"] == "low_balance"
    bad = acme.get("/api/v1/notifications/notices", params={"state": "lost"})
    assert bad.status_code == 400 and bad.json()["error_id"] == "invalid-request"


def test_a_tenant_without_missed_call_sms_gets_none(client: TestClient) -> None:
    globex = Session(client, "owner@globex.example")

    body = globex.get("/api/v1/notifications").json()
    routes = {r["kind"]: r["destinations"] for r in body["routes"]}
    assert routes["missed_call"] == []
    assert routes["voicemail"] == [{"channel": "sms", "to": "13911112222"}]
    assert [n["to"] for n in body["recent"]] == ["13911112222"]


def test_another_tenants_notices_never_show(client: TestClient) -> None:
    acme = Session(client, "owner@acme.example")

    for url in ("/api/v1/notifications", "/api/v1/notifications/notices", "/notifications"):
        response = acme.get(url, params={"tenant": "globex"})
        assert response.status_code == 404 and response.json()["error_id"] == "tenant-not-found"
    assert "13911112222" not in acme.get("/api/v1/notifications/notices").text
    assert "13911112222" not in acme.get("/notifications").text

    operator = Session(client, "root@linebox.example")
    assert operator.get("/api/v1/notifications").status_code == 400  # which tenant?
    body = operator.get("/api/v1/notifications", params={"tenant": "globex"}).json()
    sms = next(g for g in body["gateways"] if g["channel"] == "sms")
    assert sms["last_error"] == "connection refused by 10.0.0.5"
    assert Session(client, "agent@acme.example").get("/api/v1/notifications").status_code == 403


def test_notifications_page(client: TestClient) -> None:
    acme = Session(client, "owner@acme.example")

    page = acme.get("/notifications").text
    assert "<h1>通知</h1>" in page
    assert "未接来电短信" in page and "短信 13800000000; 邮件 boss@acme.example" in page
    assert "故障" in page and "10.0.0.5" not in page

    client.get("/lang/en")
    english = acme.get("/notifications").text
    assert "<h1>Notifications</h1>" in english and "failing" in english


def test_owner_changes_where_notices_go(client: TestClient) -> None:
    acme = Session(client, "owner@acme.example")

    changed = acme.patch(
        "/api/v1/notifications", json={"sms": "13700000000", "missed_call_sms": False}
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["sms"], body["email"], body["missed_call_sms"]) == (
        "13700000000",
        "boss@acme.example",
        False,
    )
    assert {r["kind"]: r["destinations"] for r in body["routes"]}["missed_call"] == []
    notify = Tenant.select(Tenant.notify).where(Tenant.slug == "acme").first().run_sync()
    assert '"13700000000"' in str(notify["notify"])
    entry = next(e for e in acme.get("/api/v1/audit").json()["items"] if e["target"] == "notify")
    assert entry["action"] == "update" and "13700000000" in str(entry["detail"])
    # The site file, exported, says the same.
    operator = Session(client, "root@linebox.example")
    assert 'sms = "13700000000"' in operator.get("/api/v1/site").text

    acme.relogin()  # the client is the operator's now
    assert acme.patch("/api/v1/notifications", json={"email": ""}).status_code == 200
    assert acme.get("/api/v1/notifications").json()["email"] == ""


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"sms": "12ab"}, "sms"),
        ({"email": "not an address"}, "email"),
        ({"sms": "", "missed_call_sms": True}, "missed_call_sms"),
    ],
)
def test_a_bad_change_is_explained_and_changes_nothing(
    client: TestClient, change: dict[str, object], key: str
) -> None:
    acme = Session(client, "owner@acme.example")

    response = acme.patch("/api/v1/notifications", json=change)
    assert response.status_code == 400 and response.json()["error_id"] == "invalid-change"
    assert [e["key"] for e in response.json()["details"]["errors"]] == [key]
    body = acme.get("/api/v1/notifications").json()
    assert (body["sms"], body["email"], body["missed_call_sms"]) == (
        "13800000000",
        "boss@acme.example",
        True,
    )


def test_an_owner_cannot_change_another_tenant(client: TestClient) -> None:
    acme = Session(client, "owner@acme.example")

    response = acme.patch(
        "/api/v1/notifications", params={"tenant": "globex"}, json={"sms": "13700000000"}
    )
    assert response.status_code == 404
    globex = Session(client, "owner@globex.example")
    assert globex.get("/api/v1/notifications").json()["sms"] == "13911112222"


def test_notifications_page_saves_and_explains(client: TestClient) -> None:
    acme = Session(client, "owner@acme.example")
    token = csrf_of(acme.get("/notifications").text)

    saved = client.post(
        "/notifications",
        data={"_csrf": token, "sms": "13700000000", "email": "boss@acme.example"},
    )
    assert saved.status_code == 200 and "已保存" in saved.text
    assert acme.get("/api/v1/notifications").json()["missed_call_sms"] is False
    bad = client.post(
        "/notifications", data={"_csrf": token, "sms": "12ab", "missed_call_sms": "on"}
    )
    assert bad.status_code == 400 and "12ab" in bad.text
    assert acme.get("/api/v1/notifications").json()["sms"] == "13700000000"
