"""What a caller's keys do: IVR menus (IVR语音导航) and the caller PIN (专用密码).

Pure logic, like `decide`: Kamailio's glue (kamailio/kemi.py) keeps a
caller's `Prompting` state between events, feeds it each digit rtpengine
reports and each timer that fires, and carries out the `Step` it gets back:
play a prompt and wait, send the call to a destination, or refuse it.

Prompts play one file at a time: a step that has several to say (the
invalid-key prompt, then the menu again) plays the first and queues the
rest; the timer that fires at the end of one plays the next.
"""

from __future__ import annotations

import functools
import hmac
import wave
from collections.abc import Callable
from pathlib import Path

import msgspec

from appliance.routing.plan import MenuPlan, Plan

WAIT, GO, REFUSE = "wait", "go", "refuse"
MENU, PIN = "menu", "pin"

DIGITS = "0123456789*#"
"""RFC 4733 events 0–11 as keys."""
INTER_DIGIT = 2
"""Seconds to wait for the next digit of an extension number, and for a
single key that also starts one (`1` with extensions 1001–1003)."""
PIN_TIMEOUT = 8
PIN_TRIES = 3
"""Wrong PINs (or silences) before the call is refused."""
MAX_MENU_DEPTH = 8
"""Nested menus deeper than this are a loop in the configuration."""


class Prompting(msgspec.Struct, omit_defaults=True):
    """Where a caller is in a menu or PIN entry."""

    kind: str
    """`menu` or `pin`."""
    hotline: str
    tenant: str
    menu: str = ""
    parents: list[str] = []
    """The menus above this one, nearest last (`0` goes back)."""
    digits: str = ""
    """Keys collected so far (an extension number, a PIN)."""
    tries: int = 0
    """Timeouts and invalid keys (wrong PINs) so far in this menu."""
    queue: list[str] = []
    """Prompts still to play before the caller is waited for."""
    wait: float = 0.0
    """Seconds to wait once the queue has played."""


class Step(msgspec.Struct, frozen=True, omit_defaults=True):
    action: str
    """`wait`: play `play` (if any) and call `on_timeout` after `wait` s
    unless a digit comes first; `go`: send the call to `destination` (or, for
    a PIN, route it as if it had no PIN); `refuse`: play `play`, then answer
    `sip_code`."""
    play: str = ""
    wait: float = 0.0
    destination: str = ""
    pin_ok: bool = False
    sip_code: int = 0
    reason: str = ""
    trace: str = ""


Length = Callable[[str], float]
Stock = Callable[[str], str]


@functools.lru_cache(maxsize=1024)
def _wav_seconds(path: str, mtime_ns: int) -> float:
    with wave.open(path, "rb") as w:
        return w.getnframes() / float(w.getframerate())


def wav_seconds(path: str) -> float:
    """How long a WAV plays (0 for '' or a file that is not a readable WAV)."""
    if not path:
        return 0.0
    try:
        return _wav_seconds(path, Path(path).stat().st_mtime_ns)
    except (OSError, EOFError, wave.Error):
        return 0.0


class Menus:
    """The menu and PIN logic over one plan. `stock(name)` gives the audio
    file of a stock prompt ('' if there is none), `length(file)` how long a
    file plays."""

    def __init__(self, plan: Plan, stock: Stock, length: Length = wav_seconds) -> None:
        self.plan = plan
        self.stock = stock
        self.length = length

    # ------------------------------------------------------------ entry
    def start(self, state: Prompting) -> Step:
        """The first step: the PIN prompt, or the menu's prompt."""
        if state.kind == PIN:
            return self._say(state, [self.stock("pin")], PIN_TIMEOUT, "asking for the PIN")
        menu = self._menu(state)
        if menu is None:
            return self._refuse(state, f"menu {state.menu} does not exist")
        return self._say(state, [menu.prompt], menu.timeout, f"menu {menu.name}")

    # ------------------------------------------------------------ events
    def on_digit(self, state: Prompting, digit: str) -> Step:
        if digit not in DIGITS:
            return Step(WAIT, wait=state.wait, trace=f"ignored event {digit!r}")
        state.queue = []  # a key interrupts the prompt (barge-in)
        if state.kind == PIN:
            return self._pin_digit(state, digit)
        return self._menu_digit(state, digit)

    def on_timeout(self, state: Prompting) -> Step:
        if state.queue:
            file = state.queue.pop(0)
            wait = self.length(file) + (0 if state.queue else state.wait)
            return Step(WAIT, play=file, wait=wait, trace="next prompt")
        if state.kind == PIN:
            if state.digits:
                return self._check_pin(state)
            return self._pin_wrong(state, "no PIN keyed")
        if state.digits:
            return self._dialled(state)
        return self._failed(state, "no key pressed", silent=True)

    # ------------------------------------------------------------ menus
    def _menu(self, state: Prompting) -> MenuPlan | None:
        tenant = self.plan.tenants.get(state.tenant)
        return tenant.menus.get(state.menu) if tenant else None

    def _extension_numbers(self, state: Prompting) -> list[str]:
        return [n for n, e in self.plan.extensions.items() if e.tenant == state.tenant]

    def _menu_digit(self, state: Prompting, digit: str) -> Step:
        menu = self._menu(state)
        if menu is None:
            return self._refuse(state, f"menu {state.menu} does not exist")
        if digit == "#" and state.digits:
            return self._dialled(state)
        state.digits += digit
        if menu.dial_extensions:
            longer = [n for n in self._extension_numbers(state) if n.startswith(state.digits)]
            if longer and longer != [state.digits]:
                # Part of an extension number, or a key that also starts one:
                # wait a moment for the next digit.
                return Step(WAIT, wait=INTER_DIGIT, trace=f"keyed {state.digits}, waiting")
        return self._dialled(state)

    def _dialled(self, state: Prompting) -> Step:
        """The caller has finished keying `state.digits`."""
        menu = self._menu(state)
        keyed, state.digits = state.digits, ""
        if menu is None:
            return self._refuse(state, f"menu {state.menu} does not exist")
        if keyed in menu.keys:
            return self._go(state, menu.keys[keyed], f"key {keyed}")
        if keyed == "0" and state.parents:
            state.menu, state.tries = state.parents.pop(), 0
            return self.start(state)
        if menu.dial_extensions and keyed in self._extension_numbers(state):
            return self._go(state, f"ext:{keyed}", f"extension {keyed} dialled")
        return self._failed(state, f"invalid key {keyed}")

    def _go(self, state: Prompting, destination: str, why: str) -> Step:
        kind, _, name = destination.partition(":")
        if kind == "menu":
            if len(state.parents) >= MAX_MENU_DEPTH:
                return self._refuse(state, "menus nested too deep")
            state.parents.append(state.menu)
            state.menu, state.tries, state.digits = name, 0, ""
            step = self.start(state)
            return msgspec.structs.replace(step, trace=f"{why} → {step.trace}")
        return Step(GO, destination=destination, trace=f"{why} → {destination}")

    def _failed(self, state: Prompting, why: str, silent: bool = False) -> Step:
        """A timeout or an invalid key: say so and ask again, or give up to
        `on_timeout` once the retries are spent."""
        menu = self._menu(state)
        if menu is None:
            return self._refuse(state, f"menu {state.menu} does not exist")
        state.tries += 1
        if state.tries > menu.retries:
            if menu.on_timeout:
                return self._go(state, menu.on_timeout, f"{why}, retries spent")
            return self._refuse(state, f"{why}, retries spent")
        files = (
            [self.stock("invalid-key"), menu.prompt] if why != "no key pressed" else [menu.prompt]
        )
        return self._say(state, files, menu.timeout, f"{why}, try {state.tries}")

    # ------------------------------------------------------------ PIN
    def _pin_digit(self, state: Prompting, digit: str) -> Step:
        pin = self._pin(state)
        if digit == "#":
            return self._check_pin(state)
        state.digits += digit
        if len(state.digits) >= len(pin):
            return self._check_pin(state)  # as many digits as the PIN has: no need for #
        return Step(WAIT, wait=PIN_TIMEOUT, trace="collecting the PIN")

    def _pin(self, state: Prompting) -> str:
        hotline = self.plan.hotlines.get(state.hotline)
        return hotline.pin if hotline else ""

    def _check_pin(self, state: Prompting) -> Step:
        keyed, state.digits = state.digits, ""
        pin = self._pin(state)
        if pin and hmac.compare_digest(keyed.encode(), pin.encode()):
            return Step(GO, pin_ok=True, trace="PIN accepted")
        return self._pin_wrong(state, "wrong PIN")

    def _pin_wrong(self, state: Prompting, why: str) -> Step:
        state.tries += 1
        if state.tries >= PIN_TRIES:
            return self._refuse(state, f"{why}, {state.tries} tries", 403, "Forbidden")
        return self._say(state, [self.stock("pin-wrong")], PIN_TIMEOUT, f"{why}, try {state.tries}")

    # ------------------------------------------------------------ common
    def _say(self, state: Prompting, files: list[str], wait: float, why: str) -> Step:
        """Play `files` in turn, then wait `wait` seconds for a key."""
        files = [f for f in files if f]
        state.wait = float(wait)
        if not files:
            state.queue = []
            return Step(WAIT, wait=wait, trace=why)
        state.queue = files[1:]
        first = files[0]
        return Step(
            WAIT,
            play=first,
            wait=self.length(first) + (0 if state.queue else wait),
            trace=why,
        )

    def _refuse(
        self, state: Prompting, why: str, code: int = 480, reason: str = "Temporarily Unavailable"
    ) -> Step:
        state.queue = []
        play = self.stock("refused" if code == 403 else "thank-you")
        return Step(
            REFUSE,
            play=play,
            wait=self.length(play),
            sip_code=code,
            reason=reason,
            trace=f"{why}: refused {code}",
        )
