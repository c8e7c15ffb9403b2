"""Portal edits are checked by the site file's rules (appliance.sitefile.schema),
so a change made in a browser is refused for exactly the reasons a site file
would be: the current state is exported, the edited object replaced in it,
and the checker run over the whole; problems under the edited object are the
user's to fix."""

from __future__ import annotations

from typing import Any

import msgspec

from appliance.errors import LineboxError
from appliance.sitefile.export import export_site
from appliance.sitefile.locate import KeyPath, render
from appliance.sitefile.schema import Problems, SiteFile, _Checker, parse_site


class Problem(msgspec.Struct, kw_only=True):
    key: str
    """Where, relative to the object: `routes[0].to`, `blacklist[2]`."""
    message: str


class InvalidChange(LineboxError):
    """The change breaks a rule; `details["errors"]` lists each problem."""

    error_id = "invalid-change"

    def __init__(self, what: str, problems: list[Problem]) -> None:
        self.problems = problems
        text = "; ".join(f"{p.key}: {p.message}" if p.key else p.message for p in problems)
        super().__init__(
            f"{what}: {text}",
            {"errors": [{"key": p.key, "message": p.message} for p in problems]},
        )


async def current_site() -> SiteFile:
    return parse_site(await export_site(), "the appliance's configuration")


def problems_under(site: SiteFile, prefix: KeyPath) -> list[Problem]:
    problems = Problems()
    _Checker(site, problems).run()
    out = []
    for path, message in problems.items:
        if path[: len(prefix)] == tuple(prefix):
            out.append(Problem(key=render(path[len(prefix) :]), message=message))
    return out


def tenant_index(site: SiteFile, slug: str) -> int:
    for i, tenant in enumerate(site.tenants):
        if tenant.slug == slug:
            return i
    raise LineboxError(f"tenant {slug!r} is not in the configuration")


def convert(value: Any, kind: type[Any], what: str) -> Any:
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        raise InvalidChange(what, [Problem(key="", message=str(exc))]) from None
