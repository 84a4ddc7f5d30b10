"""The hello flow, called through FakePlivo: the autojump clock makes every wait virtual."""

import trio.testing

from callflow.testing import FakePlivo
from flows.hello import PROMPTS, hello


async def test_sales(autojump_clock: trio.testing.MockClock) -> None:
    async with FakePlivo(hello) as caller:
        await caller.hears(PROMPTS.welcome)
        await caller.hears(PROMPTS.menu)
        await caller.press("1")
        await caller.hears(PROMPTS.sales)
        await caller.hears(PROMPTS.goodbye)
        assert await caller.hung_up() == 1000


async def test_no_key_then_a_wrong_key_then_support(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with FakePlivo(hello) as caller:
        await caller.hears(PROMPTS.welcome)
        await caller.hears(PROMPTS.menu)
        await caller.hears(PROMPTS.noinput)  # after the 5 s timeout: no real time passes
        await caller.hears(PROMPTS.menu)
        await caller.press("7")
        await caller.hears(PROMPTS.invalid)
        await caller.hears(PROMPTS.menu)
        await caller.press("2")
        await caller.hears(PROMPTS.support)
        await caller.hears(PROMPTS.goodbye)
        assert await caller.hung_up() == 1000
