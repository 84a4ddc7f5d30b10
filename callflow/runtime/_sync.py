"""A one-shot flag and a FIFO lock, small enough to keep a dozen on every call.

:class:`Signal` does what ``trio.Event`` does (``set``, ``is_set``, ``wait``), in two slots.
A ``trio.Event`` carries its own ``ParkingLot``, which carries an ``OrderedDict``: 280 bytes
each (``tracemalloc``), allocated up front whether or not any task ever waits. A parked call
keeps about fifteen of them (a checkpoint's ack, the next key, the end of a clear, the socket's
close, …), 4 KB of the 16 KB a call may hold in all (docs/performance.md, "Memory per idle
call"). A :class:`Signal` is 48 bytes, and a list of the waiting tasks exists only while one
waits. :class:`FifoLock` is ``trio.StrictFIFOLock`` the same way (450 bytes → 64).

:class:`Alarm` bounds one :meth:`Signal.wait_alarmed` in time without a cancel scope: whoever
keeps the alarms (``_timeouts.PhaseTimeouts``, one task per server) fires it at its due time.
A ``trio.move_on_at`` around a wait leaves its entry, with its scope, in trio's deadline heap
until the deadline passes however soon the wait ends (~230 bytes; a playback's waits for acks
made one per ack); a finished alarm is three empty slots.
"""

from __future__ import annotations

import functools
from typing import Protocol

import outcome
import trio

__all__ = ["Alarm", "FifoLock", "Signal", "Timed"]


def _forget(
    waiters: list[trio.lowlevel.Task], task: trio.lowlevel.Task, _: object
) -> trio.lowlevel.Abort:
    """The abort function of a waiting task: it leaves the queue. (A ``partial`` of this, not a
    closure: a parked call waits like this for minutes, and two cells, a closure tuple and a
    function are ~150 bytes more than one ``partial``.)"""
    waiters.remove(task)
    return trio.lowlevel.Abort.SUCCEEDED


def _forget_alarmed(
    waiters: list[trio.lowlevel.Task], task: trio.lowlevel.Task, alarm: Alarm, _: object
) -> trio.lowlevel.Abort:
    """:func:`_forget`, and the alarm is spent at once: the cancelled task may run after the
    sweeper in the same tick, which must then not wake it a second time."""
    alarm.task = alarm.signal = None
    waiters.remove(task)
    return trio.lowlevel.Abort.SUCCEEDED


class Signal:
    """A flag that is set once; :meth:`wait` returns once it is set.

    The same semantics as ``trio.Event``: :meth:`wait` is a checkpoint whether or not the flag
    is already set, it can be cancelled while it waits, and :meth:`set` wakes every waiting
    task (trio runs them in no set order) and is idempotent. Not thread-safe, like
    ``trio.Event``: use it from the trio thread only.
    """

    __slots__ = ("_flag", "_waiters")

    def __init__(self) -> None:
        self._flag = False
        self._waiters: list[trio.lowlevel.Task] | None = None

    def is_set(self) -> bool:
        """Whether :meth:`set` has been called."""
        return self._flag

    def set(self) -> None:
        """Set the flag and wake every task waiting for it; a no-op once set."""
        if self._flag:
            return
        self._flag = True
        waiters, self._waiters = self._waiters, None
        if waiters:
            for task in waiters:
                trio.lowlevel.reschedule(task)

    async def wait(self) -> None:
        """Return once the flag is set (at once, after a checkpoint, if it is already).

        Raises:
            trio.Cancelled: the waiting task was cancelled first.
        """
        if self._flag:
            await trio.lowlevel.checkpoint()
            return
        task = trio.lowlevel.current_task()
        waiters = self._waiters
        if waiters is None:
            waiters = self._waiters = []
        waiters.append(task)
        # only aborted while ``task`` has not been rescheduled, so it is still listed
        await trio.lowlevel.wait_task_rescheduled(functools.partial(_forget, waiters, task))

    async def wait_alarmed(self, alarm: Alarm) -> bool:
        """:meth:`wait`, or until ``alarm`` fires: True once the flag is set, False when the
        alarm fired first (an alarm fires once; give each wait its own).

        Raises:
            trio.Cancelled: the waiting task was cancelled first (the alarm is then spent).
        """
        if self._flag:
            alarm.task = None
            await trio.lowlevel.checkpoint()
            return True
        task = trio.lowlevel.current_task()
        waiters = self._waiters
        if waiters is None:
            waiters = self._waiters = []
        waiters.append(task)
        alarm.task, alarm.signal = task, self
        try:
            rang = await trio.lowlevel.wait_task_rescheduled(
                functools.partial(_forget_alarmed, waiters, task, alarm)
            )
        finally:
            alarm.task = alarm.signal = None
        return rang is None  # (``set`` reschedules with None, ``Alarm.fire`` with False)

    def __repr__(self) -> str:
        waiting = len(self._waiters) if self._waiters else 0
        return f"<Signal {'set' if self._flag else 'unset'}, {waiting} waiting>"


class Timed(Protocol):
    """Anything with a due time (trio time, seconds): what an :class:`Alarm` is ordered
    against in a heap."""

    due: float


class Alarm:
    """A due time for one :meth:`Signal.wait_alarmed` (module doc); ordered by ``due``.

    Attributes:
        due: trio time (seconds) at which :meth:`fire` is due.
        task: the task waiting, while it does (``None`` before and after).
    """

    __slots__ = ("due", "signal", "task")

    def __init__(self, due: float) -> None:
        self.due = due
        self.task: trio.lowlevel.Task | None = None
        self.signal: Signal | None = None

    def __lt__(self, other: Timed) -> bool:
        return self.due < other.due

    @property
    def over(self) -> bool:
        """Whether no wait is under way (over, or not begun)."""
        return self.task is None

    def fire(self) -> None:
        """Wake the waiting task (its ``wait_alarmed`` returns False), unless the wait is over
        or its signal was set first (which has woken it, or is about to). Idempotent."""
        task, signal = self.task, self.signal
        self.task = self.signal = None
        if task is None or signal is None or signal._flag:
            return
        waiters = signal._waiters
        if waiters is not None:
            waiters.remove(task)
        trio.lowlevel.reschedule(task, outcome.Value(False))


class FifoLock:
    """A lock that tasks get in the order they asked for it: ``trio.StrictFIFOLock``'s
    ``async with`` use, in a fraction of its memory.

    Entering is a checkpoint (a cancellation point, and a schedule point when the lock is
    free); a task cancelled while it waits leaves the queue. On release the lock passes
    straight to the task that has waited longest, so no later task can overtake it.

    Raises:
        RuntimeError: on release by a task that does not hold it (a defect).
    """

    __slots__ = ("_owner", "_waiters")

    def __init__(self) -> None:
        self._owner: trio.lowlevel.Task | None = None
        self._waiters: list[trio.lowlevel.Task] | None = None

    def locked(self) -> bool:
        """Whether a task holds the lock."""
        return self._owner is not None

    async def __aenter__(self) -> None:
        task = trio.lowlevel.current_task()
        if self._owner is None:  # (tasks wait only while another holds it)
            await trio.lowlevel.checkpoint_if_cancelled()
            self._owner = task
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        waiters = self._waiters
        if waiters is None:
            waiters = self._waiters = []
        waiters.append(task)
        # aborted only while not rescheduled yet, so not the owner yet; else the releaser
        # made us the owner
        await trio.lowlevel.wait_task_rescheduled(functools.partial(_forget, waiters, task))

    async def __aexit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        """Hand the lock to the longest waiting task, or free it."""
        if self._owner is not trio.lowlevel.current_task():
            raise RuntimeError("FifoLock released by a task that does not hold it")
        waiters = self._waiters
        if waiters:
            task = waiters.pop(0)
            self._owner = task
            trio.lowlevel.reschedule(task)
        else:
            self._owner = None
