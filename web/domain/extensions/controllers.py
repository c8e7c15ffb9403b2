"""Extensions (分机): list, create, edit, delete, and a new SIP password on demand."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import Redirect, Template

from appliance.audit import diff
from appliance.auth.core import Principal
from appliance.errors import LineboxError
from web.auth import CurrentUser
from web.dependencies import AppSettings
from web.domain.audit.services import log as audit_log
from web.domain.extensions import provisioning, services
from web.domain.extensions.schemas import (
    ExtensionCreate,
    ExtensionOut,
    ExtensionSecret,
    ExtensionUpdate,
)
from web.errors import BAD_REQUEST, error_response_spec
from web.i18n import gettext

NOT_FOUND = {404: error_response_spec("No such extension of yours (`extension-not-found`)")}
NumberParam = Annotated[str, Parameter(description="The extension number, e.g. 1001")]
FORM = Body(media_type=RequestEncodingType.URL_ENCODED)
ADMINS = {"roles": ("operator", "owner")}
AnyRequest = Request[Any, Any, Any]
# A password is shown once: no cache may keep the answer.
NO_STORE = {"Cache-Control": "no-store"}


class ExtensionController(Controller):
    path = "/api/v1/extensions"
    tags = ("extensions",)
    opt = ADMINS

    @get("/", operation_id="listExtensions", summary="The extensions the user may manage")
    async def list_extensions(self, principal: CurrentUser) -> list[ExtensionOut]:
        return await services.list_extensions(principal)

    @post(
        "/",
        operation_id="createExtension",
        summary="A new extension; its SIP password is in this answer only",
        description="Checked by the site file's rules (`invalid-change` lists each problem); "
        "the phone can register from the next request on.",
        responses={**BAD_REQUEST, 404: error_response_spec("No such tenant (`tenant-not-found`)")},
    )
    async def create_extension(
        self, request: AnyRequest, principal: CurrentUser, data: ExtensionCreate
    ) -> Response[ExtensionSecret]:
        created = await services.create_extension(principal, data)
        await audited(request, "create", None, created.extension)
        return Response(created, status_code=201, headers=NO_STORE)

    @get(
        "/{number:str}/phone",
        operation_id="getExtensionPhoneSettings",
        summary="What a phone needs to register the extension (never its password)",
        responses={**BAD_REQUEST, **NOT_FOUND},
    )
    async def get_phone_settings(
        self,
        request: AnyRequest,
        principal: CurrentUser,
        settings: AppSettings,
        number: NumberParam,
    ) -> provisioning.PhoneSettings:
        extension = await services.get_extension(principal, number)
        return provisioning.phone_settings(settings, extension.number, request.url.hostname or "")

    @get(
        "/{number:str}",
        operation_id="getExtension",
        summary="One extension (without its SIP password)",
        responses={**BAD_REQUEST, **NOT_FOUND},
    )
    async def get_extension(self, principal: CurrentUser, number: NumberParam) -> ExtensionOut:
        return await services.get_extension(principal, number)

    @patch(
        "/{number:str}",
        operation_id="updateExtension",
        summary="Change the name, agent ID (工号) or ringback",
        responses={**BAD_REQUEST, **NOT_FOUND},
    )
    async def update_extension(
        self,
        request: AnyRequest,
        principal: CurrentUser,
        number: NumberParam,
        data: ExtensionUpdate,
    ) -> ExtensionOut:
        before = await services.get_extension(principal, number)
        after = await services.update_extension(principal, number, data)
        await audited(request, "update", before, after)
        return after

    @post(
        "/{number:str}/password",
        operation_id="regenerateExtensionPassword",
        summary="A new SIP password, in this answer only; the old one stops working",
        status_code=200,
        responses={**BAD_REQUEST, **NOT_FOUND},
    )
    async def regenerate_password(
        self, request: AnyRequest, principal: CurrentUser, number: NumberParam
    ) -> Response[ExtensionSecret]:
        secret = await services.regenerate_password(principal, number)
        await audited(request, "password_reset", secret.extension, secret.extension)
        return Response(secret, headers=NO_STORE)

    @delete(
        "/{number:str}",
        operation_id="deleteExtension",
        summary="Delete an extension",
        description="Refused (`invalid-change`) while a group, menu or hotline still "
        "sends calls to it; the errors name each one.",
        responses={**BAD_REQUEST, **NOT_FOUND},
    )
    async def delete_extension(
        self, request: AnyRequest, principal: CurrentUser, number: NumberParam
    ) -> None:
        before = await services.get_extension(principal, number)
        await services.delete_extension(principal, number)
        await audited(request, "delete", before, None)


# --- pages -----------------------------------------------------------------------


class ExtensionForm(msgspec.Struct, kw_only=True):
    number: str = ""
    name: str = ""
    agent_id: str = ""
    ringback: str = ""
    tenant: str = ""


async def audited(
    request: AnyRequest, action: str, before: ExtensionOut | None, after: ExtensionOut | None
) -> None:
    """The audit log's entry for a change that was made (never the password)."""
    extension = after or before
    assert extension is not None
    await audit_log(
        request,
        action,
        f"extension:{extension.number}",
        changes=diff(before, after),
        tenant=extension.tenant,
    )


def _errors(exc: LineboxError) -> list[dict[str, str]]:
    return exc.details.get("errors") or [{"key": "", "message": exc.detail}]


class ExtensionPageController(Controller):
    path = "/extensions"
    include_in_schema = False
    opt = ADMINS

    async def _list(self, principal: Principal, status: int = 200, **context: Any) -> Template:
        base: dict[str, Any] = {
            "extensions": await services.list_extensions(principal),
            "form": ExtensionForm(),
            "errors": [],
        }
        base.update(context)
        return Template("extensions/list.html", context=base, status_code=status)

    async def _detail(
        self,
        request: AnyRequest,
        settings: AppSettings,
        principal: Principal,
        number: str,
        status: int = 200,
        **context: Any,
    ) -> Template:
        extension = await services.get_extension(principal, number)
        base: dict[str, Any] = {"e": extension, "errors": [], "message": "", "secret": ""}
        base.update(context)
        # The phone's settings as text and as a QR code; the password is in
        # both only on the answer that shows it once.
        phone = provisioning.phone_settings(settings, extension.number, request.url.hostname or "")
        uri = provisioning.sip_uri(phone, base["secret"])
        base.update(phone=phone, qr=provisioning.qr_svg(uri, f"SIP {extension.number}"))
        headers = NO_STORE if base["secret"] else None
        return Template("extensions/detail.html", context=base, status_code=status, headers=headers)

    @get("/", operation_id="extensionsPage")
    async def extensions_page(self, principal: CurrentUser) -> Template:
        return await self._list(principal)

    @post("/", operation_id="extensionCreate", status_code=200)
    async def extension_create(
        self,
        request: AnyRequest,
        principal: CurrentUser,
        settings: AppSettings,
        data: Annotated[ExtensionForm, FORM],
    ) -> Template:
        try:
            created = await services.create_extension(
                principal,
                ExtensionCreate(
                    number=data.number,
                    name=data.name,
                    agent_id=data.agent_id,
                    ringback=data.ringback,
                    tenant=data.tenant or None,
                ),
            )
        except LineboxError as exc:
            return await self._list(principal, 400, form=data, errors=_errors(exc))
        await audited(request, "create", None, created.extension)
        return await self._detail(
            request,
            settings,
            principal,
            created.extension.number,
            status=201,
            secret=created.sip_password,
        )

    @get("/{number:str}", operation_id="extensionPage")
    async def extension_page(
        self, request: AnyRequest, principal: CurrentUser, settings: AppSettings, number: str
    ) -> Template:
        return await self._detail(request, settings, principal, number)

    @post("/{number:str}", operation_id="extensionSave", status_code=200)
    async def extension_save(
        self,
        request: AnyRequest,
        principal: CurrentUser,
        settings: AppSettings,
        number: str,
        data: Annotated[ExtensionForm, FORM],
    ) -> Template:
        before = await services.get_extension(principal, number)  # 404 first
        try:
            after = await services.update_extension(
                principal,
                number,
                ExtensionUpdate(name=data.name, agent_id=data.agent_id, ringback=data.ringback),
            )
        except LineboxError as exc:
            return await self._detail(
                request, settings, principal, number, 400, errors=_errors(exc)
            )
        await audited(request, "update", before, after)
        return await self._detail(
            request,
            settings,
            principal,
            number,
            message=gettext("Saved. The next call follows the new settings."),
        )

    @post("/{number:str}/password", operation_id="extensionPassword", status_code=200)
    async def extension_password(
        self, request: AnyRequest, principal: CurrentUser, settings: AppSettings, number: str
    ) -> Template:
        secret = await services.regenerate_password(principal, number)
        await audited(request, "password_reset", secret.extension, secret.extension)
        return await self._detail(request, settings, principal, number, secret=secret.sip_password)

    @post("/{number:str}/delete", operation_id="extensionDelete", status_code=303)
    async def extension_delete(
        self, request: AnyRequest, principal: CurrentUser, settings: AppSettings, number: str
    ) -> Any:
        before = await services.get_extension(principal, number)
        try:
            await services.delete_extension(principal, number)
        except LineboxError as exc:
            if exc.error_id.endswith("not-found"):
                raise
            return await self._detail(
                request, settings, principal, number, 400, errors=_errors(exc)
            )
        await audited(request, "delete", before, None)
        return Redirect("/extensions", status_code=303)
