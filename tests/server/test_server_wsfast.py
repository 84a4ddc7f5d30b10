"""``FastWebSocketTransport`` byte by byte: its fast frame path against websockets' own client.

The client side is websockets' sans-IO ``ClientProtocol`` (masked frames as a real client
writes them) over an in-memory stream, so each test decides exactly which bytes arrive in
which read. What the transport hands out and the close codes it sends must be what
websockets' own parser would give, however the bytes are split.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import attrs
import pytest
import trio
import trio.testing
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from callflow.runtime import TransportClosed
from callflow.server._wsfast import FastWebSocketTransport

MAX = 65536


@attrs.define
class Peer:
    """The client end: its protocol, its stream, and what the server transport received."""

    proto: ClientProtocol
    stream: trio.testing.MemoryStapledStream  # type: ignore[name-defined]
    transport: FastWebSocketTransport
    received: list[str] = attrs.Factory(list)
    closed: list[TransportClosed] = attrs.Factory(list)

    async def send_raw(self, data: bytes, chunk: int | None = None) -> None:
        """Write ``data``, ``chunk`` bytes per read of the server (all at once if None)."""
        step = chunk or len(data) or 1
        for i in range(0, len(data), step):
            try:
                await self.stream.send_all(data[i : i + step])
            except trio.BrokenResourceError:  # the server closed: the rest is not read
                return
            await trio.testing.wait_all_tasks_blocked()

    async def send(self, build: Callable[[ClientProtocol], None], chunk: int | None = None) -> None:
        build(self.proto)
        await self.send_raw(b"".join(self.proto.data_to_send()), chunk)

    async def frames(self) -> list[Frame]:
        """Every frame the server has written to us so far."""
        await trio.testing.wait_all_tasks_blocked()
        out: list[Frame] = []
        while True:
            with trio.move_on_after(0.01):
                data = await self.stream.receive_some()
                if not data:
                    self.proto.receive_eof()
                    break
                self.proto.receive_data(data)
                continue
            break
        out.extend(e for e in self.proto.events_received() if isinstance(e, Frame))
        return out


def _masked(opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False) -> bytes:
    """One client frame written by hand (for frames websockets' client refuses to write)."""
    mask = b"\x01\x02\x03\x04"
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    head = bytes([b0, 0x80 | n]) if n < 126 else bytes([b0, 0x80 | 126]) + n.to_bytes(2, "big")
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + body


OVERSIZE = (
    bytes([0x81, 0x80 | 127]) + (70_000).to_bytes(8, "big") + b"\x01\x02\x03\x04" + b"x" * 100
)
"""The start of a 70 000-byte text frame: more than Plivo's 64 KB (its 64-bit length says so)."""


@pytest.fixture
async def peer(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> AsyncIterator[Peer]:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    proto = ClientProtocol(parse_uri("ws://localhost/s"), max_size=None)
    proto.send_request(proto.connect())
    transport = await FastWebSocketTransport.accept(
        server_stream, b"".join(proto.data_to_send()), close_timeout=1.0
    )
    proto.receive_data(await client_stream.receive_some())
    (response,) = proto.events_received()
    assert isinstance(response, Response)
    assert response.status_code == 101
    p = Peer(proto, client_stream, transport)

    async def read() -> None:
        try:
            while True:
                p.received.append(await transport.receive())
        except TransportClosed as exc:
            p.closed.append(exc)

    nursery.start_soon(read)
    yield p
    await transport.aclose()


TEXTS = ["", "a", "é" * 62, "x" * 125, "y" * 126, '{"event":"media"}' * 20, "z" * 4000]
"""Lengths around the 7-bit / 16-bit boundaries of RFC 6455 §5.2."""


@pytest.mark.parametrize(
    ("chunk", "texts"),
    [(n, TEXTS) for n in (1, 2, 5, 6, 7, 8, 300, None)] + [(1000, [*TEXTS, "w" * 65535])],
)
async def test_text_and_pings_arrive_whole_however_the_bytes_are_split(
    peer: Peer, chunk: int | None, texts: list[str]
) -> None:
    def build(proto: ClientProtocol) -> None:
        for i, text in enumerate(texts):
            proto.send_text(text.encode())
            proto.send_ping(f"p{i}".encode())
        proto.send_pong(b"unsolicited")

    await peer.send(build, chunk)
    assert peer.received == texts
    pongs = [f.data for f in await peer.frames() if f.opcode is Opcode.PONG]
    assert pongs == [f"p{i}".encode() for i in range(len(texts))]
    assert peer.transport._fast  # nothing here needed the general parser


async def test_a_max_size_message_and_fragments_go_through_the_general_parser(peer: Peer) -> None:
    def build(proto: ClientProtocol) -> None:
        proto.send_text(b"before")
        proto.send_text(b"m" * MAX)  # a 64-bit length: not the fast path's
        proto.send_text(b"frag", fin=False)
        proto.send_ping(b"mid")
        proto.send_continuation(b"ment", fin=True)
        proto.send_binary(b'{"k":1}')
        proto.send_text(b"after")

    await peer.send(build, 4096)
    assert peer.received == ["before", "m" * MAX, "fragment", '{"k":1}', "after"]
    assert not peer.transport._fast
    assert [f.data for f in await peer.frames() if f.opcode is Opcode.PONG] == [b"mid"]


async def test_a_close_after_messages_delivers_them_first(peer: Peer) -> None:
    def build(proto: ClientProtocol) -> None:
        proto.send_text(b"one")
        proto.send_text(b"two")
        proto.send_close(1000, "bye")

    await peer.send(build, 3)
    assert peer.received == ["one", "two"]
    assert [(c.code, c.reason) for c in peer.closed] == [(1000, "bye")]
    (echo,) = [f for f in await peer.frames() if f.opcode is Opcode.CLOSE]
    assert echo.data[:2] == (1000).to_bytes(2, "big")


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        pytest.param(_masked(0x1, b'{"k":"\xff"}'), 1007, id="invalid-utf8"),
        pytest.param(OVERSIZE, 1009, id="oversize"),
        pytest.param(b"\x81\x02hi", 1002, id="unmasked"),
        pytest.param(_masked(0x1, b"hi", rsv1=True), 1002, id="reserved-bit"),
        pytest.param(_masked(0x3, b"hi"), 1002, id="reserved-opcode"),
        pytest.param(_masked(0x9, b"p" * 126), 1002, id="long-ping"),
        pytest.param(_masked(0x0, b"orphan"), 1002, id="orphan-continuation"),
    ],
)
async def test_bad_frames_close_with_websockets_own_code(peer: Peer, bad: bytes, code: int) -> None:
    await peer.send_raw(_masked(0x1, b"good") + bad + _masked(0x1, b"never"), 5)
    assert peer.received == ["good"]
    assert [c.code for c in peer.closed] == [code]
    closes = [f for f in await peer.frames() if f.opcode is Opcode.CLOSE]
    assert [int.from_bytes(f.data[:2], "big") for f in closes] == [code]


async def test_frames_that_came_with_the_upgrade_request_are_delivered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    proto = ClientProtocol(parse_uri("ws://localhost/s"))
    proto.send_request(proto.connect())
    proto.state = proto.state.OPEN  # write frames before the response, as an eager client may
    proto.send_text(b"early-1")
    proto.send_text(b"early-2")
    initial = b"".join(proto.data_to_send())
    transport = await FastWebSocketTransport.accept(server_stream, initial, close_timeout=1.0)
    assert [await transport.receive(), await transport.receive()] == ["early-1", "early-2"]
    late = ClientProtocol(parse_uri("ws://localhost/s"))
    late.state = late.state.OPEN
    late.send_text(b"late")
    await client_stream.send_all(b"".join(late.data_to_send()))
    assert await transport.receive() == "late"
    await transport.aclose()


async def test_eof_inside_a_frame_is_an_abnormal_close(peer: Peer) -> None:
    await peer.send_raw(_masked(0x1, b"whole") + _masked(0x1, b"cut short")[:7])
    await peer.stream.send_eof()
    await trio.testing.wait_all_tasks_blocked()
    assert peer.received == ["whole"]
    assert [c.code for c in peer.closed] == [1006]
