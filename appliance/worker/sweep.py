"""The record sweep: every call ends up closed and settled, even when its
`end` event never arrives (Kamailio killed mid-call, an event lost to a power
cut), and every notice ends up sent or failed.

Each minute it closes the records still `ringing` or `talking` whose call is
gone: rtpengine (which anchors every call's media) no longer knows the call,
or the call is older than any call can be (`RING_LIMIT_S`, `TALK_LIMIT_S`).
Such a record gets the status `interrupted` and a cause that says so; an
answered one is charged up to the moment the sweep found it gone.
"""

from __future__ import annotations

import datetime as dt
import logging

from huey import crontab

from appliance import settings as settings_mod
from appliance.worker.queue import huey

log = logging.getLogger(__name__)

GRACE_S = 90
"""A record younger than this is never swept: its events may still be queued."""
RING_LIMIT_S = 600
"""No call rings longer than this (ring timeouts times failovers)."""
TALK_LIMIT_S = 4 * 3600
"""Kamailio forgets a call's dialog state after 4 hours (htable `calls`)."""
BACKLOG_LIMIT = 50
"""With more tasks than this queued the sweep waits: it would close calls
whose events are still in the queue."""
INTERRUPTED_CAUSE = "end event never arrived: closed by the record sweep"


def rtpengine_calls() -> set[str] | None:
    """The Call-IDs rtpengine has sessions for, or None when it cannot tell."""
    from appliance.media.ng import NgClient, NgError

    limit = 1000
    try:
        calls = NgClient(port=settings_mod.get().media.ng_port, timeout=1.0).list_calls(limit)
    except (NgError, OSError, ValueError):
        return None
    if len(calls) >= limit:
        return None  # truncated: absence proves nothing
    return set(calls)


async def sweep_records(
    now: dt.datetime | None = None, alive: set[str] | bool | None = True
) -> dict[str, int]:
    """Close the calls that are gone and settle the closed calls that were
    waiting for an answer event that never came. `alive`: the Call-IDs known
    to be in progress (None: unknown; True: ask rtpengine)."""
    from appliance.billing.settle import settle
    from appliance.tables import CallRecord
    from appliance.worker.cdr import END, CallEvent, merge_event
    from appliance.worker.effects import Effects, apply_effects, transaction

    now = now or dt.datetime.now(dt.UTC)
    if alive is True:
        alive = rtpengine_calls()
    assert alive is None or isinstance(alive, set)
    cutoff = now - dt.timedelta(seconds=GRACE_S)
    open_rows = await CallRecord.select(
        CallRecord.call_id, CallRecord.status, CallRecord.started_at, CallRecord.answered_at
    ).where(CallRecord.status.is_in(["ringing", "talking"]) & (CallRecord.started_at < cutoff))
    closed = 0
    effects = Effects()
    for row in open_rows:
        since = row["answered_at"] or row["started_at"]
        limit = TALK_LIMIT_S if row["status"] == "talking" else RING_LIMIT_S
        gone = alive is not None and row["call_id"] not in alive
        if gone or (now - since).total_seconds() > limit:
            log.warning("call %s: %s with no end event; closing it", row["call_id"], row["status"])
            effects.merge(
                await merge_event(
                    CallEvent(
                        call_id=row["call_id"],
                        type=END,
                        at=now.timestamp(),
                        status="interrupted",
                        cause=INTERRUPTED_CAUSE,
                    ),
                    now=now,
                )
            )
            closed += 1

    # Closed as answered but the answer (and so the talk time) never came.
    waiting = await CallRecord.select(CallRecord.call_id).where(
        (CallRecord.billed == False)  # noqa: E712
        & CallRecord.ended_at.is_not_null()
        & (CallRecord.ended_at < cutoff)
    )
    settled = 0
    for row in waiting:
        async with transaction():
            record = await CallRecord.objects().where(CallRecord.call_id == row["call_id"]).first()
            if record is None or record.billed:
                continue
            effects.merge(await settle(record, now))
            await record.save()
            settled += 1
    await apply_effects(effects)
    return {"closed": closed, "settled": settled}


@huey.periodic_task(crontab(minute="*"))
def sweep() -> None:
    """Each minute: close lost calls, settle stragglers, resend lost notices."""
    from piccolo.utils.sync import run_sync

    from appliance.worker.notices import resend_due

    backlog = huey.pending_count()
    if backlog > BACKLOG_LIMIT:
        # The missing events may be among these: sweep once they are in.
        log.warning("record sweep skipped: %d tasks queued", backlog)
        return
    done = run_sync(sweep_records())
    if done["closed"] or done["settled"]:
        log.info("record sweep: %s", done)
    run_sync(resend_due())


@huey.on_startup()
def republish_on_start() -> None:
    """A worker that died between a commit that capped or suspended something
    and the re-publish leaves the plan behind the database: catch up."""
    from piccolo.utils.sync import run_sync

    from appliance.routing.compile import publish_from_db

    if getattr(huey, "_linebox_published", False):
        return
    huey._linebox_published = True  # type: ignore[attr-defined]
    try:
        run_sync(publish_from_db())
    except Exception:
        log.exception("could not re-publish the plan at start")
