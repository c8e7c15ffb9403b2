"""Image fixtures: the .deb built from this checkout, installed into a
cached Debian 12 root filesystem, booted once per session with
`systemd-nspawn --boot` on a private veth network."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.image.container import BUILD, Container, booted, build_deb, install_rootfs

TOOLS = ("systemd-nspawn", "nsenter", "debootstrap", "dpkg-buildpackage", "sipp", "ip")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/image/" in str(item.fspath):
            item.add_marker(pytest.mark.image)


@pytest.fixture(scope="session")
def image_tools() -> None:
    if os.geteuid() != 0:
        pytest.skip("the image tests boot a container: run them as root (make test does)")
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    # `make test` installs these; without them it is a setup error, not a pass.
    assert not missing, f"missing {missing}: run the tests with `make test`"


@pytest.fixture(scope="session")
def deb(image_tools: None) -> Path:
    return build_deb()


@pytest.fixture(scope="session")
def appliance_rootfs(deb: Path) -> Iterator[Path]:
    work = BUILD / "image-test" / f"rootfs-{os.getpid()}"
    try:
        yield install_rootfs("base", deb, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def container(appliance_rootfs: Path) -> Iterator[Container]:
    """The appliance, booted once for every test here (they only look)."""
    with booted(appliance_rootfs, appliance_rootfs.parent) as running:
        yield running
