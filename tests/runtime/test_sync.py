"""``Signal`` and ``FifoLock``: trio.Event's and trio.StrictFIFOLock's semantics in a fraction
of their memory."""

from __future__ import annotations

import tracemalloc

import pytest
import trio
import trio.testing

from callflow.runtime._sync import FifoLock, Signal


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


def _held(factory: type[object]) -> int:
    """Bytes one object made by ``factory`` holds (tracemalloc, over 200 of them)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [factory() for _ in range(200)]
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(kept) == 200
    return (after - before) // 200


def test_a_signal_holds_a_fraction_of_a_trio_event() -> None:
    assert _held(Signal) * 3 < _held(trio.Event)


async def test_the_lock_goes_to_tasks_in_the_order_they_asked() -> None:
    lock, order, inside = FifoLock(), [], []

    async def worker(i: int) -> None:
        async with lock:
            inside.append(i)
            assert len(inside) == 1  # nobody else holds it meanwhile
            await trio.sleep(0.01)
            order.append(i)
            inside.remove(i)

    async with trio.open_nursery() as nursery:
        for i in range(5):
            nursery.start_soon(worker, i)
            await trio.testing.wait_all_tasks_blocked()  # each asks after the one before
    assert order == [0, 1, 2, 3, 4]
    assert not lock.locked()


async def test_a_task_cancelled_while_waiting_for_the_lock_leaves_the_queue() -> None:
    lock, got = FifoLock(), []
    release = trio.Event()

    async def holder() -> None:
        async with lock:
            await release.wait()
        got.append("holder")

    async def waiter(name: str, scope: trio.CancelScope) -> None:
        with scope:
            async with lock:
                got.append(name)

    scopes = {"a": trio.CancelScope(), "b": trio.CancelScope()}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(holder)
        await trio.testing.wait_all_tasks_blocked()
        for name, scope in scopes.items():
            nursery.start_soon(waiter, name, scope)
            await trio.testing.wait_all_tasks_blocked()
        scopes["a"].cancel()
        await trio.testing.wait_all_tasks_blocked()
        release.set()
    assert got == ["holder", "b"]
    assert scopes["a"].cancelled_caught
    assert not lock.locked()


async def test_entering_a_free_lock_is_a_checkpoint() -> None:
    lock = FifoLock()
    with trio.CancelScope() as scope:
        scope.cancel()
        async with lock:
            pytest.fail("entered a lock inside a cancelled scope")
    assert scope.cancelled_caught
    assert not lock.locked()


async def test_only_the_holder_may_release() -> None:
    lock = FifoLock()
    with pytest.raises(RuntimeError, match="does not hold it"):
        lock.release()


def test_a_fifo_lock_holds_a_fraction_of_trios() -> None:
    assert _held(FifoLock) * 3 < _held(trio.StrictFIFOLock)
