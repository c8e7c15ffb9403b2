"""Call recordings and voicemail messages, from rtpengine's pcap spool to WAV.

rtpengine (`recording-method = pcap`, `recording-format = eth`) writes one
pcap per call with every RTP packet it *received*, both legs, each with the
sender's real address as source and rtpengine's own socket as destination:

    <spool>/pcaps/<escaped Call-ID>-<16 hex>.pcap
    <spool>/tmp/rtpengine-meta-<same>.tmp        while the call lasts
    <spool>/metadata/rtpengine-meta-<same>.txt   once rtpengine closed it

The metadata file holds the SDP rtpengine sent out while recording was on
("SDP mode: answer" is the SDP sent to the caller, so its port is the one the
caller sends to), the start and end times, and the `metadata` string given in
the ng command.

`pcap_to_wav()` makes one stereo 8 kHz WAV, caller left and agent right;
`voicemail_to_wav()` a mono WAV of the caller. Packets are placed by RTP
timestamp on a timeline shared by both legs (capture time), gaps are silence,
and PCMA/PCMU are decoded by table. Neither reads the whole call into memory:
each leg is laid out in a sparse temporary file.

The worker tasks `convert_recording` and `convert_voicemail` turn a call's
pcap into `<data>/recordings/<yyyy>/<mm>/<call>.wav` or
`<data>/voicemail/<yyyy>/<mm>/<call>.wav`, link it to the call record with a
`recording`/`voicemail` call event, and delete the pcap. When they cannot,
the event carries the reason in `cause` (`CallRecord.recording_error`) and the
pcap is kept in `<spool>/failed/` for a week. `sweep_spool` (every minute)
picks up what Kamailio's request was lost for.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import struct
import tempfile
import time
import wave
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, unquote

from huey import crontab

from appliance import settings as settings_mod
from appliance.worker.queue import huey

log = logging.getLogger(__name__)

RATE = 8000
PCMU, PCMA = 0, 8
TALK_TOLERANCE_S = 2.0
"""How far a recording's length may be from the call's talk time."""
MAX_ANCHOR_DRIFT = RATE
"""Samples an RTP timestamp may stray from the capture clock before the
stream is re-anchored (a sender that jumps its timestamps)."""
STALE_S = 4 * 3600 + 600
"""A pcap unchanged this long is finished whatever rtpengine says (its
`final-timeout` is 4 h)."""
QUIET_S = 30
"""A pcap whose call rtpengine no longer knows, unchanged this long, is finished."""
WAIT_FOR_RECORD_S = 600
"""How long the sweep waits for a finished pcap's call record to end before
converting it as a plain recording anyway."""
FAILED_KEEP_S = 7 * 86400
CLAIM_STALE_S = 1800
"""A conversion that held its pcap this long died with its worker: put it back."""


class RecordingError(Exception):
    """A pcap that does not give a recording (no audio, not a pcap, …)."""


# --- G.711 ------------------------------------------------------------------------


def _alaw(code: int) -> int:
    code ^= 0x55
    sign, exponent, mantissa = code & 0x80, (code >> 4) & 7, code & 15
    value = (mantissa << 4) + 8
    if exponent:
        value = (value + 0x100) << (exponent - 1)
    return value if sign else -value


def _ulaw(code: int) -> int:
    code = ~code & 0xFF
    sign, exponent, mantissa = code & 0x80, (code >> 4) & 7, code & 15
    value = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return -value if sign else value


def _tables(decode: Any) -> tuple[bytes, bytes]:
    """Two translate tables: a code's 16-bit little-endian sample's low and
    high byte, so a payload decodes with bytes.translate at C speed."""
    samples = [decode(c) & 0xFFFF for c in range(256)]
    return bytes(s & 0xFF for s in samples), bytes(s >> 8 for s in samples)


_DECODERS = {PCMA: _tables(_alaw), PCMU: _tables(_ulaw)}


def g711_decode(payload: bytes, payload_type: int) -> bytes:
    """PCMA (8) or PCMU (0) → 16-bit little-endian linear samples."""
    low, high = _DECODERS[payload_type]
    out = bytearray(2 * len(payload))
    out[0::2] = payload.translate(low)
    out[1::2] = payload.translate(high)
    return bytes(out)


# --- pcap -------------------------------------------------------------------------


@dataclass(frozen=True)
class Packet:
    time: float
    src: str
    sport: int
    dst: str
    dport: int
    payload: bytes


_MAGIC = {
    0xA1B2C3D4: ("<", 1e-6), 0xD4C3B2A1: (">", 1e-6),
    0xA1B23C4D: ("<", 1e-9), 0x4D3CB2A1: (">", 1e-9),
}  # fmt: skip


def read_pcap(path: Path) -> Iterator[Packet]:
    """The UDP packets of a classic pcap file (Ethernet, Linux cooked v1/v2,
    raw IP or BSD loopback; IPv4 or IPv6), streamed. A truncated last record
    ends the file quietly (rtpengine may have been killed mid-write).
    Raises RecordingError when the file is not a pcap."""
    with open(path, "rb") as f:
        header = f.read(24)
        if len(header) < 24 or struct.unpack("<I", header[:4])[0] not in _MAGIC:
            raise RecordingError(f"{Path(path).name}: not a pcap file")
        order, unit = _MAGIC[struct.unpack("<I", header[:4])[0]]
        link = struct.unpack(order + "I", header[20:24])[0] & 0x0FFFFFFF
        record = struct.Struct(order + "IIII")
        while True:
            head = f.read(16)
            if len(head) < 16:
                return
            seconds, fraction, caplen, _ = record.unpack(head)
            if caplen > 262144:
                raise RecordingError(f"{Path(path).name}: a damaged pcap record")
            frame = f.read(caplen)
            if len(frame) < caplen:
                return
            packet = _udp(frame, link, seconds + fraction * unit)
            if packet is not None:
                yield packet


def _udp(frame: bytes, link: int, at: float) -> Packet | None:
    if link == 1:  # Ethernet (rtpengine's `eth`)
        offset, ethertype = 14, frame[12:14]
        if ethertype == b"\x81\x00":  # a VLAN tag
            offset, ethertype = 18, frame[16:18]
    elif link == 113:  # Linux cooked (tcpdump -i any)
        offset, ethertype = 16, frame[14:16]
    elif link == 276:  # Linux cooked v2
        offset, ethertype = 20, frame[0:2]
    elif link in (12, 101):  # raw IP (rtpengine's `raw`)
        offset = 0
        ethertype = b"\x08\x00" if frame[:1] and frame[0] >> 4 == 4 else b"\x86\xdd"
    elif link == 0:  # BSD loopback
        offset = 4
        ethertype = b"\x08\x00" if frame[4:5] and frame[4] >> 4 == 4 else b"\x86\xdd"
    else:
        return None
    ip = frame[offset:]
    if ethertype == b"\x08\x00" and len(ip) >= 20 and ip[9] == 17:
        header = (ip[0] & 15) * 4
        if struct.unpack("!H", ip[6:8])[0] & 0x3FFF:
            return None  # a fragment: RTP is never fragmented
        src, dst = ".".join(map(str, ip[12:16])), ".".join(map(str, ip[16:20]))
    elif ethertype == b"\x86\xdd" and len(ip) >= 40 and ip[6] == 17:
        header = 40
        src, dst = _ipv6(ip[8:24]), _ipv6(ip[24:40])
    else:
        return None
    udp = ip[header:]
    if len(udp) < 8:
        return None
    sport, dport, length = struct.unpack("!HHH", udp[:6])
    return Packet(at, src, sport, dst, dport, udp[8 : max(8, min(length, len(udp)))])


def _ipv6(raw: bytes) -> str:
    import ipaddress

    return str(ipaddress.IPv6Address(raw))


# --- rtpengine's metadata ---------------------------------------------------------


@dataclass
class Metadata:
    path: Path
    finished: bool
    """In `metadata/`: rtpengine closed the recording (the call is over)."""
    sdp: list[tuple[str, str]] = field(default_factory=list)
    """(mode, SDP) as rtpengine sent them while recording, in order."""
    extra: str = ""
    """The `metadata` string of the ng command."""

    def caller_port(self) -> int | None:
        """rtpengine's port facing the caller: `caller-port=N` in the ng
        metadata (`caller_metadata()`), else the media port of the last SDP
        rtpengine sent as an answer while recording (it went to the caller)."""
        found = re.search(r"(?:^|[\s;|])caller-port=(\d+)", self.extra)
        if found:
            return int(found.group(1))
        for mode, sdp in reversed(self.sdp):
            if mode == "answer":
                found = re.search(r"^m=audio (\d+) ", sdp, re.MULTILINE)
                if found:
                    return int(found.group(1))
        return None

    def caller_hint(self) -> str | None:
        """`caller=<ip>:<port>` in the ng `metadata` string (KEMI may pass
        the caller's media address this way)."""
        found = re.search(r"(?:^|[\s;|])caller=(\S+?)(?:[\s;|]|$)", self.extra)
        return found.group(1) if found else None


def caller_metadata(call_id: str, caller_tag: str, ng: Any = None) -> str:
    """The `metadata` to give ng `start recording` so the converter knows the
    caller's leg for sure: `caller-port=<rtpengine's port facing the
    caller>`, read from an ng `query` of the call. '' when rtpengine does not
    know the tag. `ng` is an `NgClient` (default: the configured rtpengine)."""
    if ng is None:
        from appliance.media.ng import NgClient

        ng = NgClient(port=settings_mod.get().media.ng_port)
    try:
        tags = ng.query(call_id).get("tags", {})
    except Exception as exc:  # NgError, a malformed reply: no hint, not a failure
        log.warning("call %s: no caller port for the recording: %s", call_id, exc)
        return ""
    for media in (tags.get(caller_tag) or {}).get("medias", []):
        if media.get("type") != "audio":
            continue
        for stream in media.get("streams", []):
            if "RTP" in stream.get("flags", []) and stream.get("local port"):
                return f"caller-port={int(stream['local port'])}"
    return ""


def metadata_for(pcap: Path) -> Metadata | None:
    """The metadata file of a spool pcap (finished or still being written)."""
    pcap = Path(pcap)
    spool = pcap.parent.parent
    prefix = pcap.name.removesuffix(".pcap")
    for path, finished in (
        (spool / "metadata" / f"rtpengine-meta-{prefix}.txt", True),
        (spool / "tmp" / f"rtpengine-meta-{prefix}.tmp", False),
    ):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        return parse_metadata(text, path, finished)
    return None


_SDP_BLOCK = re.compile(
    r"SDP mode: (\w+)\nSDP before RTP packet: \d+\n\n(.*?)(?=\n(?:Label: |Timestamp )|\Z)",
    re.DOTALL,
)


def parse_metadata(text: str, path: Path, finished: bool) -> Metadata:
    meta = Metadata(path=path, finished=finished)
    text = text.replace("\r\n", "\n")
    meta.sdp = [(m.group(1), m.group(2)) for m in _SDP_BLOCK.finditer(text)]
    # What follows "call end time: …" (after a blank line) is the ng metadata.
    end = re.search(r"^call end time: .*$", text, re.MULTILINE)
    if end:
        meta.extra = text[end.end() :].strip()
    return meta


# --- pcap to WAV ------------------------------------------------------------------


@dataclass
class _Leg:
    """One direction of RTP into rtpengine: everything received on one of
    its sockets."""

    local: tuple[str, int]
    sources: set[tuple[str, int]] = field(default_factory=set)
    first_at: float = 0.0
    packets: int = 0
    # The leg's samples, at their place on the timeline, in a sparse file.
    file: BinaryIO | None = None
    length: int = 0
    """Samples written (the end of the furthest one)."""
    anchors: dict[int, tuple[int, int]] = field(default_factory=dict)
    """SSRC → (RTP timestamp, timeline sample) it was anchored at."""
    pending_at: int = -1
    pending: bytearray = field(default_factory=bytearray)


@dataclass(frozen=True)
class Conversion:
    duration_s: float
    started_at: float
    """Unix time of the first RTP packet."""
    legs: int


def _place(leg: _Leg, ssrc: int, timestamp: int, clock_pos: int, pcm: bytes) -> None:
    anchor = leg.anchors.get(ssrc)
    pos = -1
    if anchor is not None:
        delta = (timestamp - anchor[0]) & 0xFFFFFFFF
        if delta >= 0x80000000:
            delta -= 0x100000000  # a packet from before the anchor (reordered)
        pos = anchor[1] + delta
    if anchor is None or abs(pos - clock_pos) > MAX_ANCHOR_DRIFT:
        leg.anchors[ssrc] = (timestamp, clock_pos)
        pos = clock_pos
    if pos < 0:
        return
    # Consecutive packets are joined before they are written.
    if leg.pending and leg.pending_at + len(leg.pending) // 2 == pos:
        leg.pending += pcm
        if len(leg.pending) < 65536:
            return
        _flush(leg)
        return
    _flush(leg)
    leg.pending_at, leg.pending = pos, bytearray(pcm)


def _flush(leg: _Leg) -> None:
    if not leg.pending or leg.file is None:
        return
    leg.file.seek(leg.pending_at * 2)
    leg.file.write(leg.pending)
    leg.length = max(leg.length, leg.pending_at + len(leg.pending) // 2)
    leg.pending = bytearray()


def _rtp(payload: bytes) -> tuple[int, int, int, bytes] | None:
    """(payload type, timestamp, SSRC, audio) of a G.711 RTP packet, else None."""
    if len(payload) < 12 or payload[0] >> 6 != 2:
        return None
    payload_type = payload[1] & 0x7F
    if payload_type not in (PCMA, PCMU):
        return None  # telephone-event, comfort noise, RTCP, other codecs
    header = 12 + 4 * (payload[0] & 15)
    if payload[0] & 0x10:
        if len(payload) < header + 4:
            return None
        header += 4 + 4 * struct.unpack("!H", payload[header + 2 : header + 4])[0]
    end = len(payload)
    if payload[0] & 0x20:
        end -= payload[-1]
    if end <= header:
        return None
    timestamp, ssrc = struct.unpack("!II", payload[4:12])
    return payload_type, timestamp, ssrc, payload[header:end]


def _same_address(source: tuple[str, int], caller: str) -> bool:
    host, _, port = caller.rpartition(":") if caller.count(":") == 1 else (caller, "", "")
    if caller.startswith("["):  # [v6]:port
        host, _, port = caller[1:].partition("]:")
    return source[0] == host and (not port or str(source[1]) == port)


def _split_legs(
    pcap: Path, work: Path, caller: str | None, meta: Metadata | None
) -> tuple[list[_Leg], float]:
    """Lay every leg's audio out in its own sparse file; return the legs,
    caller's first, and the timeline's origin (Unix time)."""
    legs: dict[tuple[str, int], _Leg] = {}
    t0: float | None = None
    last = 0.0
    try:
        for packet in read_pcap(pcap):
            rtp = _rtp(packet.payload)
            if rtp is None:
                continue
            payload_type, timestamp, ssrc, audio = rtp
            if t0 is None:
                t0 = packet.time
            last = max(last, packet.time)
            local = (packet.dst, packet.dport)
            leg = legs.get(local)
            if leg is None:
                leg = legs[local] = _Leg(local=local, first_at=packet.time)
                leg.file = open(work / f"leg{len(legs)}.raw", "w+b")  # noqa: SIM115
            leg.sources.add((packet.src, packet.sport))
            leg.packets += 1
            clock_pos = round((packet.time - t0) * RATE)
            _place(leg, ssrc, timestamp, clock_pos, g711_decode(audio, payload_type))
        for leg in legs.values():
            _flush(leg)
    except BaseException:
        for leg in legs.values():
            if leg.file:
                leg.file.close()
        raise
    if t0 is None:
        raise RecordingError("the recording holds no G.711 audio")
    # Never longer than the capture itself (a sender's wild timestamps).
    limit = round((last - t0) * RATE) + RATE
    for leg in legs.values():
        leg.length = min(leg.length, limit)
    return _order(list(legs.values()), caller, meta), t0


def _order(legs: list[_Leg], caller: str | None, meta: Metadata | None) -> list[_Leg]:
    """The caller's leg first: the one from the `caller` address, else the one
    on rtpengine's caller-facing port (from the metadata), else the one that
    sent first (a caller sends early media before the agent answers)."""
    hint = caller or (meta.caller_hint() if meta else None)
    found: _Leg | None = None
    if hint:
        found = next((g for g in legs if any(_same_address(s, hint) for s in g.sources)), None)
    port = meta.caller_port() if meta else None
    if found is None and port is not None:
        found = next((g for g in legs if g.local[1] == port), None)
    if found is None:
        found = min(legs, key=lambda g: g.first_at)
    return [found, *sorted((g for g in legs if g is not found), key=lambda g: g.first_at)]


def _read(leg: _Leg, start: int, count: int) -> bytes:
    """`count` samples of a leg from `start`, silence past its end."""
    have = max(0, min(count, leg.length - start))
    data = b""
    if have and leg.file is not None:
        leg.file.seek(start * 2)
        data = leg.file.read(have * 2)
    return data + bytes(2 * count - len(data))


def _write_wav(dest: Path, channels: list[list[_Leg]], frames: int) -> None:
    """Write `frames` samples of each channel (a channel mixes its legs by
    taking, per sample block, the legs in turn) into a 16-bit WAV."""
    with wave.open(str(dest), "wb") as out:
        out.setnchannels(len(channels))
        out.setsampwidth(2)
        out.setframerate(RATE)
        block = RATE * 10
        for start in range(0, frames, block):
            count = min(block, frames - start)
            # A side with no packets at all (one-sided audio) is silence.
            samples = [
                _mix([_read(leg, start, count) for leg in legs]) if legs else bytes(2 * count)
                for legs in channels
            ]
            if len(samples) == 1:
                out.writeframesraw(samples[0])
                continue
            left, right = samples
            stereo = bytearray(4 * count)
            stereo[0::4], stereo[1::4] = left[0::2], left[1::2]
            stereo[2::4], stereo[3::4] = right[0::2], right[1::2]
            out.writeframesraw(bytes(stereo))


def _mix(parts: list[bytes]) -> bytes:
    """Several legs on one channel (an agent leg re-anchored to a new port):
    they rarely overlap, so the first non-silent sample wins."""
    if len(parts) == 1:
        return parts[0]
    import array

    mixed = array.array("h", parts[0])
    for part in parts[1:]:
        other = array.array("h", part)
        for i, value in enumerate(other):
            if value and not mixed[i]:
                mixed[i] = value
    return mixed.tobytes()


def _convert(
    pcap: Path, dest: Path, *, stereo: bool, caller: str | None, meta_of: Path | None = None
) -> Conversion:
    """pcap → WAV at `dest` (replaced only when all went well). The metadata
    is that of `meta_of` (the pcap's spool name when it was moved) or the pcap."""
    pcap, dest = Path(pcap), Path(dest)
    meta = metadata_for(meta_of or pcap)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".rec-", dir=dest.parent) as work:
        legs, t0 = _split_legs(pcap, Path(work), caller, meta)
        try:
            channels = [legs[:1], legs[1:]] if stereo else [legs[:1]]
            frames = max((leg.length for group in channels for leg in group), default=0)
            if frames <= 0:
                raise RecordingError("the recording holds no audio")
            tmp = Path(work) / "out.wav"
            _write_wav(tmp, channels, frames)
            os.chmod(tmp, 0o640)
            os.replace(tmp, dest)
        finally:
            for leg in legs:
                if leg.file:
                    leg.file.close()
    return Conversion(duration_s=frames / RATE, started_at=t0, legs=len(legs))


def pcap_to_wav(pcap: Path, dest: Path, caller: str | None = None) -> float:
    """Convert an rtpengine pcap into one stereo 8 kHz 16-bit WAV at `dest`:
    the caller on the left, the agent on the right. `caller` is the caller's
    media address (`ip:port` or `ip`, as in its SDP) when known; otherwise
    the metadata decides (see `_order`). Returns the duration in seconds.
    Raises RecordingError (writing nothing) when there is no audio."""
    return _convert(pcap, dest, stereo=True, caller=caller).duration_s


def voicemail_to_wav(pcap: Path, dest: Path, caller: str | None = None) -> float:
    """The caller's leg of an rtpengine pcap as a mono 8 kHz WAV at `dest`
    (a voicemail message; the greeting is played by rtpengine and was never
    received, so it is not in the pcap). Returns the duration in seconds."""
    return _convert(pcap, dest, stereo=False, caller=caller).duration_s


# --- the spool --------------------------------------------------------------------


def spool_dir() -> Path:
    return settings_mod.get().paths.spool_dir


def escape_call_id(call_id: str) -> str:
    """The Call-ID as rtpengine puts it in file names (g_uri_escape_string:
    everything but letters, digits and `-._~` percent-encoded)."""
    return quote(call_id, safe="-._~")


def call_id_of(pcap: Path) -> str:
    """The Call-ID of a spool pcap, from its name `<escaped>-<16 hex>.pcap`."""
    stem = Path(pcap).name.removesuffix(".pcap")
    escaped, _, tail = stem.rpartition("-")
    return unquote(escaped if re.fullmatch(r"[0-9a-f]{16}", tail) else stem)


def find_pcaps(call_id: str, spool: Path | None = None) -> list[Path]:
    """The call's pcaps waiting in the spool, largest first."""
    folder = (spool or spool_dir()) / "pcaps"
    prefix = escape_call_id(call_id) + "-"
    try:
        found = [
            p
            for p in folder.iterdir()
            if p.name.startswith(prefix) and p.name.endswith(".pcap") and call_id_of(p) == call_id
        ]
    except FileNotFoundError:
        return []
    return sorted(found, key=lambda p: p.stat().st_size, reverse=True)


def file_name(call_id: str) -> str:
    """A safe file name for a call's audio (long Call-IDs are shortened)."""
    name = escape_call_id(call_id).replace("%", "_")
    if len(name) > 150:
        import hashlib

        name = name[:100] + "_" + hashlib.sha256(call_id.encode()).hexdigest()[:16]
    return name + ".wav"


def audio_path(kind: str, call_id: str, started_at: float) -> Path:
    """`<data>/recordings/<yyyy>/<mm>/<call>.wav` (or `voicemail/`), by the
    call's local date in the appliance's time zone."""
    settings = settings_mod.get()
    try:
        zone: dt.tzinfo = zoneinfo.ZoneInfo(settings.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = dt.UTC
    when = dt.datetime.fromtimestamp(started_at, zone)
    folder = "recordings" if kind == "recording" else "voicemail"
    return settings.paths.data_dir / folder / f"{when:%Y}" / f"{when:%m}" / file_name(call_id)


def is_finished(pcap: Path, now: float | None = None, active: set[str] | None = None) -> bool:
    """Has rtpengine finished writing this pcap? Yes when its metadata file
    moved to `metadata/`; or when rtpengine no longer lists the call
    (`active`: its Call-IDs, None when unknown) and the file has been quiet
    for `QUIET_S`; or, whatever else, after `STALE_S`."""
    now = time.time() if now is None else now
    meta = metadata_for(pcap)
    if meta is not None and meta.finished:
        return True
    try:
        quiet = now - Path(pcap).stat().st_mtime
    except FileNotFoundError:
        return False
    if active is not None and call_id_of(pcap) not in active and quiet > QUIET_S:
        return True
    return quiet > STALE_S


def _remove_with_metadata(pcap: Path) -> None:
    meta = metadata_for(pcap)
    pcap.unlink(missing_ok=True)
    if meta is not None:
        meta.path.unlink(missing_ok=True)


def _claim(pcap: Path) -> Path | None:
    """Take the pcap for one conversion (a rename: exactly one taker wins)."""
    folder = pcap.parent.parent / "converting"
    folder.mkdir(parents=True, exist_ok=True)
    claimed = folder / pcap.name
    try:
        os.rename(pcap, claimed)
    except FileNotFoundError:
        return None
    os.utime(claimed)
    return claimed


async def _talk_seconds(call_id: str) -> int | None:
    from appliance.tables import CallRecord

    row = (
        await CallRecord.select(CallRecord.talk_seconds, CallRecord.ended_at)
        .where(CallRecord.call_id == call_id)
        .first()
    )
    if row is None or row["ended_at"] is None:
        return None
    return int(row["talk_seconds"])


async def _has_audio(call_id: str, kind: str) -> bool:
    from appliance.tables import CallRecord

    column = CallRecord.recording if kind == "recording" else CallRecord.voicemail
    return await CallRecord.exists().where((CallRecord.call_id == call_id) & (column != ""))


def _emit(call_id: str, kind: str, file: str = "", cause: str = "") -> None:
    from appliance.worker.cdr import RECORDING, VOICEMAIL, CallEvent, call_event, encode_event

    event = CallEvent(
        call_id=call_id,
        type=RECORDING if kind == "recording" else VOICEMAIL,
        at=time.time(),
        file=file,
        cause=cause[:255],
    )
    call_event.call_local(encode_event(event))


class NotFinished(Exception):
    """rtpengine is still writing the pcap: the task is retried."""


def convert_call(call_id: str, kind: str, pcap_path: str = "", caller: str = "") -> str:
    """Convert a call's pcap (`pcap_path`, or found in the spool by Call-ID)
    into its recording (`kind` = `recording`, stereo) or voicemail message
    (`voicemail`, mono); link it to the call record; delete the pcap.
    Returns the WAV's path, or '' when there was nothing to do or it failed
    (the record then says why). Raises NotFinished while rtpengine still
    writes the file."""
    from piccolo.utils.sync import run_sync

    spool = spool_dir()
    pcap = Path(pcap_path) if pcap_path else next(iter(find_pcaps(call_id, spool)), None)
    if pcap is None or not pcap.exists():
        converting = spool / "converting"
        if any(converting.glob(escape_call_id(call_id) + "-*.pcap")) or (
            pcap is not None and (converting / pcap.name).exists()
        ):
            return ""  # another task is on it
        if run_sync(_has_audio(call_id, kind)):
            return ""  # done before (a retried task, or the sweep was first)
        log.warning("call %s: no %s in the spool", call_id, kind)
        _emit(call_id, kind, cause=f"no {kind} was made (nothing in rtpengine's spool)")
        return ""
    if not is_finished(pcap) and not is_finished(pcap, active=_active_calls()):
        raise NotFinished(f"{pcap.name} is still being written")
    claimed = _claim(pcap)
    if claimed is None:
        return ""
    spool_name = spool / "pcaps" / claimed.name
    try:
        with tempfile.TemporaryDirectory(prefix=".convert-", dir=spool) as work:
            tmp = Path(work) / "audio.wav"
            conversion = _convert(
                claimed, tmp, stereo=kind == "recording", caller=caller or None, meta_of=spool_name
            )
            dest = audio_path(kind, call_id, conversion.started_at)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, dest)
    except RecordingError as exc:
        failed = spool / "failed"
        failed.mkdir(parents=True, exist_ok=True)
        os.replace(claimed, failed / claimed.name)
        log.error("call %s: %s failed: %s", call_id, kind, exc)
        _emit(call_id, kind, cause=f"{kind} failed: {exc}")
        return ""
    except BaseException:
        # Unexpected (disk full, killed): give the pcap back for a retry.
        with contextlib.suppress(OSError):
            os.replace(claimed, spool_name)
        raise
    cause = ""
    if kind == "recording":
        talk = run_sync(_talk_seconds(call_id))
        if talk is not None and abs(conversion.duration_s - talk) > TALK_TOLERANCE_S:
            cause = (
                f"the recording lasts {conversion.duration_s:.0f} s, the call {talk} s: "
                "part of it may be missing"
            )
            log.warning("call %s: %s", call_id, cause)
    _emit(call_id, kind, file=str(dest), cause=cause)
    _remove_with_metadata(spool_name)
    claimed.unlink(missing_ok=True)
    log.info("call %s: %s %s (%.1f s)", call_id, kind, dest, conversion.duration_s)
    return str(dest)


# --- worker tasks -----------------------------------------------------------------


@huey.task(retries=12, retry_delay=10)
def convert_recording(call_id: str, pcap_path: str = "", caller: str = "") -> str:
    """Kamailio, when a recorded call ends: make its recording (stereo WAV,
    caller left) and link it to the call record. `pcap_path` may be empty
    (found by Call-ID); `caller` is the caller's media address if known."""
    return convert_call(call_id, "recording", pcap_path, caller)


@huey.task(retries=12, retry_delay=10)
def convert_voicemail(call_id: str, pcap_path: str = "", caller: str = "") -> str:
    """Kamailio, when a voicemail call ends: make the message (mono WAV) and
    link it to the call record, which sends its notices."""
    return convert_call(call_id, "voicemail", pcap_path, caller)


async def _kinds(call_ids: list[str]) -> dict[str, str | None]:
    """For each call: `voicemail`, `recording`, or None while its record has
    not ended (the sweep waits for it)."""
    from appliance.tables import CallRecord

    rows = await CallRecord.select(
        CallRecord.call_id, CallRecord.status, CallRecord.ended_at
    ).where(CallRecord.call_id.is_in(call_ids))
    kinds: dict[str, str | None] = dict.fromkeys(call_ids)
    for row in rows:
        if row["ended_at"] is not None:
            kinds[row["call_id"]] = "voicemail" if row["status"] == "voicemail" else "recording"
    return kinds


def _active_calls() -> set[str] | None:
    from appliance.media.ng import NgClient, NgError

    media = settings_mod.get().media
    try:
        return set(NgClient(port=media.ng_port, timeout=1.0).list_calls(limit=100000))
    except (NgError, ValueError):
        return None


def sweep(now: float | None = None, enqueue: bool = True) -> dict[str, int]:
    """Everything left in the spool: finished pcaps are converted (queued,
    or here when not `enqueue`), conversions whose worker died are put back,
    failed pcaps older than a week deleted. Returns counts."""
    from piccolo.utils.sync import run_sync

    now = time.time() if now is None else now
    spool = spool_dir()
    counts = {"queued": 0, "waiting": 0, "put_back": 0, "deleted": 0}
    for claimed in _glob(spool / "converting"):
        if now - claimed.stat().st_mtime > CLAIM_STALE_S:
            with contextlib.suppress(OSError):
                os.replace(claimed, spool / "pcaps" / claimed.name)
                counts["put_back"] += 1
    for failed in _glob(spool / "failed"):
        if now - failed.stat().st_mtime > FAILED_KEEP_S:
            _remove_with_metadata(spool / "pcaps" / failed.name)
            failed.unlink(missing_ok=True)
            counts["deleted"] += 1
    pcaps = _glob(spool / "pcaps")
    if not pcaps:
        return counts
    active = _active_calls()
    finished = [p for p in pcaps if is_finished(p, now, active)]
    kinds = run_sync(_kinds(sorted({call_id_of(p) for p in finished}))) if finished else {}
    for pcap in finished:
        call_id = call_id_of(pcap)
        kind = kinds.get(call_id)
        if kind is None:
            if now - pcap.stat().st_mtime < WAIT_FOR_RECORD_S:
                counts["waiting"] += 1
                continue
            kind = "recording"
        task = convert_recording if kind == "recording" else convert_voicemail
        if enqueue:
            task(call_id, str(pcap))
        else:
            task.call_local(call_id, str(pcap))
        counts["queued"] += 1
    return counts


def _glob(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.name.endswith(".pcap"))
    except FileNotFoundError:
        return []


@huey.periodic_task(crontab(minute="*"))
def sweep_spool() -> None:
    counts = sweep()
    if any(counts.values()):
        log.info("recording spool: %s", counts)
