"""The Babel catalogs cover every message the portal shows."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir

from web import i18n

WEB = Path(i18n.__file__).parent
METHODS = [("templates/**.html", "jinja2"), ("**.py", "python")]


def messages() -> set[str]:
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(WEB), METHODS, keywords={"_": None, "gettext": None, "ngettext": (1, 2)}
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_every_message_has_a_chinese_translation() -> None:
    zh = i18n.translations("zh_CN")
    found = messages()
    assert len(found) > 40
    missing = sorted(m for m in found if zh.gettext(m) == m)
    assert missing == []


def test_english_is_the_message_itself_and_unknown_languages_fall_back() -> None:
    token = i18n.set_language("en")
    try:
        assert i18n.gettext("Calls") == "Calls"
    finally:
        i18n._current.reset(token)
    token = i18n.set_language("xx")
    try:
        assert i18n.current() == "zh_CN"
        assert i18n.gettext("Calls") == "通话记录"
    finally:
        i18n._current.reset(token)
