"""Call records from Kamailio's call events.

Kamailio emits a few events per call (started, answered, ended; a refused call
emits one `end` that carries everything). The worker merges each into the
call's one record, keyed by Call-ID. Merging is idempotent and does not
depend on order: a retried or redelivered event, or an `answer` that arrives
after the `end`, leaves the same row.
"""

from __future__ import annotations

import datetime as dt
import logging

import msgspec

from appliance.worker.queue import huey

log = logging.getLogger(__name__)

START, ANSWER, END = "start", "answer", "end"
FINAL_STATUSES = ("answered", "missed", "busy", "rejected", "cancelled", "failed")


class CallEvent(msgspec.Struct, frozen=True, omit_defaults=True):
    call_id: str
    type: str
    at: float
    """Unix time of the event, taken by Kamailio."""
    kind: str = ""
    tenant: str = ""
    hotline: str = ""
    caller: str = ""
    caller_area_code: str = ""
    caller_region: str = ""
    called: str = ""
    route: str = ""
    answered_by: str = ""
    answered_kind: str = ""
    """What answered: `ext` (an extension) or `tel` (a number via the trunk)."""
    agent_id: str = ""
    status: str = ""
    sip_code: int = 0
    cause: str = ""


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(CallEvent)


def encode_event(event: CallEvent) -> bytes:
    return _encoder.encode(event)


def status_for_failure(code: int) -> str:
    """The record status of a call that ended with this final SIP reply."""
    if code == 487:
        return "cancelled"
    if code in (486, 600):
        return "busy"
    if code in (408, 480, 404):
        return "missed"
    if code in (403, 603):
        return "rejected"
    return "failed"


@huey.task(retries=5, retry_delay=1)
def call_event(payload: bytes) -> None:
    """Merge one call event into its call record."""
    from piccolo.utils.sync import run_sync

    run_sync(merge_event(_decoder.decode(payload)))


def _ts(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


async def merge_event(event: CallEvent) -> None:
    from appliance.tables import CallRecord, Tenant

    async with CallRecord._meta.db.transaction():
        row = await CallRecord.objects().where(CallRecord.call_id == event.call_id).first()
        if row is None:
            # Facts start empty: whichever event knows them first fills them in.
            row = CallRecord(
                call_id=event.call_id, started_at=_ts(event.at), status="ringing", kind=""
            )

        if event.type in (START, END):
            # Facts of the call: the first event that knows them sets them.
            for name in (
                "kind",
                "hotline",
                "caller",
                "caller_area_code",
                "caller_region",
                "called",
                "route",
            ):
                value = getattr(event, name)
                if value and not getattr(row, name):
                    setattr(row, name, value)
            if event.tenant and row.tenant is None:
                tenant = (
                    await Tenant.select(Tenant._meta.primary_key)
                    .where(Tenant.slug == event.tenant)
                    .first()
                )
                if tenant is not None:
                    row.tenant = tenant["id"]
            if event.type == START and _ts(event.at) < row.started_at:
                row.started_at = _ts(event.at)

        if event.type == ANSWER or (event.type == END and event.answered_by):
            if event.answered_by:
                row.answered_by = event.answered_by
                row.agent_id = event.agent_id or row.agent_id
            if event.type == ANSWER and row.answered_at is None:
                row.answered_at = _ts(event.at)

        if event.type == END and row.ended_at is None:
            row.ended_at = _ts(event.at)
            row.status = event.status
            row.sip_code = event.sip_code
            row.cause = event.cause
        elif row.ended_at is None:
            row.status = "talking" if row.answered_at else "ringing"

        if row.ended_at is not None:
            if row.answered_at is not None:
                row.talk_seconds = max(0, round((row.ended_at - row.answered_at).total_seconds()))
            ring_end = row.answered_at or row.ended_at
            row.ring_seconds = max(0, round((ring_end - row.started_at).total_seconds()))

        await row.save()
    log.info("call %s: %s → %s", event.call_id, event.type, row.status)
