"""Integration fixtures: each test gets its own running linebox."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import Appliance, appliance

REQUIRED = ("/usr/sbin/kamailio", "/usr/bin/rtpengine", "/usr/bin/sipp")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session", autouse=True)
def _components_installed() -> None:
    missing = [p for p in REQUIRED if shutil.which(p) is None]
    # `make test` installs these; running the suite without them is a setup
    # error, not a pass.
    assert not missing, f"missing {missing}: run the tests with `make test`"


SITE = """
[appliance]
timezone = "Asia/Shanghai"

[[trunks]]
name = "carrier"
host = "{trunk}"
dids = ["4001234567", "4007654321"]

[[tenants]]
slug = "acme"
name = "艾克米贸易有限公司"

[[tenants.users]]
login = "owner@acme.example.cn"
password = "correct horse battery staple"
role = "owner"

[[tenants.extensions]]
number = "1001"
name = "李雷"
password = "ext-1001-secret"
agent_id = "8001"

[[tenants.extensions]]
number = "1002"
name = "韩梅梅"
password = "ext-1002-secret"
agent_id = "8002"

[[tenants.extensions]]
number = "1003"
name = "王芳"
password = "ext-1003-secret"
agent_id = "8003"

[[tenants.groups]]
name = "sales"
strategy = "sequential"
ring_timeout = 5
members = ["ext:1001", "ext:1002"]

[[tenants.hotlines]]
number = "4001234567"
name = "艾克米客服热线"
blacklist = ["13300000000"]
  [[tenants.hotlines.routes]]
  to = "group:sales"

[[tenants.hotlines]]
number = "4007654321"
name = "艾克米直线"
  [[tenants.hotlines.routes]]
  to = "ext:1003"
"""

PASSWORDS = {"1001": "ext-1001-secret", "1002": "ext-1002-secret", "1003": "ext-1003-secret"}


@pytest.fixture
def linebox(tmp_path: Path) -> Iterator[Appliance]:
    with appliance(tmp_path, SITE) as app:
        yield app


@pytest.fixture
def linebox_web(tmp_path: Path) -> Iterator[Appliance]:
    with appliance(tmp_path, SITE, web=True) as app:
        yield app
