"""A tenant's prompts (语音文件): list, upload, speak from text, listen, delete.

The audio work is appliance.media.prompts': the type sniffed from the content,
size and length limits, sox and espeak-ng run in a child with a time limit and
resource limits, the result written atomically. Here: who may, which name,
and nothing left behind when something fails. A prompt lives in
`<data>/prompts/<tenant>/<name>.wav`, as the site file's prompts do, and the
routing plan is published again after each change.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from litestar.datastructures import UploadFile

from appliance.auth.core import Principal
from appliance.errors import NotFound
from appliance.media import prompts as media
from appliance.routing.compile import publish_from_db
from appliance.settings import Settings
from appliance.sitefile.schema import PromptConfig
from appliance.tables import Extension, Group, Hotline, Menu, Prompt, Tenant
from web.auth import scoped
from web.domain.prompts.schemas import PromptOut
from web.errors import InvalidRequest
from web.sitecheck import (
    InUse,
    InvalidChange,
    Problem,
    current_site,
    problems_under,
    tenant_for,
    tenant_index,
    write_lock,
)

CHUNK = 256 * 1024


class PromptNotFound(NotFound):
    error_id = "prompt-not-found"


async def _uses(tenant_id: int, name: str) -> list[str]:
    """What plays the prompt `name` of the tenant."""
    uses = [
        f"hotline {r['number']} ringback"
        for r in await Hotline.select(Hotline.number).where(
            Hotline.tenant == tenant_id, Hotline.ringback == name
        )
    ]
    uses += [
        f"extension {r['number']} ringback"
        for r in await Extension.select(Extension.number).where(
            Extension.tenant == tenant_id, Extension.ringback == name
        )
    ]
    uses += [
        f"menu {r['name']}"
        for r in await Menu.select(Menu.name).where(Menu.tenant == tenant_id, Menu.prompt == name)
    ]
    for group in await Group.select(Group.name, Group.queue).where(Group.tenant == tenant_id):
        queue = group["queue"]
        queue = json.loads(queue) if isinstance(queue, str) else queue
        if isinstance(queue, dict) and queue.get("music") == name:
            uses.append(f"group {group['name']} queue music")
    return uses


def audio_file(settings: Settings, stored: str) -> Path | None:
    """The prompt's file when it is inside the data directory and exists."""
    if not stored:
        return None
    data_dir = settings.paths.data_dir.resolve()
    path = Path(stored)
    path = (path if path.is_absolute() else data_dir / path).resolve()
    if not path.is_relative_to(data_dir) or not path.is_file():
        return None
    return path


async def _out(row: dict[str, Any], slug: str, settings: Settings) -> PromptOut:
    path = audio_file(settings, row["file"])
    return PromptOut(
        id=row["id"],
        tenant=slug,
        name=row["name"],
        kind="text" if row["text"] else "file",
        text=row["text"],
        duration_ms=media.duration_ms(path) if path else 0,
        used_by=await _uses(row["tenant"], row["name"]),
    )


async def _slugs() -> dict[int, str]:
    return {r["id"]: r["slug"] for r in await Tenant.select(Tenant._meta.primary_key, Tenant.slug)}


async def list_prompts(principal: Principal, settings: Settings) -> list[PromptOut]:
    if principal.role == "agent":
        return []
    query = Prompt.select().order_by(Prompt.tenant, Prompt.position, Prompt.name)
    conditions = scoped(principal, Prompt.tenant, [])
    rows = await (query.where(*conditions) if conditions else query)
    slugs = await _slugs()
    return [await _out(r, slugs.get(r["tenant"], ""), settings) for r in rows]


async def _row(principal: Principal, prompt_id: int) -> dict[str, Any]:
    row = None
    if principal.role != "agent":
        row = (
            await Prompt.select()
            .where(Prompt._meta.primary_key == prompt_id, *scoped(principal, Prompt.tenant, []))
            .first()
        )
    if row is None:
        raise PromptNotFound(f"no prompt {prompt_id}", {"id": prompt_id})
    return row


async def get_prompt(principal: Principal, settings: Settings, prompt_id: int) -> PromptOut:
    row = await _row(principal, prompt_id)
    return await _out(row, (await _slugs()).get(row["tenant"], ""), settings)


async def audio_path(principal: Principal, settings: Settings, prompt_id: int) -> Path:
    row = await _row(principal, prompt_id)
    path = audio_file(settings, row["file"])
    if path is None:
        raise PromptNotFound(f"prompt {row['name']} has no audio", {"id": prompt_id})
    return path


async def _check_new(slug: str, config: PromptConfig) -> None:
    """The site file's rules for a new prompt: a valid name, not taken."""
    site = await current_site()
    ti = tenant_index(site, slug)
    site.tenants[ti].prompts.append(config)
    problems = problems_under(site, ("tenants", ti, "prompts", len(site.tenants[ti].prompts) - 1))
    if problems:
        raise InvalidChange(f"prompt {config.name!r}", problems)


async def _add(tenant_id: int, slug: str, config: PromptConfig, audio: Path) -> int:
    """Insert the prompt and move its finished `audio` into place, under the
    site file's write lock (the name is checked again there: another request
    may have taken it meanwhile); then publish the plan."""
    dest = media.tenant_prompt_path(slug, config.name)
    async with write_lock():
        await _check_new(slug, config)
        last = (
            await Prompt.select(Prompt.position)
            .where(Prompt.tenant == tenant_id)
            .order_by(Prompt.position, ascending=False)
            .first()
        )
        row = Prompt(
            tenant=tenant_id,
            name=config.name,
            text=config.text or "",
            file=str(dest),
            position=(last["position"] + 1) if last else 0,
        )
        inserted = await Prompt.insert(row)
        os.replace(audio, dest)
        if config.text:
            # As render_tenant_prompts() notes a rendering, so it is not redone.
            dest.with_name(dest.name + media.TTS_SUFFIX).write_text(
                media.tts_digest(config.text) + "\n"
            )
    await publish_from_db()
    return int(inserted[0]["id"])


def _scratch(slug: str, name: str) -> Path:
    """Where a prompt's audio is made before it is kept: next to its place,
    so moving it there is atomic."""
    folder = media.tenant_prompt_path(slug, name).parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, scratch = tempfile.mkstemp(prefix=f".{name}-", suffix=".wav", dir=folder)
    os.close(fd)
    return Path(scratch)


async def create_from_text(
    principal: Principal, settings: Settings, name: str, text: str, tenant: str | None
) -> PromptOut:
    tenant_id, slug = await tenant_for(principal, tenant)
    config = PromptConfig(name=name.strip(), text=text.strip())
    await _check_new(slug, config)  # before the slow part; again when it is kept
    if len(config.text or "") > media.MAX_TEXT_CHARS:
        raise InvalidRequest("text", f"longer than {media.MAX_TEXT_CHARS} characters")
    audio = _scratch(slug, config.name)
    try:
        # espeak-ng and sox in a limited child: a text they cannot speak changes nothing.
        await asyncio.to_thread(media.render_text_cached, config.text or "", "auto", audio)
        prompt_id = await _add(tenant_id, slug, config, audio)
    finally:
        audio.unlink(missing_ok=True)
    return await get_prompt(principal, settings, prompt_id)


async def _save_upload(upload: UploadFile, folder: Path) -> Path:
    """The upload in a temporary file, refused as soon as it is too large."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".upload-", dir=folder)
    path, size = Path(name), 0
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := await upload.read(CHUNK):
                size += len(chunk)
                if size > media.MAX_UPLOAD_BYTES:
                    raise media.PromptError(
                        f"the file is larger than {media.MAX_UPLOAD_BYTES // 1048576} MB"
                    )
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


async def create_from_upload(
    principal: Principal, settings: Settings, name: str, upload: UploadFile, tenant: str | None
) -> PromptOut:
    tenant_id, slug = await tenant_for(principal, tenant)
    config = PromptConfig(name=name.strip(), file=f"{name.strip()}.wav")
    await _check_new(slug, config)  # before the slow part; again when it is kept
    src = await _save_upload(upload, media.prompts_dir())
    audio = _scratch(slug, config.name)
    try:
        await asyncio.to_thread(media.convert_upload, src, audio)
        prompt_id = await _add(tenant_id, slug, config, audio)
    finally:
        src.unlink(missing_ok=True)
        audio.unlink(missing_ok=True)
    return await get_prompt(principal, settings, prompt_id)


async def _replace(principal: Principal, prompt_id: int, text: str, audio: Path) -> None:
    """Give the prompt new audio (and text, or none), moved into place under
    the write lock; whatever plays it plays the new audio from the next call."""
    async with write_lock():
        row = await _row(principal, prompt_id)
        slug = (await _slugs())[row["tenant"]]
        dest = media.tenant_prompt_path(slug, row["name"])
        os.replace(audio, dest)
        note = dest.with_name(dest.name + media.TTS_SUFFIX)
        if text:
            note.write_text(media.tts_digest(text) + "\n")
        else:
            note.unlink(missing_ok=True)
        # `source` named the site file's audio, which this no longer is.
        await Prompt.update({Prompt.text: text, Prompt.file: str(dest), Prompt.source: ""}).where(
            Prompt._meta.primary_key == prompt_id
        )
    if row["file"] and Path(row["file"]) != dest:
        _remove(Path(row["file"]))  # a site file's copy with another suffix
    await publish_from_db()


async def replace_text(
    principal: Principal, settings: Settings, prompt_id: int, text: str
) -> PromptOut:
    row = await _row(principal, prompt_id)
    slug = (await _slugs())[row["tenant"]]
    text = text.strip()
    if not text:
        raise InvalidRequest("text", "must not be empty")
    if len(text) > media.MAX_TEXT_CHARS:
        raise InvalidRequest("text", f"longer than {media.MAX_TEXT_CHARS} characters")
    audio = _scratch(slug, row["name"])
    try:
        await asyncio.to_thread(media.render_text_cached, text, "auto", audio)
        await _replace(principal, prompt_id, text, audio)
    finally:
        audio.unlink(missing_ok=True)
    return await get_prompt(principal, settings, prompt_id)


async def replace_audio(
    principal: Principal, settings: Settings, prompt_id: int, upload: UploadFile
) -> PromptOut:
    row = await _row(principal, prompt_id)
    slug = (await _slugs())[row["tenant"]]
    src = await _save_upload(upload, media.prompts_dir())
    audio = _scratch(slug, row["name"])
    try:
        await asyncio.to_thread(media.convert_upload, src, audio)
        await _replace(principal, prompt_id, "", audio)
    finally:
        src.unlink(missing_ok=True)
        audio.unlink(missing_ok=True)
    return await get_prompt(principal, settings, prompt_id)


def _remove(path: Path) -> None:
    """A prompt's audio and its TTS note, when they are in the prompts folder."""
    root = media.prompts_dir().resolve()
    for p in (path, path.with_name(path.name + media.TTS_SUFFIX)):
        with contextlib.suppress(OSError):
            if p.resolve().is_relative_to(root):
                p.unlink(missing_ok=True)


async def delete_prompt(principal: Principal, prompt_id: int) -> PromptOut:
    """Delete a prompt nothing plays; returns what it was."""
    async with write_lock():
        row = await _row(principal, prompt_id)
        uses = await _uses(row["tenant"], row["name"])
        if uses:
            raise InUse(f"prompt {row['name']}", [Problem(key="", message=u) for u in uses])
        await Prompt.delete().where(Prompt._meta.primary_key == prompt_id)
    await publish_from_db()
    if row["file"]:
        _remove(Path(row["file"]))
    return PromptOut(
        id=prompt_id,
        tenant=(await _slugs()).get(row["tenant"], ""),
        name=row["name"],
        kind="text" if row["text"] else "file",
        text=row["text"],
        duration_ms=0,
        used_by=[],
    )
