"""Retention and the recordings volume.

Daily, per tenant: recordings and voicemail older than their retention are
deleted (the record keeps no link to a file that is gone), and call records
older than theirs are deleted (the daily aggregates stay). Defaults are
`DEFAULTS`; `Tenant.retention` overrides them.

Each minute the free space of the recordings volume is checked. Below
`MIN_FREE_BYTES` recording is paused, which routing reads from the
`recording_paused` appliance setting: calls keep flowing, new calls are not
recorded, and the operator is alerted. Recording resumes when twice that is
free again.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from pathlib import Path
from typing import Any

from huey import crontab

from appliance import settings as settings_mod
from appliance.worker.queue import huey

log = logging.getLogger(__name__)

DEFAULTS = {"recordings_days": 90, "voicemail_days": 90, "call_records_days": 365}
MIN_FREE_BYTES = 512 * 1024 * 1024
PAUSED_KEY = "recording_paused"


def _remove(path: str) -> None:
    data_dir = settings_mod.get().paths.data_dir
    file = Path(path)
    # Only ever delete linebox's own files.
    if file.is_absolute() and file.is_relative_to(data_dir):
        try:
            file.unlink(missing_ok=True)
        except OSError as exc:
            log.error("retention: cannot delete %s: %s", file, exc)


async def apply_retention(now: dt.datetime | None = None) -> dict[str, int]:
    from appliance.tables import CallRecord, Notice, Tenant

    now = now or dt.datetime.now(dt.UTC)
    counts = {"recordings": 0, "voicemail": 0, "call_records": 0, "notices": 0}
    tenants: list[dict[str, Any]] = await Tenant.select(
        Tenant._meta.primary_key, Tenant.retention
    ).output(load_json=True)
    for tenant in [*tenants, {"id": None, "retention": {}}]:
        days = {**DEFAULTS, **(tenant["retention"] or {})}
        of_tenant = (
            CallRecord.tenant.is_null()
            if tenant["id"] is None
            else (CallRecord.tenant == tenant["id"])
        )
        for column, key, count in (
            (CallRecord.recording, "recordings_days", "recordings"),
            (CallRecord.voicemail, "voicemail_days", "voicemail"),
        ):
            cutoff = now - dt.timedelta(days=int(days[key]))
            old = await CallRecord.select(CallRecord._meta.primary_key, column).where(
                of_tenant & (column != "") & (CallRecord.started_at < cutoff)
            )
            for row in old:
                _remove(row[column._meta.name])
            if old:
                await CallRecord.update({column: ""}).where(
                    CallRecord._meta.primary_key.is_in([r["id"] for r in old])
                )
                counts[count] += len(old)
        cutoff = now - dt.timedelta(days=int(days["call_records_days"]))
        expired = CallRecord.started_at < cutoff
        gone = await CallRecord.count().where(of_tenant & expired)
        if gone:
            for row in await CallRecord.select(CallRecord.recording, CallRecord.voicemail).where(
                of_tenant & expired
            ):
                for path in (row["recording"], row["voicemail"]):
                    if path:
                        _remove(path)
            await CallRecord.delete().where(of_tenant & expired)
            counts["call_records"] += gone
    done = Notice.state.is_in(["sent", "failed"]) & (
        Notice.created_at < now - dt.timedelta(days=DEFAULTS["call_records_days"])
    )
    counts["notices"] = await Notice.count().where(done)
    if counts["notices"]:
        await Notice.delete().where(done)
    return counts


@huey.periodic_task(crontab(hour="3", minute="17"))
def retention() -> None:
    from piccolo.utils.sync import run_sync

    log.info("retention: %s", run_sync(apply_retention()))


def recordings_dir() -> Path:
    return settings_mod.get().paths.data_dir / "recordings"


def free_bytes(path: Path) -> int | None:
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError as exc:
        log.error("cannot read the free space of %s: %s", path, exc)
        return None


async def check_recordings_volume(
    now: dt.datetime | None = None, free: int | None = None, min_free: int = MIN_FREE_BYTES
) -> bool:
    """Pause or resume recording by the free space; True while paused."""
    import json

    from appliance.notify import outbox
    from appliance.tables import ApplianceSetting, Gateway
    from appliance.worker.effects import Effects, apply_effects, transaction

    now = now or dt.datetime.now(dt.UTC)
    if free is None:
        free = free_bytes(recordings_dir())
    if free is None:
        return False
    effects = Effects()
    async with transaction():
        row = await ApplianceSetting.objects().where(ApplianceSetting.key == PAUSED_KEY).first()
        paused = row is not None
        if not paused and free < min_free:
            value = json.dumps({"since": now.isoformat(), "free_bytes": free})
            await ApplianceSetting.insert(ApplianceSetting(key=PAUSED_KEY, value=value))
            effects.need_republish(f"recording paused: {free // 2**20} MiB free")
            log.error("recordings volume has %d MiB free: recording paused", free // 2**20)
            email = (
                await Gateway.select(Gateway.config)
                .where(Gateway.channel == "email")
                .output(load_json=True)
                .first()
            )
            to = ((email or {}).get("config") or {}).get("alerts_to", "")
            notice = await outbox.add(
                key=f"alert:recording_paused:{now.isoformat()}",
                tenant=None,
                kind="alert",
                channel="email",
                to=to,
                subject="linebox: recordings volume full, recording paused",
                body=(
                    f"The recordings volume has {free // 2**20} MiB free (less than "
                    f"{min_free // 2**20} MiB). New calls are not recorded; calls are still "
                    "routed. Free some space and recording resumes by itself."
                ),
                now=now,
            )
            if notice:
                effects.notices.append(notice)
            paused = True
        elif paused and free >= 2 * min_free:
            await ApplianceSetting.delete().where(ApplianceSetting.key == PAUSED_KEY)
            effects.need_republish(f"recording resumed: {free // 2**20} MiB free")
            log.warning("recordings volume has %d MiB free: recording resumed", free // 2**20)
            paused = False
    await apply_effects(effects)
    return paused


@huey.periodic_task(crontab(minute="*"))
def recordings_volume() -> None:
    from piccolo.utils.sync import run_sync

    run_sync(check_recordings_volume())
