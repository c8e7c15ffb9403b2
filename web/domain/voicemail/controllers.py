"""The voicemail inbox (语音信箱): the REST API and the page."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from litestar import Controller, Request, delete, get, patch, post
from litestar.params import Parameter
from litestar.response import File, Redirect, Template

from web.auth import CurrentUser
from web.dependencies import AppSettings
from web.domain.audit.services import log as audit_log
from web.domain.voicemail import services
from web.domain.voicemail.schemas import VoicemailList, VoicemailOut, VoicemailUpdate
from web.errors import BAD_REQUEST, InvalidRequest, error_response_spec

OWNERS = {"roles": ("operator", "owner")}
NOT_FOUND = {404: error_response_spec("No such message of yours (`voicemail-not-found`)")}
CallIdParam = Annotated[str, Parameter(description="The SIP Call-ID of the call")]
PAGE_SIZE = 50
_SAFE = re.compile(r"[^\w.-]")
AUDIO_TYPES = {".wav": "audio/wav", ".mp3": "audio/mpeg", ".ogg": "audio/ogg"}


def _audio(path: Any, call_id: str, download: bool) -> File:
    return File(
        path,
        filename=f"voicemail-{_SAFE.sub('_', call_id)[:80]}{path.suffix}",
        media_type=AUDIO_TYPES.get(path.suffix.lower(), "application/octet-stream"),
        content_disposition_type="attachment" if download else "inline",
        headers={"Cache-Control": "private, no-store"},
    )


class VoicemailController(Controller):
    path = "/api/v1/voicemail"
    tags = ("voicemail",)
    opt = OWNERS

    @get(
        "/",
        operation_id="listVoicemail",
        summary="The voicemail inbox, newest first",
        responses={**BAD_REQUEST},
    )
    async def list_voicemail(
        self,
        principal: CurrentUser,
        settings: AppSettings,
        show: Annotated[
            str | None,
            Parameter(query="state", description="`new` or `heard`; both when left out"),
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=500, description="Messages per page")] = 50,
        offset: Annotated[int, Parameter(ge=0, le=10**9, description="Messages to skip")] = 0,
    ) -> VoicemailList:
        return await services.list_voicemail(
            principal, settings, services.parse_state(show), limit, offset
        )

    @get(
        "/{call_id:str}",
        operation_id="getVoicemail",
        summary="One message",
        responses={**BAD_REQUEST, **NOT_FOUND},
    )
    async def get_voicemail(
        self, principal: CurrentUser, settings: AppSettings, call_id: CallIdParam
    ) -> VoicemailOut:
        return await services.get_voicemail(principal, settings, call_id)

    @get(
        "/{call_id:str}/audio",
        operation_id="getVoicemailAudio",
        summary="The message's audio, to play or (with `download=true`) to save",
        description="Listening through this does not mark the message heard; "
        "`updateVoicemail` does (the page calls it when playing starts).",
        responses={**BAD_REQUEST, **NOT_FOUND},
        media_type="audio/wav",
    )
    async def get_audio(
        self,
        principal: CurrentUser,
        settings: AppSettings,
        call_id: CallIdParam,
        download: Annotated[bool, Parameter(description="As an attachment")] = False,
    ) -> File:
        path = await services.audio_path(principal, settings, call_id)
        return _audio(path, call_id, download)

    @patch(
        "/{call_id:str}",
        operation_id="updateVoicemail",
        summary="Mark a message heard, or new again",
        responses={**BAD_REQUEST, **NOT_FOUND},
    )
    async def update_voicemail(
        self,
        principal: CurrentUser,
        settings: AppSettings,
        call_id: CallIdParam,
        data: VoicemailUpdate,
    ) -> VoicemailOut:
        return await services.set_heard(principal, settings, call_id, data.heard)

    @delete(
        "/{call_id:str}",
        operation_id="deleteVoicemail",
        summary="Delete a message: its audio file goes, the call record stays",
        responses={**BAD_REQUEST, **NOT_FOUND},
    )
    async def delete_voicemail(
        self,
        request: Request[Any, Any, Any],
        principal: CurrentUser,
        settings: AppSettings,
        call_id: CallIdParam,
    ) -> None:
        tenant = await services.delete_voicemail(principal, settings, call_id)
        await audit_log(request, "delete", f"voicemail:{call_id}", tenant=tenant)


class VoicemailPageController(Controller):
    path = "/voicemail"
    include_in_schema = False
    opt = OWNERS

    @get("/", operation_id="voicemailPage")
    async def voicemail_page(
        self,
        principal: CurrentUser,
        settings: AppSettings,
        show: Annotated[str | None, Parameter(query="state")] = None,
        offset: Annotated[int, Parameter(ge=0, le=10**9)] = 0,
    ) -> Template:
        zone = ZoneInfo(settings.timezone)
        try:
            parsed, error = services.parse_state(show), ""
        except InvalidRequest as exc:
            parsed, error = None, exc.detail
        page = await services.list_voicemail(principal, settings, parsed, PAGE_SIZE, offset)
        return Template(
            template_name="voicemail/list.html",
            context={
                "messages": [
                    {
                        "m": m,
                        "started": m.started_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
                        "length": f"{m.duration_ms // 60000}:{m.duration_ms // 1000 % 60:02d}",
                        "id": quote(m.call_id, safe=""),
                    }
                    for m in page.items
                ],
                "total": page.total,
                "new": page.new,
                "state": parsed or "",
                "offset": offset,
                "page_size": PAGE_SIZE,
                "qs": urlencode({"state": parsed} if parsed else {}),
                "error": error,
                "now": datetime.now(zone).strftime("%Y-%m-%d %H:%M:%S"),
            },
            status_code=400 if error else 200,
        )

    @post("/{call_id:str}/heard", operation_id="voicemailMarkHeard")
    async def mark_heard(
        self,
        request: Request[Any, Any, Any],
        principal: CurrentUser,
        settings: AppSettings,
        call_id: str,
    ) -> Redirect:
        form = await request.form()
        heard = form.get("heard", "true") != "false"
        await services.set_heard(principal, settings, call_id, heard)
        return Redirect(_back(request), status_code=303)

    @post("/{call_id:str}/delete", operation_id="voicemailDelete")
    async def delete_message(
        self,
        request: Request[Any, Any, Any],
        principal: CurrentUser,
        settings: AppSettings,
        call_id: str,
    ) -> Redirect:
        tenant = await services.delete_voicemail(principal, settings, call_id)
        await audit_log(request, "delete", f"voicemail:{call_id}", tenant=tenant)
        return Redirect(_back(request), status_code=303)


def _back(request: Request[Any, Any, Any]) -> str:
    """The inbox as the user had it (a same-site Referer only)."""
    referer = request.headers.get("referer", "")
    base = str(request.base_url).rstrip("/")
    if referer.startswith(base + "/voicemail"):
        return referer[len(base) :]
    return "/voicemail"
