"""What the web tests share: a migrated SQLite database in a temp directory
with two tenants (acme, globex), their users, and logging in like a browser."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from piccolo.apps.migrations.tables import Migration

from appliance import db
from appliance import settings as settings_mod
from appliance.settings import Settings

PASSWORD = "correct horse 1"
SITE = f"""
[appliance]
timezone = "Asia/Shanghai"

[[trunks]]
name = "carrier"
host = "127.0.0.1:5090"
dids = ["4001234567", "4006668888", "4007654321"]

[[users]]
login = "root@linebox.example"
password = "{PASSWORD}"
role = "operator"

[[tenants]]
slug = "acme"
name = "艾克米"

[[tenants.users]]
login = "owner@acme.example"
password = "{PASSWORD}"
role = "owner"

[[tenants.users]]
login = "agent@acme.example"
password = "{PASSWORD}"
role = "agent"

[[tenants.extensions]]
number = "1001"
name = "李雷"
password = "ext-1001-secret"
agent_id = "8001"

[[tenants.extensions]]
number = "1002"
name = "韩梅梅"
password = "ext-1002-secret"

[[tenants.groups]]
name = "sales"
members = ["ext:1001", "ext:1002"]
ring_timeout = 15

[[tenants.schedules]]
name = "office"
weekly = ["mon-fri 09:00-18:00"]
holidays = "cn"

[[tenants.hotlines]]
number = "4001234567"
name = "Acme sales"
blacklist = ["0571*"]
  [[tenants.hotlines.routes]]
  when = {{ schedule = "office" }}
  to = "group:sales"
  [[tenants.hotlines.routes]]
  to = "ext:1002"

[[tenants.hotlines]]
number = "4006668888"
name = "Acme service"
  [[tenants.hotlines.routes]]
  to = "ext:1001"

[[tenants]]
slug = "globex"
name = "Globex"

[[tenants.users]]
login = "owner@globex.example"
password = "{PASSWORD}"
role = "owner"

[[tenants.extensions]]
number = "2001"
name = "Homer"
password = "ext-2001-secret"

[[tenants.hotlines]]
number = "4007654321"
name = "Globex main"
  [[tenants.hotlines.routes]]
  to = "ext:2001"
"""


def make_settings(tmp_path: Path) -> Settings:
    return settings_mod.load(
        environ={
            "LINEBOX_DATA_DIR": str(tmp_path),
            "LINEBOX_CONFIG": str(tmp_path / "linebox.toml"),
        }
    )


def migrate(s: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = db.configure(s.database_url)
    from appliance import piccolo_conf

    monkeypatch.setattr(piccolo_conf, "DB", engine)
    Migration._meta.db = engine
    db.migrate()


_TEMPLATES: dict[str, Path] = {}


def setup_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, site: str = SITE) -> Settings:
    """Settings of a fresh database with `site` applied (and its plan published).

    The first call per site migrates and applies (argon2 hashes cost); later
    ones copy that database file, which takes milliseconds."""
    s = make_settings(tmp_path)
    settings_mod.override(s)
    template = _TEMPLATES.get(site)
    if template is None:
        migrate(s, monkeypatch)
        from appliance.sitefile.apply import apply_site

        asyncio.run(apply_site(site, tmp_path))
        path = tmp_path / "linebox.sqlite"
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        template = Path(tempfile.mkdtemp(prefix="linebox-site-")) / "linebox.sqlite"
        shutil.copyfile(path, template)
        _TEMPLATES[site] = template
        return s
    shutil.copyfile(template, tmp_path / "linebox.sqlite")
    engine = db.configure(s.database_url)
    from appliance import piccolo_conf

    monkeypatch.setattr(piccolo_conf, "DB", engine)
    from appliance.routing.compile import publish_from_db

    asyncio.run(publish_from_db())
    return s


_META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')
_FIELD = re.compile(r'name="_csrf" value="([^"]*)"')


def csrf_of(page: str) -> str:
    m = _META.search(page) or _FIELD.search(page)
    assert m, "no CSRF token in the page"
    return m.group(1)


def login(client: TestClient, who: str, password: str = PASSWORD) -> str:
    """Log in through the form like a browser; returns the session's CSRF token."""
    client.cookies.clear()
    page = client.get("/login").text
    response = client.post(
        "/login",
        data={"login": who, "password": password, "_csrf": csrf_of(page), "next": "/account"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/account"
    return csrf_of(client.get("/account").text)


class Session:
    """A logged-in client: `.get/.post/...` send the CSRF header on unsafe methods."""

    def __init__(self, client: TestClient, who: str, password: str = PASSWORD) -> None:
        self.client = client
        self.who = who
        self.password = password
        self.csrf = ""
        self.relogin()

    def relogin(self) -> None:
        self.csrf = login(self.client, self.who, self.password)

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}) or {})
        if method.upper() not in ("GET", "HEAD"):
            headers.setdefault("X-CSRF-Token", self.csrf)
        return self.client.request(method, url, headers=headers, **kwargs)

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> Any:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> Any:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Any:
        return self.request("DELETE", url, **kwargs)
