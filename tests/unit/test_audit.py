"""The audit log: logins, logouts and configuration changes are written with
who, when, from where and what changed, never a secret; an operator reads
them all, an owner only their tenant's. Against a real SQLite database."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from appliance import audit
from appliance import settings as settings_mod
from appliance.auth import totp
from appliance.settings import Settings
from appliance.tables import AuditEntry
from tests.unit.web_helpers import PASSWORD, Session, csrf_of, setup_site
from web.app import create_app

OPERATOR = "root@linebox.example"


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setattr(settings_mod, "_current", None)
    s: Settings = setup_site(tmp_path, monkeypatch)
    with TestClient(app=create_app(s)) as c:
        yield c


def entries(**where: Any) -> list[dict[str, Any]]:
    query = AuditEntry.select().order_by(AuditEntry._meta.primary_key)
    rows = query.run_sync()
    out = []
    for row in rows:
        row["detail"] = (
            json.loads(row["detail"]) if isinstance(row["detail"], str) else row["detail"]
        )
        if all(row[k] == v for k, v in where.items()):
            out.append(row)
    return out


def test_diff_lists_changed_fields_and_hides_secrets() -> None:
    before = {"name": "Acme", "pin": "1234", "routes": [{"to": "ext:1001"}], "same": 1}
    after = {"name": "Acme sales", "pin": "9999", "routes": [{"to": "ext:1002"}], "same": 1}

    changes = audit.diff(before, after)

    assert changes == {
        "name": ["Acme", "Acme sales"],
        "pin": [audit.SECRET, audit.SECRET],
        "routes": [[{"to": "ext:1001"}], [{"to": "ext:1002"}]],
    }
    assert "1234" not in json.dumps(changes) and "9999" not in json.dumps(changes)


def test_secrets_nested_in_details_are_never_written(client: TestClient) -> None:
    asyncio.run(
        audit.record(
            "create",
            actor="root@linebox.example",
            target="extension:1003",
            detail={"extension": {"number": "1003", "sip_password": "hunter2-secret"}},
            changes={"password": ["old-one", "new-one"]},
        )
    )
    (row,) = entries(target="extension:1003")
    text = json.dumps(row["detail"])
    assert "hunter2" not in text and "old-one" not in text and "new-one" not in text
    assert row["detail"]["extension"]["number"] == "1003"


def test_login_success_failure_and_lock_out_are_logged_with_the_address(
    client: TestClient,
) -> None:
    token = csrf_of(client.get("/login").text)
    client.post("/login", data={"login": "nobody@x.example", "password": "x", "_csrf": token})
    for _ in range(5):
        client.post("/login", data={"login": "owner@acme.example", "password": "x", "_csrf": token})
    locked = client.post(
        "/login", data={"login": "owner@acme.example", "password": PASSWORD, "_csrf": token}
    )
    assert locked.status_code == 429
    Session(client, "owner@globex.example")

    failed = entries(action="login_failed")
    assert [e["actor"] for e in failed] == ["nobody@x.example"] + ["owner@acme.example"] * 5
    assert failed[0]["tenant"] is None and failed[1]["tenant"] is not None
    assert all(e["source"] == "testclient" for e in failed)
    assert [e["actor"] for e in entries(action="login_locked")] == ["owner@acme.example"]
    (ok,) = entries(action="login")
    assert ok["actor"] == "owner@globex.example" and ok["target"] == "user:owner@globex.example"
    assert abs(ok["at"] - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)
    assert PASSWORD not in json.dumps([e["detail"] for e in entries()])


def test_logout_password_token_changes_are_logged(client: TestClient) -> None:
    owner = Session(client, "owner@acme.example")
    new_password = "a new password 2"
    assert (
        owner.post(
            "/api/v1/me/password",
            json={"old_password": PASSWORD, "new_password": new_password},
        ).status_code
        == 204
    )
    created = owner.post("/api/v1/me/tokens", json={"name": "crm"}).json()
    token_id = created["token"]["id"]
    assert owner.delete(f"/api/v1/me/tokens/{token_id}").status_code == 204
    owner.post("/logout", data={"_csrf": owner.csrf})

    actions = [e["action"] for e in entries(actor="owner@acme.example")]
    assert actions == ["login", "password_change", "token_create", "token_revoke", "logout"]
    (made,) = entries(action="token_create")
    assert made["target"] == f"api-token:{token_id}" and made["detail"] == {"name": "crm"}
    text = json.dumps([e["detail"] for e in entries()])
    assert new_password not in text and created["secret"] not in text


def test_a_hotline_change_records_before_and_after(client: TestClient) -> None:
    owner = Session(client, "owner@acme.example")
    response = owner.patch("/api/v1/hotlines/4001234567", json={"name": "Acme 销售", "pin": "4321"})
    assert response.status_code == 200, response.text

    (entry,) = entries(action="update")
    assert entry["target"] == "hotline:4001234567"
    assert entry["detail"]["changes"] == {
        "name": ["Acme sales", "Acme 销售"],
        "pin": ["", audit.SECRET],
    }
    # A refused change writes nothing.
    bad = owner.patch("/api/v1/hotlines/4001234567", json={"routes": [{"to": "ext:9999"}]})
    assert bad.status_code == 400
    assert len(entries(action="update")) == 1


def test_an_applied_site_file_is_logged_a_preview_is_not(client: TestClient) -> None:
    operator = Session(client, OPERATOR)
    text = operator.get("/api/v1/site").text.replace('name = "Globex"', 'name = "Globex Ltd"')
    assert operator.post("/api/v1/site/preview", json={"text": text}).status_code == 200
    assert entries(action="apply") == []
    assert operator.put("/api/v1/site", json={"text": text}).status_code == 200

    (entry,) = entries(action="apply")
    assert entry["actor"] == OPERATOR and entry["target"] == "site-file"
    assert entry["detail"]["changed"] >= 1
    assert any("globex" in line for line in entry["detail"]["changes"])


def test_operator_reads_every_entry_owner_only_their_tenants(client: TestClient) -> None:
    acme = Session(client, "owner@acme.example")
    acme.patch("/api/v1/hotlines/4001234567", json={"name": "Acme A"})
    globex = Session(client, "owner@globex.example")
    globex.patch("/api/v1/hotlines/4007654321", json={"name": "Globex G"})
    operator = Session(client, OPERATOR)
    operator.patch("/api/v1/hotlines/4007654321", json={"name": "Globex by root"})

    everything = operator.get("/api/v1/audit", params={"limit": 500}).json()
    targets = {(e["actor"], e["target"]) for e in everything["items"]}
    assert ("owner@acme.example", "hotline:4001234567") in targets
    assert (OPERATOR, "hotline:4007654321") in targets
    assert everything["total"] == len(everything["items"])

    globex = Session(client, "owner@globex.example")
    seen = globex.get("/api/v1/audit", params={"limit": 500}).json()["items"]
    assert seen and all(e["tenant"] == "globex" for e in seen)
    # The operator's change to globex's hotline is globex's to see; acme's is not.
    assert any(e["actor"] == OPERATOR and e["action"] == "update" for e in seen)
    assert not any("acme" in e["actor"] or e["target"] == "hotline:4001234567" for e in seen)
    page = globex.get("/audit")
    assert page.status_code == 200
    assert "Globex by root" in page.text and "owner@acme.example" not in page.text
    # Filters narrow, they never widen.
    assert globex.get("/api/v1/audit", params={"actor": "owner@acme.example"}).json()["items"] == []


def test_agents_may_not_read_the_audit_log(client: TestClient) -> None:
    agent = Session(client, "agent@acme.example")
    assert agent.get("/api/v1/audit").status_code == 403
    assert agent.get("/audit").status_code == 403


def test_a_bad_filter_says_what_to_fix(client: TestClient) -> None:
    operator = Session(client, OPERATOR)
    response = operator.get("/api/v1/audit", params={"since": "yesterday"})
    assert response.status_code == 400
    assert "since" in response.json()["detail"]


def test_two_step_login_turned_on_and_off_is_logged_without_its_secret(
    client: TestClient,
) -> None:
    owner = Session(client, "owner@acme.example")
    secret = totp.new_secret()
    on = owner.post(
        "/account/totp",
        data={
            "_csrf": owner.csrf,
            "secret": secret,
            "code": totp.code_at(secret, totp.now_step() - 1),
        },
    )
    assert on.status_code == 200, on.text
    off = owner.post(
        "/account/totp/disable",
        data={"_csrf": owner.csrf, "code": totp.code_at(secret, totp.now_step())},
    )
    assert off.status_code == 200, off.text

    actions = [e["action"] for e in entries(actor="owner@acme.example")]
    assert actions == ["login", "totp_enable", "totp_disable"]
    assert secret not in json.dumps([e["detail"] for e in entries()])
