"""A hotline's screening lists (黑名单/白名单/地区屏蔽), replaced or added to by
pasting one entry a line; a bad line is reported by its number and nothing
is saved until every line is valid."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, get, post, put
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import Template

from appliance.audit import diff
from appliance.auth.core import Principal
from appliance.errors import LineboxError
from web.auth import CurrentUser
from web.domain.audit.services import log as audit_log
from web.domain.hotlines import services as hotlines
from web.domain.screening import services
from web.domain.screening.schemas import ListName, ScreeningOut, ScreeningPaste
from web.errors import BAD_REQUEST, error_response_spec
from web.i18n import gettext

NOT_FOUND = {404: error_response_spec("No such hotline of yours (`hotline-not-found`)")}
NumberParam = Annotated[str, Parameter(description="The hotline number, e.g. 4001234567")]
FORM = Body(media_type=RequestEncodingType.URL_ENCODED)
ADMINS = {"roles": ("operator", "owner")}
AnyRequest = Request[Any, Any, Any]


async def audited(
    request: AnyRequest, principal: Principal, before: ScreeningOut, after: ScreeningOut
) -> None:
    """The audit log's entry, as for any other change of the hotline."""
    hotline = await hotlines.get_hotline(principal, after.hotline)
    await audit_log(
        request,
        "update",
        f"hotline:{after.hotline}",
        changes=diff(before, after),
        tenant=hotline.tenant,
    )


class ScreeningController(Controller):
    path = "/api/v1/hotlines/{number:str}/screening"
    tags = ("hotlines",)
    opt = ADMINS

    @get(
        "/",
        operation_id="getScreening",
        summary="A hotline's blacklist, whitelist and blocked regions",
        responses={**BAD_REQUEST, **NOT_FOUND},
    )
    async def get_screening(self, principal: CurrentUser, number: NumberParam) -> ScreeningOut:
        return await services.get_screening(principal, number)

    @put(
        "/{list_name:str}",
        operation_id="pasteScreening",
        summary="Replace or add to one screening list from a bulk paste",
        description="One entry a line. Every bad line is reported (`invalid-change`, "
        "keys `line 3`) and nothing is saved until all are valid. Regions are named as "
        "callers' numbers show them: 浙江省, 杭州市 or 0571 (浙江 is read as 浙江省).",
        responses={**BAD_REQUEST, **NOT_FOUND},
    )
    async def paste(
        self,
        request: AnyRequest,
        principal: CurrentUser,
        number: NumberParam,
        list_name: Annotated[
            ListName, Parameter(description="blacklist, whitelist or blocked_regions")
        ],
        data: ScreeningPaste,
    ) -> ScreeningOut:
        before = await services.get_screening(principal, number)
        after = await services.paste(principal, number, list_name, data)
        await audited(request, principal, before, after)
        return after


# --- pages -----------------------------------------------------------------------


class PasteForm(msgspec.Struct, kw_only=True):
    text: str = ""
    mode: str = "replace"


def titles() -> dict[str, str]:
    return {
        "blacklist": gettext("Blacklist"),
        "whitelist": gettext("Whitelist (when not empty, only these may call)"),
        "blocked_regions": gettext("Blocked regions (province, city or area code)"),
    }


class ScreeningPageController(Controller):
    path = "/screening"
    include_in_schema = False
    opt = ADMINS

    async def _page(
        self, principal: Principal, number: str, status: int = 200, **context: Any
    ) -> Template:
        screening = await services.get_screening(principal, number)
        base: dict[str, Any] = {
            "s": screening,
            "titles": titles(),
            "texts": {name: "\n".join(getattr(screening, name)) for name in services.LISTS},
            "failed": "",
            "errors": [],
            "message": "",
        }
        base.update(context)
        return Template("screening/detail.html", context=base, status_code=status)

    @get("/", operation_id="screeningListPage")
    async def screening_list(self, principal: CurrentUser) -> Template:
        return Template(
            "screening/list.html",
            context={"hotlines": await hotlines.list_hotlines(principal)},
        )

    @get("/{number:str}", operation_id="screeningPage")
    async def screening_page(self, principal: CurrentUser, number: str) -> Template:
        return await self._page(principal, number)

    @post("/{number:str}/{list_name:str}", operation_id="screeningPaste", status_code=200)
    async def screening_paste(
        self,
        request: AnyRequest,
        principal: CurrentUser,
        number: str,
        list_name: ListName,
        data: Annotated[PasteForm, FORM],
    ) -> Template:
        before = await services.get_screening(principal, number)  # 404 before anything else
        mode: Literal["replace", "add"] = "add" if data.mode == "add" else "replace"
        try:
            after = await services.paste(
                principal, number, list_name, ScreeningPaste(text=data.text, mode=mode)
            )
        except LineboxError as exc:
            if exc.error_id.endswith("not-found"):
                raise
            errors = exc.details.get("errors") or [{"key": "", "message": exc.detail}]
            page = await self._page(principal, number, 400, failed=list_name, errors=errors)
            page.context["texts"][list_name] = data.text  # keep the paste to fix it
            return page
        await audited(request, principal, before, after)
        return await self._page(
            principal, number, message=gettext("Saved. The next call follows the new settings.")
        )
