"""SIP over TLS is on only with a port and a certificate, and Kamailio is
started with its socket and files then."""

from __future__ import annotations

from pathlib import Path

from appliance import services
from appliance import settings as settings_mod


def load(tmp_path: Path, **env: str) -> settings_mod.Settings:
    environ = {"LINEBOX_CONFIG": str(tmp_path / "none.toml"), "LINEBOX_DATA_DIR": str(tmp_path)}
    return settings_mod.load(environ={**environ, **env})


def defines(settings: settings_mod.Settings) -> list[str]:
    argv = services.kamailio_service(settings).argv
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == "-A"]


def test_tls_is_off_without_a_certificate(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        LINEBOX_SIP_TLS_CERTIFICATE=str(tmp_path / "none.crt"),
        LINEBOX_SIP_TLS_KEY=str(tmp_path / "none.key"),
    )
    assert settings.sip.tls_port == 5061
    assert not settings.sip.tls
    assert not [d for d in defines(settings) if "TLS" in d]


def test_tls_is_on_with_a_certificate_and_its_key(tmp_path: Path) -> None:
    (tmp_path / "c.crt").write_text("cert")
    (tmp_path / "c.key").write_text("key")
    env = {
        "LINEBOX_SIP_ADDRESS": "192.0.2.10",
        "LINEBOX_SIP_TLS_CERTIFICATE": str(tmp_path / "c.crt"),
        "LINEBOX_SIP_TLS_KEY": str(tmp_path / "c.key"),
    }
    settings = load(tmp_path, **env)
    assert settings.sip.tls
    assert [d for d in defines(settings) if "TLS" in d] == [
        "WITH_TLS",
        "TLS_LISTEN=tls:192.0.2.10:5061",
        f'TLS_CERTIFICATE="{tmp_path / "c.crt"}"',
        f'TLS_KEY="{tmp_path / "c.key"}"',
    ]
    # Port 0 turns it off, certificate or not.
    assert not load(tmp_path, LINEBOX_SIP_TLS_PORT="0", **env).sip.tls
