"""The DSL's edges: a finish key right after a full entry, re-prompts counted per event, keys
during a prompt that cannot be interrupted, and one type-ahead rule for every barge-in prompt.
Virtual time (autojump clock)."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from dslkit import (
    GOODBYE,
    INVALID,
    INVALID_2,
    LONG,
    NO_INPUT,
    NO_INPUT_2,
    PROMPT,
    PROMPT_2,
    WELCOME,
    make_flow,
    voice,
)

from callflow import Call, Digits, Invalid, NoInput, Playback, RuntimeConfig
from callflow.protocol import PlayAudio
from callflow.testing import FakePlivo

# -- a finish key right after a full entry ---------------------------------------------------


async def test_a_finish_key_right_after_a_full_entry_belongs_to_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """``max_digits=4`` and the caller types ``1234#``: one entry. The ``#`` neither stops the
    next prompt nor becomes the next answer."""
    got: list[object] = []

    async def body(call: Call) -> None:
        got.append(await call.gather(PROMPT, max_digits=4))
        got.append(await call.gather(PROMPT_2, max_digits=1, timeout=3.0))

    async with FakePlivo(make_flow(body)) as caller:
        await caller.hears(PROMPT)
        await caller.press("1234#")
        await caller.hears(PROMPT_2)  # not cut by the '#'
        await caller.press("5")
        await caller.hung_up()
    assert got == [Digits("1234"), Digits("5")]
    assert not caller.cleared


async def test_a_typed_ahead_finish_key_after_a_full_entry_is_taken_with_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[object] = []

    async def body(call: Call) -> None:
        await call.wait_dtmf()  # "0": start
        await trio.sleep(1.0)  # meanwhile the caller types the whole entry and '#'
        got.append(await call.gather(PROMPT, max_digits=4))
        got.append(call.pending_dtmf())

    async with FakePlivo(make_flow(body)) as caller:
        await caller.press("01234#")
        await caller.hung_up()
    assert got == [Digits("1234"), ""]


async def test_a_finish_key_after_the_finish_timeout_is_the_next_input(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[object] = []

    async def body(call: Call) -> None:
        got.append(await call.gather(max_digits=4, finish_timeout=0.5))
        got.append(await call.gather(max_digits=1))

    async with FakePlivo(make_flow(body)) as caller:
        await caller.press("1234")
        await trio.sleep(0.6)
        await caller.press("#")
        await caller.hung_up()
    assert got == [Digits("1234"), Invalid("")]  # '#' alone: GetDigits' empty input


async def test_finish_timeout_zero_keeps_the_finish_key_for_the_next_input(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[object] = []

    async def body(call: Call) -> None:
        got.append(await call.gather(max_digits=2, finish_timeout=0))
        await trio.sleep(0.5)
        got.append(call.pending_dtmf())

    async with FakePlivo(make_flow(body)) as caller:
        await caller.press("12#", gap=0.0)
        await caller.hung_up()
    assert got == [Digits("12"), "#"]


async def test_only_the_finish_key_is_taken_after_a_full_entry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Another key right after a full entry is the next input, as before."""
    got: list[object] = []

    async def body(call: Call) -> None:
        got.append(await call.gather(max_digits=2))
        got.append(await call.gather(max_digits=2))

    async with FakePlivo(make_flow(body)) as caller:
        await caller.press("1234")
        await caller.hung_up()
    assert got == [Digits("12"), Digits("34")]


async def test_the_finish_timeout_runs_from_the_last_key_of_the_entry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[object] = []

    async def body(call: Call) -> None:
        got.append(await call.gather(max_digits=2, digit_timeout=1.0))
        await call.say(WELCOME)  # no barge-in: the '#' pressed meanwhile is only typed ahead
        got.append(call.pending_dtmf())

    async with FakePlivo(make_flow(body)) as caller:
        await caller.press("12")
        await trio.sleep(0.9)  # the finish timeout defaults to digit_timeout
        await caller.press("#")
        await caller.press("3")
        await caller.hung_up()
    assert got == [Digits("12"), "3"]


# -- re-prompts counted per event ------------------------------------------------------------


async def test_the_first_no_input_after_an_invalid_gets_the_first_no_input_prompt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[object] = []

    async def body(call: Call) -> None:
        got.append(
            await call.gather(
                PROMPT,
                no_input=[NO_INPUT, NO_INPUT_2],
                invalid=[INVALID, INVALID_2],
                retries=4,
            )
        )

    async with FakePlivo(make_flow(body)) as caller:
        await caller.hears(PROMPT)
        await caller.press("A#")  # attempt 1: invalid
        await caller.hears(INVALID)
        await caller.hears(PROMPT)  # attempt 2: silence
        await caller.hears(NO_INPUT)  # the first no-input, so the first no-input prompt
        await caller.hears(PROMPT)  # attempt 3: silence again
        await caller.hears(NO_INPUT_2)
        await caller.hears(PROMPT)  # attempt 4
        await caller.press("7#")
        await caller.hung_up()
    assert got == [Digits("7")]


async def test_menu_counts_its_re_prompts_per_event(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[object] = []

    async def body(call: Call) -> None:
        got.append(
            await call.menu(
                PROMPT,
                {"1": "sales"},
                no_input=[NO_INPUT, NO_INPUT_2],
                invalid=[INVALID, INVALID_2],
                retries=3,
            )
        )

    async with FakePlivo(make_flow(body)) as caller:
        await caller.hears(PROMPT)  # silence
        await caller.hears(NO_INPUT)
        await caller.hears(PROMPT)
        await caller.press("9")  # the first invalid
        await caller.hears(INVALID)
        await caller.hears(PROMPT)
        await caller.press("1")
        await caller.hung_up()
    assert got == ["sales"]


# -- keys during a prompt that cannot be interrupted ------------------------------------------


async def test_keys_during_an_uninterruptible_prompt_are_kept_by_default(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[object] = []

    async def body(call: Call) -> None:
        got.append(call.uninterruptible_keys)
        await call.say(WELCOME)
        got.append(call.pending_dtmf())

    async with FakePlivo(make_flow(body)) as caller:
        await trio.sleep(0.5)
        await caller.press("12")
        await caller.hears(WELCOME)
        await caller.hung_up()
    assert got == ["keep", "12"]


async def test_discard_drops_the_keys_pressed_during_an_uninterruptible_prompt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """As VoiceXML with ``bargein="false"``: the caller's keys during a prompt that does not
    listen are not heard, so the next menu's prompt plays instead of being skipped."""
    got: list[object] = []

    async def body(call: Call) -> None:
        call.uninterruptible_keys = "discard"
        await call.say(WELCOME)
        got.append(call.pending_dtmf())
        got.append(await call.menu(PROMPT, {"1": "sales", "2": "support"}))

    async with FakePlivo(make_flow(body)) as caller:
        await trio.sleep(0.5)
        await caller.press("1")
        await caller.hears(WELCOME)
        await caller.hears(PROMPT)  # not skipped
        await caller.press("2")
        await caller.hung_up()
    assert got == ["", "support"]


async def test_discard_is_the_runtime_config_default_for_every_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[object] = []

    async def body(call: Call) -> None:
        got.append(call.uninterruptible_keys)
        got.append(await call.gather(PROMPT, barge_in=False, timeout=2.0))

    config = RuntimeConfig(uninterruptible_keys="discard")
    async with FakePlivo(make_flow(body), config=config) as caller:
        await trio.sleep(0.5)
        await caller.press("4#")  # during the prompt: dropped
        await caller.hears(PROMPT)
        await caller.hung_up()
    assert got == ["discard", NoInput()]


async def test_discard_keeps_the_keys_that_interrupt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Only a prompt no key can stop drops keys; a barge-in key is kept for the next input."""
    got: list[object] = []

    async def body(call: Call) -> None:
        call.uninterruptible_keys = "discard"
        got.append(await call.say(LONG, barge_in=True))
        got.append(call.pending_dtmf())

    async with FakePlivo(make_flow(body)) as caller:
        await trio.sleep(1.0)
        await caller.press("5")
        await caller.hung_up()
    assert got[1] == "5"


async def test_an_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="uninterruptible_keys"):
        RuntimeConfig(uninterruptible_keys="drop")  # type: ignore[arg-type]


async def test_flush_starts_the_gather_from_an_empty_buffer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[object] = []

    async def body(call: Call) -> None:
        await call.say(WELCOME)
        got.append(await call.gather(PROMPT, flush=True))
        await call.say(GOODBYE)
        got.append(await call.menu(PROMPT_2, {"1": "one", "2": "two"}, flush=True))

    async with FakePlivo(make_flow(body)) as caller:
        await trio.sleep(0.5)
        await caller.press("99#")  # typed ahead during WELCOME: flushed
        await caller.hears(WELCOME)
        await caller.hears(PROMPT)  # played, not skipped
        await caller.press("1#")
        await trio.sleep(0.1)
        await caller.press("1")  # typed ahead during GOODBYE: flushed too
        await caller.hears(GOODBYE)
        await caller.hears(PROMPT_2)
        await caller.press("2")
        await caller.hung_up()
    assert got == [Digits("1"), "two"]


# -- one type-ahead rule -----------------------------------------------------------------------


async def test_a_pending_key_interrupts_a_barge_in_say_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A key that lands between two prompts answers the second at once: it is not played."""
    got: list[object] = []

    async def body(call: Call) -> None:
        got.append(await call.say(PROMPT, barge_in=True))
        await trio.sleep(0.5)  # the caller presses now, between the prompts
        got.append(await call.say(LONG, barge_in=True))
        got.append(await call.wait_dtmf())

    async with FakePlivo(make_flow(body)) as caller:
        await caller.hears(PROMPT)
        await trio.sleep(0.2)
        await caller.press("3")
        await caller.hung_up()
    assert got == [
        Playback(True, PROMPT.duration_s, PROMPT.duration_s),
        Playback(False, LONG.duration_s, 0.0, "3"),
        "3",
    ]
    sent = sum(1 for r in caller.received if isinstance(r.command, PlayAudio))
    assert sent == 1  # PROMPT's one chunk; nothing of LONG
    assert not caller.cleared  # nothing queued, nothing to clear


async def test_the_same_rule_for_gather_say_and_menu_prompts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[object] = []

    async def body(call: Call) -> None:
        await call.say(WELCOME)  # the caller types ahead during it
        got.append(await call.say(LONG, barge_in="12"))
        got.append(await call.gather(PROMPT, max_digits=1))
        got.append(await call.menu(PROMPT_2, {"2": "two"}))

    async with FakePlivo(make_flow(body)) as caller:
        await trio.sleep(0.5)
        await caller.press("12")
        await caller.hears(WELCOME)
        await caller.hung_up()
    assert got == [Playback(False, LONG.duration_s, 0.0, "1"), Digits("1"), "two"]
    assert caller.heard_s == pytest.approx(WELCOME.duration_s)


async def test_a_pending_key_that_is_not_a_barge_in_key_lets_the_prompt_play(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[object] = []

    async def body(call: Call) -> None:
        await call.say(WELCOME)
        got.append(await call.say(PROMPT, barge_in="*"))
        got.append(call.pending_dtmf())

    async with FakePlivo(make_flow(body)) as caller:
        await trio.sleep(0.5)
        await caller.press("5")
        await caller.hears(WELCOME)
        await caller.hears(PROMPT)
        await caller.hung_up()
    assert got == [Playback(True, PROMPT.duration_s, PROMPT.duration_s), "5"]


# -- gather's barge_in takes say's triggers ---------------------------------------------------


async def test_gather_prompt_stopped_by_speech(autojump_clock: trio.testing.MockClock) -> None:
    got: list[object] = []

    async def body(call: Call) -> None:
        got.append(await call.gather(LONG, barge_in="speech", max_digits=1))

    async with FakePlivo(make_flow(body)) as caller:
        await trio.sleep(1.0)
        await caller.speak(voice(0.5))  # stops the prompt
        await caller.press("4")
        await caller.hung_up()
    assert got == [Digits("4")]
    assert len(caller.cleared) == 1
    assert caller.heard_s < 1.5


async def test_gather_prompt_stopped_only_by_its_keys(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """``barge_in="*"``: a ``5`` during the prompt does not stop it but is typed ahead and
    counts; the ``*`` stops it."""
    got: list[object] = []

    async def body(call: Call) -> None:
        got.append(await call.gather(LONG, barge_in="*", max_digits=2, valid_digits="5*"))

    async with FakePlivo(make_flow(body)) as caller:
        await trio.sleep(1.0)
        await caller.press("5")
        await trio.sleep(1.0)
        assert not caller.cleared
        await caller.press("*")
        await caller.hung_up()
    assert got == [Digits("5*")]
    assert caller.cleared[0].time == pytest.approx(2.0)


async def test_gather_barge_in_with_a_bad_key_is_refused_before_anything_plays(
    autojump_clock: trio.testing.MockClock,
) -> None:
    errors: list[BaseException] = []

    async def body(call: Call) -> None:
        with pytest.raises(ValueError, match="barge-in keys"):
            await call.gather(PROMPT, barge_in="1x")
        with pytest.raises(ValueError, match="finish_timeout"):
            await call.gather(PROMPT, finish_timeout=-1)
        errors.append(ValueError())

    async with FakePlivo(make_flow(body)) as caller:
        await caller.hung_up()
    assert len(errors) == 1
    assert caller.heard_s == 0
