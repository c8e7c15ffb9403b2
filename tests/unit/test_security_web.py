"""The portal against a hostile browser or client: security headers on every
response of every route, CSRF on every unsafe route, the login lock-out,
tenant isolation spot checks, and hostile requests that must end in a clean
4xx, never a 500.

The main suites (test_web_auth, test_web_hotlines, test_web_records,
test_web_sitefile) test each feature; this file sweeps the whole route table
so a route added later without the protections fails here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from appliance import settings as settings_mod
from appliance.settings import Settings
from tests.unit.web_helpers import PASSWORD, Session, csrf_of, setup_site
from web.app import create_app

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
SAMPLE = {"number": "4001234567", "call_id": "nobody", "token_id": "1", "code": "en"}


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Litestar, TestClient]]:
    monkeypatch.setattr(settings_mod, "_current", None)
    s: Settings = setup_site(tmp_path, monkeypatch)
    application = create_app(s)
    with TestClient(app=application) as c:
        yield application, c


def routes(application: Litestar) -> list[tuple[str, str]]:
    """Every (method, concrete path) of the app, path parameters filled in."""
    found = []
    for route in application.routes:
        methods = getattr(route, "methods", set())
        path = re.sub(r"\{(\w+):\w+\}", lambda m: SAMPLE.get(m.group(1), "1"), route.path)
        if path.startswith("/static") or "{" in path:
            continue
        for method in sorted(methods - {"HEAD", "OPTIONS"}):
            found.append((method, path))
    return found


def assert_secure_headers(response: Any, where: str) -> None:
    headers = response.headers
    assert headers.get("x-content-type-options") == "nosniff", where
    assert headers.get("x-frame-options") == "DENY", where
    assert headers.get("referrer-policy") == "same-origin", where
    csp = headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp, where
    # /healthz says 503 when services are down (none run in unit tests).
    healthz = "/healthz" in where and response.status_code == 503
    assert response.status_code < 500 or healthz, (where, response.status_code, response.text[:300])


def test_every_route_answers_strangers_and_owners_with_the_headers(
    app: tuple[Litestar, TestClient],
) -> None:
    application, client = app
    table = routes(application)
    assert len(table) > 20, table
    for method, path in table:
        response = client.request(method, path, follow_redirects=False)
        assert_secure_headers(response, f"stranger {method} {path}")
    owner = Session(client, "owner@acme.example")
    for method, path in table:
        if path in ("/logout", "/api/v1/me/password") or "totp" in path or "revoke" in path:
            continue  # would end the session or change the account under us
        response = owner.request(method, path, follow_redirects=False)
        assert_secure_headers(response, f"owner {method} {path}")


def test_every_unsafe_route_refuses_a_session_without_the_csrf_token(
    app: tuple[Litestar, TestClient],
) -> None:
    application, client = app
    owner = Session(client, "owner@acme.example")
    unsafe = [(m, p) for m, p in routes(application) if m in UNSAFE]
    assert unsafe
    for method, path in unsafe:
        for body in ({"data": {"_csrf": "forged"}}, {"json": {}}):
            response = client.request(method, path, follow_redirects=False, **body)
            where = f"{method} {path} {body}"
            assert response.status_code == 403, (where, response.status_code, response.text)
    # The session still works: nothing above logged it out.
    assert owner.get("/api/v1/me").status_code == 200


def test_lock_out_holds_against_the_right_password_and_spares_other_users(
    app: tuple[Litestar, TestClient],
) -> None:
    _, client = app

    def attempt(login: str, password: str) -> int:
        client.cookies.clear()
        page = client.get("/login").text
        return client.post(
            "/login",
            data={"login": login, "password": password, "_csrf": csrf_of(page)},
            follow_redirects=False,
        ).status_code

    codes = [attempt("owner@acme.example", f"wrong-{i}") for i in range(6)]
    assert codes[:5] == [401] * 5 and codes[5] == 429, codes
    assert attempt("owner@acme.example", PASSWORD) == 429
    # By its hotline number the same user is locked too.
    assert attempt("4001234567", PASSWORD) == 429
    assert attempt("owner@globex.example", PASSWORD) == 303


def test_api_token_of_one_tenant_sees_nothing_of_another(
    app: tuple[Litestar, TestClient],
) -> None:
    _, client = app
    globex = Session(client, "owner@globex.example")
    secret = globex.post("/api/v1/me/tokens", json={"name": "probe"}).json()["secret"]
    client.cookies.clear()
    bearer = {"Authorization": f"Bearer {secret}"}
    hotlines = client.get("/api/v1/hotlines", headers=bearer).json()
    assert [h["number"] for h in hotlines] == ["4007654321"]
    for method, path, body in (
        ("GET", "/api/v1/hotlines/4001234567", None),
        ("PATCH", "/api/v1/hotlines/4001234567", {"name": "stolen"}),
        ("POST", "/api/v1/hotlines/4001234567/simulate", {"caller": "13800138000"}),
    ):
        response = client.request(method, path, headers=bearer, json=body)
        assert response.status_code == 404, (method, path, response.text)
    export = client.get("/api/v1/site", headers=bearer)
    assert export.status_code == 200
    assert "acme" not in export.text and "4001234567" not in export.text
    # An agent of acme may not change routing, whatever the tenant.
    agent = Session(client, "agent@acme.example")
    refused = agent.patch("/api/v1/hotlines/4001234567", json={"name": "x"})
    assert refused.status_code in (403, 404), refused.text
    assert acme_name(client) == "Acme sales"


def acme_name(client: TestClient) -> str:
    owner = Session(client, "owner@acme.example")
    return str(owner.get("/api/v1/hotlines/4001234567").json()["name"])


def test_a_revoke_form_for_another_users_token_revokes_nothing(
    app: tuple[Litestar, TestClient],
) -> None:
    _, client = app
    globex = Session(client, "owner@globex.example")
    created = globex.post("/api/v1/me/tokens", json={"name": "keep"}).json()
    token_id, secret = created["token"]["id"], created["secret"]
    acme = Session(client, "owner@acme.example")
    response = acme.post(f"/account/tokens/{token_id}/revoke", follow_redirects=False)
    assert response.status_code in (303, 404), response.text
    client.cookies.clear()
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 200, "another user's form revoked the token"


HUGE = "x" * (12 * 1024 * 1024)


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("PATCH", "/api/v1/hotlines/4001234567", {"content": b"{not json"}),
        ("PATCH", "/api/v1/hotlines/4001234567", {"content": b"\xff\xfe\x00garbage"}),
        ("PATCH", "/api/v1/hotlines/4001234567", {"content": b"[" * 100000 + b"]" * 100000}),
        ("PATCH", "/api/v1/hotlines/4001234567", {"json": {"routes": "x" * 100}}),
        ("PATCH", "/api/v1/hotlines/4001234567", {"content": HUGE.encode()}),
        ("POST", "/api/v1/hotlines/4001234567/simulate", {"json": {"at": "9999-99-99"}}),
        ("POST", "/api/v1/site/preview", {"json": {"text": "[[tenants]\n\x00"}}),
        ("POST", "/api/v1/site/preview", {"json": {"text": HUGE}}),
        ("POST", "/api/v1/site/preview", {"json": {"text": "a = " + "[" * 50000}}),
        (
            "POST",
            "/site",
            {
                "content": b"text=%ED%A0%80%FF&action=preview",
                "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            },
        ),
        (
            "POST",
            "/site",
            {"files": {"text": ("site.toml", b"\x00\xff" * 1000, "application/octet-stream")}},
        ),
        ("GET", "/api/v1/hotlines/" + "4" * 5000, {}),
        ("GET", "/api/v1/hotlines/%00%ff", {}),
        ("GET", "/api/v1/calls?limit=99999999999999999999", {}),
        ("GET", "/api/v1/calls?since=" + "9" * 1000, {}),
        ("GET", "/api/v1/calls/" + "%2e%2e%2f" * 50, {}),
        ("GET", "/static/../../../../etc/passwd", {}),
        ("GET", "/static/%2e%2e/%2e%2e/etc/passwd", {}),
        ("GET", "/lang/../../etc", {}),
        ("POST", "/api/v1/me/tokens", {"json": {"name": "n" * 100000}}),
    ],
)
def test_hostile_requests_get_a_clean_4xx(
    app: tuple[Litestar, TestClient], method: str, path: str, kwargs: dict[str, Any]
) -> None:
    _, client = app
    owner = Session(client, "owner@acme.example")
    kwargs = dict(kwargs)
    headers = kwargs.pop("headers", None) or (
        {"Content-Type": "application/json"} if "content" in kwargs else {}
    )
    response = owner.request(method, path, headers=headers, follow_redirects=False, **kwargs)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    assert "Traceback" not in response.text
    assert "root:" not in response.text  # /etc/passwd
    assert_secure_headers(response, f"{method} {path}")


def test_a_huge_screening_list_is_refused_or_stored_but_never_a_500(
    app: tuple[Litestar, TestClient],
) -> None:
    _, client = app
    owner = Session(client, "owner@acme.example")
    response = owner.patch("/api/v1/hotlines/4001234567", json={"blacklist": ["1"] * 100000})
    assert response.status_code < 500, response.text[:300]


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer " + "A" * 100000},
        {"Authorization": "Bearer lbt_\x00\x01"},
        {"Authorization": "Basic b3duZXI6cGFzcw=="},
        {"Authorization": "Bearer"},
        {"Cookie": "lb_session=" + "x" * 4000},
        {"Cookie": "lb_session=\x7f\x00; lb_session=other"},
    ],
)
def test_forged_credentials_are_401_not_500(
    app: tuple[Litestar, TestClient], headers: dict[str, str]
) -> None:
    _, client = app
    response = client.get("/api/v1/me", headers=headers)
    assert response.status_code == 401, (response.status_code, response.text[:300])
