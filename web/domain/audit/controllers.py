from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import Parameter
from litestar.response import Template

from web.auth import CurrentUser
from web.domain.audit import services
from web.domain.audit.schemas import AuditEntryList
from web.errors import BAD_REQUEST

ROLES = {"roles": ("operator", "owner")}
PAGE_SIZE = 50

ActionParam = Annotated[
    str | None, Parameter(description="Only this action (`login_failed`, `update`, …)")
]
ActorParam = Annotated[str | None, Parameter(description="Only this actor's, exactly")]
TargetParam = Annotated[str | None, Parameter(description="Only this target (`hotline:400…`)")]
SinceParam = Annotated[
    str | None, Parameter(description="At or after (ISO 8601; UTC if no offset)")
]
UntilParam = Annotated[str | None, Parameter(description="Before (ISO 8601; UTC if no offset)")]


class AuditController(Controller):
    path = "/api/v1/audit"
    tags = ("audit",)
    opt = ROLES

    @get(
        "/",
        operation_id="listAuditEntries",
        summary="The audit log, newest first",
        description="Logins, logouts and every configuration change: who, when, from "
        "where and what changed. An operator sees all; an owner their tenant's.",
        responses=BAD_REQUEST,
    )
    async def list_entries(
        self,
        principal: CurrentUser,
        action: ActionParam = None,
        actor: ActorParam = None,
        target: TargetParam = None,
        since: SinceParam = None,
        until: UntilParam = None,
        limit: Annotated[int, Parameter(ge=1, le=500, description="Entries per page")] = 50,
        offset: Annotated[int, Parameter(ge=0, le=10**9, description="Entries to skip")] = 0,
    ) -> AuditEntryList:
        return await services.list_entries(
            principal,
            action=action,
            actor=actor,
            target=target,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )


class AuditPageController(Controller):
    path = "/audit"
    include_in_schema = False
    opt = ROLES

    @get("/", operation_id="auditPage")
    async def audit_page(
        self,
        principal: CurrentUser,
        action: str | None = None,
        actor: str | None = None,
        page: Annotated[int, Parameter(ge=1, le=10**6)] = 1,
    ) -> Template:
        entries = await services.list_entries(
            principal,
            action=action or None,
            actor=actor or None,
            limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE,
        )
        return Template(
            "audit/list.html",
            context={
                "entries": entries,
                "action": action or "",
                "actor": actor or "",
                "page": page,
                "pages": max(1, -(-entries.total // PAGE_SIZE)),
            },
        )
