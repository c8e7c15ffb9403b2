"""The `linebox` command line."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import sys
import threading
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec

from appliance import db
from appliance import settings as settings_mod
from appliance.errors import LineboxError

DEMO_SITE = Path(__file__).resolve().parent.parent / "examples" / "demo-site.toml"


def cmd_init(args: argparse.Namespace) -> int:
    """Create the data directory and bring the database schema up to date."""
    from appliance import services
    from appliance.media.stock import ensure_stock

    settings = settings_mod.get()
    services.prepare_directories(settings)
    db.configure()
    db.migrate()
    ensure_stock(strict=False)  # the stock prompts, rendered from text
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    """Compile the routing plan from the database and publish it."""
    from appliance.routing.compile import publish_from_db

    db.configure()
    plan = asyncio.run(publish_from_db())
    print(
        f"published plan {plan.version}: {len(plan.hotlines)} hotlines, "
        f"{len(plan.extensions)} extensions"
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Run the huey consumer: call records and every other background task."""
    from appliance.worker.tasks import huey

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    settings = settings_mod.get()
    # Background work yields the CPU to call routing and media: a backlog of
    # records waits a moment, a call does not.
    os.nice(10)
    db.configure()
    heartbeat = settings.paths.run_dir / "worker.heartbeat"
    heartbeat.parent.mkdir(parents=True, exist_ok=True)

    def beat() -> None:
        while True:
            heartbeat.touch()
            time.sleep(10)

    threading.Thread(target=beat, name="heartbeat", daemon=True).start()
    threading.Thread(target=read_journal, args=(settings,), name="journal", daemon=True).start()
    consumer = huey.create_consumer(workers=args.workers, worker_type="thread", periodic=True)
    consumer.run()
    return 0


def read_journal(settings: settings_mod.Settings) -> None:
    """Kamailio's call events, in the order each of its processes wrote them."""
    from appliance.media import recording
    from appliance.worker import cdr, sticky, tollfraud, trunks
    from appliance.worker.journal import JournalReader

    reader = JournalReader(
        settings.paths.data_dir / "events",
        {
            "call_event": lambda payload: cdr.call_event.call_local(payload.encode()),
            "sticky": sticky.remember.call_local,
            # Conversions take seconds: queued for the worker's threads.
            "convert_recording": recording.convert_recording,
            "convert_voicemail": recording.convert_voicemail,
            "outbound_minutes": tollfraud.outbound_minutes,
            "trunk_gateway": trunks.trunk_gateway,
        },
    )
    while True:
        try:
            if not reader.poll():
                time.sleep(0.1)
        except Exception:
            logging.getLogger("linebox.journal").exception("reading the journal failed")
            time.sleep(1)


def cmd_run(args: argparse.Namespace) -> int:
    """Start the whole appliance in the foreground (Ctrl-C stops it)."""
    from appliance import services
    from appliance.routing.compile import publish_from_db
    from appliance.tables import Extension, Tenant, User

    settings = settings_mod.get()
    services.prepare_directories(settings)
    db.configure()
    db.migrate()
    from appliance.media.stock import ensure_stock

    ensure_stock(strict=False)  # quick when the stock prompts are there already
    if args.demo and not Tenant.count().run_sync():
        from appliance.sitefile.apply import apply_file

        result = apply_file(DEMO_SITE)
        print(f"applied the demo site {DEMO_SITE.name} ({len(result.changes)} objects)")
    plan = asyncio.run(publish_from_db())

    web = f"http://{settings.web.host}:{settings.web.port}"
    sip = f"{settings.sip_advertised}:{settings.sip.port}"
    print("linebox is starting")
    print(f"  web portal     {web}/   (call records: {web}/calls, health: {web}/healthz)")
    print(f"  SIP            {sip} (UDP and TCP), domain {settings.sip.domain}")
    print(f"  data           {settings.paths.data_dir}  (logs in {settings.paths.run_dir})")
    users = User.select(User.login, User.role).order_by(User._meta.primary_key).run_sync()
    for user in users:
        password = (
            " / linebox-demo" if args.demo and user["login"].endswith("demo.example.cn") else ""
        )
        print(f"  login          {user['login']}{password} ({user['role']})")
    extensions = Extension.select(Extension.number, Extension.sip_password).run_sync()
    for ext in extensions:
        print(f"  extension      {ext['number']} password {ext['sip_password']}")
    for number in plan.hotlines:
        print(f"  hotline        {number}")

    supervisor = services.Supervisor(
        services.all_services(settings), log_dir=settings.paths.run_dir
    )
    return supervisor.run()


def cmd_service(args: argparse.Namespace) -> int:
    """Replace this process with one of the appliance's services, exactly as
    `linebox run` starts it (what the systemd units call)."""
    import os

    from appliance import services

    settings = settings_mod.get()
    services.prepare_directories(settings)
    by_name = {s.name: s for s in services.all_services(settings)}
    service = by_name[args.name]
    os.execve(service.argv[0], service.argv, service.env)


def cmd_simulate(args: argparse.Namespace) -> int:
    """What happens if CALLER calls HOTLINE at a given time, and why."""
    from appliance.numbers import region_of
    from appliance.routing.compile import compile_plan
    from appliance.routing.decide import Facts, decide

    db.configure()
    plan = asyncio.run(compile_plan())
    hotline = plan.hotlines.get(args.hotline)
    tz = ZoneInfo(hotline.timezone if hotline else settings_mod.get().timezone)
    when = dt.datetime.now(tz)
    if args.at:
        when = dt.datetime.fromisoformat(args.at)
        if when.tzinfo is None:
            when = when.replace(tzinfo=tz)
    trunk = next((t.name for t in plan.trunks if args.hotline in t.dids), "")
    facts = Facts(
        called=args.hotline,
        caller=args.caller,
        region=region_of(args.caller),
        trunk=trunk,
        caller_extension="" if trunk else args.caller,
        sequence=args.sequence,
    )
    decision = decide(plan, facts, when)
    if args.json:
        print(msgspec.json.encode(decision).decode())
        return 0
    print(f"{args.caller} → {args.hotline} at {when:%Y-%m-%d %H:%M %Z}")
    for line in decision.trace:
        print(f"  · {line}")
    target = decision.target or f"{decision.sip_code} {decision.reason}"
    print(f"decision: {decision.action} {target}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="linebox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("init", help=cmd_init.__doc__)
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("run", help=cmd_run.__doc__)
    p.add_argument(
        "--demo", action="store_true", help="apply the demo site first when the database holds none"
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("worker", help=cmd_worker.__doc__)
    p.add_argument("--workers", type=int, default=2)
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("service", help=cmd_service.__doc__)
    p.add_argument("name", choices=["rtpengine", "worker", "kamailio", "web"])
    p.set_defaults(func=cmd_service)

    p = sub.add_parser("publish", help=cmd_publish.__doc__)
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("simulate", help=cmd_simulate.__doc__)
    p.add_argument("--hotline", required=True)
    p.add_argument("--caller", required=True)
    p.add_argument("--at", help='local time, e.g. "2026-12-31 21:00" (default: now)')
    p.add_argument(
        "--sequence",
        type=int,
        default=0,
        help="the hotline's call count so far (drives percentage splits)",
    )
    p.add_argument("--json", action="store_true", help="print the decision as JSON")
    p.set_defaults(func=cmd_simulate)

    from appliance.sitefile.cli import add_commands

    add_commands(sub)
    from appliance.ops.cli import add_commands as add_ops_commands

    add_ops_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LineboxError as exc:
        print(f"linebox: {exc.detail}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
