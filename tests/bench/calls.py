"""Calls per second through Kamailio: linebox's full routing against a plain
native kamailio.cfg that only forwards, same machine, same run, same sipp.

    python -m tests.bench.calls [--seconds 8] [--rates 200,400,...]

For each rate, sipp places `rate × seconds` calls (INVITE, 200, ACK, BYE;
no media, so this measures signalling and routing) at that rate. A rate is
clean when every call completes. linebox's path: the caller is the trunk,
the call is authorised by source address, screened, region-looked-up and
routed by decide() to a group, the group's extension is looked up in the
location table, and three call events are queued for the worker per call.
The native path forwards to the same answering sipp.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from appliance import services
from tests.integration.harness import Appliance, appliance, free_port

HERE = Path(__file__).parent
SCENARIOS = HERE / "scenarios"

SITE = """
[[trunks]]
name = "carrier"
host = "{trunk}"
dids = ["4001234567"]

[[tenants]]
slug = "bench"
name = "Bench"

[[tenants.extensions]]
number = "1001"
password = "bench-1001-secret"

[[tenants.groups]]
name = "sales"
strategy = "round_robin"
ring_timeout = 15
members = ["ext:1001"]

[[tenants.hotlines]]
number = "4001234567"
blacklist = ["13300000000", "0571*"]
blocked_regions = ["新疆维吾尔自治区"]
  [[tenants.hotlines.routes]]
  when = { regions = ["广东省", "广西壮族自治区"] }
  to = "ext:1001"
  [[tenants.hotlines.routes]]
  to = "group:sales"
"""


def sink(root: Path, port: int) -> subprocess.Popen[bytes]:
    """An answering sipp that takes any number of calls."""
    argv = [
        "sipp",
        "-sf",
        str(SCENARIOS / "uas.xml"),
        "-i",
        "127.0.0.1",
        "-p",
        str(port),
        "-nostdin",
    ]
    out = (root / f"sink-{port}.out").open("wb")
    return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=root)


def load(root: Path, target: str, rate: int, seconds: int, trunk_port: int) -> tuple[int, int]:
    """Place rate × seconds calls at `rate`; (successful, failed)."""
    total = rate * seconds
    stats = root / f"load-{rate}-{time.monotonic_ns()}.csv"
    argv = [
        "sipp",
        target,
        "-sf",
        str(SCENARIOS / "uac.xml"),
        "-s",
        "4001234567",
        "-i",
        "127.0.0.1",
        "-p",
        str(trunk_port),
        "-r",
        str(rate),
        "-m",
        str(total),
        "-l",
        str(max(rate * 2, 100)),
        "-nostdin",
        "-timeout",
        str(seconds * 4 + 30),
        "-recv_timeout",
        "10000",
        "-default_behaviors",
        "all,-abortunexp",
        "-cp",
        str(free_port()),
        "-mp",
        str(free_port()),
        "-trace_stat",
        "-stf",
        str(stats),
        "-fd",
        "1000",
    ]
    subprocess.run(argv, capture_output=True, cwd=root, timeout=seconds * 4 + 60)
    lines = stats.read_text().splitlines() if stats.exists() else []
    if len(lines) < 2:
        return 0, total
    header = lines[0].split(";")
    last = lines[-1].split(";")
    row = dict(zip(header, last, strict=False))
    ok = int(row.get("SuccessfulCall(C)", 0))
    failed = int(row.get("FailedCall(C)", 0))
    return ok, failed + max(0, total - ok - failed)


@contextlib.contextmanager
def native_kamailio(root: Path, destination: str) -> Iterator[str]:
    port = free_port()
    run = root / "native"
    run.mkdir()
    argv = [
        services.KAMAILIO_BIN,
        "-DD",
        "-E",
        "-f",
        str(HERE / "native.cfg"),
        "-Y",
        str(run),
        "-P",
        str(run / "kamailio.pid"),
        "-w",
        str(run),
        "-m",
        "512",
        "-M",
        "16",
        "-A",
        f"LISTEN=udp:127.0.0.1:{port}",
        "-A",
        "CHILDREN=4",
        "-A",
        f'CTL_SOCKET="unix:{run}/ctl"',
        "-A",
        f'DESTINATION="sip:{destination}"',
    ]
    service = services.Service(
        name="native kamailio",
        argv=argv,
        ready=lambda: _listening(port),
    )
    with services.running(service, run / "kamailio.log"):
        yield f"127.0.0.1:{port}"


def _listening(port: int) -> bool:
    """Is something bound to this UDP port (the native config, once up)?"""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def publish_under_load(app: Appliance, root: Path, rate: int, seconds: int) -> tuple[int, int, int]:
    """Calls at `rate` while the plan is recompiled and published over and
    over; (completed, failed, plans published)."""
    import threading

    published = 0
    stop = threading.Event()

    def publisher() -> None:
        nonlocal published
        while not stop.is_set():
            app.linebox("publish")
            published += 1

    thread = threading.Thread(target=publisher)
    thread.start()
    try:
        ok, failed = load(root, app.sip, rate, seconds, app.trunk_port)
    finally:
        stop.set()
        thread.join()
    return ok, failed, published


def run(rates: list[int], seconds: int) -> dict[str, dict[int, tuple[int, int]]]:
    results: dict[str, dict[int, tuple[int, int]]] = {"linebox": {}, "native": {}}
    with tempfile.TemporaryDirectory(prefix="linebox-bench-") as tmp:
        root = Path(tmp)
        (root / "linebox").mkdir()
        # As on the appliance: 4 SIP workers, 512 MB of shared memory (tm keeps
        # every transaction there; 128 MB runs out near 900 calls/s).
        sized = {"LINEBOX_SIP_CHILDREN": "4", "LINEBOX_SIP_SHM_MB": "512"}
        with appliance(root / "linebox", SITE, overrides=sized) as app:
            sink_port = free_port()
            sink_proc = sink(root, sink_port)
            try:
                time.sleep(0.5)
                reg = app.register(
                    "1001", "bench-1001-secret", contact_port=sink_port, expires=3600
                )
                assert reg.result == "RESULT 200", reg
                ok, failed, published = publish_under_load(app, root, 200, seconds)
                print(
                    f"  publishing under load: {published} plans published during "
                    f"{ok + failed} calls at 200 calls/s: {failed} failed",
                    flush=True,
                )
                with native_kamailio(root, f"127.0.0.1:{sink_port}") as native:
                    for rate in rates:
                        for name, target in (("linebox", app.sip), ("native", native)):
                            results[name][rate] = load(root, target, rate, seconds, app.trunk_port)
                            ok, failed = results[name][rate]
                            print(
                                f"  {name:8} {rate:5} calls/s: {ok} completed, {failed} failed",
                                flush=True,
                            )
            finally:
                services.stop_process(sink_proc)
    return results


def clean_max(results: dict[int, tuple[int, int]]) -> int:
    clean = [rate for rate, (_, failed) in results.items() if failed == 0]
    return max(clean, default=0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rates", default="200,400,600,800,1000,1200,1400")
    args = parser.parse_args(argv)
    rates = [int(r) for r in args.rates.split(",")]
    print(f"calls/s, {args.seconds} s per rate (linebox full routing vs plain native forward):")
    results = run(rates, args.seconds)
    ours, native = clean_max(results["linebox"]), clean_max(results["native"])
    ratio = ours / native if native else 0.0
    print(f"max clean rate: linebox {ours} calls/s, native {native} calls/s, ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
