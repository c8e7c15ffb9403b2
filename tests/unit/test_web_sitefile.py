"""Site file download and upload from the portal: operators get the whole
file, owners their own tenant; previews write nothing; problems name lines."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from appliance import settings as settings_mod
from appliance.tables import Hotline, Tenant
from tests.unit.web_helpers import Session, setup_site
from web.app import create_app


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setattr(settings_mod, "_current", None)
    s = setup_site(tmp_path, monkeypatch)
    with TestClient(app=create_app(s)) as c:
        yield c


def test_owner_downloads_only_their_tenant(client: TestClient) -> None:
    acme = Session(client, "owner@acme.example")
    response = acme.get("/api/v1/site")

    assert response.status_code == 200
    assert 'filename="acme.toml"' in response.headers["content-disposition"]
    text = response.text
    assert 'slug = "acme"' in text and "globex" not in text and "4007654321" not in text
    assert "root@linebox.example" not in text and "[[trunks]]" not in text


def test_operator_downloads_everything(client: TestClient) -> None:
    operator = Session(client, "root@linebox.example")
    text = operator.get("/api/v1/site").text

    assert 'slug = "acme"' in text and 'slug = "globex"' in text and "[[trunks]]" in text


def test_owner_round_trip_preview_then_apply(client: TestClient) -> None:
    acme = Session(client, "owner@acme.example")
    text = acme.get("/api/v1/site").text.replace('name = "Acme service"', 'name = "Acme support"')

    preview = acme.post("/api/v1/site/preview", json={"text": text})
    assert preview.status_code == 200, preview.text
    assert preview.json()["applied"] is False
    assert any("4006668888" in c for c in preview.json()["changes"])
    assert (
        Hotline.select(Hotline.name)
        .where(Hotline.number == "4006668888")
        .first()
        .run_sync()["name"]
        == "Acme service"
    )

    applied = acme.put("/api/v1/site", json={"text": text})
    assert applied.status_code == 200, applied.text
    assert (
        Hotline.select(Hotline.name)
        .where(Hotline.number == "4006668888")
        .first()
        .run_sync()["name"]
        == "Acme support"
    )
    # The other tenant is untouched.
    assert Tenant.count().where(Tenant.slug == "globex").run_sync() == 1
    assert Hotline.count().where(Hotline.number == "4007654321").run_sync() == 1


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('[[tenants]]\nslug = "globex"\nname = "mine"\n', 'slug = "acme"'),
        ('[[trunks]]\nname = "x"\nhost = "1.2.3.4"\n', "trunks"),
        ('[appliance]\ntimezone = "UTC"\n', "appliance"),
    ],
)
def test_owner_cannot_touch_what_is_not_theirs(client: TestClient, text: str, says: str) -> None:
    acme = Session(client, "owner@acme.example")
    response = acme.post("/api/v1/site/preview", json={"text": text})

    assert response.status_code == 400
    assert response.json()["error_id"] == "invalid-site-file"
    assert says in response.json()["detail"]


def test_owner_cannot_make_an_operator_or_change_billing(client: TestClient) -> None:
    acme = Session(client, "owner@acme.example")
    base = acme.get("/api/v1/site").text
    escalate = (
        base
        + '\n[[tenants.users]]\nlogin = "evil@acme.example"\n'
        + 'password = "0123456789ab"\nrole = "operator"\n'
    )
    assert acme.put("/api/v1/site", json={"text": escalate}).status_code == 400
    money = base + '\n[tenants.billing]\nrates_per_minute = { tel = "0.00" }\n'
    assert acme.put("/api/v1/site", json={"text": money}).status_code == 400


def test_problems_name_the_line_of_the_uploaded_file(client: TestClient) -> None:
    acme = Session(client, "owner@acme.example")
    text = acme.get("/api/v1/site").text.replace('to = "ext:1001"', 'to = "ext:9999"')
    line = (
        text.splitlines().index('to = "ext:9999"') + 1
        if 'to = "ext:9999"' in text.splitlines()
        else next(i + 1 for i, ln in enumerate(text.splitlines()) if "ext:9999" in ln)
    )

    response = acme.post("/api/v1/site/preview", json={"text": text})
    assert response.status_code == 400
    problems = response.json()["details"]["problems"]
    assert any(p.startswith(f"line {line}:") and "ext:9999" in p for p in problems), problems


def test_site_page_previews_and_applies(client: TestClient) -> None:
    operator = Session(client, "root@linebox.example")
    text = operator.get("/api/v1/site").text.replace("Globex main", "Globex hotline")

    page = operator.post("/site", data={"_csrf": operator.csrf, "text": text, "action": "preview"})
    assert page.status_code == 200 and "data-diff" in page.text and "4007654321" in page.text
    done = operator.post("/site", data={"_csrf": operator.csrf, "text": text, "action": "apply"})
    assert done.status_code == 200
    assert (
        Hotline.select(Hotline.name)
        .where(Hotline.number == "4007654321")
        .first()
        .run_sync()["name"]
        == "Globex hotline"
    )
    bad = operator.post(
        "/site", data={"_csrf": operator.csrf, "text": "[[tenants]\n", "action": "preview"}
    )
    assert bad.status_code == 400 and "line 1" in bad.text


def test_agents_have_no_site_file(client: TestClient) -> None:
    agent = Session(client, "agent@acme.example")
    assert agent.get("/api/v1/site").status_code == 403
