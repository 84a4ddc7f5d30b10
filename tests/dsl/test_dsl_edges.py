"""The DSL's edges: a finish key right after a full entry, re-prompts counted per event, keys
during a prompt that cannot be interrupted, and one type-ahead rule for every barge-in prompt.
Virtual time (autojump clock)."""

from __future__ import annotations

import trio
import trio.testing
from dslkit import INVALID, INVALID_2, NO_INPUT, NO_INPUT_2, PROMPT, make_flow

from callflow import Call, Digits
from callflow.testing import FakePlivo

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
