"""`linebox export`: the database as a site file, in the shape of
examples/site.toml. Applying the export changes nothing; keys the file would
leave at their default are left out, so an applied file comes back as written
(users' passwords come back as `password_hash`)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import tomlkit
from tomlkit.items import AoT, InlineTable, KeyType, SingleKey, Table

from appliance.sitefile.schema import format_money
from appliance.tables import (
    ApplianceSetting,
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

HEADER = """\
linebox site file, written by `linebox export`.
`linebox apply FILE` makes an appliance match it; see examples/site.toml."""


def _table(values: dict[str, Any]) -> Table:
    table = tomlkit.table()
    for key, value in values.items():
        table.add(key, value)
    return table


def _inline(values: dict[str, Any]) -> InlineTable:
    table = tomlkit.inline_table()
    for key, value in values.items():
        # `"1" = …` rather than `1 = …`: a menu key reads as a key, not a number.
        table.add(SingleKey(key, KeyType.Basic) if key.isdigit() else key, value)
    return table


def _aot(tables: list[Table]) -> AoT:
    aot = tomlkit.aot()
    for table in tables:
        aot.append(table)
    return aot


def _if(value: Any, keep: bool) -> Any:
    return value if keep else None


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


async def _rows(table: Any) -> list[dict[str, Any]]:
    return await table.select().order_by(table.position).output(load_json=True)


def _by_tenant(rows: list[dict[str, Any]]) -> dict[int | None, list[dict[str, Any]]]:
    out: dict[int | None, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        out[row["tenant"]].append(row)
    return out


def _billing(tenant: dict[str, Any]) -> Table | None:
    billing = tenant["billing"] or {}
    if not billing and not tenant["balance_fen"]:
        return None
    rates = billing.get("rates_fen_per_minute")
    low, suspend = billing.get("low_balance_fen"), billing.get("suspend_below_fen")
    return _table(
        _clean(
            {
                "balance": format_money(tenant["balance_fen"]),
                "rates_per_minute": None
                if rates is None
                else _inline({k: format_money(v) for k, v in rates.items()}),
                "step_seconds": billing.get("step_seconds"),
                "low_balance": None if low is None else format_money(low),
                "suspend_below": None if suspend is None else format_money(suspend),
            }
        )
    )


def _user(u: dict[str, Any]) -> Table:
    return _table({"login": u["login"], "password_hash": u["password_hash"], "role": u["role"]})


def _prompt(p: dict[str, Any]) -> Table:
    if p["text"]:
        return _table({"name": p["name"], "text": p["text"]})
    # A prompt uploaded through the portal has no site-file reference: name the copy.
    return _table({"name": p["name"], "file": p["source"] or p["file"]})


def _route(r: dict[str, Any]) -> Table:
    return _table(
        _clean(
            {
                "when": _inline(r["when"]) if "when" in r else None,
                "to": r.get("to"),
                "split": _inline(r["split"]) if "split" in r else None,
            }
        )
    )


def _hotline(h: dict[str, Any]) -> Table:
    table = _table(
        _clean(
            {
                "number": h["number"],
                "name": _if(h["name"], bool(h["name"])),
                "timezone": _if(h["timezone"], bool(h["timezone"])),
                "enabled": _if(False, not h["enabled"]),
                "schedule_override": _if(h["schedule_override"], bool(h["schedule_override"])),
                "anonymous": _if(h["anonymous"], h["anonymous"] != "allow"),
                "caller_id": _if(h["caller_id"], h["caller_id"] != "caller"),
                "ringback": _if(h["ringback"], bool(h["ringback"])),
                "record": _if(True, h["record"]),
                "pin": _if(h["pin"], bool(h["pin"])),
                "blacklist": _if(h["blacklist"], bool(h["blacklist"])),
                "whitelist": _if(h["whitelist"], bool(h["whitelist"])),
                "blocked_regions": _if(h["blocked_regions"], bool(h["blocked_regions"])),
                "monthly_call_cap": h["monthly_call_cap"],
                "monthly_cost_cap": None
                if h["monthly_cost_cap_fen"] is None
                else format_money(h["monthly_cost_cap_fen"]),
            }
        )
    )
    if h["routes"]:
        table.add("routes", _aot([_route(r) for r in h["routes"]]))
    if h["fallback"]:
        table.add("fallback", _table(h["fallback"]))
    return table


async def export_site() -> str:
    """The current state of the appliance as site-file TOML."""
    doc = tomlkit.document()
    for line in HEADER.splitlines():
        doc.add(tomlkit.comment(line))

    settings = {
        r["key"]: r["value"] for r in await ApplianceSetting.select().output(load_json=True)
    }
    appliance = {
        k: settings[k]
        for k in ("timezone", "holidays", "holiday_overrides", "network")
        if settings.get(k) is not None
    }
    if appliance:
        doc.add("appliance", _table(appliance))

    trunks = await _rows(Trunk)
    if trunks:
        doc.add(
            "trunks",
            _aot(
                [
                    _table(
                        _clean(
                            {
                                "name": t["name"],
                                "host": _if(t["host"], bool(t["host"])),
                                "gateways": _if(t["gateways"], bool(t["gateways"])),
                                "inbound": _if(t["inbound"], bool(t["inbound"])),
                                "transport": _if(t["transport"], t["transport"] != "udp"),
                                "dids": t["dids"],
                                "did_map": _if(t["did_map"], bool(t["did_map"])),
                                "max_calls": _if(t["max_calls"], bool(t["max_calls"])),
                                "strip_prefix": _if(t["strip_prefix"], bool(t["strip_prefix"])),
                                "add_prefix": _if(t["add_prefix"], bool(t["add_prefix"])),
                                "codecs": _if(t["codecs"], t["codecs"] != ["PCMA", "PCMU"]),
                            }
                        )
                    )
                    for t in trunks
                ]
            ),
        )

    users = _by_tenant(await _rows(User))
    if users[None]:
        doc.add("users", _aot([_user(u) for u in users[None]]))

    extensions = _by_tenant(await _rows(Extension))
    groups = _by_tenant(await _rows(Group))
    prompts = _by_tenant(await _rows(Prompt))
    schedules = _by_tenant(await _rows(Schedule))
    menus = _by_tenant(await _rows(Menu))
    hotlines = _by_tenant(await _rows(Hotline))

    tenants = []
    for t in await _rows(Tenant):
        tid = t["id"]
        table = _table(
            _clean(
                {
                    "slug": t["slug"],
                    "name": t["name"],
                    "timezone": _if(t["timezone"], bool(t["timezone"])),
                }
            )
        )
        billing = _billing(t)
        if billing is not None:
            table.add("billing", billing)
        if t["notify"]:
            table.add("notify", _table(t["notify"]))
        if t["outbound"]:
            table.add("outbound", _table(t["outbound"]))
        sections: list[tuple[str, list[Table]]] = [
            ("users", [_user(u) for u in users[tid]]),
            (
                "extensions",
                [
                    _table(
                        _clean(
                            {
                                "number": e["number"],
                                "name": _if(e["name"], bool(e["name"])),
                                "password": e["sip_password"],
                                "agent_id": _if(e["agent_id"], bool(e["agent_id"])),
                                "ringback": _if(e["ringback"], bool(e["ringback"])),
                            }
                        )
                    )
                    for e in extensions[tid]
                ],
            ),
            (
                "groups",
                [
                    _table(
                        _clean(
                            {
                                "name": g["name"],
                                "strategy": g["strategy"],
                                "ring_timeout": g["ring_timeout"],
                                "members": g["members"],
                                "announce_agent_id": _if(True, g["announce_agent_id"]),
                                "survey": _if(True, g["survey"]),
                                "sticky_days": _if(g["sticky_days"], g["sticky_days"] != 30),
                                "queue": None if g["queue"] is None else _inline(g["queue"]),
                            }
                        )
                    )
                    for g in groups[tid]
                ],
            ),
            ("prompts", [_prompt(p) for p in prompts[tid]]),
            (
                "schedules",
                [
                    _table(
                        _clean(
                            {
                                "name": s["name"],
                                "weekly": s["weekly"],
                                "holidays": _if(s["holidays"], bool(s["holidays"])),
                            }
                        )
                    )
                    for s in schedules[tid]
                ],
            ),
            (
                "menus",
                [
                    _table(
                        _clean(
                            {
                                "name": m["name"],
                                "prompt": _if(m["prompt"], bool(m["prompt"])),
                                "timeout": m["timeout"],
                                "retries": m["retries"],
                                "dial_extensions": _if(True, m["dial_extensions"]),
                                "keys": _if(_inline(m["keys"]), bool(m["keys"])),
                                "on_timeout": _if(m["on_timeout"], bool(m["on_timeout"])),
                            }
                        )
                    )
                    for m in menus[tid]
                ],
            ),
            ("hotlines", [_hotline(h) for h in hotlines[tid]]),
        ]
        for key, items in sections:
            if items:
                table.add(key, _aot(items))
        tenants.append(table)
    if tenants:
        doc.add("tenants", _aot(tenants))
    return tomlkit.dumps(doc)


def export_text() -> str:
    """`export_site()` for synchronous callers (the command line)."""
    return asyncio.run(export_site())
