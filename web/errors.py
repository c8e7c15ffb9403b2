"""How errors reach an API client: always JSON `{"error_id", "detail",
"details"}`, with the HTTP status chosen here and nowhere else."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.response import Redirect
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap

from appliance.errors import LineboxError

log = logging.getLogger("linebox.web")

# Exceptions to the rules in `status_for`, by exact error_id.
_STATUS_BY_ID: dict[str, int] = {
    # Bad settings are the operator's to fix, not the API client's.
    "invalid-settings": 500,
    "unauthorized": 401,
    "login-failed": 401,
    "login-locked": 429,
    "forbidden": 403,
}

# For Litestar's own HTTP errors (unknown route, wrong method, ...).
_ID_BY_STATUS: dict[int, str] = {
    400: "invalid-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    413: "request-too-large",
    429: "too-many-requests",
    500: "internal-error",
    503: "unavailable",
}


class ErrorOut(msgspec.Struct, kw_only=True):
    """What every failed API request answers."""

    error_id: str
    """Stable and kebab-case (`call-not-found`): what a program should test."""
    detail: str
    """For a person: what went wrong and what to fix."""
    details: dict[str, Any] = msgspec.field(default_factory=dict)


def error_response_spec(description: str) -> ResponseSpec:
    """For a handler's `responses=`: the OpenAPI entry of an ErrorOut answer."""
    return ResponseSpec(ErrorOut, description=description)


# Replaces Litestar's default 400 entry, which documents its own error shape.
BAD_REQUEST = {400: error_response_spec("The request is invalid (`invalid-request`)")}


class InvalidRequest(LineboxError):
    """The request itself is wrong; `details["errors"]` names each parameter."""

    error_id = "invalid-request"

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}", {"errors": [{"key": key, "message": message}]})


def status_for(error_id: str) -> int:
    """The HTTP status of a LineboxError, from its error_id."""
    if error_id in _STATUS_BY_ID:
        return _STATUS_BY_ID[error_id]
    if error_id == "not-found" or error_id.endswith("-not-found"):
        return 404
    if error_id.startswith("invalid-"):
        return 400
    return 500


def _error_response(
    status: int,
    error_id: str,
    detail: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[ErrorOut]:
    return Response(
        ErrorOut(error_id=error_id, detail=detail, details=details or {}),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def linebox_error(request: Request[Any, Any, Any], exc: LineboxError) -> Response[ErrorOut]:
    status = status_for(exc.error_id)
    if status >= 500:
        log.error("%s %s: %s: %s", request.method, request.url.path, exc.error_id, exc.detail)
    return _error_response(status, exc.error_id, exc.detail, exc.details)


def validation_error(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[ErrorOut]:
    # Litestar found a parameter it cannot parse or that breaks a bound; say
    # which one and why, e.g. "limit: Expected `int` <= 500".
    errors = [
        {"key": str(e.get("key", "")), "message": str(e.get("message", ""))}
        for e in (exc.extra if isinstance(exc.extra, list) else [])
        if isinstance(e, dict)
    ]
    detail = "; ".join(f"{e['key']}: {e['message']}" if e["key"] else e["message"] for e in errors)
    return _error_response(400, "invalid-request", detail or exc.detail, {"errors": errors})


def _wants_page(request: Request[Any, Any, Any]) -> bool:
    path = request.url.path
    return request.method == "GET" and not path.startswith("/api/") and not path.startswith("/ws")


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if status == 401 and _wants_page(request):
        # A person who is not logged in (or whose session ended) logs in, then
        # comes back here.
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return Redirect(f"/login?next={quote(target, safe='/')}", status_code=303)
    error_id = _ID_BY_STATUS.get(status, f"http-{status}")
    if status >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc.detail)
        detail = "internal error"
    else:
        detail = exc.detail
    return _error_response(status, error_id, detail, headers=exc.headers)


def unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorOut]:
    # The traceback goes to the log, never to the client.
    log.exception("%s %s: unexpected error", request.method, request.url.path, exc_info=exc)
    return _error_response(
        HTTP_500_INTERNAL_SERVER_ERROR, "internal-error", "internal error; see the appliance log"
    )


def too_deep(request: Request[Any, Any, Any], exc: RecursionError) -> Response[ErrorOut]:
    # A body nested thousands deep ([[[[…, a = [[[[…) exhausts a parser's stack:
    # the client's input is wrong, not the app.
    return _error_response(400, "invalid-request", "the request is nested too deeply")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    RecursionError: too_deep,
    LineboxError: linebox_error,
    ValidationException: validation_error,
    HTTPException: http_error,
    Exception: unexpected_error,
}
