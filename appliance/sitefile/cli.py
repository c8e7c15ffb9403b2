"""`linebox apply FILE` and `linebox export`; `appliance.cli` registers them
with `add_commands(subparsers)`. Each command sets `func(args) -> int`, the
exit status."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from appliance import db
from appliance.errors import SiteFileError

EXIT_PROBLEMS = 2
"""The site file has problems; nothing was changed."""


def add_commands(subparsers: Any) -> None:
    apply = subparsers.add_parser(
        "apply",
        help="make the appliance match a site file",
        description="Make the appliance match a site file: create, change and delete "
        "tenants, hotlines, extensions, groups, prompts, schedules, menus, users and "
        "trunks. All or nothing: a file with problems changes nothing.",
    )
    apply.add_argument("file", type=Path, help="the site file (TOML); - reads standard input")
    apply.add_argument(
        "--dry-run",
        action="store_true",
        help="check the file and show what would change, change nothing",
    )
    apply.set_defaults(func=cmd_apply)

    export = subparsers.add_parser(
        "export",
        help="write the appliance's current state as a site file",
        description="Write the current state as a site file that `linebox apply` accepts.",
    )
    export.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write to FILE instead of standard output"
    )
    export.set_defaults(func=cmd_export)


def _prepare() -> None:
    db.configure()
    # piccolo reports migrations on stdout, where the export goes.
    with contextlib.redirect_stdout(sys.stderr):
        db.migrate()


def cmd_apply(args: argparse.Namespace) -> int:
    from appliance.sitefile.apply import apply_site

    if str(args.file) == "-":
        text, base_dir, source = sys.stdin.read(), Path.cwd(), "<stdin>"
    else:
        try:
            text = args.file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            print(f"linebox apply: cannot read {args.file}: {exc}", file=sys.stderr)
            return EXIT_PROBLEMS
        base_dir, source = args.file.parent, str(args.file)
    _prepare()
    try:
        result = asyncio.run(apply_site(text, base_dir, dry_run=args.dry_run, source=source))
    except SiteFileError as exc:
        print(f"{source}: {len(exc.problems)} problem(s), nothing was changed:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_PROBLEMS
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for change in result.changes:
        print(change)
    if not result.changed:
        print("no changes")
    elif args.dry_run:
        print("dry run: nothing was changed")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from appliance.sitefile.export import export_text

    _prepare()
    text = export_text()
    if args.output is None:
        sys.stdout.write(text)
        return 0
    # Write beside the target, then rename: an interrupted export never leaves
    # half a site file where the installer keeps the real one. mkstemp's 0600
    # suits a file holding SIP secrets and password hashes.
    target = args.output
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, target)
    return 0
