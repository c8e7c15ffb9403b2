"""Billing (计费): the REST API and the page, read-only for owners."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from litestar import Controller, get
from litestar.params import Parameter
from litestar.response import Template

from appliance.errors import LineboxError
from appliance.tables import Tenant
from web.auth import CurrentUser
from web.domain.billing import services
from web.domain.billing.schemas import Billing, LedgerList
from web.errors import BAD_REQUEST, error_response_spec

OWNERS = {"roles": ("operator", "owner")}
ERRORS = {
    **BAD_REQUEST,
    404: error_response_spec("No such tenant of yours (`tenant-not-found`)"),
}
TenantParam = Annotated[
    str | None,
    Parameter(description="The tenant's slug; operators of several tenants must give it"),
]
LEDGER_PAGE = 50


class BillingController(Controller):
    path = "/api/v1/billing"
    tags = ("billing",)
    opt = OWNERS

    @get(
        "/",
        operation_id="getBilling",
        summary="Balance, rates, the year's daily and monthly costs and the latest top-ups",
        responses=ERRORS,
    )
    async def get_billing(
        self,
        principal: CurrentUser,
        tenant: TenantParam = None,
        year: Annotated[
            int | None, Parameter(ge=2000, le=2999, description="Default: this year")
        ] = None,
    ) -> Billing:
        return await services.billing(principal, tenant, year)

    @get(
        "/ledger",
        operation_id="listLedger",
        summary="Every top-up and adjustment of the balance, newest first",
        responses=ERRORS,
    )
    async def list_ledger(
        self,
        principal: CurrentUser,
        tenant: TenantParam = None,
        limit: Annotated[int, Parameter(ge=1, le=500, description="Entries per page")] = 50,
        offset: Annotated[int, Parameter(ge=0, le=10**9, description="Entries to skip")] = 0,
    ) -> LedgerList:
        return await services.ledger(principal, tenant, limit, offset)


class BillingPageController(Controller):
    path = "/billing"
    include_in_schema = False
    opt = OWNERS

    @get("/", operation_id="billingPage")
    async def billing_page(
        self,
        principal: CurrentUser,
        tenant: Annotated[str | None, Parameter(query="tenant")] = None,
        year: Annotated[int | None, Parameter(ge=2000, le=2999)] = None,
        offset: Annotated[int, Parameter(ge=0, le=10**9)] = 0,
    ) -> Template:
        tenants: list[str] = []
        if principal.is_operator:
            tenants = [r["slug"] for r in await Tenant.select(Tenant.slug).order_by(Tenant.slug)]
        context: dict[str, Any] = {"tenants": tenants, "tenant": tenant or "", "b": None}
        try:
            b = await services.billing(principal, tenant, year)
            entries = await services.ledger(principal, b.tenant, LEDGER_PAGE, offset)
        except LineboxError as exc:
            if exc.error_id != "invalid-request" or not principal.is_operator:
                raise
            # An operator of several tenants chooses one first.
            return Template("billing/index.html", context={**context, "choose": True})
        zone = ZoneInfo(b.timezone)
        context.update(
            b=b,
            ledger=[
                {"e": e, "at": e.at.astimezone(zone).strftime("%Y-%m-%d %H:%M")}
                for e in entries.items
            ],
            total=entries.total,
            offset=offset,
            page_size=LEDGER_PAGE,
            qs=urlencode({k: v for k, v in {"tenant": tenant, "year": year}.items() if v}),
            tenant_qs=urlencode({"tenant": tenant} if tenant else {}),
            chart={
                "year": b.year,
                "days": [[d.day.isoformat(), d.cost, d.calls] for d in b.daily],
                "months": [m.month for m in b.monthly],
                "month_costs": [m.cost for m in b.monthly],
            },
        )
        return Template("billing/index.html", context=context)
