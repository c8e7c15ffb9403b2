"""Key paths in a site file, and the line each one is written on.

tomllib gives values without positions, so a problem found in the data would
not say where to look. tomlkit keeps the document as written; to find a key we
mark it in a fresh parse (the value replaced by a marker, or a table's header
given a marker comment) and count the lines before the marker. Everything
before the marked item renders exactly as written, so the count is the line
in the original text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Table

KeyPath = tuple[str | int, ...]

_MARKER = "linebox-locate-c0ffee"
_BARE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def render(path: Sequence[str | int]) -> str:
    """`("tenants", 0, "groups", 1, "members", 2)` → `tenants[0].groups[1].members[2]`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            key = part if _BARE_KEY.match(part) else '"' + part.replace('"', '\\"') + '"'
            out += f".{key}" if out else key
    return out


class Locator:
    """Finds the line of a key path in one site file's text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._cache: dict[KeyPath, int | None] = {}

    def line(self, path: KeyPath) -> int | None:
        """The line of `path`, or of its nearest enclosing item that can be
        found; None when the text has nothing to point at (an empty file)."""
        path = tuple(path)
        while path:
            if path not in self._cache:
                self._cache[path] = self._find(path)
            if self._cache[path] is not None:
                return self._cache[path]
            path = path[:-1]
        return None

    def _find(self, path: KeyPath) -> int | None:
        try:
            doc = tomlkit.parse(self.text)
            node: Any = doc
            for part in path[:-1]:
                node = node[part]
            last = path[-1]
            item = node[last]
            if isinstance(item, AoT):
                item = item[0]
            if isinstance(item, Table) and not item.is_super_table():
                item.comment(_MARKER)  # lands on the `[header]` line
            elif isinstance(item, Table):
                return None  # an implicit table has no line of its own
            else:
                node[last] = _MARKER
            rendered = doc.as_string()
        except (TOMLKitError, KeyError, IndexError, TypeError, ValueError):
            return None
        at = rendered.find(_MARKER)
        return rendered.count("\n", 0, at) + 1 if at >= 0 else None
