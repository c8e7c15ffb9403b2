"""The appliance booted in a container: `systemd-nspawn --boot` of a root
filesystem with the linebox package installed, on a private veth network,
probed from inside its network namespace (nsenter), never from the host's.

Builds go under build/ (gitignored): the .deb in build/, the cached Debian
tree in build/cache/rootfs/, each container's copy in build/image-test/.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build"
PACKAGING = ROOT / "packaging"
SCENARIOS = ROOT / "tests" / "integration" / "scenarios"

ADDRESS = "198.51.100.10"
"""The container's address on its veth (TEST-NET-2: routed nowhere)."""

CONTAINER_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

HOST0_NETWORK = f"""[Match]
Name=host0

[Network]
Address={ADDRESS}/24
ConfigureWithoutCarrier=yes
"""


def build_deb() -> Path:
    """The linebox .deb of this checkout (built anew: ~1 min, pip's cache kept)."""
    out = subprocess.run(
        [str(PACKAGING / "build-deb.sh"), str(BUILD)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, f"building the .deb failed:\n{out.stdout}\n{out.stderr}"
    return Path(out.stdout.strip().split(" ")[0])


def install_rootfs(flavour: str, deb: Path, target: Path) -> Path:
    out = subprocess.run(
        [str(PACKAGING / "image" / "install-rootfs.sh"), flavour, str(deb), str(target)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert out.returncode == 0, (
        f"installing the root filesystem failed:\n{out.stdout}\n{out.stderr}"
    )
    return target


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


@dataclass
class Container:
    rootfs: Path
    work: Path
    name: str = field(default_factory=lambda: f"lbt-{secrets.token_hex(4)}")
    proc: subprocess.Popen[bytes] | None = None
    leader: int = 0
    """The container's PID 1 (its systemd), as the host sees it."""
    booted_at: float = 0.0

    @property
    def console_log(self) -> Path:
        return self.work / f"{self.name}-console.log"

    def boot(self, timeout: float = 60) -> None:
        network_file = self.work / f"{self.name}-host0.network"
        network_file.write_text(HOST0_NETWORK)
        argv = [
            "systemd-nspawn",
            "--quiet",
            "--keep-unit",
            "--register=no",
            "--boot",
            f"--machine={self.name}",
            "--network-veth",
            f"--bind-ro={network_file}:/etc/systemd/network/10-host0.network",
            "-D",
            str(self.rootfs),
        ]
        self.booted_at = time.monotonic()
        with open(self.console_log, "wb") as log:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"systemd-nspawn exited ({self.proc.returncode}):\n"
                    + self.console_log.read_text(errors="replace")[-3000:]
                )
            kids = _children(self.proc.pid)
            if kids:
                self.leader = kids[0]
                break
            time.sleep(0.1)
        assert self.leader, "the container's init never started"
        # Give host0 a carrier: the host side stays unaddressed and is
        # otherwise left alone.
        veth = f"ve-{self.name}"[:15]
        for _ in range(50):
            if (
                subprocess.run(["ip", "link", "set", veth, "up"], capture_output=True).returncode
                == 0
            ):
                break
            time.sleep(0.1)

    def since_boot(self) -> float:
        return time.monotonic() - self.booted_at

    # --- running things inside -------------------------------------------------

    def run(
        self, *argv: str, timeout: float = 60, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """A command in every namespace of the container, with its own files."""
        out = subprocess.run(
            ["nsenter", "-t", str(self.leader), "-m", "-u", "-i", "-n", "-p", "--",
             "env", "-i", f"PATH={CONTAINER_PATH}", "LANG=C.UTF-8", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
        )  # fmt: skip
        if check:
            assert out.returncode == 0, f"{argv}: {out.returncode}\n{out.stdout}\n{out.stderr}"
        return out

    def net(
        self, *argv: str, timeout: float = 60, **kwargs: object
    ) -> subprocess.CompletedProcess[str]:
        """A host program in the container's network namespace only."""
        return subprocess.run(
            ["nsenter", "-t", str(self.leader), "-n", "--", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            **kwargs,  # type: ignore[call-overload]
        )

    def probe(self, *args: str) -> tuple[bool, str]:
        out = self.net(sys.executable, "-m", "tests.image.probe", *args, cwd=ROOT, timeout=30)
        return out.returncode == 0, out.stdout.strip()

    def wait_for(self, *args: str, timeout: float = 120) -> tuple[float, str]:
        """Probe until it answers; (seconds since boot, the answer)."""
        deadline = time.monotonic() + timeout
        answer = ""
        while time.monotonic() < deadline:
            ok, answer = self.probe(*args)
            if ok and not answer.startswith("5"):
                return self.since_boot(), answer
            time.sleep(1)
        raise AssertionError(
            f"{args} never answered within {timeout:.0f} s: {answer}\n{self.diagnose()}"
        )

    def diagnose(self) -> str:
        parts = [self.run("systemctl", "--no-pager", "--failed").stdout]
        for unit in ("linebox-firstboot", "linebox-network", "linebox-rtpengine", "linebox-worker",
                     "linebox-kamailio", "linebox-web"):  # fmt: skip
            parts.append(self.run("journalctl", "--no-pager", "-n", "15", "-u", unit).stdout)
        return "\n".join(parts)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            # nspawn turns SIGTERM into a clean poweroff of the container.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.leader:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.leader, signal.SIGKILL)
        self.proc = None


@contextlib.contextmanager
def booted(rootfs: Path, work: Path) -> Iterator[Container]:
    container = Container(rootfs=rootfs, work=work)
    try:
        container.boot()
        yield container
    finally:
        container.stop()
