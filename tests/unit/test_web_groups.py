"""Groups (呼叫组) over the API and the pages, against a real SQLite database
and the published plan file: the site file's rules (toll-fraud limits on
`tel:` members included), deletes refused while something rings the group,
and another tenant's groups out of reach."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from appliance import settings as settings_mod
from appliance.routing.plan import decode
from appliance.settings import Settings
from appliance.tables import Group
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


@pytest.fixture
def globex_support(app: tuple[Settings, TestClient], acme: Session) -> None:
    """Globex has a group `support` (made by the operator; acme logs back in)."""
    operator = Session(app[1], "root@linebox.example")
    response = operator.post(
        "/api/v1/groups", json={"name": "support", "members": ["ext:2001"], "tenant": "globex"}
    )
    assert response.status_code == 201, response.text
    acme.relogin()


def groups_of(s: Settings, tenant: str):  # type: ignore[no-untyped-def]
    return decode(s.paths.plan_file.read_bytes()).tenants[tenant].groups


def test_owner_lists_their_groups(acme: Session, globex_support: None) -> None:
    response = acme.get("/api/v1/groups")

    assert response.status_code == 200
    assert response.json() == [
        {
            "tenant": "acme",
            "name": "sales",
            "strategy": "sequential",
            "ring_timeout": 15,
            "members": ["ext:1001", "ext:1002"],
            "announce_agent_id": False,
            "survey": False,
            "queue": None,
            "sticky_days": 30,
        }
    ]


def test_create_publishes_the_group(app: tuple[Settings, TestClient], acme: Session) -> None:
    response = acme.post(
        "/api/v1/groups",
        json={
            "name": "service",
            "members": ["ext:1002", "tel:13800138000"],
            "strategy": "ring_all",
            "ring_timeout": 30,
            "announce_agent_id": True,
            "survey": True,
            "queue": {"max_wait": 120},
        },
    )

    assert response.status_code == 201, response.text
    assert response.json()["queue"] == {"max_wait": 120}
    group = groups_of(app[0], "acme")["service"]
    assert (group.strategy, group.ring_timeout, group.members) == (
        "ring_all",
        30,
        ("ext:1002", "tel:13800138000"),
    )
    assert group.announce_agent_id and group.survey


@pytest.mark.parametrize(
    ("body", "key", "text"),
    [
        ({"name": "x y", "members": ["ext:1001"]}, "name", "is not a name"),
        ({"name": "sales", "members": ["ext:1001"]}, "name", "exists"),
        ({"name": "g", "members": []}, "members", "at least one member"),
        ({"name": "g", "members": ["ext:2001"]}, "members[0]", "not an extension of tenant 'acme'"),
        ({"name": "g", "members": ["group:sales"]}, "members[0]", "only ext:, tel:, hotline:"),
        ({"name": "g", "members": ["ext:1001", "ext:1001"]}, "members[1]", "listed twice"),
        ({"name": "g", "members": ["tel:0044123456789"]}, "members[0]", "a number abroad"),
        ({"name": "g", "members": ["tel:17951013800138000"]}, "members[0]", "premium"),
        ({"name": "g", "members": ["ext:1001"], "strategy": "loud"}, "strategy", "not a strategy"),
        ({"name": "g", "members": ["ext:1001"], "ring_timeout": 2}, "ring_timeout", "5 to 300"),
        (
            {"name": "g", "members": ["ext:1001"], "queue": {"music": "hold"}},
            "queue.music",
            "is not a prompt",
        ),
    ],
)
def test_invalid_groups_are_explained_and_nothing_is_written(
    app: tuple[Settings, TestClient],
    acme: Session,
    body: dict[str, object],
    key: str,
    text: str,
) -> None:
    before = app[0].paths.plan_file.read_bytes()
    response = acme.post("/api/v1/groups", json=body)

    assert response.status_code == 400, response.text
    error = response.json()
    assert error["error_id"] == "invalid-change"
    assert key in [e["key"] for e in error["details"]["errors"]]
    assert text in error["detail"]
    assert Group.count().run_sync() == 1
    assert app[0].paths.plan_file.read_bytes() == before


@pytest.mark.parametrize(
    "body",
    [{"members": "ext:1001"}, {"ring_timeout": "long"}, {"name": "renamed"}, {"survey": "yes"}],
)
def test_malformed_updates_are_400(acme: Session, body: dict[str, object]) -> None:
    response = acme.patch("/api/v1/groups/sales", json=body)

    assert response.status_code == 400, response.text
    assert acme.get("/api/v1/groups/sales").json()["members"] == ["ext:1001", "ext:1002"]


def test_update_changes_strategy_members_and_queue(
    app: tuple[Settings, TestClient], acme: Session
) -> None:
    response = acme.patch(
        "/api/v1/groups/sales",
        json={
            "strategy": "round_robin",
            "ring_timeout": 25,
            "members": ["ext:1002", "ext:1001", "tel:13800138000"],
            "queue": {"max_wait": 60, "music": None},
        },
    )

    assert response.status_code == 200, response.text
    assert response.json()["queue"] == {"max_wait": 60}
    group = groups_of(app[0], "acme")["sales"]
    assert (group.strategy, group.ring_timeout) == ("round_robin", 25)
    assert group.members == ("ext:1002", "ext:1001", "tel:13800138000")

    removed = acme.patch("/api/v1/groups/sales", json={"queue": None})
    assert removed.json()["queue"] is None


def test_delete_is_refused_while_a_hotline_routes_to_the_group(acme: Session) -> None:
    response = acme.delete("/api/v1/groups/sales")

    assert response.status_code == 400
    error = response.json()
    assert error["details"]["errors"] == [
        {
            "key": "hotlines[0].routes[0]",
            "message": "hotline 4001234567, route 1, sends calls to group:sales",
        }
    ]
    assert "still in use" in error["detail"]
    assert acme.get("/api/v1/groups/sales").status_code == 200


def test_delete_an_unused_group(app: tuple[Settings, TestClient], acme: Session) -> None:
    acme.post("/api/v1/groups", json={"name": "spare", "members": ["ext:1001"]})

    assert acme.delete("/api/v1/groups/spare").status_code == 204
    assert acme.get("/api/v1/groups/spare").status_code == 404
    assert "spare" not in groups_of(app[0], "acme")


def test_another_tenants_group_is_not_found_everywhere(acme: Session, globex_support: None) -> None:
    for response in (
        acme.get("/api/v1/groups/support"),
        acme.get("/api/v1/groups/support?tenant=globex"),
        acme.patch("/api/v1/groups/support", json={"ring_timeout": 30}),
        acme.delete("/api/v1/groups/support"),
        acme.get("/groups/support?tenant=globex"),
        acme.post("/groups/support", data={"_csrf": acme.csrf, "members": "ext:1001"}),
        acme.post("/groups/support/delete", data={"_csrf": acme.csrf}),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["error_id"] == "group-not-found"
    assert "support" not in acme.get("/groups").text
    row = Group.select().where(Group.name == "support").first().run_sync()
    assert row["ring_timeout"] == 20


def test_an_owner_cannot_create_in_another_tenant(acme: Session) -> None:
    response = acme.post(
        "/api/v1/groups", json={"name": "x", "members": ["ext:1001"], "tenant": "globex"}
    )

    assert response.status_code == 404
    assert response.json()["error_id"] == "tenant-not-found"


def test_same_name_in_two_tenants(
    app: tuple[Settings, TestClient], acme: Session, globex_support: None
) -> None:
    assert (
        acme.post("/api/v1/groups", json={"name": "support", "members": ["ext:1001"]}).status_code
        == 201
    )
    assert acme.get("/api/v1/groups/support").json()["members"] == ["ext:1001"]

    operator = Session(app[1], "root@linebox.example")
    ambiguous = operator.get("/api/v1/groups/support")
    named = operator.get("/api/v1/groups/support?tenant=globex")
    assert ambiguous.status_code == 400 and "tenant" in ambiguous.json()["detail"]
    assert named.json()["members"] == ["ext:2001"]


def test_pages_create_edit_and_refuse_a_delete(
    app: tuple[Settings, TestClient], acme: Session
) -> None:
    page = acme.get("/groups")
    assert page.status_code == 200 and "呼叫组" in page.text and "ext:1001, ext:1002" in page.text

    created = acme.post(
        "/groups",
        data={
            "_csrf": acme.csrf,
            "name": "night",
            "strategy": "sequential",
            "ring_timeout": "20",
            "members": "ext:1002\ntel:13800138000",
            "sticky_days": "30",
        },
        follow_redirects=False,
    )
    assert created.status_code == 303, created.text
    assert created.headers["location"] == "/groups/night?tenant=acme"

    bad = acme.post(
        "/groups/night",
        data={"_csrf": acme.csrf, "members": "ext:9999", "ring_timeout": "20", "sticky_days": "30"},
    )
    assert bad.status_code == 400 and "is not an extension of tenant" in bad.text

    saved = acme.post(
        "/groups/night",
        data={
            "_csrf": acme.csrf,
            "strategy": "ring_all",
            "members": "ext:1001, ext:1002",
            "ring_timeout": "40",
            "announce_agent_id": "on",
            "sticky_days": "30",
        },
    )
    assert saved.status_code == 200 and "已保存" in saved.text
    group = groups_of(app[0], "acme")["night"]
    assert (group.strategy, group.members, group.announce_agent_id) == (
        "ring_all",
        ("ext:1001", "ext:1002"),
        True,
    )

    refused = acme.post("/groups/sales/delete", data={"_csrf": acme.csrf})
    assert refused.status_code == 400 and "group:sales" in refused.text
    gone = acme.post("/groups/night/delete", data={"_csrf": acme.csrf}, follow_redirects=False)
    assert gone.status_code == 303
    assert acme.get("/api/v1/groups/night").status_code == 404


def test_changes_are_in_the_audit_log(acme: Session) -> None:
    acme.post("/api/v1/groups", json={"name": "spare", "members": ["ext:1001"]})
    acme.post(
        "/groups/spare",
        data={"_csrf": acme.csrf, "members": "ext:1002", "ring_timeout": "30", "sticky_days": "30"},
    )
    acme.delete("/api/v1/groups/spare")

    log = acme.get("/api/v1/audit?target=group:spare").json()["items"]

    assert [e["action"] for e in reversed(log)] == ["create", "update", "delete"]
    assert log[1]["detail"]["changes"]["members"] == [["ext:1001"], ["ext:1002"]]
    assert {e["tenant"] for e in log} == {"acme"}
