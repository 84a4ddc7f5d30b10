"""``Signal``: trio.Event's semantics in a fraction of its memory."""

from __future__ import annotations

import tracemalloc

import pytest
import trio
import trio.testing

from callflow.runtime._signal import Signal


async def test_set_wakes_every_waiter() -> None:
    signal, woke = Signal(), []

    async def waiter(i: int) -> None:
        await signal.wait()
        woke.append(i)

    async with trio.open_nursery() as nursery:
        for i in range(3):
            nursery.start_soon(waiter, i)
        await trio.testing.wait_all_tasks_blocked()
        assert woke == []
        assert not signal.is_set()
        signal.set()
        signal.set()  # idempotent
    assert sorted(woke) == [0, 1, 2]
    assert signal.is_set()


async def test_wait_on_a_set_signal_is_still_a_checkpoint() -> None:
    signal = Signal()
    signal.set()
    with trio.CancelScope() as scope:
        scope.cancel()
        await signal.wait()  # must raise Cancelled (caught by the scope), like trio.Event
        pytest.fail("wait() on a set Signal did not checkpoint")
    assert scope.cancelled_caught


async def test_a_cancelled_waiter_is_forgotten_and_the_rest_still_wake() -> None:
    signal, woke = Signal(), []

    async def waiter(i: int, scope: trio.CancelScope) -> None:
        with scope:
            await signal.wait()
            woke.append(i)

    scopes = [trio.CancelScope() for _ in range(3)]
    async with trio.open_nursery() as nursery:
        for i, scope in enumerate(scopes):
            nursery.start_soon(waiter, i, scope)
        await trio.testing.wait_all_tasks_blocked()
        scopes[1].cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert "1 waiting" not in repr(signal)
        assert "2 waiting" in repr(signal)
        signal.set()
    assert sorted(woke) == [0, 2]
    assert scopes[1].cancelled_caught


def test_a_signal_holds_a_fraction_of_a_trio_event() -> None:
    def held(factory: type[object]) -> int:
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            kept = [factory() for _ in range(200)]
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert len(kept) == 200
        return (after - before) // 200

    assert held(Signal) * 3 < held(trio.Event)
