"""`linebox backup` and `linebox restore`: the appliance's data in one
archive that a fresh image restores.

The archive (`.tar.gz`) holds:

- `manifest.json`: format, linebox version, when, from which host, what is in it;
- `linebox.sqlite`: a consistent snapshot of the database, taken with SQLite's
  online backup while the appliance runs;
- `secret_key`: so sessions survive a restore;
- `prompts/`, `voicemail/` and, unless `--no-recordings`, `recordings/`.

The queue, the published plan and the runtime files are not kept: restore
migrates the database to this version's schema and publishes the plan anew.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path, PurePosixPath

from appliance import db
from appliance.errors import LineboxError
from appliance.settings import Settings

FORMAT = "linebox-backup/1"
DATABASE = "linebox.sqlite"
SECRET_KEY = "secret_key"
DIRECTORIES = ("prompts", "voicemail")
RECORDINGS = "recordings"
UNITS = ("linebox-web.service", "linebox-kamailio.service", "linebox-worker.service")
"""What restore stops while it replaces the data (rtpengine holds none)."""


class BackupError(LineboxError):
    pass


@dataclass
class Manifest:
    format: str
    version: str
    created: str
    host: str
    recordings: bool
    contents: list[str] = field(default_factory=list)


def _version() -> str:
    try:
        return metadata.version("linebox")
    except metadata.PackageNotFoundError:
        return "unknown"


def _sqlite_file(settings: Settings) -> Path:
    path = db.sqlite_path(settings.database_url)
    if path is None:
        raise BackupError(
            "the database is not SQLite: back it up with the database's own tools "
            "(pg_dump), and the files with `linebox backup --files-only`"
        )
    return path


def _snapshot(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database (WAL included)."""
    with (
        contextlib.closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src,
        contextlib.closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)
    with contextlib.closing(sqlite3.connect(target)) as dst:
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file


def default_name(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now().astimezone()
    return f"linebox-{socket.gethostname()}-{now:%Y%m%d-%H%M%S}.tar.gz"


def create(
    settings: Settings, output: Path, recordings: bool = True, files_only: bool = False
) -> Manifest:
    data = settings.paths.data_dir
    manifest = Manifest(
        format=FORMAT,
        version=_version(),
        created=dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        host=socket.gethostname(),
        recordings=recordings,
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with tempfile.TemporaryDirectory() as work, tarfile.open(tmp, "w:gz") as tar:
            members: list[tuple[Path, str]] = []
            if not files_only:
                snapshot = Path(work) / DATABASE
                _snapshot(_sqlite_file(settings), snapshot)
                members.append((snapshot, DATABASE))
            if (data / SECRET_KEY).exists():
                members.append((data / SECRET_KEY, SECRET_KEY))
            for name in (*DIRECTORIES, *((RECORDINGS,) if recordings else ())):
                if (data / name).is_dir():
                    members.append((data / name, name))
            manifest.contents = [arcname for _, arcname in members]
            body = json.dumps(manifest.__dict__, ensure_ascii=False, indent=2).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size, info.mtime, info.mode = len(body), int(dt.datetime.now().timestamp()), 0o600
            tar.addfile(info, io.BytesIO(body))
            for path, arcname in members:
                tar.add(path, arcname=arcname, filter=_plain)
        os.chmod(tmp, 0o600)  # it holds password hashes and SIP secrets
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    return manifest


def _plain(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """Files and directories only, without the owner's names."""
    if not (info.isfile() or info.isdir()):
        return None
    info.uname = info.gname = ""
    info.uid = info.gid = 0
    return info


def read_manifest(archive: Path) -> Manifest:
    try:
        with tarfile.open(archive, "r:*") as tar:
            member = tar.extractfile("manifest.json")
            if member is None:
                raise KeyError("manifest.json")
            raw = json.loads(member.read())
    except (OSError, tarfile.TarError, KeyError, ValueError) as exc:
        raise BackupError(f"{archive} is not a linebox backup: {exc}") from None
    if raw.get("format") != FORMAT:
        raise BackupError(f"{archive}: unknown backup format {raw.get('format')!r}")
    return Manifest(**{k: raw[k] for k in Manifest.__dataclass_fields__ if k in raw})


def _safe_members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    allowed = {DATABASE, SECRET_KEY, *DIRECTORIES, RECORDINGS}
    for info in tar.getmembers():
        path = PurePosixPath(info.name)
        if info.name == "manifest.json":
            continue
        if path.is_absolute() or ".." in path.parts or path.parts[0] not in allowed:
            raise BackupError(f"refusing archive member {info.name!r}")
        if not (info.isfile() or info.isdir()):
            raise BackupError(f"refusing archive member {info.name!r} (not a file)")
        info.mode = (info.mode & 0o777) | (0o700 if info.isdir() else 0)
        yield info


@contextlib.contextmanager
def services_stopped(units: tuple[str, ...] = UNITS) -> Iterator[None]:
    """Stop the units that write the data, and start them again after."""
    managed = Path("/run/systemd/system").is_dir() and os.geteuid() == 0
    active = []
    if managed:
        for unit in units:
            state = subprocess.run(["systemctl", "is-active", unit], capture_output=True, text=True)
            if state.stdout.strip() == "active":
                active.append(unit)
        if active:
            subprocess.run(["systemctl", "stop", *active], check=True)
    try:
        yield
    finally:
        if active:
            subprocess.run(["systemctl", "start", *reversed(active)], check=False)


def restore(
    settings: Settings,
    archive: Path,
    after: Callable[[], None] | None = None,
    owner: tuple[int, int] | None = None,
) -> Manifest:
    """Replace the appliance's data with the archive's. What the archive
    does not hold (e.g. recordings of a backup made without them) is kept.
    `after` runs with the services still stopped (migrate, publish)."""
    manifest = read_manifest(archive)
    data = settings.paths.data_dir
    data.mkdir(parents=True, exist_ok=True)
    database = _sqlite_file(settings) if DATABASE in manifest.contents else None
    with tempfile.TemporaryDirectory(dir=data, prefix=".restore-") as work:
        staging = Path(work)
        with tarfile.open(archive, "r:*") as tar:
            members = list(_safe_members(tar))
            tar.extractall(staging, members=members)  # members checked above
        if owner is not None:
            for root, dirs, files in os.walk(staging):
                for name in [*dirs, *files]:
                    os.lchown(os.path.join(root, name), *owner)
        with services_stopped():
            if database is not None:
                for suffix in ("-wal", "-shm"):
                    Path(f"{database}{suffix}").unlink(missing_ok=True)
                os.replace(staging / DATABASE, database)
            if SECRET_KEY in manifest.contents:
                os.replace(staging / SECRET_KEY, data / SECRET_KEY)
            for name in (*DIRECTORIES, RECORDINGS):
                if name not in manifest.contents:
                    continue
                old = data / name
                if old.exists():
                    shutil.rmtree(old)
                os.replace(staging / name, old)
            if after is not None:
                after()
    return manifest
