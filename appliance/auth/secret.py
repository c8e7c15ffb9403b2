"""The appliance's secret key: it keys session and CSRF hashes. From the
settings (`LINEBOX_WEB_SECRET_KEY`) or, when empty, generated once into the
data directory (mode 0600) so that restarts keep everyone logged in."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from appliance.settings import Settings

_cache: dict[Path, bytes] = {}


def secret_key(settings: Settings) -> bytes:
    if settings.web.secret_key:
        return settings.web.secret_key.encode()
    path = settings.paths.data_dir / "secret_key"
    if path in _cache:
        return _cache[path]
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two web workers starting together agree on one key.
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
    key = path.read_text().strip().encode()
    if len(key) < 32:
        raise RuntimeError(f"{path}: the secret key is too short; delete the file to regenerate")
    _cache[path] = key
    return key
