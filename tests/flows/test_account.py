"""The bundled text-only flow: "press or say", the figures spoken as they are. Virtual time,
with the offline engine the project installs and the offline recognizer."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from callflow.audio import Audio
from callflow.protocol import Format
from callflow.testing import FakePlivo
from callflow.voice import Text, TtsUnavailable, default_tts
from flows.account import TEXT, account


@pytest.fixture(scope="module")
def rendered() -> dict[str, Audio]:
    """The flow's fixed prompts, rendered ahead as ``callflow prompts build`` does."""
    try:
        renderer = default_tts().renderer()
    except TtsUnavailable as exc:
        pytest.skip(str(exc))
    for words in ("balance", "payments", "agent"):
        renderer.render(Text(words), Format.MULAW_8K)  # what the caller will say
    return {name: renderer.render(text, Format.MULAW_8K) for name, text in TEXT.items()}


async def test_press_1_hears_the_balance(
    autojump_clock: trio.testing.MockClock, rendered: dict[str, Audio]
) -> None:
    async with FakePlivo(account) as caller:
        await caller.hears(rendered["welcome"])
        await caller.hears(rendered["menu"])
        await caller.press("1")
        before = caller.heard_s
        assert await caller.hung_up() == 1000
    # The balance is synthesised while the call runs (on the autojump clock the engine's
    # pauses show as gaps, so it is measured, not compared), then the goodbye plays.
    after_key = caller.heard_s - before
    assert after_key > rendered["goodbye"].duration_s + 1.5


async def test_saying_agent_answers_the_menu(
    autojump_clock: trio.testing.MockClock, rendered: dict[str, Audio]
) -> None:
    async with FakePlivo(account) as caller:
        await caller.hears(rendered["welcome"])
        await caller.prompt_started()  # the menu
        await trio.sleep(2.0)
        await caller.says("agent")
        caller.skip_heard()  # the menu, cut when the caller spoke
        await caller.hears(rendered["agent"])
        await caller.hears(rendered["goodbye"])
        await caller.hung_up()


async def test_silence_is_asked_again_then_goodbye(
    autojump_clock: trio.testing.MockClock, rendered: dict[str, Audio]
) -> None:
    async with FakePlivo(account) as caller:
        await caller.hears(rendered["welcome"])
        for _ in range(2):
            await caller.hears(rendered["menu"])
            await caller.hears(rendered["nothing"])
        await caller.hears(rendered["menu"])
        await caller.hears(rendered["goodbye"])
        await caller.hung_up()
