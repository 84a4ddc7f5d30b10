"""The time limits of a stream's first phases (the request head, the WebSocket handshake, the
wait for ``start``), kept out of trio's deadline heap (``callflow.runtime._timeouts``), in
virtual time."""

from __future__ import annotations

import math

import trio
import trio.testing

from callflow.runtime._timeouts import PhaseTimeouts


async def test_a_phase_past_its_limit_is_cancelled_at_its_due_time(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    timeouts = PhaseTimeouts()
    await nursery.start(timeouts.run)
    began = trio.current_time()
    with timeouts.limit(10.0) as scope:
        assert scope.deadline == math.inf  # nothing in trio's deadline heap
        await trio.sleep_forever()
    assert scope.cancelled_caught
    assert trio.current_time() - began == 10.0


async def test_a_phase_that_ends_in_time_is_not_cancelled_and_lets_its_scope_go(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    timeouts = PhaseTimeouts()
    await nursery.start(timeouts.run)
    with timeouts.limit(10.0) as scope:
        await trio.sleep(3.0)
    assert not scope.cancelled_caught
    assert len(timeouts) == 1  # its entry waits for its due time, without the scope
    await trio.sleep(8.0)  # past the due time: dropped, nothing cancelled
    assert len(timeouts) == 0
    assert not scope.cancel_called


async def test_limits_of_different_lengths_each_fall_due_in_time(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    timeouts = PhaseTimeouts()
    await nursery.start(timeouts.run)
    ended: dict[str, float] = {}
    began = trio.current_time()

    async def phase(name: str, delay: float, seconds: float) -> None:
        await trio.sleep(delay)
        with timeouts.limit(seconds):
            await trio.sleep_forever()
        ended[name] = trio.current_time() - began

    async with trio.open_nursery() as phases:
        phases.start_soon(phase, "long", 0.0, 30.0)
        phases.start_soon(phase, "short, later", 1.0, 10.0)  # due before the long one
        phases.start_soon(phase, "long, later", 2.0, 30.0)
    assert ended == {"short, later": 11.0, "long": 30.0, "long, later": 32.0}


async def test_without_its_task_a_limit_is_move_on_after(
    autojump_clock: trio.testing.MockClock,
) -> None:
    timeouts = PhaseTimeouts()
    began = trio.current_time()
    with timeouts.limit(5.0) as scope:
        await trio.sleep_forever()
    assert scope.cancelled_caught
    assert trio.current_time() - began == 5.0
    assert len(timeouts) == 0
