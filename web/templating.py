"""The Jinja environment: gettext from web.i18n, and helpers every page uses."""

from __future__ import annotations

from typing import Any

from jinja2 import pass_context
from markupsafe import Markup, escape

from appliance.auth.secret import secret_key
from appliance.settings import Settings
from web import i18n
from web.auth import CSRF_FIELD, csrf_seed, csrf_token


def configure(environment: Any, settings: Settings) -> None:
    environment.add_extension("jinja2.ext.i18n")
    environment.install_gettext_callables(  # type: ignore[attr-defined]
        i18n.gettext, i18n.ngettext, newstyle=True
    )
    environment.autoescape = True

    @pass_context
    def csrf(context: Any) -> str:
        request = context.get("request")
        seed = context.get("csrf_seed") or (csrf_seed(request) if request is not None else "")
        return csrf_token(secret_key(settings), seed) if seed else ""

    @pass_context
    def csrf_input(context: Any) -> Markup:
        return Markup('<input type="hidden" name="{}" value="{}">').format(
            CSRF_FIELD, escape(csrf(context))
        )

    @pass_context
    def current_user(context: Any) -> Any:
        request = context.get("request")
        return None if request is None else request.scope.get("user")

    def role_label(role: str) -> str:
        return {
            "operator": i18n.gettext("operator"),
            "owner": i18n.gettext("owner"),
            "agent": i18n.gettext("agent"),
        }.get(role, role)

    def class_label(grade: str) -> str:
        return i18n.gettext("special (特号)") if grade == "special" else grade

    environment.globals.update(
        class_label=class_label,
        role_label=role_label,
        current_user=current_user,
        csrf_value=csrf,
        csrf_field=csrf_input,
        languages=i18n.LANGUAGES,
        current_language=i18n.current,
        html_lang=lambda: i18n.HTML_LANG.get(i18n.current(), "zh-CN"),
    )
