"""`linebox apply` and `linebox export` (appliance.sitefile) against a real
temporary SQLite database: all or nothing, idempotent, the file is the whole
truth, and what export writes applies back to no change."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance import db
from appliance import settings as settings_mod
from appliance.errors import SiteFileError
from appliance.sitefile import apply as apply_mod
from appliance.sitefile.apply import apply_file, apply_site
from appliance.sitefile.export import export_site, export_text
from appliance.tables import TABLES, CallRecord, Extension, Hotline, Prompt, Tenant, User

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_FILE = ROOT / "examples" / "site.toml"
EXAMPLE = EXAMPLE_FILE.read_text(encoding="utf-8")
DEMO_FILE = ROOT / "examples" / "demo-site.toml"


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    previous = settings_mod._current
    data = tmp_path / "data"
    settings_mod.override(settings_mod.load(environ={"LINEBOX_DATA_DIR": str(data)}))
    db.configure()
    db.migrate()
    yield data
    settings_mod._current = previous


def apply(text: str, base_dir: Path = EXAMPLE_FILE.parent, **kw: Any) -> apply_mod.ApplyResult:
    return asyncio.run(apply_site(text, base_dir, **kw))


def snapshot() -> dict[str, list[dict[str, Any]]]:
    async def read() -> dict[str, list[dict[str, Any]]]:
        return {t._meta.tablename: await t.select().order_by(t.id) for t in TABLES}

    return asyncio.run(read())


def mutate(old: str, new: str, text: str = EXAMPLE) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def without_passwords(data: dict[str, Any]) -> dict[str, Any]:
    for tenant in data.get("tenants", []):
        for user in tenant.get("users", []):
            user.pop("password", None)
            user.pop("password_hash", None)
    return data


def test_the_example_applies_and_a_second_apply_changes_nothing(data_dir: Path) -> None:
    first = apply(EXAMPLE)
    assert first.changed
    assert "+ extension 1001" in first.changes
    assert "+ hotline 4001234567" in first.changes
    assert "+ group sales" in first.changes
    before = snapshot()
    second = apply(EXAMPLE)
    assert second.changes == [] and not second.changed
    assert snapshot() == before


def test_money_is_stored_in_fen(data_dir: Path) -> None:
    apply(EXAMPLE)
    tenant = Tenant.select().first().output(load_json=True).run_sync()
    assert tenant["balance_fen"] == 50000
    assert tenant["billing"] == {
        "rates_fen_per_minute": {"tel": 30, "ext": 0},
        "step_seconds": 6,
        "low_balance_fen": 3500,
        "suspend_below_fen": 1500,
    }
    hotline = Hotline.select().where(Hotline.number == "4001234567").first().run_sync()
    assert hotline["monthly_cost_cap_fen"] == 300000
    assert hotline["monthly_call_cap"] == 5000


def test_passwords_are_argon2_hashes_and_an_unchanged_one_is_no_change(data_dir: Path) -> None:
    apply(EXAMPLE)
    user = User.select().first().run_sync()
    assert user["password_hash"].startswith("$argon2id$")
    assert "correct horse" not in user["password_hash"]
    assert apply(EXAMPLE).changes == []
    changed = apply(mutate("correct horse battery staple", "another good password"))
    assert changed.changes == ["~ user owner@acme.example.cn: password"]
    assert User.select().first().run_sync()["password_hash"] != user["password_hash"]


def test_a_mistake_leaves_the_database_exactly_as_it_was(data_dir: Path) -> None:
    apply(EXAMPLE)
    before = snapshot()
    plan_before = settings_mod.get().paths.plan_file.read_bytes()
    bad_files = [
        mutate('name = "sales"', 'name = "sales'),
        mutate("ring_timeout = 20", "ringtimeout = 20"),
        mutate('"ext:1002", "tel:13912345678"]', '"ext:1002", "ext:1009"]'),
        mutate('"group:sales" = 30', '"group:sales" = 20'),
        mutate('balance = "500.00"', 'balance = "500.001"'),
        # Mostly good changes plus one mistake: none of the good ones may land.
        mutate(
            'pin = "2468"',
            'pin = "24"',
            mutate('name = "李雷 (销售)"', 'name = "Li Lei"').replace("1003", "1004"),
        ),
    ]
    for bad in bad_files:
        with pytest.raises(SiteFileError):
            apply(bad)
        assert snapshot() == before
    assert settings_mod.get().paths.plan_file.read_bytes() == plan_before


def test_a_failure_while_writing_rolls_everything_back(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    apply(EXAMPLE)
    before = snapshot()
    real_write = apply_mod._write

    async def write_then_fail(plan: Any) -> None:
        await real_write(plan)
        raise RuntimeError("disk full")

    monkeypatch.setattr(apply_mod, "_write", write_then_fail)
    smaller = mutate('number = "1003"', 'number = "1004"').replace("ext:1003", "ext:1004")
    with pytest.raises(RuntimeError):
        apply(smaller)
    assert snapshot() == before


def test_objects_missing_from_the_file_are_deleted(data_dir: Path) -> None:
    apply(EXAMPLE)
    start = EXAMPLE.index('[[tenants.extensions]]\nnumber = "1003"')
    end = EXAMPLE.index("[[tenants.groups]]")
    text = EXAMPLE[:start] + EXAMPLE[end:]
    text = text.replace('members = ["ext:1003", "ext:1002"]', 'members = ["ext:1002"]')
    result = apply(text)
    assert result.changes == ["- extension 1003", "~ group service: members"]
    numbers = [e["number"] for e in Extension.select(Extension.number).run_sync()]
    assert numbers == ["1001", "1002"]


def test_call_records_survive_whatever_the_file_deletes(data_dir: Path) -> None:
    apply(EXAMPLE)
    tenant_id = Tenant.select(Tenant.id).first().run_sync()["id"]
    CallRecord.insert(
        CallRecord(
            call_id="c1",
            tenant=tenant_id,
            hotline="4006668888",
            caller="13912345678",
            started_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
            status="answered",
        )
    ).run_sync()
    result = apply(DEMO_FILE.read_text(encoding="utf-8"), DEMO_FILE.parent)
    assert "- tenant acme" in result.changes
    assert "+ tenant demo" in result.changes
    assert any("call records" in w for w in result.warnings)
    records = CallRecord.select().run_sync()
    assert [(r["call_id"], r["hotline"], r["status"]) for r in records] == [
        ("c1", "4006668888", "answered")
    ]


def test_changes_name_the_fields_that_changed(data_dir: Path) -> None:
    apply(EXAMPLE)
    text = mutate('ringback = "welcome"', 'ringback = "menu-main"')
    text = mutate("record = true\n", "", text)
    text = mutate('name = "service"', 'name = "support"', text).replace(
        "group:service", "group:support"
    )
    result = apply(text)
    assert result.changes == [
        "+ group support",
        "- group service",
        "~ menu main: keys, on_timeout",
        "~ hotline 4001234567: ringback, record, routes",
    ]


def test_a_dry_run_reports_changes_but_writes_nothing(data_dir: Path) -> None:
    apply(EXAMPLE)
    before = snapshot()
    result = apply(mutate('pin = "2468"', 'pin = "1357"'), dry_run=True)
    assert result.changes == ["~ hotline 4006668888: pin"] and result.dry_run
    assert snapshot() == before


def test_export_applies_back_to_no_change(data_dir: Path, tmp_path: Path) -> None:
    apply(EXAMPLE)
    exported = asyncio.run(export_site())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    again = apply(exported, elsewhere)
    assert again.changes == []
    assert export_text() == exported
    # The same data as the example, except that users come back with their hash.
    assert without_passwords(tomllib.loads(exported)) == without_passwords(tomllib.loads(EXAMPLE))
    user = tomllib.loads(exported)["tenants"][0]["users"][0]
    assert user["password_hash"].startswith("$argon2id$")
    assert "password" not in user


def test_a_password_hash_in_the_file_is_stored_as_is(data_dir: Path) -> None:
    apply(EXAMPLE)
    stored = User.select().first().run_sync()["password_hash"]
    text = mutate('password = "correct horse battery staple"', f'password_hash = "{stored}"')
    assert apply(text).changes == []
    # …and the plain password still verifies against it afterwards.
    assert apply(EXAMPLE).changes == []


def test_the_demo_site_applies(data_dir: Path) -> None:
    result = apply_file(DEMO_FILE)
    assert result.warnings == []
    assert "+ hotline 4001234567" in result.changes
    assert apply_file(DEMO_FILE).changes == []
    plan = json.loads(settings_mod.get().paths.plan_file.read_text())
    assert plan["hotlines"]["4001234567"]["routes"] == [{"to": "group:sales"}]
    assert plan["tenants"]["demo"]["groups"]["sales"]["members"] == ["ext:1001", "ext:1002"]


def test_apply_publishes_the_routing_plan(data_dir: Path) -> None:
    plan_file = settings_mod.get().paths.plan_file
    assert not plan_file.exists()
    apply(EXAMPLE)
    plan = json.loads(plan_file.read_text())
    assert set(plan["hotlines"]) == {"4001234567", "4006668888"}
    assert plan["trunks"][0]["gateways"] == ["127.0.0.1:5090"]


def test_a_prompt_file_is_copied_into_the_data_dir(data_dir: Path, tmp_path: Path) -> None:
    site_dir = tmp_path / "site"
    (site_dir / "prompts").mkdir(parents=True)
    (site_dir / "prompts" / "hold-music.wav").write_bytes(b"RIFF-one")
    (site_dir / "site.toml").write_text(EXAMPLE, encoding="utf-8")
    result = apply_file(site_dir / "site.toml")
    assert result.warnings == []
    copy = data_dir / "prompts" / "acme" / "hold-music.wav"
    assert copy.read_bytes() == b"RIFF-one"
    prompt = Prompt.select().where(Prompt.name == "hold-music").first().run_sync()
    assert prompt["file"] == str(copy) and prompt["source"] == "prompts/hold-music.wav"
    assert apply_file(site_dir / "site.toml").changes == []

    (site_dir / "prompts" / "hold-music.wav").write_bytes(b"RIFF-two")
    assert apply_file(site_dir / "site.toml").changes == ["~ prompt hold-music: file"]
    assert copy.read_bytes() == b"RIFF-two"

    # Export names the file as the site file did; applied from elsewhere, the
    # missing original keeps the copy.
    exported = export_text()
    assert 'file = "prompts/hold-music.wav"' in exported
    result = apply(exported, tmp_path)
    assert result.changes == [] and copy.read_bytes() == b"RIFF-two"
    assert "keeping the copy" in result.warnings[0]

    # A prompt that goes away takes its copy with it.
    start = EXAMPLE.index('[[tenants.prompts]]\nname = "hold-music"')
    end = EXAMPLE.index("[[tenants.schedules]]")
    text = (EXAMPLE[:start] + EXAMPLE[end:]).replace(', music = "hold-music"', "")
    assert "- prompt hold-music" in apply(text, site_dir).changes
    assert not copy.exists()


def test_a_missing_prompt_file_is_a_warning_not_an_error(data_dir: Path) -> None:
    result = apply(EXAMPLE)
    line = EXAMPLE[: EXAMPLE.index('file = "prompts/hold-music.wav"')].count("\n") + 1
    assert result.warnings == [
        f"line {line}: tenants[0].prompts[2].file: prompts/hold-music.wav not found next to "
        "the site file; the prompt has no audio until the file is there and applied again"
    ]
    prompt = Prompt.select().where(Prompt.name == "hold-music").first().run_sync()
    assert prompt["file"] == "" and prompt["source"] == "prompts/hold-music.wav"
    assert 'file = "prompts/hold-music.wav"' in export_text()


def test_several_tenants_are_named_in_changes(data_dir: Path) -> None:
    beta = """
[[tenants]]
slug = "beta"
name = "Beta"

[[tenants.extensions]]
number = "2001"
password = "ext-2001-secret"

[[tenants.groups]]
name = "sales"
members = ["ext:2001"]

[[tenants.hotlines]]
number = "4008000000"
  [[tenants.hotlines.routes]]
  to = "group:sales"
"""
    apply(EXAMPLE)
    result = apply(EXAMPLE + beta)
    assert result.changes == [
        "+ tenant beta",
        "+ extension 2001",
        "+ group beta/sales",
        "+ hotline 4008000000",
    ]
    assert apply(EXAMPLE + beta).changes == []
    exported = export_text()
    assert apply(exported).changes == []
    assert [t["slug"] for t in tomllib.loads(exported)["tenants"]] == ["acme", "beta"]


def test_an_empty_file_empties_the_appliance(data_dir: Path) -> None:
    apply(EXAMPLE)
    result = apply("")
    assert "- tenant acme" in result.changes and "- appliance: timezone, holidays" in result.changes
    counts = {name: len(rows) for name, rows in snapshot().items()}
    assert set(counts.values()) == {0}
    assert tomllib.loads(export_text()) == {}


def test_moving_the_example_elsewhere_keeps_it_applying(data_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "site.toml"
    shutil.copy(EXAMPLE_FILE, copy)
    assert apply_file(copy).changed
    assert apply_file(EXAMPLE_FILE).changes == []


def test_renaming_a_tenant_moves_its_numbers_instead_of_losing_them(data_dir: Path) -> None:
    apply(EXAMPLE)
    result = apply(mutate('slug = "acme"', 'slug = "acme-cn"'))
    assert "+ tenant acme-cn" in result.changes and "- tenant acme" in result.changes
    assert "~ extension 1001: tenant" in result.changes
    assert "~ hotline 4001234567: tenant" in result.changes
    assert "+ group acme-cn/sales" in result.changes and "- group acme/sales" in result.changes
    tenant = Tenant.select().first().run_sync()
    assert tenant["slug"] == "acme-cn"
    owners = {e["number"]: e["tenant"] for e in Extension.select().run_sync()}
    assert owners == {"1001": tenant["id"], "1002": tenant["id"], "1003": tenant["id"]}
    assert len(Hotline.select().run_sync()) == 2
    assert apply(mutate('slug = "acme"', 'slug = "acme-cn"')).changes == []


def test_reordering_extensions_changes_only_their_order(data_dir: Path) -> None:
    apply(EXAMPLE)
    first = EXAMPLE.index('[[tenants.extensions]]\nnumber = "1001"')
    second = EXAMPLE.index('[[tenants.extensions]]\nnumber = "1002"')
    third = EXAMPLE.index('[[tenants.extensions]]\nnumber = "1003"')
    text = EXAMPLE[:first] + EXAMPLE[second:third] + EXAMPLE[first:second] + EXAMPLE[third:]
    assert apply(text).changes == ["~ extension 1002: order", "~ extension 1001: order"]
    exported = tomllib.loads(export_text())
    assert [e["number"] for e in exported["tenants"][0]["extensions"]] == ["1002", "1001", "1003"]


def test_operators_without_a_tenant_round_trip(data_dir: Path) -> None:
    text = EXAMPLE.replace(
        "[[tenants]]",
        '[[users]]\nlogin = "ops@linebox.example.cn"\npassword = "operator-secret"\n'
        'role = "operator"\n\n[[tenants]]',
        1,
    )
    assert "+ user ops@linebox.example.cn" in apply(text).changes
    assert (
        User.select().where(User.login == "ops@linebox.example.cn").first().run_sync()["tenant"]
        is None
    )
    exported = export_text()
    assert tomllib.loads(exported)["users"][0]["role"] == "operator"
    assert apply(exported).changes == []
