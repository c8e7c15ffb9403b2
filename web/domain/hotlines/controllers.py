from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, patch, post
from litestar.params import Parameter
from litestar.response import Template

from appliance.audit import diff
from appliance.auth.core import Principal
from appliance.errors import LineboxError
from appliance.tables import Schedule
from web.auth import CurrentUser
from web.domain.audit.services import log as audit_log
from web.domain.hotlines import services
from web.domain.hotlines.schemas import (
    Fallback,
    HotlineOut,
    HotlineUpdate,
    Route,
    SimulateIn,
    SimulateOut,
    When,
)
from web.errors import BAD_REQUEST, error_response_spec
from web.i18n import gettext
from web.sitecheck import InvalidChange, Problem

NOT_FOUND = {404: error_response_spec("No such hotline of yours (`hotline-not-found`)")}
NumberParam = Annotated[str, Parameter(description="The hotline number, e.g. 4001234567")]
EXTRA_ROUTE_ROWS = 2


class HotlineController(Controller):
    path = "/api/v1/hotlines"
    tags = ("hotlines",)

    @get("/", operation_id="listHotlines", summary="The hotlines the user may manage")
    async def list_hotlines(self, principal: CurrentUser) -> list[HotlineOut]:
        return await services.list_hotlines(principal)

    @get(
        "/{number:str}",
        operation_id="getHotline",
        summary="One hotline with its routing and screening",
        responses={**BAD_REQUEST, **NOT_FOUND},
    )
    async def get_hotline(self, principal: CurrentUser, number: NumberParam) -> HotlineOut:
        return await services.get_hotline(principal, number)

    @patch(
        "/{number:str}",
        operation_id="updateHotline",
        summary="Change routing and screening settings; takes effect on the next call",
        description="Checked by the site file's rules; `invalid-change` lists each "
        "problem by key (`routes[0].to`). Nothing is written unless all is well.",
        responses={**BAD_REQUEST, **NOT_FOUND},
    )
    async def update_hotline(
        self,
        request: Request[Any, Any, Any],
        principal: CurrentUser,
        number: NumberParam,
        data: HotlineUpdate,
    ) -> HotlineOut:
        before = await services.get_hotline(principal, number)
        after = await services.update_hotline(principal, number, data)
        await audit_log(
            request, "update", f"hotline:{number}", changes=diff(before, after), tenant=after.tenant
        )
        return after

    @post(
        "/{number:str}/simulate",
        operation_id="simulateCall",
        summary='"What happens if this number calls at this time?"',
        description="Runs the routing decision real calls get, on the current plan.",
        status_code=200,
        responses={**BAD_REQUEST, **NOT_FOUND},
    )
    async def simulate(
        self, principal: CurrentUser, number: NumberParam, data: SimulateIn
    ) -> SimulateOut:
        return await services.simulate(principal, number, data)


# --- pages -----------------------------------------------------------------------

_SPLIT_ITEM = re.compile(r"^\s*([^=\s]+)\s*=\s*(\d{1,3})\s*%?\s*$")


def _items(text: str) -> list[str]:
    """A bulk paste: numbers separated by new lines, commas, spaces or 、."""
    return [x for x in re.split(r"[\s,，、;；]+", text or "") if x]


def _field(form: Any, name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def form_to_update(form: Any) -> HotlineUpdate:
    """The edit form's fields as an API update (the page and the API share rules)."""
    routes: list[Route] = []
    for i in range(50):
        prefix = f"route_{i}_"
        if not any(k.startswith(prefix) for k in form):
            break
        to, split_text = _field(form, prefix + "to"), _field(form, prefix + "split")
        schedule, regions = (
            _field(form, prefix + "schedule"),
            _items(_field(form, prefix + "regions")),
        )
        if not to and not split_text:
            continue
        split: dict[str, int] | None = None
        if split_text:
            split = {}
            for part in re.split(r"[,，;；]+", split_text):
                if not part.strip():
                    continue
                m = _SPLIT_ITEM.match(part)
                if m is None:
                    raise InvalidChange(
                        "hotline",
                        [
                            Problem(
                                key=f"routes[{len(routes)}].split",
                                message=f"{part.strip()!r}: write destination=percent, "
                                "e.g. ext:1001=50",
                            )
                        ],
                    )
                split[m.group(1)] = int(m.group(2))
        when = None
        if schedule or regions:
            when = When(schedule=schedule or None, regions=regions or None)
        routes.append(Route(when=when, to=to or None, split=split))
    busy, no_answer = (
        _items(_field(form, "fallback_busy")),
        _items(_field(form, "fallback_no_answer")),
    )
    call_cap, cost_cap = _field(form, "monthly_call_cap"), _field(form, "monthly_cost_cap")
    if call_cap and not call_cap.isdigit():
        raise InvalidChange(
            "hotline",
            [
                Problem(
                    key="monthly_call_cap", message=f"{call_cap!r} is not a whole number of calls"
                )
            ],
        )
    return HotlineUpdate(
        name=_field(form, "name"),
        enabled=form.get("enabled") == "on",
        record=form.get("record") == "on",
        caller_id=_field(form, "caller_id") or msgspec.UNSET,
        pin=_field(form, "pin"),
        ringback=_field(form, "ringback"),
        blacklist=_items(_field(form, "blacklist")),
        whitelist=_items(_field(form, "whitelist")),
        blocked_regions=_items(_field(form, "blocked_regions")),
        monthly_call_cap=int(call_cap[:12]) if call_cap else None,
        monthly_cost_cap=cost_cap or None,
        routes=routes,
        fallback=Fallback(busy=busy or None, no_answer=no_answer or None)
        if busy or no_answer
        else None,
    )


class HotlinePageController(Controller):
    path = "/hotlines"
    include_in_schema = False

    @get("/", operation_id="hotlinesPage")
    async def hotlines_page(self, principal: CurrentUser) -> Template:
        return Template(
            "hotlines/list.html", context={"hotlines": await services.list_hotlines(principal)}
        )

    async def _detail(
        self,
        principal: Principal,
        number: str,
        *,
        status: int = 200,
        errors: list[dict[str, str]] | None = None,
        message: str = "",
        simulation: Any = None,
        sim_error: str = "",
        sim_form: dict[str, str] | None = None,
    ) -> Template:
        hotline = await services.get_hotline(principal, number)
        schedules = [
            r["name"]
            for r in await Schedule.select(Schedule.name).where(
                Schedule.tenant.slug == hotline.tenant  # type: ignore[attr-defined]
            )
        ]
        return Template(
            "hotlines/detail.html",
            context={
                "h": hotline,
                "routes": [*hotline.routes, *([None] * EXTRA_ROUTE_ROWS)],
                "schedules": schedules,
                "errors": errors or [],
                "message": message,
                "simulation": simulation,
                "sim_error": sim_error,
                "sim": sim_form or {"caller": "13800138000", "at": ""},
            },
            status_code=status,
        )

    @get("/{number:str}", operation_id="hotlinePage")
    async def hotline_page(
        self,
        principal: CurrentUser,
        number: str,
        caller: str | None = None,
        at: str | None = None,
    ) -> Template:
        if caller is None:
            return await self._detail(principal, number)
        sim_form = {"caller": caller, "at": at or ""}
        try:
            result = await services.simulate(principal, number, SimulateIn(caller=caller, at=at))
        except LineboxError as exc:
            if exc.error_id == "hotline-not-found":
                raise
            return await self._detail(
                principal, number, status=400, sim_error=exc.detail, sim_form=sim_form
            )
        return await self._detail(principal, number, simulation=result, sim_form=sim_form)

    @post("/{number:str}", operation_id="hotlineSave", status_code=200)
    async def hotline_save(
        self, request: Request[Any, Any, Any], principal: CurrentUser, number: str
    ) -> Template:
        before = await services.get_hotline(principal, number)  # 404 before reading anything
        form = await request.form()
        try:
            update = form_to_update(form)
            after = await services.update_hotline(principal, number, update)
        except LineboxError as exc:
            errors = exc.details.get("errors") or [{"key": "", "message": exc.detail}]
            return await self._detail(principal, number, status=400, errors=errors)
        await audit_log(
            request, "update", f"hotline:{number}", changes=diff(before, after), tenant=after.tenant
        )
        return await self._detail(
            principal, number, message=gettext("Saved. The next call follows the new settings.")
        )
