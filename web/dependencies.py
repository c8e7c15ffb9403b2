"""What handlers may ask for by name; the plugin provides each."""

from __future__ import annotations

from typing import TypeAlias

from litestar.di import NamedDependency

from appliance.settings import Settings

AppSettings: TypeAlias = NamedDependency[Settings]
"""`settings: AppSettings` in a handler: the settings the app was created with."""
