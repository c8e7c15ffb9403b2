"""Prompts (`/api/v1/prompts`, `/prompts`) on a real SQLite database with the
real sox and espeak-ng: tenant isolation, uploads of audio (and of things that
are not), text spoken, deletion refused while something plays the prompt, and
the routing plan published again after each change."""

from __future__ import annotations

import asyncio
import json
import subprocess
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from appliance import settings as settings_mod
from appliance.media.prompts import render_tenant_prompts
from appliance.tables import Prompt
from tests.unit.web_helpers import SITE, Session, csrf_of, setup_site
from web.app import create_app

# acme: "welcome" (spoken, the ringback of 4006668888) and "spare" (spoken,
# unused); globex: "hello".
PROMPT_SITE = (
    SITE.replace(
        'name = "Acme service"\n',
        'name = "Acme service"\nringback = "welcome"\n',
    )
    .replace(
        '[[tenants]]\nslug = "globex"',
        '[[tenants.prompts]]\nname = "welcome"\ntext = "欢迎致电艾克米"\n\n'
        '[[tenants.prompts]]\nname = "spare"\ntext = "Thank you"\n\n'
        '[[tenants]]\nslug = "globex"',
    )
    .rstrip()
    + '\n\n[[tenants.prompts]]\nname = "hello"\ntext = "Hello from Globex"\n'
)


def sox(*args: str | Path) -> None:
    subprocess.run(["sox", *map(str, args)], check=True, capture_output=True)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def client(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setattr(settings_mod, "_current", None)
    data_dir.mkdir()
    s = setup_site(data_dir, monkeypatch, PROMPT_SITE)
    # The database is a copy made in another test's directory: speak the
    # prompts into this one's (espeak-ng's renderings are cached).
    assert asyncio.run(render_tenant_prompts()) == []
    with TestClient(app=create_app(s)) as c:
        yield c


def prompt_id(name: str) -> int:
    return int(Prompt.select(Prompt.id).where(Prompt.name == name).first().run_sync()["id"])


def plan_prompts(data_dir: Path) -> dict[str, Any]:
    plan = json.loads((data_dir / "plan" / "plan.json").read_text())
    return {slug: t["prompts"] for slug, t in plan["tenants"].items()}


def files_in(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_owner_sees_their_prompts_and_not_anothers(client: TestClient) -> None:
    acme = Session(client, "owner@acme.example")

    body = acme.get("/api/v1/prompts").json()
    assert [(p["name"], p["kind"], p["tenant"]) for p in body] == [
        ("welcome", "text", "acme"),
        ("spare", "text", "acme"),
    ]
    assert body[0]["used_by"] == ["hotline 4006668888 ringback"] and body[1]["used_by"] == []
    assert body[0]["duration_ms"] > 500
    hello = prompt_id("hello")
    for response in (
        acme.get(f"/api/v1/prompts/{hello}"),
        acme.get(f"/api/v1/prompts/{hello}/audio"),
        acme.delete(f"/api/v1/prompts/{hello}"),
    ):
        assert response.status_code == 404
        assert response.json()["error_id"] == "prompt-not-found"
    assert "hello" not in acme.get("/prompts").text
    assert Prompt.exists().where(Prompt.name == "hello").run_sync()
    # Nor can an owner create one for another tenant.
    other = acme.post("/api/v1/prompts/text", json={"name": "x", "text": "hi", "tenant": "globex"})
    assert other.status_code == 404 and other.json()["error_id"] == "tenant-not-found"

    operator = Session(client, "root@linebox.example")
    assert len(operator.get("/api/v1/prompts").json()) == 3
    assert Session(client, "agent@acme.example").get("/api/v1/prompts").status_code == 403


def test_listen_to_a_prompt(client: TestClient) -> None:
    acme = Session(client, "owner@acme.example")

    audio = acme.get(f"/api/v1/prompts/{prompt_id('welcome')}/audio")
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
    assert audio.content[:4] == b"RIFF"
    client.cookies.clear()
    assert client.get(f"/api/v1/prompts/{prompt_id('welcome')}/audio").status_code == 401


def test_an_upload_becomes_an_8khz_prompt_in_the_plan(
    client: TestClient, data_dir: Path, tmp_path: Path
) -> None:
    acme = Session(client, "owner@acme.example")
    src = tmp_path / "greeting.bin"  # the name says nothing; the content does
    sox("-n", "-r", "44100", "-c", "2", "-t", "wav", src, "synth", "2", "sine", "440", "gain", "-6")

    response = acme.post(
        "/api/v1/prompts",
        data={"name": "greeting"},
        files={"file": ("greeting.bin", src.read_bytes(), "application/octet-stream")},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["name"], body["kind"], body["tenant"]) == ("greeting", "file", "acme")
    assert 1800 < body["duration_ms"] < 2200
    path = data_dir / "prompts" / "acme" / "greeting.wav"
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
    assert plan_prompts(data_dir)["acme"]["greeting"] == str(path)
    assert acme.get(f"/api/v1/prompts/{body['id']}/audio").content == path.read_bytes()


def test_bad_uploads_change_nothing(client: TestClient, data_dir: Path, tmp_path: Path) -> None:
    acme = Session(client, "owner@acme.example")
    good = tmp_path / "good.wav"
    sox("-n", "-r", "8000", "-c", "1", good, "synth", "1", "sine", "300")
    long_wav = tmp_path / "long.wav"
    sox("-n", "-r", "8000", "-e", "u-law", "-c", "1", long_wav, "synth", "660", "sine", "300")
    silent = tmp_path / "silent.wav"
    sox("-n", "-r", "8000", "-c", "1", silent, "trim", "0", "2")
    uploads: dict[str, tuple[str, bytes]] = {
        "empty": ("empty.wav", b""),
        "text": ("notes.wav", b"this is not audio at all\n" * 40),
        "truncated": ("cut.wav", good.read_bytes()[:4000]),
        "long": ("long.wav", long_wav.read_bytes()),
        "silent": ("silent.wav", silent.read_bytes()),
        "large": ("large.mp3", b"\0" * (20 * 1024 * 1024 + 1)),
    }
    before_files = files_in(data_dir / "prompts")
    before_plan = (data_dir / "plan" / "plan.json").read_bytes()
    for name, (filename, content) in uploads.items():
        response = acme.post(
            "/api/v1/prompts", data={"name": name}, files={"file": (filename, content)}
        )
        assert response.status_code == 400, (name, response.text)
        assert response.json()["error_id"] == "invalid-prompt", name
    assert "20 MB" in response.json()["detail"]
    missing = acme.post("/api/v1/prompts", data={"name": "nofile"})
    assert missing.status_code == 400
    assert not Prompt.exists().where(Prompt.name.is_in([*uploads, "nofile"])).run_sync()
    assert files_in(data_dir / "prompts") == before_files
    assert (data_dir / "plan" / "plan.json").read_bytes() == before_plan


def test_names_are_checked_before_anything_is_written(
    client: TestClient, data_dir: Path, tmp_path: Path
) -> None:
    acme = Session(client, "owner@acme.example")
    good = tmp_path / "good.wav"
    sox("-n", "-r", "8000", "-c", "1", good, "synth", "1", "sine", "300")
    before = files_in(data_dir)

    for name in ("../../evil", "a b", "welcome", "", "x" * 65):
        response = acme.post(
            "/api/v1/prompts", data={"name": name}, files={"file": ("g.wav", good.read_bytes())}
        )
        assert response.status_code == 400, name
        assert response.json()["error_id"] == "invalid-change", name
        spoken = acme.post("/api/v1/prompts/text", json={"name": name, "text": "你好"})
        assert spoken.status_code == 400 and spoken.json()["error_id"] == "invalid-change"
    assert files_in(data_dir) - before <= {"linebox.sqlite-wal", "linebox.sqlite-shm"}
    assert not (tmp_path / "evil.wav").exists()


def test_text_is_spoken_into_a_prompt(client: TestClient, data_dir: Path) -> None:
    acme = Session(client, "owner@acme.example")

    response = acme.post("/api/v1/prompts/text", json={"name": "closed", "text": "现在是下班时间"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["kind"] == "text" and body["text"] == "现在是下班时间"
    assert body["duration_ms"] > 500
    assert plan_prompts(data_dir)["acme"]["closed"].endswith("prompts/acme/closed.wav")
    for text in ("", "  ", "长" * 2001):
        bad = acme.post("/api/v1/prompts/text", json={"name": "again", "text": text})
        assert bad.status_code == 400, text
    assert not (data_dir / "prompts" / "acme" / "again.wav").exists()


def test_a_prompt_in_use_cannot_be_deleted(client: TestClient, data_dir: Path) -> None:
    acme = Session(client, "owner@acme.example")

    refused = acme.delete(f"/api/v1/prompts/{prompt_id('welcome')}")
    assert refused.status_code == 400
    assert refused.json()["error_id"] == "invalid-change"
    assert refused.json()["details"]["errors"] == [
        {"key": "", "message": "hotline 4006668888 ringback"}
    ]
    assert (data_dir / "prompts" / "acme" / "welcome.wav").is_file()

    spare = data_dir / "prompts" / "acme" / "spare.wav"
    assert spare.is_file() and "spare" in plan_prompts(data_dir)["acme"]
    assert acme.delete(f"/api/v1/prompts/{prompt_id('spare')}").status_code == 204
    assert not spare.exists() and not spare.with_name("spare.wav.tts").exists()
    assert "spare" not in plan_prompts(data_dir)["acme"]
    assert [p["name"] for p in acme.get("/api/v1/prompts").json()] == ["welcome"]
    audit = acme.get("/api/v1/audit").json()
    entry = next(e for e in audit["items"] if e["target"] == "prompt:spare")
    assert (entry["action"], entry["actor"]) == ("delete", "owner@acme.example")


def test_prompts_page_uploads_speaks_and_explains(client: TestClient, tmp_path: Path) -> None:
    acme = Session(client, "owner@acme.example")
    good = tmp_path / "good.wav"
    sox("-n", "-r", "8000", "-c", "1", good, "synth", "1", "sine", "300")

    page = acme.get("/prompts").text
    assert "<h1>语音文件</h1>" in page and "hotline 4006668888 ringback" in page
    token = csrf_of(page)
    uploaded = client.post(
        "/prompts/upload",
        data={"_csrf": token, "name": "hold"},
        files={"file": ("hold.wav", good.read_bytes(), "audio/wav")},
    )
    assert uploaded.status_code == 200, uploaded.text
    assert 'data-prompt="hold"' in uploaded.text and "已添加" in uploaded.text
    bad = client.post(
        "/prompts/upload",
        data={"_csrf": token, "name": "junk"},
        files={"file": ("junk.wav", b"not audio", "audio/wav")},
    )
    assert bad.status_code == 400 and "not an audio file" in bad.text
    spoken = client.post("/prompts/text", data={"_csrf": token, "name": "bye", "text": "再见"})
    assert spoken.status_code == 200 and 'data-prompt="bye"' in spoken.text
    in_use = client.post(f"/prompts/{prompt_id('welcome')}/delete", data={"_csrf": token})
    assert in_use.status_code == 400 and "in use" in in_use.text
    deleted = client.post(
        f"/prompts/{prompt_id('bye')}/delete", data={"_csrf": token}, follow_redirects=False
    )
    assert deleted.status_code == 303
    # Without the form's token nothing happens.
    assert client.post("/prompts/text", data={"name": "x", "text": "y"}).status_code == 403

    client.get("/lang/en")
    assert "<h1>Prompts</h1>" in acme.get("/prompts").text


def test_a_prompt_in_use_gets_new_audio_or_new_text(
    client: TestClient, data_dir: Path, tmp_path: Path
) -> None:
    acme = Session(client, "owner@acme.example")
    welcome = prompt_id("welcome")
    path = data_dir / "prompts" / "acme" / "welcome.wav"
    tone = tmp_path / "tone.mp3"
    sox("-n", "-r", "44100", "-c", "2", tone, "synth", "4", "sine", "440", "gain", "-6")

    replaced = acme.put(
        f"/api/v1/prompts/{welcome}/audio", files={"file": ("x", tone.read_bytes())}
    )
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert (body["kind"], body["text"], body["used_by"]) == (
        "file",
        "",
        ["hotline 4006668888 ringback"],
    )
    assert 3800 < body["duration_ms"] < 4200
    assert not path.with_name("welcome.wav.tts").exists()
    assert plan_prompts(data_dir)["acme"]["welcome"] == str(path)
    recorded = path.read_bytes()

    # A bad file changes nothing.
    bad = acme.put(f"/api/v1/prompts/{welcome}/audio", files={"file": ("x.wav", b"junk")})
    assert bad.status_code == 400 and bad.json()["error_id"] == "invalid-prompt"
    assert path.read_bytes() == recorded
    assert not [p.name for p in (data_dir / "prompts").rglob(".*")]  # no scratch left

    spoken = acme.patch(f"/api/v1/prompts/{welcome}", json={"text": "欢迎再次致电"})
    assert spoken.status_code == 200 and spoken.json()["kind"] == "text"
    assert path.read_bytes() != recorded and path.with_name("welcome.wav.tts").is_file()
    assert acme.patch(f"/api/v1/prompts/{welcome}", json={"text": " "}).status_code == 400
    assert acme.get(f"/api/v1/prompts/{welcome}").json()["text"] == "欢迎再次致电"

    hello = prompt_id("hello")
    assert acme.patch(f"/api/v1/prompts/{hello}", json={"text": "hi"}).status_code == 404
    other = acme.put(f"/api/v1/prompts/{hello}/audio", files={"file": ("x", tone.read_bytes())})
    assert other.status_code == 404
    assert "Hello from Globex" in str(
        Prompt.select(Prompt.text).where(Prompt.id == hello).run_sync()
    )

    page = acme.get("/prompts").text
    replaced_page = client.post(
        f"/prompts/{welcome}/replace", data={"_csrf": csrf_of(page), "text": "您好"}
    )
    assert replaced_page.status_code == 200 and "已替换" in replaced_page.text
    empty = client.post(f"/prompts/{welcome}/replace", data={"_csrf": csrf_of(page)})
    assert empty.status_code == 400


def test_a_prompt_file_outside_the_data_directory_is_never_served_nor_deleted(
    client: TestClient, data_dir: Path, tmp_path: Path
) -> None:
    acme = Session(client, "owner@acme.example")
    secret = tmp_path / "secret.wav"
    sox("-n", "-r", "8000", "-c", "1", secret, "synth", "1", "sine", "300")
    spare = prompt_id("spare")

    for stored in (str(secret), str(data_dir / "prompts" / ".." / ".." / "secret.wav")):
        Prompt.update({Prompt.file: stored}).where(Prompt.id == spare).run_sync()
        response = acme.get(f"/api/v1/prompts/{spare}/audio")
        assert response.status_code == 404 and response.json()["error_id"] == "prompt-not-found"
        assert acme.get(f"/api/v1/prompts/{spare}").json()["duration_ms"] == 0
    assert acme.delete(f"/api/v1/prompts/{spare}").status_code == 204
    assert secret.is_file()
