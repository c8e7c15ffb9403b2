"""Menus and the caller PIN: `Menus` driven digit by digit and timeout by
timeout, asserting what the caller hears next and where the call goes."""

from __future__ import annotations

import datetime as dt
import wave
from pathlib import Path

import msgspec
import pytest

from appliance.routing.decide import MENU as DECIDE_MENU
from appliance.routing.decide import PIN as DECIDE_PIN
from appliance.routing.decide import RING, VOICEMAIL, Facts, decide, decide_destination
from appliance.routing.ivr import (
    GO,
    INTER_DIGIT,
    MENU,
    PIN,
    PIN_TIMEOUT,
    REFUSE,
    WAIT,
    Menus,
    Prompting,
    wav_seconds,
)
from appliance.routing.plan import (
    ExtensionPlan,
    GroupPlan,
    HotlinePlan,
    MenuPlan,
    Plan,
    RoutePlan,
    TenantPlan,
)

HOTLINE = "4001000001"
LENGTHS = {"main.wav": 4.0, "sub.wav": 3.0, "invalid-key": 1.5, "pin": 2.0, "pin-wrong": 1.0}
NOW = dt.datetime(2026, 3, 6, 3, 0, tzinfo=dt.UTC)


def make_plan(**menu_overrides: object) -> Plan:
    main = MenuPlan(
        name="main",
        prompt="main.wav",
        timeout=5,
        retries=2,
        dial_extensions=True,
        keys={"1": "group:sales", "2": "menu:sub", "9": "voicemail"},
        on_timeout="group:service",
    )
    main = MenuPlan(**{**{f: getattr(main, f) for f in main.__struct_fields__}, **menu_overrides})
    sub = MenuPlan(name="sub", prompt="sub.wav", timeout=4, retries=1, keys={"1": "ext:1003"})
    return Plan(
        version="t",
        compiled_at=0,
        domain="pbx.test",
        hotlines={
            HOTLINE: HotlinePlan(
                number=HOTLINE,
                tenant="acme",
                pin="2468",
                routes=(RoutePlan(to="menu:main"),),
            )
        },
        extensions={
            n: ExtensionPlan(number=n, tenant="acme", ha1="x") for n in ("1001", "1002", "1003")
        }
        | {"2001": ExtensionPlan(number="2001", tenant="other", ha1="x")},
        tenants={
            "acme": TenantPlan(
                slug="acme",
                groups={
                    "sales": GroupPlan(name="sales", members=("ext:1001", "ext:1002")),
                    "service": GroupPlan(name="service", members=("ext:1003",)),
                },
                menus={"main": main, "sub": sub},
            )
        },
    )


def menus(plan: Plan | None = None) -> Menus:
    return Menus(plan or make_plan(), stock=lambda name: name, length=LENGTHS.get)  # type: ignore[arg-type]


def in_menu() -> Prompting:
    return Prompting(kind=MENU, hotline=HOTLINE, tenant="acme", menu="main")


def test_the_menu_prompt_plays_then_the_caller_has_the_timeout() -> None:
    step = menus().start(in_menu())
    assert (step.action, step.play, step.wait) == (WAIT, "main.wav", 4.0 + 5)


def test_a_key_goes_to_its_destination() -> None:
    m, state = menus(make_plan(dial_extensions=False)), in_menu()
    m.start(state)
    step = m.on_digit(state, "9")
    assert (step.action, step.destination) == (GO, "voicemail")


def test_a_key_that_starts_an_extension_number_waits_a_moment_then_counts_as_the_key() -> None:
    m, state = menus(), in_menu()
    m.start(state)
    step = m.on_digit(state, "1")
    assert (step.action, step.wait) == (WAIT, INTER_DIGIT)
    step = m.on_timeout(state)
    assert (step.action, step.destination) == (GO, "group:sales")


def test_an_extension_number_keyed_in_full_goes_to_that_extension() -> None:
    m, state = menus(), in_menu()
    m.start(state)
    for d in "100":
        assert m.on_digit(state, d).action == WAIT
    step = m.on_digit(state, "2")
    assert (step.action, step.destination) == (GO, "ext:1002")


def test_another_tenants_extension_cannot_be_dialled_from_the_menu() -> None:
    m, state = menus(make_plan(keys={"1": "group:sales"})), in_menu()
    m.start(state)
    # 2001 is an extension of another tenant: "2" starts no number of acme's.
    step = m.on_digit(state, "2")
    assert (step.action, step.play) == (WAIT, "invalid-key")


def test_nested_menu_and_zero_goes_back() -> None:
    m, state = menus(), in_menu()
    m.start(state)
    step = m.on_digit(state, "2")
    assert (step.action, step.play, state.menu, state.parents) == (WAIT, "sub.wav", "sub", ["main"])
    step = m.on_digit(state, "0")
    assert (step.play, state.menu, state.parents) == ("main.wav", "main", [])


def test_invalid_key_plays_the_invalid_prompt_then_the_menu_again() -> None:
    m, state = menus(make_plan(dial_extensions=False)), in_menu()
    m.start(state)
    step = m.on_digit(state, "7")
    assert (step.play, step.wait, state.queue) == ("invalid-key", 1.5, ["main.wav"])
    step = m.on_timeout(state)  # the invalid-key prompt has played
    assert (step.play, step.wait) == ("main.wav", 4.0 + 5)


def test_retries_spent_go_to_on_timeout() -> None:
    m, state = menus(), in_menu()
    m.start(state)
    assert m.on_timeout(state).play == "main.wav"  # try 1
    assert m.on_timeout(state).play == "main.wav"  # try 2
    step = m.on_timeout(state)
    assert (step.action, step.destination) == (GO, "group:service")


def test_retries_spent_without_on_timeout_refuse_with_a_goodbye() -> None:
    m, state = menus(make_plan(on_timeout="", dial_extensions=False)), in_menu()
    m.start(state)
    for _ in range(2):
        m.on_digit(state, "8")
        m.on_timeout(state)  # the menu prompt again after the invalid-key prompt
    step = m.on_digit(state, "8")
    assert (step.action, step.sip_code, step.play) == (REFUSE, 480, "thank-you")


def test_a_key_interrupts_the_prompts_still_queued() -> None:
    m, state = menus(make_plan(dial_extensions=False)), in_menu()
    m.start(state)
    m.on_digit(state, "7")
    assert state.queue == ["main.wav"]
    step = m.on_digit(state, "1")
    assert (step.action, step.destination, state.queue) == (GO, "group:sales", [])


def test_a_menu_without_audio_just_waits() -> None:
    m, state = menus(make_plan(prompt="")), in_menu()
    step = m.start(state)
    assert (step.play, step.wait) == ("", 5)


def test_a_missing_menu_is_refused() -> None:
    m = menus()
    state = Prompting(kind=MENU, hotline=HOTLINE, tenant="acme", menu="gone")
    assert m.start(state).action == REFUSE


def test_pin_right_first_time() -> None:
    m, state = menus(), Prompting(kind=PIN, hotline=HOTLINE, tenant="acme")
    step = m.start(state)
    assert (step.play, step.wait) == ("pin", 2.0 + PIN_TIMEOUT)
    for d in "246":
        assert m.on_digit(state, d).action == WAIT
    step = m.on_digit(state, "8")  # as many digits as the PIN has: checked at once
    assert (step.action, step.pin_ok) == (GO, True)


def test_a_short_pin_ended_with_hash_or_silence_is_checked() -> None:
    m, state = menus(), Prompting(kind=PIN, hotline=HOTLINE, tenant="acme")
    m.start(state)
    m.on_digit(state, "2")
    step = m.on_digit(state, "#")
    assert (step.action, step.play, state.tries) == (WAIT, "pin-wrong", 1)
    m.on_digit(state, "2")
    step = m.on_timeout(state)
    assert (step.action, step.play, state.tries) == (WAIT, "pin-wrong", 2)


def test_three_wrong_pins_are_refused_403() -> None:
    m, state = menus(), Prompting(kind=PIN, hotline=HOTLINE, tenant="acme")
    m.start(state)
    for attempt in range(3):
        for d in "1111":
            step = m.on_digit(state, d)
        if attempt < 2:
            assert (step.action, step.play) == (WAIT, "pin-wrong")
    assert (step.action, step.sip_code, step.play) == (REFUSE, 403, "refused")


def test_silence_counts_as_a_wrong_pin() -> None:
    m, state = menus(), Prompting(kind=PIN, hotline=HOTLINE, tenant="acme")
    m.start(state)
    m.on_timeout(state)
    m.on_timeout(state)
    assert m.on_timeout(state).action == REFUSE


def test_decide_sends_pin_hotlines_to_pin_then_to_the_menu() -> None:
    plan = make_plan()
    facts = Facts(called=HOTLINE, caller="13800138000", caller_extension="1001")
    assert decide(plan, facts, NOW).action == DECIDE_PIN
    after = decide(plan, msgspec.structs.replace(facts, pin_ok=True), NOW)
    assert (after.action, after.target) == (DECIDE_MENU, "menu:main")


def test_decide_destination_expands_a_menu_choice_like_a_route() -> None:
    plan = make_plan()
    facts = Facts(called=HOTLINE, caller="13800138000", caller_extension="1001")
    sales = decide_destination(plan, facts, NOW, "group:sales")
    assert sales.action == RING
    assert [t.number for t in sales.ring] == ["1001", "1002"]
    assert decide_destination(plan, facts, NOW, "voicemail").action == VOICEMAIL


def test_wav_seconds_reads_the_header(tmp_path: Path) -> None:
    path = tmp_path / "p.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 12000)
    assert wav_seconds(str(path)) == pytest.approx(1.5)
    assert wav_seconds("") == 0.0
    assert wav_seconds(str(tmp_path / "missing.wav")) == 0.0


def test_an_extensions_own_ringback_plays_when_it_is_dialled() -> None:
    plan = make_plan()
    own = msgspec.structs.replace(plan.extensions["1002"], ringback="/prompts/1002.wav")
    plan = msgspec.structs.replace(plan, extensions={**plan.extensions, "1002": own})
    # An extension dialling 1002 hears 1002's ringback…
    internal = decide(plan, Facts(called="1002", caller_extension="1001"), NOW)
    assert (internal.action, internal.ringback) == (RING, "/prompts/1002.wav")
    # …as does a hotline caller whose choice is 1002, when the hotline has none.
    facts = Facts(called=HOTLINE, caller="13800138000", caller_extension="1001")
    chosen = decide_destination(plan, facts, NOW, "ext:1002")
    assert chosen.ringback == "/prompts/1002.wav"
    assert decide_destination(plan, facts, NOW, "ext:1001").ringback == ""
    # The hotline's own ringback comes first.
    hotline = msgspec.structs.replace(plan.hotlines[HOTLINE], ringback="welcome")
    tenant = msgspec.structs.replace(plan.tenants["acme"], prompts={"welcome": "/p/welcome.wav"})
    plan = msgspec.structs.replace(plan, hotlines={HOTLINE: hotline}, tenants={"acme": tenant})
    assert decide_destination(plan, facts, NOW, "ext:1002").ringback == "/p/welcome.wav"
