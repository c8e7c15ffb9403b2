from __future__ import annotations

import tempfile
import tomllib
from pathlib import Path
from typing import Any

import tomlkit

from appliance.auth.core import Principal
from appliance.errors import SiteFileError
from appliance.sitefile.apply import apply_site
from appliance.sitefile.export import export_site
from web.domain.sitefile.schemas import SiteChanges

MAX_BYTES = 2 * 1024 * 1024


def _problem(message: str) -> SiteFileError:
    return SiteFileError([message], "the uploaded site file")


async def download(principal: Principal) -> str:
    """The configuration as a site file: everything for an operator, the
    owner's own tenant for an owner."""
    text = await export_site()
    if principal.is_operator:
        return text
    doc = tomlkit.parse(text)
    for key in [k for k in doc if k != "tenants"]:
        del doc[key]
    tenants = doc.get("tenants")
    if tenants is not None:
        mine = [t for t in tenants if t.get("slug") == principal.tenant_slug]
        doc["tenants"] = tomlkit.aot()
        for t in mine:
            doc["tenants"].append(t)
    header = (
        f"# {principal.tenant_name} ({principal.tenant_slug}): upload this file back to\n"
        "# change your tenant; trunks, operators and other tenants are not yours to edit.\n\n"
    )
    return header + tomlkit.dumps(doc)


def _check_references(raw: dict[str, Any]) -> None:
    for tenant in raw.get("tenants") or []:
        for i, prompt in enumerate(tenant.get("prompts") or [] if isinstance(tenant, dict) else []):
            ref = prompt.get("file") if isinstance(prompt, dict) else None
            if isinstance(ref, str) and (ref.startswith("/") or ".." in Path(ref).parts):
                raise _problem(
                    f"prompts[{i}].file: {ref!r}: an uploaded file can only name audio "
                    "already on the appliance, by a relative path"
                )


def _billing_without_balance(tenant: Any) -> dict[str, Any]:
    billing = dict(tenant.get("billing") or {}) if isinstance(tenant, dict) else {}
    billing.pop("balance", None)
    return billing


async def _owner_text(principal: Principal, text: str) -> str:
    """The owner's tenant as uploaded, followed by everything else as it is.
    Their text comes first, so problems in it keep their line numbers."""
    raw = tomllib.loads(text)
    others = set(raw) - {"tenants"}
    if others:
        raise _problem(
            f"{', '.join(sorted(others))}: your file may contain only your own [[tenants]]"
        )
    tenants = raw.get("tenants") or []
    if len(tenants) != 1 or tenants[0].get("slug") != principal.tenant_slug:
        raise _problem(f'give exactly one [[tenants]] with slug = "{principal.tenant_slug}"')
    mine = tenants[0]
    for user in mine.get("users") or []:
        if isinstance(user, dict) and user.get("role") == "operator":
            raise _problem(
                f"user {user.get('login')!r}: only the appliance's operators are operators"
            )
    current = tomlkit.parse(await export_site()).unwrap()
    current_mine: dict[str, Any] = next(
        (t for t in current.get("tenants", []) if t.get("slug") == principal.tenant_slug), {}
    )
    if _billing_without_balance(mine) != _billing_without_balance(current_mine):
        raise _problem("[tenants.billing] is the operator's: leave it as downloaded")
    rest = tomlkit.parse(await export_site())
    rest_tenants = tomlkit.aot()
    for t in rest.get("tenants", []):
        if t.get("slug") != principal.tenant_slug:
            rest_tenants.append(t)
    rest.pop("tenants", None)
    if len(rest_tenants):
        rest["tenants"] = rest_tenants
    return (
        text.rstrip("\n")
        + "\n\n# --- the rest of the appliance, unchanged ---\n"
        + tomlkit.dumps(rest)
    )


AUDIT_CHANGES = 200
"""Change lines kept in the audit entry of an apply; the count is always kept."""


def audit_detail(result: SiteChanges) -> dict[str, Any]:
    """What an applied site file changed, for the audit log. The change lines
    name objects and fields, never secret values (apply's diff hides them)."""
    return {
        "changed": len(result.changes),
        "changes": result.changes[:AUDIT_CHANGES],
    }


async def upload(principal: Principal, text: str, *, apply: bool) -> SiteChanges:
    if len(text.encode()) > MAX_BYTES:
        raise _problem(f"the file is larger than {MAX_BYTES // 1024 // 1024} MiB")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        raw = None  # parse_site reports it with the line
    if raw is not None:
        _check_references(raw)
    full = text
    if not principal.is_operator and raw is not None:
        full = await _owner_text(principal, text)
    with tempfile.TemporaryDirectory(prefix="linebox-upload-") as empty:
        result = await apply_site(full, Path(empty), dry_run=not apply, source="site file")
    return SiteChanges(applied=apply, changes=result.changes, warnings=result.warnings)
