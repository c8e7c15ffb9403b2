"""`linebox backup` / `linebox restore`: one archive, restored intact."""

from __future__ import annotations

import io
import sqlite3
import tarfile
from pathlib import Path

import pytest
from piccolo.engine.base import Engine

from appliance.ops import backup
from appliance.settings import Settings


def _tenants(settings: Settings) -> list[str]:
    with sqlite3.connect(settings.paths.data_dir / "linebox.sqlite") as conn:
        return [row[0] for row in conn.execute("SELECT slug FROM tenant ORDER BY slug")]


def _add_tenant(settings: Settings, slug: str) -> None:
    with sqlite3.connect(settings.paths.data_dir / "linebox.sqlite") as conn:
        conn.execute("INSERT INTO tenant (slug, name) VALUES (?, ?)", (slug, slug))


@pytest.fixture
def data(tmp_settings: Settings, database: Engine) -> Settings:
    _add_tenant(tmp_settings, "acme")
    root = tmp_settings.paths.data_dir
    for name, body in (
        ("prompts/acme/welcome.wav", b"RIFF-welcome"),
        ("voicemail/acme/vm-1.wav", b"RIFF-voicemail"),
        ("recordings/2026/11/call-1.wav", b"RIFF-recording"),
    ):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(body)
    (root / "secret_key").write_text("k" * 64)
    return tmp_settings


def test_restore_brings_back_database_prompts_voicemail_and_recordings(
    data: Settings, tmp_path: Path
) -> None:
    archive = tmp_path / "out" / "backup.tar.gz"
    manifest = backup.create(data, archive)
    assert manifest.contents == [
        "linebox.sqlite", "secret_key", "prompts", "voicemail", "recordings"
    ]  # fmt: skip
    assert archive.stat().st_mode & 0o777 == 0o600

    root = data.paths.data_dir
    _add_tenant(data, "later")
    (root / "recordings/2026/11/call-1.wav").unlink()
    (root / "prompts/acme/welcome.wav").write_bytes(b"changed")

    restored = backup.restore(data, archive)
    assert restored.host == manifest.host
    assert _tenants(data) == ["acme"]
    assert (root / "recordings/2026/11/call-1.wav").read_bytes() == b"RIFF-recording"
    assert (root / "prompts/acme/welcome.wav").read_bytes() == b"RIFF-welcome"
    assert (root / "voicemail/acme/vm-1.wav").read_bytes() == b"RIFF-voicemail"


def test_recordings_can_be_left_out_and_are_then_kept_on_restore(
    data: Settings, tmp_path: Path
) -> None:
    archive = tmp_path / "small.tar.gz"
    manifest = backup.create(data, archive, recordings=False)
    assert "recordings" not in manifest.contents
    with tarfile.open(archive) as tar:
        assert not [n for n in tar.getnames() if n.startswith("recordings")]
    backup.restore(data, archive)
    assert (data.paths.data_dir / "recordings/2026/11/call-1.wav").exists()


def test_after_runs_with_the_data_in_place(data: Settings, tmp_path: Path) -> None:
    archive = tmp_path / "b.tar.gz"
    backup.create(data, archive)
    seen = []
    backup.restore(data, archive, after=lambda: seen.append(_tenants(data)))
    assert seen == [["acme"]]


def test_an_archive_that_is_not_a_backup_is_refused(data: Settings, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.tar.gz"
    bogus.write_bytes(b"not a tar")
    with pytest.raises(backup.BackupError, match="not a linebox backup"):
        backup.restore(data, bogus)
    assert _tenants(data) == ["acme"]


def test_members_outside_the_data_are_refused(data: Settings, tmp_path: Path) -> None:
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        for name, body in (
            ("manifest.json", b'{"format": "linebox-backup/1", "version": "x", "created": "x",'
             b' "host": "x", "recordings": true, "contents": ["prompts"]}'),
            ("prompts/../../escape", b"x"),
        ):  # fmt: skip
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    with pytest.raises(backup.BackupError, match="refusing"):
        backup.restore(data, evil)
    assert not (data.paths.data_dir.parent / "escape").exists()
