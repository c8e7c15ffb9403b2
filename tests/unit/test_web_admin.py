"""The operator's admin: tenants, hotline numbers and their classes, trunks,
users, backups and health, over the API and the pages, against a real SQLite
database and the published plan. Owners and agents get 403 everywhere."""

from __future__ import annotations

import datetime as dt
import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from appliance import settings as settings_mod
from appliance.routing.plan import decode
from appliance.settings import Settings
from appliance.tables import AuditEntry, LedgerEntry, Trunk, TrunkStatus
from tests.unit.web_helpers import PASSWORD, Session, csrf_of, setup_site
from web.app import create_app

OPERATOR = "root@linebox.example"


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Settings, TestClient]]:
    monkeypatch.setattr(settings_mod, "_current", None)
    s = setup_site(tmp_path, monkeypatch)
    with TestClient(app=create_app(s)) as c:
        yield s, c


@pytest.fixture
def root(app: tuple[Settings, TestClient]) -> Session:
    return Session(app[1], OPERATOR)


def plan(s: Settings):  # type: ignore[no-untyped-def]
    return decode(s.paths.plan_file.read_bytes())


def try_login(client: TestClient, who: str, password: str) -> int:
    client.cookies.clear()
    token = csrf_of(client.get("/login").text)
    response = client.post(
        "/login",
        data={"login": who, "password": password, "_csrf": token},
        follow_redirects=False,
    )
    return response.status_code


ADMIN_READS = [
    "/api/v1/admin/tenants",
    "/api/v1/admin/tenants/acme",
    "/api/v1/admin/numbers",
    "/api/v1/admin/trunks",
    "/api/v1/admin/users",
    "/api/v1/admin/backups",
    "/api/v1/admin/health",
    "/admin",
    "/admin/tenants",
    "/admin/users",
    "/admin/backups",
]


@pytest.mark.parametrize("who", ["owner@acme.example", "agent@acme.example"])
def test_only_operators_reach_the_admin(app: tuple[Settings, TestClient], who: str) -> None:
    user = Session(app[1], who)
    for path in ADMIN_READS:
        assert user.get(path).status_code == 403, path
    writes = [
        user.post("/api/v1/admin/tenants", json={"slug": "mine", "name": "Mine"}),
        user.post("/api/v1/admin/tenants/globex/suspend"),
        user.post("/api/v1/admin/tenants/acme/topups", json={"amount": "1000.00"}),
        user.post("/api/v1/admin/trunks", json={"name": "t2", "host": "192.0.2.9"}),
        user.post("/api/v1/admin/users", json={"login": "x@y.z", "password": "long enough pw"}),
        user.post("/api/v1/admin/backups", json={}),
        user.post("/admin/tenants", data={"action": "create", "slug": "mine", "name": "M"}),
    ]
    assert [r.status_code for r in writes] == [403] * len(writes)
    names = [t["slug"] for t in Session(app[1], OPERATOR).get("/api/v1/admin/tenants").json()]
    assert names == ["acme", "globex"]


def test_operator_creates_a_tenant_with_an_opening_balance(root: Session) -> None:
    response = root.post(
        "/api/v1/admin/tenants",
        json={"slug": "initech", "name": "Initech 公司", "opening_balance": "300.50"},
    )
    assert response.status_code == 201, response.text
    assert response.json() == {
        "slug": "initech",
        "name": "Initech 公司",
        "timezone": "",
        "balance": "300.50",
        "suspended": False,
        "hotlines": [],
        "users": 0,
    }
    slugs = [t["slug"] for t in root.get("/api/v1/admin/tenants").json()]
    assert slugs == ["acme", "globex", "initech"]
    (entry,) = LedgerEntry.select().where(LedgerEntry.kind == "opening").run_sync()
    assert entry["amount_fen"] == 30050 and entry["by"] == OPERATOR


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ({"slug": "Bad Slug", "name": "x"}, "slug"),
        ({"slug": "acme", "name": "again"}, "slug"),
        ({"slug": "ok", "name": " "}, "name"),
        ({"slug": "ok", "name": "x", "timezone": "Mars/Base"}, "timezone"),
        ({"slug": "ok", "name": "x", "opening_balance": "-5"}, "opening_balance"),
    ],
)
def test_a_bad_tenant_is_refused_saying_what_to_fix(
    root: Session, body: dict[str, str], key: str
) -> None:
    response = root.post("/api/v1/admin/tenants", json=body)
    assert response.status_code == 400, response.text
    assert key in response.text
    assert len(root.get("/api/v1/admin/tenants").json()) == 2


def test_suspending_a_tenant_stops_its_hotlines_and_resuming_restores_them(
    app: tuple[Settings, TestClient], root: Session
) -> None:
    s = app[0]
    response = root.post("/api/v1/admin/tenants/globex/suspend")
    assert response.status_code == 200 and response.json()["suspended"] is True
    assert plan(s).hotlines["4007654321"].state == "suspended"
    assert plan(s).hotlines["4001234567"].state == "active"
    root.post("/api/v1/admin/tenants/globex/resume")
    assert plan(s).hotlines["4007654321"].state == "active"
    assert root.post("/api/v1/admin/tenants/nobody/suspend").status_code == 404
    actions = [
        r["action"]
        for r in AuditEntry.select(AuditEntry.action)
        .where(AuditEntry.target == "tenant:globex")
        .run_sync()
    ]
    assert actions == ["suspend", "resume"]


def test_top_up_books_once_per_ref_and_the_owner_sees_it_in_the_audit_log(
    app: tuple[Settings, TestClient], root: Session
) -> None:
    body = {"amount": "200.00", "note": "bank transfer 88", "ref": "tx-88"}
    first = root.post("/api/v1/admin/tenants/acme/topups", json=body).json()
    again = root.post("/api/v1/admin/tenants/acme/topups", json=body).json()
    assert (first["amount"], first["duplicate"], again["duplicate"]) == ("200.00", False, True)
    assert root.get("/api/v1/admin/tenants/acme").json()["balance"] == first["balance"]
    assert root.post("/api/v1/admin/tenants/acme/topups", json={"amount": "0"}).status_code == 400
    assert root.post("/api/v1/admin/tenants/acme/topups", json={"amount": "1e3"}).status_code == 400
    owner = Session(app[1], "owner@acme.example")
    seen = owner.get("/api/v1/audit", params={"action": "topup"}).json()["items"]
    assert [(e["actor"], e["detail"]["amount"]) for e in seen] == [(OPERATOR, "200.00")]
    assert (
        Session(app[1], "owner@globex.example")
        .get("/api/v1/audit", params={"action": "topup"})
        .json()["items"]
        == []
    )


def test_numbers_are_listed_with_their_class_tenant_and_trunk(root: Session) -> None:
    numbers = {n["number"]: n for n in root.get("/api/v1/admin/numbers").json()}
    assert set(numbers) == {"4001234567", "4006668888", "4007654321"}
    assert (numbers["4001234567"]["number_class"], numbers["4001234567"]["number_pattern"]) == (
        "B",
        "ABC",
    )
    assert numbers["4006668888"]["number_class_label"] == "特号"
    assert numbers["4007654321"]["tenant"] == "globex"
    assert numbers["4007654321"]["trunk"] == "carrier"


def test_a_number_is_assigned_routed_through_its_trunk_and_removed(
    app: tuple[Settings, TestClient], root: Session
) -> None:
    s = app[0]
    made = root.post(
        "/api/v1/admin/numbers", json={"number": "4008005588", "tenant": "globex", "name": "新号"}
    )
    assert made.status_code == 201, made.text
    assert (made.json()["number_class"], made.json()["number_pattern"]) == ("special", "AABB")
    assert "4008005588" in plan(s).hotlines
    # Its trunk must name it before the carrier's calls arrive; then it cannot go
    # while the trunk still does.
    trunk = root.patch(
        "/api/v1/admin/trunks/carrier",
        json={"dids": ["4001234567", "4006668888", "4007654321", "4008005588"]},
    )
    assert trunk.status_code == 200, trunk.text
    refused = root.delete("/api/v1/admin/numbers/4008005588")
    assert refused.status_code == 400 and "4008005588" in refused.text
    root.patch(
        "/api/v1/admin/trunks/carrier", json={"dids": ["4001234567", "4006668888", "4007654321"]}
    )
    assert root.delete("/api/v1/admin/numbers/4008005588").status_code == 204
    assert "4008005588" not in plan(s).hotlines
    assert root.delete("/api/v1/admin/numbers/4008005588").status_code == 404


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"number": "4001234567", "tenant": "globex"}, 400),  # acme's already
        ({"number": "1001", "tenant": "acme"}, 400),  # an extension
        ({"number": "40a", "tenant": "acme"}, 400),
        ({"number": "4008001234", "tenant": "nobody"}, 404),
    ],
)
def test_a_bad_number_is_refused(root: Session, body: dict[str, str], status: int) -> None:
    assert root.post("/api/v1/admin/numbers", json=body).status_code == status


def test_trunks_are_created_edited_and_deleted_under_the_site_files_rules(
    app: tuple[Settings, TestClient], root: Session
) -> None:
    s = app[0]
    bad = root.post("/api/v1/admin/trunks", json={"name": "backup", "host": "not a host!"})
    assert bad.status_code == 400 and bad.json()["details"]["errors"][0]["key"] == "host"
    taken = root.post(
        "/api/v1/admin/trunks",
        json={"name": "backup", "host": "192.0.2.20:5060", "dids": ["4001234567"]},
    )
    assert taken.status_code == 400 and "already arrives over trunk" in taken.text
    made = root.post("/api/v1/admin/trunks", json={"name": "backup", "host": "192.0.2.20:5060"})
    assert made.status_code == 201, made.text
    assert [t.name for t in plan(s).trunks] == ["carrier", "backup"]
    unknown = root.patch("/api/v1/admin/trunks/backup", json={"dids": ["4009999999"]})
    assert unknown.status_code == 400 and "not a hotline" in unknown.text
    edited = root.patch("/api/v1/admin/trunks/backup", json={"host": "192.0.2.21"})
    assert edited.json()["host"] == "192.0.2.21"
    assert root.delete("/api/v1/admin/trunks/backup").status_code == 204
    assert root.get("/api/v1/admin/trunks/backup").status_code == 404
    assert [r["name"] for r in Trunk.select(Trunk.name).run_sync()] == ["carrier"]
    (entry,) = (
        AuditEntry.select()
        .where(AuditEntry.target == "trunk:backup", AuditEntry.action == "update")
        .run_sync()
    )
    assert "192.0.2.21" in str(entry["detail"])


NEW_TRUNK = {
    "name": "unicom",
    "gateways": ["192.0.2.30:5060", "192.0.2.31"],
    "inbound": ["192.0.2.0/28"],
    "transport": "tcp",
    "did_map": {"02158881234": "4001234567"},
    "max_calls": 30,
    "strip_prefix": "0086",
    "add_prefix": "9",
    "codecs": ["PCMA", "G722"],
}


def test_a_trunks_gateways_and_carrier_settings_round_trip_with_the_audit_log(
    app: tuple[Settings, TestClient], root: Session
) -> None:
    s = app[0]
    made = root.post("/api/v1/admin/trunks", json=NEW_TRUNK)
    assert made.status_code == 201, made.text
    assert made.json() == {**NEW_TRUNK, "host": "", "dids": []}
    assert root.get("/api/v1/admin/trunks/unicom").json() == made.json()
    (published,) = [t for t in plan(s).trunks if t.name == "unicom"]
    assert published.gateways == ("192.0.2.30:5060", "192.0.2.31")
    assert published.max_calls == 30

    edited = root.patch(
        "/api/v1/admin/trunks/unicom", json={"max_calls": 0, "codecs": ["opus"], "inbound": []}
    )
    assert edited.status_code == 200, edited.text
    out = edited.json()
    assert (out["max_calls"], out["codecs"], out["inbound"]) == (0, ["opus"], [])
    assert out["gateways"] == NEW_TRUNK["gateways"] and out["transport"] == "tcp"
    (entry,) = (
        AuditEntry.select()
        .where(AuditEntry.target == "trunk:unicom", AuditEntry.action == "update")
        .run_sync()
    )
    assert "max_calls" in str(entry["detail"]) and "opus" in str(entry["detail"])


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"transport": "sctp"}, "transport"),
        ({"codecs": ["G729"]}, "codecs"),
        ({"codecs": []}, "codecs"),
        ({"gateways": ["not a host!"]}, "gateways"),
        ({"inbound": ["192.0.2.0/99"]}, "inbound"),
        ({"max_calls": -1}, "max_calls"),
        ({"strip_prefix": "00x"}, "strip_prefix"),
        ({"did_map": {"02158881234": "4009999999"}}, "did_map"),
        ({"did_map": {"4006668888": "4001234567"}}, "did_map"),
        ({"gateways": [], "host": ""}, ""),
    ],
)
def test_a_bad_trunk_setting_is_refused_saying_what_to_fix(
    root: Session, change: dict[str, object], key: str
) -> None:
    made = root.post("/api/v1/admin/trunks", json={**NEW_TRUNK, **change})
    assert made.status_code == 400, made.text
    errors = made.json()["details"]["errors"]
    assert any(e["key"].startswith(key) for e in errors), errors
    assert root.get("/api/v1/admin/trunks/unicom").status_code == 404
    edited = root.patch("/api/v1/admin/trunks/carrier", json=change)
    assert edited.status_code == 400, edited.text
    assert root.get("/api/v1/admin/trunks/carrier").json()["host"] == "127.0.0.1:5090"


def test_a_malformed_trunk_setting_is_a_400(root: Session) -> None:
    for change in ({"max_calls": "many"}, {"did_map": ["4001234567"]}, {"colour": "red"}):
        response = root.patch("/api/v1/admin/trunks/carrier", json=change)
        assert response.status_code == 400, (change, response.text)


def test_the_trunk_form_takes_gateways_and_carrier_settings(root: Session) -> None:
    form = {
        "_csrf": root.csrf,
        "action": "create",
        "name": "unicom",
        "gateways": "192.0.2.30:5060 192.0.2.31",
        "inbound": "192.0.2.0/28",
        "transport": "tls",
        "did_map": "02158881234=4001234567",
        "max_calls": "12",
        "strip_prefix": "0086",
        "codecs": "PCMA G722",
    }
    made = root.post("/admin/trunks", data=form)
    assert made.status_code == 200, made.text
    assert 'value="192.0.2.30:5060 192.0.2.31"' in made.text
    trunk = root.get("/api/v1/admin/trunks/unicom").json()
    assert (trunk["transport"], trunk["max_calls"], trunk["did_map"]) == (
        "tls",
        12,
        {"02158881234": "4001234567"},
    )
    bad = root.post("/admin/trunks", data={**form, "action": "update", "codecs": "G729"})
    assert bad.status_code == 400 and "codecs" in bad.text
    assert root.post("/admin/trunks", data={**form, "max_calls": "x"}).status_code == 400
    assert root.get("/api/v1/admin/trunks/unicom").json()["codecs"] == ["PCMA", "G722"]


def test_the_health_page_shows_each_trunk_gateway_up_down_or_not_probed(
    app: tuple[Settings, TestClient], root: Session
) -> None:
    root.post("/api/v1/admin/trunks", json=NEW_TRUNK)
    since = dt.datetime(2026, 11, 23, 3, 4, 5, tzinfo=dt.UTC)
    TrunkStatus.insert(
        TrunkStatus(trunk="unicom", gateway="192.0.2.30:5060", up=False, since=since),
        TrunkStatus(trunk="carrier", gateway="127.0.0.1:5090", up=True, since=since),
    ).run_sync()
    report = root.get("/api/v1/admin/health").json()
    states = {(g["trunk"], g["gateway"]): g["up"] for g in report["gateways"]}
    assert states == {
        ("carrier", "127.0.0.1:5090"): True,
        ("unicom", "192.0.2.30:5060"): False,
        ("unicom", "192.0.2.31"): None,
    }
    assert report["status"] == "degraded"
    page = root.get("/admin/health")
    assert page.status_code == 200
    assert "中继网关" in page.text and "故障，自 2026-11-23 03:04:05" in page.text
    assert "尚未探测" in page.text
    app[1].cookies.set("lb_lang", "en")
    page = root.get("/admin/health")
    assert "down since 2026-11-23 03:04:05" in page.text and "not probed yet" in page.text
    assert "up since" in page.text


def test_users_are_created_reset_locked_unlocked_and_given_roles(
    app: tuple[Settings, TestClient], root: Session
) -> None:
    client = app[1]
    new = root.post(
        "/api/v1/admin/users",
        json={"login": "boss@globex.example", "password": "globex boss 1", "tenant": "globex"},
    )
    assert new.status_code == 201, new.text
    user = new.json()
    assert (user["role"], user["tenant"], user["locked"]) == ("owner", "globex", False)
    boss = Session(client, "boss@globex.example", "globex boss 1")
    assert [h["number"] for h in boss.get("/api/v1/hotlines").json()] == ["4007654321"]

    root = Session(client, OPERATOR)
    uid = user["id"]
    reset = root.post(f"/api/v1/admin/users/{uid}/password", json={"password": "brand new pw 2"})
    assert reset.status_code == 200
    assert try_login(client, "boss@globex.example", "globex boss 1") == 401
    assert try_login(client, "boss@globex.example", "brand new pw 2") == 303

    root = Session(client, OPERATOR)
    assert root.post(f"/api/v1/admin/users/{uid}/lock").json()["locked"] is True
    assert try_login(client, "boss@globex.example", "brand new pw 2") == 429
    root = Session(client, OPERATOR)
    assert root.post(f"/api/v1/admin/users/{uid}/unlock").json()["locked"] is False
    assert try_login(client, "boss@globex.example", "brand new pw 2") == 303

    root = Session(client, OPERATOR)
    assert (
        root.patch(f"/api/v1/admin/users/{uid}", json={"role": "agent"}).json()["role"] == "agent"
    )
    assert root.patch(f"/api/v1/admin/users/{uid}", json={"role": "operator"}).status_code == 400


def test_locking_a_user_revokes_their_api_tokens(
    app: tuple[Settings, TestClient], root: Session
) -> None:
    owner = Session(app[1], "owner@acme.example")
    secret = owner.post("/api/v1/me/tokens", json={"name": "crm"}).json()["secret"]
    bearer = {"Authorization": f"Bearer {secret}"}
    assert app[1].get("/api/v1/me", headers=bearer).status_code == 200
    root = Session(app[1], OPERATOR)
    uid = next(
        u["id"]
        for u in root.get("/api/v1/admin/users").json()
        if u["login"] == "owner@acme.example"
    )
    root.post(f"/api/v1/admin/users/{uid}/lock")
    app[1].cookies.clear()
    assert app[1].get("/api/v1/me", headers=bearer).status_code == 401


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ({"login": "a b@x.y", "password": "long enough 1", "tenant": "acme"}, "login"),
        ({"login": "new@x.y", "password": "short", "tenant": "acme"}, "password"),
        ({"login": "new@x.y", "password": "12345678901", "tenant": "acme"}, "password"),
        ({"login": "new@x.y", "password": "long enough 1"}, "tenant"),
        (
            {"login": "new@x.y", "password": "long enough 1", "role": "operator", "tenant": "acme"},
            "tenant",
        ),
        (
            {"login": "new@x.y", "password": "long enough 1", "role": "god", "tenant": "acme"},
            "role",
        ),
        ({"login": "owner@acme.example", "password": "long enough 1", "tenant": "acme"}, "login"),
    ],
)
def test_a_bad_user_is_refused_saying_what_to_fix(
    root: Session, body: dict[str, str], key: str
) -> None:
    response = root.post("/api/v1/admin/users", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["details"]["errors"][0]["key"] == key
    assert "long enough" not in response.text


def test_the_operator_cannot_lock_or_demote_the_last_operator(root: Session) -> None:
    me = next(u for u in root.get("/api/v1/admin/users").json() if u["login"] == OPERATOR)
    assert root.post(f"/api/v1/admin/users/{me['id']}/lock").status_code == 400
    assert root.patch(f"/api/v1/admin/users/{me['id']}", json={"role": "owner"}).status_code == 400
    assert root.get("/api/v1/admin/users/999999").status_code == 404


def test_backups_are_made_listed_downloaded_with_the_session_and_deleted(
    app: tuple[Settings, TestClient], root: Session
) -> None:
    made = root.post("/api/v1/admin/backups", json={"recordings": False})
    assert made.status_code == 201, made.text
    name = made.json()["name"]
    assert [b["name"] for b in root.get("/api/v1/admin/backups").json()] == [name]

    download = root.get(f"/api/v1/admin/backups/{name}")
    assert download.status_code == 200
    assert download.headers["cache-control"] == "no-store"
    with tarfile.open(fileobj=io.BytesIO(download.content)) as tar:
        assert {"manifest.json", "linebox.sqlite"} <= set(tar.getnames())

    # The file's URL is no capability: without the operator's session it is closed.
    owner = Session(app[1], "owner@acme.example")
    assert owner.get(f"/api/v1/admin/backups/{name}").status_code == 403
    app[1].cookies.clear()
    assert app[1].get(f"/api/v1/admin/backups/{name}").status_code == 401
    root = Session(app[1], OPERATOR)
    for sneaky in ("..%2Flinebox.sqlite", "linebox.sqlite", "linebox-x.tar.gz"):
        assert root.get(f"/api/v1/admin/backups/{sneaky}").status_code == 404
    assert root.delete(f"/api/v1/admin/backups/{name}").status_code == 204
    assert root.get("/api/v1/admin/backups").json() == []


def test_system_health_has_the_components_and_the_doctors_checks(root: Session) -> None:
    report = root.get("/api/v1/admin/health").json()
    assert {"database", "kamailio", "rtpengine", "worker"} <= set(report["components"])
    assert report["components"]["database"]["ok"] is True
    names = {f["name"] for f in report["findings"]}
    assert "disk" in " ".join(names) and report["status"] in ("ok", "degraded")


def test_the_pages_create_a_tenant_and_show_errors_in_place(root: Session) -> None:
    page = root.get("/admin/tenants")
    assert page.status_code == 200 and "艾克米" in page.text and "Globex" in page.text
    made = root.post(
        "/admin/tenants",
        data={"action": "create", "slug": "hooli", "name": "Hooli", "_csrf": root.csrf},
    )
    assert made.status_code == 200 and "hooli" in made.text
    bad = root.post(
        "/admin/tenants",
        data={"action": "create", "slug": "Bad!", "name": "x", "_csrf": root.csrf},
    )
    assert bad.status_code == 400 and "slug" in bad.text
    topped = root.post(
        "/admin/tenants",
        data={"action": "topup", "slug": "hooli", "amount": "12.50", "_csrf": root.csrf},
    )
    assert topped.status_code == 200 and "12.50" in topped.text
    for section in ("numbers", "trunks", "users", "backups"):
        assert root.get(f"/admin/{section}").status_code == 200, section
    assert root.get("/admin/nothing").status_code == 404
    users = root.post(
        "/admin/users",
        data={
            "action": "create",
            "login": "ops2@linebox.example",
            "password": "second operator 1",
            "role": "operator",
            "tenant": "",
            "_csrf": root.csrf,
        },
    )
    assert users.status_code == 200 and "ops2@linebox.example" in users.text
    assert PASSWORD not in users.text
