from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from appliance import audit
from appliance.auth import core
from appliance.auth.secret import secret_key
from web.auth import (
    SESSION_COOKIE,
    anon_cookie,
    check_csrf,
    is_https,
    session_cookie,
)
from web.dependencies import AppSettings
from web.domain.audit.services import client_address
from web.domain.audit.services import log as audit_log
from web.i18n import LANG_COOKIE, LANGUAGES, gettext

FORM = Body(media_type=RequestEncodingType.URL_ENCODED)


class LoginForm(msgspec.Struct, kw_only=True):
    login: str = ""
    password: str = ""
    next: str = "/"


class CodeForm(msgspec.Struct, kw_only=True):
    code: str = ""


def safe_next(value: str | None) -> str:
    """Only a path on this site: never `//evil.example` or `https://…`."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _login_page(
    request: Request[Any, Any, Any],
    secure: bool,
    *,
    error: str = "",
    login: str = "",
    next_: str = "/",
    status: int = 200,
) -> Template:
    seed, cookie = anon_cookie(request, secure)
    return Template(
        "auth/login.html",
        context={"error": error, "login": login, "next": next_, "csrf_seed": seed},
        cookies=[cookie] if cookie else [],
        status_code=status,
    )


async def _audit_login(
    request: Request[Any, Any, Any], action: str, login: str, user_id: int | None = None
) -> None:
    # A failure keeps the login as typed (trimmed, bounded), with the tenant
    # when it names a user, so an owner sees the attempts on their people.
    # A success names the user who logged in, also when a hotline number was typed.
    tried = login.strip()[:255]
    user = await audit.user_of(tried) if user_id is None else await audit.user_by_id(user_id)
    actor = user["login"] if user else tried
    await audit.record(
        action,
        actor=actor,
        source=client_address(request),
        target=f"user:{actor}",
        tenant=user["tenant"] if user else None,
        detail={"typed": tried} if tried != actor else None,
    )


class LoginController(Controller):
    path = "/"
    include_in_schema = False
    opt = {"public": True}  # noqa: RUF012

    @get("/login", operation_id="loginPage")
    async def login_page(self, request: Request[Any, Any, Any], next: str = "/") -> Template:
        return _login_page(request, is_https(request.scope), next_=safe_next(next))

    @post("/login", operation_id="login", status_code=303)
    async def login(
        self,
        request: Request[Any, Any, Any],
        settings: AppSettings,
        data: Annotated[LoginForm, FORM],
    ) -> Response[Any]:
        key = secret_key(settings)
        secure = is_https(request.scope)
        await check_csrf(request, key, request.cookies.get("lb_anon", ""))
        next_ = safe_next(data.next)
        try:
            user_id = await core.login(data.login, data.password)
        except core.LockedOut:
            await _audit_login(request, "login_locked", data.login)
            return _login_page(
                request,
                secure,
                error=gettext("Too many failed logins: try again in 15 minutes."),
                login=data.login,
                next_=next_,
                status=429,
            )
        except core.LoginFailed:
            await _audit_login(request, "login_failed", data.login)
            return _login_page(
                request,
                secure,
                error=gettext("Wrong login or password."),
                login=data.login,
                next_=next_,
                status=401,
            )
        await _audit_login(request, "login", data.login, user_id)
        pending = await core.totp_required(user_id)
        token = await core.create_session(
            key,
            user_id,
            mfa_pending=pending,
            address=(request.client.host if request.client else ""),
            user_agent=request.headers.get("user-agent", ""),
        )
        target = f"/login/totp?next={next_}" if pending else next_
        return Redirect(target, cookies=[session_cookie(token, secure)], status_code=303)

    @get("/login/totp", operation_id="totpPage")
    async def totp_page(self, request: Request[Any, Any, Any], next: str = "/") -> Response[Any]:
        token = request.cookies.get(SESSION_COOKIE, "")
        if not token:
            return Redirect("/login", status_code=303)
        return Template(
            "auth/totp.html", context={"next": safe_next(next), "csrf_seed": token, "error": ""}
        )

    @post("/login/totp", operation_id="totpLogin", status_code=303)
    async def totp_login(
        self,
        request: Request[Any, Any, Any],
        settings: AppSettings,
        data: Annotated[CodeForm, FORM],
        next: str = "/",
    ) -> Response[Any]:
        key = secret_key(settings)
        token = request.cookies.get(SESSION_COOKIE, "")
        await check_csrf(request, key, token)
        principal = await core.principal_for_session(key, token)
        if principal is None or not principal.mfa_pending:
            return Redirect("/login", status_code=303)
        if not await core.verify_totp(principal.user_id, data.code):
            return Template(
                "auth/totp.html",
                context={
                    "next": safe_next(next),
                    "csrf_seed": token,
                    "error": gettext("The code is wrong or was already used."),
                },
                status_code=401,
            )
        fresh = await core.finish_mfa(key, token)
        return Redirect(
            safe_next(next),
            cookies=[session_cookie(fresh, is_https(request.scope))],
            status_code=303,
        )

    @get("/lang/{code:str}", operation_id="setLanguage")
    async def set_language(self, code: str, next: str = "/") -> Redirect:
        if code not in LANGUAGES:
            code = "zh_CN"
        cookie = Cookie(key=LANG_COOKIE, value=code, samesite="lax", path="/", max_age=365 * 86400)
        return Redirect(safe_next(next), cookies=[cookie], status_code=303)


@post("/logout", operation_id="logout", include_in_schema=False, status_code=303)
async def logout(request: Request[Any, Any, Any], settings: AppSettings) -> Redirect:
    await audit_log(request, "logout")
    await core.delete_session(secret_key(settings), request.cookies.get(SESSION_COOKIE, ""))
    gone = Cookie(key=SESSION_COOKIE, value="", max_age=0, path="/", httponly=True)
    return Redirect("/login", cookies=[gone], status_code=303)
