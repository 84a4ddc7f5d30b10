"""callflow's pytest plugin: registered through the ``pytest11`` entry point, it gives the
``fake_plivo`` fixture."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from dslkit import PROMPT, make_flow

from callflow import Call, Digits
from callflow.testing import FakePlivo


def test_the_plugin_is_registered_by_its_entry_point(pytestconfig: pytest.Config) -> None:
    plugin = pytestconfig.pluginmanager.get_plugin("callflow")
    assert plugin is not None
    assert plugin.__name__ == "callflow.testing._plugin"


async def test_the_fake_plivo_fixture_runs_a_flow(
    fake_plivo: type[FakePlivo], autojump_clock: trio.testing.MockClock
) -> None:
    got: list[object] = []

    async def body(call: Call) -> None:
        got.append(await call.gather(PROMPT, max_digits=2))

    async with fake_plivo(make_flow(body)) as caller:
        await caller.hears(PROMPT)
        await caller.press("42")
        assert await caller.hung_up() == 1000
    assert fake_plivo is FakePlivo
    assert got == [Digits("42")]
