"""Extensions (分机) over the API and the pages, against a real SQLite
database and the published plan file: the SIP password is made by the
appliance, shown once, and registers (its HA1 is in the plan)."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from litestar.testing import TestClient

from appliance import settings as settings_mod
from appliance.routing.plan import decode
from appliance.settings import Settings
from appliance.tables import Extension, User, UserAuth
from tests.unit.web_helpers import Session, setup_site
from web.app import create_app
from web.domain.extensions import provisioning


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


def ha1_matches(s: Settings, number: str, password: str) -> bool:
    extension = plan(s).extensions[number]
    realm = s.sip.domain
    expected = hashlib.md5(f"{number}:{realm}:{password}".encode()).hexdigest()
    return bool(extension.ha1 == expected)


def test_owner_lists_only_their_extensions_without_passwords(acme: Session) -> None:
    response = acme.get("/api/v1/extensions")

    assert response.status_code == 200
    assert response.json() == [
        {"number": "1001", "tenant": "acme", "name": "李雷", "agent_id": "8001", "ringback": ""},
        {"number": "1002", "tenant": "acme", "name": "韩梅梅", "agent_id": "", "ringback": ""},
    ]
    assert "secret" not in response.text


def test_create_shows_the_password_once_and_the_phone_can_register(
    app: tuple[Settings, TestClient], acme: Session
) -> None:
    response = acme.post(
        "/api/v1/extensions", json={"number": "1003", "name": "王芳", "agent_id": "8003"}
    )

    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    password = body["sip_password"]
    assert len(password) == 16 and password.isalnum()
    assert body["extension"] == {
        "number": "1003",
        "tenant": "acme",
        "name": "王芳",
        "agent_id": "8003",
        "ringback": "",
    }
    assert ha1_matches(app[0], "1003", password)
    # Never again: not in the object, not in the list, not on the page.
    assert password not in acme.get("/api/v1/extensions/1003").text
    assert password not in acme.get("/api/v1/extensions").text
    assert password not in acme.get("/extensions/1003").text
    # Stored as the site file stores it, so `linebox export` round-trips it.
    row = Extension.select().where(Extension.number == "1003").first().run_sync()
    assert row["sip_password"] == password


def test_regenerate_replaces_the_password(app: tuple[Settings, TestClient], acme: Session) -> None:
    first = acme.post("/api/v1/extensions/1001/password")
    second = acme.post("/api/v1/extensions/1001/password")

    assert first.status_code == second.status_code == 200
    old, new = first.json()["sip_password"], second.json()["sip_password"]
    assert old != new and old != "ext-1001-secret"
    assert ha1_matches(app[0], "1001", new)
    assert not ha1_matches(app[0], "1001", old)
    assert first.json()["extension"]["agent_id"] == "8001"  # the rest untouched


def test_update_name_and_agent_id(app: tuple[Settings, TestClient], acme: Session) -> None:
    response = acme.patch("/api/v1/extensions/1002", json={"name": "梅梅", "agent_id": "8002"})

    assert response.status_code == 200, response.text
    assert response.json()["name"] == "梅梅"
    assert plan(app[0]).extensions["1002"].agent_id == "8002"
    assert ha1_matches(app[0], "1002", "ext-1002-secret")  # the password stays


@pytest.mark.parametrize(
    ("body", "key", "text"),
    [
        ({"number": "1"}, "number", "is not an extension number"),
        ({"number": "12a4"}, "number", "is not an extension number"),
        ({"number": "1001"}, "number", "is taken"),
        ({"number": "2001"}, "number", "is taken"),  # globex's, not named
        ({"number": "1009", "agent_id": "A7"}, "agent_id", "is not an agent id"),
        ({"number": "1009", "ringback": "nope"}, "ringback", "is not a prompt"),
    ],
)
def test_invalid_create_explains_and_writes_nothing(
    app: tuple[Settings, TestClient], acme: Session, body: dict[str, str], key: str, text: str
) -> None:
    before = app[0].paths.plan_file.read_bytes()
    response = acme.post("/api/v1/extensions", json=body)

    assert response.status_code == 400, response.text
    error = response.json()
    assert error["error_id"] == "invalid-change"
    assert [e["key"] for e in error["details"]["errors"]] == [key]
    assert text in error["detail"]
    assert "globex" not in response.text
    assert Extension.count().run_sync() == 3
    assert app[0].paths.plan_file.read_bytes() == before


def test_delete_is_refused_while_a_group_rings_it(acme: Session) -> None:
    response = acme.delete("/api/v1/extensions/1001")

    assert response.status_code == 400
    error = response.json()
    assert error["error_id"] == "invalid-change"
    assert error["details"]["errors"] == [
        {
            "key": "hotlines[1].routes[0]",
            "message": "hotline 4006668888, route 1, sends calls to ext:1001",
        },
        {"key": "groups[0].members[0]", "message": "group sales rings ext:1001"},
    ]
    assert acme.get("/api/v1/extensions/1001").status_code == 200


def test_delete_an_unused_extension(app: tuple[Settings, TestClient], acme: Session) -> None:
    acme.post("/api/v1/extensions", json={"number": "1005"})
    assert "1005" in plan(app[0]).extensions

    response = acme.delete("/api/v1/extensions/1005")

    assert response.status_code == 204
    assert acme.get("/api/v1/extensions/1005").status_code == 404
    assert "1005" not in plan(app[0]).extensions


def test_another_tenants_extension_is_not_found_for_every_verb(acme: Session) -> None:
    for response in (
        acme.get("/api/v1/extensions/2001"),
        acme.patch("/api/v1/extensions/2001", json={"name": "mine now"}),
        acme.post("/api/v1/extensions/2001/password"),
        acme.delete("/api/v1/extensions/2001"),
        acme.get("/extensions/2001"),
        acme.post("/extensions/2001", data={"name": "x", "_csrf": acme.csrf}),
        acme.post("/extensions/2001/password", data={"_csrf": acme.csrf}),
        acme.post("/extensions/2001/delete", data={"_csrf": acme.csrf}),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["error_id"] == "extension-not-found"
    assert "2001" not in acme.get("/extensions").text
    row = Extension.select().where(Extension.number == "2001").first().run_sync()
    assert (row["name"], row["sip_password"]) == ("Homer", "ext-2001-secret")


def test_an_owner_cannot_create_in_another_tenant(acme: Session) -> None:
    response = acme.post("/api/v1/extensions", json={"number": "1009", "tenant": "globex"})

    assert response.status_code == 404
    assert response.json()["error_id"] == "tenant-not-found"
    assert not Extension.exists().where(Extension.number == "1009").run_sync()


def test_operator_names_the_tenant(app: tuple[Settings, TestClient]) -> None:
    operator = Session(app[1], "root@linebox.example")
    assert len(operator.get("/api/v1/extensions").json()) == 3

    unnamed = operator.post("/api/v1/extensions", json={"number": "2002"})
    named = operator.post("/api/v1/extensions", json={"number": "2002", "tenant": "globex"})

    assert unnamed.status_code == 400 and "tenant" in unnamed.json()["detail"]
    assert named.status_code == 201 and named.json()["extension"]["tenant"] == "globex"


def test_agents_may_not_manage_extensions(app: tuple[Settings, TestClient]) -> None:
    agent = Session(app[1], "agent@acme.example")

    assert agent.get("/api/v1/extensions").status_code == 403
    assert agent.post("/api/v1/extensions", json={"number": "1009"}).status_code == 403


def test_pages_create_show_the_password_once_and_edit(
    app: tuple[Settings, TestClient], acme: Session
) -> None:
    page = acme.get("/extensions")
    assert page.status_code == 200 and "李雷" in page.text and "分机" in page.text

    created = acme.post("/extensions", data={"_csrf": acme.csrf, "number": "1007", "name": "赵六"})
    assert created.status_code == 201
    assert created.headers["cache-control"] == "no-store"
    shown = created.text.split("data-sip-password>")[1].split("<")[0]
    assert ha1_matches(app[0], "1007", shown)
    assert shown not in acme.get("/extensions/1007").text

    bad = acme.post("/extensions", data={"_csrf": acme.csrf, "number": "x"})
    assert bad.status_code == 400 and "is not an extension number" in bad.text

    saved = acme.post(
        "/extensions/1007", data={"_csrf": acme.csrf, "name": "赵六六", "agent_id": "8007"}
    )
    assert saved.status_code == 200 and "已保存" in saved.text
    assert acme.get("/api/v1/extensions/1007").json()["agent_id"] == "8007"

    renewed = acme.post("/extensions/1007/password", data={"_csrf": acme.csrf})
    again = renewed.text.split("data-sip-password>")[1].split("<")[0]
    assert again != shown and ha1_matches(app[0], "1007", again)

    refused = acme.post("/extensions/1001/delete", data={"_csrf": acme.csrf})
    assert refused.status_code == 400 and "group sales rings ext:1001" in refused.text
    gone = acme.post("/extensions/1007/delete", data={"_csrf": acme.csrf}, follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"] == "/extensions"
    assert acme.get("/api/v1/extensions/1007").status_code == 404


def test_changes_are_in_the_audit_log_without_the_password(acme: Session) -> None:
    created = acme.post("/api/v1/extensions", json={"number": "1008", "name": "钱七"}).json()
    renewed = acme.post("/api/v1/extensions/1008/password").json()
    acme.patch("/api/v1/extensions/1008", json={"agent_id": "8008"})
    acme.post("/extensions/1008/delete", data={"_csrf": acme.csrf})

    log = acme.get("/api/v1/audit?target=extension:1008").json()["items"]

    assert [(e["action"], e["actor"], e["tenant"]) for e in reversed(log)] == [
        ("create", "owner@acme.example", "acme"),
        ("password_reset", "owner@acme.example", "acme"),
        ("update", "owner@acme.example", "acme"),
        ("delete", "owner@acme.example", "acme"),
    ]
    assert log[1]["detail"]["changes"] == {"agent_id": ["", "8008"]}
    text = str(log)
    assert created["sip_password"] not in text and renewed["sip_password"] not in text


def test_delete_is_refused_while_an_agent_answers_on_it(acme: Session) -> None:
    acme.post("/api/v1/extensions", json={"number": "1006"})
    agent = User.select(User.id).where(User.login == "agent@acme.example").first().run_sync()
    UserAuth.insert(UserAuth(user=agent["id"], extension="1006")).run_sync()

    response = acme.delete("/api/v1/extensions/1006")

    assert response.status_code == 400
    assert response.json()["details"]["errors"] == [
        {"key": "", "message": "agent agent@acme.example answers calls on it"}
    ]


# --- the phone provisioning aid: settings as text and as a QR code -----------------

_SVG = re.compile(r"<svg.*?</svg>", re.DOTALL)


def qr_of(page: str) -> str:
    found = _SVG.findall(page.split("data-qr>")[1])
    assert found, "no QR code on the page"
    return str(found[0])


def test_page_shows_the_phone_settings_and_a_qr_code_without_the_password(
    app: tuple[Settings, TestClient], acme: Session
) -> None:
    page = acme.get("/extensions/1001").text

    settings = page.split("data-phone-settings>")[1].split("</table>")[0]
    for shown in ("127.0.0.1", "5060", "UDP / TCP", "1001", "linebox.local"):
        assert shown in settings, shown
    # The code a softphone scans: the extension at the appliance, no password.
    expected = "sip:1001@127.0.0.1:5060;transport=udp"
    assert qr_of(page) == provisioning.qr_svg(expected, "SIP 1001")
    assert "ext-1001-secret" not in page


def test_the_password_is_in_the_text_and_the_qr_code_only_when_shown_once(
    acme: Session,
) -> None:
    renewed = acme.post("/extensions/1002/password", data={"_csrf": acme.csrf})

    assert renewed.headers["cache-control"] == "no-store"
    password = renewed.text.split("data-sip-password>")[1].split("<")[0]
    settings = renewed.text.split("data-phone-settings>")[1].split("</table>")[0]
    assert f"<code>{password}</code>" in settings
    with_password = f"sip:1002:{password}@127.0.0.1:5060;transport=udp"
    assert qr_of(renewed.text) == provisioning.qr_svg(with_password, "SIP 1002")
    # The next look at the page has neither.
    later = acme.get("/extensions/1002")
    assert password not in later.text
    assert qr_of(later.text) == provisioning.qr_svg(
        "sip:1002@127.0.0.1:5060;transport=udp", "SIP 1002"
    )


def test_the_advertised_address_is_what_phones_are_told(
    app: tuple[Settings, TestClient], acme: Session
) -> None:
    natted = dataclasses.replace(
        app[0],
        sip=dataclasses.replace(
            app[0].sip, address="10.0.0.5", advertised_address="203.0.113.7", port=5070
        ),
    )
    with TestClient(app=create_app(natted)) as client:
        owner = Session(client, "owner@acme.example")
        phone = owner.get("/api/v1/extensions/1001/phone")

    assert phone.status_code == 200
    assert phone.json() == {
        "server": "203.0.113.7",
        "port": 5070,
        "transports": ["udp", "tcp"],
        "tls_port": 0,
        "user": "1001",
        "realm": "linebox.local",
    }
    assert "secret" not in phone.text


def test_sip_over_tls_is_offered_when_the_appliance_has_its_certificate(
    app: tuple[Settings, TestClient], tmp_path: Path
) -> None:
    certificate, key = tmp_path / "linebox.crt", tmp_path / "linebox.key"
    sip = dataclasses.replace(app[0].sip, tls_certificate=certificate, tls_key=key)
    without = provisioning.phone_settings(dataclasses.replace(app[0], sip=sip), "1001", "x")
    certificate.write_text("PEM")
    key.write_text("PEM")
    with_tls = provisioning.phone_settings(dataclasses.replace(app[0], sip=sip), "1001", "x")

    assert (without.transports, without.tls_port) == (["udp", "tcp"], 0)
    assert (with_tls.transports, with_tls.tls_port) == (["udp", "tcp", "tls"], 5061)
    with TestClient(app=create_app(dataclasses.replace(app[0], sip=sip))) as client:
        page = Session(client, "owner@acme.example").get("/extensions/1001").text
    assert "UDP / TCP / TLS" in page
    assert "data-tls-port>5061<" in page


def test_an_appliance_on_every_address_is_named_as_the_portal_was_browsed(
    app: tuple[Settings, TestClient],
) -> None:
    anywhere = dataclasses.replace(app[0], sip=dataclasses.replace(app[0].sip, address="0.0.0.0"))

    phone = provisioning.phone_settings(anywhere, "1001", "pbx.acme.example")

    assert phone.server == "pbx.acme.example"
    assert provisioning.sip_uri(phone, "p@ss:w") == (
        "sip:1001:p%40ss%3Aw@pbx.acme.example:5060;transport=udp"
    )
    v6 = msgspec.structs.replace(phone, server="2001:db8::5")
    assert provisioning.sip_uri(v6) == "sip:1001@[2001:db8::5]:5060;transport=udp"


def test_another_tenants_phone_settings_are_not_found(acme: Session) -> None:
    response = acme.get("/api/v1/extensions/2001/phone")

    assert response.status_code == 404
    assert response.json()["error_id"] == "extension-not-found"
