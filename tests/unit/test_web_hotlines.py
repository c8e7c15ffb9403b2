"""Hotline settings and the routing simulator, over the API and the pages,
against a real SQLite database and the published plan file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from appliance import settings as settings_mod
from appliance.routing.plan import decode
from appliance.settings import Settings
from appliance.tables import AuditEntry, Hotline
from tests.unit.web_helpers import Session, setup_site
from web.app import create_app


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Settings, TestClient]]:
    monkeypatch.setattr(settings_mod, "_current", None)
    s = setup_site(tmp_path, monkeypatch)
    with TestClient(app=create_app(s)) as c:
        yield s, c


@pytest.fixture
def acme(app: tuple[Settings, TestClient]) -> Session:
    return Session(app[1], "owner@acme.example")


def plan(s: Settings):  # type: ignore[no-untyped-def]
    return decode(s.paths.plan_file.read_bytes())


def test_owner_lists_only_their_hotlines_with_number_classes(acme: Session) -> None:
    hotlines = acme.get("/api/v1/hotlines").json()

    assert [h["number"] for h in hotlines] == ["4001234567", "4006668888"]
    first = hotlines[0]
    assert (first["number_class"], first["number_pattern"]) == ("B", "ABC")
    assert first["routes"][0] == {"when": {"schedule": "office"}, "to": "group:sales"}
    assert first["blacklist"] == ["0571*"]


def test_operator_lists_every_tenants_hotlines(app: tuple[Settings, TestClient]) -> None:
    operator = Session(app[1], "root@linebox.example")
    numbers = {h["number"]: h["tenant"] for h in operator.get("/api/v1/hotlines").json()}
    assert numbers == {"4001234567": "acme", "4006668888": "acme", "4007654321": "globex"}


def test_another_tenants_hotline_is_not_found_for_every_verb(acme: Session) -> None:
    for response in (
        acme.get("/api/v1/hotlines/4007654321"),
        acme.patch("/api/v1/hotlines/4007654321", json={"name": "mine now"}),
        acme.post("/api/v1/hotlines/4007654321/simulate", json={"caller": "13800138000"}),
        acme.get("/hotlines/4007654321"),
        acme.post("/hotlines/4007654321", data={"name": "x", "_csrf": acme.csrf}),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["error_id"] == "hotline-not-found"
    assert (
        Hotline.select(Hotline.name)
        .where(Hotline.number == "4007654321")
        .first()
        .run_sync()["name"]
        == "Globex main"
    )


def test_update_writes_the_database_and_publishes_the_plan(
    app: tuple[Settings, TestClient], acme: Session
) -> None:
    s = app[0]
    response = acme.patch(
        "/api/v1/hotlines/4001234567",
        json={
            "routes": [{"to": "ext:1002"}],
            "blacklist": ["13900000000", "0571*"],
            "fallback": {"no_answer": ["voicemail"]},
        },
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["routes"] == [{"to": "ext:1002"}]
    assert body["name"] == "Acme sales"  # untouched
    hotline = plan(s).hotlines["4001234567"]
    assert [r.to for r in hotline.routes] == ["ext:1002"]
    assert "13900000000" in hotline.blacklist


def test_invalid_update_explains_each_problem_and_writes_nothing(
    app: tuple[Settings, TestClient], acme: Session
) -> None:
    before = app[0].paths.plan_file.read_bytes()
    response = acme.patch(
        "/api/v1/hotlines/4001234567",
        json={
            "routes": [{"to": "group:nope"}, {"split": {"ext:1001": 60, "ext:1002": 30}}],
            "blacklist": ["*571"],
            "pin": "12",
        },
    )

    assert response.status_code == 400
    body = response.json()
    assert body["error_id"] == "invalid-change"
    keys = {e["key"]: e["message"] for e in body["details"]["errors"]}
    assert "is not a group of tenant 'acme'" in keys["routes[0].to"]
    assert "add up to 90" in keys["routes[1].split"]
    assert "blacklist[0]" in keys and "pin" in keys
    assert acme.get("/api/v1/hotlines/4001234567").json()["routes"][0]["to"] == "group:sales"
    assert app[0].paths.plan_file.read_bytes() == before


def test_a_destination_of_another_tenant_is_refused(acme: Session) -> None:
    response = acme.patch("/api/v1/hotlines/4001234567", json={"routes": [{"to": "ext:2001"}]})

    assert response.status_code == 400
    assert "not an extension of tenant 'acme'" in response.text


@pytest.mark.parametrize(
    "body",
    [
        {"routes": "ext:1001"},
        {"name": 5},
        {"unknown": 1},
        {"routes": [{"to": "ext:1001", "when": {"weekday": "mon"}}]},
        {"monthly_call_cap": "many"},
    ],
)
def test_malformed_updates_are_400(acme: Session, body: dict[str, object]) -> None:
    response = acme.patch("/api/v1/hotlines/4001234567", json=body)

    assert response.status_code == 400, response.text


def test_simulator_during_and_after_office_hours(acme: Session) -> None:
    monday = acme.post(
        "/api/v1/hotlines/4001234567/simulate",
        json={"caller": "13800138000", "at": "2026-03-02T10:00"},
    ).json()
    saturday = acme.post(
        "/api/v1/hotlines/4001234567/simulate",
        json={"caller": "13800138000", "at": "2026-03-07T21:00"},
    ).json()

    assert (monday["action"], monday["target"]) == ("ring", "group:sales")
    assert [t["number"] for t in monday["ring"]] == ["1001", "1002"]
    assert (saturday["action"], saturday["target"]) == ("ring", "ext:1002")
    assert saturday["at"] == "2026-03-07T21:00+08:00"
    assert saturday["trace"]


def test_simulator_shows_the_blacklist_refusal(acme: Session) -> None:
    result = acme.post(
        "/api/v1/hotlines/4001234567/simulate", json={"caller": "057188886666"}
    ).json()

    assert (result["action"], result["sip_code"]) == ("reject", 603)


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ({"caller": "abc"}, "caller"),
        ({"caller": "13800138000", "at": "Saturday night"}, "at"),
        ({"caller": "13800138000", "sequence": -1}, "sequence"),
    ],
)
def test_simulator_input_errors(acme: Session, body: dict[str, object], key: str) -> None:
    response = acme.post("/api/v1/hotlines/4001234567/simulate", json=body)

    assert response.status_code == 400
    assert response.json()["detail"].startswith(key)


def test_hotline_page_edit_changes_destinations(
    app: tuple[Settings, TestClient], acme: Session
) -> None:
    page = acme.get("/hotlines/4001234567")
    assert page.status_code == 200 and 'value="group:sales"' in page.text

    form = {
        "_csrf": acme.csrf,
        "name": "Acme sales",
        "enabled": "on",
        "route_0_schedule": "office",
        "route_0_to": "ext:1001",
        "route_1_to": "",
        "route_1_split": "ext:1001=50, ext:1002=50",
        "route_2_to": "",
        "blacklist": "0571*\n13900000000, 13900000001",
        "fallback_no_answer": "voicemail",
    }
    saved = acme.post("/hotlines/4001234567", data=form)

    assert saved.status_code == 200, saved.text
    assert "已保存" in saved.text
    hotline = acme.get("/api/v1/hotlines/4001234567").json()
    assert [r.get("to") or r.get("split") for r in hotline["routes"]] == [
        "ext:1001",
        {"ext:1001": 50, "ext:1002": 50},
    ]
    assert hotline["blacklist"] == ["0571*", "13900000000", "13900000001"]
    assert hotline["fallback"] == {"no_answer": ["voicemail"]}


def test_hotline_page_shows_what_to_fix(acme: Session) -> None:
    form = {"_csrf": acme.csrf, "route_0_to": "group:nope", "route_0_split": ""}
    response = acme.post("/hotlines/4001234567", data=form)

    assert response.status_code == 400
    assert "routes[0].to" in response.text and "group:nope" in response.text


def test_hotline_page_simulator(acme: Session) -> None:
    page = acme.get("/hotlines/4001234567?caller=13800138000&at=2026-03-07T21:00")

    assert page.status_code == 200
    assert "ext:1002" in page.text and "data-simulation" in page.text


def test_page_form_without_csrf_is_refused(acme: Session) -> None:
    response = acme.client.post("/hotlines/4001234567", data={"name": "x"})

    assert response.status_code == 403


def test_caller_id_is_chosen_over_the_api_and_the_page_with_the_audit_log(
    app: tuple[Settings, TestClient], acme: Session
) -> None:
    s = app[0]
    assert acme.get("/api/v1/hotlines/4001234567").json()["caller_id"] == "caller"
    bad = acme.patch("/api/v1/hotlines/4001234567", json={"caller_id": "nobody"})
    assert bad.status_code == 400 and "caller_id" in bad.text
    shown = acme.patch("/api/v1/hotlines/4001234567", json={"caller_id": "hotline"})
    assert shown.status_code == 200, shown.text
    assert shown.json()["caller_id"] == "hotline"
    assert plan(s).hotlines["4001234567"].caller_id == "hotline"
    (entry,) = (
        AuditEntry.select()
        .where(AuditEntry.target == "hotline:4001234567", AuditEntry.action == "update")
        .run_sync()
    )
    assert "caller_id" in str(entry["detail"]) and "hotline" in str(entry["detail"])

    page = acme.get("/hotlines/4001234567")
    assert "来电显示" in page.text and "显示主叫号码" in page.text and "显示400号码" in page.text
    saved = acme.post(
        "/hotlines/4001234567",
        data={"_csrf": acme.csrf, "name": "Acme", "enabled": "on", "caller_id": "caller"},
    )
    assert saved.status_code == 200, saved.text
    assert Hotline.select(Hotline.caller_id).where(Hotline.number == "4001234567").run_sync() == [
        {"caller_id": "caller"}
    ]
    # Another tenant's hotline stays out of reach.
    theirs = acme.patch("/api/v1/hotlines/4007654321", json={"caller_id": "hotline"})
    assert theirs.status_code == 404
    assert Hotline.select(Hotline.caller_id).where(Hotline.number == "4007654321").run_sync() == [
        {"caller_id": "caller"}
    ]
