"""Faults under load: Kamailio, rtpengine or the worker is killed with
SIGKILL while sipp places calls, and restarted as `linebox run`'s supervisor
restarts it (its process group cleared, then started again). Afterwards every
call that was placed has exactly one call record (its status may say the
call failed) and every service answers again."""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance import services
from tests.integration.conftest import PASSWORDS, SITE
from tests.integration.harness import Appliance, appliance, free_port_block

CALLS = 15
RATE = 3  # calls per second: the load lasts 5 s, each call ~4 s


def place_calls(app: Appliance, tag: str) -> subprocess.Popen[bytes]:
    """sipp from the trunk: CALLS calls to the hotline at RATE per second."""
    argv = app._sipp_argv(
        "caller.xml",
        app.trunk_port,
        *("-s", "4001234567", "-key", "caller_number", "13800138000"),
        *("-mi", "127.0.0.1", "-mp", str(free_port_block(4 * CALLS))),
        *("-m", str(CALLS), "-r", str(RATE), "-l", str(CALLS)),
        *("-cid_str", f"{tag}-%u@%s", "-timeout", "90", "-timeout_error"),
        app.sip,
    )
    out = open(app.root / f"sipp-load-{tag}.out", "wb")  # noqa: SIM115
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=app.root)
    out.close()
    app.sipp_procs.append(proc)
    return proc


def kill_and_restart(app: Appliance, service: services.Service) -> float:
    """SIGKILL the service, then do what the supervisor does: clear its
    process group and start it again; seconds until it is ready."""
    old = next(p for p in app.procs if p.args == service.argv or p.args[:3] == service.argv[:3])
    os.kill(old.pid, signal.SIGKILL)
    old.wait(10)
    started = time.monotonic()
    time.sleep(0.5)  # the supervisor looks twice a second
    services.stop_process(old)
    app.procs.remove(old)
    proc = services.spawn(service, app.settings.paths.run_dir / f"{service.name}.log")
    app.procs.append(proc)
    services.wait_ready(service, proc, timeout=30)
    return time.monotonic() - started


def records_by_call(app: Appliance, tag: str) -> collections.Counter[str]:
    return collections.Counter(
        str(r["call_id"]) for r in app.records() if str(r["call_id"]).startswith(tag + "-")
    )


VICTIMS: dict[str, Callable[[services.Settings], services.Service]] = {
    "kamailio": services.kamailio_service,
    "rtpengine": services.rtpengine_service,
    "worker": services.worker_service,
}


@pytest.mark.parametrize(
    "victim",
    [
        "kamailio",
        pytest.param("rtpengine", marks=pytest.mark.slow),
        pytest.param("worker", marks=pytest.mark.slow),
    ],
)
def test_sigkill_during_calls_loses_no_call_record(tmp_path: Path, victim: str) -> None:
    with appliance(tmp_path, SITE) as app:
        agents = [app.agent(ext, PASSWORDS[ext], calls=CALLS * 2) for ext in ("1001", "1002")]
        tag = f"lbfault-{victim}-{random.getrandbits(32):x}"
        load = place_calls(app, tag)
        time.sleep(2.0)  # some calls talking, some ringing, more to come
        service = VICTIMS[victim](app.settings)
        recovered = kill_and_restart(app, service)
        if victim == "kamailio":
            # Registrations live in Kamailio's memory: the phones register
            # again, as real ones do when their registration is refused.
            for agent in agents:
                app.register(agent.extension, PASSWORDS[agent.extension], contact_port=agent.port)
        load.wait(120)

        # Every service answers again.
        assert services.sip_options_ok("127.0.0.1", app.settings.sip.port)
        assert app.ng().ping()
        for service_ in (
            services.kamailio_service(app.settings),
            services.rtpengine_service(app.settings),
            services.worker_service(app.settings),
        ):
            assert service_.ready(), f"{service_.name} is not back"
        # A new call after the fault is answered and recorded.
        after = app.call("4001234567")
        assert after.result == "RESULT 200", after.output
        assert app.record(after.call_id, timeout=30)["status"] == "answered"

        expected = {f"{tag}-{i}@127.0.0.1" for i in range(1, CALLS + 1)}
        deadline = time.monotonic() + 30
        while set(records_by_call(app, tag)) != expected and time.monotonic() < deadline:
            time.sleep(0.5)
        counts = records_by_call(app, tag)
        statuses = collections.Counter(
            str(r["status"]) for r in app.records() if str(r["call_id"]) in expected
        )
        (tmp_path / "fault-report.txt").write_text(
            f"{victim}: back in {recovered:.1f} s; {CALLS} calls placed, "
            f"{len(counts)} records, statuses {dict(statuses)}\n"
        )
        missing = expected - set(counts)
        assert not missing, f"calls without a record after killing {victim}: {sorted(missing)}"
        assert set(counts) == expected, sorted(set(counts) - expected)
        assert all(n == 1 for n in counts.values()), counts
