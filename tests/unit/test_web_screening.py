"""A hotline's screening lists pasted in bulk, over the API and the page,
against a real SQLite database and the published plan: bad lines reported by
line number with nothing saved, numbers tidied, regions named the way the
routing matches them, and another tenant's hotline out of reach."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from appliance import settings as settings_mod
from appliance.routing.plan import decode
from appliance.settings import Settings
from tests.unit.web_helpers import Session, setup_site
from web.app import create_app

URL = "/api/v1/hotlines/4001234567/screening"


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Settings, TestClient]]:
    monkeypatch.setattr(settings_mod, "_current", None)
    s = setup_site(tmp_path, monkeypatch)
    with TestClient(app=create_app(s)) as c:
        yield s, c


@pytest.fixture
def acme(app: tuple[Settings, TestClient]) -> Session:
    return Session(app[1], "owner@acme.example")


def hotline(s: Settings, number: str = "4001234567"):  # type: ignore[no-untyped-def]
    return decode(s.paths.plan_file.read_bytes()).hotlines[number]


def simulate(acme: Session, caller: str) -> tuple[str, int]:
    result = acme.post(
        "/api/v1/hotlines/4001234567/simulate", json={"caller": caller, "at": "2026-03-02T10:00"}
    ).json()
    return result["action"], result["sip_code"]


def test_get_the_lists(acme: Session) -> None:
    assert acme.get(URL).json() == {
        "hotline": "4001234567",
        "blacklist": ["0571*"],
        "whitelist": [],
        "blocked_regions": [],
    }


def test_paste_replaces_the_blacklist_and_callers_are_refused(
    app: tuple[Settings, TestClient], acme: Session
) -> None:
    text = "13900000000\n\n  138-0013-8000 \n+86 139 0000 0001\n0755*\n13900000000\n"
    response = acme.put(URL + "/blacklist", json={"text": text})

    assert response.status_code == 200, response.text
    expected = ["13900000000", "13800138000", "13900000001", "0755*"]
    assert response.json()["blacklist"] == expected
    assert list(hotline(app[0]).blacklist) == expected
    assert simulate(acme, "13800138000") == ("reject", 603)
    assert simulate(acme, "057188886666")[0] == "ring"  # 0571* was replaced


def test_paste_adds_to_a_list(acme: Session) -> None:
    response = acme.put(URL + "/blacklist", json={"text": "0571*\n13900000000", "mode": "add"})

    assert response.json()["blacklist"] == ["0571*", "13900000000"]


def test_bad_lines_are_reported_by_number_and_nothing_is_saved(
    app: tuple[Settings, TestClient], acme: Session
) -> None:
    before = app[0].paths.plan_file.read_bytes()
    text = "13900000000\nabc\n\n0571**\n13800138000, 13800138001\n"
    response = acme.put(URL + "/blacklist", json={"text": text})

    assert response.status_code == 400
    error = response.json()
    assert error["error_id"] == "invalid-change"
    assert [e["key"] for e in error["details"]["errors"]] == ["line 2", "line 4", "line 5"]
    assert "'abc' is not a number or a prefix" in error["detail"]
    assert acme.get(URL).json()["blacklist"] == ["0571*"]
    assert app[0].paths.plan_file.read_bytes() == before


def test_whitelist_lets_only_listed_callers_through(acme: Session) -> None:
    response = acme.put(URL + "/whitelist", json={"text": "138*"})

    assert response.status_code == 200
    assert simulate(acme, "13800138000")[0] == "ring"
    assert simulate(acme, "13900000000") == ("reject", 603)


def test_regions_are_named_as_the_routing_matches_them(
    app: tuple[Settings, TestClient], acme: Session
) -> None:
    response = acme.put(URL + "/blocked_regions", json={"text": "浙江\n北京\n0755\n杭州市"})

    assert response.status_code == 200, response.text
    assert response.json()["blocked_regions"] == ["浙江省", "北京市", "0755", "杭州市"]
    assert simulate(acme, "13800138000") == ("reject", 486)  # a Beijing mobile
    assert list(hotline(app[0]).blocked_regions) == ["浙江省", "北京市", "0755", "杭州市"]

    bad = acme.put(URL + "/blocked_regions", json={"text": "浙江省\n杭州\n"})
    assert bad.status_code == 400
    assert bad.json()["details"]["errors"] == [
        {
            "key": "line 2",
            "message": "'杭州' is not a region as callers' numbers show it: a province "
            "(浙江省), a city (杭州市) or an area code (0571)",
        }
    ]


@pytest.mark.parametrize(
    ("url", "body"),
    [
        (URL + "/greylist", {"text": "1"}),
        (URL + "/blacklist", {"text": "1", "mode": "merge"}),
        (URL + "/blacklist", {"lines": ["1"]}),
    ],
)
def test_malformed_requests_are_400(acme: Session, url: str, body: dict[str, object]) -> None:
    assert acme.put(url, json=body).status_code == 400


def test_another_tenants_hotline_is_not_found(acme: Session) -> None:
    other = "/api/v1/hotlines/4007654321/screening"
    for response in (
        acme.get(other),
        acme.put(other + "/blacklist", json={"text": "13900000000"}),
        acme.get("/screening/4007654321"),
        acme.post(
            "/screening/4007654321/blacklist", data={"_csrf": acme.csrf, "text": "13900000000"}
        ),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["error_id"] == "hotline-not-found"
    assert "4007654321" not in acme.get("/screening").text


def test_page_keeps_a_bad_paste_to_fix_and_saves_a_good_one(acme: Session) -> None:
    page = acme.get("/screening/4001234567")
    assert page.status_code == 200 and "呼叫阻截" in page.text and "0571*" in page.text

    bad = acme.post(
        "/screening/4001234567/blacklist",
        data={"_csrf": acme.csrf, "text": "13900000000\nnot-a-number", "mode": "replace"},
    )
    assert bad.status_code == 400
    assert "line 2" in bad.text and "13900000000\nnot-a-number" in bad.text

    good = acme.post(
        "/screening/4001234567/blacklist",
        data={"_csrf": acme.csrf, "text": "13900000000", "mode": "add"},
    )
    assert good.status_code == 200 and "已保存" in good.text
    assert acme.get(URL).json()["blacklist"] == ["0571*", "13900000000"]


def test_a_paste_is_in_the_audit_log(acme: Session) -> None:
    acme.put(URL + "/blacklist", json={"text": "13900000000", "mode": "add"})

    log = acme.get("/api/v1/audit?target=hotline:4001234567").json()["items"]

    assert log[0]["action"] == "update"
    assert log[0]["detail"]["changes"] == {"blacklist": [["0571*"], ["0571*", "13900000000"]]}
