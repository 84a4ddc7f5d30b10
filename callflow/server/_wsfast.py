"""The server-side WebSocket under the runtime's transport seam.

websockets' sans-IO :class:`websockets.server.ServerProtocol` driven straight from trio
streams: no reader task, no message channel, no per-message task switch. The runtime's one
reader calls :meth:`FastWebSocketTransport.receive`; it reads the socket itself, parses every
frame that arrived in that read, and hands the messages out one by one from a local buffer
(no scheduling between them). Writes are coalesced: a message sent while another write is in
progress joins the next ``send_all``, and the control frames a read produces (pongs, the
close reply) go out in one ``send_all`` per read.

Frames are read on a fast path until the connection starts closing: the frames Plivo sends (whole,
masked text frames under 64 KiB, and pings and pongs) are cut out of the read buffer here and
unmasked with websockets' C ``apply_mask`` (a media message costs about 1 µs instead of the
generator-based parser's 6 µs; see docs/performance.md). At the first frame of any other
kind (a fragment, a binary or close frame, a reserved bit or opcode, an unmasked or oversize
frame), or once the connection starts closing, the rest of the byte stream, from that frame's
first byte, goes to the sans-IO protocol for good, which then decides everything: the fast
path never judges a frame it does not fully understand, so its errors and close codes are
websockets' own.

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

import collections
import contextlib
import logging
import os
import select
from typing import Final, cast

import outcome
import trio
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from callflow.runtime import Dispatch, TransportClosed

try:
    from websockets.speedups import apply_mask
except ImportError:  # websockets built without its C extension
    from websockets.utils import apply_mask

__all__ = ["FastWebSocketTransport", "HandshakeFailed", "ReadLoop"]

log = logging.getLogger("callflow.server")

DEFAULT_CLOSE_TIMEOUT = 10.0
"""Seconds :meth:`FastWebSocketTransport.aclose` waits for the peer's close frame."""

RECEIVE_SIZE = 65536
"""Bytes asked of the socket per read."""

MAX_BUFFERED_WRITE = 1 << 20
"""Bytes a sender may leave queued behind a write in progress before it waits (backpressure)."""

_OPEN, _CLOSED = State.OPEN, State.CLOSED
_TEXT, _BINARY, _CONT, _CLOSE = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.CLOSE
_QUIET = logging.getLogger("callflow.server.wsfast")
_QUIET.setLevel(logging.WARNING)  # websockets logs every open and close at INFO


_PROTOCOL: Final = object()
"""``_handoff`` value: the protocol has events or replies queued for the task."""


class ReadLoop:
    """One task that reads the stream sockets of every call waiting for messages.

    Each call's reader parks in :meth:`FastWebSocketTransport.receive_until`; this loop waits
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
        self._parked: dict[int, FastWebSocketTransport] = {}
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
                        transport._on_readable()
        finally:
            for transport in list(parked.values()):
                transport._read_loop = None
                transport._wake(outcome.Value(False))
            epoll.close()

    def _watch(self, transport: FastWebSocketTransport) -> None:
        self._parked[transport._fd] = transport
        try:
            self._epoll.register(transport._fd, select.EPOLLIN)
        except FileExistsError:  # a descriptor number reused before the kernel dropped it
            self._epoll.modify(transport._fd, select.EPOLLIN)

    def _unwatch(self, transport: FastWebSocketTransport) -> None:
        if self._parked.pop(transport._fd, None) is not None:
            with contextlib.suppress(OSError, ValueError):  # the epoll set closed with the loop
                self._epoll.unregister(transport._fd)


class HandshakeFailed(Exception):
    """The opening handshake did not complete (bad request, peer gone). The stream is closed.

    Attributes:
        status: the HTTP status answered (400…), or ``None`` when nothing could be answered.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class FastWebSocketTransport:
    """A :class:`callflow.runtime.Transport` on one server-side WebSocket (see module doc).

    Resource handling: owns ``stream`` from :meth:`accept` on; :meth:`aclose` closes it.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        protocol: ServerProtocol,
        request: Request,
        *,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        max_message_size: int = 65536,
        read_loop: ReadLoop | None = None,
        name: str = "call=-",
    ) -> None:
        self._stream = stream
        self._proto = protocol
        self.request = request
        """The upgrade request (path, headers)."""
        self.name = name
        """How log lines name this connection (``call=<CallUUID>``)."""
        self._close_timeout = close_timeout
        self._messages: collections.deque[str] = collections.deque()
        self._fragments: list[bytes] = []
        self._fragment_op = _TEXT
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._writing = False
        self._written = trio.Event()
        self._reading = False
        self._eof_wanted = False
        self._stream_closed = False
        self._closed: TransportClosed | None = None
        self._closed_event = trio.Event()
        self._warned_binary = False
        # On a plain TCP stream, read and write the socket's descriptor directly: one system
        # call per read instead of trio's try-then-wait pair, and no stream wrappers.
        self._fd = stream.socket.fileno() if isinstance(stream, trio.SocketStream) else -1
        self._last_read = 0
        # The fast frame path (module doc): on while the protocol has no bytes of its own;
        # ``_partial`` holds the start of a frame that has not fully arrived yet.
        reader = getattr(protocol, "reader", None)
        self._fast = reader is not None and not getattr(reader, "buffer", True)
        self._partial = bytearray()
        self._max_message_size = max_message_size
        # Inline dispatch (:meth:`receive_until`): while the runtime's reader is parked, the
        # shared read loop reads for it and runs ``_dispatch``; ``_handoff`` is work it leaves
        # to the task (raw bytes, or _PROTOCOL: events and replies the protocol has queued).
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
        proto = ServerProtocol(max_size=max_message_size, logger=_QUIET)
        request: Request | None = None
        early: list[Frame] = []
        data = initial
        try:
            while request is None:
                if data:
                    proto.receive_data(data)
                else:
                    proto.receive_eof()
                for event in proto.events_received():
                    if isinstance(event, Request):
                        request = event
                    elif isinstance(event, Frame):
                        early.append(event)
                if request is None:
                    if proto.handshake_exc is not None or not data:
                        await _send_chunks(stream, proto.data_to_send())
                        raise HandshakeFailed(f"no valid upgrade request: {proto.handshake_exc}")
                    data = bytes(await stream.receive_some(RECEIVE_SIZE))
            response = proto.accept(request)
            proto.send_response(response)
            await _send_chunks(stream, proto.data_to_send())
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)
            raise HandshakeFailed(f"peer gone during the handshake: {exc!r}") from None
        except BaseException:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)
            raise
        if response.status_code != 101:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)
            raise HandshakeFailed(
                f"upgrade refused with HTTP {response.status_code}: {proto.handshake_exc}",
                response.status_code,
            )
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
        for frame in early:
            transport._on_frame(frame)
        return transport

    # -- the seam ------------------------------------------------------------------------------

    @property
    def close_code(self) -> int | None:
        """The close code once closed or closing (1006 when the connection was lost)."""
        if self._closed is not None:
            return self._closed.code
        proto = self._proto
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
            return messages.popleft()
        while not messages:  # a read is a checkpoint of its own
            if self._closed is not None:
                raise TransportClosed(self._closed.code, self._closed.reason)
            await self._read_once()
        return messages.popleft()

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
                if dispatch(messages.popleft()):
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
        proto = self._proto
        if self._closed is not None or proto.state is not _OPEN:
            closed = self._closed or _closed_exc(proto)
            raise TransportClosed(closed.code, closed.reason)
        proto.send_text(message.encode())
        self._queue(proto.data_to_send())
        await self._flush()

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
            self._queue(proto.data_to_send())
            with contextlib.suppress(TransportClosed):
                await self._flush()
        with trio.move_on_after(self._close_timeout):
            if self._reading:  # the reader will see the peer's close
                await self._closed_event.wait()
            else:
                while self._closed is None and not self._stream_closed:
                    await self._read_once()
        self._set_closed(_closed_exc(proto))
        await self._close_stream()

    # -- reading -------------------------------------------------------------------------------

    async def _read_once(self) -> None:
        """One read from the socket (or the work the read loop handed back): parse its
        frames, answer control frames in one write."""
        handoff = self._handoff
        if handoff is not None:
            self._handoff = None
            if handoff is _PROTOCOL:
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
        proto = self._proto
        for frame in proto.events_received():
            self._on_frame(frame)  # type: ignore[arg-type]
        self._queue(proto.data_to_send())
        if self._out:
            with contextlib.suppress(TransportClosed):
                await self._flush()
        # closed: the peer's close frame came, we failed the connection (1002/1007/1009: the
        # protocol then wants EOF), or the stream ended; merely having sent a close is not
        if proto.close_rcvd is not None or self._eof_wanted or proto.state is _CLOSED or eof:
            self._set_closed(_closed_exc(proto))
            if eof:
                self._eof_wanted = True
            if self._eof_wanted and not self._writing:
                # (a write under way ends first, with the close frame queued behind it, and
                # then closes the stream itself: see _flush)
                await self._close_stream()

    # -- reading from the shared read loop ---------------------------------------------------

    async def _park(self, loop: ReadLoop, dispatch: Dispatch) -> bool:
        """Let ``loop`` read and dispatch for this task until it wakes us: True when
        ``dispatch`` asked for the task, False when there is work for it (``_handoff``) or
        the loop stopped."""
        self._dispatch = dispatch
        self._waiter = trio.lowlevel.current_task()
        self._reading = True
        loop._watch(self)

        def abort(_: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
            self._unpark()
            return trio.lowlevel.Abort.SUCCEEDED

        wanted: bool = await trio.lowlevel.wait_task_rescheduled(abort)
        return wanted

    def _unpark(self) -> trio.lowlevel.Task | None:
        """Stop the read loop reading for us; the task that was parked, if any."""
        task, self._waiter, self._dispatch = self._waiter, None, None
        if task is not None:
            self._reading = False
            if self._read_loop is not None:
                self._read_loop._unwatch(self)
        return task

    def _wake(self, result: outcome.Outcome[bool]) -> None:
        task = self._unpark()
        if task is not None:
            trio.lowlevel.reschedule(task, result)

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
                if dispatch(messages.popleft()):
                    if not quiet:
                        self._handoff = _PROTOCOL
                    self._wake(outcome.Value(True))
                    return
            # only pongs to send (still on the fast path): written here, after the frames
            # that came before their pings, without waking the task if the socket takes them
            if not quiet and not (self._fast and self._send_replies_now()):
                self._handoff = _PROTOCOL
                self._wake(outcome.Value(False))
        except Exception as exc:  # dispatch raised: the parked task raises it, not the loop
            self._wake(outcome.Error(exc))

    def _send_replies_now(self) -> bool:
        """Write what the protocol queued (pongs) straight to the socket, when no write is
        under way; True when all of it went. What the socket did not take is queued for the
        task's next flush."""
        if self._writing or self._out:
            return False
        chunks = self._proto.data_to_send()
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

    def _receive_fast(self, data: bytes) -> bool:
        """Cut the whole text, ping and pong frames out of ``data`` (module doc: fast path).

        RFC 6455 §5.2: byte 0 is FIN, three reserved bits and the opcode; byte 1 the MASK bit
        and a 7-bit length (126: a 16-bit length follows; 127: a 64-bit one); then the 4-byte
        masking key and the payload. Anything else leaves the fast path at that frame.

        The start of a frame that has not fully arrived waits in ``_partial``, a bytearray
        grown in place, so a frame that trickles in a byte per read costs linear time.

        Returns True when the read held only text frames and pongs (no reply to write, still
        on the fast path); False after a ping, a failure or the hand-over.
        """
        partial = self._partial
        buf: bytes | bytearray
        if partial:
            partial += data
            buf = partial
        else:
            buf = data
        end = len(buf)
        pos = 0
        messages = self._messages
        handover = False  # stopped at a frame the fast path does not take
        quiet = True
        while end - pos >= 6:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            if b1 < 0x80 or length == 127:  # unmasked (an error), or 64 KiB and more
                handover = True
                break
            if length == 126:
                if end - pos < 8:
                    break  # its length has not arrived yet
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                head = pos + 8
            else:
                head = pos + 6
            if b0 == 0x81:  # FIN + text
                if length > self._max_message_size:
                    handover = True
                    break
            elif (b0 != 0x89 and b0 != 0x8A) or length > 125:  # FIN + ping / pong
                handover = True
                break
            stop = head + length
            if stop > end:
                break  # the rest of the frame has not arrived yet
            payload = apply_mask(buf[head:stop], buf[head - 4 : head])
            pos = stop
            if b0 == 0x81:
                try:
                    messages.append(payload.decode())
                except UnicodeDecodeError as exc:
                    self._fast = False  # the protocol discards everything after a failure
                    partial.clear()
                    self._fail(1007, f"{exc.reason} at position {exc.start}")
                    return False
            elif b0 == 0x89:
                self._proto.send_pong(payload)
                quiet = False
        if handover:
            rest = bytes(buf[pos:])
            partial.clear()
            self._leave_fast_path(rest)
            return False
        if buf is partial:
            del partial[:pos]
        else:
            partial += buf[pos:]
        return quiet

    def _leave_fast_path(self, rest: bytes) -> None:
        """Hand the byte stream, from a frame boundary on, to the sans-IO protocol for good."""
        self._fast = False
        data = bytes(self._partial) + rest
        self._partial.clear()
        if data:
            self._proto.receive_data(data)

    def _on_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        data = cast(bytes, frame.data)  # received frames carry bytes
        if opcode is _TEXT and frame.fin:
            try:
                self._messages.append(data.decode())
            except UnicodeDecodeError as exc:
                self._fail(1007, f"{exc.reason} at position {exc.start}")
        elif opcode is _CONT or opcode is _TEXT or opcode is _BINARY:
            if opcode is not _CONT:
                self._fragment_op = opcode
                self._fragments = []
            self._fragments.append(data)
            if frame.fin:
                data = b"".join(self._fragments)
                self._fragments = []
                if self._fragment_op is _BINARY:
                    self._messages.append(self._binary(data))
                else:
                    try:
                        self._messages.append(data.decode())
                    except UnicodeDecodeError as exc:
                        self._fail(1007, f"{exc.reason} at position {exc.start}")
        # PING: the protocol queued the pong; PONG: nothing to do; CLOSE: handled by state

    def _binary(self, data: bytes) -> str:
        if not self._warned_binary:
            self._warned_binary = True
            log.warning(
                "%s ws %s: binary frame of %d bytes (Plivo sends text only); decoded as UTF-8",
                self.name,
                self.request.path.partition("?")[0],  # never the stream token
                len(data),
            )
        return data.decode("utf-8", errors="replace")

    def _fail(self, code: int, reason: str) -> None:
        self._proto.fail(code, reason)

    # -- writing -------------------------------------------------------------------------------

    def _queue(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            if chunk:
                self._out.append(chunk)
                self._out_bytes += len(chunk)
            else:  # websockets' SEND_EOF: close the TCP connection after these bytes
                self._eof_wanted = True

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
            self._written = trio.Event()
        if self._eof_wanted and self._proto.state is not _OPEN:
            await self._close_stream()

    # -- closing -------------------------------------------------------------------------------

    def _set_closed(self, exc: TransportClosed) -> None:
        if self._closed is None:
            self._closed = exc
            self._closed_event.set()

    async def _close_stream(self) -> None:
        if not self._stream_closed:
            self._stream_closed = True
            self._set_closed(_closed_exc(self._proto))
            self._wake(outcome.Value(False))  # off the read loop before the descriptor closes
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(self._stream)


def _closed_exc(proto: ServerProtocol) -> TransportClosed:
    """The TransportClosed for the protocol's close state (1006 when no close frame came)."""
    close = proto.close_rcvd if proto.close_rcvd is not None else proto.close_sent
    if close is None or proto.state is _OPEN:
        return TransportClosed(1006, "connection lost")
    return TransportClosed(int(close.code), str(close.reason or ""))


async def _send_chunks(stream: trio.abc.Stream, chunks: list[bytes]) -> None:
    data = b"".join(chunks)
    if data:
        await stream.send_all(data)
