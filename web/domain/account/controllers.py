from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import Redirect, Template

from appliance.auth import core, totp
from appliance.auth.secret import secret_key
from appliance.errors import LineboxError
from web.auth import CurrentUser
from web.dependencies import AppSettings
from web.domain.account import services
from web.domain.account.schemas import (
    ApiTokenCreate,
    ApiTokenCreated,
    ApiTokenOut,
    Me,
    PasswordChange,
)
from web.domain.audit.services import log as audit_log
from web.errors import BAD_REQUEST, error_response_spec
from web.i18n import gettext

FORM = Body(media_type=RequestEncodingType.URL_ENCODED)


def explain(exc: LineboxError) -> str:
    """The error in the reader's language."""
    if exc.error_id == "invalid-old-password":
        return gettext("The current password is wrong.")
    if exc.error_id == "invalid-password":
        return gettext(
            "The new password is too weak: at least 10 characters, not only digits, not the login."
        )
    if exc.error_id == "invalid-token-name":
        return gettext("Give the token a name of 1 to 64 characters.")
    return exc.detail


class AccountApiController(Controller):
    path = "/api/v1/me"
    tags = ("account",)

    @get("/", operation_id="getMe", summary="Who the request acts as")
    async def get_me(self, principal: CurrentUser) -> Me:
        return await services.me(principal)

    @post(
        "/password",
        operation_id="changePassword",
        summary="Change the password; other sessions of the user end",
        status_code=204,
        responses=BAD_REQUEST,
    )
    async def change_password(
        self,
        request: Request[Any, Any, Any],
        principal: CurrentUser,
        settings: AppSettings,
        data: PasswordChange,
    ) -> None:
        await core.change_password(
            secret_key(settings),
            principal.user_id,
            data.old_password,
            data.new_password,
            keep_session=principal.session_token,
        )
        await audit_log(request, "password_change", f"user:{principal.login}")

    @get("/tokens", operation_id="listApiTokens", summary="The user's API tokens")
    async def list_tokens(self, principal: CurrentUser) -> list[ApiTokenOut]:
        return [services.token_out(t) for t in await core.list_api_tokens(principal.user_id)]

    @post(
        "/tokens",
        operation_id="createApiToken",
        summary="A new API token; its secret is in this answer only",
        responses=BAD_REQUEST,
    )
    async def create_token(
        self,
        request: Request[Any, Any, Any],
        principal: CurrentUser,
        settings: AppSettings,
        data: ApiTokenCreate,
    ) -> ApiTokenCreated:
        info, secret = await core.create_api_token(
            secret_key(settings), principal.user_id, data.name
        )
        await audit_log(request, "token_create", f"api-token:{info.id}", detail={"name": info.name})
        return ApiTokenCreated(token=services.token_out(info), secret=secret)

    @delete(
        "/tokens/{token_id:int}",
        operation_id="revokeApiToken",
        summary="Revoke one of the user's API tokens",
        responses={
            **BAD_REQUEST,
            404: error_response_spec("No such token (`api-token-not-found`)"),
        },
    )
    async def revoke_token(
        self,
        request: Request[Any, Any, Any],
        principal: CurrentUser,
        token_id: Annotated[int, Parameter(ge=1, le=2**62)],
    ) -> None:
        await services.revoke(principal, token_id)
        await audit_log(request, "token_revoke", f"api-token:{token_id}")


class PasswordForm(msgspec.Struct, kw_only=True):
    old_password: str = ""
    new_password: str = ""
    new_password2: str = ""


class TokenForm(msgspec.Struct, kw_only=True):
    name: str = ""


class TotpForm(msgspec.Struct, kw_only=True):
    secret: str = ""
    code: str = ""
    password: str = ""


class AccountPageController(Controller):
    path = "/account"
    include_in_schema = False

    async def _page(self, principal: core.Principal, status: int = 200, **context: Any) -> Template:
        tokens = await core.list_api_tokens(principal.user_id)
        me = await services.me(principal)
        base: dict[str, Any] = {
            "me": me,
            "tokens": tokens,
            "message": "",
            "error": "",
            "new_secret": "",
            "totp_secret": "",
            "totp_uri": "",
        }
        if not me.totp_enabled:
            secret = context.get("totp_secret") or totp.new_secret()
            base["totp_secret"] = secret
            base["totp_uri"] = totp.uri(secret, principal.login)
        base.update(context)
        return Template("account/index.html", context=base, status_code=status)

    @get("/", operation_id="accountPage")
    async def account_page(self, principal: CurrentUser) -> Template:
        return await self._page(principal)

    @post("/password", operation_id="accountPassword", status_code=200)
    async def password(
        self,
        request: Request[Any, Any, Any],
        principal: CurrentUser,
        settings: AppSettings,
        data: Annotated[PasswordForm, FORM],
    ) -> Template:
        if data.new_password != data.new_password2:
            return await self._page(principal, 400, error=gettext("The two new passwords differ."))
        try:
            await core.change_password(
                secret_key(settings),
                principal.user_id,
                data.old_password,
                data.new_password,
                keep_session=principal.session_token,
            )
        except LineboxError as exc:
            return await self._page(principal, 400, error=explain(exc))
        await audit_log(request, "password_change", f"user:{principal.login}")
        return await self._page(principal, message=gettext("The password is changed."))

    @post("/tokens", operation_id="accountCreateToken", status_code=200)
    async def create_token(
        self,
        request: Request[Any, Any, Any],
        principal: CurrentUser,
        settings: AppSettings,
        data: Annotated[TokenForm, FORM],
    ) -> Template:
        try:
            info, secret = await core.create_api_token(
                secret_key(settings), principal.user_id, data.name
            )
        except LineboxError as exc:
            return await self._page(principal, 400, error=explain(exc))
        await audit_log(request, "token_create", f"api-token:{info.id}", detail={"name": info.name})
        return await self._page(principal, new_secret=secret)

    @post("/tokens/{token_id:int}/revoke", operation_id="accountRevokeToken", status_code=303)
    async def revoke_token(
        self, request: Request[Any, Any, Any], principal: CurrentUser, token_id: int
    ) -> Redirect:
        await services.revoke(principal, token_id)
        await audit_log(request, "token_revoke", f"api-token:{token_id}")
        return Redirect("/account", status_code=303)

    @post("/totp", operation_id="accountTotp", status_code=200)
    async def totp_enable(
        self,
        request: Request[Any, Any, Any],
        principal: CurrentUser,
        data: Annotated[TotpForm, FORM],
    ) -> Template:
        secret = data.secret.strip().upper()
        try:
            valid = len(secret) >= 16 and totp.verify(secret, data.code) is not None
        except ValueError:
            valid = False
        if not valid:
            return await self._page(
                principal,
                400,
                error=gettext("The code does not match: check the phone's clock and try again."),
                totp_secret=secret if len(secret) >= 16 else "",
            )
        await core.set_totp(principal.user_id, secret)
        await audit_log(request, "totp_enable", f"user:{principal.login}")
        return await self._page(principal, message=gettext("Two-step login is on."))

    @post("/totp/disable", operation_id="accountTotpDisable", status_code=200)
    async def totp_disable(
        self,
        request: Request[Any, Any, Any],
        principal: CurrentUser,
        data: Annotated[TotpForm, FORM],
    ) -> Response[Any]:
        if not await core.verify_totp(principal.user_id, data.code):
            return await self._page(
                principal, 400, error=gettext("The code is wrong or was already used.")
            )
        await core.set_totp(principal.user_id, "")
        await audit_log(request, "totp_disable", f"user:{principal.login}")
        return await self._page(principal, message=gettext("Two-step login is off."))
