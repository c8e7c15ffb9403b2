"""The errors linebox raises on purpose. Each carries a human `detail`; the web
layer maps `error_id` to an HTTP status in one place."""

from __future__ import annotations

from typing import Any


class LineboxError(Exception):
    """Base of every error linebox reports to a person."""

    error_id = "linebox-error"

    def __init__(self, detail: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.details = details or {}


class SettingsError(LineboxError):
    error_id = "invalid-settings"


class SiteFileError(LineboxError):
    """A site file that cannot be applied; `problems` name each key and line."""

    error_id = "invalid-site-file"

    def __init__(self, problems: list[str], source: str = "site file") -> None:
        self.problems = problems
        super().__init__(
            f"{source}: " + "; ".join(problems)
            if len(problems) == 1
            else f"{source}: {len(problems)} problems:\n  " + "\n  ".join(problems),
            {"problems": problems},
        )


class NotFound(LineboxError):
    error_id = "not-found"
