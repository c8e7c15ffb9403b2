"""appliance.auth: passwords, lock-out, sessions, API tokens and TOTP against
a real SQLite database."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from appliance.auth import core, totp
from appliance.settings import Settings
from appliance.tables import ApiToken, LoginThrottle, User, UserAuth, WebSession
from tests.unit.web_helpers import PASSWORD, setup_site

T = TypeVar("T")
KEY = b"k" * 32


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    from appliance import settings as settings_mod

    monkeypatch.setattr(settings_mod, "_current", None)
    return setup_site(tmp_path, monkeypatch)


def user_id(login: str) -> int:
    return int(User.select(User.id).where(User.login == login).first().run_sync()["id"])


def test_login_by_email(site: Settings) -> None:
    assert run(core.login("owner@acme.example", PASSWORD)) == user_id("owner@acme.example")


def test_login_by_hotline_number_is_the_tenants_owner(site: Settings) -> None:
    assert run(core.login("4006668888", PASSWORD)) == user_id("owner@acme.example")
    assert run(core.login("4007654321", PASSWORD)) == user_id("owner@globex.example")


def test_hotline_number_never_logs_in_an_agent_or_another_tenant(site: Settings) -> None:
    with pytest.raises(core.LoginFailed):
        run(core.login("4007654321", "wrong password"))
    # The agent of acme has the same password, but a hotline number names owners only.
    User.update({User.role: "agent"}).where(User.login == "owner@acme.example").run_sync()
    with pytest.raises(core.LoginFailed):
        run(core.login("4001234567", PASSWORD))


def test_wrong_password_and_unknown_login_fail_alike(site: Settings) -> None:
    with pytest.raises(core.LoginFailed) as wrong:
        run(core.login("owner@acme.example", "not the password"))
    with pytest.raises(core.LoginFailed) as unknown:
        run(core.login("nobody@nowhere.example", PASSWORD))
    assert wrong.value.detail == unknown.value.detail


def test_five_failures_lock_the_login_even_for_the_right_password(site: Settings) -> None:
    for _ in range(core.MAX_FAILURES):
        with pytest.raises(core.LoginFailed):
            run(core.login("owner@acme.example", "guess"))
    with pytest.raises(core.LockedOut):
        run(core.login("owner@acme.example", PASSWORD))
    # The user is locked too, so the hotline number does not open a second door.
    with pytest.raises(core.LockedOut):
        run(core.login("4001234567", PASSWORD))
    # Another user is not affected.
    assert run(core.login("owner@globex.example", PASSWORD))


def test_lock_ends_after_its_time(site: Settings) -> None:
    for _ in range(core.MAX_FAILURES):
        with pytest.raises(core.LoginFailed):
            run(core.login("owner@acme.example", "guess"))
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    LoginThrottle.update({LoginThrottle.locked_until: past}, force=True).run_sync()
    UserAuth.update({UserAuth.locked_until: past}, force=True).run_sync()

    assert run(core.login("owner@acme.example", PASSWORD))


def test_unknown_logins_are_locked_too(site: Settings) -> None:
    for _ in range(core.MAX_FAILURES):
        with pytest.raises(core.LoginFailed):
            run(core.login("ghost@nowhere.example", "guess"))
    with pytest.raises(core.LockedOut):
        run(core.login("ghost@nowhere.example", "guess"))


def test_success_clears_the_failure_count(site: Settings) -> None:
    for _ in range(core.MAX_FAILURES - 1):
        with pytest.raises(core.LoginFailed):
            run(core.login("owner@acme.example", "guess"))
    run(core.login("owner@acme.example", PASSWORD))
    for _ in range(core.MAX_FAILURES - 1):
        with pytest.raises(core.LoginFailed):
            run(core.login("owner@acme.example", "guess"))
    assert run(core.login("owner@acme.example", PASSWORD))


def test_session_stores_only_a_keyed_hash_and_resolves_to_the_user(site: Settings) -> None:
    uid = user_id("owner@acme.example")
    token = run(core.create_session(KEY, uid))

    stored = WebSession.select(WebSession.token_hash).run_sync()
    assert [r["token_hash"] for r in stored] == [core.keyed_hash(KEY, token)]
    assert token not in str(stored)
    principal = run(core.principal_for_session(KEY, token))
    assert principal is not None
    assert (principal.role, principal.tenant_slug, principal.via) == ("owner", "acme", "session")
    # Another key (another appliance, a stolen database) opens nothing.
    assert run(core.principal_for_session(b"x" * 32, token)) is None


def test_expired_and_deleted_sessions_open_nothing(site: Settings) -> None:
    uid = user_id("owner@acme.example")
    token = run(core.create_session(KEY, uid))
    WebSession.update(
        {WebSession.expires_at: dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)}, force=True
    ).run_sync()
    assert run(core.principal_for_session(KEY, token)) is None

    token = run(core.create_session(KEY, uid))
    run(core.delete_session(KEY, token))
    assert run(core.principal_for_session(KEY, token)) is None


def test_operator_has_no_tenant_and_agent_has_their_extension(site: Settings) -> None:
    operator = run(
        core.principal_for_session(
            KEY, run(core.create_session(KEY, user_id("root@linebox.example")))
        )
    )
    assert operator is not None and operator.is_operator and operator.tenant_id is None

    agent_id = user_id("agent@acme.example")
    UserAuth.insert(UserAuth(user=agent_id, extension="1001")).run_sync()
    agent = run(core.principal_for_session(KEY, run(core.create_session(KEY, agent_id))))
    assert agent is not None and (agent.role, agent.extension) == ("agent", "1001")


def test_agent_cannot_claim_another_tenants_extension(site: Settings) -> None:
    agent_id = user_id("agent@acme.example")
    UserAuth.insert(UserAuth(user=agent_id, extension="2001")).run_sync()
    agent = run(core.principal_for_session(KEY, run(core.create_session(KEY, agent_id))))
    assert agent is not None and agent.extension == ""


def test_password_change_checks_old_and_strength_and_ends_other_sessions(site: Settings) -> None:
    uid = user_id("owner@acme.example")
    mine = run(core.create_session(KEY, uid))
    other = run(core.create_session(KEY, uid))

    with pytest.raises(core.WrongPassword):
        run(core.change_password(KEY, uid, "wrong", "a much better one", keep_session=mine))
    for weak in ("short", "12345678901234", "owner@acme.example"):
        with pytest.raises(core.WeakPassword):
            run(core.change_password(KEY, uid, PASSWORD, weak, keep_session=mine))
    run(core.change_password(KEY, uid, PASSWORD, "a much better one", keep_session=mine))

    assert run(core.principal_for_session(KEY, mine)) is not None
    assert run(core.principal_for_session(KEY, other)) is None
    assert run(core.login("owner@acme.example", "a much better one")) == uid
    with pytest.raises(core.LoginFailed):
        run(core.login("owner@acme.example", PASSWORD))


def test_api_token_hashed_usable_and_revocable(site: Settings) -> None:
    uid = user_id("owner@acme.example")
    info, secret = run(core.create_api_token(KEY, uid, "crm sync"))

    assert secret.startswith("lbt_") and info.prefix == secret[:10]
    row = ApiToken.select().first().run_sync()
    assert row["token_hash"] == core.keyed_hash(KEY, secret) and secret not in str(row)
    principal = run(core.principal_for_token(KEY, secret))
    assert principal is not None and principal.via == "token" and principal.tenant_slug == "acme"

    other = user_id("owner@globex.example")
    assert run(core.revoke_api_token(other, info.id)) is False  # not theirs
    assert run(core.principal_for_token(KEY, secret)) is not None
    assert run(core.revoke_api_token(uid, info.id)) is True
    assert run(core.principal_for_token(KEY, secret)) is None
    assert run(core.principal_for_token(KEY, secret[:-1] + "x")) is None


def test_a_token_of_a_user_an_operator_locked_does_not_work(site: Settings) -> None:
    uid = user_id("owner@acme.example")
    _, secret = run(core.create_api_token(KEY, uid, "crm sync"))
    run(core._auth_row(uid))  # the user's row, made on first need
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=365 * 100)
    UserAuth.update({UserAuth.locked_until: later}).where(UserAuth.user == uid).run_sync()
    assert run(core.principal_for_token(KEY, secret)) is None
    # A brute-force lock-out of the password (minutes) leaves tokens working.
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=15)
    UserAuth.update({UserAuth.locked_until: soon}).where(UserAuth.user == uid).run_sync()
    assert run(core.principal_for_token(KEY, secret)) is not None


def test_totp_codes_follow_rfc6238_and_work_once() -> None:
    # RFC 6238 appendix B, SHA-1, secret "12345678901234567890", 8 digits → last 6.
    import base64

    secret = base64.b32encode(b"12345678901234567890").decode()
    assert totp.code_at(secret, 59 // 30) == "287082"
    assert totp.code_at(secret, 1111111109 // 30) == "081804"

    step = totp.verify(secret, "081804", at=1111111109)
    assert step == 1111111109 // 30
    assert totp.verify(secret, "081804", last_step=step, at=1111111109) is None
    assert totp.verify(secret, "000000", at=1111111109) is None
    assert totp.verify(secret, "abc", at=1111111109) is None


def test_user_totp_is_checked_once(site: Settings) -> None:
    uid = user_id("owner@acme.example")
    secret = totp.new_secret()
    run(core.set_totp(uid, secret))
    assert run(core.totp_required(uid))

    code = totp.code_at(secret, totp.now_step())
    assert run(core.verify_totp(uid, code))
    assert not run(core.verify_totp(uid, code))  # replayed


def test_a_tenants_user_named_operator_is_only_an_owner(site: Settings) -> None:
    uid = user_id("owner@acme.example")
    User.update({User.role: "operator"}).where(User.login == "owner@acme.example").run_sync()
    principal = run(core.principal_for_session(KEY, run(core.create_session(KEY, uid))))
    assert principal is not None
    assert (principal.role, principal.tenant_slug) == ("owner", "acme")
    assert principal.tenant_id is not None
