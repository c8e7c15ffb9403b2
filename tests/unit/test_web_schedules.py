"""Schedules (工作时间) over the API and the pages, against a real SQLite
database and the published plan: weekly ranges checked like the site file's,
the holiday calendar, the simulator following an edit, deletes refused while
a route follows the schedule, and another tenant's schedules out of reach."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from appliance import settings as settings_mod
from appliance.routing.plan import decode
from appliance.settings import Settings
from appliance.tables import Schedule
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
def globex_night(app: tuple[Settings, TestClient], acme: Session) -> None:
    """Globex has a schedule `night` (made by the operator; acme logs back in)."""
    operator = Session(app[1], "root@linebox.example")
    response = operator.post(
        "/api/v1/schedules",
        json={"name": "night", "weekly": ["mon-sun 18:00-23:00"], "tenant": "globex"},
    )
    assert response.status_code == 201, response.text
    acme.relogin()


def schedules_of(s: Settings, tenant: str):  # type: ignore[no-untyped-def]
    return decode(s.paths.plan_file.read_bytes()).tenants[tenant].schedules


def test_owner_lists_their_schedules(acme: Session, globex_night: None) -> None:
    assert acme.get("/api/v1/schedules").json() == [
        {"tenant": "acme", "name": "office", "weekly": ["mon-fri 09:00-18:00"], "holidays": "cn"}
    ]


def test_create_and_edit_publish_the_hours(app: tuple[Settings, TestClient], acme: Session) -> None:
    created = acme.post(
        "/api/v1/schedules",
        json={"name": "weekend", "weekly": ["sat-sun 10:00-16:00", " "], "holidays": ""},
    )
    assert created.status_code == 201, created.text
    assert created.json()["weekly"] == ["sat-sun 10:00-16:00"]
    assert len(schedules_of(app[0], "acme")["weekend"].ranges) == 2

    edited = acme.patch("/api/v1/schedules/weekend", json={"holidays": "cn"})
    assert edited.status_code == 200 and edited.json()["weekly"] == ["sat-sun 10:00-16:00"]
    assert schedules_of(app[0], "acme")["weekend"].holidays == "cn"


def test_the_simulator_follows_edited_hours(acme: Session) -> None:
    def at(when: str) -> str:
        result = acme.post(
            "/api/v1/hotlines/4001234567/simulate", json={"caller": "13800138000", "at": when}
        ).json()
        return str(result["target"])

    assert at("2026-03-07T10:00") == "ext:1002"  # Saturday: closed
    response = acme.patch(
        "/api/v1/schedules/office", json={"weekly": ["mon-fri 09:00-18:00", "sat 09:00-12:00"]}
    )
    assert response.status_code == 200, response.text
    assert at("2026-03-07T10:00") == "group:sales"
    assert at("2026-10-01T10:00") == "ext:1002"  # National Day: the holiday calendar


@pytest.mark.parametrize(
    ("body", "key", "text"),
    [
        ({"name": "x y", "weekly": ["mon 09:00-10:00"]}, "name", "is not a name"),
        ({"name": "office", "weekly": ["mon 09:00-10:00"]}, "name", "exists"),
        ({"name": "s", "weekly": []}, "weekly", "at least one range"),
        ({"name": "s", "weekly": ["mon-fri 9-18"]}, "weekly[0]", "mon-fri 9-18"),
        ({"name": "s", "weekly": ["mon 09:00-10:00", "funday 09:00-10:00"]}, "weekly[1]", "funday"),
        ({"name": "s", "weekly": ["mon 09:00-25:00"]}, "weekly[0]", "25:00"),
        ({"name": "s", "weekly": ["mon 09:00-10:00"], "holidays": "us"}, "holidays", "calendar"),
    ],
)
def test_invalid_schedules_are_explained_and_nothing_is_written(
    app: tuple[Settings, TestClient],
    acme: Session,
    body: dict[str, object],
    key: str,
    text: str,
) -> None:
    before = app[0].paths.plan_file.read_bytes()
    response = acme.post("/api/v1/schedules", json=body)

    assert response.status_code == 400, response.text
    error = response.json()
    assert error["error_id"] == "invalid-change"
    assert key in [e["key"] for e in error["details"]["errors"]]
    assert text in error["detail"]
    assert Schedule.count().run_sync() == 1
    assert app[0].paths.plan_file.read_bytes() == before


def test_delete_is_refused_while_a_route_follows_it(
    app: tuple[Settings, TestClient], acme: Session
) -> None:
    response = acme.delete("/api/v1/schedules/office")

    assert response.status_code == 400
    assert response.json()["details"]["errors"] == [
        {
            "key": "hotlines[0].routes[0].when",
            "message": "hotline 4001234567, route 1, follows schedule office",
        }
    ]
    acme.post("/api/v1/schedules", json={"name": "spare", "weekly": ["mon 09:00-10:00"]})
    assert acme.delete("/api/v1/schedules/spare").status_code == 204
    assert "spare" not in schedules_of(app[0], "acme")


def test_another_tenants_schedule_is_not_found_everywhere(
    acme: Session, globex_night: None
) -> None:
    for response in (
        acme.get("/api/v1/schedules/night"),
        acme.get("/api/v1/schedules/night?tenant=globex"),
        acme.patch("/api/v1/schedules/night", json={"holidays": "cn"}),
        acme.delete("/api/v1/schedules/night"),
        acme.get("/schedules/night?tenant=globex"),
        acme.post("/schedules/night", data={"_csrf": acme.csrf, "weekly": "mon 09:00-10:00"}),
        acme.post("/schedules/night/delete", data={"_csrf": acme.csrf}),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["error_id"] == "schedule-not-found"
    assert "night" not in acme.get("/schedules").text
    created = acme.post(
        "/api/v1/schedules", json={"name": "x", "weekly": ["mon 09:00-10:00"], "tenant": "globex"}
    )
    assert created.status_code == 404
    assert Schedule.select().where(Schedule.name == "night").first().run_sync()["holidays"] == ""


def test_pages_create_and_edit(app: tuple[Settings, TestClient], acme: Session) -> None:
    page = acme.get("/schedules")
    assert (
        page.status_code == 200 and "工作时间" in page.text and "mon-fri 09:00-18:00" in page.text
    )

    created = acme.post(
        "/schedules",
        data={
            "_csrf": acme.csrf,
            "name": "late",
            "weekly": "mon-fri 18:00-22:00\r\n",
            "holidays": "",
        },
        follow_redirects=False,
    )
    assert created.status_code == 303, created.text

    bad = acme.post(
        "/schedules/late", data={"_csrf": acme.csrf, "weekly": "mon-fri 18-22", "holidays": ""}
    )
    assert bad.status_code == 400 and "weekly[0]" in bad.text

    saved = acme.post(
        "/schedules/late",
        data={
            "_csrf": acme.csrf,
            "weekly": "mon-fri 18:00-22:00\nsat 10:00-12:00",
            "holidays": "cn",
        },
    )
    assert saved.status_code == 200 and "已保存" in saved.text
    assert acme.get("/api/v1/schedules/late").json()["weekly"] == [
        "mon-fri 18:00-22:00",
        "sat 10:00-12:00",
    ]
    refused = acme.post("/schedules/office/delete", data={"_csrf": acme.csrf})
    assert refused.status_code == 400 and "follows schedule office" in refused.text
