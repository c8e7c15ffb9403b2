"""Everything the app is made of, registered in one place: controllers, error
handlers, dependencies, templates, security headers and the database."""

from __future__ import annotations

from pathlib import Path

from litestar.config.app import AppConfig
from litestar.di import Provide
from litestar.plugins import InitPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from appliance import db
from appliance.settings import Settings
from web.domain.calls.controllers import CallController, CallPageController, home
from web.domain.health.controllers import HealthController
from web.errors import EXCEPTION_HANDLERS
from web.security import add_security_headers

TEMPLATES = Path(__file__).parent / "templates"


class LineboxPlugin(InitPlugin):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        settings = self.settings
        app_config.route_handlers.extend(
            [HealthController, CallController, CallPageController, home]
        )
        app_config.exception_handlers.update(EXCEPTION_HANDLERS)
        app_config.dependencies["settings"] = Provide(lambda: settings, sync_to_thread=False)
        app_config.template_config = TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine)
        app_config.before_send.append(add_security_headers)
        app_config.on_startup.append(self.connect_database)
        app_config.on_shutdown.append(self.disconnect_database)
        return app_config

    async def connect_database(self) -> None:
        # The schema is the `linebox` command's to migrate before it starts the
        # web app; several web workers must not race to do it.
        engine = db.configure(self.settings.database_url)
        if engine.engine_type == "postgres":
            await engine.start_connection_pool()

    async def disconnect_database(self) -> None:
        engine = db.engine()
        if engine.engine_type == "postgres":
            await engine.close_connection_pool()
