from __future__ import annotations

from litestar import Controller, Response, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from web.dependencies import AppSettings
from web.domain.health.schemas import HealthReport
from web.domain.health.services import health_report


class HealthController(Controller):
    path = "/healthz"
    tags = ("health",)
    # Monitoring polls this without logging in; it tells nothing about tenants.
    opt = {"public": True}  # noqa: RUF012

    @get(
        "/",
        operation_id="getHealth",
        summary="Health of the appliance's components",
        description="200 when the database, Kamailio, rtpengine and the worker all "
        "answer; 503 with the same body when one does not.",
        responses={
            HTTP_503_SERVICE_UNAVAILABLE: ResponseSpec(
                HealthReport, description="At least one component is down"
            )
        },
    )
    async def get_health(self, settings: AppSettings) -> Response[HealthReport]:
        report = await health_report(settings)
        return Response(
            report,
            status_code=HTTP_200_OK if report.status == "ok" else HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Cache-Control": "no-store"},
        )
