from __future__ import annotations

from appliance.auth import core
from appliance.auth.core import ApiTokenInfo, Principal
from appliance.errors import NotFound
from web.domain.account.schemas import ApiTokenOut, Me


class TokenNotFound(NotFound):
    error_id = "api-token-not-found"


def token_out(info: ApiTokenInfo) -> ApiTokenOut:
    return ApiTokenOut(
        id=info.id,
        name=info.name,
        prefix=info.prefix,
        created_at=info.created_at,
        last_used_at=info.last_used_at,
        revoked_at=info.revoked_at,
    )


async def me(principal: Principal) -> Me:
    return Me(
        login=principal.login,
        role=principal.role,
        tenant=principal.tenant_slug,
        tenant_name=principal.tenant_name,
        extension=principal.extension,
        totp_enabled=await core.totp_required(principal.user_id),
    )


async def revoke(principal: Principal, token_id: int) -> None:
    if not await core.revoke_api_token(principal.user_id, token_id):
        raise TokenNotFound(f"you have no API token {token_id}", {"id": token_id})
