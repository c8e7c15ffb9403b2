from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post, put
from litestar.datastructures import UploadFile
from litestar.response import Template

from appliance.errors import LineboxError, SiteFileError
from web.auth import CurrentUser
from web.domain.audit.services import log as audit_log
from web.domain.sitefile import services
from web.domain.sitefile.schemas import SiteChanges, SiteUpload
from web.errors import BAD_REQUEST
from web.i18n import gettext

ROLES = {"roles": ("operator", "owner")}


class SiteFileController(Controller):
    path = "/api/v1/site"
    tags = ("site file",)
    opt = ROLES

    @get(
        "/",
        operation_id="exportSite",
        summary="The configuration as a site file (TOML)",
        description="Everything for an operator; an owner gets their own tenant.",
        media_type="application/toml",
    )
    async def export(self, principal: CurrentUser) -> Response[str]:
        text = await services.download(principal)
        name = "site.toml" if principal.is_operator else f"{principal.tenant_slug}.toml"
        return Response(
            text,
            media_type="application/toml; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    @post(
        "/preview",
        operation_id="previewSite",
        summary="What applying this site file would change; writes nothing",
        description="Problems come back as `invalid-site-file` with `details.problems`, "
        "each naming its line.",
        status_code=200,
        responses=BAD_REQUEST,
    )
    async def preview(self, principal: CurrentUser, data: SiteUpload) -> SiteChanges:
        return await services.upload(principal, data.text, apply=False)

    @put(
        "/",
        operation_id="applySite",
        summary="Make the configuration match this site file (all or nothing)",
        responses=BAD_REQUEST,
    )
    async def apply(
        self, request: Request[Any, Any, Any], principal: CurrentUser, data: SiteUpload
    ) -> SiteChanges:
        result = await services.upload(principal, data.text, apply=True)
        await audit_log(request, "apply", "site-file", detail=services.audit_detail(result))
        return result


class UploadForm(msgspec.Struct, kw_only=True):
    text: str = ""
    action: str = "preview"


class SitePageController(Controller):
    path = "/site"
    include_in_schema = False
    opt = ROLES

    @get("/", operation_id="sitePage")
    async def site_page(self) -> Template:
        return Template("site/index.html", context={"text": "", "result": None, "problems": []})

    @post("/", operation_id="siteUpload", status_code=200)
    async def site_upload(
        self, request: Request[Any, Any, Any], principal: CurrentUser
    ) -> Template:
        # The text area, or a chosen file sent as multipart: either way, text.
        form = await request.form()
        raw = form.get("text", "")
        if isinstance(raw, UploadFile):
            raw = await raw.read()
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError:
                raw = None
        if not isinstance(raw, str):
            message = gettext("The site file must be UTF-8 text.")
            return Template(
                "site/index.html",
                context={"text": "", "result": None, "problems": [message]},
                status_code=400,
            )
        data = UploadForm(text=raw, action=str(form.get("action", "preview")))
        apply = data.action == "apply"
        try:
            result = await services.upload(principal, data.text, apply=apply)
        except SiteFileError as exc:
            return Template(
                "site/index.html",
                context={"text": data.text, "result": None, "problems": exc.problems},
                status_code=400,
            )
        except LineboxError as exc:
            return Template(
                "site/index.html",
                context={"text": data.text, "result": None, "problems": [exc.detail]},
                status_code=400,
            )
        if apply:
            await audit_log(request, "apply", "site-file", detail=services.audit_detail(result))
        message = gettext("Applied.") if apply else ""
        return Template(
            "site/index.html",
            context={
                "text": "" if apply else data.text,
                "result": result,
                "problems": [],
                "message": message,
            },
        )


__all__: list[Any] = ["SiteFileController", "SitePageController"]
