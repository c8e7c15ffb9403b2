"""`linebox apply`: make the appliance's database match a site file.

All or nothing: the whole file is checked before anything is written, and the
writes happen in one transaction. The file is the whole truth: objects it does
not name are deleted (call records are never touched). Applying the same file
again changes nothing, rewrites no row and reports no change.

How the file's values are stored (the rest of linebox reads these):
- money as integer fen: `Tenant.balance_fen`, `Hotline.monthly_cost_cap_fen`,
  and in `Tenant.billing` (JSON, only the keys the file gives):
  `{"rates_fen_per_minute": {"tel": 30, "ext": 0}, "step_seconds": 6,
  "low_balance_fen": 3500, "suspend_below_fen": 1500}`;
- `Tenant.notify`, `Group.queue`, `Hotline.fallback`, `Hotline.routes` (JSON)
  hold the keys the file gives, as written (`Group.queue` is null when absent);
- `ApplianceSetting` rows `timezone` and `holidays` when `[appliance]` gives
  them; other keys of that table belong to other parts of linebox and are kept;
- users' passwords as argon2 hashes; extensions' SIP secrets as written;
- prompt audio copied to `<data_dir>/prompts/<tenant>/<name><suffix>`
  (`Prompt.file`), the reference as the file wrote it in `Prompt.source`.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from piccolo.columns import Column
from piccolo.engine.sqlite import SQLiteEngine, TransactionType
from piccolo.table import Table

from appliance import settings as settings_mod
from appliance.sitefile.export import export_site, export_text
from appliance.sitefile.locate import KeyPath, Locator, render
from appliance.sitefile.schema import (
    HotlineConfig,
    Route,
    SiteFile,
    TenantConfig,
    TrunkConfig,
    parse_money,
    parse_site,
)
from appliance.tables import (
    ApplianceSetting,
    CallRecord,
    Extension,
    Group,
    Hotline,
    Menu,
    Prompt,
    Schedule,
    Tenant,
    Trunk,
    User,
)

__all__ = ["ApplyResult", "apply_file", "apply_site", "export_site", "export_text"]

_hasher = PasswordHasher()

APPLIANCE_KEYS = ("timezone", "holidays", "holiday_overrides", "network")
"""The `ApplianceSetting` keys the site file owns."""


@dataclass
class ApplyResult:
    changes: list[str] = field(default_factory=list)
    """One line per object: `+ extension 1001`, `~ hotline 4001234567: ringback`,
    `- group sales` (`- group acme/sales` when the appliance has several tenants)."""
    warnings: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.changes)


# --- what the file asks for ---------------------------------------------------


@dataclass
class _Kind:
    """One table the site file fills."""

    table: type[Table]
    label: str
    key: Callable[[dict[str, Any]], Hashable]
    name: Callable[[dict[str, Any]], str]
    json_columns: tuple[str, ...] = ()
    tenant_scoped: bool = True


def _tenant_key(row: dict[str, Any]) -> Hashable:
    return (row["tenant"], row["name"])


KINDS = {
    "trunk": _Kind(
        Trunk,
        "trunk",
        lambda r: r["name"],
        lambda r: r["name"],
        ("dids", "gateways", "inbound", "did_map", "codecs"),
        tenant_scoped=False,
    ),
    "tenant": _Kind(
        Tenant,
        "tenant",
        lambda r: r["slug"],
        lambda r: r["slug"],
        ("billing", "notify", "outbound"),
        tenant_scoped=False,
    ),
    "user": _Kind(User, "user", lambda r: r["login"], lambda r: r["login"], tenant_scoped=False),
    "extension": _Kind(
        Extension, "extension", lambda r: r["number"], lambda r: r["number"], tenant_scoped=False
    ),
    "group": _Kind(Group, "group", _tenant_key, lambda r: r["name"], ("members", "queue")),
    "prompt": _Kind(Prompt, "prompt", _tenant_key, lambda r: r["name"]),
    "schedule": _Kind(Schedule, "schedule", _tenant_key, lambda r: r["name"], ("weekly",)),
    "menu": _Kind(Menu, "menu", _tenant_key, lambda r: r["name"], ("keys",)),
    "hotline": _Kind(
        Hotline,
        "hotline",
        lambda r: r["number"],
        lambda r: r["number"],
        ("blacklist", "whitelist", "blocked_regions", "routes", "fallback"),
        tenant_scoped=False,
    ),
}

# Columns whose name in the file differs; secrets are named, never shown.
_FILE_KEY = {
    "sip_password": "password",
    "password_hash": "password",
    "balance_fen": "balance",
    "monthly_cost_cap_fen": "monthly_cost_cap",
    "source": "file",
    "position": "order",
}


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _billing(tc: TenantConfig) -> dict[str, Any]:
    b = tc.billing
    if b is None:
        return {}
    return _drop_none(
        {
            "rates_fen_per_minute": None
            if b.rates_per_minute is None
            else {k: parse_money(v) for k, v in b.rates_per_minute.items()},
            "step_seconds": b.step_seconds,
            "low_balance_fen": None if b.low_balance is None else parse_money(b.low_balance),
            "suspend_below_fen": None if b.suspend_below is None else parse_money(b.suspend_below),
        }
    )


def _route(r: Route) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if r.when is not None:
        out["when"] = _drop_none({"schedule": r.when.schedule, "regions": r.when.regions})
    if r.to is not None:
        out["to"] = r.to
    if r.split is not None:
        out["split"] = dict(r.split)
    return out


def trunk_values(t: TrunkConfig) -> dict[str, Any]:
    """A trunk's columns (but its name and position), as the site file says them."""
    return {
        "host": t.host,
        "dids": t.dids,
        "gateways": t.gateways or [],
        "inbound": t.inbound or [],
        "transport": t.transport,
        "did_map": t.did_map or {},
        "max_calls": t.max_calls,
        "strip_prefix": t.strip_prefix,
        "add_prefix": t.add_prefix,
        "codecs": t.codecs or ["PCMA", "PCMU"],
    }


def _hotline(h: HotlineConfig, slug: str, position: int) -> dict[str, Any]:
    return {
        "number": h.number,
        "tenant": slug,
        "name": h.name,
        "timezone": h.timezone,
        "enabled": h.enabled,
        "schedule_override": h.schedule_override,
        "anonymous": h.anonymous,
        "caller_id": h.caller_id,
        "ringback": h.ringback,
        "record": h.record,
        "pin": h.pin,
        "blacklist": h.blacklist,
        "whitelist": h.whitelist,
        "blocked_regions": h.blocked_regions,
        "monthly_call_cap": h.monthly_call_cap,
        "monthly_cost_cap_fen": None
        if h.monthly_cost_cap is None
        else parse_money(h.monthly_cost_cap),
        "routes": [_route(r) for r in h.routes],
        "fallback": {}
        if h.fallback is None
        else _drop_none({"busy": h.fallback.busy, "no_answer": h.fallback.no_answer}),
        "position": position,
    }


@dataclass
class _Desired:
    appliance: dict[str, Any]
    rows: dict[str, dict[Hashable, dict[str, Any]]]
    passwords: dict[str, str]
    """login → plain-text password, for users whose file gives one."""
    prompt_files: dict[Hashable, tuple[str, Path]]
    """prompt key → (the file's reference, where it resolves)."""
    prompt_paths: dict[Hashable, str]
    """prompt key → `line N: tenants[0].prompts[2].file`, for warnings."""


def _desired(site: SiteFile, base_dir: Path, locator: Locator) -> _Desired:
    rows: dict[str, dict[Hashable, dict[str, Any]]] = {kind: {} for kind in KINDS}

    def put(kind: str, row: dict[str, Any]) -> None:
        rows[kind][KINDS[kind].key(row)] = row

    appliance = {}
    if site.appliance is not None:
        appliance = _drop_none(
            {k: msgspec.to_builtins(getattr(site.appliance, k)) for k in APPLIANCE_KEYS}
        )
    for i, t in enumerate(site.trunks):
        put("trunk", {"name": t.name, "position": i, **trunk_values(t)})
    passwords: dict[str, str] = {}
    for i, u in enumerate(site.users):
        put(
            "user",
            {
                "login": u.login,
                "tenant": None,
                "role": u.role,
                "password_hash": u.password_hash,
                "position": i,
            },
        )
        if u.password is not None:
            passwords[u.login] = u.password
    prompt_files: dict[Hashable, tuple[str, Path]] = {}
    prompt_paths: dict[Hashable, str] = {}
    for ti, tc in enumerate(site.tenants):
        slug = tc.slug
        tenant = {
            "slug": slug,
            "name": tc.name,
            "timezone": tc.timezone,
            "billing": _billing(tc),
            "notify": {}
            if tc.notify is None
            else _drop_none(
                {k: getattr(tc.notify, k) for k in ("sms", "email", "missed_call_sms")}
            ),
            "outbound": {}
            if tc.outbound is None
            else {
                "international": tc.outbound.international,
                "premium": tc.outbound.premium,
                "max_calls": tc.outbound.max_calls,
                "max_minutes_per_hour": tc.outbound.max_minutes_per_hour,
            },
            "position": ti,
        }
        if tc.billing is not None and tc.billing.balance is not None:
            # Without `balance` the file leaves the running balance alone.
            tenant["balance_fen"] = parse_money(tc.billing.balance)
        put("tenant", tenant)
        for i, u in enumerate(tc.users):
            put(
                "user",
                {
                    "login": u.login,
                    "tenant": slug,
                    "role": u.role,
                    "password_hash": u.password_hash,
                    "position": i,
                },
            )
            if u.password is not None:
                passwords[u.login] = u.password
        for i, e in enumerate(tc.extensions):
            put(
                "extension",
                {
                    "number": e.number,
                    "tenant": slug,
                    "name": e.name,
                    "sip_password": e.password,
                    "agent_id": e.agent_id,
                    "ringback": e.ringback,
                    "position": i,
                },
            )
        for i, g in enumerate(tc.groups):
            put(
                "group",
                {
                    "tenant": slug,
                    "name": g.name,
                    "strategy": g.strategy,
                    "ring_timeout": g.ring_timeout,
                    "members": g.members,
                    "announce_agent_id": g.announce_agent_id,
                    "survey": g.survey,
                    "sticky_days": g.sticky_days,
                    "queue": None
                    if g.queue is None
                    else _drop_none({"max_wait": g.queue.max_wait, "music": g.queue.music}),
                    "position": i,
                },
            )
        for i, p in enumerate(tc.prompts):
            row = {
                "tenant": slug,
                "name": p.name,
                "text": p.text or "",
                "file": "",
                "source": p.file or "",
                "position": i,
            }
            put("prompt", row)
            if p.file is not None:
                key = KINDS["prompt"].key(row)
                prompt_files[key] = (p.file, base_dir / p.file)
                at: KeyPath = ("tenants", ti, "prompts", i, "file")
                prompt_paths[key] = f"line {locator.line(at)}: {render(at)}"
        for i, s in enumerate(tc.schedules):
            put(
                "schedule",
                {
                    "tenant": slug,
                    "name": s.name,
                    "weekly": s.weekly,
                    "holidays": s.holidays,
                    "position": i,
                },
            )
        for i, m in enumerate(tc.menus):
            put(
                "menu",
                {
                    "tenant": slug,
                    "name": m.name,
                    "prompt": m.prompt,
                    "timeout": m.timeout,
                    "retries": m.retries,
                    "dial_extensions": m.dial_extensions,
                    "keys": m.keys,
                    "on_timeout": m.on_timeout,
                    "position": i,
                },
            )
        for i, h in enumerate(tc.hotlines):
            put("hotline", _hotline(h, slug, i))
    return _Desired(appliance, rows, passwords, prompt_files, prompt_paths)


# --- comparing with the database ----------------------------------------------


def _same(a: Any, b: Any) -> bool:
    # Order matters in lists and in split/keys tables: compare as written.
    return json.dumps(a, ensure_ascii=False) == json.dumps(b, ensure_ascii=False)


def _prompt_path(slug: str, name: str, reference: str) -> Path:
    return settings_mod.get().paths.data_dir / "prompts" / slug / (name + Path(reference).suffix)


@dataclass
class _Plan:
    result: ApplyResult
    deletes: list[tuple[str, list[int]]] = field(default_factory=list)
    updates: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)
    inserts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    appliance_set: dict[str, Any] = field(default_factory=dict)
    appliance_delete: list[str] = field(default_factory=list)
    copies: list[tuple[bytes, Path]] = field(default_factory=list)
    stale_files: list[Path] = field(default_factory=list)


async def _load(kind: _Kind, slug_of: dict[int, str]) -> dict[Hashable, dict[str, Any]]:
    rows = await kind.table.select().output(load_json=True)
    out = {}
    for row in rows:
        if "tenant" in row:
            row["tenant"] = slug_of.get(row["tenant"])
        out[kind.key(row)] = row
    return out


async def _plan(desired: _Desired, dry_run: bool) -> _Plan:
    plan = _Plan(ApplyResult(dry_run=dry_run))
    result = plan.result
    slug_of = {tid: slug for slug, tid in (await _tenant_ids()).items()}
    several = len(set(slug_of.values()) | set(desired.rows["tenant"])) > 1

    # [appliance]
    stored = {
        r["key"]: r["value"]
        for r in await ApplianceSetting.select().output(load_json=True)
        if r["key"] in APPLIANCE_KEYS
    }
    touched = [
        k
        for k in APPLIANCE_KEYS
        if k in desired.appliance
        and (k not in stored or not _same(stored[k], desired.appliance[k]))
    ]
    removed = [k for k in APPLIANCE_KEYS if k in stored and k not in desired.appliance]
    if touched or removed:
        op = "+" if not stored else "-" if not desired.appliance else "~"
        result.changes.append(f"{op} appliance: {', '.join(touched + removed)}")
    plan.appliance_set = {k: desired.appliance[k] for k in touched}
    plan.appliance_delete = removed

    for name, kind in KINDS.items():
        existing = await _load(kind, slug_of)
        wanted = desired.rows[name]

        def label(row: dict[str, Any], kind: _Kind = kind) -> str:
            shown = kind.name(row)
            if kind.tenant_scoped and several:
                shown = f"{row['tenant']}/{shown}"
            return f"{kind.label} {shown}"

        for key, row in wanted.items():
            old = existing.get(key)
            if name == "user":
                _user_password(row, old, desired.passwords.get(row["login"]), dry_run)
            if name == "prompt":
                _prompt_file(row, old, desired, key, plan)
            if name == "tenant" and old is not None:
                # The file's balance is the opening balance: once the tenant
                # exists its balance moves only by calls and top-ups (ledger).
                row.pop("balance_fen", None)
            if old is None:
                plan.inserts.append((name, row))
                result.changes.append(f"+ {label(row)}")
                continue
            diff = {
                col: value
                for col, value in row.items()
                if not col.startswith("_") and not _same(old.get(col), value)
            }
            if row.pop("_content_changed", False):
                diff.setdefault("file", row["file"])
            if diff:
                plan.updates.append((name, old["id"], diff))
                shown = dict.fromkeys(_FILE_KEY.get(col, col) for col in diff)
                result.changes.append(f"~ {label(row)}: {', '.join(shown)}")
        gone = [row for key, row in existing.items() if key not in wanted]
        if gone:
            plan.deletes.append((name, [row["id"] for row in gone]))
            result.changes.extend(f"- {label(row)}" for row in gone)
            if name == "prompt":
                plan.stale_files.extend(Path(row["file"]) for row in gone if row["file"])
        if name == "tenant" and gone:
            ids = [row["id"] for row in gone]
            calls = await CallRecord.count().where(CallRecord.tenant.is_in(ids))
            if calls:
                result.warnings.append(
                    f"{calls} call records of tenant(s) {', '.join(r['slug'] for r in gone)} "
                    "are kept, no longer linked to a tenant"
                )
    return plan


def _user_password(
    row: dict[str, Any], old: dict[str, Any] | None, plain: str | None, dry_run: bool
) -> None:
    if plain is None:
        return  # the file gives the hash itself
    if old is not None:
        try:
            if _hasher.verify(old["password_hash"], plain):
                row["password_hash"] = old["password_hash"]
                return
        except (VerificationError, InvalidHashError):
            pass
    # A dry run says the password would change without paying for a hash.
    row["password_hash"] = "(new)" if dry_run else _hasher.hash(plain)


def _prompt_file(
    row: dict[str, Any], old: dict[str, Any] | None, desired: _Desired, key: Hashable, plan: _Plan
) -> None:
    if key not in desired.prompt_files:
        if old is not None and old["file"]:
            if old["text"] and old["text"] == row["text"] and not old["source"]:
                row["file"] = old["file"]  # its speech (appliance.media.prompts), still current
                return
            plan.stale_files.append(Path(old["file"]))
        return
    reference, source = desired.prompt_files[key]
    where = desired.prompt_paths[key]
    target = _prompt_path(row["tenant"], row["name"], reference)
    try:
        data = source.read_bytes()
    except OSError:
        if (
            old is not None
            and old["source"] == reference
            and old["file"]
            and Path(old["file"]).is_file()
        ):
            row["file"] = old["file"]
            plan.result.warnings.append(
                f"{where}: {reference} not found next to the site file; "
                "keeping the copy from the last apply"
            )
        else:
            plan.result.warnings.append(
                f"{where}: {reference} not found next to the site file; the prompt has "
                "no audio until the file is there and applied again"
            )
        return
    row["file"] = str(target)
    if old is not None and old["file"] and old["file"] != str(target):
        plan.stale_files.append(Path(old["file"]))
    try:
        same = target.read_bytes() == data
    except OSError:
        same = False
    if not same:
        plan.copies.append((data, target))
        if old is not None and old["file"] == str(target):
            row["_content_changed"] = True


# --- writing ------------------------------------------------------------------


def _db_values(kind: _Kind, values: dict[str, Any], tenant_id: dict[str, int]) -> dict[str, Any]:
    out = {}
    for col, value in values.items():
        if col.startswith("_"):
            continue
        if col == "tenant":
            value = None if value is None else tenant_id[value]
        elif col in kind.json_columns:
            value = json.dumps(value, ensure_ascii=False)
        out[col] = value
    return out


async def _write(plan: _Plan) -> None:
    for key in plan.appliance_delete:
        await ApplianceSetting.delete().where(ApplianceSetting.key == key)
    for key, value in plan.appliance_set.items():
        encoded = json.dumps(value, ensure_ascii=False)
        if await ApplianceSetting.exists().where(ApplianceSetting.key == key):
            await ApplianceSetting.update({ApplianceSetting.value: encoded}).where(
                ApplianceSetting.key == key
            )
        else:
            await ApplianceSetting.insert(ApplianceSetting(key=key, value=encoded))
    deletes = dict(plan.deletes)
    # Objects first, tenants last: an extension that moves to a new tenant must
    # not be caught by the old tenant's cascade before it has moved.
    for name in reversed(KINDS):
        if name in deletes and name != "tenant":
            table = KINDS[name].table
            await table.delete().where(table._meta.primary_key.is_in(deletes[name]))
    tenant_id: dict[str, int] = {}
    for name, kind in KINDS.items():  # parents first
        if name not in ("trunk", "tenant") and not tenant_id:
            tenant_id = await _tenant_ids()
        table = kind.table
        pk = table._meta.primary_key
        for n, row_id, diff in plan.updates:
            if n == name:
                values = cast(dict[Column | str, Any], _db_values(kind, diff, tenant_id))
                await table.update(values).where(pk == row_id)
        rows = [table(**_db_values(kind, row, tenant_id)) for n, row in plan.inserts if n == name]
        if rows:
            await table.insert(*rows)
    await _opening_balances(plan)
    if "tenant" in deletes:
        await Tenant.delete().where(Tenant._meta.primary_key.is_in(deletes["tenant"]))


async def _opening_balances(plan: _Plan) -> None:
    """A new tenant's balance from the file is its opening balance, booked in
    the ledger (appliance.billing.ledger)."""
    import datetime as dt

    from appliance.tables import LedgerEntry

    ids = await _tenant_ids()
    for name, row in plan.inserts:
        if name == "tenant" and row.get("balance_fen"):
            await LedgerEntry.insert(
                LedgerEntry(
                    tenant=ids[row["slug"]],
                    ref=f"opening:{row['slug']}:{ids[row['slug']]}",
                    at=dt.datetime.now(dt.UTC),
                    kind="opening",
                    amount_fen=row["balance_fen"],
                    balance_after_fen=row["balance_fen"],
                    by="site file",
                    note="opening balance",
                )
            )


async def _tenant_ids() -> dict[str, int]:
    pk = Tenant._meta.primary_key
    return {t["slug"]: t["id"] for t in await Tenant.select(pk, Tenant.slug)}


def _write_files(plan: _Plan) -> None:
    prompts_dir = settings_mod.get().paths.data_dir / "prompts"
    written = set()
    for data, target in plan.copies:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".prompt-", dir=target.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
        written.add(target)
    for stale in plan.stale_files:
        # Only ever delete our own copies, never an installer's original.
        if stale not in written and stale.is_relative_to(prompts_dir):
            stale.unlink(missing_ok=True)


def _transaction(dry_run: bool) -> Any:
    engine = Tenant._meta.db
    if isinstance(engine, SQLiteEngine):
        # IMMEDIATE takes the write lock up front: two writers never deadlock
        # upgrading a read lock. A dry run only reads.
        return engine.transaction(
            transaction_type=TransactionType.deferred if dry_run else TransactionType.immediate
        )
    return engine.transaction()


async def apply_site(
    text: str, base_dir: Path, *, dry_run: bool = False, source: str = "site file"
) -> ApplyResult:
    """Make the database match the site file `text` (prompt files are found
    relative to `base_dir`). Raises SiteFileError, writing nothing, when the
    file has problems."""
    site = parse_site(text, source)
    desired = _desired(site, Path(base_dir), Locator(text))
    async with _transaction(dry_run):
        plan = await _plan(desired, dry_run)
        if not dry_run:
            await _write(plan)
    if dry_run:
        return plan.result
    _write_files(plan)
    from appliance.routing.compile import publish_from_db

    await publish_from_db()
    from appliance.media.prompts import render_tenant_prompts

    plan.result.warnings += await render_tenant_prompts()  # TTS; warns, never fails
    return plan.result


def apply_file(path: Path, *, dry_run: bool = False) -> ApplyResult:
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    return asyncio.run(apply_site(text, path.parent, dry_run=dry_run, source=str(path)))
