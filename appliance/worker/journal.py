"""The call-event journal: how Kamailio hands call events to the worker
without ever waiting for it.

Each Kamailio process appends one line per event to a file of its own in
`<data>/events/` (one `write()` of a few hundred bytes: no lock, no database,
no fsync). The worker reads every file from where it stopped, hands each
line to its task in order, and remembers how far it got. A crash of either
side loses nothing: lines written stay in the page cache and reach the disk,
and lines read but not yet remembered are read again, which the tasks
tolerate (merging an event twice changes nothing).

A line is a JSON array: the task's name, then its arguments.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

log = logging.getLogger(__name__)

ROTATE_BYTES = 16 * 1024 * 1024
"""A writer starts a new file past this size; the reader deletes read files."""


class Journal:
    """The writing end, one per process (Kamailio's workers)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._fd: int | None = None
        self._pid = 0
        self._size = 0

    def _open(self) -> int:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{os.getpid()}-{time.time_ns()}.jsonl"
        self._fd = os.open(self.directory / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._pid, self._size = os.getpid(), 0
        return self._fd

    def append(self, task: str, *args: Any) -> None:
        line = msgspec.json.encode([task, *args]) + b"\n"
        fd = self._fd if self._fd is not None and self._pid == os.getpid() else self._open()
        os.write(fd, line)
        self._size += len(line)
        if self._size > ROTATE_BYTES:
            os.close(fd)
            self._fd = None


class JournalReader:
    """The reading end, in the worker: `poll()` hands every new line to its
    task and returns how many it handled."""

    def __init__(self, directory: Path, tasks: dict[str, Callable[..., Any]]) -> None:
        self.directory = directory
        self.tasks = tasks
        self.state_file = directory / ".offsets.json"
        self.offsets: dict[str, int] = {}
        if self.state_file.exists():
            try:
                self.offsets = json.loads(self.state_file.read_text())
            except (OSError, ValueError):
                log.warning("journal offsets unreadable: reading every file again")

    def _save(self) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.offsets))
        os.replace(tmp, self.state_file)

    def poll(self, batch: int = 500) -> int:
        if not self.directory.is_dir():
            return 0
        handled = 0
        files = sorted(self.directory.glob("*.jsonl"), key=_written_order)
        newest_of: dict[str, Path] = {}
        for path in files:
            newest_of[path.name.split("-", 1)[0]] = path
        for path in files:
            handled += self._read(path, batch - handled)
            if handled >= batch:
                break
            writer = path.name.split("-", 1)[0]
            done = self.offsets.get(path.name, 0) >= path.stat().st_size
            if done and (newest_of[writer] != path or not _alive(int(writer))):
                # Read to the end, and its writer has moved on or is gone.
                path.unlink(missing_ok=True)
                self.offsets.pop(path.name, None)
                self._save()
        return handled

    def _read(self, path: Path, limit: int) -> int:
        offset = self.offsets.get(path.name, 0)
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(1024 * 1024)
        handled = 0
        start = 0
        while handled < limit:
            end = data.find(b"\n", start)
            if end < 0:
                break  # a line still being written
            line = data[start:end]
            start = end + 1
            if line.strip():
                try:
                    task, *args = msgspec.json.decode(line)
                    handler = self.tasks[task]
                except (msgspec.DecodeError, ValueError, KeyError):
                    log.error("journal %s: skipping a line that is not an event: %r", path, line)
                else:
                    try:
                        handler(*args)
                    except Exception:
                        # Keep the order: stop here and try this line again later.
                        log.exception("journal %s: %s failed; will retry", path.name, task)
                        start -= len(line) + 1
                        break
                handled += 1
        if start:
            self.offsets[path.name] = offset + start
            self._save()
        return handled


def _written_order(path: Path) -> tuple[int, str]:
    try:
        return (int(path.stem.split("-", 1)[1]), path.name)
    except (IndexError, ValueError):
        return (0, path.name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
