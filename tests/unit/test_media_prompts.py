"""The prompt library with the real espeak-ng and sox: text spoken into 8 kHz
mono WAV, uploads converted (and hostile ones refused without a trace), the
site file's text prompts rendered on apply, the stock prompts."""

from __future__ import annotations

import array
import itertools
import math
import struct
import subprocess
import time
import wave
from pathlib import Path

import pytest
from piccolo.utils.sync import run_sync

from appliance.media import prompts, stock
from appliance.media.prompts import PromptError, convert_upload, duration_ms, render_text
from appliance.sitefile.apply import apply_site
from appliance.tables import Prompt

FULL_SCALE = 32767


def read_wav(path: Path) -> tuple[wave._wave_params, array.array[int]]:
    with wave.open(str(path), "rb") as w:
        params = w.getparams()
        samples = array.array("h", w.readframes(w.getnframes()))
    return params, samples


def assert_prompt_format(path: Path) -> array.array[int]:
    params, samples = read_wav(path)
    assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, 8000)
    return samples


def rms(samples: array.array[int] | list[int]) -> float:
    return math.sqrt(sum(s * s for s in samples) / max(1, len(samples)))


def write_wav(path: Path, seconds: float, rate: int = 44100, channels: int = 2) -> None:
    frames = int(seconds * rate)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        data = array.array("h")
        for i in range(frames):
            value = int(12000 * math.sin(2 * math.pi * 440 * i / rate))
            data.extend([value] * channels)
        w.writeframes(data.tobytes())


def frequency(samples: array.array[int], seconds: float) -> float:
    """A pure tone's frequency, from its zero crossings."""
    crossings = sum(1 for a, b in itertools.pairwise(samples) if (a < 0) != (b < 0))
    return crossings / 2 / seconds


def sox(*args: str) -> None:
    subprocess.run(["sox", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def mp3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3 s MP3 (sox encodes it with LAME)."""
    path = tmp_path_factory.mktemp("mp3") / "tone.mp3"
    sox("-n", "-r", "44100", "-c", "2", str(path), "synth", "3", "sine", "440", "gain", "-6")
    return path


# --- text to speech ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "voice"),
    [("满意请按1，一般请按2，不满意请按3", "zh"), ("Please leave a message after the tone.", "en")],
)
def test_text_is_spoken_into_a_trimmed_normalised_8khz_mono_wav(
    tmp_path: Path, text: str, voice: str
) -> None:
    assert prompts.voice_for(text, "auto") == voice
    dest = tmp_path / "p.wav"
    ms = render_text(text, "auto", dest)
    samples = assert_prompt_format(dest)
    assert ms == duration_ms(dest) == len(samples) * 1000 // 8000
    assert 1000 < ms < 15000
    # Normalised: the peak at -3 dBFS.
    peak = max(abs(s) for s in samples)
    assert abs(20 * math.log10(peak / FULL_SCALE) + 3) < 0.5
    # Trimmed: speech within the first and last 150 ms (50 ms of air is kept).
    edge = 1200
    assert max(abs(s) for s in samples[:edge]) > 0.05 * peak
    assert max(abs(s) for s in samples[-edge:]) > 0.01 * peak
    assert max(abs(s) for s in samples[:200]) < 0.05 * peak


def test_a_language_can_be_forced_and_a_bad_one_is_refused(tmp_path: Path) -> None:
    assert prompts.voice_for("Hello", "zh") == "zh"
    assert prompts.voice_for("你好", "en") == "en"
    with pytest.raises(PromptError):
        prompts.voice_for("Hello", "fr")
    assert prompts.tts_digest("你好") != prompts.tts_digest("你好", "en")


def test_empty_text_or_missing_espeak_is_a_prompt_error_and_leaves_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "p.wav"
    dest.write_bytes(b"old")
    with pytest.raises(PromptError) as err:
        render_text("   ", "auto", dest)
    assert err.value.error_id == "invalid-prompt"
    monkeypatch.setattr(prompts, "ESPEAK", "espeak-ng-not-installed")
    with pytest.raises(PromptError, match="not installed"):
        render_text("你好", "auto", dest)
    assert dest.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.wav"]


# --- uploads ----------------------------------------------------------------------


def test_a_wav_upload_becomes_an_8khz_mono_prompt(tmp_path: Path) -> None:
    src = tmp_path / "upload.bin"  # the name says nothing
    write_wav(src, 2.0)
    ms = convert_upload(src, tmp_path / "out.wav")
    samples = assert_prompt_format(tmp_path / "out.wav")
    assert 1900 <= ms <= 2100
    # Still a 440 Hz tone: count zero crossings over one second.
    assert abs(frequency(samples[1000:9000], 1.0) - 440) < 5


def test_an_mp3_upload_is_converted_whatever_its_name(tmp_path: Path, mp3: Path) -> None:
    disguised = tmp_path / "greeting.wav"
    disguised.write_bytes(mp3.read_bytes())
    ms = convert_upload(disguised, tmp_path / "out.wav")
    assert_prompt_format(tmp_path / "out.wav")
    assert 2900 <= ms <= 3200
    assert prompts.sniff(disguised).kind == "mp3"


def test_other_formats_sox_reads_are_accepted(tmp_path: Path) -> None:
    for suffix, kind in ((".flac", "flac"), (".ogg", "ogg"), (".aiff", "aiff")):
        src = tmp_path / f"a{suffix}"
        sox("-n", "-r", "16000", str(src), "synth", "1", "sine", "300")
        renamed = tmp_path / "upload"
        src.rename(renamed)
        assert prompts.sniff(renamed).kind == kind
        assert 900 <= convert_upload(renamed, tmp_path / f"{kind}.wav") <= 1100


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(200)


def _bad_uploads(tmp_path: Path, mp3: Path) -> dict[str, tuple[Path, str]]:
    bad = tmp_path / "bad"
    bad.mkdir()
    png = bad / "logo.wav"
    png.write_bytes(PNG)
    empty = bad / "empty.wav"
    empty.write_bytes(b"")
    # 30 minutes of 8 kHz u-law: 14.4 MB, under the size limit.
    long_wav = bad / "long.wav"
    sox("-n", "-r", "8000", "-e", "u-law", "-c", "1", str(long_wav), "synth", "1800", "sine", "300")
    huge = bad / "huge.wav"
    with open(huge, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 50 * 1024 * 1024) + b"WAVE")
        f.truncate(50 * 1024 * 1024)
    truncated = bad / "cut.mp3"
    truncated.write_bytes(mp3.read_bytes()[: mp3.stat().st_size // 2 + 77])
    short_wav = bad / "cut.wav"
    write_wav(short_wav, 1.0, rate=8000, channels=1)
    short_wav.write_bytes(short_wav.read_bytes()[:4000])
    silent = bad / "silence.wav"
    sox("-n", "-r", "8000", "-c", "1", str(silent), "trim", "0", "2")
    return {
        "png": (png, "not an audio file"),
        "empty": (empty, "empty"),
        "30 minutes": (long_wav, "30.0 minutes"),
        "50 MB": (huge, "50.0 MB"),
        "truncated mp3": (truncated, "truncated MP3"),
        "truncated wav": (short_wav, "truncated WAV"),
        "silence": (silent, "no sound"),
    }


def test_bad_uploads_are_prompt_errors_and_nothing_is_written(tmp_path: Path, mp3: Path) -> None:
    out_dir = tmp_path / "prompts"
    out_dir.mkdir()
    kept = out_dir / "kept.wav"
    kept.write_bytes(b"the previous prompt")
    for label, (src, message) in _bad_uploads(tmp_path, mp3).items():
        started = time.monotonic()
        with pytest.raises(PromptError, match=message) as err:
            convert_upload(src, out_dir / "new.wav")
        assert err.value.error_id == "invalid-prompt", label
        assert time.monotonic() - started < 5, label
        with pytest.raises(PromptError):
            convert_upload(src, kept)
    # Nothing written, no temporary file left, the old prompt untouched.
    assert [p.name for p in out_dir.iterdir()] == ["kept.wav"]
    assert kept.read_bytes() == b"the previous prompt"


def test_media_tools_run_with_time_memory_and_cpu_limits() -> None:
    started = time.monotonic()
    with pytest.raises(PromptError, match="longer than"):
        prompts.run_limited(["sleep", "10"], timeout=0.5)
    assert time.monotonic() - started < 3
    limits = prompts.run_limited(["sh", "-c", "ulimit -v; ulimit -t; ulimit -f"]).stdout.split()
    assert limits == [
        str(prompts.MEMORY_LIMIT // 1024),
        str(prompts.CPU_LIMIT_S),
        str(prompts.OUTPUT_LIMIT // 512),
    ]
    with pytest.raises(PromptError, match="failed"):
        prompts.run_limited(["sox", "/nonexistent.wav", "/tmp/x.wav"])


def test_duration_of_a_wav_and_of_something_else(tmp_path: Path, mp3: Path) -> None:
    write_wav(tmp_path / "a.wav", 1.5, rate=8000, channels=1)
    assert duration_ms(tmp_path / "a.wav") == 1500
    assert 2900 <= duration_ms(mp3) <= 3200
    assert duration_ms(tmp_path / "missing.wav") == 0


# --- the site file's text prompts ---------------------------------------------------

SITE = """
[[tenants]]
slug = "acme"
name = "Acme"

[[tenants.prompts]]
name = "welcome"
text = "{text}"

[[tenants.prompts]]
name = "hello"
text = "Hello and welcome."
"""


def _prompts() -> dict[str, dict[str, str]]:
    rows = Prompt.select(Prompt.name, Prompt.text, Prompt.file, Prompt.source).run_sync()
    return {r["name"]: r for r in rows}


def test_apply_speaks_text_prompts_and_a_second_apply_changes_nothing(
    database: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINEBOX_STOCK_CACHE", "")  # really render
    result = run_sync(apply_site(SITE.replace("{text}", "欢迎致电艾克米"), tmp_path))
    assert result.warnings == []
    rows = _prompts()
    welcome = Path(rows["welcome"]["file"])
    assert welcome == tmp_path / "prompts" / "acme" / "welcome.wav"
    assert_prompt_format(welcome)
    assert duration_ms(rows["hello"]["file"]) > 500
    # The plan knows the audio.
    plan = (tmp_path / "plan" / "plan.json").read_text()
    assert str(welcome) in plan
    rendered_at = welcome.stat().st_mtime_ns

    again = run_sync(apply_site(SITE.replace("{text}", "欢迎致电艾克米"), tmp_path))
    assert (again.changes, again.warnings) == ([], [])
    assert welcome.stat().st_mtime_ns == rendered_at
    assert _prompts()["welcome"]["file"] == str(welcome)

    changed = run_sync(apply_site(SITE.replace("{text}", "您好，欢迎致电"), tmp_path))
    assert changed.changes == ["~ prompt welcome: text, file"]
    assert _prompts()["welcome"]["file"] == str(welcome)
    assert welcome.stat().st_mtime_ns != rendered_at
    assert Path(str(welcome) + ".tts").read_text().strip() == prompts.tts_digest("您好，欢迎致电")

    # The export still writes the text, not the rendering.
    from appliance.sitefile.export import export_text

    exported = export_text()
    assert 'text = "您好，欢迎致电"' in exported
    assert "welcome.wav" not in exported


def test_apply_without_espeak_succeeds_with_a_warning(
    database: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINEBOX_STOCK_CACHE", "")
    monkeypatch.setattr(prompts, "ESPEAK", "espeak-ng-not-installed")
    result = run_sync(apply_site(SITE.replace("{text}", "欢迎"), tmp_path))
    assert len(result.warnings) == 2
    assert "cannot speak its text" in result.warnings[0]
    assert "espeak-ng-not-installed is not installed" in result.warnings[0]
    assert _prompts()["welcome"]["file"] == ""
    # espeak-ng is back: the next apply renders what is missing.
    monkeypatch.setattr(prompts, "ESPEAK", "espeak-ng")
    result = run_sync(apply_site(SITE.replace("{text}", "欢迎"), tmp_path))
    assert result.warnings == []
    assert Path(_prompts()["welcome"]["file"]).is_file()


# --- stock prompts ----------------------------------------------------------------


def test_stock_prompts_are_rendered_once_in_both_languages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINEBOX_STOCK_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "_stock"
    written = stock.ensure_stock(root)
    assert len(written) == len(stock.NAMES) * len(stock.LANGS)
    for lang in stock.LANGS:
        for name in stock.NAMES:
            path = stock.stock_path(name, lang, root)
            assert_prompt_format(path)
            assert duration_ms(path) > 200, path
    # Idempotent and quick.
    started = time.monotonic()
    assert stock.ensure_stock(root) == []
    assert time.monotonic() - started < 0.2
    # A file that went missing comes back; the others are left alone.
    stock.stock_path("busy", "en", root).unlink()
    assert stock.ensure_stock(root) == [stock.stock_path("busy", "en", root)]
    # Another data directory is filled from the cache.
    started = time.monotonic()
    assert len(stock.ensure_stock(tmp_path / "other")) == len(written)
    assert time.monotonic() - started < 2

    beep = assert_prompt_format(stock.stock_path("beep", "zh", root))
    assert len(beep) == 2400  # 300 ms
    assert abs(frequency(beep, 0.3) - 1000) < 10
    hold = assert_prompt_format(stock.stock_path("hold-music", "zh", root))
    assert 19.5 < len(hold) / 8000 < 20.5
    # Loopable: it starts from silence and its last note has died away.
    assert abs(hold[0]) < 200
    assert rms(hold[-80:]) < 0.1 * rms(hold)
    greeting = duration_ms(stock.stock_path("leave-a-message", "zh", root))
    assert duration_ms(stock.stock_path("leave-a-message-beep", "zh", root)) == greeting + 300
    with pytest.raises(KeyError):
        stock.stock_path("nonsense")
    with pytest.raises(KeyError):
        stock.stock_path("busy", "fr")


def test_agent_id_announcement_is_joined_and_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINEBOX_STOCK_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "_stock"
    stock.ensure_stock(root)
    path = stock.agent_id_announcement("8001", "zh", root=root)
    assert path == root / "agent-id" / "zh" / "8001.wav"
    pieces = ["agent-id-prefix", "digit-8", "digit-0", "digit-0", "digit-1", "agent-id-suffix"]
    expected = sum(duration_ms(stock.stock_path(p, "zh", root)) for p in pieces)
    assert abs(duration_ms(path) - expected) <= len(pieces)  # each rounded down to 1 ms
    made = path.stat().st_mtime_ns
    assert stock.agent_id_announcement("8001", "zh", root=root) == path
    assert path.stat().st_mtime_ns == made
    assert stock.agent_id_announcement("8001", "en", root=root).parent.name == "en"
    for bad in ("80a1", "", "8" * 17, "８００１"):
        with pytest.raises(PromptError):
            stock.agent_id_announcement(bad, "zh", root=root)


def test_stock_without_espeak_warns_when_not_strict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LINEBOX_STOCK_CACHE", "")
    monkeypatch.setattr(prompts, "ESPEAK", "espeak-ng-not-installed")
    with pytest.raises(PromptError):
        stock.ensure_stock(tmp_path / "a")
    assert stock.ensure_stock(tmp_path / "b", strict=False) == []
    assert "stock prompts incomplete" in capsys.readouterr().err
    # The tones need only sox: they are there.
    assert stock.stock_path("beep", "zh", tmp_path / "b").is_file()
