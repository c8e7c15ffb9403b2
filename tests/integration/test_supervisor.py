"""`linebox run`: starts every service, restarts one that crashes, and leaves
nothing behind when stopped, even when it is killed itself."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from appliance import services
from tests.integration.harness import LINEBOX, make_settings, pids_under

SERVICE_NAMES = ("rtpengine", "worker", "kamailio", "web")


def start_linebox(root: Path) -> tuple[subprocess.Popen[str], services.Settings, Path]:
    settings = make_settings(root)
    env = services.child_environment(settings)
    output = root / "linebox-run.out"
    proc = subprocess.Popen(
        [*LINEBOX, "run", "--demo"],
        env=env,
        stdout=output.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while "web        started" not in output.read_text():
        assert proc.poll() is None, output.read_text()
        assert time.monotonic() < deadline, output.read_text()
        time.sleep(0.2)
    return proc, settings, output


def started_pid(output: Path, name: str) -> int:
    found = re.findall(rf"{name}\s+(?:started|restarted) \(pid (\d+)\)", output.read_text())
    return int(found[-1])


def health(settings: services.Settings) -> dict[str, object]:
    url = f"http://{settings.web.host}:{settings.web.port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        return json.load(exc)


def test_run_restarts_a_crashed_service_and_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    proc, settings, output = start_linebox(tmp_path)
    try:
        text = output.read_text()
        assert "extension      1001 password demo-1001-secret" in text
        assert "owner@demo.example.cn / linebox-demo" in text
        assert health(settings)["status"] == "ok"

        kamailio = started_pid(output, "kamailio")
        os.kill(kamailio, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while "kamailio restarted" not in output.read_text():
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(0.2)
        assert "! kamailio exited with status -9" in output.read_text()
        deadline = time.monotonic() + 20
        while health(settings)["status"] != "ok":
            assert time.monotonic() < deadline, health(settings)
            time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, output.read_text()
    for name in SERVICE_NAMES:
        assert f"{name:<10} stopped" in output.read_text()
    assert pids_under(tmp_path) == []
    assert not services.tcp_open(settings.web.host, settings.web.port)


def test_killing_the_supervisor_leaves_no_orphans(tmp_path: Path) -> None:
    proc, settings, _ = start_linebox(tmp_path)
    assert pids_under(tmp_path)
    proc.kill()
    proc.wait(10)
    deadline = time.monotonic() + 15
    while pids_under(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pids_under(tmp_path) == []
    assert not services.sip_options_ok("127.0.0.1", settings.sip.port)
