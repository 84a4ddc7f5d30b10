"""``FastWebSocketTransport`` byte by byte: its fast frame path against websockets' own client.

The client side is websockets' sans-IO ``ClientProtocol`` (masked frames as a real client
writes them) over an in-memory stream, so each test decides exactly which bytes arrive in
which read. What the transport hands out and the close codes it sends must be what
websockets' own parser would give, however the bytes are split.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator, Callable

import attrs
import pytest
import trio
import trio.testing
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from callflow.runtime import TransportClosed
from callflow.server._wsfast import FastWebSocketTransport, ReadLoop

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
    assert peer.transport._protocol is None  # so no websockets protocol object was made


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70_000])
async def test_what_the_server_sends_is_read_back_by_websockets_client(
    peer: Peer, size: int
) -> None:
    """Frames callflow writes itself (text, ping; module doc of ``_wsframes``) across the
    7-bit, 16-bit and 64-bit length forms, as websockets' client parses them."""
    text = ("é" * size)[: max(0, size // 2)] + "x" * (size - 2 * (size // 2))
    await peer.transport.send(text)
    await peer.transport.ping(b"k" * min(size, 125))
    frames = await peer.frames()
    assert [(f.opcode, f.fin) for f in frames] == [(Opcode.TEXT, True), (Opcode.PING, True)]
    assert frames[0].data.decode() == text
    assert frames[1].data == b"k" * min(size, 125)
    assert peer.transport._protocol is None


async def test_the_protocol_object_is_made_for_the_closing_handshake(peer: Peer) -> None:
    await peer.transport.send("hello")
    assert peer.transport._protocol is None
    await peer.send(lambda proto: proto.send_close(1000, "bye"))
    frames = await peer.frames()
    assert [f.opcode for f in frames] == [Opcode.TEXT, Opcode.CLOSE]
    assert peer.closed[0].code == 1000
    assert peer.transport._protocol is not None


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


async def test_a_ping_that_came_with_the_upgrade_request_is_answered_after_the_101(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """websockets answers it while parsing the request; the pong must not precede the HTTP
    response on the wire (the client would read it as a malformed response)."""
    client_stream, server_stream = trio.testing.memory_stream_pair()
    proto = ClientProtocol(parse_uri("ws://localhost/s"))
    proto.send_request(proto.connect())
    proto.state = proto.state.OPEN
    proto.send_ping(b"p")
    initial = b"".join(proto.data_to_send())
    transport = await FastWebSocketTransport.accept(server_stream, initial, close_timeout=1.0)
    reply = await client_stream.receive_some()
    assert reply.startswith(b"HTTP/1.1 101 ")
    assert reply.endswith(b"\r\n\r\n\x8a\x01p")  # the response, then the pong
    await transport.aclose()


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


async def test_the_handshake_leaves_nothing_for_the_collector(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The handshake's protocol object, dropped once the socket is open (``_wshandshake``), is
    freed at once by reference counting: it is no cycle left for the collector's next pass
    (one per call, ~3 KB of each call's resident memory until then: docs/performance.md)."""
    _client_stream, server_stream = trio.testing.memory_stream_pair()
    proto = ClientProtocol(parse_uri("ws://localhost/s"))
    proto.send_request(proto.connect())
    initial = b"".join(proto.data_to_send())
    was_enabled = gc.isenabled()
    gc.collect()
    before = {id(o) for o in gc.get_objects() if isinstance(o, ServerProtocol)}
    gc.disable()
    try:
        transport = await FastWebSocketTransport.accept(server_stream, initial, close_timeout=1.0)
        assert transport._protocol is None
        made = [o for o in gc.get_objects() if isinstance(o, ServerProtocol)]
        assert [o for o in made if id(o) not in before] == []
    finally:
        if was_enabled:
            gc.enable()
    await transport.aclose()


async def test_eof_inside_a_frame_is_an_abnormal_close(peer: Peer) -> None:
    await peer.send_raw(_masked(0x1, b"whole") + _masked(0x1, b"cut short")[:7])
    await peer.stream.send_eof()
    await trio.testing.wait_all_tasks_blocked()
    assert peer.received == ["whole"]
    assert [c.code for c in peer.closed] == [1006]


# -- the shared read loop ----------------------------------------------------------------------


@attrs.define
class Line:
    """One call's socket on a shared :class:`ReadLoop`: the client end and the transport."""

    proto: ClientProtocol
    stream: trio.SocketStream
    transport: FastWebSocketTransport

    async def send(self, build: Callable[[ClientProtocol], None]) -> None:
        build(self.proto)
        await self.stream.send_all(b"".join(self.proto.data_to_send()))

    async def frames(self, opcode: Opcode, count: int) -> list[bytes]:
        """The payloads of the next ``count`` frames of ``opcode`` the server writes."""
        out: list[bytes] = []
        with trio.fail_after(5):
            while len(out) < count:
                self.proto.receive_data(await self.stream.receive_some())
                out += [
                    e.data
                    for e in self.proto.events_received()
                    if isinstance(e, Frame) and e.opcode is opcode
                ]
        return out


async def _line(loop: ReadLoop | None, stack: contextlib.AsyncExitStack) -> Line:
    a, b = trio.socket.socketpair()
    client, server = trio.SocketStream(a), trio.SocketStream(b)
    proto = ClientProtocol(parse_uri("ws://localhost/s"))
    proto.send_request(proto.connect())
    transport = await FastWebSocketTransport.accept(
        server, b"".join(proto.data_to_send()), close_timeout=1.0, read_loop=loop
    )
    stack.push_async_callback(client.aclose)
    stack.push_async_callback(trio.aclose_forcefully, server)
    proto.receive_data(await client.receive_some())
    (response,) = proto.events_received()
    assert isinstance(response, Response)
    return Line(proto, client, transport)


@pytest.fixture
async def loop(nursery: trio.Nursery) -> ReadLoop:
    read_loop = ReadLoop()
    nursery.start_soon(read_loop.run)
    return read_loop


@pytest.fixture
async def stack() -> AsyncIterator[contextlib.AsyncExitStack]:
    """Closes every socket a test opened."""
    async with contextlib.AsyncExitStack() as exits:
        yield exits


def _texts(*texts: str) -> Callable[[ClientProtocol], None]:
    def build(proto: ClientProtocol) -> None:
        for text in texts:
            proto.send_text(text.encode())

    return build


class Recorder:
    """A dispatch function that records each message and the task it ran in; returns True
    for the messages in ``wake_on``."""

    def __init__(self, wake_on: tuple[str, ...] = ()) -> None:
        self.seen: list[str] = []
        self.tasks: set[trio.lowlevel.Task] = set()
        self.wake_on = wake_on
        self._changed = trio.Event()

    def __call__(self, text: str) -> bool:
        self.seen.append(text)
        self.tasks.add(trio.lowlevel.current_task())
        self._changed.set()
        self._changed = trio.Event()
        return text in self.wake_on

    async def wait_for(self, count: int) -> None:
        """Until ``count`` messages have been dispatched (at most 5 s)."""
        with trio.fail_after(5):
            while len(self.seen) < count:
                await self._changed.wait()


async def test_the_loop_dispatches_in_its_own_task_and_wakes_the_call_on_request(
    loop: ReadLoop, nursery: trio.Nursery, stack: contextlib.AsyncExitStack
) -> None:
    lines = [await _line(loop, stack) for _ in range(3)]
    recorders = [Recorder(wake_on=(f"wake-{i}",)) for i in range(3)]
    returned: list[int] = []
    woke = trio.Event()

    async def reader(i: int) -> None:
        await lines[i].transport.receive_until(recorders[i])
        returned.append(i)
        woke.set()

    for i in range(3):
        nursery.start_soon(reader, i)
    await trio.testing.wait_all_tasks_blocked()
    assert len(loop) == 3
    for i, line in enumerate(lines):
        await line.send(_texts(*(f"m{i}-{k}" for k in range(50))))
    for r in recorders:
        await r.wait_for(50)
    assert [r.seen for r in recorders] == [[f"m{i}-{k}" for k in range(50)] for i in range(3)]
    assert returned == []  # no message asked for a task: none woke
    await lines[1].send(_texts("wake-1", "after-1", "after-2"))
    with trio.fail_after(5):
        await woke.wait()
    assert returned == [1]
    assert recorders[1].seen[-1] == "wake-1"
    readers = {t for r in recorders for t in r.tasks}
    assert len(readers) == 1  # every message dispatched in the loop's one task
    # what came after the wake-up is kept, in order, for the next call
    rest = Recorder(wake_on=("after-2",))
    await lines[1].transport.receive_until(rest)
    assert rest.seen == ["after-1", "after-2"]


async def test_pings_are_answered_while_the_call_is_parked(
    loop: ReadLoop, nursery: trio.Nursery, stack: contextlib.AsyncExitStack
) -> None:
    line = await _line(loop, stack)
    seen = Recorder(wake_on=("last",))
    nursery.start_soon(line.transport.receive_until, seen)
    await trio.testing.wait_all_tasks_blocked()

    def build(proto: ClientProtocol) -> None:
        proto.send_text(b"a")
        proto.send_ping(b"p1")
        proto.send_text(b"b")
        proto.send_ping(b"p2")

    await line.send(build)
    assert await line.frames(Opcode.PONG, 2) == [b"p1", b"p2"]
    await line.send(_texts("last"))
    await seen.wait_for(3)
    assert seen.seen == ["a", "b", "last"]


async def test_a_close_or_eof_ends_the_parked_call_after_its_messages(
    loop: ReadLoop, stack: contextlib.AsyncExitStack
) -> None:
    closing, dropped = await _line(loop, stack), await _line(loop, stack)

    def close(proto: ClientProtocol) -> None:
        proto.send_text(b"x")
        proto.send_close(1000, "bye")

    seen = Recorder()
    with trio.fail_after(5):
        await closing.send(close)
        with pytest.raises(TransportClosed) as closed:
            await closing.transport.receive_until(seen)
    assert seen.seen == ["x"]
    assert (closed.value.code, closed.value.reason) == (1000, "bye")
    with trio.fail_after(5):
        await dropped.send(_texts("y"))
        await dropped.stream.aclose()
        with pytest.raises(TransportClosed) as lost:
            await dropped.transport.receive_until(seen)
    assert seen.seen == ["x", "y"]
    assert lost.value.code == 1006
    assert len(loop) == 0


async def test_a_dispatch_that_raises_fails_its_call_only(
    loop: ReadLoop, stack: contextlib.AsyncExitStack
) -> None:
    bad, good = await _line(loop, stack), await _line(loop, stack)

    def explode(text: str) -> bool:
        raise ValueError(f"cannot take {text}")

    seen = Recorder(wake_on=("done",))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(good.transport.receive_until, seen)
        await bad.send(_texts("boom"))
        with trio.fail_after(5), pytest.raises(ValueError, match="cannot take boom"):
            await bad.transport.receive_until(explode)
        await good.send(_texts("still", "done"))
    assert seen.seen == ["still", "done"]


async def test_a_cancelled_or_closed_park_leaves_the_loop(
    loop: ReadLoop, nursery: trio.Nursery, stack: contextlib.AsyncExitStack
) -> None:
    line = await _line(loop, stack)
    with trio.move_on_after(0.05):
        await line.transport.receive_until(Recorder())
    assert len(loop) == 0
    await line.send(_texts("read by the task"))
    with trio.fail_after(5):
        assert await line.transport.receive() == "read by the task"

    closed: list[int | None] = []
    done = trio.Event()

    async def parked() -> None:
        try:
            await line.transport.receive_until(Recorder())
        except TransportClosed as exc:
            closed.append(exc.code)
            done.set()

    nursery.start_soon(parked)
    await trio.testing.wait_all_tasks_blocked()
    assert len(loop) == 1

    async def peer_answers_the_close() -> None:
        await line.frames(Opcode.CLOSE, 1)  # websockets' client echoes it
        await line.stream.send_all(b"".join(line.proto.data_to_send()))

    nursery.start_soon(peer_answers_the_close)
    with trio.fail_after(5):
        await line.transport.aclose(4000, "done here")
        await done.wait()
    assert closed == [4000]
    assert len(loop) == 0


async def test_parked_calls_read_for_themselves_once_the_loop_stops(
    stack: contextlib.AsyncExitStack,
) -> None:
    seen = Recorder(wake_on=("after",))
    async with trio.open_nursery() as nursery:
        loop = ReadLoop()
        loop_scope = trio.CancelScope()

        async def run_loop() -> None:
            with loop_scope:
                await loop.run()

        nursery.start_soon(run_loop)
        line = await _line(loop, stack)
        nursery.start_soon(line.transport.receive_until, seen)
        await trio.testing.wait_all_tasks_blocked()
        assert len(loop) == 1
        loop_scope.cancel()
        await trio.testing.wait_all_tasks_blocked()
        await line.send(_texts("before", "after"))
    assert seen.seen == ["before", "after"]


async def test_a_close_waits_for_the_write_under_way(nursery: trio.Nursery) -> None:
    """A protocol failure (or the peer's close) while a long write is blocked on a slow peer
    must not cut that frame short: the frame is finished, the close frame follows, then EOF."""
    client_stream, server_stream = trio.testing.lockstep_stream_pair()
    proto = ClientProtocol(parse_uri("ws://localhost/s"), max_size=None)
    proto.send_request(proto.connect())
    accepting = trio.Event()
    transports: list[FastWebSocketTransport] = []

    async def accept() -> None:
        transports.append(
            await FastWebSocketTransport.accept(
                server_stream, b"".join(proto.data_to_send()), close_timeout=1.0
            )
        )
        accepting.set()

    nursery.start_soon(accept)
    proto.receive_data(await client_stream.receive_some())
    await accepting.wait()
    transport = transports[0]
    long_text = "p" * 50_000
    nursery.start_soon(transport.send, long_text)  # blocks: nobody reads yet
    await trio.testing.wait_all_tasks_blocked()

    async def read_until_closed() -> None:
        with contextlib.suppress(TransportClosed):
            while True:
                await transport.receive()

    nursery.start_soon(read_until_closed)
    await client_stream.send_all(_masked(0x3, b"bad opcode"))
    await trio.testing.wait_all_tasks_blocked()
    frames: list[Frame] = []
    with trio.fail_after(5):
        while True:
            data = await client_stream.receive_some()
            if not data:
                break
            proto.receive_data(data)
            frames += [e for e in proto.events_received() if isinstance(e, Frame)]
    assert [f.opcode for f in frames] == [Opcode.TEXT, Opcode.CLOSE]
    assert bytes(frames[0].data) == long_text.encode()
    assert int.from_bytes(frames[1].data[:2], "big") == 1002


async def test_a_binary_frame_is_logged_with_the_call_and_without_the_token(
    peer: Peer, caplog: pytest.LogCaptureFixture
) -> None:
    peer.transport.name = "call=bin-call"
    peer.transport.path = "/s/stream?t=SECRET-TOKEN"
    await peer.send(lambda proto: proto.send_binary(b'{"event":"x"}'))
    assert peer.received == ['{"event":"x"}']
    (line,) = [r.getMessage() for r in caplog.records if "binary frame" in r.getMessage()]
    assert "call=bin-call" in line
    assert "/s/stream" in line
    assert "SECRET" not in line


async def test_send_nowait_writes_what_the_socket_takes_and_queues_the_rest(
    stack: contextlib.AsyncExitStack, nursery: trio.Nursery
) -> None:
    line = await _line(None, stack)
    transport = line.transport
    assert transport.send_nowait("first") is True
    assert await line.frames(Opcode.TEXT, 1) == [b"first"]
    # nobody reads: the socket's buffer fills, and what it does not take waits for flush()
    results = [transport.send_nowait("x" * 60_000) for _ in range(64)]
    assert False in results
    assert transport.send_nowait("behind the queue") is None  # queued bytes go first
    received: list[bytes] = []

    async def read_all() -> None:
        received.extend(await line.frames(Opcode.TEXT, results.index(False) + 1))

    nursery.start_soon(read_all)
    with trio.fail_after(5):
        await transport.flush()
    await trio.testing.wait_all_tasks_blocked()
    assert len(received) == results.index(False) + 1
    assert all(frame == b"x" * 60_000 for frame in received)
    await transport.aclose()
    assert transport.send_nowait("after close") is None
