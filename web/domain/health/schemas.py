from __future__ import annotations

from typing import Literal

import msgspec


class ComponentHealth(msgspec.Struct, kw_only=True):
    ok: bool
    detail: str
    """What the probe saw, for a person: "no heartbeat", "127.0.0.1:5060 answered …"."""


class HealthReport(msgspec.Struct, kw_only=True):
    status: Literal["ok", "degraded"]
    """`ok` when every component is; the HTTP status is then 200, else 503."""
    components: dict[str, ComponentHealth]
    """By name: database, kamailio, rtpengine, worker."""
