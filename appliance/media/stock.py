"""The prompts linebox ships: rendered from text (and two from sox's
synthesiser) when the appliance is initialised, never stored as audio in the
source tree.

Every file lands in `<data>/prompts/_stock/<lang>/<name>.wav` (`zh`, `en`;
the tones `beep` and `hold-music` are in both); `stock_path(name, lang)` names
it. `leave-a-message-beep` is the voicemail greeting followed by the beep, in
one file for one play_media. `ensure_stock()` renders what is
missing or out of date (a manifest keeps each file's hash) and is quick when
everything is there. `agent_id_announcement()` joins "工号" + digits +
"为您服务" into one file per agent ID, cached.

Kamailio imports this module (`stock_path`, `agent_id_announcement`): keep its
imports light.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from appliance import settings as settings_mod
from appliance.media import prompts
from appliance.media.prompts import SOX, PromptError, run_limited

log = logging.getLogger(__name__)

LANGS = ("zh", "en")

TEXTS: dict[str, dict[str, str]] = {
    "zh": {
        "busy": "您好，坐席正忙，请稍后再拨。",
        "refused": "对不起，您的呼叫暂时无法接通。",
        "not-in-service": "您拨打的号码暂未开通服务，请核对后再拨。",
        "after-hours": "您好，现在是非工作时间，请在工作时间再拨，谢谢。",
        "leave-a-message": "您好，现在无人接听，请在提示音后留言，留言完毕请挂机。",
        "invalid-key": "输入有误，请重新输入。",
        "thank-you": "感谢您的来电，再见。",
        "survey": "满意请按1，一般请按2，不满意请按3。",
        "pin": "请输入专用密码，以井号键结束。",
        "pin-wrong": "密码错误，请重新输入。",
        "agent-id-prefix": "工号",
        "agent-id-suffix": "为您服务",
        # Digits one by one, as Chinese telephony reads them (1 is 幺).
        **{f"digit-{d}": w for d, w in enumerate("零幺二三四五六七八九")},
    },
    "en": {
        "busy": "All our agents are busy. Please call again later.",
        "refused": "Sorry, your call cannot be completed.",
        "not-in-service": "The number you have dialled is not in service. "
        "Please check the number and try again.",
        "after-hours": "Our office is now closed. Please call again during business hours. "
        "Thank you.",
        "leave-a-message": "Sorry, nobody can take your call. "
        "Please leave a message after the tone, then hang up.",
        "invalid-key": "That is not a valid choice. Please try again.",
        "thank-you": "Thank you for calling. Goodbye.",
        "survey": "If you were satisfied, press 1. If it was fair, press 2. "
        "If you were not satisfied, press 3.",
        "pin": "Please enter your access code, followed by the hash key.",
        "pin-wrong": "That code is not correct. Please try again.",
        "agent-id-prefix": "Agent",
        "agent-id-suffix": "at your service.",
        **{
            f"digit-{d}": w
            for d, w in enumerate(
                ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
            )
        },
    },
}
"""Every spoken stock prompt, by language and name."""

# A calm I–vi–IV–V progression in C, each chord arpeggiated over six plucked
# notes: 8 chords × 6 notes × 5/12 s = 20 s. Every note decays to silence, so
# the end joins the start without a click when the file is looped.
_CHORDS = (
    ("C4", "E4", "G4", "C5", "G4", "E4"),
    ("A3", "C4", "E4", "A4", "E4", "C4"),
    ("F3", "A3", "C4", "F4", "C4", "A3"),
    ("G3", "B3", "D4", "G4", "D4", "B3"),
    ("C4", "E4", "G4", "C5", "G4", "E4"),
    ("A3", "C4", "E4", "A4", "E4", "C4"),
    ("F3", "A3", "C4", "F4", "C4", "A3"),
    ("G3", "B3", "D4", "F4", "D4", "B3"),
)
NOTE_S = 5 / 12


def _hold_music_args() -> list[str]:
    chains: list[str] = []
    for chord in _CHORDS:
        for note in chord:
            if chains:
                chains.append(":")
            chains += ["synth", f"{NOTE_S:.4f}", "pluck", note, "fade", "q", "0.005", "-0", "0.08"]
    return chains


TONES: dict[str, list[str]] = {
    # 1 kHz for 300 ms with 10 ms ramps (no click).
    "beep": ["synth", "0.3", "sine", "1000", "fade", "h", "0.01", "-0", "0.01", "gain", "-6"],
    "hold-music": [*_hold_music_args(), "gain", "-n", "-6"],
    # China's ring-back tone: 450 Hz, one second on, four off (GB/T 15279);
    # played by linebox where it has answered early media (after a menu).
    "ring-tone": [
        "synth",
        "1",
        "sine",
        "450",
        "fade",
        "h",
        "0.01",
        "-0",
        "0.01",
        "pad",
        "0",
        "4",
        "gain",
        "-10",
    ],
}
"""Stock sounds made by sox's synthesiser: sox effect arguments."""

COMPOSITES: dict[str, tuple[str, ...]] = {
    "leave-a-message-beep": ("leave-a-message", "beep"),
}
"""Stock prompts joined from others (one file, one play_media)."""

NAMES = frozenset([*TEXTS["zh"], *TONES, *COMPOSITES])
"""Every stock prompt's name (each exists in every language)."""

STOCK_VERSION = "1"
MANIFEST = "manifest.json"


def stock_dir() -> Path:
    return settings_mod.get().paths.data_dir / "prompts" / "_stock"


def stock_path(name: str, lang: str = "zh", root: Path | None = None) -> Path:
    """The file of a stock prompt (`busy`, `leave-a-message-beep`, `beep`,
    `hold-music`, `digit-7`, …; `NAMES` lists them) in `lang` (`zh` or `en`).
    Raises KeyError for an unknown name or language. The file exists once
    `ensure_stock()` ran (`linebox init`)."""
    if lang not in TEXTS:
        raise KeyError(f"no stock prompts in {lang!r}")
    if name not in NAMES:
        raise KeyError(f"no stock prompt {name!r}")
    return (root or stock_dir()) / lang / f"{name}.wav"


def _wanted() -> dict[str, tuple[str, str, str]]:
    """relative path → (kind, lang, text or tone or composite name)."""
    out: dict[str, tuple[str, str, str]] = {}
    for lang, texts in TEXTS.items():
        for name, text in texts.items():
            out[f"{lang}/{name}.wav"] = ("tts", lang, text)
        for name in TONES:
            out[f"{lang}/{name}.wav"] = ("tone", lang, name)
    return out


def _digest(kind: str, lang: str, what: str) -> str:
    if kind == "tts":
        return prompts.tts_digest(what, lang)
    key = json.dumps([STOCK_VERSION, TONES[what]])
    return hashlib.sha256(key.encode()).hexdigest()


def _render_tone(name: str, dest: Path) -> None:
    with prompts._atomic_target(dest) as tmp:
        run_limited(
            [SOX, "-V1", "-n", "-r", str(prompts.RATE), "-c", "1", "-b", "16",
             "-e", "signed-integer", "-t", "wav", str(tmp), *TONES[name]]
        )  # fmt: skip


def ensure_stock(root: Path | None = None, *, strict: bool = True) -> list[Path]:
    """Render every stock prompt that is missing or out of date into `root`
    (default `<data>/prompts/_stock`). Returns the files it wrote; quick (one
    small read and a stat per file) when everything is there. When espeak-ng
    or sox cannot render one, raises PromptError (`strict`) or logs a warning
    and says so on stderr; either way what could be rendered is kept."""
    try:
        return _ensure_stock(root)
    except PromptError as exc:
        if strict:
            raise
        log.warning("stock prompts: %s", exc.detail)
        print(f"warning: stock prompts incomplete: {exc.detail}", file=sys.stderr)
        return []


def _ensure_stock(root: Path | None) -> list[Path]:
    root = root or stock_dir()
    manifest_file = root / MANIFEST
    try:
        manifest: dict[str, str] = json.loads(manifest_file.read_text())
    except (OSError, ValueError):
        manifest = {}
    wanted = _wanted()
    digests = {rel: _digest(kind, lang, what) for rel, (kind, lang, what) in wanted.items()}
    for lang in TEXTS:
        for name, parts in COMPOSITES.items():
            key = json.dumps([STOCK_VERSION, *(digests[f"{lang}/{p}.wav"] for p in parts)])
            digests[f"{lang}/{name}.wav"] = hashlib.sha256(key.encode()).hexdigest()
    stale = {
        rel for rel, digest in digests.items()
        if manifest.get(rel) != digest or not (root / rel).is_file()
    }  # fmt: skip
    if not stale:
        return []
    todo = [(rel, *wanted[rel], digests[rel]) for rel in wanted if rel in stale]

    cache = prompts.cache_dir()

    def render(rel: str, kind: str, lang: str, what: str, digest: str) -> None:
        cached = cache / f"{digest}.wav" if cache else None
        if cached is not None and cached.is_file():
            with prompts._atomic_target(root / rel) as tmp:
                shutil.copyfile(cached, tmp)
            return
        if kind == "tone":
            _render_tone(what, root / rel)
        else:
            prompts.render_text(what, lang, root / rel)
        if cached is not None:
            with contextlib.suppress(OSError), prompts._atomic_target(cached) as tmp:
                shutil.copyfile(root / rel, tmp)

    written: list[Path] = []
    failure: PromptError | None = None
    # espeak-ng and sox are single-threaded: one job per core.
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        jobs = {pool.submit(render, *job): job for job in todo}
        for future in as_completed(jobs):
            rel, *_, digest = jobs[future]
            try:
                future.result()
            except PromptError as exc:
                failure = failure or exc
                continue
            manifest[rel] = digest
            written.append(root / rel)
    for lang in TEXTS:
        for name, parts in COMPOSITES.items():
            rel = f"{lang}/{name}.wav"
            if rel not in stale or failure is not None:
                continue
            try:
                with prompts._atomic_target(root / rel) as tmp_wav:
                    run_limited(
                        [SOX, "-V1", *(str(root / lang / f"{p}.wav") for p in parts),
                         "-t", "wav", str(tmp_wav)]
                    )  # fmt: skip
            except PromptError as exc:
                failure = exc
                continue
            manifest[rel] = digests[rel]
            written.append(root / rel)
    if written:
        root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".manifest-", dir=root)
        with os.fdopen(fd, "w") as f:
            json.dump(manifest, f, indent=1, sort_keys=True)
        os.chmod(tmp, 0o644)
        os.replace(tmp, manifest_file)
    if failure is not None:
        raise failure
    if written:
        log.info("stock prompts: rendered %d into %s", len(written), root)
    return written


def agent_id_announcement(
    agent_id: str, lang: str = "zh", dest: Path | None = None, root: Path | None = None
) -> Path:
    """One WAV saying "工号 8 0 0 1 为您服务" ("Agent 8 0 0 1 at your service"):
    the stock pieces joined by sox. Cached: by default in
    `<stock>/agent-id/<lang>/<agent_id>.wav`, made only when missing or older
    than its pieces. Returns its path. Raises PromptError when the ID is not
    digits (at most 16) or sox fails; ValueError for an unknown language."""
    if not agent_id.isascii() or not agent_id.isdigit() or len(agent_id) > 16:
        raise PromptError(f"agent ID {agent_id!r}: digits only, at most 16")
    if lang not in TEXTS:
        raise ValueError(f"no stock prompts in {lang!r}")
    root = root or stock_dir()
    pieces = [
        stock_path("agent-id-prefix", lang, root),
        *(stock_path(f"digit-{d}", lang, root) for d in agent_id),
        stock_path("agent-id-suffix", lang, root),
    ]
    dest = Path(dest) if dest else root / "agent-id" / lang / f"{agent_id}.wav"
    try:
        newest = max(p.stat().st_mtime_ns for p in pieces)
    except FileNotFoundError:
        ensure_stock(root)
        newest = max(p.stat().st_mtime_ns for p in pieces)
    try:
        if dest.stat().st_mtime_ns >= newest:
            return dest
    except FileNotFoundError:
        pass
    with prompts._atomic_target(dest) as tmp:
        # Each piece keeps its 50 ms of air at both ends: a natural pause.
        run_limited([SOX, "-V1", *map(str, pieces), "-t", "wav", str(tmp)])
    return dest
