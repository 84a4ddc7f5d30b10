"""The writing half of the server's WebSocket: sends, pings, flushes, and cutting the socket.

:class:`SocketWriter` is the base of :class:`~callflow.server._wsfast.FastWebSocketTransport`
(which adds the opening, reading and the closing handshake). A write goes straight to the
socket's descriptor when no other write is under way and the socket takes it all (no cancel
scope, no task switch: :meth:`SocketWriter.send_nowait`); anything else is queued and written
by the one flush under way, so writes are coalesced into one ``send_all`` and never
interleave. A sender waits only while more than :data:`MAX_BUFFERED_WRITE` bytes are queued
(backpressure from a peer that does not read).

Exceptions: :class:`~callflow.runtime.TransportClosed` (1006 when the connection was lost)
from ``send`` and ``flush``.
"""

from __future__ import annotations

import contextlib
import os

import outcome
import trio
from websockets.protocol import State

from callflow.runtime import TransportClosed
from callflow.runtime._sync import Signal
from callflow.server._readloop import ParkedReader
from callflow.server._wsframes import PING, closed_exc, frame

__all__ = ["MAX_BUFFERED_WRITE", "SocketWriter"]

MAX_BUFFERED_WRITE = 1 << 20
"""Bytes a sender may leave queued behind a write in progress before it waits (backpressure)."""

_OPEN = State.OPEN


class SocketWriter(ParkedReader):
    """Writes to one server-side WebSocket (module doc); the attributes are set by
    :class:`~callflow.server._wsfast.FastWebSocketTransport`."""

    __slots__ = ("_closed", "_closed_event", "_stream", "_stream_closed", "_written")

    _stream: trio.abc.Stream
    _stream_closed: bool
    _closed: TransportClosed | None
    _closed_event: Signal
    _written: Signal

    async def send(self, message: str) -> None:
        """Send one text frame (coalesced with writes already under way).

        Raises:
            TransportClosed: the connection is closed or closing.
        """
        if self._closed is not None or not self._is_open:
            closed = self._closed or closed_exc(self._proto)
            raise TransportClosed(closed.code, closed.reason)
        self._queue(self._text_frames(message))
        await self._flush()

    def send_nowait(self, message: str) -> bool | None:
        """Write one text frame straight to the socket, never waiting: True when the socket
        took all of it; False when it took part, the rest queued for :meth:`flush`; ``None``
        (nothing done) when it cannot go now (a write under way or queued, not a plain socket,
        the connection closed or closing): then use :meth:`send`.

        The runtime's writer tries this first, so the common write needs no timeout scope (a
        deadline scope stays in trio's deadline heap, alive, long after it exits).
        """
        if (
            self._closed is not None
            or self._writing
            or self._out
            or self._fd < 0
            or not self._is_open
        ):
            return None
        chunks = self._text_frames(message)
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
