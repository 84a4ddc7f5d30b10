"""One task that reads every parked call's stream socket and dispatches its messages inline.

:class:`ReadLoop` is the loop; :class:`ParkedReader` is the transport's half of it (parking
the runtime's reader task, reading for it when the socket is ready, waking it when there is
work only the task can do). Linux only (``select.epoll``).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import select
from typing import Final

import outcome
import trio

from callflow.runtime import Dispatch, TransportClosed, Woken
from callflow.server._wsframes import FrameCodec
from callflow.server._wshandshake import RECEIVE_SIZE

__all__ = ["PROTOCOL", "ParkedReader", "ReadLoop"]

PROTOCOL: Final = object()
"""``_handoff`` value: the protocol has events or replies queued for the task."""


class ReadLoop:
    """One task that reads the stream sockets of every call waiting for messages.

    Each call's reader parks in ``FastWebSocketTransport.receive_until``; this loop waits
    on one epoll set of all their sockets (level-triggered, registered once per park), reads
    each ready socket, cuts its frames on the fast path and runs the call's dispatch function
    inline. A media frame, 50 a second per call, then costs one read and one parse: no
    per-socket wake-up, no task switch, no epoll registration (see docs/performance.md). The
    call's task is woken only when its dispatch asks (a barge-in, the stream's stop) or the
    read needs the WebSocket protocol (a ping, a close, another kind of frame).

    At most ``batch`` ready sockets are read per scheduler pass, so one busy pass cannot hold
    the others back for long. Linux only (``select.epoll``): see :meth:`available`.

    Resource handling: run :meth:`run` in a nursery that outlives every transport given this
    loop; when it stops, parked tasks are woken and go on reading for themselves.
    """

    def __init__(self, *, batch: int = 256) -> None:
        self._epoll = select.epoll()
        self._parked: dict[int, ParkedReader] = {}
        self._batch = batch

    @staticmethod
    def available() -> bool:
        """Whether this platform has epoll (Linux); elsewhere each call reads for itself."""
        return hasattr(select, "epoll")

    def __len__(self) -> int:
        """The number of sockets being read for a parked task now."""
        return len(self._parked)

    async def run(self) -> None:
        """Read for parked tasks until cancelled. Never raises for what one call does."""
        epoll, parked, batch = self._epoll, self._parked, self._batch
        try:
            while True:
                await trio.lowlevel.wait_readable(epoll.fileno())
                for fd, _ in epoll.poll(0, batch):
                    transport = parked.get(fd)
                    if transport is not None:
                        # in the parked task's context, so what dispatch logs names its call
                        transport._context.run(transport._on_readable)
        finally:
            for transport in list(parked.values()):
                transport._read_loop = None
                transport._wake(outcome.Value(False))
            epoll.close()

    def _watch(self, transport: ParkedReader) -> None:
        self._parked[transport._fd] = transport
        try:
            self._epoll.register(transport._fd, select.EPOLLIN)
        except FileExistsError:  # a descriptor number reused before the kernel dropped it
            self._epoll.modify(transport._fd, select.EPOLLIN)

    def _unwatch(self, transport: ParkedReader) -> None:
        if self._parked.pop(transport._fd, None) is not None:
            with contextlib.suppress(OSError, ValueError):  # the epoll set closed with the loop
                self._epoll.unregister(transport._fd)


class ParkedReader(FrameCodec):
    """The read loop's side of a transport: while the runtime's reader task is parked in
    ``receive_until``, the loop reads this socket and runs ``_dispatch`` inline; ``_handoff``
    is work it leaves to the task (raw bytes, or :data:`PROTOCOL`: events and replies the
    protocol has queued).

    Base of :class:`~callflow.server._wsfast.FastWebSocketTransport`, which sets ``_fd`` (the
    socket's descriptor, -1 when not a plain TCP socket), ``_read_loop``, ``_reading`` and
    ``_writing``.
    """

    __slots__ = (
        "_context",
        "_dispatch",
        "_fd",
        "_handoff",
        "_read_loop",
        "_reading",
        "_waiter",
        "_writing",
    )

    _fd: int
    _read_loop: ReadLoop | None
    _reading: bool
    _writing: bool
    _waiter: Woken | None
    _closed: TransportClosed | None
    _dispatch: Dispatch | None
    _handoff: bytes | object | None
    _context: contextvars.Context

    def park(self, dispatch: Dispatch, woken: Woken) -> bool:
        """Let the read loop read this socket and run ``dispatch`` with no task waiting
        (:class:`callflow.runtime.Parkable`): ``woken`` is called once, from the loop, when a
        task must act (``Value(True)``: ``dispatch`` asked; ``Value(False)``: work only a
        task can do, for :meth:`receive_once`; ``Error``: what ``dispatch`` raised). False,
        with nothing registered, when a task must read now: no loop, work handed back,
        messages already read, off the fast path, or closed."""
        loop = self._read_loop
        if (
            loop is None
            or self._handoff is not None
            or self._messages
            or not self._fast
            or self._closed is not None
        ):
            return False
        self._watch_for(loop, dispatch, woken)
        return True

    def unpark(self) -> None:
        """Undo :meth:`park` (``woken`` will not be called); a no-op when not parked."""
        self._unpark()

    async def _park(self, loop: ReadLoop, dispatch: Dispatch) -> bool:
        """Let ``loop`` read and dispatch for this task until it wakes us: True when
        ``dispatch`` asked for the task, False when there is work for it (``_handoff``) or
        the loop stopped."""
        task = trio.lowlevel.current_task()
        self._watch_for(loop, dispatch, functools.partial(trio.lowlevel.reschedule, task))

        def abort(_: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
            self._unpark()
            return trio.lowlevel.Abort.SUCCEEDED

        wanted: bool = await trio.lowlevel.wait_task_rescheduled(abort)
        return wanted

    def _watch_for(self, loop: ReadLoop, dispatch: Dispatch, woken: Woken) -> None:
        self._dispatch = dispatch
        self._context = contextvars.copy_context()  # O(1): the call's log context
        self._waiter = woken
        self._reading = True
        loop._watch(self)

    def _unpark(self) -> Woken | None:
        """Stop the read loop reading for us; what was to be woken, if anything."""
        woken, self._waiter, self._dispatch = self._waiter, None, None
        if woken is not None:
            self._reading = False
            if self._read_loop is not None:
                self._read_loop._unwatch(self)
        return woken

    def _wake(self, result: outcome.Outcome[bool]) -> None:
        woken = self._unpark()
        if woken is not None:
            woken(result)

    def _on_readable(self) -> None:
        """Called by the read loop when the socket is readable and our task is parked: read
        once, and dispatch inline what the fast path parsed (see :meth:`receive_until`)."""
        dispatch = self._dispatch
        if dispatch is None:
            return
        try:
            try:
                data = os.read(self._fd, RECEIVE_SIZE)
            except BlockingIOError:
                return
            except OSError:  # reset by the peer, or closed under us
                data = b""
            if not data or not self._fast:
                self._handoff = data
                self._wake(outcome.Value(False))
                return
            quiet = self._receive_fast(data)
            messages = self._messages
            while messages:
                if dispatch(messages.pop(0)):
                    if not quiet:
                        self._handoff = PROTOCOL
                    self._wake(outcome.Value(True))
                    return
            # only pongs to send (still on the fast path): written here, after the frames
            # that came before their pings, without waking the task if the socket takes them
            if not quiet and not (self._fast and self._send_replies_now()):
                self._handoff = PROTOCOL
                self._wake(outcome.Value(False))
        except Exception as exc:  # dispatch raised: the parked task raises it, not the loop
            self._wake(outcome.Error(exc))

    def _send_replies_now(self) -> bool:
        """Write what the protocol queued (pongs) straight to the socket, when no write is
        under way; True when all of it went. What the socket did not take is queued for the
        task's next flush."""
        if self._writing or self._out:
            return False
        chunks = self._take_replies()
        if not all(chunks):  # an EOF marker: closing is the task's business
            self._queue(chunks)
            return False
        data = b"".join(chunks)
        try:
            sent = os.write(self._fd, data)
        except OSError:  # full, or broken: the task's flush waits or reports it
            sent = 0
        if sent == len(data):
            return True
        self._queue([data[sent:]])
        return False
