"""Call records from Kamailio's call events.

Kamailio emits a few events per call (started, answered, ended; a refused call
emits one `end` that carries everything; later: recording, voicemail, survey).
The worker merges each into the call's one record, keyed by Call-ID. Merging
is idempotent and does not depend on order: a retried or redelivered event,
or an `answer` that arrives after the `end`, leaves the same row.

When a record is closed it is settled in the same transaction
(`appliance.billing.settle`): priced, charged, counted against the caps and
its notices written, exactly once. Kamailio imports this module: keep its
imports light.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

import msgspec

from appliance.worker.queue import huey

if TYPE_CHECKING:
    from appliance.worker.effects import Effects

log = logging.getLogger(__name__)

START, ANSWER, END = "start", "answer", "end"
RECORDING, VOICEMAIL, SURVEY = "recording", "voicemail", "survey"
FINAL_STATUSES = (
    "answered", "missed", "busy", "rejected", "cancelled", "failed",
    "voicemail", "capped", "suspended", "interrupted",
)  # fmt: skip
REFUSAL_STATUSES = {"Monthly Cap Reached": "capped", "Service Suspended": "suspended"}
"""Causes of the 480 refusals of `decide()` that get a status of their own."""


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
    file: str = ""
    """`recording` / `voicemail`: the audio file; with `cause` when it could
    not be made (no file) or is suspect."""
    score: int = 0
    """`survey`: the caller's satisfaction score."""
    answered_at: float = 0.0
    """`end` of an answered call: when it was answered, so the record is
    complete even if the `answer` event is late or lost."""


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

    from appliance.worker.effects import apply_effects

    async def run() -> None:
        await apply_effects(await merge_event(_decoder.decode(payload)))

    run_sync(run())


def _ts(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


async def merge_event(event: CallEvent, now: dt.datetime | None = None) -> Effects:
    """Merge one event into its call record; settle the call if this closed
    it. Returns what to do once committed."""
    from appliance.billing.settle import settle
    from appliance.tables import CallRecord, Tenant
    from appliance.worker.effects import Effects, transaction

    now = now or dt.datetime.now(dt.UTC)
    effects = Effects()
    async with transaction():
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
                row.answered_kind = event.answered_kind or row.answered_kind
            if event.type == ANSWER and row.answered_at is None:
                row.answered_at = _ts(event.at)
            elif event.type == END and event.answered_at and row.answered_at is None:
                row.answered_at = _ts(event.answered_at)

        if event.type == RECORDING and event.file:
            row.recording = event.file
        if event.type == VOICEMAIL and event.file:
            row.voicemail = event.file
        if event.type in (RECORDING, VOICEMAIL) and event.cause:
            row.recording_error = event.cause  # appliance.media.recording
        if event.type == SURVEY and event.score:
            row.survey_score = event.score

        if event.type == END and row.ended_at is None:
            row.ended_at = _ts(event.at)
            row.status = event.status
            if event.sip_code == 480 and event.cause in REFUSAL_STATUSES:
                row.status = REFUSAL_STATUSES[event.cause]
            row.sip_code = event.sip_code
            row.cause = event.cause
        elif row.ended_at is None:
            row.status = "talking" if row.answered_at else "ringing"

        if row.ended_at is not None:
            if row.answered_at is not None:
                row.talk_seconds = max(0, round((row.ended_at - row.answered_at).total_seconds()))
            ring_end = row.answered_at or row.ended_at
            row.ring_seconds = max(0, round((ring_end - row.started_at).total_seconds()))
            if settleable(row):
                effects.merge(await settle(row, now))

        await row.save()
        if event.type == VOICEMAIL and event.file:
            from appliance.worker.voicemail import voicemail_notices

            effects.notices.extend(await voicemail_notices(row, now))
    log.info("call %s: %s → %s", event.call_id, event.type, row.status)
    return effects


def settleable(row: Any) -> bool:
    """A closed record can be settled once the call's facts (tenant, hotline:
    from `start`, or from the one `end` of a refused call) are in, and, if it
    says answered, its answer (which sets the talk time) too. The sweep
    settles those whose missing event never comes."""
    return bool(
        row.ended_at is not None
        and not row.billed
        and row.kind
        and (row.status != "answered" or row.answered_at is not None)
    )
