"""The DSL's edges: a finish key right after a full entry, and re-prompts counted per event.
Keys during prompts (type-ahead) are in test_dsl_type_ahead.py. Virtual time (autojump
clock)."""

from __future__ import annotations

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
)

from callflow import Call, Digits, Invalid
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
