"""An owner in a real browser with the records pages: a caller leaves a real
voicemail (sipp through Kamailio and rtpengine), the owner plays it in the
inbox, which marks it heard, and deletes it; the reports page draws its
charts with ECharts; a prompt is uploaded and can be listened to."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.integration.harness import Appliance, appliance

PASSWORD = "owner password 1"
SITE = f"""
[appliance]
timezone = "Asia/Shanghai"

[[trunks]]
name = "carrier"
host = "{{trunk}}"
dids = ["4001000009"]

[[tenants]]
slug = "acme"
name = "艾克米"

[[tenants.users]]
login = "owner@acme.example"
password = "{PASSWORD}"
role = "owner"

[[tenants.hotlines]]
number = "4001000009"
name = "after hours"
  [[tenants.hotlines.routes]]
  to = "voicemail"
"""


def voicemail_row(linebox: Appliance, call_id: str) -> dict[str, Any]:
    db = linebox.settings.paths.data_dir / "linebox.sqlite"
    with sqlite3.connect(db, timeout=10) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute(
            "SELECT voicemail, voicemail_heard FROM call_record WHERE call_id = ?", (call_id,)
        ).fetchone()
    return dict(row)


def wait_until(condition: Callable[[], bool], timeout: float = 15) -> None:
    # Not page.wait_for_function: the portal's CSP forbids the eval it uses.
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def wait_for_voicemail(linebox: Appliance, call_id: str) -> Path:
    deadline = time.monotonic() + 30
    while not linebox.record(call_id).get("voicemail"):
        assert time.monotonic() < deadline, linebox.record(call_id)
        time.sleep(0.3)
    return Path(str(linebox.record(call_id)["voicemail"]))


def test_owner_plays_a_voicemail_reads_reports_and_uploads_a_prompt(
    page: Any, tmp_path: Path
) -> None:
    with appliance(tmp_path, SITE, web=True) as linebox:
        base = f"http://{linebox.settings.web.host}:{linebox.settings.web.port}"

        # A caller leaves a message.
        result = linebox.call("4001000009", caller="13912345678")
        assert result.result == "RESULT 200", result.output
        message = wait_for_voicemail(linebox, result.call_id)
        assert message.is_file()

        page.goto(base + "/voicemail")
        page.fill("input[name=login]", "owner@acme.example")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(base + "/voicemail")
        assert page.locator("h1").inner_text() == "语音信箱"
        row = page.locator("#voicemail tbody tr").first
        assert "13912345678" in row.inner_text() and "未听" in row.inner_text()

        # Playing it (a real click on the player) marks it heard.
        audio = row.locator("audio")
        box = audio.bounding_box()
        assert box is not None
        page.mouse.click(box["x"] + 16, box["y"] + box["height"] / 2)
        wait_until(lambda: (audio.evaluate("a => a.duration") or 0) > 1)
        row.locator("[data-state]").filter(has_text="已听").wait_for()
        assert voicemail_row(linebox, result.call_id)["voicemail_heard"] == 1
        page.reload()
        assert "已听" in page.locator("#voicemail tbody tr").first.inner_text()

        # Download it.
        with page.expect_download() as download_info:
            page.locator("#voicemail a[download]").first.click()
        saved = tmp_path / "message.wav"
        download_info.value.save_as(saved)
        assert saved.read_bytes() == message.read_bytes()

        # Delete it: the file goes, the call stays.
        page.once("dialog", lambda dialog: dialog.accept())
        page.locator("#voicemail form[data-confirm] button").first.click()
        page.locator("p.empty").wait_for()
        assert not message.exists()
        assert voicemail_row(linebox, result.call_id)["voicemail"] == ""

        # Reports draw their charts (ECharts served by the app, no CDN).
        page.goto(base + "/reports")
        assert page.locator("h1").inner_text() == "统计报表"
        for chart in ("day", "hour", "split", "region"):
            page.locator(f"[data-chart={chart}][data-rendered] svg").wait_for()
        assert page.locator("[data-chart=day] svg path").count() > 5

        # Upload a prompt and listen to it.
        wav = tmp_path / "hold.wav"
        subprocess.run(
            ["sox", "-n", "-r", "44100", "-c", "2", str(wav), "synth", "3", "sine", "440"],
            check=True,
        )
        page.goto(base + "/prompts")
        page.fill("#upload input[name=name]", "hold")
        page.set_input_files("#upload input[name=file]", str(wav))
        page.click("#upload button[type=submit]")
        assert "已添加" in page.locator("p.message").inner_text()
        player = page.locator('tr[data-prompt="hold"] audio')
        player.evaluate("a => a.load()")
        wait_until(lambda: (player.evaluate("a => a.duration") or 0) > 2.5)
        assert (linebox.settings.paths.data_dir / "prompts" / "acme" / "hold.wav").is_file()
