"""The linebox package installed on Debian 12 and booted: every unit comes
up, SIP and the web answer, and a call from the trunk reaches a phone."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.image.container import ADDRESS, SCENARIOS, Container

UNITS = (
    "linebox.target",
    "linebox-firstboot.service",
    "linebox-network.service",
    "linebox-rtpengine.service",
    "linebox-worker.service",
    "linebox-kamailio.service",
    "linebox-web.service",
    "linebox-network-sync.path",
)
DEMO_SITE = "/opt/linebox/examples/demo-site.toml"
DEMO_TRUNK_PORT = 5090  # the demo site's carrier is 127.0.0.1:5090
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sip_ready(container: Container) -> float:
    seconds, answer = container.wait_for("sip", ADDRESS, "5060", timeout=120)
    assert answer.startswith("SIP/2.0 200"), answer
    return seconds


@pytest.fixture(scope="module")
def web_ready(container: Container) -> float:
    seconds, _ = container.wait_for("https", f"https://{ADDRESS}/healthz", timeout=120)
    return seconds


def test_sip_options_answered_on_the_detected_address(sip_ready: float) -> None:
    print(f"SIP answered {sip_ready:.1f} s after boot")


def test_every_unit_is_active(container: Container, sip_ready: float, web_ready: float) -> None:
    out = container.run("systemctl", "is-active", *UNITS)
    states = dict(zip(UNITS, out.stdout.split(), strict=False))
    assert all(state == "active" for state in states.values()), f"{states}\n{container.diagnose()}"


def test_debian_daemons_are_masked(container: Container) -> None:
    out = container.run("systemctl", "is-enabled", "kamailio.service", "rtpengine-daemon.service")
    assert out.stdout.split() == ["masked", "masked"]


def test_web_serves_health_and_calls_over_https(container: Container, web_ready: float) -> None:
    ok, health = container.probe("https", f"https://{ADDRESS}/healthz")
    assert ok and health.startswith("200"), health
    ok, calls = container.probe("https", f"https://{ADDRESS}/calls")
    # The calls page asks an anonymous visitor to log in, or shows itself.
    assert ok and calls[:3] in ("200", "303", "302", "401"), calls[:300]
    print(f"web answered {web_ready:.1f} s after boot")


def test_first_boot_made_secrets_and_an_operator(container: Container, web_ready: float) -> None:
    journal = container.run("journalctl", "--no-pager", "-u", "linebox-firstboot").stdout
    assert re.search(r"password:\s+\S{4}-\S{4}-\S{4}-\S{4}", journal), journal
    assert f"https://{ADDRESS}/" in journal
    listing = container.run("ls", "-ln", "/var/lib/linebox/secret_key", "/etc/linebox/tls/").stdout
    assert "linebox.crt" in listing and "linebox.key" in listing, listing
    issue = container.run("cat", "/etc/issue.d/linebox.issue").stdout
    assert "admin /" in issue


def test_doctor_finds_nothing_to_fix(
    container: Container, sip_ready: float, web_ready: float
) -> None:
    # The worker's first heartbeat may take a moment after the unit starts.
    deadline = time.monotonic() + 30
    while True:
        out = container.run("linebox", "doctor")
        if out.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "[  ok  ] linebox-kamailio.service" in out.stdout


def test_a_trunk_call_to_the_demo_hotline_reaches_a_registered_phone(
    container: Container, sip_ready: float, tmp_path: Path
) -> None:
    applied = container.run("linebox", "apply", DEMO_SITE, check=True)
    assert "hotline 4001234567" in applied.stdout
    tmp_path.chmod(0o755)
    agent = _sipp(container, tmp_path, "agent_answer.xml", 5071, "-mp", "31000", background=True)
    try:
        registered = _sipp(
            container, tmp_path, "register.xml", 5072,
            "-s", "1001", "-au", "1001", "-ap", "demo-1001-secret",
            "-key", "contact_port", "5071", "-key", "expires", "300",
        )  # fmt: skip
        assert registered == "RESULT 200", registered
        answered = _sipp(
            container, tmp_path, "caller.xml", DEMO_TRUNK_PORT,
            "-s", "4001234567", "-key", "caller_number", "13800138000", "-mp", "31100",
        )  # fmt: skip
        assert answered == "RESULT 200", f"{answered}\n{container.diagnose()}"
    finally:
        agent.kill()
        agent.wait(5)


def _sipp(
    container: Container,
    work: Path,
    scenario: str,
    port: int,
    *extra: str,
    background: bool = False,
):  # type: ignore[no-untyped-def]
    """sipp (the host's) in the container's network namespace, on loopback
    there, talking to the appliance's SIP address."""
    import subprocess

    log = work / f"{scenario}-{port}.log"
    argv = [
        "nsenter", "-t", str(container.leader), "-n", "--",
        "sipp", "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1", "-p", str(port),
        "-mi", "127.0.0.1", "-nostdin", "-trace_logs", "-log_file", str(log),
        "-m", "1", *extra, f"{ADDRESS}:5060",
    ]  # fmt: skip
    if background:
        return subprocess.Popen(
            argv, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    subprocess.run(argv, cwd=work, capture_output=True, timeout=60)
    found = re.findall(r"RESULT (?:SIP/2\.0 )?(\d{3})", log.read_text() if log.exists() else "")
    return f"RESULT {found[-1]}" if found else "RESULT none"


def test_an_address_the_web_admin_stages_reaches_networkd(container: Container) -> None:
    """The web service (user linebox) may not write /etc: what it stages in
    the data directory, the root path unit takes up (and a removal is DHCP)."""
    staged = "/var/lib/linebox/network/10-linebox.network"
    live = "/etc/systemd/network/10-linebox.network"
    text = "[Match]\nName=en* eth*\n\n[Network]\nAddress=192.0.2.10/24\n"
    as_linebox = ("runuser", "-u", "linebox", "--")
    # The package makes the directory, not the web service's first start:
    # this may run before the web is up.
    owner = container.run("stat", "-c", "%U:%G %a", "/var/lib/linebox/network")
    assert owner.stdout.strip() == "linebox:linebox 750", owner.stdout + owner.stderr
    wrote = container.run(*as_linebox, "sh", "-c", f"printf '{text}' > {staged}")
    assert wrote.returncode == 0, wrote.stderr

    def live_file() -> str:
        return container.run("cat", live).stdout

    journal = ("journalctl", "--no-pager", "-n", "30", "-u", "linebox-network-sync*")
    deadline = time.monotonic() + 20
    while "Address=192.0.2.10/24" not in live_file():
        assert time.monotonic() < deadline, container.run(*journal).stdout
        time.sleep(0.5)
    # Back to DHCP at once, while the sync may still be running.
    container.run(*as_linebox, "rm", staged, check=True)
    deadline = time.monotonic() + 20
    while live_file():
        assert time.monotonic() < deadline, container.run(*journal).stdout
        time.sleep(0.5)


def test_upgrade_keeps_the_data_and_purge_removes_it(
    container: Container, appliance_rootfs: Path, deb: Path, sip_ready: float
) -> None:
    """Last here: it ends with the package purged."""
    import shutil

    container.run("linebox", "apply", DEMO_SITE, check=True)
    shutil.copy(deb, appliance_rootfs / "var" / "tmp" / "linebox.deb")
    # An appliance installed before the network staging has no directory
    # for it: the upgrade makes it.
    container.run("rm", "-rf", "/var/lib/linebox/network", check=True)
    # Installing the package over itself takes the upgrade path: stop, replace,
    # migrate in postinst, start.
    upgraded = container.run("dpkg", "-i", "/var/tmp/linebox.deb", timeout=300)
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    exported = container.run("linebox", "export", check=True).stdout
    assert "4001234567" in exported and "owner@demo.example.cn" in exported
    owner = container.run("stat", "-c", "%U:%G %a", "/var/lib/linebox/network")
    assert owner.stdout.strip() == "linebox:linebox 750", owner.stdout + owner.stderr
    container.wait_for("sip", ADDRESS, "5060", timeout=60)
    states = container.run("systemctl", "is-active", *UNITS[2:]).stdout.split()
    assert states == ["active"] * len(UNITS[2:]), f"{states}\n{container.diagnose()}"

    purged = container.run("dpkg", "--purge", "linebox", timeout=300)
    assert purged.returncode == 0, purged.stdout + purged.stderr
    left = container.run("ls", "-d", "/var/lib/linebox", "/etc/linebox", "/opt/linebox/venv")
    assert left.stdout.strip() == "", left.stdout
    states = container.run("systemctl", "is-active", "linebox-kamailio", "linebox-web").stdout
    assert "active\n" not in states.replace("inactive", "")
