"""The appliance's first boot: everything that must differ between two
appliances made from the same image, made once, with nothing typed.

- the web session key (`<data>/secret_key`, the file `appliance.auth` reads);
- a TLS certificate for HTTPS and SIP TLS (`/etc/linebox/tls/`);
- SSH host keys, when SSH is installed and has none;
- an operator account `admin` with a random password, shown once on the
  console (and at the login prompt) with the web address.

Each step is skipped when its result exists, so a first boot that was
interrupted finishes on the next one; the marker `<data>/.firstboot-done`
makes the unit skip later boots.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from appliance.settings import Settings

SERVICE_USER = "linebox"
TLS_DIR = Path("/etc/linebox/tls")
ISSUE_FILE = Path("/etc/issue.d/linebox.issue")
ADMIN_LOGIN = "admin"
MARKER = ".firstboot-done"

# No 0/O, 1/l/I: the password is read off a console and typed.
_ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


@dataclass
class FirstBoot:
    settings: Settings
    tls_dir: Path = TLS_DIR
    issue_file: Path = ISSUE_FILE
    user: str = SERVICE_USER

    @property
    def data_dir(self) -> Path:
        return self.settings.paths.data_dir

    @property
    def marker(self) -> Path:
        return self.data_dir / MARKER

    def _owner(self) -> tuple[int, int] | None:
        try:
            pw = pwd.getpwnam(self.user)
        except KeyError:
            return None  # a checkout: everything belongs to whoever runs it
        return pw.pw_uid, pw.pw_gid

    def _chown(self, path: Path, group_only: bool = False) -> None:
        owner = self._owner()
        if owner is None or os.geteuid() != 0:
            return
        os.chown(path, 0 if group_only else owner[0], owner[1])

    # --- the steps ------------------------------------------------------------

    def session_key(self) -> bool:
        path = self.data_dir / "secret_key"
        if path.exists():
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        self._chown(path)
        return True

    def certificate(self, address: str) -> bool:
        """A self-signed certificate (ECDSA P-256, ten years) naming the host
        and its address; replace the two files with a real one any time."""
        key, cert = self.tls_dir / "linebox.key", self.tls_dir / "linebox.crt"
        if key.exists() and cert.exists():
            return False
        self.tls_dir.mkdir(parents=True, exist_ok=True)
        host = socket.gethostname()
        names = [f"DNS:{host}", "DNS:localhost", "IP:127.0.0.1"]
        if address and address != "127.0.0.1":
            names.append(f"IP:{address}")
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "ec",
                "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-days", "3650",
                "-subj", f"/O=linebox/CN={host}",
                "-addext", "subjectAltName=" + ",".join(names),
                "-keyout", str(key), "-out", str(cert),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        os.chmod(key, 0o640)
        os.chmod(cert, 0o644)
        self._chown(key, group_only=True)
        self._chown(self.tls_dir, group_only=True)
        return True

    def ssh_host_keys(self) -> bool:
        keygen = shutil.which("ssh-keygen")
        ssh = Path("/etc/ssh")
        if not keygen or not ssh.is_dir() or list(ssh.glob("ssh_host_*_key")):
            return False
        subprocess.run([keygen, "-A"], check=True, capture_output=True)
        return True

    def admin(self) -> str | None:
        """Create the operator `admin` with a new password and return the
        password; None when an operator exists already."""
        from argon2 import PasswordHasher

        from appliance import db
        from appliance.tables import User

        db.configure()
        db.migrate()
        if User.exists().where(User.role == "operator").run_sync():
            return None
        password = "-".join("".join(secrets.choice(_ALPHABET) for _ in range(4)) for _ in range(4))
        User.insert(
            User(
                tenant=None,
                login=ADMIN_LOGIN,
                password_hash=PasswordHasher().hash(password),
                role="operator",
            )
        ).run_sync()
        return password

    def own_data(self) -> None:
        """Whatever this root process created in the data directory belongs
        to the service user."""
        owner = self._owner()
        if owner is None or os.geteuid() != 0:
            return
        for root, dirs, files in os.walk(self.data_dir):
            for name in [*dirs, *files]:
                os.lchown(os.path.join(root, name), *owner)
        os.chown(self.data_dir, *owner)

    def write_issue(self, password: str | None) -> None:
        """The login prompt shows the web address (agetty fills in `\\4`, the
        current IPv4 address) and, until `linebox firstboot --forget`, the
        first admin password."""
        port = self.settings.web.port
        web = "https://\\4/" if port == 443 else f"https://\\4:{port}/"
        lines = [
            "linebox PBX appliance",
            f"  web portal        {web}",
            f"  SIP               \\4:{self.settings.sip.port} (UDP and TCP)",
        ]
        if password:
            lines.append(
                f"  first login       {ADMIN_LOGIN} / {password}  (change it after logging in)"
            )
        self.issue_file.parent.mkdir(parents=True, exist_ok=True)
        self.issue_file.write_text("\n".join(lines) + "\n\n", encoding="utf-8")

    def run(self, address: str) -> list[str]:
        """Every step; returns what it did, in words."""
        done = []
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.session_key():
            done.append("made the web session key")
        if self.certificate(address):
            done.append(f"made a TLS certificate in {self.tls_dir}")
        if self.ssh_host_keys():
            done.append("made SSH host keys")
        password = self.admin()
        self.own_data()
        port = self.settings.web.port
        web = f"https://{address}/" if port == 443 else f"https://{address}:{port}/"
        if password:
            done.append(f"created the operator {ADMIN_LOGIN}")
            self.write_issue(password)
            banner = [
                "",
                "=" * 64,
                "  linebox is ready",
                f"  web portal:  {web}",
                f"  log in as:   {ADMIN_LOGIN}",
                f"  password:    {password}",
                "  (shown once: change it after logging in)",
                "=" * 64,
                "",
            ]
            done.extend(banner)
        elif not self.issue_file.exists():
            self.write_issue(None)
        self.marker.touch()
        self._chown(self.marker)
        return done

    def forget(self) -> None:
        """Take the first password off the login prompt."""
        self.write_issue(None)
