"""Every task module, imported so the consumer knows every task by name."""

from appliance.worker import cdr, sticky  # noqa: F401
from appliance.worker.queue import huey

__all__ = ["huey"]
