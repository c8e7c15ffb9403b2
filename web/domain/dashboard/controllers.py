from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import msgspec
from litestar import Controller, WebSocket, get, websocket
from litestar.exceptions import WebSocketDisconnect
from litestar.response import Template

from appliance.auth.core import Principal
from web.auth import CurrentUser
from web.dependencies import AppSettings
from web.domain.dashboard import services
from web.domain.dashboard.schemas import Dashboard

POLL_SECONDS = 1.0


class DashboardController(Controller):
    path = "/api/v1/dashboard"
    tags = ("dashboard",)

    @get(
        "/", operation_id="getDashboard", summary="Today's calls, answer rate, balance, live calls"
    )
    async def get_dashboard(self, principal: CurrentUser, settings: AppSettings) -> Dashboard:
        return await services.dashboard(principal, settings.timezone)


class DashboardPageController(Controller):
    path = "/dashboard"
    include_in_schema = False

    @get("/", operation_id="dashboardPage")
    async def dashboard_page(self, principal: CurrentUser, settings: AppSettings) -> Template:
        data = await services.dashboard(principal, settings.timezone)
        return Template("dashboard/index.html", context={"d": data})


@websocket("/ws/live", opt={"roles": ("operator", "owner", "agent")})
async def live(socket: WebSocket[Any, Any, Any]) -> None:
    """Calls in progress, pushed as JSON `{"calls": [...]}` whenever they change.
    The login check ran before the handshake (web/auth.py); an origin other
    than this site is refused, so another site cannot read it with the cookie."""
    principal = socket.scope.get("user")
    origin = socket.headers.get("origin", "")
    host = socket.headers.get("host", "")
    if not isinstance(principal, Principal) or (origin and origin.split("://", 1)[-1] != host):
        await socket.close(code=4403)
        return
    await socket.accept()

    async def until_closed() -> None:
        # The browser sends nothing; reading is how a close is noticed.
        with contextlib.suppress(WebSocketDisconnect, OSError):
            while True:
                await socket.receive_data(mode="text")

    closed = asyncio.create_task(until_closed())
    last = b""
    try:
        while not closed.done():
            payload = msgspec.json.encode({"calls": await services.live_calls(principal)})
            if payload != last:
                await socket.send_text(payload.decode())
                last = payload
            await asyncio.wait([closed], timeout=POLL_SECONDS)
    except (WebSocketDisconnect, OSError):
        pass
    finally:
        closed.cancel()
