"""Trunk gateways going down and coming back.

Kamailio probes each trunk gateway with OPTIONS (the dispatcher module) and
skips one that does not answer; when a gateway changes state it hands
`trunk_gateway` to the worker through its journal (kamailio/kemi.py,
`ksr_dispatcher_event`). The worker keeps the last state of each gateway in
`trunk_status` (the admin's health page shows it) and sends the operator's
alert address (the e-mail gateway's `alerts_to`) a notice when one goes
down or comes back.
"""

from __future__ import annotations

import datetime as dt
import logging

from appliance.worker.queue import huey

log = logging.getLogger(__name__)


async def record(trunk: str, gateway: str, up: bool, at: float) -> list[int]:
    """Keep the gateway's state as of `at` (an older report than the one
    kept changes nothing); the ids of the notices written."""
    from appliance.notify import outbox
    from appliance.tables import Gateway, TrunkStatus
    from appliance.worker.effects import transaction

    since = dt.datetime.fromtimestamp(at, dt.UTC)
    async with transaction():
        row = (
            await TrunkStatus.objects()
            .where((TrunkStatus.trunk == trunk) & (TrunkStatus.gateway == gateway))
            .first()
        )
        # An older report than the one kept, or the same state again (each
        # Kamailio process may report it), changes nothing.
        if row is not None and (row.since >= since or row.up == up):
            return []
        first = row is None
        if row is None:
            row = TrunkStatus(trunk=trunk, gateway=gateway, up=up, since=since)
        row.up, row.since = up, since
        await row.save()
        if first and up:  # never seen down: nothing to tell
            return []
        state = "恢复正常" if up else "无响应，呼出已改走其他网关"
        (log.info if up else log.warning)(
            "%strunk %s: gateway %s %s since %s",
            "" if up else "ALERT ",
            trunk,
            gateway,
            "answers again" if up else "does not answer",
            since.isoformat(),
        )
        email = (
            await Gateway.select(Gateway.config)
            .where(Gateway.channel == "email")
            .output(load_json=True)
            .first()
        )
        operator = ((email or {}).get("config") or {}).get("alerts_to", "")
        notice = await outbox.add(
            key=f"alert:gateway:{trunk}:{gateway}:{at:.3f}",
            tenant=None,
            kind="alert",
            channel="email",
            to=operator,
            subject=f"linebox: 中继 {trunk} 网关 {gateway} {'恢复' if up else '故障'}",
            body=f"【linebox】中继 {trunk} 的网关 {gateway} 自 {since.isoformat()} 起{state}。",
        )
        return [notice] if notice else []


@huey.task(retries=5, retry_delay=1)
def trunk_gateway(trunk: str, gateway: str, up: bool, at: float) -> None:
    """Kamailio's report that a trunk gateway went down or came back."""
    from piccolo.utils.sync import run_sync

    from appliance.worker.effects import Effects, apply_effects

    async def run() -> None:
        await apply_effects(Effects(notices=await record(trunk, gateway, up, at)))

    run_sync(run())
