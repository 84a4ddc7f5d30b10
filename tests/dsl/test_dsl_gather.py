"""``gather``: Plivo GetDigits' parameters and defaults, retries with distinct prompts,
type-ahead, barge-in, and keys never lost. Virtual time (autojump clock)."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing
from dslkit import (
    INVALID,
    INVALID_2,
    NO_INPUT,
    NO_INPUT_2,
    PROMPT,
    PROMPT_2,
    WELCOME,
    make_flow,
    tone,
)

from callflow import Call, CallEnded, Digits, Invalid, NoInput, RuntimeConfig
from callflow.protocol import ClearAudio
from callflow.runtime import GatherResult
from callflow.testing import FakePlivo

Outcome = tuple[GatherResult, float]  # the result and the virtual time gather took


def gathering(outcomes: list[Outcome], **kwargs: object) -> object:
    """A flow that runs one ``gather(**kwargs)`` and records its result and duration."""

    async def body(call: Call) -> None:
        began = trio.current_time()
        result = await call.gather(**kwargs)  # type: ignore[arg-type]
        outcomes.append((result, trio.current_time() - began))

    return make_flow(body)


async def run(outcomes: list[Outcome], script: object = None, **kwargs: object) -> FakePlivo:
    async with FakePlivo(gathering(outcomes, **kwargs)) as caller:  # type: ignore[arg-type]
        if script is not None:
            await script(caller)  # type: ignore[operator]
        await caller.hung_up()
    return caller


# -- timeout ---------------------------------------------------------------------------------


async def test_first_key_timeout_defaults_to_5s(autojump_clock: trio.testing.MockClock) -> None:
    outcomes: list[Outcome] = []
    await run(outcomes)
    assert outcomes == [(NoInput(), pytest.approx(5.0))]


async def test_timeout_starts_when_the_prompt_has_played(
    autojump_clock: trio.testing.MockClock,
) -> None:
    outcomes: list[Outcome] = []

    async def script(caller: FakePlivo) -> None:
        await caller.hears(PROMPT)

    caller = await run(outcomes, script, prompt=PROMPT, timeout=2.5)
    assert outcomes == [(NoInput(), pytest.approx(PROMPT.duration_s + 2.5))]
    assert caller.heard_s == pytest.approx(PROMPT.duration_s)


async def test_a_key_just_inside_the_timeout_counts(autojump_clock: trio.testing.MockClock) -> None:
    outcomes: list[Outcome] = []

    async def script(caller: FakePlivo) -> None:
        await trio.sleep(4.9)
        await caller.press("7")

    await run(outcomes, script)
    # "7" at 4.9 s, then the 2 s inter-digit timeout ends the input
    assert outcomes == [(Digits("7"), pytest.approx(6.9))]


# -- digit_timeout ---------------------------------------------------------------------------


async def test_digit_timeout_defaults_to_2s(autojump_clock: trio.testing.MockClock) -> None:
    outcomes: list[Outcome] = []

    async def script(caller: FakePlivo) -> None:
        await trio.sleep(1.0)
        await caller.press("12", gap=1.9)  # 1.9 s apart: still one input

    await run(outcomes, script)
    assert outcomes == [(Digits("12"), pytest.approx(1.0 + 1.9 + 2.0))]


async def test_a_key_after_the_digit_timeout_is_kept_for_later(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[object] = []

    async def body(call: Call) -> None:
        got.append(await call.gather(digit_timeout=0.5))
        got.append(await call.wait_dtmf())

    async with FakePlivo(make_flow(body)) as caller:
        await caller.press("34", gap=0.6)
        await caller.hung_up()
    assert got == [Digits("3"), "4"]


# -- finish_on_key ---------------------------------------------------------------------------


async def test_finish_on_key_defaults_to_hash_and_is_not_in_the_value(
    autojump_clock: trio.testing.MockClock,
) -> None:
    outcomes: list[Outcome] = []

    async def script(caller: FakePlivo) -> None:
        await caller.press("12#", gap=0.1)

    await run(outcomes, script)
    assert outcomes == [(Digits("12"), pytest.approx(0.2))]  # ends at "#", no digit timeout


async def test_another_finish_on_key(autojump_clock: trio.testing.MockClock) -> None:
    outcomes: list[Outcome] = []

    async def script(caller: FakePlivo) -> None:
        await caller.press("1#2*", gap=0.1)

    await run(outcomes, script, finish_on_key="*")
    assert outcomes == [(Digits("1#2"), pytest.approx(0.3))]


async def test_empty_finish_on_key_disables_it(autojump_clock: trio.testing.MockClock) -> None:
    outcomes: list[Outcome] = []

    async def script(caller: FakePlivo) -> None:
        await caller.press("12#", gap=0.1)

    await run(outcomes, script, finish_on_key="")
    # "#" is an ordinary (valid) digit now; the input ends by the digit timeout
    assert outcomes == [(Digits("12#"), pytest.approx(0.2 + 2.0))]


async def test_finish_on_key_alone_is_invalid_empty_input(
    autojump_clock: trio.testing.MockClock,
) -> None:
    outcomes: list[Outcome] = []

    async def script(caller: FakePlivo) -> None:
        await caller.press("#")

    await run(outcomes, script)
    assert outcomes == [(Invalid(""), pytest.approx(0.0))]


# -- max_digits / min_digits / valid_digits --------------------------------------------------


async def test_max_digits_stops_at_n_and_leaves_the_rest_pending(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[object] = []

    async def body(call: Call) -> None:
        began = trio.current_time()
        got.append(await call.gather(max_digits=3))
        got.append(trio.current_time() - began)
        await trio.sleep(1.0)
        got.append(call.pending_dtmf())

    async with FakePlivo(make_flow(body)) as caller:
        await caller.press("12345", gap=0.1)
        await caller.hung_up()
    assert got == [Digits("123"), pytest.approx(0.2), "45"]


async def test_max_digits_defaults_to_99(autojump_clock: trio.testing.MockClock) -> None:
    got: list[object] = []
    keys = "1234567890" * 10  # 100 keys

    async def body(call: Call) -> None:
        began = trio.current_time()
        got.append(await call.gather())
        got.append(trio.current_time() - began)
        await trio.sleep(1.0)
        got.append(call.pending_dtmf())

    async with FakePlivo(make_flow(body)) as caller:
        await caller.press(keys, gap=0.05)
        await caller.hung_up()
    assert got == [Digits(keys[:99]), pytest.approx(98 * 0.05), keys[99:]]


async def test_fewer_than_min_digits_is_invalid(autojump_clock: trio.testing.MockClock) -> None:
    outcomes: list[Outcome] = []

    async def script(caller: FakePlivo) -> None:
        await caller.press("12#")

    await run(outcomes, script, min_digits=4)
    assert outcomes == [(Invalid("12"), pytest.approx(0.2))]


async def test_the_digit_timeout_with_too_few_digits_is_invalid(
    autojump_clock: trio.testing.MockClock,
) -> None:
    outcomes: list[Outcome] = []

    async def script(caller: FakePlivo) -> None:
        await caller.press("12")  # then nothing: the 2 s digit timeout ends the input

    await run(outcomes, script, min_digits=3)
    assert outcomes == [(Invalid("12"), pytest.approx(0.1 + 2.0))]


async def test_min_digits_reached_is_digits(autojump_clock: trio.testing.MockClock) -> None:
    outcomes: list[Outcome] = []

    async def script(caller: FakePlivo) -> None:
        await caller.press("1234#")

    await run(outcomes, script, min_digits=4)
    assert outcomes == [(Digits("1234"), pytest.approx(0.4))]


@pytest.mark.parametrize(
    ("keys", "expected", "ends"),
    [
        ("1A", "1A", "digit timeout"),
        ("D", "D", "digit timeout"),
        ("12B3", "12B3", "digit timeout"),
        ("A2#", "A2", "finish key"),
        ("12B3", "12B", "max digits"),
    ],
)
async def test_default_valid_digits_refuse_letters(
    autojump_clock: trio.testing.MockClock, keys: str, expected: str, ends: str
) -> None:
    outcomes: list[Outcome] = []

    async def script(caller: FakePlivo) -> None:
        await caller.press(keys)

    await run(outcomes, script, max_digits=3 if ends == "max digits" else 99)
    result, elapsed = outcomes[0]
    assert result == Invalid(expected)
    # a bad key spoils the input without ending it: it ends as any input does
    last_key = 0.1 * (len(expected) - (ends != "finish key"))
    assert elapsed == pytest.approx(last_key + (2.0 if ends == "digit timeout" else 0.0))


async def test_default_valid_digits_take_star_and_hash(
    autojump_clock: trio.testing.MockClock,
) -> None:
    outcomes: list[Outcome] = []

    async def script(caller: FakePlivo) -> None:
        await caller.press("0*9#")

    await run(outcomes, script, finish_on_key="", max_digits=4)
    assert outcomes == [(Digits("0*9#"), pytest.approx(0.3))]


async def test_custom_valid_digits(autojump_clock: trio.testing.MockClock) -> None:
    outcomes: list[Outcome] = []

    async def script(caller: FakePlivo) -> None:
        await caller.press("123")

    await run(outcomes, script, valid_digits="12")
    assert outcomes == [(Invalid("123"), pytest.approx(0.2 + 2.0))]  # at the digit timeout


@pytest.mark.parametrize(
    ("finish_on_key", "keys", "expected"),
    [
        ("#", "12#", Digits("12")),  # the finish key ends the input though not a valid digit
        ("", "12#", Invalid("12#")),  # no finish key: "#" is just a key, and not a valid one
        ("*", "1*", Digits("1")),
        ("*", "1#", Invalid("1#")),
    ],
)
async def test_valid_digits_without_hash(
    autojump_clock: trio.testing.MockClock,
    finish_on_key: str,
    keys: str,
    expected: GatherResult,
) -> None:
    outcomes: list[Outcome] = []

    async def script(caller: FakePlivo) -> None:
        await caller.press(keys)

    await run(outcomes, script, valid_digits="0123456789", finish_on_key=finish_on_key)
    finished = keys[-1] == finish_on_key  # else the digit timeout ends the input
    elapsed = 0.1 * (len(keys) - 1) + (0.0 if finished else 2.0)
    assert outcomes == [(expected, pytest.approx(elapsed))]


@pytest.mark.parametrize(
    ("keys", "expected"), [("", "none"), ("7", "invalid 7"), ("12#", "digits 12")]
)
async def test_results_pattern_match(
    autojump_clock: trio.testing.MockClock, keys: str, expected: str
) -> None:
    got: list[str] = []

    async def body(call: Call) -> None:
        match await call.gather(PROMPT, valid_digits="123456#", sensitive=True):
            case Digits(value):
                got.append(f"digits {value}")
            case Invalid(value):
                got.append(f"invalid {value}")
            case NoInput():
                got.append("none")

    async with FakePlivo(make_flow(body)) as caller:
        await caller.hears(PROMPT)
        await caller.press(keys)
        await caller.hung_up()
    assert got == [expected]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"retries": 0}, "retries counts attempts"),
        ({"min_digits": 3, "max_digits": 2}, "min_digits <= max_digits"),
        ({"min_digits": 0}, "min_digits <= max_digits"),
        ({"finish_on_key": "##"}, "finish_on_key"),
        ({"finish_on_key": "x"}, "finish_on_key"),
        ({"valid_digits": "12x"}, "valid_digits"),
        ({"timeout": 0}, "positive seconds"),
        ({"digit_timeout": -1}, "positive seconds"),
    ],
)
async def test_arguments_plivo_would_refuse(
    autojump_clock: trio.testing.MockClock, kwargs: dict[str, object], match: str
) -> None:
    errors: list[BaseException] = []

    async def body(call: Call) -> None:
        with pytest.raises(ValueError, match=match) as info:
            await call.gather(**kwargs)  # type: ignore[arg-type]
        errors.append(info.value)

    async with FakePlivo(make_flow(body)) as caller:
        await caller.hung_up()
    assert len(errors) == 1


# -- retries with distinct prompts -------------------------------------------------------------


async def test_retries_play_the_no_input_and_invalid_prompts_each_in_turn(
    autojump_clock: trio.testing.MockClock,
) -> None:
    outcomes: list[Outcome] = []

    async def script(caller: FakePlivo) -> None:
        await caller.hears(PROMPT)  # attempt 1: silence
        began = trio.current_time()
        await caller.hears(NO_INPUT)
        assert trio.current_time() - began == pytest.approx(5.0 + NO_INPUT.duration_s)
        await caller.hears(PROMPT)  # attempt 2: a bad key
        await caller.press("A")
        await caller.hears(INVALID)
        await caller.hears(PROMPT)  # attempt 3: good
        await caller.press("42#")

    caller = await run(
        outcomes, script, prompt=PROMPT, no_input=NO_INPUT, invalid=INVALID, retries=3
    )
    assert outcomes[0][0] == Digits("42")
    assert not [r for r in caller.received if isinstance(r.command, ClearAudio)]


async def test_retries_counts_attempts_in_all(autojump_clock: trio.testing.MockClock) -> None:
    outcomes: list[Outcome] = []

    async def script(caller: FakePlivo) -> None:
        await caller.hears(PROMPT)
        await caller.hears(NO_INPUT)
        await caller.hears(PROMPT)

    caller = await run(outcomes, script, prompt=PROMPT, no_input=NO_INPUT, retries=2)
    # two attempts, one re-prompt between them, none after the last
    total = 2 * PROMPT.duration_s + NO_INPUT.duration_s
    assert outcomes == [(NoInput(), pytest.approx(total + 2 * 5.0))]
    assert caller.heard_s == pytest.approx(total)


async def test_default_is_one_attempt(autojump_clock: trio.testing.MockClock) -> None:
    outcomes: list[Outcome] = []

    async def script(caller: FakePlivo) -> None:
        await caller.hears(PROMPT)
        await caller.press("9A")

    caller = await run(outcomes, script, prompt=PROMPT, no_input=NO_INPUT, invalid=INVALID)
    assert outcomes[0][0] == Invalid("9A")
    assert caller.heard_s == pytest.approx(PROMPT.duration_s)  # no invalid prompt played


async def test_the_last_attempts_outcome_is_returned(
    autojump_clock: trio.testing.MockClock,
) -> None:
    outcomes: list[Outcome] = []

    async def script(caller: FakePlivo) -> None:
        await caller.hears(PROMPT)
        await caller.press("1#")  # too short
        await caller.hears(INVALID)
        await caller.hears(PROMPT)  # then silence

    await run(
        outcomes, script, prompt=PROMPT, invalid=INVALID, no_input=NO_INPUT, min_digits=2, retries=2
    )
    assert outcomes[0][0] == NoInput()


async def test_escalating_list_prompts(autojump_clock: trio.testing.MockClock) -> None:
    outcomes: list[Outcome] = []

    async def script(caller: FakePlivo) -> None:
        await caller.hears(PROMPT)
        await caller.hears(NO_INPUT)
        await caller.hears(PROMPT_2)
        await caller.press("B")
        await caller.hears(INVALID)  # the first invalid: counted per event, not per attempt
        await caller.hears(PROMPT_2)  # the last entry repeats
        await caller.hears(NO_INPUT_2)
        await caller.hears(PROMPT_2)

    caller = await run(
        outcomes,
        script,
        prompt=[PROMPT, PROMPT_2],
        no_input=[NO_INPUT, NO_INPUT_2],
        invalid=[INVALID, INVALID_2],
        retries=4,
    )
    assert outcomes[0][0] == NoInput()
    heard = (
        PROMPT.duration_s
        + NO_INPUT.duration_s
        + 3 * PROMPT_2.duration_s
        + INVALID.duration_s
        + NO_INPUT_2.duration_s
    )
    assert caller.heard_s == pytest.approx(heard)


# -- type-ahead and barge-in -------------------------------------------------------------------


async def test_type_ahead_counts_and_skips_a_barge_in_prompt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[object] = []

    async def body(call: Call) -> None:
        await call.say(WELCOME)  # no barge-in: keys pressed now wait
        got.append(await call.gather(PROMPT, max_digits=3))

    async with FakePlivo(make_flow(body)) as caller:
        await trio.sleep(0.5)
        await caller.press("12")
        await caller.hears(WELCOME)
        await caller.press("3")
        await caller.hung_up()
    assert got == [Digits("123")]
    assert caller.heard_s == pytest.approx(WELCOME.duration_s)  # PROMPT never played
    assert not [r for r in caller.received if isinstance(r.command, ClearAudio)]


async def test_keys_during_the_prompt_interrupt_it_and_count(
    autojump_clock: trio.testing.MockClock,
) -> None:
    long_prompt = tone(4.0, 440)
    outcomes: list[Outcome] = []

    async def script(caller: FakePlivo) -> None:
        await trio.sleep(1.0)
        await caller.press("5")
        clear = await caller.wait_for(ClearAudio)
        assert clear.time == pytest.approx(1.0)
        await caller.press("6#")

    caller = await run(outcomes, script, prompt=long_prompt)
    assert outcomes == [(Digits("56"), pytest.approx(1.1))]
    assert caller.heard_s == pytest.approx(1.0, abs=0.001)
    assert caller.cleared[0].dropped_s == pytest.approx(3.0, abs=0.001)


async def test_no_barge_in_lets_the_prompt_finish_and_keeps_the_keys(
    autojump_clock: trio.testing.MockClock,
) -> None:
    long_prompt = tone(4.0, 440)
    outcomes: list[Outcome] = []

    async def script(caller: FakePlivo) -> None:
        await trio.sleep(1.0)
        await caller.press("78")
        await caller.hears(long_prompt)
        await caller.press("#")

    caller = await run(outcomes, script, prompt=long_prompt, barge_in=False)
    assert outcomes == [(Digits("78"), pytest.approx(4.0))]
    assert not [r for r in caller.received if isinstance(r.command, ClearAudio)]


async def test_no_barge_in_plays_the_prompt_despite_type_ahead(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[object] = []

    async def body(call: Call) -> None:
        await call.wait_dtmf()  # "0": start
        await trio.sleep(0.5)
        got.append(await call.gather(PROMPT, barge_in=False))

    async with FakePlivo(make_flow(body)) as caller:
        await caller.press("04#")
        await caller.hears(PROMPT)
        await caller.hung_up()
    assert got == [Digits("4")]


async def test_flush_dtmf_discards_type_ahead(autojump_clock: trio.testing.MockClock) -> None:
    got: list[object] = []

    async def body(call: Call) -> None:
        await call.say(WELCOME)
        got.append(call.flush_dtmf())
        got.append(call.pending_dtmf())
        got.append(await call.gather(PROMPT))

    async with FakePlivo(make_flow(body)) as caller:
        await trio.sleep(0.5)
        await caller.press("99#")
        await caller.hears(WELCOME)
        await caller.hears(PROMPT)  # not skipped: the type-ahead is gone
        await caller.press("1#")
        await caller.hung_up()
    assert got == ["99#", "", Digits("1")]


async def test_keys_during_a_reprompt_interrupt_it_and_count_next(
    autojump_clock: trio.testing.MockClock,
) -> None:
    outcomes: list[Outcome] = []

    async def script(caller: FakePlivo) -> None:
        await caller.hears(PROMPT)
        await trio.sleep(5.2)  # NoInput; NO_INPUT plays from 6.0
        await caller.press("4")
        await caller.wait_for(ClearAudio)
        await caller.press("#")

    caller = await run(outcomes, script, prompt=PROMPT, no_input=NO_INPUT, retries=2)
    assert outcomes[0][0] == Digits("4")
    # the reprompt was cut after 0.2 s and the second PROMPT skipped (type-ahead)
    assert caller.heard_s == pytest.approx(PROMPT.duration_s + 0.2, abs=0.001)


@pytest.mark.parametrize("gap", [0.0, 0.05, 0.3, 0.7])
async def test_keys_pressed_during_prompts_are_never_lost(
    autojump_clock: trio.testing.MockClock, gap: float
) -> None:
    got: list[object] = []

    async def body(call: Call) -> None:
        got.extend([await call.gather(PROMPT, max_digits=2) for _ in range(3)])
        got.append(await call.gather(PROMPT_2, max_digits=2, barge_in=False))

    async with FakePlivo(make_flow(body)) as caller:
        await trio.sleep(0.5)  # during the first prompt
        await caller.press("12345678", gap=gap)
        await caller.hung_up()
    assert got == [Digits("12"), Digits("34"), Digits("56"), Digits("78")]


# -- hangup --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("keys", "at"), [("", 0.5), ("", 3.0), ("12", 1.5)])
async def test_a_hangup_during_gather_raises_call_ended(
    autojump_clock: trio.testing.MockClock, keys: str, at: float
) -> None:
    """While the prompt plays (0.5 s), while waiting for the first key (3.0 s), or between
    keys: the flow's gather raises ``CallEnded`` at once."""
    got: list[object] = []

    async def body(call: Call) -> None:
        try:
            await call.gather(PROMPT)
        except CallEnded as exc:
            got.append((exc.reason, trio.current_time()))
            raise

    async with FakePlivo(make_flow(body)) as caller:
        if keys:
            await caller.hears(PROMPT)
            await caller.press(keys)
        await trio.sleep_until(at)
        await caller.hang_up()
        await caller.hung_up()
    assert got == [("stream closed by Plivo (code 1000)", pytest.approx(at))]


async def test_keys_that_arrived_before_the_hangup_still_count(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[object] = []

    async def body(call: Call) -> None:
        got.append(await call.gather(PROMPT))
        got.append(call.ended)

    async with FakePlivo(make_flow(body)) as caller:
        await caller.hears(PROMPT)
        await caller.press("42#", gap=0.0)
        await caller.hang_up()  # in the same instant: before gather has taken a key
        await caller.hung_up()
    assert got == [Digits("42"), True]


async def test_a_hangup_during_menu_raises_call_ended(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[str] = []

    async def body(call: Call) -> None:
        try:
            await call.menu(PROMPT, {"1": "one"}, no_input=NO_INPUT)
        except CallEnded:
            got.append("ended")
            raise

    async with FakePlivo(make_flow(body)) as caller:
        await caller.hears(PROMPT)
        await caller.hears(NO_INPUT)
        await caller.hang_up()
        await caller.hung_up()
    assert got == ["ended"]


# -- sensitive ---------------------------------------------------------------------------------

PIN = "97531"


async def sensitive_call(caplog: pytest.LogCaptureFixture, *, sensitive: bool) -> list[object]:
    caplog.set_level(logging.DEBUG)  # every logger, every level
    got: list[object] = []

    async def body(call: Call) -> None:
        got.append(await call.gather(PROMPT, min_digits=6, retries=2, sensitive=sensitive))

    async with FakePlivo(make_flow(body), call_id="pin-call") as caller:
        await trio.sleep(0.3)
        await caller.press(PIN + "#")  # too short: Invalid, then the second attempt
        await caller.hears(None)
        await caller.press(PIN + "8#")
        await caller.hung_up()
    return got


async def test_sensitive_keeps_the_digits_out_of_every_log_record(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    got = await sensitive_call(caplog, sensitive=True)
    assert got == [Digits(PIN + "8", sensitive=True)]
    assert PIN not in repr(got[0])
    assert repr(got[0]) == "Digits('******')"
    assert str(got[0]) == "Digits('******')"
    attempts = [r.getMessage() for r in caplog.records if "gather attempt" in r.getMessage()]
    assert len(attempts) == 2  # logging was on, and masked
    assert "Invalid('*****')" in attempts[0]
    assert {r.name for r in caplog.records} >= {"callflow.call"}
    for record in caplog.records:
        assert PIN not in record.getMessage()
        assert PIN not in repr(record.args)
        assert PIN not in (record.exc_text or "")


async def test_without_sensitive_the_digits_are_logged(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    # the control for the test above: the same call does log the digits when not sensitive
    got = await sensitive_call(caplog, sensitive=False)
    assert got == [Digits(PIN + "8")]
    assert any(PIN in r.getMessage() for r in caplog.records)


async def test_a_full_type_ahead_buffer_logs_no_key(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="callflow")
    got: list[object] = []

    async def body(call: Call) -> None:
        await call.say(WELCOME)
        got.append(await call.gather(sensitive=True))

    config = RuntimeConfig(dtmf_buffer=4)
    async with FakePlivo(make_flow(body), config=config, call_id="pin-call") as caller:
        await caller.press("864213#", gap=0.1)
        await caller.hung_up()
    assert got == [Digits("213", sensitive=True)]  # the oldest keys were dropped
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    for message in warnings:
        assert "dropped the oldest key" in message
        assert not any(repr(key) in message for key in "864213")


def test_sensitive_results_compare_by_their_value() -> None:
    # ``sensitive`` only masks the repr: a PIN compares, hashes and matches as its digits
    assert Digits("1234", sensitive=True) == Digits("1234")
    assert hash(Digits("1234", sensitive=True)) == hash(Digits("1234"))
    assert Invalid("12", sensitive=True) == Invalid("12")
    assert Digits("1234", sensitive=True) != Digits("4321", sensitive=True)
    match Digits("1234", sensitive=True):
        case Digits("1234"):
            pass
        case _:  # pragma: no cover
            pytest.fail("a sensitive Digits did not match its value")


async def test_an_invalid_input_is_consumed_whole_before_the_reprompt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Plivo's GetDigits validates the whole input once it has ended (finish key, numDigits or
    digit timeout): keys typed after a bad one belong to the rejected input. They must not
    become the next attempt's answer behind the caller's back."""
    got: list[object] = []

    async def body(call: Call) -> None:
        await call.say(WELCOME)  # no barge-in: the caller types ahead
        got.append(await call.gather(PROMPT, retries=2, invalid=INVALID))

    async with FakePlivo(make_flow(body)) as caller:
        await trio.sleep(0.5)
        await caller.press("9A12#")  # a slip of the finger, then the rest of the number
        await caller.hears(WELCOME)
        await caller.hears(INVALID)  # the whole "9A12" was refused ...
        await caller.hears(PROMPT)  # ... and the caller is asked again
        await caller.press("34#")
        await caller.hung_up()
    assert got == [Digits("34")]
