"""Trunks in the site file, the plan and the export; the worker's record of
gateways going down and coming back, with the operator's alert."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path

from appliance.routing.compile import compile_plan
from appliance.sitefile.apply import apply_site
from appliance.sitefile.export import export_site
from appliance.tables import Gateway, Notice, TrunkStatus
from appliance.worker import trunks

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_FILE = ROOT / "examples" / "site.toml"
EXAMPLE = EXAMPLE_FILE.read_text(encoding="utf-8")
DIDS = 'dids = ["4001234567", "4006668888"]\n'
FULL = (
    DIDS
    + 'gateways = ["192.0.2.1:5060", "192.0.2.2"]\n'
    + 'inbound = ["192.0.2.0/28"]\n'
    + 'transport = "tcp"\n'
    + 'did_map = { "02158881234" = "4001234567" }\n'
    + "max_calls = 30\n"
    + 'strip_prefix = "+86"\n'
    + 'add_prefix = "0"\n'
    + 'codecs = ["PCMA"]\n'
)


def test_a_trunks_keys_reach_the_plan_and_come_back_in_the_export(database: object) -> None:
    text = EXAMPLE.replace(DIDS, FULL, 1).replace(
        'number = "4001234567"\n', 'number = "4001234567"\ncaller_id = "hotline"\n', 1
    )
    asyncio.run(apply_site(text, EXAMPLE_FILE.parent))
    plan = asyncio.run(compile_plan())
    (trunk,) = plan.trunks
    assert trunk.gateways == ("192.0.2.1:5060", "192.0.2.2")
    assert trunk.sources == ("192.0.2.0/28",)
    assert trunk.did_map == {"02158881234": "4001234567"}
    assert (trunk.transport, trunk.max_calls, trunk.codecs) == ("tcp", 30, ("PCMA",))
    assert trunk.dial("+8613800138000") == "013800138000"
    assert plan.hotlines["4001234567"].caller_id == "hotline"
    assert plan.trunk_for_source("192.0.2.9", 5060) is trunk

    exported = tomllib.loads(asyncio.run(export_site()))
    assert exported["trunks"][0] == {
        "name": "unicom",
        "host": "127.0.0.1:5090",
        "gateways": ["192.0.2.1:5060", "192.0.2.2"],
        "inbound": ["192.0.2.0/28"],
        "transport": "tcp",
        "dids": ["4001234567", "4006668888"],
        "did_map": {"02158881234": "4001234567"},
        "max_calls": 30,
        "strip_prefix": "+86",
        "add_prefix": "0",
        "codecs": ["PCMA"],
    }
    hotline = next(h for h in exported["tenants"][0]["hotlines"] if h["number"] == "4001234567")
    assert hotline["caller_id"] == "hotline"


def test_the_short_form_trunk_exports_as_written(database: object) -> None:
    asyncio.run(apply_site(EXAMPLE, EXAMPLE_FILE.parent))
    exported = tomllib.loads(asyncio.run(export_site()))
    assert exported["trunks"] == [
        {"name": "unicom", "host": "127.0.0.1:5090", "dids": ["4001234567", "4006668888"]}
    ]


def test_a_gateway_going_down_is_kept_and_alerted_once(database: object) -> None:
    Gateway.insert(
        Gateway(channel="email", kind="smtp", config={"alerts_to": "noc@reseller.example.cn"})
    ).run_sync()

    down = asyncio.run(trunks.record("unicom", "192.0.2.1:5060", False, 1000.0))
    assert len(down) == 1
    # The same state again (another process's report) alerts nobody, nor
    # does a report older than the one kept.
    assert asyncio.run(trunks.record("unicom", "192.0.2.1:5060", False, 1001.0)) == []
    assert asyncio.run(trunks.record("unicom", "192.0.2.1:5060", True, 999.0)) == []
    rows = TrunkStatus.select().run_sync()
    assert [(r["gateway"], r["up"]) for r in rows] == [("192.0.2.1:5060", False)]

    up = asyncio.run(trunks.record("unicom", "192.0.2.1:5060", True, 1002.0))
    assert len(up) == 1
    notices = Notice.select(Notice.kind, Notice.to, Notice.subject).run_sync()
    assert [(n["kind"], n["to"]) for n in notices] == [("alert", "noc@reseller.example.cn")] * 2
    assert "故障" in notices[0]["subject"] and "恢复" in notices[1]["subject"]
    assert TrunkStatus.select(TrunkStatus.up).first().run_sync() == {"up": True}
