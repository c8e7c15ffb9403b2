"""A recording made by a real rtpengine, started exactly as `linebox run`
starts it: a call set up over the ng protocol between two sockets of this
test, each side sending its own tone for 2 s, then converted. Each channel
must be what its side sent (correlation after G.711), and the length right."""

from __future__ import annotations

import array
import math
import re
import socket
import struct
import time
import wave
from pathlib import Path

from appliance import services
from appliance.media import recording
from appliance.media.ng import NgClient
from tests.integration.harness import make_settings

RATE = 8000
SECONDS = 2.0
CALLER_HZ, AGENT_HZ = 440.0, 1020.0


def signal(freq: float, count: int) -> list[int]:
    """A tone with a slow swell, so a shifted copy does not correlate."""
    swell = [0.6 + 0.4 * math.sin(2 * math.pi * 1.3 * n / RATE) for n in range(count)]
    return [int(9000 * swell[n] * math.sin(2 * math.pi * freq * n / RATE)) for n in range(count)]


def alaw(samples: list[int]) -> bytes:
    """A-law by nearest code (the test's own encoder)."""
    import bisect

    table = sorted((recording._alaw(c), c) for c in range(256))
    values = [v for v, _ in table]
    out = bytearray()
    for s in samples:
        i = bisect.bisect_left(values, s)
        if i == len(values) or (i and s - values[i - 1] < values[i] - s):
            i -= 1
        out.append(table[i][1])
    return bytes(out)


def sdp(port: int) -> str:
    return (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    )


def media_port(body: str) -> int:
    found = re.search(r"^m=audio (\d+) ", body, re.MULTILINE)
    assert found, body
    return int(found.group(1))


def best_correlation(got: array.array[int], sent: list[int], max_lag: int = 40) -> float:
    """The normalised cross-correlation of what came out with what was sent,
    at the best lag within ±`max_lag` samples."""
    m = min(len(got), len(sent)) - 2 * max_lag
    reference = sent[max_lag : max_lag + m]
    reference_norm = math.sqrt(sum(v * v for v in reference))
    best = 0.0
    for lag in range(-max_lag, max_lag + 1):
        window = got[max_lag + lag : max_lag + lag + m]
        norm = math.sqrt(sum(x * x for x in window)) * reference_norm
        if norm:
            best = max(best, sum(x * y for x, y in zip(window, reference, strict=True)) / norm)
    return best


def test_a_real_rtpengine_recording_becomes_caller_left_agent_right(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    services.prepare_directories(settings)
    spool = settings.paths.spool_dir
    call_id = "rec-test-1@127.0.0.1"
    frames = int(SECONDS * RATE)
    caller_audio, agent_audio = signal(CALLER_HZ, frames), signal(AGENT_HZ, frames)
    with (
        services.running(
            services.rtpengine_service(settings), settings.paths.run_dir / "rtpengine.log"
        ),
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as caller,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as agent,
    ):
        ng = NgClient(port=settings.media.ng_port)
        caller.bind(("127.0.0.1", 0))
        agent.bind(("127.0.0.1", 0))
        # The agent side is set up first, so without the hint the caller
        # would not be the one whose port came first.
        offer = ng.command(
            "offer",
            **{"call-id": call_id, "from-tag": "caller-tag", "sdp": sdp(caller.getsockname()[1])},
        )
        answer = ng.command(
            "answer",
            **{
                "call-id": call_id,
                "from-tag": "caller-tag",
                "to-tag": "agent-tag",
                "sdp": sdp(agent.getsockname()[1]),
                "flags": ["port-latching"],
            },
        )
        to_agent_side, to_caller_side = media_port(offer["sdp"]), media_port(answer["sdp"])
        hint = recording.caller_metadata(call_id, "caller-tag", ng)
        assert hint == f"caller-port={to_caller_side}"
        ng.command("start recording", **{"call-id": call_id, "metadata": hint})

        # The agent starts 100 ms after the caller, as a phone does after 200 OK.
        start = time.monotonic()
        packets = int(SECONDS * 50)
        for n in range(packets + 5):
            for sock, audio, port, ssrc, first in (
                (caller, caller_audio, to_caller_side, 0x1234, 0),
                (agent, agent_audio, to_agent_side, 0x5678, 5),
            ):
                index = n - first
                if 0 <= index < packets:
                    chunk = alaw(audio[index * 160 : (index + 1) * 160])
                    header = struct.pack("!BBHII", 0x80, 8, index, 160 * index, ssrc)
                    sock.sendto(header + chunk, ("127.0.0.1", port))
            time.sleep(max(0.0, start + (n + 1) * 0.02 - time.monotonic()))
        time.sleep(0.1)
        ng.command("delete", **{"call-id": call_id, "from-tag": "caller-tag"})

        deadline = time.monotonic() + 5
        pcaps = recording.find_pcaps(call_id, spool)
        while time.monotonic() < deadline and not (
            pcaps and recording.is_finished(pcaps[0], active=set(ng.list_calls()))
        ):
            time.sleep(0.05)
            pcaps = recording.find_pcaps(call_id, spool)
    assert len(pcaps) == 1
    meta = recording.metadata_for(pcaps[0])
    assert meta is not None and meta.finished and meta.caller_port() == to_caller_side

    seconds = recording.pcap_to_wav(pcaps[0], tmp_path / "call.wav")
    assert abs(seconds - (SECONDS + 0.1)) < 0.1
    with wave.open(str(tmp_path / "call.wav"), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, RATE)
        data = array.array("h", w.readframes(w.getnframes()))
    left, right = data[0::2], data[1::2]
    assert best_correlation(left, caller_audio) > 0.9
    assert best_correlation(right[800:], agent_audio) > 0.9
    # And not the other way round.
    assert best_correlation(left, agent_audio) < 0.2
    assert best_correlation(right[800:], caller_audio) < 0.2

    seconds = recording.voicemail_to_wav(pcaps[0], tmp_path / "message.wav")
    with wave.open(str(tmp_path / "message.wav"), "rb") as w:
        assert w.getnchannels() == 1
        mono = array.array("h", w.readframes(w.getnframes()))
    assert abs(seconds - SECONDS) < 0.1
    assert best_correlation(mono, caller_audio) > 0.9
