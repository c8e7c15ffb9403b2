"""Every task module, imported so the consumer knows every task by name."""

from appliance.media import recording  # noqa: F401 (recordings and voicemail from the spool)
from appliance.worker import (  # noqa: F401
    billing,
    cdr,
    notices,
    reports,
    retention,
    sticky,
    sweep,
    tollfraud,
    voicemail,
)
from appliance.worker.queue import huey

__all__ = ["huey"]
