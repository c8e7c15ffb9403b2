"""`linebox doctor`: each check says what is wrong and what to do."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
from pathlib import Path

from appliance.ops import doctor
from appliance.settings import Settings


def test_a_clock_in_the_past_is_a_problem() -> None:
    finding = doctor.check_clock(now=dt.datetime(2020, 1, 1, tzinfo=dt.UTC).timestamp())
    assert finding.status == doctor.FAIL and "NTP" in finding.fix


def test_a_missing_certificate_says_how_to_make_one(tmp_path: Path) -> None:
    finding = doctor.check_certificate(tmp_path / "none.crt")
    assert finding.status == doctor.FAIL and "linebox firstboot" in finding.fix


def test_a_certificate_about_to_expire_is_a_warning(tmp_path: Path) -> None:
    key, cert = tmp_path / "k", tmp_path / "c"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "10", "-subj", "/CN=t", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    assert doctor.check_certificate(cert).status == doctor.WARN
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=20)
    assert doctor.check_certificate(cert, now=later.timestamp()).status == doctor.FAIL


def test_disk_space_is_reported(tmp_settings: Settings) -> None:
    finding = doctor.check_disk(tmp_settings)
    assert "GiB free" in finding.detail


def test_ports_that_listen_are_found_and_the_others_named(tmp_settings: Settings) -> None:
    with socket.socket() as web:
        web.bind(("127.0.0.1", 0))
        web.listen()
        port = web.getsockname()[1]
        import dataclasses

        settings = dataclasses.replace(
            tmp_settings, web=dataclasses.replace(tmp_settings.web, port=port)
        )
        findings = {f.name: f for f in doctor.check_ports(settings)}
    assert findings[f"port {port}/tcp"].status == doctor.OK


def test_a_trunk_that_does_not_answer_is_a_warning(tmp_settings: Settings) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        tmp_settings.paths.plan_dir.mkdir(parents=True, exist_ok=True)
        tmp_settings.paths.plan_file.write_text(
            f'{{"trunks": [{{"name": "carrier", "host": "127.0.0.1:{port}"}}]}}'
        )
        (finding,) = doctor.check_trunks(tmp_settings, timeout=0.3)
    assert finding.status == doctor.WARN and finding.name == "trunk carrier"


def test_the_report_ends_with_a_verdict() -> None:
    findings = [
        doctor.Finding("a", doctor.OK, "fine"),
        doctor.Finding("b", doctor.FAIL, "broken", "mend it"),
    ]
    text = doctor.report(findings)
    assert "[ FAIL ] b: broken" in text and "fix: mend it" in text
    assert text.splitlines()[-1] == "1 problem(s) to fix, 0 warning(s)"
    assert doctor.report(findings[:1]).splitlines()[-1] == "all is well"
