"""The server-side WebSocket under the runtime's transport seam.

Frames cut and framed by callflow itself on the fast path, websockets' sans-IO
:class:`websockets.server.ServerProtocol` for everything else, driven straight from trio
streams: no reader task, no message channel, no per-message task switch. The runtime's one
reader calls :meth:`FastWebSocketTransport.receive`; it reads the socket itself, parses every
frame that arrived in that read, and hands the messages out one by one from a local buffer
(no scheduling between them). Writes are coalesced: a message sent while another write is in
progress joins the next ``send_all``, and the control frames a read produces (pongs, the
close reply) go out in one ``send_all`` per read.

Frames are cut on a fast path (:mod:`callflow.server._wsframes`, the sans-IO half, which
this class extends); while the runtime's reader is parked, the server's :class:`ReadLoop`
(:mod:`callflow.server._readloop`) reads the socket for it and dispatches inline. Writing is
the base class's, :class:`~callflow.server._wswriter.SocketWriter`.

It keeps the behaviour of the trio-websocket layer it replaced (whose server side held less
than half the real-time calls per core; see docs/performance.md):

* opening handshake from the bytes h11 already read (``initial``), HTTP 400 for a bad one;
* messages over ``max_message_size`` bytes (64 KB, Plivo's limit) close with 1009, invalid
  UTF-8 with 1007, protocol errors with 1002;
* pings are answered with pongs; binary frames are decoded as UTF-8 with ``errors="replace"``;
* ``aclose(code, reason)`` sends a close frame, waits up to ``close_timeout`` seconds for the
  peer's, then closes the TCP stream; a close from the peer is echoed, then the stream closes.

Exceptions: :class:`~callflow.runtime.TransportClosed` (with the close code) from
``receive``/``send`` once the connection is closed or lost; :class:`HandshakeFailed` from
:meth:`FastWebSocketTransport.accept`.

:func:`~callflow.server.serve_flows` hands it every stream upgrade after h11 has read the
request head and the stream token has been checked.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import termios
from typing import cast

import trio
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from callflow.runtime import Dispatch, TransportClosed, Woken
from callflow.runtime._sync import Signal
from callflow.server._readloop import PROTOCOL, ReadLoop
from callflow.server._wsframes import closed_exc
from callflow.server._wshandshake import RECEIVE_SIZE, HandshakeFailed, handshake
from callflow.server._wswriter import SocketWriter

__all__ = ["FastWebSocketTransport", "HandshakeFailed", "ReadLoop"]


DEFAULT_CLOSE_TIMEOUT = 10.0
"""Seconds :meth:`FastWebSocketTransport.aclose` waits for the peer's close frame."""

_OPEN, _CLOSED = State.OPEN, State.CLOSED


class FastWebSocketTransport(SocketWriter):
    """A :class:`callflow.runtime.Transport` on one server-side WebSocket (see module doc).

    Resource handling: owns ``stream`` from :meth:`accept` on; :meth:`aclose` closes it.
    """

    __slots__ = ("__weakref__", "_close_timeout", "_last_read")

    def __init__(
        self,
        stream: trio.abc.Stream,
        protocol: ServerProtocol | None,
        request: Request,
        *,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        max_message_size: int = 65536,
        read_loop: ReadLoop | None = None,
        name: str = "call=-",
    ) -> None:
        super().__init__(protocol, request, max_message_size=max_message_size, name=name)
        self._stream = stream
        self._close_timeout = close_timeout
        self._writing = False
        self._written = Signal()
        self._reading = False
        self._stream_closed = False
        self._closed: TransportClosed | None = None
        self._closed_event = Signal()
        # On a plain TCP stream, read and write the socket's descriptor directly: one system
        # call per read instead of trio's try-then-wait pair, and no stream wrappers.
        self._fd = stream.socket.fileno() if isinstance(stream, trio.SocketStream) else -1
        self._last_read = 0
        # Inline dispatch (:meth:`receive_until`, :class:`ParkedReader`).
        self._read_loop = read_loop if self._fd >= 0 else None
        self._waiter: Woken | None = None
        self._dispatch: Dispatch | None = None
        self._handoff: bytes | object | None = None

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    async def accept(
        cls,
        stream: trio.abc.Stream,
        initial: bytes = b"",
        *,
        max_message_size: int = 65536,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        read_loop: ReadLoop | None = None,
        name: str = "call=-",
    ) -> FastWebSocketTransport:
        """Complete the opening handshake on ``stream`` and return the open transport.

        ``initial`` is what was already read from ``stream`` (the upgrade request as h11 saw
        it, and anything after it). With ``read_loop`` (a running :class:`ReadLoop`),
        :meth:`receive_until` lets that loop read this socket and dispatch its messages.
        ``name`` starts this connection's log lines (``call=<CallUUID>``). Wrap the call in
        ``trio.move_on_after`` to bound it.

        Raises:
            HandshakeFailed: the request is not a valid WebSocket upgrade (answered with an
                HTTP error, and the stream closed) or the peer went away.
        """
        proto, request, early = await handshake(stream, initial, max_message_size)
        transport = cls(
            stream,
            proto,
            request,
            close_timeout=close_timeout,
            max_message_size=max_message_size,
            read_loop=read_loop,
            name=name,
        )
        for event in early:  # (parsed by the protocol, which reads the rest: not fast)
            transport._on_frame(event)
        return transport

    # -- the seam ------------------------------------------------------------------------------

    @property
    def close_code(self) -> int | None:
        """The close code once closed or closing (1006 when the connection was lost)."""
        if self._closed is not None:
            return self._closed.code
        proto = self._protocol
        if proto is None:
            return None
        if proto.close_rcvd is not None:
            return proto.close_rcvd.code
        if proto.close_sent is not None:
            return proto.close_sent.code
        return None

    async def receive(self) -> str:
        """The next text message.

        Messages that arrived in one read are returned without a scheduling point between
        them (only a cancellation check).

        Raises:
            TransportClosed: the connection is closed, after the messages that arrived before
                the close have been returned.
        """
        messages = self._messages
        if messages:
            await trio.lowlevel.checkpoint_if_cancelled()
            return messages.pop(0)
        while not messages:  # a read is a checkpoint of its own
            if self._closed is not None:
                raise TransportClosed(self._closed.code, self._closed.reason)
            await self._read_once()
        return messages.pop(0)

    async def receive_until(self, dispatch: Dispatch) -> None:
        """Hand each message to ``dispatch`` until it returns True (the runtime's
        :class:`~callflow.runtime.InlineDispatch`).

        With a :class:`ReadLoop`, the task parks and the loop reads this socket and calls
        ``dispatch`` itself, waking the task only when ``dispatch`` returns True or the read
        needs more than the fast path (a ping to answer, a close, a frame of another kind).
        Without one, it reads here, as :meth:`receive` does.

        Raises:
            TransportClosed: the connection is closed and every message has been dispatched.
            Exception: whatever ``dispatch`` raised.
        """
        messages = self._messages
        while True:
            while messages:
                if dispatch(messages.pop(0)):
                    return
            if self._closed is not None:
                raise TransportClosed(self._closed.code, self._closed.reason)
            loop = self._read_loop
            if loop is None or self._handoff is not None or not self._fast:
                await self._read_once()
            elif await self._park(loop, dispatch):
                return

    async def receive_once(self, dispatch: Dispatch) -> bool:
        """Hand ``dispatch`` the messages already read, or those of one read (or the work
        the read loop handed back): True as soon as it asks, False when they are done
        (:class:`callflow.runtime.Parkable`; the reader then parks again).

        Raises:
            TransportClosed: the connection is closed and every message has been dispatched.
            Exception: whatever ``dispatch`` raised.
        """
        messages = self._messages
        if not messages:
            if self._closed is not None:
                raise TransportClosed(self._closed.code, self._closed.reason)
            await self._read_once()
        while messages:
            if dispatch(messages.pop(0)):
                return True
        return False

    @property
    def pongs(self) -> int:
        """Pong frames received so far (any payload; RFC 6455 §5.5.3 allows unsolicited ones)."""
        return self._pongs

    def has_unread(self) -> bool:
        """Whether the peer's bytes wait here unread: in the kernel's receive queue
        (``FIONREAD``; a plain socket only) or handed back by the read loop, unparsed. The
        keepalive asks before it gives a peer up: a pong may be among them."""
        if self._handoff is not None or self._messages:
            return True
        if self._fd < 0:
            return False
        try:
            queued = fcntl.ioctl(self._fd, termios.FIONREAD, b"\0\0\0\0")
        except OSError:  # closed meanwhile
            return False
        return int.from_bytes(queued, sys.byteorder) > 0

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code`` and ``reason``; idempotent (see the module doc)."""
        proto = self._proto
        if self._stream_closed:
            return
        if self._fast:  # the closing handshake is the protocol's
            self._leave_fast_path(b"")
        if proto.state is _OPEN:
            try:
                proto.send_close(code, reason)
            except Exception:  # an invalid code from the caller: close normally instead
                proto.send_close(1000, "")
            self._queue(self._take_replies())
            with contextlib.suppress(TransportClosed):
                await self._flush()
        with trio.move_on_after(self._close_timeout):
            if self._reading:  # the reader will see the peer's close
                await self._closed_event.wait()
            else:
                while self._closed is None and not self._stream_closed:
                    await self._read_once()
        self._set_closed(closed_exc(proto))
        await self._close_stream()

    # -- reading -------------------------------------------------------------------------------

    async def _read_once(self) -> None:
        """One read from the socket (or the work the read loop handed back): parse its
        frames, answer control frames in one write."""
        handoff = self._handoff
        if handoff is not None:
            self._handoff = None
            if handoff is PROTOCOL:
                await self._after_protocol(eof=False)
            else:
                await self._handle(cast(bytes, handoff))
            return
        self._reading = True
        try:
            data = await self._receive()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        finally:
            self._reading = False
        await self._handle(data)

    async def _handle(self, data: bytes) -> None:
        """Parse the bytes of one read (``b""``: the peer closed the TCP connection)."""
        if not data:
            if self._fast:
                self._leave_fast_path(b"")
            self._proto.receive_eof()
        elif self._fast:
            if self._receive_fast(data):
                return  # text frames (and pongs) only: nothing to answer, nothing closed
        else:
            self._proto.receive_data(data)
        await self._after_protocol(eof=not data)

    async def _after_protocol(self, *, eof: bool) -> None:
        """Take the frames the protocol parsed, write its replies, and notice a close."""
        if self._protocol is None and not eof:  # still on the fast path: our pongs only
            self._queue(self._take_replies())
            if self._out:
                with contextlib.suppress(TransportClosed):
                    await self._flush()
            return
        proto = self._proto
        for event in proto.events_received():
            self._on_frame(event)  # type: ignore[arg-type]
        self._queue(self._take_replies())
        if self._out:
            with contextlib.suppress(TransportClosed):
                await self._flush()
        # closed: the peer's close frame came, we failed the connection (1002/1007/1009: the
        # protocol then wants EOF), or the stream ended; merely having sent a close is not
        if proto.close_rcvd is not None or self._eof_wanted or proto.state is _CLOSED or eof:
            self._set_closed(closed_exc(proto))
            if eof:
                self._eof_wanted = True
            if self._eof_wanted and not self._writing:
                # (a write under way ends first, with the close frame queued behind it, and
                # then closes the stream itself: see _flush)
                await self._close_stream()

    # -- reading from the shared read loop ---------------------------------------------------

    async def _receive(self) -> bytes:
        """The next bytes from the peer (``b""`` at EOF or on a reset)."""
        fd = self._fd
        if fd < 0:
            return bytes(await self._stream.receive_some(RECEIVE_SIZE))
        if self._last_read < RECEIVE_SIZE:  # the last read drained the socket: wait first
            await trio.lowlevel.wait_readable(fd)
        else:
            await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                data = os.read(fd, RECEIVE_SIZE)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(fd)
                continue
            except OSError:  # reset by the peer, or closed under us
                data = b""
            self._last_read = len(data)
            return data
