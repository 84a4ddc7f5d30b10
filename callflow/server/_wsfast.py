"""The server-side WebSocket under the runtime's transport seam.

websockets' sans-IO :class:`websockets.server.ServerProtocol` driven straight from trio
streams: no reader task, no message channel, no per-message task switch. The runtime's one
reader calls :meth:`FastWebSocketTransport.receive`; it reads the socket itself, parses every
frame that arrived in that read, and hands the messages out one by one from a local buffer
(no scheduling between them). Writes are coalesced: a message sent while another write is in
progress joins the next ``send_all``, and the control frames a read produces (pongs, the
close reply) go out in one ``send_all`` per read.

Frames are cut on a fast path (:mod:`callflow.server._wsframes`, the sans-IO half, which
this class extends); while the runtime's reader is parked, the server's :class:`ReadLoop`
(:mod:`callflow.server._readloop`) reads the socket for it and dispatches inline.

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
import os
from typing import cast

import outcome
import trio
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from callflow.runtime import Dispatch, TransportClosed
from callflow.runtime._sync import Signal
from callflow.server._readloop import PROTOCOL, ParkedReader, ReadLoop
from callflow.server._wsframes import PING, TEXT, closed_exc, frame
from callflow.server._wshandshake import RECEIVE_SIZE, HandshakeFailed, handshake

__all__ = ["FastWebSocketTransport", "HandshakeFailed", "ReadLoop"]


DEFAULT_CLOSE_TIMEOUT = 10.0
"""Seconds :meth:`FastWebSocketTransport.aclose` waits for the peer's close frame."""

MAX_BUFFERED_WRITE = 1 << 20
"""Bytes a sender may leave queued behind a write in progress before it waits (backpressure)."""

_OPEN, _CLOSED = State.OPEN, State.CLOSED


class FastWebSocketTransport(ParkedReader):
    """A :class:`callflow.runtime.Transport` on one server-side WebSocket (see module doc).

    Resource handling: owns ``stream`` from :meth:`accept` on; :meth:`aclose` closes it.
    """

    __slots__ = (
        "__weakref__",
        "_close_timeout",
        "_closed",
        "_closed_event",
        "_last_read",
        "_stream",
        "_stream_closed",
        "_written",
    )

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
        self._waiter: trio.lowlevel.Task | None = None
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
        if early:  # the protocol has parsed frames already: let it go on with the rest
            transport._fast = False
        for event in early:
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

    async def send(self, message: str) -> None:
        """Send one text frame (coalesced with writes already under way).

        Raises:
            TransportClosed: the connection is closed or closing.
        """
        proto = self._protocol
        if self._closed is not None or (proto is not None and proto.state is not _OPEN):
            closed = self._closed or closed_exc(self._proto)
            raise TransportClosed(closed.code, closed.reason)
        if proto is None:
            if self._replies:
                self._queue(self._take_replies())
            self._queue([frame(TEXT, message.encode())])
        else:
            proto.send_text(message.encode())
            self._queue(self._take_replies())
        await self._flush()

    def send_nowait(self, message: str) -> bool | None:
        """Write one text frame straight to the socket, never waiting: True when the socket
        took all of it; False when it took part, the rest queued for :meth:`flush`; ``None``
        (nothing done) when it cannot go now (a write under way or queued, not a plain socket,
        the connection closed or closing): then use :meth:`send`.

        The runtime's writer tries this first, so the common write needs no timeout scope (a
        deadline scope stays in trio's deadline heap, alive, long after it exits).
        """
        proto = self._protocol
        if (
            self._closed is not None
            or self._writing
            or self._out
            or self._fd < 0
            or (proto is not None and proto.state is not _OPEN)
        ):
            return None
        if proto is None and not self._replies:
            data = frame(TEXT, message.encode())
        else:
            if proto is None:
                chunks = [*self._take_replies(), frame(TEXT, message.encode())]
            else:
                proto.send_text(message.encode())
                chunks = self._take_replies()
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        try:
            sent = os.write(self._fd, data)
        except OSError:  # full, or broken: the flush waits or reports it
            sent = 0
        if sent == len(data):
            return True
        self._queue([data[sent:]])
        return False

    async def flush(self) -> None:
        """Write what :meth:`send_nowait` left queued (see :meth:`send` for the waiting).

        Raises:
            TransportClosed: the connection was lost while writing.
        """
        await self._flush()

    @property
    def pongs(self) -> int:
        """Pong frames received so far (any payload; RFC 6455 §5.5.3 allows unsolicited ones)."""
        return self._pongs

    async def ping(self, payload: bytes = b"") -> None:
        """Send a ping frame (RFC 6455 §5.5.2: the peer must answer with a pong); nothing if
        the connection is closed or closing. Never waits for a peer that does not read: on a
        socket, what it does not take now waits for the next write (a write under way takes
        it along); another stream is written shielded, as every write is."""
        if self.ping_nowait(payload):
            await trio.lowlevel.checkpoint()
            return
        self._ping_frame(payload)
        self._queue(self._take_replies())
        with trio.CancelScope(shield=True), contextlib.suppress(TransportClosed):
            await self._flush()

    def ping_nowait(self, payload: bytes = b"") -> bool:
        """:meth:`ping` without waiting, where that can be: True when done (written, queued
        behind a write under way or for the next one, or nothing to do on a closed
        connection); False, nothing done, when this stream is not a plain socket (then
        ``await ping()``)."""
        if self._closed is not None or not self._is_open:
            return True
        if self._fd < 0:
            return False
        self._ping_frame(payload)
        self._send_replies_now()
        return True

    def _ping_frame(self, payload: bytes) -> None:
        if self._protocol is None:
            self._replies.append(frame(PING, payload))
        else:
            self._protocol.send_ping(payload)

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

    async def _send_bytes(self, data: bytes) -> None:
        """Write all of ``data``: straight to the socket when it takes it all, else through
        the stream (which waits for room).

        Raises:
            trio.BrokenResourceError: the peer has gone.
            trio.ClosedResourceError: the stream was closed.
        """
        fd = self._fd
        if fd >= 0 and not self._stream_closed:
            try:
                sent = os.write(fd, data)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                raise trio.BrokenResourceError(f"socket write failed: {exc!r}") from None
            if sent == len(data):
                return
            data = data[sent:]
        await self._stream.send_all(data)

    # -- writing -------------------------------------------------------------------------------

    async def _flush(self) -> None:
        """Write what is queued; if a write is under way, it takes ours along (we wait only
        while more than :data:`MAX_BUFFERED_WRITE` bytes are queued)."""
        if self._writing:
            while self._writing and self._out_bytes > MAX_BUFFERED_WRITE:
                await self._written.wait()
            return
        self._writing = True
        try:
            while self._out:
                data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
                self._out.clear()
                self._out_bytes = 0
                try:
                    await self._send_bytes(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self._out.clear()
                    self._set_closed(TransportClosed(1006, "connection lost"))
                    raise TransportClosed(1006, "connection lost") from None
        finally:
            self._writing = False
            self._written.set()
            self._written = Signal()
        if self._eof_wanted and self._proto.state is not _OPEN:
            await self._close_stream()

    # -- closing -------------------------------------------------------------------------------

    def _set_closed(self, exc: TransportClosed) -> None:
        if self._closed is None:
            self._closed = exc
            self._closed_event.set()

    def abort(self, reason: str = "connection aborted") -> None:
        """Cut the connection now, with no close handshake: the last step of a shutdown's
        hard deadline, for a peer that never reads or a close that never ends, or a peer
        gone silent (:mod:`callflow.server._keepalive`). Every pending and later read or
        write ends (``receive``/``send`` raise ``TransportClosed(1006, reason)``, the lost
        link a reset gives), and the socket is closed. Idempotent; a no-op once the stream
        is closed."""
        if self._stream_closed:
            return
        self._stream_closed = True
        self._set_closed(TransportClosed(1006, reason))
        self._wake(outcome.Value(False))  # off the read loop before the descriptor closes
        self._fd = -1  # from here reads and writes go through the (closed) stream
        stream = self._stream
        if isinstance(stream, trio.SocketStream):
            stream.socket.close()  # wakes tasks waiting on it with ClosedResourceError

    async def _close_stream(self) -> None:
        if not self._stream_closed:
            self._stream_closed = True
            self._set_closed(closed_exc(self._proto))
            self._wake(outcome.Value(False))  # off the read loop before the descriptor closes
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(self._stream)
