"""The prepaid balance's ledger: opening balances, top-ups and adjustments,
each with who booked it, when, how much and the balance after.

A top-up that lifts the balance back over `suspend_below` restores the
tenant's hotlines (the plan is re-published) and re-arms the low-balance
notice. Each booking has a `ref`: booking the same ref twice books it once.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from appliance.billing.pricing import BillingSettings
from appliance.errors import LineboxError
from appliance.worker.effects import Effects, apply_effects, transaction

KINDS = ("opening", "topup", "adjust")


class LedgerError(LineboxError):
    error_id = "ledger-error"


@dataclass(frozen=True)
class Booking:
    ref: str
    amount_fen: int
    balance_after_fen: int
    duplicate: bool
    """True when `ref` had been booked already (nothing changed)."""


async def book(
    tenant_slug: str,
    amount_fen: int,
    *,
    by: str,
    kind: str = "topup",
    note: str = "",
    ref: str | None = None,
    now: dt.datetime | None = None,
) -> Booking:
    """Book money into (or, for an adjustment, out of) a tenant's balance,
    re-publishing the plan when that restores its hotlines."""
    async with transaction():
        booking, effects = await book_in_transaction(
            tenant_slug, amount_fen, by=by, kind=kind, note=note, ref=ref, now=now
        )
    await apply_effects(effects)
    return booking


async def book_in_transaction(
    tenant_slug: str,
    amount_fen: int,
    *,
    by: str,
    kind: str = "topup",
    note: str = "",
    ref: str | None = None,
    now: dt.datetime | None = None,
) -> tuple[Booking, Effects]:
    from appliance.billing.settle import check_balance, load_tenant
    from appliance.tables import LedgerEntry, Tenant

    if kind not in KINDS:
        raise LedgerError(f"unknown ledger entry kind {kind!r}: use one of {', '.join(KINDS)}")
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool):
        raise LedgerError("amounts are integer fen")
    if kind == "topup" and amount_fen <= 0:
        raise LedgerError("a top-up must be a positive amount")
    now = now or dt.datetime.now(dt.UTC)
    ref = ref or f"{kind}:{uuid.uuid4()}"
    found = await Tenant.select(Tenant._meta.primary_key).where(Tenant.slug == tenant_slug).first()
    if found is None:
        raise LedgerError(f"no tenant {tenant_slug!r}")
    existing = await LedgerEntry.select().where(LedgerEntry.ref == ref).first()
    if existing is not None:
        return (
            Booking(ref, existing["amount_fen"], existing["balance_after_fen"], duplicate=True),
            Effects(),
        )
    await Tenant.update(
        {Tenant.balance_fen: Tenant.balance_fen + amount_fen}, use_auto_update=False
    ).where(Tenant._meta.primary_key == found["id"])
    tenant = await load_tenant(found["id"])
    assert tenant is not None
    balance = int(tenant["balance_fen"])
    await LedgerEntry.insert(
        LedgerEntry(
            tenant=tenant["id"],
            ref=ref,
            at=now,
            kind=kind,
            amount_fen=amount_fen,
            balance_after_fen=balance,
            by=by,
            note=note,
        )
    )
    effects = await check_balance(
        tenant, BillingSettings.of(tenant["billing"]), balance, now, cause=ref
    )
    return Booking(ref, amount_fen, balance, duplicate=False), effects
