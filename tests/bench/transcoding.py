"""rtpengine's CPU for transcoded calls (an Opus or G.722 phone talking to a
PCMA trunk) against plain relayed ones (PCMA on both sides), userspace
forwarding, same machine, same run.

    python -m tests.bench.transcoding [--calls 5] [--seconds 30] [--only opus,...]

For each kind, a fresh appliance: `--calls` baresips registered as
extensions dial the hotline, which sends each call out through the trunk
to one baresip answering with PCMA only; all calls talk both ways (a tone
each side). Once every call is up, rtpengine's CPU time (utime + stime of
its process) is sampled over `--seconds`; the same length measured with
no call before the first dial is subtracted. CPU seconds per call-second
give calls per core (1 / that): the number of such calls one core of this
machine keeps up, rtpengine only (Kamailio does nothing while calls talk).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.integration.harness import Appliance, appliance, free_port, pids_under
from tests.integration.test_transcoding import (
    MOBILE,
    PHONE_HZ,
    TRUNK_HZ,
    extension_phone,
    tone,
    trunk_phone,
)

TICK = os.sysconf("SC_CLK_TCK")
KINDS = {
    # kind: (baresip's codec name, module, sample rate, channels)
    "relayed": ("PCMA", "g711", 8000, 1),
    "opus": ("opus", "opus", 48000, 2),
    "g722": ("G722", "g722", 16000, 1),
}


def site(out_port: int, calls: int) -> str:
    extensions = "".join(
        f'\n[[tenants.extensions]]\nnumber = "{1001 + i}"\npassword = "bench-{1001 + i}-secret"\n'
        for i in range(calls)
    )
    return f"""
[[trunks]]
name = "out"
host = "127.0.0.1:{out_port}"

[[trunks]]
name = "carrier"
host = "{{trunk}}"
dids = ["4001234567"]

[[tenants]]
slug = "bench"
name = "Bench"

[tenants.outbound]
max_calls = {calls + 10}
{extensions}
[[tenants.hotlines]]
number = "4001234567"
  [[tenants.hotlines.routes]]
  to = "tel:{MOBILE}"
"""


def rtpengine_ticks(app: Appliance) -> int:
    total = 0
    for pid in pids_under(app.root):
        proc = Path("/proc") / str(pid)
        try:
            if (proc / "comm").read_text().strip() != "rtpengine":
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total


def leg_packets(app: Appliance, call_id: str) -> list[int]:
    """The RTP packets rtpengine received so far on each leg of a call."""
    tags = app.ng().query(call_id).get("tags", {})
    return [
        sum(media["streams"][0]["stats"]["packets"] for media in tag.get("medias", []))
        for tag in tags.values()
    ]


def talking(app: Appliance, before: dict[str, list[int]], seconds: float) -> list[list[int]]:
    """The packets a second each leg of each call received since `before`,
    most first."""
    return [
        sorted(
            (
                round((b - a) / seconds)
                for a, b in zip(counts, leg_packets(app, call_id), strict=False)
            ),
            reverse=True,
        )
        for call_id, counts in before.items()
    ]


@dataclass
class Result:
    kind: str
    calls: int
    seconds: float
    idle_cpu_s: float
    busy_cpu_s: float

    @property
    def per_call_second(self) -> float:
        """rtpengine's CPU seconds per second of one call."""
        return max(self.busy_cpu_s - self.idle_cpu_s, 0) / (self.calls * self.seconds)

    def describe(self) -> str:
        per = self.per_call_second
        per_core = f"{1 / per:,.0f}" if per else "∞"
        return (
            f"{self.kind:8} {self.calls} calls × {self.seconds:.0f} s: rtpengine "
            f"{self.busy_cpu_s:.2f} CPU s (idle {self.idle_cpu_s:.2f}), "
            f"{1000 * per:.2f} CPU ms per call-second, {per_core} calls per core"
        )


def run_kind(root: Path, kind: str, calls: int, seconds: float) -> Result:
    codec, module, rate, channels = KINDS[kind]
    out_port = free_port()
    with appliance(root, site(out_port, calls)) as app, contextlib.ExitStack() as stack:
        phone_says, trunk_says = root / "phone.wav", root / "trunk.wav"
        tone(phone_says, PHONE_HZ, seconds + 60, rate, channels)
        tone(trunk_says, TRUNK_HZ, seconds + 60)
        # baresip takes 4 calls at once unless told.
        options = (f"call_max_calls {calls}",)
        stack.enter_context(
            trunk_phone(app, out_port, trunk_says, options, rtp_ports=2 * calls + 4)
        )
        phones = [
            stack.enter_context(
                extension_phone(
                    app, str(1001 + i), f"bench-{1001 + i}-secret", phone_says, codec, (module,)
                )
            )
            for i in range(calls)
        ]
        before = rtpengine_ticks(app)
        time.sleep(seconds)
        idle = (rtpengine_ticks(app) - before) / TICK
        for phone in phones:
            phone.command("dial", f"sip:4001234567@{app.sip}")
        for phone in phones:
            phone.wait_event("CALL_ESTABLISHED", timeout=30)
        time.sleep(2)  # every stream past its start
        packets = {call_id: leg_packets(app, call_id) for call_id in app.ng().list_calls()}
        before, started = rtpengine_ticks(app), time.monotonic()
        time.sleep(seconds)
        busy = (rtpengine_ticks(app) - before) / TICK
        elapsed = time.monotonic() - started
        # Media both ways on every call: 20 ms packets are 50 a second.
        rates = talking(app, packets, elapsed)
        both = sum(1 for legs in rates if len(legs) >= 2 and legs[1] >= 40)
        assert both == calls, f"{both} of {calls} calls had media both ways: {rates}"
        for phone in phones:
            phone.command("hangup")
        return Result(kind, calls, elapsed, idle * elapsed / seconds, busy)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--only", default=",".join(KINDS), help="kinds, separated by commas")
    args = parser.parse_args(argv)
    kinds = args.only.split(",")
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        parser.error(f"no kind {', '.join(unknown)}; there are {', '.join(KINDS)}")
    if not 1 <= args.calls <= 100:
        parser.error("--calls must be between 1 and 100")
    if not 5 <= args.seconds <= 600:
        parser.error("--seconds must be between 5 and 600")
    print(
        f"rtpengine CPU per call, {args.calls} concurrent calls of each kind, "
        f"{args.seconds:.0f} s measured (idle subtracted):"
    )
    for kind in kinds:
        with tempfile.TemporaryDirectory(prefix=f"bench-{kind}-") as tmp:
            print(run_kind(Path(tmp), kind, args.calls, args.seconds).describe(), flush=True)


if __name__ == "__main__":
    main()
