"""Logging in to the portal and the API: sessions, CSRF, lock-out, tokens,
TOTP and the language switch, against a real SQLite database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from appliance import settings as settings_mod
from appliance.auth import totp
from appliance.settings import Settings
from tests.unit.web_helpers import PASSWORD, Session, csrf_of, login, setup_site
from web.app import create_app


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setattr(settings_mod, "_current", None)
    s: Settings = setup_site(tmp_path, monkeypatch)
    with TestClient(app=create_app(s)) as c:
        yield c


@pytest.mark.parametrize(
    "path", ["/calls", "/account", "/hotlines", "/hotlines/4001234567", "/dashboard", "/site"]
)
def test_pages_send_strangers_to_the_login_page(client: TestClient, path: str) -> None:
    response = client.get(path + "?x=1", follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next={path}%3Fx%3D1"


@pytest.mark.parametrize("path", ["/api/v1/calls", "/api/v1/me", "/api/v1/hotlines"])
def test_api_without_credentials_is_401(client: TestClient, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 401
    assert response.json()["error_id"] == "unauthorized"


def test_healthz_and_openapi_stay_open(client: TestClient) -> None:
    assert client.get("/healthz").status_code in (200, 503)
    assert client.get("/api/v1/schema/openapi.json").status_code == 200


def test_login_sets_an_httponly_samesite_session_cookie(client: TestClient) -> None:
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"login": "owner@acme.example", "password": PASSWORD, "_csrf": csrf_of(page.text)},
        follow_redirects=False,
    )

    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"].lower()
    assert "lb_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    assert "secure" not in cookie  # plain HTTP on the LAN: a Secure cookie would be dropped
    assert client.get("/api/v1/me").json()["tenant"] == "acme"


def test_session_cookie_is_secure_behind_https(client: TestClient) -> None:
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"login": "owner@acme.example", "password": PASSWORD, "_csrf": csrf_of(page.text)},
        headers={"X-Forwarded-Proto": "https"},
        follow_redirects=False,
    )

    assert "secure" in response.headers["set-cookie"].lower()


def test_login_by_hotline_number(client: TestClient) -> None:
    login(client, "4007654321")

    assert client.get("/api/v1/me").json()["login"] == "owner@globex.example"


def test_login_without_the_forms_csrf_token_is_refused(client: TestClient) -> None:
    client.get("/login")
    response = client.post(
        "/login",
        data={"login": "owner@acme.example", "password": PASSWORD, "_csrf": "forged"},
        follow_redirects=False,
    )

    assert response.status_code == 403
    assert client.get("/api/v1/me").status_code == 401


def test_wrong_password_shows_the_form_again_with_a_message(client: TestClient) -> None:
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"login": "owner@acme.example", "password": "nope", "_csrf": csrf_of(page.text)},
    )

    assert response.status_code == 401
    assert "登录名或密码错误" in response.text
    assert 'value="owner@acme.example"' in response.text


def test_lock_out_after_five_failures(client: TestClient) -> None:
    token = csrf_of(client.get("/login").text)
    for _ in range(5):
        client.post("/login", data={"login": "owner@acme.example", "password": "x", "_csrf": token})
    response = client.post(
        "/login", data={"login": "owner@acme.example", "password": PASSWORD, "_csrf": token}
    )

    assert response.status_code == 429
    assert "15" in response.text


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil"])
def test_login_never_redirects_off_site(client: TestClient, target: str) -> None:
    page = client.get("/login")
    response = client.post(
        "/login",
        data={
            "login": "owner@acme.example",
            "password": PASSWORD,
            "_csrf": csrf_of(page.text),
            "next": target,
        },
        follow_redirects=False,
    )

    assert response.headers["location"] == "/"


def test_unsafe_requests_with_a_session_need_the_csrf_token(client: TestClient) -> None:
    token = login(client, "owner@acme.example")

    assert client.post("/api/v1/me/tokens", json={"name": "t"}).status_code == 403
    bad = client.post("/api/v1/me/tokens", json={"name": "t"}, headers={"X-CSRF-Token": "x"})
    assert bad.status_code == 403 and bad.json()["error_id"] == "forbidden"
    good = client.post("/api/v1/me/tokens", json={"name": "t"}, headers={"X-CSRF-Token": token})
    assert good.status_code == 201


def test_logout_ends_the_session_on_the_server(client: TestClient) -> None:
    token = login(client, "owner@acme.example")
    cookie = client.cookies.get("lb_session")

    response = client.post("/logout", data={"_csrf": token}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"

    client.cookies.set("lb_session", cookie or "")  # a copy of the old cookie opens nothing
    assert client.get("/api/v1/me").status_code == 401


def test_api_token_acts_as_its_user_without_csrf_until_revoked(client: TestClient) -> None:
    session = Session(client, "owner@acme.example")
    created = session.post("/api/v1/me/tokens", json={"name": "crm"}).json()
    secret = created["secret"]
    listed = session.get("/api/v1/me/tokens").json()
    assert [t["name"] for t in listed] == ["crm"] and "secret" not in listed[0]
    client.cookies.clear()

    bearer = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/me", headers=bearer).json()["login"] == "owner@acme.example"
    assert client.post("/api/v1/me/tokens", json={"name": "n"}, headers=bearer).status_code == 201
    revoked = client.delete(f"/api/v1/me/tokens/{created['token']['id']}", headers=bearer)
    assert revoked.status_code == 204
    assert client.get("/api/v1/me", headers=bearer).status_code == 401
    assert (
        client.get("/api/v1/me", headers={"Authorization": "Basic Zm9vOmJhcg=="}).status_code == 401
    )


def test_token_of_another_user_cannot_be_revoked(client: TestClient) -> None:
    acme = Session(client, "owner@acme.example")
    token_id = acme.post("/api/v1/me/tokens", json={"name": "crm"}).json()["token"]["id"]
    globex = Session(client, "owner@globex.example")

    response = globex.delete(f"/api/v1/me/tokens/{token_id}")
    assert response.status_code == 404
    assert response.json()["error_id"] == "api-token-not-found"


def test_password_change_over_the_api(client: TestClient) -> None:
    session = Session(client, "owner@acme.example")
    weak = session.post(
        "/api/v1/me/password", json={"old_password": PASSWORD, "new_password": "123"}
    )
    assert weak.status_code == 400 and weak.json()["error_id"] == "invalid-password"
    wrong = session.post(
        "/api/v1/me/password", json={"old_password": "x", "new_password": "good password 2"}
    )
    assert wrong.status_code == 400 and wrong.json()["error_id"] == "invalid-old-password"
    ok = session.post(
        "/api/v1/me/password", json={"old_password": PASSWORD, "new_password": "good password 2"}
    )
    assert ok.status_code == 204
    assert session.get("/api/v1/me").status_code == 200  # this session stays
    login(client, "owner@acme.example", "good password 2")


def test_password_change_page(client: TestClient) -> None:
    token = login(client, "owner@acme.example")
    response = client.post(
        "/account/password",
        data={
            "_csrf": token,
            "old_password": PASSWORD,
            "new_password": "good password 2",
            "new_password2": "good password 2",
        },
    )
    assert response.status_code == 200
    assert "密码已修改" in response.text


def test_totp_login_takes_two_steps(client: TestClient) -> None:
    token = login(client, "owner@acme.example")
    page = client.get("/account").text
    secret = page.split('name="secret" value="')[1].split('"')[0]
    on = client.post(
        "/account/totp",
        data={"_csrf": token, "secret": secret, "code": totp.code_at(secret, totp.now_step() - 1)},
    )
    assert on.status_code == 200, on.text
    client.cookies.clear()

    page = client.get("/login")
    response = client.post(
        "/login",
        data={"login": "owner@acme.example", "password": PASSWORD, "_csrf": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert response.headers["location"].startswith("/login/totp")
    # The password alone opens nothing.
    assert client.get("/api/v1/me").status_code == 401
    code_page = client.get("/login/totp")
    wrong = client.post("/login/totp", data={"_csrf": csrf_of(code_page.text), "code": "000000"})
    assert wrong.status_code == 401
    right = client.post(
        "/login/totp",
        data={"_csrf": csrf_of(code_page.text), "code": totp.code_at(secret, totp.now_step())},
        follow_redirects=False,
    )
    assert right.status_code == 303
    assert client.get("/api/v1/me").json()["totp_enabled"] is True


def test_language_switch_turns_pages_english(client: TestClient) -> None:
    login(client, "owner@acme.example")
    assert "通话记录" in client.get("/calls").text

    response = client.get("/lang/en?next=/calls", follow_redirects=False)
    assert response.headers["location"] == "/calls"
    page = client.get("/calls").text
    assert '<html lang="en">' in page and "Calls" in page and "通话记录" not in page

    client.get("/lang/zh_CN")
    assert '<html lang="zh-CN">' in client.get("/calls").text
