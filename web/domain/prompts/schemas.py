from __future__ import annotations

from dataclasses import dataclass

import msgspec
from litestar.datastructures import UploadFile


class PromptOut(msgspec.Struct, kw_only=True):
    """A message callers hear (语音文件): spoken from text, or an uploaded
    recording; always played as 8 kHz mono WAV."""

    id: int
    tenant: str
    """The owning tenant's slug."""
    name: str
    """What hotlines, menus and groups call it by (`ringback = "welcome"`)."""
    kind: str
    """`text` (spoken by TTS) or `file` (uploaded)."""
    text: str
    """What is spoken, for a text prompt."""
    duration_ms: int
    """0 when it has no audio yet (a text espeak-ng could not speak)."""
    used_by: list[str]
    """What plays it (`hotline 4001234567 ringback`, `menu main`): a prompt in
    use cannot be deleted."""


class PromptText(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A prompt spoken from text by espeak-ng: Mandarin when the text has any
    Chinese character, English otherwise."""

    name: str
    """Letters, digits, `_` and `-`, up to 64; unique in the tenant."""
    text: str
    """Up to 2000 characters."""
    tenant: str | None = None
    """The tenant's slug: only an operator of several tenants gives it."""


@dataclass
class PromptUpload:
    """An audio file to make a prompt from (multipart/form-data)."""

    name: str
    file: UploadFile
    """WAV, MP3, Ogg Vorbis, FLAC or AIFF, up to 20 MB and 10 minutes; the type
    is told by the content, not the file name."""
    tenant: str | None = None


class PromptTextUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """New text for the prompt, spoken again (a recorded prompt becomes a spoken one)."""

    text: str
    """Up to 2000 characters."""


@dataclass
class PromptAudio:
    """New audio for the prompt (multipart/form-data), with the same limits
    as an upload; a spoken prompt becomes a recorded one."""

    file: UploadFile
