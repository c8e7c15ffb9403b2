"""The Vagrantfile installers use is valid."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.image.container import ROOT


def test_vagrantfile_validates(tmp_path: pytest.TempPathFactory) -> None:
    if shutil.which("vagrant") is None:
        pytest.fail("vagrant is missing: run the tests with `make test`")
    out = subprocess.run(
        ["vagrant", "validate"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "VAGRANT_HOME": str(tmp_path),
            "VAGRANT_DOTFILE_PATH": str(tmp_path / "dot-vagrant"),
            "VAGRANT_DEFAULT_PROVIDER": "libvirt",
            "LINEBOX_SITE": str(ROOT / "examples" / "demo-site.toml"),
        },
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "validated successfully" in out.stdout
