"""FakePlivo's checks on what the caller heard: ``hears`` after a barge-in, what a failed
``hears`` says it heard instead, awaitable prompt starts, and ``press`` reporting when each key
went out. Virtual time (autojump clock)."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from dslkit import INVALID, LONG, PROMPT, PROMPT_2, RATE, make_flow

from callflow import Call
from callflow.audio import Audio
from callflow.testing import FakePlivo


async def test_hears_after_a_barge_in_compares_from_the_cut(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The caller stopped ``LONG`` after 1 s; what they hear next starts at the cut, with no
    ``skip_heard()`` needed for the part of ``LONG`` they heard."""

    async def body(call: Call) -> None:
        await call.say(PROMPT)
        await call.say(LONG, barge_in=True)
        await call.say(PROMPT_2)

    async with FakePlivo(make_flow(body)) as caller:
        await caller.hears(PROMPT)  # heard whole: compared from the cursor, as before
        await trio.sleep(1.0)
        await caller.press("1")
        await caller.hears(PROMPT_2)
        await caller.hung_up()
    assert caller.heard_s == pytest.approx(PROMPT.duration_s + 1.0 + PROMPT_2.duration_s)


async def test_a_prompt_heard_whole_before_a_later_cut_still_matches(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def body(call: Call) -> None:
        await call.say(PROMPT)
        await call.say(LONG, barge_in=True)
        await call.say(PROMPT_2)

    async with FakePlivo(make_flow(body)) as caller:
        await trio.sleep(PROMPT.duration_s + 1.0)
        await caller.press("1")  # cuts LONG; PROMPT was heard whole before it
        await caller.hears(PROMPT)
        await caller.hears(PROMPT_2)
        await caller.hung_up()


async def test_a_failed_hears_names_the_prompt_heard_instead(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def body(call: Call) -> None:
        await call.say(INVALID)
        await call.say(PROMPT_2)

    async with FakePlivo(make_flow(body), prompts={"invalid": INVALID}) as caller:
        with pytest.raises(AssertionError, match=r"heard instead, from 0\.00 s .*'invalid'"):
            await caller.hears(PROMPT)
        await caller.hung_up()


async def test_a_failed_hears_describes_other_audio(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def body(call: Call) -> None:
        await call.say(INVALID)  # a 660 Hz tone
        await call.say(PROMPT_2)

    async with FakePlivo(make_flow(body)) as caller:
        with pytest.raises(
            AssertionError, match=r"other audio \(-\d+ dBFS, strongest near 66\d Hz"
        ):
            await caller.hears(PROMPT)
        await caller.hung_up()


async def test_a_failed_hears_says_when_the_caller_heard_silence(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def body(call: Call) -> None:
        await call.say(Audio.silence(0.4, RATE))

    async with FakePlivo(make_flow(body)) as caller:
        with pytest.raises(
            AssertionError, match=r"heard instead, from 0\.00 s into the call: 0\.40 s of silence"
        ):
            await caller.hears(PROMPT)


async def test_prompt_starts_are_timestamped_and_awaitable(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def body(call: Call) -> None:
        await trio.sleep(0.5)
        await call.say(PROMPT)
        await trio.sleep(1.0)
        await call.say(LONG, barge_in=True)
        await call.say(PROMPT_2)

    async with FakePlivo(make_flow(body)) as caller:
        assert await caller.prompt_started() == pytest.approx(0.5)
        await caller.hears(PROMPT)
        began = await caller.prompt_started()  # the next one, not PROMPT's again
        assert began == pytest.approx(0.5 + PROMPT.duration_s + 1.0)
        await trio.sleep(0.3)
        await caller.press("1")
        assert await caller.prompt_started() == pytest.approx(began + 0.3)  # PROMPT_2's
        await caller.hung_up()
    assert caller.prompt_starts == pytest.approx([0.5, began, began + 0.3])


async def test_prompt_started_raises_when_the_call_ends_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def body(call: Call) -> None:
        await call.say(PROMPT)

    async with FakePlivo(make_flow(body)) as caller:
        await caller.prompt_started()
        with pytest.raises(AssertionError, match="call ended before another prompt started"):
            await caller.prompt_started()


async def test_press_returns_when_each_key_went_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    keys: list[str] = []

    async def body(call: Call) -> None:
        keys.extend([await call.wait_dtmf() for _ in range(3)])
        await call.hangup()

    async with FakePlivo(make_flow(body)) as caller:
        await trio.sleep(1.0)
        sent = await caller.press("123", gap=0.25)
        assert trio.current_time() == pytest.approx(1.5)
        await caller.hung_up()
        assert await caller.press("4") == []  # the call is over: the key went nowhere
    assert sent == pytest.approx([1.0, 1.25, 1.5])
    assert keys == ["1", "2", "3"]
