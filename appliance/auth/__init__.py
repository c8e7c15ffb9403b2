"""Who may use the portal and the API: passwords, lock-out, sessions, API
tokens, TOTP. The web app asks `authenticate_*` once per request (web/auth.py)
and gets a `Principal` or nothing; nothing here imports Litestar."""

from appliance.auth.core import (
    ROLES,
    ApiTokenInfo,
    AuthError,
    LockedOut,
    LoginFailed,
    Principal,
    change_password,
    check_password_strength,
    create_api_token,
    create_session,
    delete_session,
    list_api_tokens,
    login,
    principal_for_session,
    principal_for_token,
    revoke_api_token,
)
from appliance.auth.secret import secret_key

__all__ = [
    "ROLES",
    "ApiTokenInfo",
    "AuthError",
    "LockedOut",
    "LoginFailed",
    "Principal",
    "change_password",
    "check_password_strength",
    "create_api_token",
    "create_session",
    "delete_session",
    "list_api_tokens",
    "login",
    "principal_for_session",
    "principal_for_token",
    "revoke_api_token",
    "secret_key",
]
