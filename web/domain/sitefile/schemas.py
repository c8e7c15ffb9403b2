from __future__ import annotations

import msgspec


class SiteUpload(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    text: str
    """The site file (TOML). An owner's file holds only their own `[[tenants]]`."""


class SiteChanges(msgspec.Struct, kw_only=True):
    """What applying the file changes (or would change, for a preview)."""

    applied: bool
    changes: list[str]
    """`+ extension 1001`, `~ hotline 4001234567: routes`, `- group sales`."""
    warnings: list[str]
