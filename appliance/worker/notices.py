"""Sending the notices in the outbox (`appliance.tables.Notice`).

A notice is claimed (state `sending`) before it is handed to its gateway, so
two deliveries of the same task never send twice. A failed send is retried
with growing delays (`BACKOFF`); after the last one the notice is `failed`.
Every outcome is stored on the notice and on its gateway (`last_ok_at`,
`last_error`) for the portal: a failing gateway is never silent.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from appliance.notify import gateways
from appliance.notify.gateways import GatewayError
from appliance.worker.queue import huey

log = logging.getLogger(__name__)

BACKOFF = (5, 20, 60, 300, 900, 1800)
"""Seconds before the 2nd, 3rd, … attempt; after the last, the notice has failed."""


@huey.task()
def send_notice(notice_id: int) -> None:
    from piccolo.utils.sync import run_sync

    state, delay = run_sync(deliver(notice_id))
    if state == "retrying" and delay:
        send_notice.schedule((notice_id,), delay=delay)


async def deliver(notice_id: int, now: dt.datetime | None = None) -> tuple[str, int]:
    """Try to send one notice now. Returns its new state and, when it will be
    retried, the delay in seconds."""
    from appliance.tables import Gateway, Notice

    now = now or dt.datetime.now(dt.UTC)
    claimed = (
        await Notice.update(
            {
                Notice.state: "sending",
                Notice.attempts: Notice.attempts + 1,
                Notice.next_attempt_at: now,
            }
        )
        .where(
            (Notice._meta.primary_key == notice_id)
            & Notice.state.is_in(["pending", "retrying"])
            & ((Notice.next_attempt_at.is_null()) | (Notice.next_attempt_at <= now))
        )
        .returning(Notice._meta.primary_key)
    )
    if not claimed:
        return "", 0  # sent, failed, being sent elsewhere, or not due yet
    notice = await Notice.objects().where(Notice._meta.primary_key == notice_id).first()
    assert notice is not None
    gateway = (
        await Gateway.select()
        .where((Gateway.channel == notice.channel) & (Gateway.enabled == True))  # noqa: E712
        .output(load_json=True)
        .first()
    )
    try:
        if gateway is None:
            what = "e-mail" if notice.channel == "email" else "SMS"
            raise GatewayError(f"no {what} gateway is configured")
        _send(gateway, notice, notice_id)
    except GatewayError as exc:
        return await _failed(notice_id, notice, gateway, exc.detail, now)
    except Exception as exc:  # a bug in a gateway must not lose the notice
        log.exception("notice %s: unexpected error", notice_id)
        return await _failed(notice_id, notice, gateway, f"{type(exc).__name__}: {exc}", now)
    await Notice.update({Notice.state: "sent", Notice.sent_at: now, Notice.last_error: ""}).where(
        Notice._meta.primary_key == notice_id
    )
    await Gateway.update({Gateway.last_ok_at: now}).where(
        Gateway._meta.primary_key == gateway["id"]
    )
    log.info("notice %s (%s %s) sent to %s", notice_id, notice.kind, notice.channel, notice.to)
    return "sent", 0


def _send(gateway: dict[str, Any], notice: Any, notice_id: int) -> None:
    config = gateway["config"] or {}
    kind = gateway["kind"]
    if notice.channel == "email":
        if kind != "smtp":
            raise GatewayError(f"e-mail gateway kind {kind!r} is not supported (use smtp)")
        gateways.send_email(config, notice.to, notice.subject, notice.body, notice.attachment)
    elif kind == "smpp":
        gateways.send_sms_smpp(config, notice.to, notice.body)
    elif kind == "webhook":
        gateways.send_sms_webhook(config, notice.to, notice.body, notice.kind, notice_id)
    else:
        raise GatewayError(f"SMS gateway kind {kind!r} is not supported (use smpp or webhook)")


async def _failed(
    notice_id: int, notice: Any, gateway: dict[str, Any] | None, error: str, now: dt.datetime
) -> tuple[str, int]:
    from appliance.tables import Gateway, Notice

    attempts = int(notice.attempts)
    if gateway is not None:
        await Gateway.update({Gateway.last_error: error, Gateway.last_error_at: now}).where(
            Gateway._meta.primary_key == gateway["id"]
        )
    if gateway is None or attempts > len(BACKOFF):
        await Notice.update({Notice.state: "failed", Notice.last_error: error}).where(
            Notice._meta.primary_key == notice_id
        )
        log.error("notice %s to %s failed for good: %s", notice_id, notice.to, error)
        return "failed", 0
    delay = BACKOFF[attempts - 1]
    await Notice.update(
        {
            Notice.state: "retrying",
            Notice.last_error: error,
            Notice.next_attempt_at: now + dt.timedelta(seconds=delay),
        }
    ).where(Notice._meta.primary_key == notice_id)
    log.warning("notice %s to %s: %s; retrying in %d s", notice_id, notice.to, error, delay)
    return "retrying", delay


async def resend_due(now: dt.datetime | None = None, stale_after: int = 60) -> int:
    """Queue the notices whose send task was lost (a worker that died between
    its commit and the enqueue, or while sending): pending or retrying ones
    overdue by `stale_after` seconds, and ones stuck in `sending`."""
    from appliance.tables import Notice

    now = now or dt.datetime.now(dt.UTC)
    cutoff = now - dt.timedelta(seconds=stale_after)
    # A send that never finished (its worker died mid-send) may or may not
    # have gone out: sending it again is the lesser harm.
    await Notice.update({Notice.state: "retrying", Notice.next_attempt_at: now}).where(
        (Notice.state == "sending") & (Notice.next_attempt_at < now - dt.timedelta(seconds=300))
    )
    due = await Notice.select(Notice._meta.primary_key).where(
        Notice.state.is_in(["pending", "retrying"]) & (Notice.next_attempt_at < cutoff)
    )
    for row in due:
        send_notice(row["id"])
    return len(due)
