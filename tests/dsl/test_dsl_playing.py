"""``call.playing(...)``: background audio that stops with its block, by return, exception or
cancellation; and a cancelled ``play`` leaves nothing playing. Virtual time (autojump clock)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing
from dslkit import GOODBYE, LONG, make_flow, tone

from callflow import Call, CallEnded
from callflow.audio import Audio
from callflow.protocol import ClearAudio
from callflow.testing import FakePlivo

MUSIC = tone(2.0, 330)


async def test_music_loops_while_the_block_runs_and_clears_when_it_returns(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def body(call: Call) -> None:
        async with call.playing(MUSIC, loop=True):
            await trio.sleep(5.0)  # the lookup
        await call.say(GOODBYE)

    async with FakePlivo(make_flow(body)) as caller:
        await caller.hears(MUSIC)
        await caller.hears(MUSIC)  # again: it loops
        await caller.hears(GOODBYE)  # the third round was cut at 5 s
        await caller.hung_up()
    assert [c.time for c in caller.cleared] == [pytest.approx(5.0)]
    assert caller.heard_s == pytest.approx(5.0 + GOODBYE.duration_s, abs=0.001)


async def test_the_block_s_exception_clears_the_music_and_leaves_as_it_is(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[BaseException] = []

    async def body(call: Call) -> None:
        try:
            async with call.playing(MUSIC, loop=True):
                await trio.sleep(1.5)
                raise LookupError("no such account")
        except LookupError as exc:  # not an exception group
            got.append(exc)
        await call.say(GOODBYE)

    async with FakePlivo(make_flow(body)) as caller:
        await caller.hears(GOODBYE)
        await caller.hung_up()
    assert [type(e) for e in got] == [LookupError]
    assert [c.time for c in caller.cleared] == [pytest.approx(1.5)]


async def test_cancelling_the_block_clears_the_music(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def body(call: Call) -> None:
        with trio.move_on_after(3.0):
            async with call.playing(MUSIC, loop=True):
                await trio.sleep_forever()
        await call.say(GOODBYE)

    async with FakePlivo(make_flow(body)) as caller:
        await caller.hears(MUSIC)
        await caller.hears(GOODBYE)
        await caller.hung_up()
    assert [c.time for c in caller.cleared] == [pytest.approx(3.0)]
    assert caller.heard_s == pytest.approx(3.0 + GOODBYE.duration_s, abs=0.001)


async def test_a_hangup_in_the_block_is_a_plain_call_ended(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[BaseException] = []

    async def body(call: Call) -> None:
        try:
            async with call.playing(MUSIC, loop=True):
                await call.wait_dtmf()
        except BaseException as exc:
            got.append(exc)
            raise

    async with FakePlivo(make_flow(body)) as caller:
        await trio.sleep(1.0)
        await caller.hang_up()
        await caller.hung_up()
    assert [type(e) for e in got] == [CallEnded]


async def test_without_loop_the_music_plays_once_and_what_played_is_not_cleared(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def body(call: Call) -> None:
        async with call.playing(MUSIC):
            await trio.sleep(4.0)
        await call.say(GOODBYE)

    async with FakePlivo(make_flow(body)) as caller:
        await caller.hears(MUSIC)
        await caller.hears(GOODBYE)
        await caller.hung_up()
    assert not caller.cleared  # it had all played by then: nothing to clear


async def test_loop_needs_a_source_that_plays_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    errors: list[BaseException] = []

    async def stream() -> AsyncIterator[Audio]:
        yield MUSIC

    async def body(call: Call) -> None:
        with pytest.raises(ValueError, match="loop=True"):
            async with call.playing(stream(), loop=True):
                pass
        with pytest.raises(FileNotFoundError):
            async with call.playing("/nonexistent/music.wav"):
                pass
        errors.append(ValueError())

    async with FakePlivo(make_flow(body)) as caller:
        await caller.hung_up()
    assert len(errors) == 1
    assert caller.heard_s == 0


async def test_a_cancelled_play_leaves_nothing_playing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """``play`` returns once sent; one cancelled while it still feeds a long source clears
    what it queued, so it never plays on unseen."""

    async def body(call: Call) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(call.play, LONG)  # 10 s, fed 5 s ahead
            await trio.sleep(1.0)
            nursery.cancel_scope.cancel()
        await call.say(GOODBYE)

    async with FakePlivo(make_flow(body)) as caller:
        clear = await caller.wait_for(ClearAudio)
        await caller.hears(GOODBYE)
        await caller.hung_up()
    assert clear.time == pytest.approx(1.0)
    assert caller.heard_s == pytest.approx(1.0 + GOODBYE.duration_s, abs=0.001)


async def test_a_hangup_in_the_flow_s_own_nursery_is_a_normal_end(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The documented pattern: tasks of the flow's own nursery each raise CallEnded, the
    nursery raises them as a group, ``except* CallEnded`` catches it; left uncaught, the
    runtime logs it as a hangup, not as a flow error."""
    caught: list[int] = []

    async def body(call: Call) -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(call.wait_dtmf)
                nursery.start_soon(call.say, LONG)
        except* CallEnded as group:
            caught.append(len(group.exceptions))
        async with trio.open_nursery() as nursery:  # and again, uncaught
            nursery.start_soon(call.wait_dtmf)
            nursery.start_soon(call.wait_dtmf)

    caplog.set_level("INFO", logger="callflow")
    async with FakePlivo(make_flow(body)) as caller:
        await trio.sleep(1.0)
        await caller.hang_up()
        await caller.hung_up()
    assert caught == [2]
    assert "stopped: the call ended" in caplog.text
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
