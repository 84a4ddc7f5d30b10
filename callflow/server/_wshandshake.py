"""The server's side of the WebSocket opening handshake (RFC 6455 §4.2), from bytes h11 read.

websockets' sans-IO :class:`~websockets.server.ServerProtocol` is fed the upgrade request
h11 already read (and whatever followed it); a bad request is answered with its HTTP error
(400…) and the stream closed.
"""

from __future__ import annotations

import trio
from websockets.frames import Frame
from websockets.http11 import Request
from websockets.server import ServerProtocol

from callflow.server._wsframes import QUIET

__all__ = ["HandshakeFailed", "handshake"]

RECEIVE_SIZE = 65536
"""Bytes asked of the socket per read."""


class HandshakeFailed(Exception):
    """The opening handshake did not complete (bad request, peer gone). The stream is closed.

    Attributes:
        status: the HTTP status answered (400…), or ``None`` when nothing could be answered.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


async def handshake(
    stream: trio.abc.Stream, initial: bytes, max_message_size: int
) -> tuple[ServerProtocol | None, Request, list[Frame]]:
    """Complete the opening handshake on ``stream``: the open protocol (``None`` when it
    holds nothing yet: the transport makes one when it needs it), the upgrade request, and
    the frames that came in the same reads as the request (already parsed).

    ``initial`` is what was already read from ``stream``. Wrap the call in
    ``trio.move_on_after`` to bound it.

    Raises:
        HandshakeFailed: the request is not a valid WebSocket upgrade (answered with an HTTP
            error, and the stream closed) or the peer went away.
    """
    proto = ServerProtocol(max_size=max_message_size, logger=QUIET)
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
        # websockets parses the frames that came in the request's reads at once, and answers
        # their pings before any response exists: those pongs go out after the response
        early_replies = proto.data_to_send()
        response = proto.accept(request)
        proto.send_response(response)
        replies = proto.data_to_send()
        if response.status_code == 101:
            replies += early_replies
        await _send_chunks(stream, replies)
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
    if not early and not proto.reader.buffer:
        # Open, with no frame bytes of its own yet: a fresh protocol in the OPEN state is the
        # same from here on (no extensions or subprotocols are negotiated), so the transport
        # makes one only when it needs it (callflow.server._wsframes), and none of what the
        # handshake left (request, response, parser state: ~2.8 KB) is kept. The protocol
        # and its parser generator hold each other: closing the generator breaks that cycle,
        # so all of it is freed here, by reference counting, instead of waiting for the
        # collector's next pass (up to 20 000 allocations under ``callflow serve``).
        proto.parser.close()
        return None, request, early
    return proto, request, early


async def _send_chunks(stream: trio.abc.Stream, chunks: list[bytes]) -> None:
    data = b"".join(chunks)
    if data:
        await stream.send_all(data)
