"""The sans-IO half of the server's WebSocket: bytes in, text messages out, frames to send queued.

:class:`FrameCodec` holds what the transport (:mod:`callflow.server._wsfast`) has parsed but
not yet handed out, and what it is to send. No IO, no socket: the transport and the read loop
(:mod:`callflow.server._readloop`) feed it reads.

Frames are read on a fast path until the connection starts closing: the frames Plivo sends
(whole, masked text frames under 64 KiB, and pings and pongs) are cut out of the read buffer
here and unmasked with websockets' C ``apply_mask`` (a media message costs about 1 µs instead
of the generator-based parser's 6 µs; see docs/performance.md). At the first frame of any
other kind (a fragment, a binary or close frame, a reserved bit or opcode, an unmasked or
oversize frame), or once the connection starts closing, the rest of the byte stream, from
that frame's first byte, goes to the sans-IO protocol for good, which then decides
everything: the fast path never judges a frame it does not fully understand, so its errors
and close codes are websockets' own.

Messages over ``max_message_size`` bytes (64 KB, Plivo's limit) close with 1009, invalid
UTF-8 with 1007, protocol errors with 1002; pings are answered with pongs; binary frames are
decoded as UTF-8 with ``errors="replace"``.

websockets' protocol object (1.4 KB a call) is made only when it is needed: when the byte
stream leaves the fast path, or the connection starts closing. Until then the frames callflow
sends (text, ping, pong: unmasked, whole, RFC 6455 §5.2) are framed here (:func:`frame`), and
a parked call holds no protocol at all.
"""

from __future__ import annotations

import logging
import struct
from typing import cast

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from callflow.runtime import TransportClosed

try:
    from websockets.speedups import apply_mask
except ImportError:  # websockets built without its C extension
    from websockets.utils import apply_mask

__all__ = ["QUIET", "FrameCodec", "closed_exc", "frame", "new_protocol"]

log = logging.getLogger("callflow.server")

QUIET = logging.getLogger("callflow.server.wsfast")
QUIET.setLevel(logging.WARNING)  # websockets logs every open and close at INFO

TEXT, PING, PONG = 0x81, 0x89, 0x8A
"""Byte 0 of a whole (FIN) text, ping and pong frame (RFC 6455 §5.2, §11.8)."""

_HEAD16 = struct.Struct("!BBH")
_HEAD64 = struct.Struct("!BBQ")


def frame(b0: int, payload: bytes) -> bytes:
    """One unmasked frame, as a server sends it (RFC 6455 §5.1: a server never masks):
    byte 0 ``b0`` (:data:`TEXT`, :data:`PING`, :data:`PONG`), the length, the payload."""
    n = len(payload)
    if n < 126:
        return bytes((b0, n)) + payload
    if n < 65536:
        return _HEAD16.pack(b0, 126, n) + payload
    return _HEAD64.pack(b0, 127, n) + payload


def new_protocol(max_message_size: int) -> ServerProtocol:
    """websockets' sans-IO server protocol in the OPEN state, its logging quiet below
    WARNING (it would log every open and close)."""
    return ServerProtocol(state=State.OPEN, max_size=max_message_size, logger=QUIET)


_TEXT, _BINARY, _CONT, _PONG = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PONG


class FrameCodec:
    """One connection's frames: what arrived, parsed into ``_messages``; what to send, queued
    in ``_out`` (``_eof_wanted`` once the protocol wants the TCP stream closed after it).

    Base of :class:`~callflow.server._wsfast.FastWebSocketTransport`, which does the IO.
    """

    # slots, not an instance dict: past 30 attributes a dict stops sharing its keys with
    # the other connections' (~1.6 KB a call; docs/performance.md, "Memory per idle call")
    __slots__ = (
        "_eof_wanted",
        "_fast",
        "_fragment_op",
        "_fragments",
        "_max_message_size",
        "_messages",
        "_out",
        "_out_bytes",
        "_partial",
        "_pongs",
        "_protocol",
        "_replies",
        "_warned_binary",
        "name",
        "path",
    )

    def __init__(
        self,
        protocol: ServerProtocol | None,
        request: Request,
        *,
        max_message_size: int,
        name: str,
    ) -> None:
        self._protocol = protocol  # None until needed (module doc): see ``_proto``
        self._replies: list[bytes] = []  # control frames framed here, not yet sent
        self.path = request.path
        """The upgrade request's path and query (the stream token: never log the query). Not
        the request itself: its headers are ~2.7 KB a call, unused once the socket is open."""
        self.name = name
        """How log lines name this connection (``call=<CallUUID>``)."""
        self._messages: list[str] = []  # (an empty deque's block is ~760 bytes a call)
        self._fragments: list[bytes] = []
        self._fragment_op = _TEXT
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._eof_wanted = False
        self._warned_binary = False
        # The fast frame path (module doc): on while the protocol has no bytes of its own;
        # ``_partial`` holds the start of a frame that has not fully arrived yet.
        # (a protocol handed over by the handshake holds frames or bytes of its own already,
        # so from there on it reads everything)
        self._fast = protocol is None
        self._partial = bytearray()
        self._max_message_size = max_message_size
        self._pongs = 0
        """Pong frames received (whatever their payload)."""

    @property
    def _proto(self) -> ServerProtocol:
        """websockets' protocol, made on first use (module doc): by the slow path and the
        closing handshake only."""
        proto = self._protocol
        if proto is None:
            proto = self._protocol = new_protocol(self._max_message_size)
        return proto

    @property
    def _is_open(self) -> bool:
        """The protocol's state is OPEN (always, while there is no protocol yet)."""
        proto = self._protocol
        return proto is None or proto.state is State.OPEN

    def _take_replies(self) -> list[bytes]:
        """What is to be sent, in order: the control frames framed here, then whatever the
        protocol (if any) has queued (b"": close the TCP stream after the bytes before)."""
        replies, self._replies = self._replies, []
        if self._protocol is not None:
            replies += self._protocol.data_to_send()
        return replies

    def _text_frames(self, message: str) -> list[bytes]:
        """What to send for one text message, in order: the control frames still to go, then
        its frame (framed here, or by the protocol once there is one)."""
        if self._protocol is None:
            data = frame(TEXT, message.encode())
            if not self._replies:
                return [data]
            replies, self._replies = self._replies, []
            replies.append(data)
            return replies
        self._protocol.send_text(message.encode())
        return self._take_replies()

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
                if self._protocol is None:
                    self._replies.append(frame(PONG, payload))
                else:
                    self._protocol.send_pong(payload)
                quiet = False
            else:  # a pong: the peer is alive (callflow.server._keepalive)
                self._pongs += 1
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
        elif opcode is _PONG:
            self._pongs += 1
        # PING: the protocol queued the pong; CLOSE: handled by state

    def _binary(self, data: bytes) -> str:
        if not self._warned_binary:
            self._warned_binary = True
            log.warning(
                "%s ws %s: binary frame of %d bytes (Plivo sends text only); decoded as UTF-8",
                self.name,
                self.path.partition("?")[0],  # never the stream token
                len(data),
            )
        return data.decode("utf-8", errors="replace")

    def _fail(self, code: int, reason: str) -> None:
        self._proto.fail(code, reason)

    def _queue(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            if chunk:
                self._out.append(chunk)
                self._out_bytes += len(chunk)
            else:  # websockets' SEND_EOF: close the TCP connection after these bytes
                self._eof_wanted = True


def closed_exc(proto: ServerProtocol) -> TransportClosed:
    """The TransportClosed for the protocol's close state (1006 when no close frame came)."""
    close = proto.close_rcvd if proto.close_rcvd is not None else proto.close_sent
    if close is None or proto.state is State.OPEN:
        return TransportClosed(1006, "connection lost")
    return TransportClosed(int(close.code), str(close.reason or ""))
