"""The Litestar application: `uvicorn --factory web.app:create_app`."""

from __future__ import annotations

from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, YamlRenderPlugin

from appliance import settings as settings_mod
from appliance.settings import Settings
from web.plugin import LineboxPlugin


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or settings_mod.get()
    return Litestar(
        plugins=[LineboxPlugin(settings)],
        openapi_config=OpenAPIConfig(
            title="linebox API",
            version="1",
            path="/api/v1/schema",
            # The interactive viewers load scripts from CDNs, which an offline
            # appliance cannot reach and its CSP refuses; the document is enough.
            render_plugins=[JsonRenderPlugin(), YamlRenderPlugin()],
        ),
        debug=False,
    )
