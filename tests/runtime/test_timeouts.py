"""The time limits of a stream's first phases (the request head, the WebSocket handshake, the
wait for ``start``), kept out of trio's deadline heap (``callflow.runtime._timeouts``), in
virtual time."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

from callflow.runtime._sync import Signal
from callflow.runtime._timeouts import PhaseTimeouts


@pytest.fixture
async def timeouts(nursery: trio.Nursery) -> PhaseTimeouts:
    """Time limits whose sweeper runs (in the test's nursery)."""
    running = PhaseTimeouts()
    await nursery.start(running.run)
    return running


async def test_a_phase_past_its_limit_is_cancelled_at_its_due_time(
    timeouts: PhaseTimeouts, autojump_clock: trio.testing.MockClock
) -> None:
    began = trio.current_time()
    with timeouts.limit(10.0) as scope:
        assert scope.deadline == math.inf  # nothing in trio's deadline heap
        await trio.sleep_forever()
    assert scope.cancelled_caught
    assert trio.current_time() - began == 10.0


async def test_a_phase_that_ends_in_time_is_not_cancelled_and_lets_its_scope_go(
    timeouts: PhaseTimeouts, autojump_clock: trio.testing.MockClock
) -> None:
    with timeouts.limit(10.0) as scope:
        await trio.sleep(3.0)
    assert not scope.cancelled_caught
    assert len(timeouts) == 1  # its entry waits for its due time, without the scope
    await trio.sleep(8.0)  # past the due time: dropped, nothing cancelled
    assert len(timeouts) == 0
    assert not scope.cancel_called


async def test_limits_of_different_lengths_each_fall_due_in_time(
    timeouts: PhaseTimeouts, autojump_clock: trio.testing.MockClock
) -> None:
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


# -- waits with a due time (a playback's wait for its next ack: _ackbound) -------------------


def _deadline_entries() -> int:
    """Entries in trio's deadline heap now (live and stale)."""
    return len(trio.lowlevel.current_root_task()._runner.deadlines._heap)  # type: ignore[union-attr]


async def test_a_wait_ends_when_its_signal_is_set_or_at_its_due_time(
    nursery: trio.Nursery,
    timeouts: PhaseTimeouts,
    autojump_clock: trio.testing.MockClock,
) -> None:
    began = trio.current_time()
    signal = Signal()
    nursery.start_soon(_set_after, signal, 2.0)
    assert await timeouts.wait_until(signal, began + 5.0) is True
    assert trio.current_time() - began == 2.0
    assert await timeouts.wait_until(Signal(), began + 5.0) is False
    assert trio.current_time() - began == 5.0
    assert await timeouts.wait_until(signal, began) is True  # set already: True, at once


async def _cancel_soon(scope: trio.CancelScope) -> None:
    await trio.sleep(0.1)
    scope.cancel()


async def _set_after(signal: Signal, seconds: float) -> None:
    await trio.sleep(seconds)
    signal.set()


async def test_waits_of_any_due_time_end_in_order(
    timeouts: PhaseTimeouts, autojump_clock: trio.testing.MockClock
) -> None:
    began = trio.current_time()
    ended: list[tuple[str, float, bool]] = []

    async def wait(name: str, delay: float, due: float) -> None:
        await trio.sleep(delay)
        rang = await timeouts.wait_until(Signal(), began + due)
        ended.append((name, trio.current_time() - began, rang))

    async with trio.open_nursery() as waits:
        waits.start_soon(wait, "late", 0.0, 30.0)
        waits.start_soon(wait, "sooner, made later", 1.0, 7.0)  # wakes the sweeper early
        waits.start_soon(wait, "middle", 2.0, 12.0)
    assert ended == [
        ("sooner, made later", 7.0, False),
        ("middle", 12.0, False),
        ("late", 30.0, False),
    ]


async def test_a_wait_set_and_due_in_the_same_tick_wakes_once(
    nursery: trio.Nursery,
    timeouts: PhaseTimeouts,
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The signal is set at the due time itself: the task is woken by one of the two, once
    (trio raises if a task is rescheduled twice), and the wait reports what woke it."""
    for _ in range(20):
        signal = Signal()
        due = trio.current_time() + 1.0
        nursery.start_soon(_set_after, signal, 1.0)
        rang = await timeouts.wait_until(signal, due)
        assert rang is signal.is_set() or rang is False
        await trio.sleep(0.5)


async def test_a_cancelled_wait_leaves_its_signal_and_no_deadline_behind(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    async def waits(timeouts: PhaseTimeouts, signal: Signal) -> int:
        """200 waits as a playback makes them (each ends long before its due time): the
        entries they leave in trio's deadline heap."""
        before = _deadline_entries()
        for _ in range(200):
            with trio.CancelScope() as scope:
                nursery.start_soon(_cancel_soon, scope)
                await timeouts.wait_until(signal, trio.current_time() + 60.0)
        return _deadline_entries() - before

    signal = Signal()
    assert await waits(PhaseTimeouts(), signal) >= 200  # move_on_at: one left by each wait
    timeouts = PhaseTimeouts()
    await nursery.start(timeouts.run)
    assert await waits(timeouts, signal) < 10  # the sweeper's own: one each time it wakes
    assert signal._waiters == []  # every cancelled wait left the signal's queue
    assert len(timeouts) < 130  # waits over are pruned once they are half the heap
    signal.set()
    await trio.sleep(61.0)
    assert len(timeouts) == 0


async def test_without_its_task_a_wait_is_move_on_at(
    autojump_clock: trio.testing.MockClock,
) -> None:
    timeouts = PhaseTimeouts()
    began = trio.current_time()
    assert await timeouts.wait_until(Signal(), began + 3.0) is False
    assert trio.current_time() - began == 3.0
    signal = Signal()
    signal.set()
    assert await timeouts.wait_until(signal, began + 10.0) is True


@pytest.mark.parametrize("set_at", [30.0, None])
async def test_a_wait_still_pending_when_the_sweeper_stops_goes_on_to_its_due_time(
    autojump_clock: trio.testing.MockClock, set_at: float | None
) -> None:
    timeouts = PhaseTimeouts()
    signal = Signal()
    result: list[tuple[bool, float]] = []
    began = trio.current_time()

    async def wait() -> None:
        rang = await timeouts.wait_until(signal, began + 60.0)
        result.append((rang, trio.current_time() - began))

    async with trio.open_nursery() as outer:
        sweeper = trio.CancelScope()

        async def run_sweeper(task_status: trio.TaskStatus[None]) -> None:
            with sweeper:
                await timeouts.run(task_status=task_status)

        await outer.start(run_sweeper)
        outer.start_soon(wait)
        await trio.sleep(1.0)
        sweeper.cancel()
        if set_at is not None:
            await trio.sleep(set_at - 1.0)
            signal.set()
    assert result == ([(True, set_at)] if set_at is not None else [(False, 60.0)])


async def test_a_wait_cancelled_in_the_tick_its_alarm_is_due_ends_once(
    timeouts: PhaseTimeouts, autojump_clock: trio.testing.MockClock
) -> None:
    """The cancellation and the sweeper reach the wait in the same tick, in either order:
    the wait ends once, cancelled or due (a second wake-up would be trio's error, or a
    ValueError from the signal's queue)."""
    endings = set()
    for _ in range(50):
        due = trio.current_time() + 1.0
        rang: list[bool] = []
        with trio.CancelScope(deadline=due) as scope:
            rang.append(await timeouts.wait_until(Signal(), due))
        endings.add("cancelled" if scope.cancelled_caught else f"returned {rang}")
        await trio.sleep(0.5)
    assert endings <= {"cancelled", "returned [False]"}
