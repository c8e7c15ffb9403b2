"""The voicemail inbox (`/api/v1/voicemail`, `/voicemail`) on a real SQLite
database with real files: tenant isolation, playing and downloading only
through the checked route, files outside the data directory never served
nor deleted, mark heard, delete."""

from __future__ import annotations

import wave
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from litestar.testing import TestClient

from appliance import settings as settings_mod
from appliance.tables import CallRecord, Tenant
from tests.unit.web_helpers import Session, csrf_of, setup_site
from web.app import create_app

BEIJING = timezone(timedelta(hours=8))
START = datetime(2026, 3, 2, 9, 0, tzinfo=BEIJING)


def tenant_id(slug: str) -> int:
    return int(Tenant.select(Tenant.id).where(Tenant.slug == slug).first().run_sync()["id"])


def write_wav(path: Path, seconds: float = 1.5) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x01\x00" * int(8000 * seconds))
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def client(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setattr(settings_mod, "_current", None)
    data_dir.mkdir()
    s = setup_site(data_dir, monkeypatch)
    acme, globex = tenant_id("acme"), tenant_id("globex")
    outside = write_wav(tmp_path / "outside" / "secret.wav")
    rows = []
    for i in range(3):
        rows.append(
            CallRecord(
                call_id=f"vm{i}@acme",
                tenant=acme,
                hotline="4001234567",
                caller=f"1380013000{i}",
                caller_region="浙江 杭州",
                started_at=START + timedelta(minutes=i),
                status="voicemail",
                voicemail=str(write_wav(data_dir / "voicemail/2026/03" / f"vm{i}.wav")),
                voicemail_heard=i == 0,
            )
        )
    rows += [
        CallRecord(
            call_id="plain@acme",
            tenant=acme,
            hotline="4001234567",
            caller="13900000000",
            started_at=START,
            status="answered",
        ),
        CallRecord(
            call_id="escape@acme",
            tenant=acme,
            hotline="4001234567",
            caller="13900000001",
            started_at=START - timedelta(days=1),
            status="voicemail",
            voicemail=str(data_dir / "voicemail" / ".." / ".." / "outside" / "secret.wav"),
        ),
        CallRecord(
            call_id="absolute@acme",
            tenant=acme,
            hotline="4001234567",
            caller="13900000002",
            started_at=START - timedelta(days=2),
            status="voicemail",
            voicemail=str(outside),
        ),
        CallRecord(
            call_id="g0@globex",
            tenant=globex,
            hotline="4007654321",
            caller="13700000000",
            started_at=START + timedelta(hours=1),
            status="voicemail",
            voicemail=str(write_wav(data_dir / "voicemail/2026/03/g0.wav")),
        ),
    ]
    CallRecord.insert(*rows).run_sync()
    with TestClient(app=create_app(s)) as c:
        yield c


def voicemail_of(call_id: str) -> str:
    row = CallRecord.select(CallRecord.voicemail).where(CallRecord.call_id == call_id).first()
    return str(row.run_sync()["voicemail"])


def test_owner_lists_their_messages_newest_first(client: TestClient) -> None:
    acme = Session(client, "owner@acme.example")

    body = acme.get("/api/v1/voicemail").json()
    assert [m["call_id"] for m in body["items"]] == [
        "vm2@acme",
        "vm1@acme",
        "vm0@acme",
        "escape@acme",
        "absolute@acme",
    ]
    assert body["total"] == 5 and body["new"] == 4
    assert body["items"][0]["duration_ms"] == 1500 and body["items"][0]["heard"] is False
    assert body["items"][3]["duration_ms"] == 0  # a file outside is not even read
    heard = acme.get("/api/v1/voicemail", params={"state": "heard"}).json()
    assert [m["call_id"] for m in heard["items"]] == ["vm0@acme"]
    bad = acme.get("/api/v1/voicemail", params={"state": "old"})
    assert bad.status_code == 400 and bad.json()["error_id"] == "invalid-request"


def test_another_tenants_message_is_not_found_everywhere(
    client: TestClient, data_dir: Path
) -> None:
    acme = Session(client, "owner@acme.example")

    assert "g0@globex" not in acme.get("/api/v1/voicemail").text
    for response in (
        acme.get("/api/v1/voicemail/g0@globex"),
        acme.get("/api/v1/voicemail/g0@globex/audio"),
        acme.get("/api/v1/voicemail/g0@globex/audio", params={"download": "true"}),
        acme.patch("/api/v1/voicemail/g0@globex", json={"heard": True}),
        acme.delete("/api/v1/voicemail/g0@globex"),
    ):
        assert response.status_code == 404
        assert response.json()["error_id"] == "voicemail-not-found"
    assert (data_dir / "voicemail/2026/03/g0.wav").is_file()
    assert voicemail_of("g0@globex")
    assert "13700000000" not in acme.get("/voicemail").text
    # A call without a message is no message either.
    assert acme.get("/api/v1/voicemail/plain@acme").status_code == 404

    globex = Session(client, "owner@globex.example")
    assert [m["call_id"] for m in globex.get("/api/v1/voicemail").json()["items"]] == ["g0@globex"]
    operator = Session(client, "root@linebox.example")
    assert operator.get("/api/v1/voicemail").json()["total"] == 6


def test_agents_have_no_inbox(client: TestClient) -> None:
    agent = Session(client, "agent@acme.example")

    assert agent.get("/api/v1/voicemail").status_code == 403
    assert agent.get("/api/v1/voicemail/vm1@acme/audio").status_code == 403
    assert 'href="/voicemail"' not in agent.get("/calls").text


def test_play_and_download_need_a_session(client: TestClient) -> None:
    acme = Session(client, "owner@acme.example")

    played = acme.get("/api/v1/voicemail/vm1@acme/audio")
    assert played.status_code == 200
    assert played.headers["content-type"] == "audio/wav"
    assert played.headers["content-disposition"].startswith("inline")
    assert played.content[:4] == b"RIFF" and len(played.content) == 44 + 8000 * 3
    saved = acme.get("/api/v1/voicemail/vm1@acme/audio", params={"download": "true"})
    assert saved.headers["content-disposition"].startswith("attachment")
    assert "voicemail-vm1_acme.wav" in saved.headers["content-disposition"]

    client.cookies.clear()
    assert client.get("/api/v1/voicemail/vm1@acme/audio").status_code == 401


def test_a_file_outside_the_data_directory_is_never_served_nor_deleted(
    client: TestClient, tmp_path: Path
) -> None:
    acme = Session(client, "owner@acme.example")
    secret = tmp_path / "outside" / "secret.wav"

    for call_id in ("escape@acme", "absolute@acme"):
        response = acme.get(f"/api/v1/voicemail/{call_id}/audio")
        assert response.status_code == 404, call_id
        assert response.json()["error_id"] == "voicemail-not-found"
        assert acme.delete(f"/api/v1/voicemail/{call_id}").status_code == 204
        assert voicemail_of(call_id) == ""
    assert secret.is_file()


def test_mark_heard_and_new_again(client: TestClient) -> None:
    acme = Session(client, "owner@acme.example")

    response = acme.patch("/api/v1/voicemail/vm2@acme", json={"heard": True})
    assert response.status_code == 200 and response.json()["heard"] is True
    assert acme.get("/api/v1/voicemail").json()["new"] == 3
    assert acme.patch("/api/v1/voicemail/vm2@acme", json={"heard": False}).json()["heard"] is False
    bad = acme.patch("/api/v1/voicemail/vm2@acme", json={"heard": "yes"})
    assert bad.status_code == 400
    # Without the CSRF token a session cannot change anything.
    refused = client.patch("/api/v1/voicemail/vm2@acme", json={"heard": True})
    assert refused.status_code == 403
    assert acme.get("/api/v1/voicemail/vm2@acme").json()["heard"] is False


def test_delete_removes_the_file_and_keeps_the_call(client: TestClient, data_dir: Path) -> None:
    acme = Session(client, "owner@acme.example")
    path = data_dir / "voicemail/2026/03/vm1.wav"

    assert acme.delete("/api/v1/voicemail/vm1@acme").status_code == 204
    assert not path.exists()
    assert voicemail_of("vm1@acme") == ""
    assert acme.get("/api/v1/voicemail/vm1@acme").status_code == 404
    assert acme.get("/api/v1/calls/vm1@acme").status_code == 200
    assert acme.delete("/api/v1/voicemail/vm1@acme").status_code == 404
    audit = acme.get("/api/v1/audit").json()["items"]
    assert [(e["action"], e["target"]) for e in audit if e["target"].startswith("voicemail:")] == [
        ("delete", "voicemail:vm1@acme")
    ]


def test_inbox_page_plays_marks_and_deletes(client: TestClient, data_dir: Path) -> None:
    acme = Session(client, "owner@acme.example")

    page = acme.get("/voicemail").text
    assert "<h1>语音信箱</h1>" in page
    assert 'src="/api/v1/voicemail/vm2%40acme/audio"' in page
    assert "0:01" in page and "未听" in page
    token = csrf_of(page)
    marked = client.post(
        "/voicemail/vm2%40acme/heard",
        data={"_csrf": token, "heard": "true"},
        headers={"Referer": "http://testserver.local/voicemail?state=new"},
        follow_redirects=False,
    )
    assert marked.status_code == 303 and marked.headers["location"] == "/voicemail?state=new"
    assert acme.get("/api/v1/voicemail/vm2@acme").json()["heard"] is True
    deleted = client.post(
        "/voicemail/vm2%40acme/delete", data={"_csrf": token}, follow_redirects=False
    )
    assert deleted.status_code == 303 and deleted.headers["location"] == "/voicemail"
    assert not (data_dir / "voicemail/2026/03/vm2.wav").exists()
    assert "vm2%40acme" not in acme.get("/voicemail").text
    assert acme.get("/voicemail", params={"state": "old"}).status_code == 400

    client.get("/lang/en")
    assert "<h1>Voicemail</h1>" in acme.get("/voicemail").text
