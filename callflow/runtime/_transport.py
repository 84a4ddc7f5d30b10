"""The transport seam between a call's runtime and whatever carries its messages.

A transport moves whole JSON text messages, one WebSocket text frame each. The runtime only
ever calls these three methods, so the server's WebSocket library can change without touching
the runtime, and tests run the same runtime over :class:`MemoryTransport` in virtual time.

Exceptions a transport raises:

* :class:`TransportClosed` from ``receive`` / ``send`` once the peer has gone (socket closed,
  Plivo hung up) or after ``aclose``.

A transport may also offer ``receive_until(dispatch)`` (:class:`InlineDispatch`): it hands
each message to a synchronous ``dispatch`` function right where it reads it, and wakes the
waiting task only when ``dispatch`` asks for it. The server's stream sockets do: one read loop
serves every call, so the media frames that make up almost all of the traffic cost no task
switch at all. :func:`receive_until` uses it where offered and a plain ``receive`` loop
elsewhere, so the runtime is the same on every transport.

Such a transport may go one step further (:class:`Parkable`): :meth:`~Parkable.park` lets the
read loop dispatch with *no* task waiting, and calls back when a task must act. A parked call
then holds no reader task at all, which is most of what an idle call costs in memory
(docs/performance.md, "Memory per idle call"); the runtime's reader starts a task only for
the rare work that needs one (a ``clearAudio`` the socket would not take at once, a ping, the
stream's end).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import outcome
import trio

Dispatch = Callable[[str], bool]
"""Handles one inbound message inline (it must not block); returns True when the task that
waits in :func:`receive_until` has to act before more messages are handed over."""


class TransportClosed(Exception):
    """The connection is closed: by the peer (Plivo hung up) or by us.

    Attributes:
        code: the WebSocket close code when one is known (1000 normal, 1008 policy…), else
            ``None``.
        reason: the close reason text, possibly empty.
    """

    def __init__(self, code: int | None = None, reason: str = "") -> None:
        super().__init__(f"transport closed (code={code}, reason={reason!r})")
        self.code = code
        self.reason = reason


ABNORMAL_CLOSE = 1006
"""The close code of a connection lost without a close handshake (RFC 6455 §7.1.5). A
transport that gives up on its peer (a reset, EOF without a close frame, a peer silent past
a ping timeout) raises :class:`TransportClosed` with this code, so the runtime detaches the
call and waits for Plivo to reconnect instead of ending it."""

LOST_LINK_CODES = frozenset({None, ABNORMAL_CLOSE, 1011, 1012, 1013, 1014})
"""Close codes that mean the link or the peer failed, not that the peer ended the stream:
no code, 1006 (no close frame), 1011 (internal error), 1012 (service restart), 1013 (try
again later), 1014 (bad gateway). A call whose socket closes with one of these is detached
for ``RuntimeConfig.reconnect_grace_s``; every other code (1000, 1001, 1005, and the refusals
1002/1003/1007-1010) ends it."""


def is_lost_link(exc: TransportClosed) -> bool:
    """Whether ``exc`` is a lost link (see :data:`LOST_LINK_CODES`), not an ended stream."""
    return exc.code in LOST_LINK_CODES


class Transport(Protocol):
    """What the runtime needs of a connection carrying one stream's JSON messages."""

    async def receive(self) -> str:
        """The next text message. Raises :class:`TransportClosed` when there is none to come."""
        ...

    async def send(self, message: str) -> None:
        """Send one text message. Raises :class:`TransportClosed` if the peer has gone."""
        ...

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection (idempotent); pending and later calls raise TransportClosed."""
        ...


@runtime_checkable
class InlineDispatch(Protocol):
    """A transport that can run a :data:`Dispatch` function where it reads (module doc)."""

    async def receive_until(self, dispatch: Dispatch) -> None:
        """Hand every message, in order, to ``dispatch`` until it returns True; then return,
        keeping the messages not yet dispatched for the next call.

        Raises:
            TransportClosed: no message is left and none will come.
            Exception: whatever ``dispatch`` raised (the message it raised on is consumed).
        """
        ...


Woken = Callable[[outcome.Outcome[bool]], object]
"""What a :class:`Parkable` transport calls once a parked reader has work for a task:
``Value(True)`` when ``dispatch`` asked, ``Value(False)`` when the transport has work only a
task can do (the next :meth:`Parkable.receive_once` does it), ``Error(exc)`` when ``dispatch``
raised ``exc``."""


@runtime_checkable
class Parkable(Protocol):
    """A transport whose reading can go on with no task waiting (module doc)."""

    def park(self, dispatch: Dispatch, woken: Woken) -> bool:
        """Dispatch every message as it arrives, with no task waiting, until one of them
        needs a task: then stop and call ``woken`` (once, synchronously, from whatever reads
        the socket). False, with nothing registered, when a task must read now
        (:meth:`receive_once`): messages or work are already waiting, or the transport
        cannot park (closed, or no read loop)."""
        ...

    def unpark(self) -> None:
        """Stop dispatching for a parked reader; ``woken`` will not be called. A no-op when
        not parked."""
        ...

    async def receive_once(self, dispatch: Dispatch) -> bool:
        """Hand ``dispatch`` what one read brings (or the messages already read): True as
        soon as it asks, False once they are dispatched.

        Raises:
            TransportClosed: no message is left and none will come.
            Exception: whatever ``dispatch`` raised.
        """
        ...


async def receive_until(transport: Transport, dispatch: Dispatch) -> None:
    """Feed ``transport``'s messages to ``dispatch`` until it returns True (see
    :meth:`InlineDispatch.receive_until`, which it uses where the transport offers it).

    Raises:
        TransportClosed: the connection has closed and every message has been dispatched.
        Exception: whatever ``dispatch`` raised.
    """
    if isinstance(transport, InlineDispatch):
        await transport.receive_until(dispatch)
        return
    while not dispatch(await transport.receive()):
        pass


class MemoryTransport:
    """One end of an in-memory transport pair made by :func:`memory_transport_pair`.

    Messages are delivered in order through unbounded trio memory channels, so a test drives a
    call with no sockets and trio's autojump clock is safe to use. Closing either end closes
    both directions: the other end's ``receive`` raises :class:`TransportClosed` once it has
    drained what was already sent.
    """

    def __init__(
        self,
        send_channel: trio.MemorySendChannel[str],
        receive_channel: trio.MemoryReceiveChannel[str],
    ) -> None:
        self._send_channel = send_channel
        self._receive_channel = receive_channel
        self._peer: MemoryTransport | None = None
        self.close_code: int | None = None
        self.close_reason = ""

    @property
    def closed(self) -> bool:
        """Whether this end has been closed, by itself or by its peer."""
        return self.close_code is not None

    async def receive(self) -> str:
        try:
            return await self._receive_channel.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise TransportClosed(self.close_code, self.close_reason) from None

    async def send(self, message: str) -> None:
        if self.closed:
            raise TransportClosed(self.close_code, self.close_reason)
        try:
            self._send_channel.send_nowait(message)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise TransportClosed(self.close_code, self.close_reason) from None

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        self._close(code, reason)
        if self._peer is not None:
            self._peer._close(code, reason)
        await trio.lowlevel.checkpoint()

    def _close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.close_code, self.close_reason = code, reason
        self._send_channel.close()


def memory_transport_pair() -> tuple[MemoryTransport, MemoryTransport]:
    """Two connected :class:`MemoryTransport` ends: ``(plivo_side, server_side)``."""
    a_send, b_receive = trio.open_memory_channel[str](math.inf)
    b_send, a_receive = trio.open_memory_channel[str](math.inf)
    a, b = MemoryTransport(a_send, a_receive), MemoryTransport(b_send, b_receive)
    a._peer, b._peer = b, a
    return a, b
