"""The appliance operations commands: `linebox doctor`, `backup`, `restore`,
`firstboot` and `network`; `appliance.cli` registers them with
`add_commands(subparsers)`. Each command sets `func(args) -> int`, the exit
status.

On the appliance `/usr/bin/linebox` runs these as root (they stop services,
write /etc and read every file); what they create in the data directory is
given to the `linebox` user."""

from __future__ import annotations

import argparse
import asyncio
import os
import pwd
import sys
from pathlib import Path
from typing import Any

from appliance import settings as settings_mod
from appliance.errors import LineboxError

SERVICE_USER = "linebox"


def add_commands(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "doctor",
        help="check the running appliance and say what to fix",
        description="Check the services, their ports, disk space, the clock, the "
        "certificate and the trunks. Exit status 1 when something must be fixed.",
    )
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.set_defaults(func=cmd_doctor)

    p = subparsers.add_parser(
        "backup",
        help="write the database, prompts, voicemail and recordings to one archive",
        description="Write one archive (.tar.gz) that `linebox restore` brings back, "
        "on this appliance or on a fresh one. Safe while the appliance runs.",
    )
    p.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="the archive (default: in the cwd)"
    )
    p.add_argument("--no-recordings", action="store_true", help="leave the call recordings out")
    p.add_argument(
        "--files-only",
        action="store_true",
        help="no database (PostgreSQL: back it up with pg_dump)",
    )
    p.set_defaults(func=cmd_backup)

    p = subparsers.add_parser(
        "restore",
        help="replace the appliance's data with a backup's",
        description="Replace the database, prompts, voicemail and recordings with "
        "those of an archive `linebox backup` wrote, migrate the database to this "
        "version and publish the routing plan. The services that write the data are "
        "stopped meanwhile.",
    )
    p.add_argument("archive", type=Path)
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=cmd_restore)

    p = subparsers.add_parser(
        "firstboot",
        help="make this appliance's secrets and admin password (run once at first boot)",
        description="Make the web session key, the TLS certificate, SSH host keys and "
        "the operator `admin` with a one-time password, and show the web address. "
        "Skips whatever exists already.",
    )
    p.add_argument(
        "--forget", action="store_true", help="take the first password off the login prompt"
    )
    p.set_defaults(func=cmd_firstboot)

    p = subparsers.add_parser(
        "network",
        help="the SIP and media address; a static address or DHCP",
        description="Show or detect the address SIP and media are served on, or set "
        "the appliance's address (systemd-networkd).",
    )
    sub = p.add_subparsers(dest="network_command", metavar="ACTION")
    d = sub.add_parser("detect", help="detect the address and print (or write) it")
    d.add_argument("--wait", type=float, default=0.0, help="seconds to wait for an address")
    d.add_argument(
        "--write", type=Path, metavar="FILE", help="write the variables for the units here"
    )
    s = sub.add_parser("static", help="use a static address (e.g. 192.0.2.10/24)")
    s.add_argument("address")
    s.add_argument("--gateway", default="")
    s.add_argument("--dns", action="append", default=[])
    sub.add_parser("dhcp", help="use DHCP (the default)")
    a = sub.add_parser("apply", help="the site file's [appliance.network]: static address or DHCP")
    a.add_argument("site", type=Path)
    y = sub.add_parser(
        "sync",
        help="take up the address the web admin set (run as root by linebox-network-sync.path)",
    )
    y.add_argument("staged", type=Path, help="the file the web admin writes (absent: DHCP)")
    p.set_defaults(func=cmd_network)


# --- helpers -------------------------------------------------------------------


def _owner() -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    try:
        pw = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        return None
    return pw.pw_uid, pw.pw_gid


def _own(path: Path) -> None:
    """Give what a root command created in the data directory to linebox."""
    owner = _owner()
    if owner is None or not path.exists():
        return
    os.chown(path, *owner)
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.lchown(os.path.join(root, name), *owner)


def _restart_networkd() -> None:
    import subprocess

    if Path("/run/systemd/system").is_dir():
        subprocess.run(["networkctl", "reload"], check=False)
        subprocess.run(["systemctl", "restart", "linebox-network.service"], check=False)


# --- commands ------------------------------------------------------------------


def cmd_doctor(args: argparse.Namespace) -> int:
    from appliance.ops import doctor

    findings = doctor.run_checks(settings_mod.get())
    print(doctor.report(findings, as_json=args.json))
    return 1 if any(f.status == doctor.FAIL for f in findings) else 0


def cmd_backup(args: argparse.Namespace) -> int:
    from appliance.ops import backup

    settings = settings_mod.get()
    output = args.output or Path.cwd() / backup.default_name()
    manifest = backup.create(
        settings, output, recordings=not args.no_recordings, files_only=args.files_only
    )
    size = output.stat().st_size / (1 << 20)
    print(f"wrote {output} ({size:.1f} MiB): {', '.join(manifest.contents) or 'nothing'}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from appliance import db
    from appliance.ops import backup
    from appliance.routing.compile import publish_from_db

    settings = settings_mod.get()
    manifest = backup.read_manifest(args.archive)
    print(
        f"{args.archive}: made {manifest.created} on {manifest.host} by linebox "
        f"{manifest.version}; holds {', '.join(manifest.contents)}"
    )
    if not args.yes:
        if not sys.stdin.isatty():
            print("linebox restore: add --yes to replace the data without asking", file=sys.stderr)
            return 2
        answer = input(f"replace the data in {settings.paths.data_dir}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing was changed")
            return 1

    def migrate_and_publish() -> None:
        db.configure()
        db.migrate()
        plan = asyncio.run(publish_from_db())
        print(f"published plan {plan.version}: {len(plan.hotlines)} hotlines")
        _own(settings.paths.data_dir)

    backup.restore(settings, args.archive, after=migrate_and_publish, owner=_owner())
    print("restored")
    return 0


def cmd_firstboot(args: argparse.Namespace) -> int:
    from appliance.ops import network
    from appliance.ops.firstboot import FirstBoot

    settings = settings_mod.get()
    job = FirstBoot(settings)
    if args.forget:
        job.forget()
        return 0
    env, _found = network.environment(wait=5)
    address = env.get("LINEBOX_SIP_ADDRESS") or settings.sip.address
    for line in job.run(address):
        print(line, flush=True)
    return 0


def cmd_network(args: argparse.Namespace) -> int:
    from appliance.ops import network

    action = args.network_command or "detect"
    if action == "detect":
        env, found = network.environment(wait=getattr(args, "wait", 0.0))
        if found:
            print(f"{found.address} on {found.interface} ({found.how})", file=sys.stderr)
        else:
            print("both addresses are set in the settings: nothing detected", file=sys.stderr)
        if getattr(args, "write", None):
            network.write_env_file(args.write, env, found)
        else:
            for name, value in sorted(env.items()):
                print(f"{name}={value}")
        return 0
    if action == "dhcp":
        static = None
    elif action == "static":
        static = network.parse_static(
            {"address": args.address, "gateway": args.gateway, "dns": args.dns},
            where="linebox network static:",
        )
    elif action == "sync":
        return _sync_network(args.staged)
    else:
        static = network.site_network(args.site)
    target = network.networkd_file()
    changed = network.apply_static(static, target)
    print(
        ("DHCP" if static is None else f"static address {static.address}")
        + ("" if changed else " (unchanged)")
    )
    if changed and target == network.NETWORKD_FILE:
        _restart_networkd()
    return 0


def _sync_network(staged_file: Path) -> int:
    """Take up the address the web admin staged (run as root by
    linebox-network-sync.path: the web service, user linebox, may not write
    /etc). Its values are checked again and the file is written anew from
    them, so the staged file can set nothing but an address. A change made
    while this runs would not start it again: it looks once more at the end."""
    from appliance.ops import network

    def snapshot() -> str | None:
        try:
            return staged_file.read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError):
            return None

    target = network.networkd_file()
    for _ in range(5):
        seen = snapshot()
        staged = network.read_static(staged_file)
        static = None
        if staged is not None:
            static = network.parse_static(
                {"address": staged.address, "gateway": staged.gateway, "dns": list(staged.dns)},
                where=f"{staged_file}:",
            )
        changed = network.apply_static(static, target)
        print(("DHCP" if static is None else f"static address {static.address}")
              + ("" if changed else " (unchanged)"))  # fmt: skip
        if changed and target == network.NETWORKD_FILE:
            _restart_networkd()
        if snapshot() == seen:
            break
    return 0


def run(argv: list[str]) -> int:
    """For tests: parse and run one of these commands alone."""
    parser = argparse.ArgumentParser(prog="linebox")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LineboxError as exc:
        print(f"linebox: {exc.detail}", file=sys.stderr)
        return 2
