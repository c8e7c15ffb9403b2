"""The little SDP linebox writes itself."""

from __future__ import annotations

import re

# Codecs a placeholder endpoint accepts: G.711 both ways, and RFC 2833 DTMF.
_STATIC = {"0": "PCMU/8000", "8": "PCMA/8000"}
_AUDIO = re.compile(r"^m=audio \d+ [A-Z/]+ ([\d ]+)\s*$", re.MULTILINE)
_RTPMAP = re.compile(r"^a=rtpmap:(\d+) ([\w-]+)/(\d+)", re.MULTILINE)


def placeholder_sdp(offer: str) -> str:
    """An answer for a local media endpoint (a prompt, voicemail): the
    G.711 codecs of the caller's offer, in its order, and its telephone-event
    payload type, so the caller can send DTMF. rtpengine plays to the caller
    through it; nothing listens at port 9 (discard)."""
    found = _AUDIO.search(offer)
    offered = found.group(1).split() if found else ["8", "0"]
    names = {pt: f"{name}/{rate}" for pt, name, rate in _RTPMAP.findall(offer)}
    codecs = [pt for pt in offered if _STATIC.get(pt) or names.get(pt) in _STATIC.values()]
    events = [pt for pt in offered if names.get(pt, "").lower().startswith("telephone-event/8000")]
    codecs = codecs or ["8"]
    lines = [
        "v=0",
        "o=linebox 1 1 IN IP4 127.0.0.1",
        "s=linebox",
        "c=IN IP4 127.0.0.1",
        "t=0 0",
        f"m=audio 9 RTP/AVP {' '.join(codecs + events[:1])}",
    ]
    for pt in codecs:
        lines.append(f"a=rtpmap:{pt} {names.get(pt) or _STATIC[pt]}")
    for pt in events[:1]:
        lines.append(f"a=rtpmap:{pt} telephone-event/8000")
        lines.append(f"a=fmtp:{pt} 0-15")
    lines.append("a=sendrecv")
    return "\r\n".join(lines) + "\r\n"
