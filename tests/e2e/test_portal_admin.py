"""The operator in a real browser: logs in, creates a tenant in the admin and
sees it listed; the tenant's owner cannot reach the admin at all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.integration.harness import appliance

OPERATOR_PASSWORD = "operator password 1"
OWNER_PASSWORD = "owner password 1"
SITE = f"""
[appliance]
timezone = "Asia/Shanghai"

[[trunks]]
name = "carrier"
host = "{{trunk}}"
dids = ["4001234567"]

[[users]]
login = "root@linebox.example"
password = "{OPERATOR_PASSWORD}"
role = "operator"

[[tenants]]
slug = "acme"
name = "艾克米"

[[tenants.users]]
login = "owner@acme.example"
password = "{OWNER_PASSWORD}"
role = "owner"

[[tenants.extensions]]
number = "1001"
password = "ext-1001-secret"

[[tenants.hotlines]]
number = "4001234567"
name = "Acme sales"
  [[tenants.hotlines.routes]]
  to = "ext:1001"
"""


def log_in(page: Any, base: str, login: str, password: str, then: str) -> None:
    page.goto(base + then)
    assert page.url.startswith(base + "/login")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(base + then)


def test_operator_creates_a_tenant_and_an_owner_cannot_reach_the_admin(
    browser: Any, page: Any, tmp_path: Path
) -> None:
    with appliance(tmp_path, SITE, web=True) as linebox:
        base = f"http://{linebox.settings.web.host}:{linebox.settings.web.port}"

        log_in(page, base, "root@linebox.example", OPERATOR_PASSWORD, "/admin/tenants")
        assert page.locator("h1").inner_text() == "企业用户"
        assert page.locator("tr[data-tenant=acme]").count() == 1

        form = page.locator("#new-tenant")
        form.locator("input[name=slug]").fill("initech")
        form.locator("input[name=name]").fill("英泰克")
        form.locator("input[name=opening_balance]").fill("88.80")
        form.locator("button[type=submit]").click()
        page.wait_for_selector("tr[data-tenant=initech]")
        row = page.locator("tr[data-tenant=initech]").inner_text()
        assert "英泰克" in row and "88.80" in row
        assert "initech" in page.locator("[role=status]").inner_text()

        # Still there on a fresh load, and written to the audit log.
        page.goto(base + "/admin/tenants")
        assert page.locator("tr[data-tenant=initech]").count() == 1
        page.goto(base + "/audit")
        assert "tenant:initech" in page.locator("table").inner_text()

        owner = browser.new_context(locale="zh-CN").new_page()
        try:
            log_in(owner, base, "owner@acme.example", OWNER_PASSWORD, "/hotlines")
            assert owner.locator("header nav a[href='/admin/tenants']").count() == 0
            for path in ("/admin", "/admin/tenants", "/admin/network", "/api/v1/admin/tenants"):
                response = owner.goto(base + path)
                assert response is not None and response.status == 403, path
                assert "initech" not in owner.content()
        finally:
            owner.context.close()
