from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post, put
from litestar.response import Template

from appliance.audit import diff
from appliance.errors import LineboxError
from web.domain.audit.services import log as audit_log
from web.domain.network import services
from web.domain.network.schemas import NetworkIn, NetworkOut, NetworkSaved
from web.errors import BAD_REQUEST
from web.i18n import gettext

OPERATORS = {"roles": ("operator",)}
_SHOWN = ("mode", "address", "gateway", "dns", "interface")


async def save(request: Request[Any, Any, Any], data: NetworkIn) -> NetworkSaved:
    before, saved = await services.save(data)
    if saved.changed:
        old = {k: getattr(before, k) for k in _SHOWN}
        new = {k: getattr(saved.network, k) for k in _SHOWN}
        await audit_log(
            request, "network", "appliance:network", changes=diff(old, new), tenant=None
        )
    return saved


class NetworkController(Controller):
    path = "/api/v1/admin/network"
    tags = ("admin",)
    opt = OPERATORS

    @get("/", operation_id="getNetwork", summary="DHCP or the static address, and the address now")
    async def get_network(self) -> NetworkOut:
        return await services.get_network()

    @put(
        "/",
        operation_id="setNetwork",
        summary="Use DHCP or a static address (systemd-networkd)",
        description="Checked strictly (`invalid-network` says what to fix); nothing is "
        "written unless all is well. Also what `linebox export` writes as "
        "`[appliance.network]`.",
        responses=BAD_REQUEST,
    )
    async def set_network(self, request: Request[Any, Any, Any], data: NetworkIn) -> NetworkSaved:
        return await save(request, data)


class NetworkPageController(Controller):
    path = "/admin/network"
    include_in_schema = False
    opt = OPERATORS

    async def _page(self, status: int = 200, **context: Any) -> Template:
        base: dict[str, Any] = {
            "section": "network",
            "net": await services.get_network(),
            "message": "",
            "error": "",
            "form": None,
        }
        base.update(context)
        return Template("admin/network.html", context=base, status_code=status)

    @get("/", operation_id="networkPage")
    async def network_page(self) -> Template:
        return await self._page()

    @post("/", operation_id="networkSave", status_code=200)
    async def network_save(self, request: Request[Any, Any, Any]) -> Template:
        form = await request.form()

        def field(name: str) -> str:
            value = form.get(name, "")
            return value.strip() if isinstance(value, str) else ""

        data = NetworkIn(
            mode="static" if field("mode") == "static" else "dhcp",
            address=field("address"),
            gateway=field("gateway"),
            dns=[d for d in field("dns").replace(",", " ").split() if d],
            interface=field("interface") or "en* eth*",
        )
        try:
            saved = await save(request, data)
        except LineboxError as exc:
            return await self._page(400, error=exc.detail, form=data)
        if not saved.changed:
            message = gettext("Nothing changed.")
        elif saved.applied:
            message = gettext("Saved and applied.")
        else:
            message = gettext("Saved. It takes effect when the appliance restarts its network.")
        return await self._page(message=message)
