from __future__ import annotations

from datetime import datetime

import msgspec

VOICEMAIL_STATES = ("new", "heard")


class VoicemailOut(msgspec.Struct, kw_only=True):
    """A message a caller left (语音留言), on the call record it belongs to.
    Times are RFC 3339 in UTC."""

    call_id: str
    """The SIP Call-ID of the call: the message's id."""
    hotline: str
    """The 400 number called."""
    caller: str
    caller_region: str
    started_at: datetime
    heard: bool
    """Someone has listened to it (or marked it heard)."""
    duration_ms: int
    """The message's length; 0 when its file cannot be read."""


class VoicemailList(msgspec.Struct, kw_only=True):
    items: list[VoicemailOut]
    """Newest first."""
    total: int
    """How many messages match, across all pages."""
    new: int
    """How many of all the user's messages nobody has heard yet."""
    limit: int
    offset: int


class VoicemailUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    heard: bool
    """True: heard; false: back to new."""
