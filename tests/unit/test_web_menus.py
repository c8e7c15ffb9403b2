"""IVR menus (IVR语音导航) over the API and the pages, against a real SQLite
database and the published plan: keys and destinations checked like the site
file's, a hotline routed to a menu, deletes refused while something leads to
the menu, and another tenant's menus out of reach."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from appliance import settings as settings_mod
from appliance.routing.plan import decode
from appliance.settings import Settings
from appliance.tables import Menu
from tests.unit.web_helpers import Session, setup_site
from web.app import create_app

MAIN = {
    "name": "main",
    "keys": {"2": "ext:1002", "1": "group:sales", "0": "voicemail"},
    "on_timeout": "ext:1001",
    "timeout": 8,
    "retries": 1,
}


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Settings, TestClient]]:
    monkeypatch.setattr(settings_mod, "_current", None)
    s = setup_site(tmp_path, monkeypatch)
    with TestClient(app=create_app(s)) as c:
        yield s, c


@pytest.fixture
def acme(app: tuple[Settings, TestClient]) -> Session:
    return Session(app[1], "owner@acme.example")


@pytest.fixture
def globex_menu(app: tuple[Settings, TestClient], acme: Session) -> None:
    """Globex has a menu `welcome` (made by the operator; acme logs back in)."""
    operator = Session(app[1], "root@linebox.example")
    response = operator.post(
        "/api/v1/menus",
        json={"name": "welcome", "keys": {"1": "ext:2001"}, "tenant": "globex"},
    )
    assert response.status_code == 201, response.text
    acme.relogin()


def menus_of(s: Settings, tenant: str):  # type: ignore[no-untyped-def]
    return decode(s.paths.plan_file.read_bytes()).tenants[tenant].menus


def test_create_publishes_the_menu_and_a_hotline_can_route_to_it(
    app: tuple[Settings, TestClient], acme: Session
) -> None:
    response = acme.post("/api/v1/menus", json=MAIN)

    assert response.status_code == 201, response.text
    body = response.json()
    assert list(body["keys"]) == ["1", "2", "0"]  # keypad order
    assert (body["prompt"], body["dial_extensions"], body["timeout"]) == ("", False, 8)
    menu = menus_of(app[0], "acme")["main"]
    assert (menu.keys["1"], menu.on_timeout, menu.retries) == ("group:sales", "ext:1001", 1)

    routed = acme.patch("/api/v1/hotlines/4006668888", json={"routes": [{"to": "menu:main"}]})
    assert routed.status_code == 200, routed.text
    result = acme.post(
        "/api/v1/hotlines/4006668888/simulate", json={"caller": "13800138000"}
    ).json()
    assert (result["action"], result["target"]) == ("menu", "menu:main")


def test_owner_lists_their_menus(acme: Session, globex_menu: None) -> None:
    acme.post("/api/v1/menus", json=MAIN)

    assert [m["name"] for m in acme.get("/api/v1/menus").json()] == ["main"]


def test_update_replaces_the_keys(app: tuple[Settings, TestClient], acme: Session) -> None:
    acme.post("/api/v1/menus", json=MAIN)

    response = acme.patch(
        "/api/v1/menus/main",
        json={"keys": {"#": "menu:main", "9": " tel:13800138000 "}, "dial_extensions": True},
    )

    assert response.status_code == 200, response.text
    assert response.json()["keys"] == {"9": "tel:13800138000", "#": "menu:main"}
    menu = menus_of(app[0], "acme")["main"]
    assert menu.dial_extensions and menu.on_timeout == "ext:1001"


@pytest.mark.parametrize(
    ("change", "key", "text"),
    [
        ({"name": "a b"}, "name", "is not a name"),
        ({"keys": {}}, "keys", "needs keys or dial_extensions"),
        ({"keys": {"a": "ext:1001"}}, "keys.a", "is not a key"),
        ({"keys": {"11": "ext:1001"}}, 'keys."11"', "is not a key"),
        ({"keys": dict.fromkeys("0123456789*", "ext:1001")}, "keys", "at most 10"),
        ({"keys": {"1": "ext:2001"}}, 'keys."1"', "not an extension of tenant 'acme'"),
        ({"keys": {"1": "group:nope"}}, 'keys."1"', "not a group"),
        ({"keys": {"1": "tel:0044123456789"}}, 'keys."1"', "a number abroad"),
        ({"on_timeout": "nowhere"}, "on_timeout", "is not a destination"),
        ({"timeout": 0}, "timeout", "1 to 60"),
        ({"retries": 11}, "retries", "0 to 10"),
        ({"prompt": "welcome"}, "prompt", "is not a prompt"),
    ],
)
def test_invalid_menus_are_explained_and_nothing_is_written(
    app: tuple[Settings, TestClient],
    acme: Session,
    change: dict[str, object],
    key: str,
    text: str,
) -> None:
    before = app[0].paths.plan_file.read_bytes()
    response = acme.post("/api/v1/menus", json={**MAIN, **change})

    assert response.status_code == 400, response.text
    error = response.json()
    assert error["error_id"] == "invalid-change"
    assert key in [e["key"] for e in error["details"]["errors"]], error
    assert text in error["detail"]
    assert Menu.count().run_sync() == 0
    assert app[0].paths.plan_file.read_bytes() == before


def test_delete_is_refused_while_a_route_or_another_menu_leads_to_it(
    app: tuple[Settings, TestClient], acme: Session
) -> None:
    acme.post("/api/v1/menus", json={**MAIN, "keys": {**MAIN["keys"], "*": "menu:main"}})
    acme.post("/api/v1/menus", json={"name": "sub", "keys": {"9": "menu:main"}})
    acme.patch("/api/v1/hotlines/4006668888", json={"routes": [{"to": "menu:main"}]})

    response = acme.delete("/api/v1/menus/main")

    assert response.status_code == 400
    assert response.json()["details"]["errors"] == [
        {
            "key": "hotlines[1].routes[0]",
            "message": "hotline 4006668888, route 1, sends calls to menu:main",
        },
        {"key": 'menus[1].keys."9"', "message": "key 9 of menu sub leads to menu:main"},
    ]
    # Its own `*` back to itself does not count.
    acme.delete("/api/v1/menus/sub")
    acme.patch("/api/v1/hotlines/4006668888", json={"routes": [{"to": "ext:1001"}]})
    assert acme.delete("/api/v1/menus/main").status_code == 204
    assert "main" not in menus_of(app[0], "acme")


def test_another_tenants_menu_is_not_found_everywhere(acme: Session, globex_menu: None) -> None:
    for response in (
        acme.get("/api/v1/menus/welcome"),
        acme.get("/api/v1/menus/welcome?tenant=globex"),
        acme.patch("/api/v1/menus/welcome", json={"timeout": 9}),
        acme.delete("/api/v1/menus/welcome"),
        acme.get("/menus/welcome?tenant=globex"),
        acme.post("/menus/welcome", data={"_csrf": acme.csrf, "key_1": "ext:1001"}),
        acme.post("/menus/welcome/delete", data={"_csrf": acme.csrf}),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["error_id"] == "menu-not-found"
    assert "welcome" not in acme.get("/menus").text
    # Nor can an acme destination reach it.
    refused = acme.post("/api/v1/menus", json={"name": "m", "keys": {"1": "menu:welcome"}})
    assert refused.status_code == 400
    created = acme.post(
        "/api/v1/menus", json={"name": "m", "keys": {"1": "ext:2001"}, "tenant": "globex"}
    )
    assert created.status_code == 404
    assert Menu.select().where(Menu.name == "welcome").first().run_sync()["timeout"] == 5


def test_pages_create_edit_keep_what_was_typed_and_delete(
    app: tuple[Settings, TestClient], acme: Session
) -> None:
    page = acme.get("/menus")
    assert page.status_code == 200 and "IVR语音导航" in page.text

    created = acme.post(
        "/menus",
        data={
            "_csrf": acme.csrf,
            "name": "main",
            "timeout": "5",
            "retries": "2",
            "key_1": "group:sales",
            "key_star": "ext:1002",
            "key_hash": "",
        },
        follow_redirects=False,
    )
    assert created.status_code == 303, created.text
    assert created.headers["location"] == "/menus/main?tenant=acme"
    menu = acme.get("/api/v1/menus/main").json()
    assert menu["keys"] == {"1": "group:sales", "*": "ext:1002"}

    bad = acme.post(
        "/menus/main",
        data={"_csrf": acme.csrf, "key_1": "group:sales", "key_2": "ext:9", "timeout": "5"},
    )
    assert bad.status_code == 400 and "keys.&#34;2&#34;" in bad.text
    assert 'value="ext:9"' in bad.text  # what was typed stays on the page

    saved = acme.post(
        "/menus/main",
        data={
            "_csrf": acme.csrf,
            "key_1": "group:sales",
            "key_hash": "voicemail",
            "dial_extensions": "on",
            "timeout": "10",
            "retries": "3",
            "on_timeout": "ext:1001",
        },
    )
    assert saved.status_code == 200 and "已保存" in saved.text
    plan_menu = menus_of(app[0], "acme")["main"]
    assert (plan_menu.keys, plan_menu.timeout, plan_menu.dial_extensions) == (
        {"1": "group:sales", "#": "voicemail"},
        10,
        True,
    )
    gone = acme.post("/menus/main/delete", data={"_csrf": acme.csrf}, follow_redirects=False)
    assert gone.status_code == 303
    assert acme.get("/api/v1/menus/main").status_code == 404
