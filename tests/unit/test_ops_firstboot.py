"""The first boot makes an appliance's own secrets and its operator."""

from __future__ import annotations

import re
from pathlib import Path

from argon2 import PasswordHasher
from piccolo.engine.base import Engine

from appliance.ops.firstboot import FirstBoot
from appliance.settings import Settings
from appliance.tables import User


def test_first_boot_makes_secrets_and_an_operator_once(
    tmp_settings: Settings, database: Engine, tmp_path: Path
) -> None:
    job = FirstBoot(tmp_settings, tls_dir=tmp_path / "tls", issue_file=tmp_path / "issue")
    said = "\n".join(job.run("192.0.2.10"))
    password = re.search(r"password:\s+(\S+)", said).group(1)  # type: ignore[union-attr]
    assert f"https://192.0.2.10:{tmp_settings.web.port}/" in said

    admin = User.objects().where(User.role == "operator").first().run_sync()
    assert admin is not None and admin.login == "admin" and admin.tenant is None
    assert PasswordHasher().verify(admin.password_hash, password)
    assert len((tmp_settings.paths.data_dir / "secret_key").read_text()) == 64
    cert = (tmp_path / "tls" / "linebox.crt").read_text()
    assert "BEGIN CERTIFICATE" in cert
    assert password in (tmp_path / "issue").read_text()
    assert (tmp_settings.paths.data_dir / ".firstboot-done").exists()

    again = job.run("192.0.2.10")
    assert again == []  # nothing new, and no second password
    assert User.count().where(User.role == "operator").run_sync() == 1

    job.forget()
    assert password not in (tmp_path / "issue").read_text()
