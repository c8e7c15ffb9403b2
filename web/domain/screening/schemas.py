from __future__ import annotations

from typing import Literal

import msgspec

ListName = Literal["blacklist", "whitelist", "blocked_regions"]


class ScreeningOut(msgspec.Struct, kw_only=True):
    """Who may not call a hotline."""

    hotline: str
    blacklist: list[str]
    """Numbers or prefixes (`0571*`) refused with 603."""
    whitelist: list[str]
    """When not empty, only these numbers or prefixes may call."""
    blocked_regions: list[str]
    """Provinces (`浙江省`), cities (`杭州市`) or area codes (`0571`) refused with 486."""


class ScreeningPaste(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A bulk paste: one entry a line. Nothing is saved unless every line is valid."""

    text: str
    """One number, prefix (`0571*`), or for `blocked_regions` one region, a line;
    blank lines are skipped, spaces and dashes inside numbers ignored."""
    mode: Literal["replace", "add"] = "replace"
    """`replace` the list with the paste, or `add` the paste to it."""
