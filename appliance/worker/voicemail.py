"""Voicemail notices: an e-mail with the message attached and an SMS, to the
tenant's notice addresses, once per message. Kamailio (when voicemail is
built) sends a `voicemail` call event with the file; `voicemail_left` is the
same for anything else that stores a message."""

from __future__ import annotations

import datetime as dt
from typing import Any

from appliance.notify import outbox
from appliance.worker.queue import huey


async def voicemail_notices(record: Any, now: dt.datetime) -> list[int]:
    from appliance.billing.settle import load_tenant, timezone_of

    if not record.voicemail or not record.tenant:
        return []
    tenant = await load_tenant(record.tenant)
    if tenant is None:
        return []
    tz = await timezone_of(tenant)
    when = outbox.local_time(record.started_at, tz)
    caller = record.caller or "未知号码"
    return await outbox.to_tenant(
        tenant=tenant,
        key=f"voicemail:{record.call_id}",
        kind="voicemail",
        subject=f"新留言：{caller} 于 {when} 拨打 {record.hotline or record.called}",
        body=(
            f"【linebox】{caller} 于 {when} 拨打 {record.hotline or record.called} "
            "并留言，请登录查看。"
        ),
        attachment=record.voicemail,
        caller=record.caller,
        now=now,
    )


@huey.task(retries=5, retry_delay=1)
def voicemail_left(call_id: str, file: str, at: float) -> None:
    """A voicemail was stored for `call_id`: link it and send its notices."""
    from appliance.worker.cdr import VOICEMAIL, CallEvent, call_event, encode_event

    event = CallEvent(call_id=call_id, type=VOICEMAIL, at=at, file=file)
    call_event.call_local(encode_event(event))
