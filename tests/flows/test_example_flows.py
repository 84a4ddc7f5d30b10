"""The bundled example flows, called through FakePlivo in virtual time."""

from __future__ import annotations

import numpy as np
import pytest
import trio
import trio.testing

from callflow.audio import beep
from callflow.protocol import ClearAudio
from callflow.testing import FakePlivo
from flows.echo import PROMPTS as ECHO_PROMPTS
from flows.echo import echo
from flows.support import PROMPTS, support


async def test_support_sales(autojump_clock: trio.testing.MockClock) -> None:
    async with FakePlivo(support) as caller:
        await caller.hears(PROMPTS.welcome)
        await caller.hears(PROMPTS.menu)
        await caller.press("1")
        await caller.hears(PROMPTS.sales)
        await caller.hears(PROMPTS.goodbye)
        assert await caller.hung_up() == 1000


async def test_support_key_during_the_menu_barges_in(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with FakePlivo(support) as caller:
        await caller.hears(PROMPTS.welcome)
        await trio.sleep(1.0)  # the menu is playing
        pressed = trio.current_time()
        await caller.press("2")
        clear = await caller.wait_for(ClearAudio)
        assert clear.time == pressed  # barge-in costs no (virtual) time
        assert caller.skip_heard() == pytest.approx(1.0, abs=0.001)  # a second of the menu
        await caller.hears(PROMPTS.support)
        await caller.hears(PROMPTS.goodbye)
        await caller.hung_up()


async def test_support_key_during_welcome_skips_the_menu_prompt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with FakePlivo(support) as caller:
        await trio.sleep(0.5)
        await caller.press("1")
        await caller.wait_for(ClearAudio)
        caller.skip_heard()
        await caller.hears(PROMPTS.sales)  # type-ahead: straight to sales
        await caller.hears(PROMPTS.goodbye)
        await caller.hung_up()


async def test_support_no_input_invalid_and_repeat(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with FakePlivo(support) as caller:
        await caller.hears(PROMPTS.welcome)
        await caller.hears(PROMPTS.menu)
        began = trio.current_time()
        await caller.hears(PROMPTS.noinput)  # after the 5 s timeout
        assert trio.current_time() - began >= 5.0
        await caller.hears(PROMPTS.menu)
        await caller.press("7")
        await caller.hears(PROMPTS.invalid)
        await caller.hears(PROMPTS.menu)
        await caller.press("9")  # hear the menu again
        await caller.hears(PROMPTS.menu)
        await caller.press("1")
        await caller.hears(PROMPTS.sales)
        await caller.hears(PROMPTS.goodbye)
        await caller.hung_up()


async def test_support_gives_up_after_three_silent_attempts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with FakePlivo(support) as caller:
        await caller.hears(PROMPTS.welcome)
        for attempt in range(3):
            await caller.hears(PROMPTS.menu)
            if attempt < 2:
                await caller.hears(PROMPTS.noinput)
        await caller.hears(PROMPTS.goodbye)
        await caller.hung_up()


async def test_echo_plays_the_caller_back(autojump_clock: trio.testing.MockClock) -> None:
    voice = beep(0.5, freq_hz=700, rate=16000)
    async with FakePlivo(echo) as caller:
        await caller.hears(ECHO_PROMPTS.echo)
        await caller.speak(voice)
        await trio.sleep(1.0)
        await caller.press("#")
        await caller.hung_up()
    prompt_len = len(ECHO_PROMPTS.echo.resampled(16000))
    echoed = caller.heard.samples[prompt_len:]  # after the prompt: the echo only
    want = voice.samples
    # the silence before the voice echoes as silence; the voice starts with a fade-in
    first = int(np.flatnonzero(echoed)[0] - np.flatnonzero(want)[0])
    assert np.array_equal(echoed[first : first + len(want)], want)
    assert not echoed[first + len(want) :].any()
