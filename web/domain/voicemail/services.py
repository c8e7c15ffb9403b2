"""The voicemail inbox (语音信箱): the call records that carry a message.

Who sees a message: an owner their tenant's, an operator every tenant's. An
agent none: voicemail is the hotline's mailbox (`voicemail` in a route or a
fallback chain), not an extension's, and the call record does not say which
agents rang before the call reached it, so no message can be told to be
theirs. The routes are limited to owners and operators.

The audio is served only through these routes, after the same checks as
the listing; the path stored on the record must resolve inside the data
directory, so a record pointing anywhere else serves (and deletes) nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from appliance.auth.core import Principal
from appliance.errors import LineboxError, NotFound
from appliance.media.prompts import duration_ms
from appliance.settings import Settings
from appliance.tables import CallRecord
from web.auth import scoped
from web.domain.voicemail.schemas import VOICEMAIL_STATES, VoicemailList, VoicemailOut
from web.errors import InvalidRequest

log = logging.getLogger(__name__)

_COLUMNS = [
    CallRecord.call_id,
    CallRecord.tenant,
    CallRecord.hotline,
    CallRecord.called,
    CallRecord.caller,
    CallRecord.caller_region,
    CallRecord.started_at,
    CallRecord.voicemail,
    CallRecord.voicemail_heard,
]


class VoicemailNotFound(NotFound):
    error_id = "voicemail-not-found"


class VoicemailNotDeleted(LineboxError):
    """The file could not be removed (the disk's fault, not the user's)."""

    error_id = "voicemail-not-deleted"


def visible(principal: Principal) -> list[Any]:
    """The messages a principal may see (an agent: none, see the module's doc)."""
    conditions: list[Any] = scoped(principal, CallRecord.tenant, [CallRecord.voicemail != ""])
    if principal.role == "agent":
        conditions.append(CallRecord.call_id == "\0")
    return conditions


def parse_state(value: str | None) -> str | None:
    if not value:
        return None
    if value not in VOICEMAIL_STATES:
        raise InvalidRequest("state", f"{value!r} is not one of {', '.join(VOICEMAIL_STATES)}")
    return value


def audio_file(settings: Settings, stored: str) -> Path | None:
    """The message's file when it is inside the data directory and exists."""
    if not stored:
        return None
    data_dir = settings.paths.data_dir.resolve()
    path = Path(stored)
    if not path.is_absolute():
        path = data_dir / path
    path = path.resolve()
    if not path.is_relative_to(data_dir) or not path.is_file():
        return None
    return path


def _out(row: dict[str, Any], settings: Settings) -> VoicemailOut:
    path = audio_file(settings, row["voicemail"])
    return VoicemailOut(
        call_id=row["call_id"],
        hotline=row["hotline"] or row["called"],
        caller=row["caller"],
        caller_region=row["caller_region"],
        started_at=row["started_at"],
        heard=row["voicemail_heard"],
        duration_ms=duration_ms(path) if path else 0,
    )


async def list_voicemail(
    principal: Principal, settings: Settings, state: str | None, limit: int, offset: int
) -> VoicemailList:
    conditions = visible(principal)
    new = await CallRecord.count().where(*conditions, CallRecord.voicemail_heard == False)  # noqa: E712
    if state is not None:
        conditions.append(CallRecord.voicemail_heard == (state == "heard"))
    rows = (
        await CallRecord.select(*_COLUMNS)
        .where(*conditions)
        .order_by(CallRecord.started_at, CallRecord._meta.primary_key, ascending=False)
        .limit(limit)
        .offset(offset)
    )
    total = await CallRecord.count().where(*conditions)
    return VoicemailList(
        items=[_out(r, settings) for r in rows], total=total, new=new, limit=limit, offset=offset
    )


async def _row(principal: Principal, call_id: str) -> dict[str, Any]:
    row = (
        await CallRecord.select(*_COLUMNS)
        .where(CallRecord.call_id == call_id, *visible(principal))
        .first()
    )
    if row is None:
        raise VoicemailNotFound(f"no voicemail of call {call_id!r}", {"call_id": call_id})
    return row


async def get_voicemail(principal: Principal, settings: Settings, call_id: str) -> VoicemailOut:
    return _out(await _row(principal, call_id), settings)


async def audio_path(principal: Principal, settings: Settings, call_id: str) -> Path:
    path = audio_file(settings, (await _row(principal, call_id))["voicemail"])
    if path is None:
        raise VoicemailNotFound(
            f"the voicemail of call {call_id!r} is gone from the disk", {"call_id": call_id}
        )
    return path


async def set_heard(
    principal: Principal, settings: Settings, call_id: str, heard: bool
) -> VoicemailOut:
    row = await _row(principal, call_id)
    await CallRecord.update({CallRecord.voicemail_heard: heard}).where(
        CallRecord.call_id == row["call_id"]
    )
    return _out({**row, "voicemail_heard": heard}, settings)


async def delete_voicemail(principal: Principal, settings: Settings, call_id: str) -> int | None:
    """Remove the message's file and its link; the call record stays.
    Returns the call's tenant (for the audit log)."""
    row = await _row(principal, call_id)
    path = audio_file(settings, row["voicemail"])
    if path is not None:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            # The link stays, so the message is not lost track of.
            log.error("voicemail of %s: cannot remove %s: %s", call_id, path, exc)
            raise VoicemailNotDeleted(
                f"cannot remove the voicemail of call {call_id!r}: {exc.strerror}",
                {"call_id": call_id},
            ) from None
    await CallRecord.update({CallRecord.voicemail: "", CallRecord.voicemail_heard: False}).where(
        CallRecord.call_id == row["call_id"]
    )
    tenant: int | None = row["tenant"]
    return tenant
