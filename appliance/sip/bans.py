"""Bans that outlive Kamailio.

Kamailio keeps the bans in force in its shared `bans` htable, which a
restart empties: an attacker would get a fresh set of tries. So each ban is
also appended to a file (one line, `address expiry`, written at once by the
process that bans, so a SIGKILL loses nothing), and the first message a
restarted Kamailio receives loads the bans still in force back into the table
and rewrites the file with only those.
"""

from __future__ import annotations

import os
from pathlib import Path


def record(path: Path, address: str, until: float) -> None:
    """Append the ban of `address` until `until` (unix time)."""
    line = f"{address} {int(until)}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line)  # one short write: lines of two processes never mix
    finally:
        os.close(fd)


def load(path: Path, now: float) -> dict[str, int]:
    """The bans in force at `now`: address → expiry. A missing file is no
    bans; a line that is not `address expiry` is skipped."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return {}
    bans: dict[str, int] = {}
    for line in text.splitlines():
        address, _, until = line.partition(" ")
        if not address or not until.isdigit():
            continue
        if int(until) > now:
            bans[address] = max(bans.get(address, 0), int(until))
    return bans


def rewrite(path: Path, bans: dict[str, int]) -> None:
    """Replace the file with `bans` (atomically), dropping the expired ones."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{a} {u}\n" for a, u in sorted(bans.items())), encoding="utf-8")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
