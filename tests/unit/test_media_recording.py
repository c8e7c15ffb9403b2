"""Recordings from rtpengine's pcap spool: pcaps written here packet by packet
(as rtpengine's `eth` format lays them out) cover the reader, the legs, the
timeline, G.711 and the worker tasks; tests/integration/test_recording.py
checks a pcap from a real rtpengine."""

from __future__ import annotations

import array
import bisect
import datetime as dt
import math
import os
import struct
import time
import wave
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.media import recording
from appliance.media.recording import RecordingError, pcap_to_wav, voicemail_to_wav
from appliance.settings import Settings
from appliance.tables import CallRecord

RATE = 8000
T0 = 1_795_400_000.0

# --- making pcaps -------------------------------------------------------------------


def _encoder(law: int) -> tuple[list[int], list[int]]:
    decoded = sorted(
        (recording._alaw(c) if law == 8 else recording._ulaw(c), c) for c in range(256)
    )
    return [v for v, _ in decoded], [c for _, c in decoded]


_ENCODERS = {8: _encoder(8), 0: _encoder(0)}


def g711_encode(samples: Iterable[int], law: int) -> bytes:
    """Nearest code for each sample (a test's encoder, not a fast one)."""
    values, codes = _ENCODERS[law]
    out = bytearray()
    for s in samples:
        i = bisect.bisect_left(values, s)
        if i == len(values) or (i and s - values[i - 1] < values[i] - s):
            i -= 1
        out.append(codes[i])
    return bytes(out)


def tone(freq: float, start: int, count: int, amplitude: int = 8000) -> list[int]:
    return [
        int(amplitude * math.sin(2 * math.pi * freq * (start + k) / RATE)) for k in range(count)
    ]


def rtp(pt: int, seq: int, ts: int, ssrc: int, payload: bytes, marker: bool = False) -> bytes:
    return struct.pack("!BBHII", 0x80, pt | (0x80 if marker else 0), seq & 0xFFFF, ts, ssrc) + (
        payload
    )


@dataclass
class Pkt:
    at: float
    src: tuple[str, int]
    dst: tuple[str, int]
    data: bytes


def write_pcap(path: Path, packets: list[Pkt]) -> Path:
    """A pcap as rtpengine writes it: Ethernet (zeros), IPv4 or IPv6, UDP."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for p in sorted(packets, key=lambda p: p.at):
        udp = struct.pack("!HHHH", p.src[1], p.dst[1], 8 + len(p.data), 0) + p.data
        if ":" in p.src[0]:
            import ipaddress

            ip = struct.pack("!IHBB", 6 << 28, len(udp), 17, 64)
            ip += ipaddress.IPv6Address(p.src[0]).packed + ipaddress.IPv6Address(p.dst[0]).packed
            ethertype = 0x86DD
        else:
            ip = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0)
            ip += bytes(map(int, p.src[0].split("."))) + bytes(map(int, p.dst[0].split(".")))
            ethertype = 0x0800
        frame = bytes(12) + struct.pack("!H", ethertype) + ip + udp
        seconds = int(p.at)
        out += struct.pack("<IIII", seconds, round((p.at - seconds) * 1e6), len(frame), len(frame))
        out += frame
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out)
    return path


CALLER = ("10.0.0.1", 4000)
AGENT = ("10.0.0.2", 5000)
TO_CALLER_PORT = ("127.0.0.1", 30002)  # rtpengine's socket facing the caller
TO_AGENT_PORT = ("127.0.0.1", 30000)


def stream(
    src: tuple[str, int],
    dst: tuple[str, int],
    freq: float,
    start: float,
    seconds: float,
    *,
    law: int = 8,
    ssrc: int = 0x1111,
    ts0: int = 1000,
    skip: Iterable[int] = (),
) -> list[Pkt]:
    """20 ms packets of a tone, the tone's phase following the timeline."""
    skipped = set(skip)
    offset = round((start - T0) * RATE)
    packets = []
    for n in range(int(seconds * 50)):
        if n in skipped:
            continue
        samples = tone(freq, offset + n * 160, 160)
        payload = g711_encode(samples, law)
        packets.append(Pkt(start + n * 0.02, src, dst, rtp(law, n, ts0 + n * 160, ssrc, payload)))
    return packets


def metadata(spool: Path, pcap: Path, *, answer_port: int | None = None, extra: str = "") -> None:
    """rtpengine's finished metadata file for `pcap`."""
    sdp = ""
    if answer_port:
        sdp = (
            "\nTimestamp started ms: 1795400000000.000\nSDP mode: answer\n"
            "SDP before RTP packet: 1\n\n"
            f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {answer_port} RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n"
        )
    text = (
        f"{pcap}\n\n{sdp}\nTimestamp terminated ms(first monologue): 1795400003000.000"
        "\n\ncall start time: 2026-11-23T05:00:00\ncall end time: 2026-11-23T05:00:03\n"
    )
    if extra:
        text += f"\n\n{extra}\n"
    folder = spool / "metadata"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"rtpengine-meta-{pcap.name.removesuffix('.pcap')}.txt").write_text(text)


def read_channels(path: Path) -> tuple[int, list[array.array[int]]]:
    with wave.open(str(path), "rb") as w:
        assert (w.getsampwidth(), w.getframerate()) == (2, RATE)
        channels, frames = w.getnchannels(), w.getnframes()
        data = array.array("h", w.readframes(frames))
    return frames, [data[i::channels] for i in range(channels)]


def correlation(a: list[int] | array.array[int], b: list[int] | array.array[int]) -> float:
    n = min(len(a), len(b))
    dot = sum(a[i] * b[i] for i in range(n))
    norm = math.sqrt(sum(a[i] ** 2 for i in range(n)) * sum(b[i] ** 2 for i in range(n)))
    return dot / norm if norm else 0.0


def rms(x: list[int] | array.array[int]) -> float:
    return math.sqrt(sum(v * v for v in x) / max(1, len(x)))


# --- G.711 and the pcap reader --------------------------------------------------------


def test_g711_tables_decode_like_the_standard() -> None:
    assert recording.g711_decode(bytes([0xD5, 0x55, 0x2A, 0xAA]), 8) == struct.pack(
        "<4h", 8, -8, -32256, 32256
    )
    assert recording.g711_decode(bytes([0xFF, 0x7F, 0x00, 0x80]), 0) == struct.pack(
        "<4h", 0, 0, -32124, 32124
    )
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import audioop
    except ImportError:  # Python 3.13+: the fixed values above must do
        return
    every = bytes(range(256))
    assert recording.g711_decode(every, 8) == audioop.alaw2lin(every, 2)
    assert recording.g711_decode(every, 0) == audioop.ulaw2lin(every, 2)


def test_the_reader_sees_ipv4_and_ipv6_udp_and_stops_at_a_truncated_record(
    tmp_path: Path,
) -> None:
    pcap = write_pcap(
        tmp_path / "a.pcap",
        [
            Pkt(T0, CALLER, TO_CALLER_PORT, b"hello"),
            Pkt(T0 + 0.5, ("2001:db8::1", 4000), ("2001:db8::2", 30000), b"v6"),
        ],
    )
    packets = list(recording.read_pcap(pcap))
    assert [(p.src, p.sport, p.dst, p.dport, p.payload) for p in packets] == [
        ("10.0.0.1", 4000, "127.0.0.1", 30002, b"hello"),
        ("2001:db8::1", 4000, "2001:db8::2", 30000, b"v6"),
    ]
    assert packets[1].time == pytest.approx(T0 + 0.5)
    pcap.write_bytes(pcap.read_bytes()[:-10])  # rtpengine killed mid-write
    assert len(list(recording.read_pcap(pcap))) == 1
    (tmp_path / "b.pcap").write_bytes(b"\x89PNG not a pcap at all" * 3)
    with pytest.raises(RecordingError, match="not a pcap"):
        list(recording.read_pcap(tmp_path / "b.pcap"))


# --- legs, timeline, caller ---------------------------------------------------------------


def call_packets(agent_delay: float = 0.5, **caller_kw: object) -> list[Pkt]:
    caller = stream(CALLER, TO_CALLER_PORT, 440, T0, 3.0, **caller_kw)  # type: ignore[arg-type]
    agent = stream(AGENT, TO_AGENT_PORT, 700, T0 + agent_delay, 3.0 - agent_delay, law=0)
    extras = [
        Pkt(T0 + 0.1, CALLER, TO_CALLER_PORT, rtp(101, 999, 5000, 0x1111, b"\x01\x0a\x00\xa0")),
        Pkt(T0 + 0.2, ("10.0.0.1", 4001), ("127.0.0.1", 30003), b"\x81\xc8" + bytes(26)),  # RTCP
    ]
    return caller + agent + extras


def test_a_call_becomes_stereo_caller_left_agent_right(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    pcap = write_pcap(spool / "pcaps" / "c1-0123456789abcdef.pcap", call_packets(skip=[50]))
    metadata(spool, pcap, answer_port=TO_CALLER_PORT[1])
    seconds = pcap_to_wav(pcap, tmp_path / "out.wav")
    frames, (left, right) = read_channels(tmp_path / "out.wav")
    assert seconds == frames / RATE == pytest.approx(3.0, abs=0.021)
    reference = tone(440, 0, frames)
    assert correlation(left[:8000], reference[:8000]) > 0.99
    assert correlation(right[4000:], tone(700, 4000, frames - 4000)) > 0.99
    # The agent's first half second is silence; so is the caller's lost packet.
    assert max(map(abs, right[:4000])) == 0
    assert max(map(abs, left[50 * 160 : 51 * 160])) == 0
    assert rms(left[51 * 160 : 60 * 160]) > 4000


def test_a_call_with_audio_from_one_side_only_is_stereo_with_a_silent_side(
    tmp_path: Path,
) -> None:
    # Under load rtpengine may capture nothing of one side: the recording is
    # still made (and its duration judged), never an endless retry.
    spool = tmp_path / "spool"
    caller_only = stream(CALLER, TO_CALLER_PORT, 440, T0, 2.0)
    pcap = write_pcap(spool / "pcaps" / "c1-0123456789abcdef.pcap", caller_only)
    metadata(spool, pcap, answer_port=TO_CALLER_PORT[1])
    seconds = pcap_to_wav(pcap, tmp_path / "out.wav")
    _, (left, right) = read_channels(tmp_path / "out.wav")
    assert seconds == pytest.approx(2.0, abs=0.021)
    assert correlation(left[:8000], tone(440, 0, 8000)) > 0.99
    assert max(map(abs, right)) == 0


def test_packets_are_placed_by_timestamp_not_arrival(tmp_path: Path) -> None:
    packets = call_packets()
    caller = [p for p in packets if p.dst == TO_CALLER_PORT and p.data[1] == 8]
    # Delay every tenth caller packet by 50 ms: it arrives after two newer ones.
    for p in caller[::10][1:]:
        p.at += 0.05
    pcap = write_pcap(tmp_path / "spool" / "pcaps" / "c-0123456789abcdef.pcap", packets)
    pcap_to_wav(pcap, tmp_path / "out.wav", caller="10.0.0.1:4000")
    frames, (left, _) = read_channels(tmp_path / "out.wav")
    assert correlation(left, tone(440, 0, frames)) > 0.99


def test_a_new_ssrc_or_a_timestamp_jump_follows_the_capture_clock(tmp_path: Path) -> None:
    first = stream(CALLER, TO_CALLER_PORT, 440, T0, 1.0, ssrc=1, ts0=0)
    # A re-INVITE: a new SSRC with an unrelated timestamp base, 1 s later.
    second = stream(CALLER, TO_CALLER_PORT, 440, T0 + 1.0, 1.0, ssrc=2, ts0=123456789)
    # Then the same SSRC jumps its timestamps by an hour.
    third = stream(CALLER, TO_CALLER_PORT, 440, T0 + 2.0, 1.0, ssrc=2, ts0=123456789 + 8000 * 3600)
    pcap = write_pcap(tmp_path / "p" / "x-0123456789abcdef.pcap", first + second + third)
    assert voicemail_to_wav(pcap, tmp_path / "vm.wav") == pytest.approx(3.0, abs=0.021)
    frames, (mono,) = read_channels(tmp_path / "vm.wav")
    assert correlation(mono, tone(440, 0, frames)) > 0.99


@pytest.mark.parametrize("how", ["caller address", "caller ip", "metadata port", "sdp answer"])
def test_the_caller_is_found_even_when_the_agent_sends_first(tmp_path: Path, how: str) -> None:
    spool = tmp_path / "spool"
    packets = stream(CALLER, TO_CALLER_PORT, 440, T0 + 0.5, 2.5) + stream(
        AGENT, TO_AGENT_PORT, 700, T0, 3.0
    )
    pcap = write_pcap(spool / "pcaps" / "c-0123456789abcdef.pcap", packets)
    caller = None
    if how == "caller address":
        caller = "10.0.0.1:4000"
    elif how == "caller ip":
        caller = "10.0.0.1"
    elif how == "metadata port":
        metadata(spool, pcap, extra="caller-port=30002")
    else:
        metadata(spool, pcap, answer_port=30002)
    pcap_to_wav(pcap, tmp_path / "out.wav", caller=caller)
    frames, (left, right) = read_channels(tmp_path / "out.wav")
    assert correlation(left[4000:], tone(440, 4000, frames - 4000)) > 0.99
    assert correlation(right, tone(700, 0, frames)) > 0.99


def test_without_any_hint_the_first_sender_is_the_caller(tmp_path: Path) -> None:
    pcap = write_pcap(tmp_path / "p" / "c-0123456789abcdef.pcap", call_packets())
    pcap_to_wav(pcap, tmp_path / "out.wav")
    frames, (left, _) = read_channels(tmp_path / "out.wav")
    assert correlation(left, tone(440, 0, frames)) > 0.99


def test_voicemail_is_the_callers_leg_in_mono(tmp_path: Path) -> None:
    pcap = write_pcap(tmp_path / "p" / "c-0123456789abcdef.pcap", call_packets())
    seconds = voicemail_to_wav(pcap, tmp_path / "vm.wav", caller="10.0.0.1:4000")
    frames, channels = read_channels(tmp_path / "vm.wav")
    assert len(channels) == 1 and seconds == pytest.approx(3.0, abs=0.021)
    assert correlation(channels[0], tone(440, 0, frames)) > 0.99


def test_a_pcap_without_audio_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    empty = write_pcap(tmp_path / "p" / "e-0123456789abcdef.pcap", [])
    dtmf_only = write_pcap(
        tmp_path / "p" / "d-0123456789abcdef.pcap",
        [Pkt(T0, CALLER, TO_CALLER_PORT, rtp(101, 1, 1, 1, b"\x01\x0a\x00\xa0"))],
    )
    for pcap in (empty, dtmf_only):
        with pytest.raises(RecordingError, match=r"no G\.711 audio"):
            pcap_to_wav(pcap, tmp_path / "out" / "x.wav")
    assert list((tmp_path / "out").iterdir()) == []


def test_call_ids_in_file_names_round_trip(tmp_path: Path) -> None:
    call_id = "a84b4c76e66710@pc33.atlanta.com/x y"
    escaped = recording.escape_call_id(call_id)
    assert escaped == "a84b4c76e66710%40pc33.atlanta.com%2Fx%20y"
    pcap = tmp_path / "pcaps" / f"{escaped}-0123456789abcdef.pcap"
    write_pcap(pcap, [])
    write_pcap(tmp_path / "pcaps" / f"{escaped}x-0123456789abcdef.pcap", [])  # another call
    assert recording.call_id_of(pcap) == call_id
    assert recording.find_pcaps(call_id, tmp_path) == [pcap]
    assert "/" not in recording.file_name(call_id)
    assert len(recording.file_name("x" * 300)) < 160


# --- the worker: spool to call record -------------------------------------------------------

CALL = "call-1@10.0.0.1"


def spool_call(settings: Settings, packets: list[Pkt], *, finished: bool = True) -> Path:
    spool = settings.paths.spool_dir
    pcap = write_pcap(
        spool / "pcaps" / f"{recording.escape_call_id(CALL)}-0123456789abcdef.pcap", packets
    )
    if finished:
        metadata(spool, pcap, answer_port=TO_CALLER_PORT[1])
    else:
        (spool / "tmp").mkdir(parents=True, exist_ok=True)
        (spool / "tmp" / f"rtpengine-meta-{pcap.name[:-5]}.tmp").write_text(f"{pcap}\n\n")
    return pcap


def record(talk: int = 3, status: str = "answered", ended: bool = True) -> None:
    start = dt.datetime.fromtimestamp(T0, dt.UTC)
    CallRecord.insert(
        CallRecord(
            call_id=CALL,
            kind="hotline",
            started_at=start - dt.timedelta(seconds=5),
            answered_at=start if ended else None,
            ended_at=start + dt.timedelta(seconds=talk) if ended else None,
            talk_seconds=talk,
            status=status if ended else "talking",
        )
    ).run_sync()


def row() -> dict[str, object]:
    found = (
        CallRecord.select(CallRecord.recording, CallRecord.voicemail, CallRecord.recording_error)
        .where(CallRecord.call_id == CALL)
        .first()
        .run_sync()
    )
    assert found is not None
    return found


def leftovers(settings: Settings) -> list[str]:
    spool = settings.paths.spool_dir
    return sorted(str(p.relative_to(spool)) for p in spool.rglob("*") if p.is_file())


def test_a_recording_lands_by_month_is_linked_and_the_pcap_goes(
    database: object, tmp_settings: Settings
) -> None:
    record(talk=3)
    pcap = spool_call(tmp_settings, call_packets())
    path = recording.convert_recording.call_local(CALL, str(pcap))
    # The call started in November 2026 (Asia/Shanghai).
    folder = tmp_settings.paths.data_dir / "recordings" / "2026" / "11"
    assert path == str(folder / recording.file_name(CALL))
    assert row() == {"recording": path, "voicemail": "", "recording_error": ""}
    frames, channels = read_channels(Path(path))
    assert len(channels) == 2 and frames == pytest.approx(3 * RATE, abs=200)
    assert leftovers(tmp_settings) == []
    # Again (a retried task): nothing to do, nothing changes.
    assert recording.convert_recording.call_local(CALL, str(pcap)) == ""
    assert recording.convert_recording.call_local(CALL) == ""
    assert row()["recording"] == path and row()["recording_error"] == ""


def test_a_recording_much_shorter_than_the_call_is_kept_and_flagged(
    database: object, tmp_settings: Settings
) -> None:
    record(talk=30)
    spool_call(tmp_settings, call_packets())
    path = recording.convert_recording.call_local(CALL)  # found by Call-ID
    assert Path(path).is_file()
    found = row()
    assert found["recording"] == path
    assert found["recording_error"] == (
        "the recording lasts 3 s, the call 30 s: part of it may be missing"
    )


def test_a_recording_that_cannot_be_made_marks_the_record(
    database: object, tmp_settings: Settings
) -> None:
    record()
    pcap = spool_call(tmp_settings, [])
    assert recording.convert_recording.call_local(CALL, str(pcap)) == ""
    assert row()["recording"] == ""
    assert row()["recording_error"] == "recording failed: the recording holds no G.711 audio"
    # Kept a while for whoever wants to look, out of the way of the sweep.
    assert leftovers(tmp_settings) == [
        f"failed/{pcap.name}",
        f"metadata/rtpengine-meta-{pcap.name[:-5]}.txt",
    ]


def test_no_pcap_at_all_marks_the_record(database: object, tmp_settings: Settings) -> None:
    record()
    assert recording.convert_recording.call_local(CALL) == ""
    assert "no recording was made" in str(row()["recording_error"])


def test_voicemail_is_linked_as_the_calls_message(database: object, tmp_settings: Settings) -> None:
    record(status="voicemail")
    spool_call(tmp_settings, call_packets())
    path = recording.convert_voicemail.call_local(CALL)
    assert "/voicemail/2026/11/" in path
    assert row() == {"recording": "", "voicemail": path, "recording_error": ""}
    assert len(read_channels(Path(path))[1]) == 1


def test_a_pcap_still_being_written_is_retried(database: object, tmp_settings: Settings) -> None:
    record()
    pcap = spool_call(tmp_settings, call_packets(), finished=False)
    with pytest.raises(recording.NotFinished):
        recording.convert_recording.call_local(CALL, str(pcap))
    assert pcap.exists() and row()["recording"] == ""


def test_the_sweep_converts_what_was_left_behind(
    database: object, tmp_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recording, "_active_calls", lambda: {"still-talking"})
    spool = tmp_settings.paths.spool_dir
    record(status="voicemail")
    done = spool_call(tmp_settings, call_packets())
    # A call rtpengine still has, and a finished pcap whose record has not ended.
    talking = write_pcap(spool / "pcaps" / "still-talking-0123456789abcdef.pcap", call_packets())
    unended = write_pcap(spool / "pcaps" / "unended-0123456789abcdef.pcap", call_packets())
    metadata(spool, unended)
    # A conversion whose worker died long ago, and an old failure.
    stale = write_pcap(spool / "converting" / "lost-0123456789abcdef.pcap", [])
    old_failure = write_pcap(spool / "failed" / "old-0123456789abcdef.pcap", [])
    hour_ago = time.time() - 3600
    for path in (talking, stale):
        os.utime(path, (hour_ago, hour_ago))
    os.utime(old_failure, (hour_ago - 8 * 86400,) * 2)

    counts = recording.sweep(enqueue=False)
    # The lost conversion is put back and, its call long over, converted
    # again at once (it has no audio: it fails).
    assert counts == {"queued": 2, "waiting": 1, "put_back": 1, "deleted": 1}
    assert "/voicemail/" in str(row()["voicemail"])
    assert not done.exists() and talking.exists() and unended.exists()
    assert sorted(p.name for p in (spool / "failed").iterdir()) == [stale.name]

    # Ten minutes on, the unended call's pcap is converted as a recording.
    later = time.time() + recording.WAIT_FOR_RECORD_S + 60
    counts = recording.sweep(now=later, enqueue=False)
    assert counts["queued"] == 1
    assert not unended.exists() and talking.exists()
    assert list((tmp_settings.paths.data_dir / "recordings").rglob("unended*.wav"))
