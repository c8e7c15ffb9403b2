"""The appliance image booted under QEMU (TCG: no KVM here), probed from the
host through port forwards on 127.0.0.1: SIP, the web, every unit; a backup
made on one boot is restored on a fresh boot of the image, data intact.

Slow (minutes per boot): `make image-test` runs it (LINEBOX_VM_TEST=1) after
`make image`; `make test` skips it. Boot times are printed (pytest -s) and
belong in docs/performance.md."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.image.container import BUILD, ROOT
from tests.image.probe import https, sip

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("LINEBOX_VM_TEST") != "1", reason="make image-test runs the VM tests"
    ),
]

BOX = BUILD / "linebox-libvirt.box"
VIRTUALBOX_BOX = BUILD / "linebox-virtualbox.box"
GUEST = ("10.0.2.15", 5060)
"""QEMU user networking's guest address: SIP requests are addressed to it."""
VAGRANT_KEY = next(
    Path("/usr/share/rubygems-integration/all/gems").glob("vagrant-*/keys/vagrant"), None
)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class VM:
    disk: Path
    work: Path
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0

    def __post_init__(self) -> None:
        self.sip_port = free_port(socket.SOCK_DGRAM)
        self.web_port = free_port()
        self.ssh_port = free_port()

    def boot(self) -> None:
        forwards = (
            f"hostfwd=udp:127.0.0.1:{self.sip_port}-:5060,"
            f"hostfwd=tcp:127.0.0.1:{self.web_port}-:443,"
            f"hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22"
        )
        argv = [
            "qemu-system-x86_64", "-accel", "tcg,thread=multi", "-cpu", "max",
            "-smp", "2", "-m", "1536", "-display", "none", "-monitor", "none",
            "-no-reboot", "-serial", f"file:{self.work / 'serial.log'}",
            "-drive", f"file={self.disk},format=qcow2,if=virtio",
            "-netdev", f"user,id=n0,{forwards}", "-device", "virtio-net-pci,netdev=n0",
        ]  # fmt: skip
        self.started = time.monotonic()
        with open(self.work / "qemu.err", "wb") as err:
            self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def wait(self, what: str, check, timeout: float = 900) -> float:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            assert self.proc and self.proc.poll() is None, f"QEMU exited\n{self.serial()}"
            with contextlib.suppress(Exception):
                last = check()
                if last:
                    return self.elapsed()
            time.sleep(2)
        raise AssertionError(f"{what} not reached in {timeout:.0f} s ({last})\n{self.serial()}")

    def serial(self) -> str:
        path = self.work / "serial.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def ssh(self, command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ssh", "-i", str(self.work / "key"), "-p", str(self.ssh_port),
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR", "vagrant@127.0.0.1", command],
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def scp(self, source: str, target: str) -> None:
        subprocess.run(
            ["scp", "-i", str(self.work / "key"), "-P", str(self.ssh_port),
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "LogLevel=ERROR", source, target],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture(scope="module")
def box_disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert BOX.exists(), "run `make image` first"
    assert VAGRANT_KEY is not None, "vagrant's insecure key is missing: install vagrant"
    work = tmp_path_factory.mktemp("box")
    with tarfile.open(BOX) as tar:
        tar.extract("box.img", work)
    return work / "box.img"


@contextlib.contextmanager
def booted(box_disk: Path, work: Path) -> Iterator[VM]:
    """A fresh appliance: a new overlay on the box's disk, as a new VM would."""
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(VAGRANT_KEY, work / "key")  # type: ignore[arg-type]
    os.chmod(work / "key", 0o600)
    overlay = work / "disk.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(box_disk), "-F", "qcow2",
         str(overlay)],
        check=True,
    )  # fmt: skip
    vm = VM(disk=overlay, work=work)
    try:
        vm.boot()
        yield vm
    finally:
        vm.stop()


def _ready(vm: VM) -> dict[str, float]:
    times = {}
    times["sip"] = vm.wait(
        "SIP OPTIONS", lambda: sip("127.0.0.1", vm.sip_port, GUEST).startswith("SIP/2.0 200")
    )
    times["web"] = vm.wait(
        "HTTPS /healthz",
        lambda: https(f"https://127.0.0.1:{vm.web_port}/healthz").startswith("200"),
    )
    times["ssh"] = vm.wait("SSH", lambda: vm.ssh("true", timeout=30).returncode == 0)
    return times


def test_image_boots_answers_and_restores_a_backup(box_disk: Path, tmp_path: Path) -> None:
    archive = tmp_path / "backup.tar.gz"
    with booted(box_disk, tmp_path / "first") as vm:
        times = _ready(vm)
        print(f"\nfirst boot under TCG: SIP {times['sip']:.0f} s, web {times['web']:.0f} s")
        units = vm.ssh("systemctl is-active linebox.target linebox-rtpengine linebox-worker "
                       "linebox-kamailio linebox-web")  # fmt: skip
        assert units.stdout.split() == ["active"] * 5, units.stdout + units.stderr
        assert "admin /" in vm.ssh("cat /etc/issue.d/linebox.issue").stdout
        doctor = vm.ssh("sudo linebox doctor")
        assert doctor.returncode == 0, doctor.stdout
        vm.scp(str(ROOT / "examples" / "demo-site.toml"), "vagrant@127.0.0.1:/tmp/site.toml")
        applied = vm.ssh("sudo linebox apply /tmp/site.toml")
        assert applied.returncode == 0, applied.stderr
        made = vm.ssh(
            "sudo install -d -o linebox -g linebox /var/lib/linebox/recordings "
            "/var/lib/linebox/voicemail && "
            "echo hello | sudo tee /var/lib/linebox/recordings/call-1.wav "
            "/var/lib/linebox/voicemail/vm-1.wav >/dev/null && "
            "sudo linebox backup -o /tmp/backup.tar.gz && sudo chmod a+r /tmp/backup.tar.gz"
        )
        assert made.returncode == 0, made.stdout + made.stderr
        vm.scp("vagrant@127.0.0.1:/tmp/backup.tar.gz", str(archive))

    with booted(box_disk, tmp_path / "second") as vm:
        times = _ready(vm)
        print(f"fresh boot under TCG: SIP {times['sip']:.0f} s, web {times['web']:.0f} s")
        before = vm.ssh("sudo linebox export").stdout
        assert "4001234567" not in before
        vm.scp(str(archive), "vagrant@127.0.0.1:/tmp/backup.tar.gz")
        restored = vm.ssh("sudo linebox restore --yes /tmp/backup.tar.gz")
        assert restored.returncode == 0, restored.stdout + restored.stderr
        after = vm.ssh("sudo linebox export").stdout
        assert "4001234567" in after and "owner@demo.example.cn" in after
        files = vm.ssh(
            "sudo cat /var/lib/linebox/recordings/call-1.wav /var/lib/linebox/voicemail/vm-1.wav"
        )
        assert files.stdout.split() == ["hello", "hello"]
        # restore starts the services again and returns: under TCG the web
        # binds its port some seconds after Kamailio answers.
        vm.wait(
            "SIP after restore",
            lambda: sip("127.0.0.1", vm.sip_port, GUEST).startswith("SIP/2.0 200"),
            timeout=300,
        )
        vm.wait(
            "HTTPS /healthz after restore",
            lambda: https(f"https://127.0.0.1:{vm.web_port}/healthz").startswith("200"),
            timeout=300,
        )
        doctor = vm.ssh("sudo linebox doctor")
        assert doctor.returncode == 0, doctor.stdout


def test_virtualbox_box_holds_the_same_disk(box_disk: Path, tmp_path: Path) -> None:
    """No VirtualBox here: the box is checked as Vagrant's virtualbox provider
    reads it (metadata, the OVF and the disk it names), and its VMDK must hold
    byte for byte the disk the libvirt box boots above."""
    assert VIRTUALBOX_BOX.exists(), "run `make image` first"
    with tarfile.open(VIRTUALBOX_BOX) as tar:
        assert sorted(tar.getnames()) == [
            "Vagrantfile", "box-disk001.vmdk", "box.ovf", "metadata.json",
        ]  # fmt: skip
        tar.extractall(tmp_path)  # our own build's box
    assert json.loads((tmp_path / "metadata.json").read_text())["provider"] == "virtualbox"
    assert 'default_nic_type = "virtio"' in (tmp_path / "Vagrantfile").read_text()

    ns = "http://schemas.dmtf.org/ovf/envelope/1"
    ovf = {"ovf": ns}
    envelope = ElementTree.parse(tmp_path / "box.ovf").getroot()
    file = envelope.find("ovf:References/ovf:File", ovf)
    disk = envelope.find("ovf:DiskSection/ovf:Disk", ovf)
    assert file is not None and disk is not None
    attr = f"{{{ns}}}"
    assert file.get(attr + "href") == "box-disk001.vmdk"
    assert disk.get(attr + "fileRef") == file.get(attr + "id")

    vmdk = tmp_path / "box-disk001.vmdk"
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "--output=json", str(vmdk)],
            check=True, capture_output=True, text=True,
        ).stdout
    )  # fmt: skip
    assert info["format"] == "vmdk"
    assert info["format-specific"]["data"]["create-type"] == "streamOptimized"
    assert int(disk.get(attr + "capacity", "0")) == info["virtual-size"]
    same = subprocess.run(
        ["qemu-img", "compare", "-f", "vmdk", "-F", "qcow2", str(vmdk), str(box_disk)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert same.returncode == 0, same.stdout + same.stderr
