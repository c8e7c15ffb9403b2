"""An owner in a real browser: logs in, changes where a hotline rings, sees a
real sipp call live and in the records, exports them to Excel, reads English."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openpyxl

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

[[tenants.extensions]]
number = "1002"
password = "ext-1002-secret"
agent_id = "8002"

[[tenants.hotlines]]
number = "4001234567"
name = "Acme sales"
  [[tenants.hotlines.routes]]
  to = "ext:1001"
"""


def test_owner_changes_routing_sees_the_call_live_and_exports_it(page: Any, tmp_path: Path) -> None:
    with appliance(tmp_path, SITE, web=True) as linebox:
        base = f"http://{linebox.settings.web.host}:{linebox.settings.web.port}"

        # Log in by hotline number; the portal speaks Chinese.
        page.goto(base + "/calls")
        assert page.url.startswith(base + "/login")
        page.fill("input[name=login]", "4001234567")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(base + "/calls")
        assert page.locator("h1").inner_text() == "通话记录"

        # The hotline rings 1001, whose phone is off; send it to 1002.
        page.goto(base + "/hotlines/4001234567")
        page.fill("input[name=route_0_to]", "ext:1002")
        page.click("form.stack button[type=submit]")
        assert "已保存" in page.locator("p.message").inner_text()
        page.fill("input[name=caller]", "13800138000")
        page.click("form.filters button[type=submit]")
        assert "ext:1002" in page.locator("[data-simulation]").inner_text()

        # A real call while the dashboard watches.
        linebox.agent("1002", "ext-1002-secret")
        page.goto(base + "/dashboard")
        caller = linebox.call_async("4001234567", caller="13800138000")
        live = page.locator("#live tbody tr")
        live.first.wait_for()
        assert "13800138000" in live.first.inner_text()
        assert caller.wait(30) == 0
        page.locator("#live-empty").wait_for(state="visible")

        # It is in the records, answered by 1002.
        rows = [r for r in linebox.records() if r["caller"] == "13800138000"]
        assert rows and rows[0]["answered_by"] == "1002"
        linebox.record(str(rows[0]["call_id"]))  # final
        page.goto(base + "/calls")
        first = page.locator("tbody tr").first.inner_text()
        assert "13800138000" in first and "已接听" in first and "1002" in first

        # Export to Excel, filtered to answered calls.
        page.goto(base + "/calls?status=answered")
        with page.expect_download() as download_info:
            page.click("a[data-export]")
        saved = tmp_path / "calls.xlsx"
        download_info.value.save_as(saved)
        sheet = openpyxl.load_workbook(saved, read_only=True).worksheets[0]
        table = [list(r) for r in sheet.iter_rows(values_only=True)]
        assert table[0][:2] == ["时间", "主叫"]
        assert [(r[1], r[6], r[8]) for r in table[1:]] == [("13800138000", "1002", "已接听")]

        # English.
        page.click("a[lang=en]")
        page.wait_for_url(base + "/calls")
        assert page.locator("h1").inner_text() == "Calls"
        assert page.locator("html").get_attribute("lang") == "en"
