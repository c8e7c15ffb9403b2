from __future__ import annotations

from appliance import health
from appliance.settings import Settings
from web.domain.health.schemas import ComponentHealth, HealthReport


async def health_report(settings: Settings) -> HealthReport:
    results = await health.check_all(settings)
    return HealthReport(
        status="ok" if all(r.ok for r in results) else "degraded",
        components={r.name: ComponentHealth(ok=r.ok, detail=r.detail) for r in results},
    )
