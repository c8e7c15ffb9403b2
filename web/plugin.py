"""Everything the app is made of, registered in one place: controllers, error
handlers, dependencies, templates, security headers, the login check and the
database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar.config.app import AppConfig
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.plugins import InitPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from litestar.types import Scope

from appliance import db
from appliance.auth.core import Principal
from appliance.settings import Settings
from web import templating
from web.auth import AuthMiddleware
from web.domain.account.controllers import AccountApiController, AccountPageController
from web.domain.admin.controllers import (
    AdminPageController,
    BackupAdminController,
    HealthAdminController,
    NumberAdminController,
    TenantAdminController,
    TrunkAdminController,
    UserAdminController,
)
from web.domain.audit.controllers import AuditController, AuditPageController
from web.domain.auth.controllers import LoginController, logout
from web.domain.billing.controllers import BillingController, BillingPageController
from web.domain.calls.controllers import CallController, CallPageController, home
from web.domain.dashboard.controllers import DashboardController, DashboardPageController, live
from web.domain.extensions.controllers import ExtensionController, ExtensionPageController
from web.domain.groups.controllers import GroupController, GroupPageController
from web.domain.health.controllers import HealthController
from web.domain.hotlines.controllers import HotlineController, HotlinePageController
from web.domain.menus.controllers import MenuController, MenuPageController
from web.domain.network.controllers import NetworkController, NetworkPageController
from web.domain.notifications.controllers import NotificationController, NotificationPageController
from web.domain.prompts.controllers import PromptController, PromptPageController
from web.domain.reports.controllers import ReportController, ReportPageController
from web.domain.schedules.controllers import ScheduleController, SchedulePageController
from web.domain.screening.controllers import ScreeningController, ScreeningPageController
from web.domain.sitefile.controllers import SiteFileController, SitePageController
from web.domain.voicemail.controllers import VoicemailController, VoicemailPageController
from web.errors import EXCEPTION_HANDLERS
from web.i18n import LanguageMiddleware
from web.security import add_security_headers

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

CONTROLLERS: list[Any] = [
    HealthController,
    LoginController,
    logout,
    AccountApiController,
    AccountPageController,
    CallController,
    CallPageController,
    HotlineController,
    HotlinePageController,
    ExtensionController,
    ExtensionPageController,
    GroupController,
    GroupPageController,
    ScheduleController,
    SchedulePageController,
    MenuController,
    MenuPageController,
    ScreeningController,
    ScreeningPageController,
    DashboardController,
    DashboardPageController,
    live,
    SiteFileController,
    SitePageController,
    VoicemailController,
    VoicemailPageController,
    PromptController,
    PromptPageController,
    ReportController,
    ReportPageController,
    BillingController,
    BillingPageController,
    NotificationController,
    NotificationPageController,
    AuditController,
    AuditPageController,
    TenantAdminController,
    NumberAdminController,
    TrunkAdminController,
    UserAdminController,
    BackupAdminController,
    HealthAdminController,
    AdminPageController,
    NetworkController,
    NetworkPageController,
    home,
]


def _principal(scope: Scope) -> Principal:
    user = scope.get("user")
    assert isinstance(user, Principal), "AuthMiddleware runs before every non-public handler"
    return user


class LineboxPlugin(InitPlugin):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        settings = self.settings
        STATIC.mkdir(exist_ok=True)
        app_config.route_handlers.extend(
            [
                *CONTROLLERS,
                create_static_files_router(
                    path="/static",
                    directories=[STATIC],
                    opt={"public": True},
                    include_in_schema=False,
                    send_as_attachment=False,
                ),
            ]
        )
        app_config.exception_handlers.update(EXCEPTION_HANDLERS)
        app_config.dependencies["settings"] = Provide(lambda: settings, sync_to_thread=False)
        app_config.dependencies["principal"] = Provide(_principal, sync_to_thread=False)
        app_config.middleware.extend(
            [LanguageMiddleware, DefineMiddleware(AuthMiddleware, settings=settings)]
        )
        app_config.template_config = TemplateConfig(
            directory=TEMPLATES,
            engine=JinjaTemplateEngine,
            engine_callback=lambda engine: templating.configure(engine.engine, settings),
        )
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
