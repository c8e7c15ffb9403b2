from __future__ import annotations

from typing import Any

import msgspec


class MenuOut(msgspec.Struct, kw_only=True):
    """An IVR menu (IVR语音导航): callers hear the prompt and press a key."""

    tenant: str
    name: str
    prompt: str
    """The prompt's name; empty for none."""
    timeout: int
    """Seconds to wait for a key (1 to 60)."""
    retries: int
    """How often the prompt is repeated when no valid key comes (0 to 10)."""
    dial_extensions: bool
    """Callers may key in an extension number directly."""
    keys: dict[str, str]
    """Key (0-9, *, #) → destination: ext:1001, tel:…, group:sales, menu:…,
    hotline:…, voicemail."""
    on_timeout: str
    """Where callers go when no key comes; empty: they hear goodbye."""


class MenuCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    prompt: str = ""
    timeout: int = 5
    retries: int = 2
    dial_extensions: bool = False
    keys: dict[str, str] = {}
    on_timeout: str = ""
    tenant: str | None = None
    """The tenant's slug: operators name it when the appliance serves several."""


class MenuUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Fields to change; `keys` replaces the whole table."""

    prompt: str | msgspec.UnsetType = msgspec.UNSET
    timeout: int | msgspec.UnsetType = msgspec.UNSET
    retries: int | msgspec.UnsetType = msgspec.UNSET
    dial_extensions: bool | msgspec.UnsetType = msgspec.UNSET
    keys: dict[str, str] | msgspec.UnsetType = msgspec.UNSET
    on_timeout: str | msgspec.UnsetType = msgspec.UNSET

    def given(self) -> dict[str, Any]:
        return {
            f: getattr(self, f)
            for f in self.__struct_fields__
            if getattr(self, f) is not msgspec.UNSET
        }
