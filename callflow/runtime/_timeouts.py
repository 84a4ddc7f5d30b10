"""Time limits for a stream's first phases, with no entry in trio's deadline heap.

``trio.move_on_after`` registers its deadline in the run's heap, and an entry whose scope has
exited stays there, holding its scope, until the deadline passes (trio prunes stale entries
only once they outnumber the live ones by a thousand). The limits of a connection's first
phases are long and almost never reached: on the server, the request head (30 s) and the
WebSocket handshake (10 s), and here the wait for ``start`` (``RuntimeConfig.start_timeout_s``,
10 s). So every call that started in the last 30 s kept three such entries, with their scopes
(docs/performance.md, step 9).

Here a phase's cancel scope has no deadline. Its due time waits in a FIFO per limit (every
entry of one limit falls due in the order it was made), and one task per server
(:meth:`PhaseTimeouts.run`; the server runs it) cancels the scopes whose phase still runs when
their time comes.
A phase that ends lets go of its scope at once; what stays until its due time is a two-slot
entry. The same design as the keepalive's ``Pinger``.

The same task fires the :class:`~callflow.runtime._sync.Alarm` of each :meth:`wait_until`
(a wait with a due time of its own: a playback's wait for the next checkpoint ack, whose due
time restarts from each ack, ``_ackbound``): a heap of alarms, from which those whose wait is
over are dropped once they are half of it.
"""

from __future__ import annotations

import contextlib
import heapq
import math
from collections import deque
from collections.abc import Iterator

import trio

from callflow.runtime._sync import Alarm, Signal

__all__ = ["PhaseTimeouts"]


class _Due:
    """One phase's place in its limit's queue; ``scope`` is ``None`` once the phase is over."""

    __slots__ = ("due", "scope")

    def __init__(self, due: float, scope: trio.CancelScope) -> None:
        self.due = due
        self.scope: trio.CancelScope | None = scope


class PhaseTimeouts:
    """``move_on_after`` for a connection's short phases, swept by one task (module doc).

    Resource handling: :meth:`run` in a nursery that outlives the connections; while it does
    not run (before it starts, after it stops), :meth:`limit` is ``trio.move_on_after``.
    """

    def __init__(self) -> None:
        self._queues: dict[float, deque[_Due]] = {}
        self._alarms: list[Alarm] = []  # a heap
        self._spent = 0  # about how many alarms in it belong to waits that are over
        self._changed = Signal()
        self._running = False

    def __len__(self) -> int:
        """Entries waiting for their due time (phases and waits over included, until then or
        until they are pruned)."""
        return sum(len(queue) for queue in self._queues.values()) + len(self._alarms)

    async def wait_until(self, signal: Signal, due: float) -> bool:
        """``signal.wait()`` until trio time ``due`` (seconds): True once ``signal`` is set,
        False when ``due`` came first. As ``with trio.move_on_at(due): await signal.wait()``
        (which this is while :meth:`run` does not run, and what a wait goes on as once it
        stops), with no entry in trio's deadline heap.

        Raises:
            trio.Cancelled: the waiting task was cancelled first.
        """
        if not self._running:
            with trio.move_on_at(due):
                await signal.wait()
                return True
            return False
        alarms = self._alarms
        if self._spent * 2 > len(alarms) >= 64:  # waits over are half the heap: drop them
            alarms[:] = [a for a in alarms if a.task is not None]
            heapq.heapify(alarms)
            self._spent = 0
        alarm = Alarm(due)
        heapq.heappush(alarms, alarm)
        if alarms[0] is alarm:
            self._changed.set()  # the next due time may be sooner
        try:
            rang = await signal.wait_alarmed(alarm)
        except BaseException:
            self._spent += 1
            raise
        if rang:  # (an alarm that fired has left the heap)
            self._spent += 1
            return True
        if trio.current_time() < due:  # not due: the sweeper stopped (run), trio's deadline then
            with trio.move_on_at(due):
                await signal.wait()
                return True
        return False

    @contextlib.contextmanager
    def limit(self, seconds: float) -> Iterator[trio.CancelScope]:
        """A cancel scope for the body of a ``with`` block, cancelled once ``seconds`` have
        passed (as ``trio.move_on_after(seconds)``: check ``scope.cancelled_caught`` after)."""
        if not self._running:
            with trio.move_on_after(seconds) as scope:
                yield scope
            return
        with trio.CancelScope() as scope:
            entry = _Due(trio.current_time() + seconds, scope)
            queue = self._queues.get(seconds)
            if queue is None:
                queue = self._queues[seconds] = deque()
            queue.append(entry)
            if len(queue) == 1:
                self._changed.set()  # the next due time may be sooner
            try:
                yield scope
            finally:
                entry.scope = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Cancel each phase still running at its due time, until cancelled (``limit`` uses
        this task from the moment it has started: ``nursery.start``)."""
        self._running = True
        task_status.started()
        try:
            while True:
                now = trio.current_time()
                next_due = math.inf
                for seconds, queue in list(self._queues.items()):
                    # (only entries due: dropping the heads of phases that are over now would
                    # empty the queue, and the next phase would wake this task again)
                    while queue and queue[0].due <= now:
                        scope = queue.popleft().scope
                        if scope is not None:
                            scope.cancel()
                    if queue:
                        next_due = min(next_due, queue[0].due)
                    else:
                        del self._queues[seconds]
                alarms = self._alarms
                # (and, from the head, those whose wait is over: not worth waking for)
                while alarms and (alarms[0].due <= now or alarms[0].task is None):
                    alarm = heapq.heappop(alarms)
                    if alarm.task is None:
                        self._spent = max(0, self._spent - 1)
                    alarm.fire()
                if alarms:
                    next_due = min(next_due, alarms[0].due)
                self._changed = Signal()
                with trio.move_on_at(next_due):
                    await self._changed.wait()
        finally:
            self._running = False
            for queue in self._queues.values():  # their phases fall back on nothing: end them
                for entry in queue:
                    if entry.scope is not None:
                        entry.scope.cancel()
            self._queues.clear()
            for alarm in self._alarms:  # (and the waits go on under trio's deadlines)
                alarm.fire()
            self._alarms.clear()
