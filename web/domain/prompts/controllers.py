"""Prompts (语音文件): the REST API and the page."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, delete, get, patch, post, put
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import File, Redirect, Template

from appliance.errors import LineboxError
from appliance.media.prompts import MAX_DURATION_S, MAX_TEXT_CHARS, MAX_UPLOAD_BYTES
from appliance.tables import Tenant
from web.auth import CurrentUser
from web.dependencies import AppSettings
from web.domain.audit.services import log as audit_log
from web.domain.prompts import services
from web.domain.prompts.schemas import (
    PromptAudio,
    PromptOut,
    PromptText,
    PromptTextUpdate,
    PromptUpload,
)
from web.errors import BAD_REQUEST, error_response_spec
from web.i18n import gettext
from web.sitecheck import InvalidChange

OWNERS = {"roles": ("operator", "owner")}
NOT_FOUND = {404: error_response_spec("No such prompt of yours (`prompt-not-found`)")}
CREATE_ERRORS = {
    400: error_response_spec(
        "The name is taken or invalid (`invalid-change`), or the audio or text cannot "
        "become a prompt (`invalid-prompt`: not audio, damaged, too large, too long)"
    ),
    404: error_response_spec("No such tenant of yours (`tenant-not-found`)"),
}
IdParam = Annotated[int, Parameter(ge=1, le=2**62, description="The prompt's id")]
# The body may hold a little more than the file (the form's other fields).
MAX_BODY = MAX_UPLOAD_BYTES + 1024 * 1024


class PromptController(Controller):
    path = "/api/v1/prompts"
    tags = ("prompts",)
    opt = OWNERS

    @get("/", operation_id="listPrompts", summary="The prompts of the user's tenant")
    async def list_prompts(self, principal: CurrentUser, settings: AppSettings) -> list[PromptOut]:
        return await services.list_prompts(principal, settings)

    @get(
        "/{prompt_id:int}",
        operation_id="getPrompt",
        summary="One prompt",
        responses={**BAD_REQUEST, **NOT_FOUND},
    )
    async def get_prompt(
        self, principal: CurrentUser, settings: AppSettings, prompt_id: IdParam
    ) -> PromptOut:
        return await services.get_prompt(principal, settings, prompt_id)

    @get(
        "/{prompt_id:int}/audio",
        operation_id="getPromptAudio",
        summary="The prompt as callers hear it (8 kHz mono WAV)",
        responses={**BAD_REQUEST, **NOT_FOUND},
        media_type="audio/wav",
    )
    async def get_audio(
        self, principal: CurrentUser, settings: AppSettings, prompt_id: IdParam
    ) -> File:
        path = await services.audio_path(principal, settings, prompt_id)
        return File(
            path,
            filename=path.name,
            media_type="audio/wav",
            content_disposition_type="inline",
            headers={"Cache-Control": "private, no-cache"},
        )

    @post(
        "/",
        operation_id="uploadPrompt",
        summary="A new prompt from an audio file (multipart/form-data)",
        description=f"WAV, MP3, Ogg Vorbis, FLAC or AIFF, at most "
        f"{MAX_UPLOAD_BYTES // 1048576} MB and {MAX_DURATION_S // 60} minutes. It is "
        "converted to 8 kHz mono, its silent ends trimmed and its loudness normalised. "
        "Nothing is kept when anything fails.",
        responses=CREATE_ERRORS,
        request_max_body_size=MAX_BODY,
    )
    async def upload_prompt(
        self,
        request: Request[Any, Any, Any],
        principal: CurrentUser,
        settings: AppSettings,
        data: Annotated[PromptUpload, Body(media_type=RequestEncodingType.MULTI_PART)],
    ) -> PromptOut:
        prompt = await services.create_from_upload(
            principal, settings, data.name, data.file, data.tenant
        )
        await audited(request, "create", prompt)
        return prompt

    @post(
        "/text",
        operation_id="speakPrompt",
        summary="A new prompt spoken from text (espeak-ng)",
        description=f"Mandarin when the text has a Chinese character, else English; at "
        f"most {MAX_TEXT_CHARS} characters.",
        responses=CREATE_ERRORS,
    )
    async def speak_prompt(
        self,
        request: Request[Any, Any, Any],
        principal: CurrentUser,
        settings: AppSettings,
        data: PromptText,
    ) -> PromptOut:
        prompt = await services.create_from_text(
            principal, settings, data.name, data.text, data.tenant
        )
        await audited(request, "create", prompt)
        return prompt

    @patch(
        "/{prompt_id:int}",
        operation_id="respeakPrompt",
        summary="Speak new text into the prompt; what plays it plays the new audio",
        responses={**CREATE_ERRORS, **NOT_FOUND},
    )
    async def respeak_prompt(
        self,
        request: Request[Any, Any, Any],
        principal: CurrentUser,
        settings: AppSettings,
        prompt_id: IdParam,
        data: PromptTextUpdate,
    ) -> PromptOut:
        prompt = await services.replace_text(principal, settings, prompt_id, data.text)
        await audited(request, "update", prompt)
        return prompt

    @put(
        "/{prompt_id:int}/audio",
        operation_id="replacePromptAudio",
        summary="New audio for the prompt (multipart/form-data), checked like an upload",
        description="Nothing changes when the file cannot become a prompt.",
        responses={**CREATE_ERRORS, **NOT_FOUND},
        request_max_body_size=MAX_BODY,
    )
    async def replace_audio(
        self,
        request: Request[Any, Any, Any],
        principal: CurrentUser,
        settings: AppSettings,
        prompt_id: IdParam,
        data: Annotated[PromptAudio, Body(media_type=RequestEncodingType.MULTI_PART)],
    ) -> PromptOut:
        prompt = await services.replace_audio(principal, settings, prompt_id, data.file)
        await audited(request, "update", prompt)
        return prompt

    @delete(
        "/{prompt_id:int}",
        operation_id="deletePrompt",
        summary="Delete a prompt that nothing plays",
        responses={
            400: error_response_spec(
                "A hotline, extension, menu or group queue plays it (`invalid-change`; "
                "`details.errors` says which)"
            ),
            **NOT_FOUND,
        },
    )
    async def delete_prompt(
        self, request: Request[Any, Any, Any], principal: CurrentUser, prompt_id: IdParam
    ) -> None:
        await audited(request, "delete", await services.delete_prompt(principal, prompt_id))


class PromptPageController(Controller):
    path = "/prompts"
    include_in_schema = False
    opt = OWNERS

    async def _page(
        self,
        principal: Any,
        settings: Any,
        status: int = 200,
        error: str = "",
        message: str = "",
        form: dict[str, str] | None = None,
    ) -> Template:
        tenants: list[str] = []
        if principal.is_operator:
            tenants = [r["slug"] for r in await Tenant.select(Tenant.slug).order_by(Tenant.slug)]
        return Template(
            template_name="prompts/list.html",
            context={
                "prompts": await services.list_prompts(principal, settings),
                "tenants": tenants,
                "error": error,
                "message": message,
                "form": form or {},
                "max_mb": MAX_UPLOAD_BYTES // 1048576,
                "max_minutes": MAX_DURATION_S // 60,
                "max_chars": MAX_TEXT_CHARS,
            },
            status_code=status,
        )

    @get("/", operation_id="promptsPage")
    async def prompts_page(self, principal: CurrentUser, settings: AppSettings) -> Template:
        return await self._page(principal, settings)

    @post("/upload", operation_id="promptUpload", status_code=200, request_max_body_size=MAX_BODY)
    async def upload(
        self, request: Request[Any, Any, Any], principal: CurrentUser, settings: AppSettings
    ) -> Template:
        form = await request.form()
        name, tenant, upload = _text(form, "name"), _text(form, "tenant"), form.get("file")
        try:
            if not isinstance(upload, UploadFile) or not upload.filename:
                raise LineboxError(gettext("Choose an audio file."))
            prompt = await services.create_from_upload(
                principal, settings, name, upload, tenant or None
            )
            await audited(request, "create", prompt)
        except LineboxError as exc:
            return await self._page(principal, settings, 400, error=exc.detail, form={"name": name})
        return await self._page(
            principal, settings, message=gettext("Prompt %(name)s added.") % {"name": prompt.name}
        )

    @post("/text", operation_id="promptSpeak", status_code=200)
    async def speak(
        self, request: Request[Any, Any, Any], principal: CurrentUser, settings: AppSettings
    ) -> Template:
        form = await request.form()
        name, text, tenant = _text(form, "name"), _text(form, "text"), _text(form, "tenant")
        try:
            prompt = await services.create_from_text(
                principal, settings, name, text, tenant or None
            )
            await audited(request, "create", prompt)
        except LineboxError as exc:
            return await self._page(
                principal, settings, 400, error=exc.detail, form={"tts_name": name, "text": text}
            )
        return await self._page(
            principal, settings, message=gettext("Prompt %(name)s added.") % {"name": prompt.name}
        )

    @post(
        "/{prompt_id:int}/replace",
        operation_id="promptReplace",
        status_code=200,
        request_max_body_size=MAX_BODY,
    )
    async def replace(
        self,
        request: Request[Any, Any, Any],
        principal: CurrentUser,
        settings: AppSettings,
        prompt_id: int,
    ) -> Template:
        form = await request.form()
        upload, text = form.get("file"), _text(form, "text")
        try:
            if isinstance(upload, UploadFile) and upload.filename:
                prompt = await services.replace_audio(principal, settings, prompt_id, upload)
            elif text:
                prompt = await services.replace_text(principal, settings, prompt_id, text)
            else:
                raise LineboxError(gettext("Choose an audio file or write a text."))
            await audited(request, "update", prompt)
        except LineboxError as exc:
            if exc.error_id == "prompt-not-found":
                raise
            return await self._page(principal, settings, 400, error=exc.detail)
        return await self._page(
            principal,
            settings,
            message=gettext("Prompt %(name)s replaced.") % {"name": prompt.name},
        )

    @post("/{prompt_id:int}/delete", operation_id="promptDelete", status_code=200)
    async def delete(
        self,
        request: Request[Any, Any, Any],
        principal: CurrentUser,
        settings: AppSettings,
        prompt_id: int,
    ) -> Any:
        try:
            await audited(request, "delete", await services.delete_prompt(principal, prompt_id))
        except InvalidChange as exc:
            return await self._page(principal, settings, 400, error=exc.detail)
        return Redirect("/prompts", status_code=303)


async def audited(request: Request[Any, Any, Any], action: str, prompt: PromptOut) -> None:
    """The audit log's entry for a prompt added or deleted."""
    await audit_log(
        request,
        action,
        f"prompt:{prompt.name}",
        detail={"kind": prompt.kind, **({"text": prompt.text} if prompt.text else {})},
        tenant=prompt.tenant,
    )


def _text(form: Any, name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""
