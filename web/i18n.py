"""Languages of the portal: Chinese (zh_CN, the default) and English.

Messages are written in English in the code and templates (`_("Calls")`) and
translated by the Babel catalogs in `web/translations/<lang>/LC_MESSAGES/
messages.po`, compiled in memory when first used (no .mo files to build or
forget). `make messages` re-extracts them (see web/babel.cfg). The language is
the `lb_lang` cookie's, set by `/lang/<code>`; it is held in a context
variable for the request, so templates, services and errors all see it.
"""

from __future__ import annotations

import contextvars
import functools
import gettext as gettext_mod
import io
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from litestar.types import ASGIApp, Receive, Scope, Send

TRANSLATIONS = Path(__file__).parent / "translations"
LANGUAGES: dict[str, str] = {"zh_CN": "中文", "en": "English"}
DEFAULT = "zh_CN"
LANG_COOKIE = "lb_lang"
HTML_LANG = {"zh_CN": "zh-CN", "en": "en"}

_current: contextvars.ContextVar[str] = contextvars.ContextVar("lb_lang", default=DEFAULT)


@functools.cache
def translations(lang: str) -> gettext_mod.NullTranslations:
    po = TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po"
    if not po.exists():
        return gettext_mod.NullTranslations()
    with po.open("rb") as f:
        catalog = read_po(f, locale=lang)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer)


def current() -> str:
    return _current.get()


def set_language(lang: str) -> contextvars.Token[str]:
    return _current.set(lang if lang in LANGUAGES else DEFAULT)


def gettext(message: str) -> str:
    return translations(_current.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(_current.get()).ngettext(singular, plural, n)


_ = gettext


def language_of(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            for part in value.decode("latin-1").split(";"):
                key, _sep, val = part.strip().partition("=")
                if key == LANG_COOKIE and val in LANGUAGES:
                    return val
    return DEFAULT


class LanguageMiddleware:
    """Sets the request's language before anything renders."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = set_language(language_of(scope))
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)
