"""Time limits for a stream's first phases, with no entry in trio's deadline heap.

``trio.move_on_after`` registers its deadline in the run's heap, and an entry whose scope has
exited stays there, holding its scope, until the deadline passes (trio prunes stale entries
only once they outnumber the live ones by a thousand). The limits of a connection's first
phases are long and almost never reached: on the server, the request head (30 s) and the
WebSocket handshake (10 s), and here the wait for ``start`` (``RuntimeConfig.start_timeout_s``,
10 s). So every call that started in the last 30 s kept three such entries, with their scopes
(docs/performance.md, step 9).

Here a phase's cancel scope has no deadline. Its due time waits in a heap, and one task per
server (:meth:`PhaseTimeouts.run`; the server runs it) cancels the scopes whose phase still
runs when their time comes. A phase that ends lets go of its scope at once; what stays until
its due time (or until the heap is pruned) is a two-slot entry. The same task fires the
:class:`~callflow.runtime._sync.Alarm` of each :meth:`wait_until`, in the same heap (a wait
with a due time of its own: a playback's wait for the next checkpoint ack, whose due time
restarts from each ack, ``_ackbound``). Entries whose phase or wait is over are dropped from
the head before the task sleeps, and from the whole heap once they are half of it.
"""

from __future__ import annotations

import contextlib
import heapq
import math
from collections.abc import Iterator

import trio

from callflow.runtime._sync import Alarm, Signal, Timed

__all__ = ["PhaseTimeouts"]


class _Due:
    """One phase's entry in the heap; ``scope`` is ``None`` once the phase is over."""

    __slots__ = ("due", "scope")

    def __init__(self, due: float, scope: trio.CancelScope) -> None:
        self.due = due
        self.scope: trio.CancelScope | None = scope

    def __lt__(self, other: Timed) -> bool:
        return self.due < other.due

    @property
    def over(self) -> bool:
        """Whether the phase has ended (or was cancelled here)."""
        return self.scope is None

    def fire(self) -> None:
        """Cancel the phase, unless it is over."""
        scope, self.scope = self.scope, None
        if scope is not None:
            scope.cancel()


class PhaseTimeouts:
    """``move_on_after`` for a connection's short phases, swept by one task (module doc).

    Resource handling: :meth:`run` in a nursery that outlives the connections; while it does
    not run (before it starts, after it stops), :meth:`limit` is ``trio.move_on_after``.
    """

    def __init__(self) -> None:
        self._heap: list[_Due | Alarm] = []
        self._spent = 0  # about how many entries in it belong to phases or waits that are over
        self._changed = Signal()
        self._running = False

    def __len__(self) -> int:
        """Entries waiting for their due time (phases and waits over included, until then or
        until they are pruned)."""
        return len(self._heap)

    def _push(self, entry: _Due | Alarm) -> None:
        heap = self._heap
        if self._spent * 2 > len(heap) >= 64:  # entries over are half the heap: drop them
            heap[:] = [e for e in heap if not e.over]
            heapq.heapify(heap)
            self._spent = 0
        heapq.heappush(heap, entry)
        if heap[0] is entry:
            self._changed.set()  # the next due time is sooner

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
        alarm = Alarm(due)
        self._push(alarm)
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
            self._push(entry)
            try:
                yield scope
            finally:
                if not entry.over:  # (over: cancelled here, and out of the heap)
                    entry.scope = None
                    self._spent += 1

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Cancel each phase still running at its due time, until cancelled (``limit`` uses
        this task from the moment it has started: ``nursery.start``)."""
        self._running = True
        task_status.started()
        try:
            while True:
                now = trio.current_time()
                heap = self._heap
                # the entries due, and from the head those over: not worth waking for
                while heap and (heap[0].due <= now or heap[0].over):
                    entry = heapq.heappop(heap)
                    if entry.over:
                        self._spent = max(0, self._spent - 1)
                    entry.fire()
                self._changed = Signal()
                with trio.move_on_at(heap[0].due if heap else math.inf):
                    await self._changed.wait()
        finally:
            self._running = False
            # phases fall back on nothing: they end; waits go on under trio's deadlines
            for entry in self._heap:
                entry.fire()
            self._heap.clear()
