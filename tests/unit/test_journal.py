"""The call-event journal between Kamailio and the worker: nothing lost,
order kept, nothing waits."""

from __future__ import annotations

import os
from pathlib import Path

from appliance.worker import journal
from appliance.worker.journal import Journal, JournalReader


def reader(directory: Path, seen: list[tuple[str, ...]], fail_on: str = "") -> JournalReader:
    def handle(*args: str) -> None:
        if args and args[0] == fail_on:
            raise RuntimeError("the database is busy")
        seen.append(args)

    return JournalReader(directory, {"call_event": handle})


def test_lines_are_handled_once_in_order_and_survive_a_restart(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    for i in range(5):
        j.append("call_event", f"e{i}")
    seen: list[tuple[str, ...]] = []
    assert reader(tmp_path, seen).poll() == 5
    assert seen == [(f"e{i}",) for i in range(5)]
    # A restarted worker starts where the last one stopped.
    j.append("call_event", "e5")
    again: list[tuple[str, ...]] = []
    assert reader(tmp_path, again).poll() == 1
    assert again == [("e5",)]


def test_a_half_written_line_waits_for_its_end(tmp_path: Path) -> None:
    path = tmp_path / f"{os.getpid()}-1.jsonl"
    path.write_bytes(b'["call_event","a"]\n["call_event","b')
    seen: list[tuple[str, ...]] = []
    r = reader(tmp_path, seen)
    assert r.poll() == 1
    with path.open("ab") as f:
        f.write(b'"]\n')
    assert r.poll() == 1
    assert seen == [("a",), ("b",)]


def test_a_failing_task_is_retried_and_blocks_what_follows(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    for name in ("a", "b", "c"):
        j.append("call_event", name)
    seen: list[tuple[str, ...]] = []
    assert reader(tmp_path, seen, fail_on="b").poll() == 1
    assert seen == [("a",)]
    assert reader(tmp_path, seen).poll() == 2
    assert seen == [("a",), ("b",), ("c",)]


def test_junk_lines_are_skipped_not_fatal(tmp_path: Path) -> None:
    (tmp_path / f"{os.getpid()}-1.jsonl").write_bytes(b'not json\n["nope"]\n["call_event","x"]\n')
    seen: list[tuple[str, ...]] = []
    assert reader(tmp_path, seen).poll() == 3
    assert seen == [("x",)]


def test_files_of_gone_writers_are_deleted_once_read(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(journal, "ROTATE_BYTES", 60)
    j = Journal(tmp_path)
    for i in range(6):
        j.append("call_event", f"event-number-{i}")
    assert len(list(tmp_path.glob("*.jsonl"))) >= 2  # rotated
    seen: list[tuple[str, ...]] = []
    reader(tmp_path, seen).poll()
    assert [s[0] for s in seen] == [f"event-number-{i}" for i in range(6)]
    # Rotated files are gone; the writer's current one stays for more lines.
    assert len(list(tmp_path.glob("*.jsonl"))) == 1
    dead = tmp_path / "999999999-5.jsonl"
    dead.write_bytes(b'["call_event","late"]\n')
    reader(tmp_path, seen).poll()
    assert not dead.exists() and seen[-1] == ("late",)
