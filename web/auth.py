"""Who is asking, checked in one place for every route: an ASGI middleware
that runs before each handler (HTTP and WebSocket).

- A request is authenticated by a bearer API token (`Authorization: Bearer
  lbt_…`) or by the session cookie; anything else gets 401 (pages: a redirect
  to the login page). Handlers opt out with `opt={"public": True}` (login,
  `/healthz`, static files, the OpenAPI document).
- `opt={"roles": (...)}` on a handler or controller limits it to those roles
  (403 otherwise).
- Every unsafe request made with a session cookie must carry the CSRF token
  (form field `_csrf` or header `X-CSRF-Token`); API tokens need none, as no
  browser sends them by itself.
- Tenant scoping: handlers get the `Principal` (`principal: CurrentUser`) and
  pass it to their services, which filter with `tenant_filter()`; an owner's
  query can only ever see rows of their tenant, so another tenant's object is
  simply not found (404), the same as one that does not exist.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any, TypeAlias

from litestar import Request
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.types import ASGIApp, Receive, Scope, Send

from appliance.auth import core
from appliance.auth.core import Principal, keyed_hash
from appliance.auth.secret import secret_key
from appliance.settings import Settings

SESSION_COOKIE = "lb_session"
ANON_COOKIE = "lb_anon"
"""Keys the CSRF token of forms shown before login (the login form itself)."""
CSRF_FIELD = "_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_PREFIXES = ("/api/v1/schema", "/static/")

CurrentUser: TypeAlias = NamedDependency[Principal]
"""`principal: CurrentUser` in a handler: who is asking (never None there)."""


class CsrfError(PermissionDeniedException):
    pass


def csrf_token(key: bytes, seed: str) -> str:
    return keyed_hash(key, "csrf|" + seed)[:40]


def csrf_seed(request: Request[Any, Any, Any]) -> str:
    user = request.scope.get("user")
    if isinstance(user, Principal) and user.session_token:
        return user.session_token
    return request.cookies.get(ANON_COOKIE, "")


def anon_cookie(request: Request[Any, Any, Any], secure: bool) -> tuple[str, Cookie | None]:
    """The pre-login CSRF seed, and the cookie to set when the browser has none."""
    seed = request.cookies.get(ANON_COOKIE, "")
    if len(seed) >= 20:
        return seed, None
    seed = secrets.token_urlsafe(24)
    return seed, Cookie(
        key=ANON_COOKIE, value=seed, httponly=True, samesite="lax", secure=secure, path="/"
    )


def is_https(scope: Scope) -> bool:
    if scope.get("scheme") in ("https", "wss"):
        return True
    # Behind a TLS-terminating proxy on the same box.
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-proto":
            return value.strip().lower() == b"https"
    return False


def session_cookie(token: str, secure: bool) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE,
        value=token,
        httponly=True,
        samesite="lax",
        secure=secure,
        path="/",
        max_age=core.SESSION_MAX_DAYS * 86400,
    )


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def _cookie(scope: Scope, name: str) -> str:
    raw = _header(scope, b"cookie")
    for part in raw.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return ""


async def authenticate(scope: Scope, key: bytes) -> Principal | None:
    authorization = _header(scope, b"authorization")
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return None
        return await core.principal_for_token(key, credentials.strip())
    token = _cookie(scope, SESSION_COOKIE)
    return await core.principal_for_session(key, token) if token else None


def _route_opt(scope: Scope) -> dict[str, Any]:
    handler = scope.get("route_handler")
    return dict(getattr(handler, "opt", None) or {})


class AuthMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        opt = _route_opt(scope)
        path = scope.get("path", "")
        if opt.get("public") or path.startswith(PUBLIC_PREFIXES):
            await self.app(scope, receive, send)
            return
        key = secret_key(self.settings)
        principal = await authenticate(scope, key)
        if principal is None or principal.mfa_pending:
            raise NotAuthorizedException("log in first: a session cookie or an API token")
        roles = opt.get("roles")
        if roles and principal.role not in roles:
            raise PermissionDeniedException(
                f"this needs the role {' or '.join(roles)}; you are {principal.role}"
            )
        scope["user"] = principal
        scope["auth"] = principal.via
        if (
            scope["type"] == "http"
            and scope.get("method", "GET") not in SAFE_METHODS
            and principal.via == "session"
        ):
            await check_csrf(Request(scope, receive), key, principal.session_token)
        await self.app(scope, receive, send)


async def check_csrf(request: Request[Any, Any, Any], key: bytes, seed: str) -> None:
    """Refuse an unsafe request whose CSRF token is missing or wrong."""
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD, "")
            sent = value if isinstance(value, str) else ""
    if not seed or not sent or not hmac.compare_digest(sent, csrf_token(key, seed)):
        raise CsrfError("the form has expired or came from another site (CSRF): reload the page")


def tenant_filter(principal: Principal, column: Any) -> Any | None:
    """The where-clause that keeps a query inside the principal's tenant, or
    None for an operator. `column` is the table's `tenant` foreign key."""
    if principal.is_operator:
        return None
    # A user without a tenant who is no operator sees nothing (core refuses
    # such users already; this keeps a mistake there from opening everything).
    return column == (principal.tenant_id if principal.tenant_id is not None else -1)


def scoped(principal: Principal, column: Any, conditions: list[Any]) -> list[Any]:
    clause = tenant_filter(principal, column)
    return conditions if clause is None else [clause, *conditions]
