"""The prompt library: every message a caller hears is an 8 kHz mono 16-bit
WAV (what the phone network carries, so rtpengine never resamples).

- `render_text()` speaks a text with espeak-ng (Mandarin `cmn` or English
  `en`) and shapes it with sox: resampled, leading and trailing silence
  trimmed, loudness normalised.
- `convert_upload()` turns an uploaded WAV, MP3, Ogg Vorbis, FLAC or AIFF into
  the same format. The type is sniffed from the content, never the name;
  size, duration and integrity are checked before sox runs, and sox runs with
  a time limit and CPU, memory and file-size limits, so a hostile upload can
  neither hang nor eat the box. Nothing is written unless everything worked.
- `render_tenant_prompts()` renders the text prompts of the site file
  (`Prompt` rows with text) into `<data>/prompts/<tenant>/<name>.wav`, stores
  the path in `Prompt.file` and re-publishes the plan. A sidecar
  `<name>.wav.tts` holds the hash of what was spoken, so a rendering is
  redone only when the text (or the voice) changes.
- `duration_ms()` reads a prompt's length (Kamailio 5.6's play_media does not
  return it from KEMI).

Kamailio imports this module (`duration_ms`): keep its imports light.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import resource
import shutil
import struct
import subprocess
import tempfile
import wave
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from appliance import settings as settings_mod
from appliance.errors import LineboxError

log = logging.getLogger(__name__)

SOX = "sox"
SOXI = "soxi"
ESPEAK = "espeak-ng"

RATE = 8000
"""Every prompt's sample rate: G.711's."""
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_DURATION_S = 600
"""The longest prompt (10 minutes: hold music is looped, not long)."""
MAX_TEXT_CHARS = 2000
TIMEOUT_S = 60.0
"""Wall-clock limit of one sox or espeak-ng run."""
CPU_LIMIT_S = 60
MEMORY_LIMIT = 1024 * 1024 * 1024
"""Address space of one sox or espeak-ng run (bytes)."""
OUTPUT_LIMIT = 64 * 1024 * 1024
"""The largest file one run may write (10 min at 8 kHz is 9.6 MB)."""
RENDER_VERSION = "1"
"""Bump when the rendering chain changes: every text prompt is rendered again."""
VOICES = {"zh": "cmn", "en": "en"}
SPEED = {"zh": 150, "en": 155}
"""espeak-ng words per minute: a little slower than its default 175."""
TTS_SUFFIX = ".tts"


class PromptError(LineboxError):
    """Audio that cannot become a prompt: empty, not audio, damaged, too large
    or too long; or text that cannot be spoken."""

    error_id = "invalid-prompt"


# --- running sox and espeak-ng ----------------------------------------------------


def _limits() -> None:  # pragma: no cover (runs in the child)
    """In the child before exec: bounded CPU, memory and output size."""
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_LIMIT_S, CPU_LIMIT_S + 5))
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_FSIZE, (OUTPUT_LIMIT, OUTPUT_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.setpgrp()


def run_limited(
    argv: Sequence[str], timeout: float = TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """Run a media tool with resource limits; raise PromptError when it is
    missing, fails, or overruns its time."""
    if shutil.which(argv[0]) is None:
        raise PromptError(f"{argv[0]} is not installed")
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            preexec_fn=_limits,  # setrlimit and setpgrp only
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"},
        )
    except OSError as exc:
        raise PromptError(f"cannot run {argv[0]}: {exc}") from None
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        proc.communicate()
        raise PromptError(f"{argv[0]} took longer than {timeout:.0f} s") from None
    if proc.returncode != 0:
        reason = err.strip().splitlines()[-1] if err.strip() else f"status {proc.returncode}"
        if proc.returncode < 0:
            reason = f"stopped by signal {-proc.returncode} (a resource limit)"
        raise PromptError(f"{argv[0]} failed: {reason}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@contextlib.contextmanager
def _atomic_target(dest: Path) -> Iterator[Path]:
    """A temporary file next to `dest`, renamed onto it when the block
    succeeds and removed when it fails: `dest` is either the whole new file
    or untouched."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.stem}-", suffix=".wav", dir=dest.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _shape() -> list[str]:
    """sox's output options: 8 kHz mono 16-bit signed WAV."""
    return ["-t", "wav", "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed-integer"]


def _trim_and_norm() -> list[str]:
    """sox effects: mono at 8 kHz first, then the silence at each end
    trimmed (everything below -50 dBFS up to the first sound; the end the
    same way on the reversed audio), 50 ms of air put back at each end, and
    the peak normalised to -3 dBFS."""
    return [
        "channels", "1", "rate", "-h", str(RATE),
        "silence", "1", "0.02", "-50d", "reverse",
        "silence", "1", "0.02", "-50d", "reverse",
        "pad", "0.05", "0.05",
        "gain", "-n", "-3",
    ]  # fmt: skip


# --- text to speech ---------------------------------------------------------------

_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def voice_for(text: str, lang: str = "auto") -> str:
    """`zh` or `en`: as asked, or by the text's script when `auto` (any Han
    character makes it Mandarin)."""
    if lang in ("zh", "cmn", "zh-CN", "zh-cn"):
        return "zh"
    if lang in ("en", "en-US", "en-GB"):
        return "en"
    if lang != "auto":
        raise PromptError(f"no voice for language {lang!r} (zh, en or auto)")
    return "zh" if _HAN.search(text) else "en"


def tts_digest(text: str, lang: str = "auto") -> str:
    """What a rendering depends on: text, voice and the rendering chain."""
    voice = voice_for(text, lang)
    key = f"{RENDER_VERSION}\0{VOICES[voice]}\0{SPEED[voice]}\0{text.strip()}"
    return hashlib.sha256(key.encode()).hexdigest()


def render_text(text: str, lang: str, dest: Path) -> int:
    """Speak `text` into the WAV `dest` (8 kHz mono 16-bit); `lang` is `zh`,
    `en` or `auto`. Returns the duration in ms. Raises PromptError (and leaves
    `dest` as it was) when the text is empty or too long, or espeak-ng or sox
    is missing or fails."""
    text = text.strip()
    if not text:
        raise PromptError("the prompt's text is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise PromptError(f"the prompt's text is longer than {MAX_TEXT_CHARS} characters")
    voice = voice_for(text, lang)
    dest = Path(dest)
    with tempfile.TemporaryDirectory(prefix="linebox-tts-") as work:
        spoken = Path(work) / "espeak.wav"
        script = Path(work) / "text.txt"
        script.write_text(text, encoding="utf-8")
        run_limited(
            [ESPEAK, "-v", VOICES[voice], "-s", str(SPEED[voice]), "-b", "1",
             "-f", str(script), "-w", str(spoken)]
        )  # fmt: skip
        if not spoken.is_file() or spoken.stat().st_size <= 44:
            raise PromptError("espeak-ng produced no audio")
        with _atomic_target(dest) as tmp:
            run_limited([SOX, "-V1", str(spoken), *_shape(), str(tmp), *_trim_and_norm()])
            ms = duration_ms(tmp)
            if ms <= 0:
                raise PromptError("the spoken text is silent")
    return ms


def cache_dir() -> Path | None:
    """Renderings by hash (`<digest>.wav`), shared by every data directory of
    this user (the tests make many): `$LINEBOX_STOCK_CACHE` (empty: none), or
    ~/.cache/linebox/stock. None when there is no usable one (a cache another user can write to is
    never trusted)."""
    configured = os.environ.get("LINEBOX_STOCK_CACHE")
    if configured == "":
        return None  # set but empty: no cache
    try:
        path = Path(configured) if configured else Path.home() / ".cache" / "linebox" / "stock"
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = path.stat()
    except (OSError, RuntimeError):
        return None
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        return None
    return path


def render_text_cached(text: str, lang: str, dest: Path) -> int:
    """`render_text()`, through the cache when there is one."""
    cache = cache_dir()
    cached = cache / f"{tts_digest(text, lang)}.wav" if cache else None
    if cached is not None and cached.is_file():
        with _atomic_target(Path(dest)) as tmp:
            shutil.copyfile(cached, tmp)
        return duration_ms(dest)
    ms = render_text(text, lang, dest)
    if cached is not None:
        with contextlib.suppress(OSError), _atomic_target(cached) as tmp:
            shutil.copyfile(dest, tmp)
    return ms


# --- uploads ----------------------------------------------------------------------


@dataclass(frozen=True)
class Sniffed:
    kind: str
    """sox's type name: wav, mp3, ogg, flac, aiff."""
    duration_s: float | None = None
    """Known from the headers (WAV, MP3); None when only decoding tells."""


def sniff(path: Path) -> Sniffed:
    """What audio `path` holds, from its content. Raises PromptError for an
    empty, unknown or damaged file."""
    size = path.stat().st_size
    if size == 0:
        raise PromptError("the file is empty")
    with open(path, "rb") as f:
        head = f.read(64)
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return Sniffed("wav", _wav_duration(path))
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return Sniffed("aiff")
    if head[:4] == b"fLaC":
        return Sniffed("flac")
    if head[:4] == b"OggS":
        with open(path, "rb") as f:
            first_page = f.read(4096)
        if b"\x01vorbis" in first_page:
            return Sniffed("ogg")
        raise PromptError("an Ogg file that is not Vorbis (Opus is not supported: use MP3 or WAV)")
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return Sniffed("mp3", mp3_duration(path))
    raise PromptError("not an audio file (WAV, MP3, Ogg Vorbis, FLAC or AIFF)")


def _wav_duration(path: Path) -> float:
    """A RIFF WAV's length from its chunks; checks the data is all there."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(12)
        byte_rate = 0
        while True:
            header = f.read(8)
            if len(header) < 8:
                raise PromptError("a damaged WAV file: no audio data")
            chunk, length = header[:4], struct.unpack("<I", header[4:])[0]
            start = f.tell()
            if chunk == b"fmt ":
                fmt = f.read(min(length, 40))
                if len(fmt) < 16:
                    raise PromptError("a damaged WAV file: short format chunk")
                byte_rate = struct.unpack("<I", fmt[8:12])[0]
            elif chunk == b"data":
                if not byte_rate:
                    raise PromptError("a damaged WAV file: audio data before its format")
                remaining = size - start
                if length in (0, 0xFFFFFFFF) or length > remaining + 1:
                    if length not in (0, 0xFFFFFFFF):
                        raise PromptError(
                            f"a truncated WAV file: {remaining} of {length} bytes of audio"
                        )
                    length = remaining  # a stream's placeholder size
                if length == 0:
                    raise PromptError("the WAV file holds no audio")
                return length / byte_rate
            f.seek(start + length + (length & 1))


# MPEG audio frame headers (ISO 11172-3 / 13818-3): bit rates in kbit/s by
# [version is MPEG-1][layer], sample rates by version.
_BITRATES = {
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mp3_frame(h: bytes) -> tuple[int, int, int] | None:
    """(frame length in bytes, samples, sample rate) of the frame header `h`,
    or None when `h` is not one."""
    if len(h) < 4 or h[0] != 0xFF or h[1] & 0xE0 != 0xE0:
        return None
    version = (h[1] >> 3) & 3  # 3 = MPEG-1, 2 = MPEG-2, 0 = MPEG-2.5
    layer = 4 - ((h[1] >> 1) & 3)  # 1, 2, 3
    bitrate_index, rate_index, padding = h[2] >> 4, (h[2] >> 2) & 3, (h[2] >> 1) & 1
    if version == 1 or layer == 4 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    mpeg1 = version == 3
    bitrate = _BITRATES[(mpeg1, layer)][bitrate_index] * 1000
    rate = _RATES[version][rate_index]
    if layer == 1:
        return (12 * bitrate // rate + padding) * 4, 384, rate
    samples = 1152 if (layer == 2 or mpeg1) else 576
    return samples // 8 * bitrate // rate + padding, samples, rate


def mp3_duration(path: Path) -> float:
    """An MP3's exact length, by walking its frames. Raises PromptError when
    the file is not MPEG audio or is truncated (its last frame incomplete, or
    fewer frames than its Xing/Info header promises)."""
    data = Path(path).read_bytes()
    pos = 0
    if data[:3] == b"ID3" and len(data) >= 10:
        tag = (
            (data[6] & 0x7F) << 21
            | (data[7] & 0x7F) << 14
            | (data[8] & 0x7F) << 7
            | (data[9] & 0x7F)
        )
        pos = 10 + tag + (10 if data[5] & 0x10 else 0)
    # Some encoders leave a few junk bytes before the first frame.
    first = pos
    while pos < min(len(data), first + 4096) and _mp3_frame(data[pos : pos + 4]) is None:
        pos += 1
    frames = samples = 0
    rate = 0
    promised: int | None = None
    end = len(data)
    while pos < end:
        frame = _mp3_frame(data[pos : pos + 4])
        if frame is None:
            tail = data[pos:]
            if tail[:3] == b"TAG" or tail[:8] == b"APETAGEX" or tail[:6] == b"LYRICS":
                break
            if not tail.strip(b"\0"):
                break  # zero padding after the last frame
            if frames:
                raise PromptError(f"a damaged MP3 file: no MPEG frame at byte {pos}")
            break
        length, n, rate = frame
        if pos + length > end:
            raise PromptError(
                f"a truncated MP3 file: its last frame ends {pos + length - end} bytes "
                "after the end of the file"
            )
        if frames == 0:
            body = data[pos : pos + length]
            for marker in (b"Xing", b"Info"):
                at = body.find(marker, 4, 64)
                if at >= 0 and len(body) >= at + 12 and body[at + 7] & 1:
                    promised = struct.unpack(">I", body[at + 8 : at + 12])[0]
            if promised is not None:
                pos += length  # the Xing/Info frame carries no audio
                continue
        frames += 1
        samples += n
        pos += length
    if frames < 2 or not rate:
        raise PromptError("not an audio file: no MPEG audio frames found")
    if promised is not None and frames < promised:
        raise PromptError(f"a truncated MP3 file: {frames} of {promised} frames")
    return samples / rate


def convert_upload(src: Path, dest: Path) -> int:
    """Convert an uploaded audio file into the prompt WAV `dest` (8 kHz mono
    16-bit, normalised, silence at the ends trimmed). Returns the duration in
    ms. Raises PromptError, writing nothing, for an empty, unknown, damaged,
    too large (`MAX_UPLOAD_BYTES`) or too long (`MAX_DURATION_S`) file."""
    src = Path(src)
    try:
        size = src.stat().st_size
    except OSError as exc:
        raise PromptError(f"cannot read the upload: {exc.strerror}") from None
    if size > MAX_UPLOAD_BYTES:
        raise PromptError(
            f"the file is {size / 1048576:.1f} MB; at most {MAX_UPLOAD_BYTES // 1048576} MB"
        )
    found = sniff(src)
    if found.duration_s is not None:
        _check_duration(found.duration_s)
    # Otherwise the conversion tells: it stops a second past the limit.
    with _atomic_target(Path(dest)) as tmp:
        run_limited(
            [SOX, "-V1", "-t", found.kind, str(src), *_shape(), str(tmp),
             "trim", "0", str(MAX_DURATION_S + 1), *_trim_and_norm()]
        )  # fmt: skip
        ms = duration_ms(tmp)
        _check_duration(ms / 1000)
        if ms <= 100:
            raise PromptError("the file holds no sound (silence only)")
    return ms


def _check_duration(seconds: float) -> None:
    if seconds <= 0:
        raise PromptError("the file holds no audio")
    if seconds > MAX_DURATION_S:
        raise PromptError(
            f"the audio is {seconds / 60:.1f} minutes long; at most {MAX_DURATION_S // 60} minutes"
        )


# --- reading prompts --------------------------------------------------------------

_durations: dict[tuple[str, int, int], int] = {}


def duration_ms(wav: Path | str) -> int:
    """The length of an audio file in ms (0 when it cannot be read). WAV is
    read from its header; anything else asks soxi. Cached by the file's
    identity, so Kamailio can call it for every call."""
    path = Path(wav)
    try:
        st = path.stat()
    except OSError:
        return 0
    key = (str(path), st.st_ino, st.st_mtime_ns)
    cached = _durations.get(key)
    if cached is not None:
        return cached
    try:
        with wave.open(str(path), "rb") as w:
            ms = w.getnframes() * 1000 // w.getframerate()
    except (wave.Error, EOFError, OSError):
        try:
            ms = round(float(run_limited([SOXI, "-D", str(path)], timeout=10).stdout) * 1000)
        except (PromptError, ValueError):
            ms = 0
    if len(_durations) > 4096:
        _durations.clear()
    _durations[key] = ms
    return ms


# --- the site file's text prompts -------------------------------------------------


def prompts_dir() -> Path:
    return settings_mod.get().paths.data_dir / "prompts"


def tenant_prompt_path(tenant: str, name: str) -> Path:
    """Where a tenant's spoken prompt lives (a file prompt of the same name
    with a `.wav` reference is copied to the same place by apply)."""
    return prompts_dir() / tenant / f"{name}.wav"


def _rendered(path: Path, digest: str) -> bool:
    try:
        return path.is_file() and (
            path.with_name(path.name + TTS_SUFFIX).read_text().strip() == digest
        )
    except OSError:
        return False


async def render_tenant_prompts(lang: str = "auto") -> list[str]:
    """Render every text prompt that has no current rendering into
    `<data>/prompts/<tenant>/<name>.wav`, store the path in `Prompt.file` and
    re-publish the plan when anything changed. Idempotent: a prompt whose
    text and voice are unchanged is not rendered again. Never raises for a
    prompt that cannot be rendered (espeak-ng missing, …): returns one warning
    per such prompt instead."""
    import asyncio

    from appliance.tables import Prompt, Tenant

    warnings: list[str] = []
    slugs = {t["id"]: t["slug"] for t in await Tenant.select(Tenant._meta.primary_key, Tenant.slug)}
    rows = await Prompt.select(
        Prompt._meta.primary_key, Prompt.tenant, Prompt.name, Prompt.text, Prompt.file
    ).where(Prompt.text != "")
    changed = False
    for row in rows:
        slug = slugs.get(row["tenant"])
        if slug is None or not row["text"].strip():
            continue
        target = tenant_prompt_path(slug, row["name"])
        try:
            digest = tts_digest(row["text"], lang)
            if not _rendered(target, digest):
                await asyncio.to_thread(render_text_cached, row["text"], lang, target)
                target.with_name(target.name + TTS_SUFFIX).write_text(digest + "\n")
                log.info("prompt %s/%s: rendered %s", slug, row["name"], target)
                changed = True
        except (PromptError, OSError) as exc:
            detail = exc.detail if isinstance(exc, PromptError) else str(exc)
            warnings.append(
                f"prompt {slug}/{row['name']}: cannot speak its text ({detail}); "
                "it has no audio until it can"
            )
            log.warning("%s", warnings[-1])
            continue
        if row["file"] != str(target):
            await Prompt.update({Prompt.file: str(target)}).where(
                Prompt._meta.primary_key == row["id"]
            )
            changed = True
    if changed:
        from appliance.routing.compile import publish_from_db

        await publish_from_db()
    return warnings
