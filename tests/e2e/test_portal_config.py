"""An owner in a real browser sets up a new phone: creates an extension and
sees its SIP password once, registers a real sipp phone with it, puts the
extension in the group the hotline rings, and a real call reaches it; then
reads the page in English."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.integration.harness import appliance

PASSWORD = "owner password 1"
SITE = f"""
[appliance]
timezone = "Asia/Shanghai"

[[trunks]]
name = "carrier"
host = "{{trunk}}"
dids = ["4001234567"]

[[tenants]]
slug = "acme"
name = "艾克米"

[[tenants.users]]
login = "owner@acme.example"
password = "{PASSWORD}"
role = "owner"

[[tenants.extensions]]
number = "1001"
password = "ext-1001-secret"

[[tenants.groups]]
name = "sales"
members = ["ext:1001"]
ring_timeout = 10

[[tenants.hotlines]]
number = "4001234567"
name = "Acme sales"
  [[tenants.hotlines.routes]]
  to = "group:sales"
"""


def test_owner_adds_a_phone_sees_its_password_once_and_it_takes_calls(
    page: Any, tmp_path: Path
) -> None:
    with appliance(tmp_path, SITE, web=True) as linebox:
        base = f"http://{linebox.settings.web.host}:{linebox.settings.web.port}"
        page.goto(base + "/login")
        page.fill("input[name=login]", "owner@acme.example")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(base + "/**")

        # A new extension from the nav; the appliance makes its SIP password.
        page.goto(base + "/extensions")
        assert page.locator("h1").inner_text() == "分机"
        form = page.locator("form[data-create]")
        form.locator("input[name=number]").fill("1003")
        form.locator("input[name=name]").fill("王芳")
        form.locator("input[name=agent_id]").fill("8003")
        form.locator("button[type=submit]").click()
        shown = page.locator("[data-sip-password]")
        password = shown.inner_text().strip()
        assert len(password) == 16 and password.isalnum()
        assert "仅此一次" in page.content()

        # Shown once: not on the extension's page again, nor in the list.
        page.goto(base + "/extensions/1003")
        assert page.locator("[data-sip-password]").count() == 0
        assert password not in page.content()
        page.goto(base + "/extensions")
        assert "王芳" in page.locator("table").inner_text()
        assert password not in page.content()

        # A real phone registers with it (Kamailio checks the digest against
        # the re-published plan); a wrong password does not.
        assert linebox.register("1003", "not-the-password").result != "RESULT 200"
        linebox.agent("1003", password)

        # Into the group the hotline rings, in place of 1001 (whose phone is off).
        page.click("nav a[href='/groups']")
        page.click("a[href^='/groups/sales']")
        page.fill("textarea[name=members]", "ext:1003")
        page.locator("form.stack button[type=submit]").first.click()
        assert "已保存" in page.locator("p.message").inner_text()
        assert page.locator("textarea[name=members]").input_value() == "ext:1003"

        # The next call reaches the new phone.
        result = linebox.call("4001234567", caller="13800138000")
        assert result.result == "RESULT 200", result.output
        record = linebox.record(result.call_id)
        assert (record["status"], record["answered_by"], record["agent_id"]) == (
            "answered",
            "1003",
            "8003",
        )

        # English.
        page.click("a[lang=en]")
        page.wait_for_url(base + "/groups/sales**")
        assert page.locator("h1").inner_text() == "Group sales"
        assert page.locator("html").get_attribute("lang") == "en"
        page.click("nav a[href='/extensions']")
        assert page.locator("h1").inner_text() == "Extensions"
        assert page.locator("form[data-create] button[type=submit]").inner_text() == "Create"
